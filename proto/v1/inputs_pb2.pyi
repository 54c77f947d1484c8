from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Sources(_message.Message):
    __slots__ = ("pypi_index", "debian_mirror", "debian_suite", "debian_keyring", "cpython_suites", "cpython_signers")
    class CpythonSignersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PYPI_INDEX_FIELD_NUMBER: _ClassVar[int]
    DEBIAN_MIRROR_FIELD_NUMBER: _ClassVar[int]
    DEBIAN_SUITE_FIELD_NUMBER: _ClassVar[int]
    DEBIAN_KEYRING_FIELD_NUMBER: _ClassVar[int]
    CPYTHON_SUITES_FIELD_NUMBER: _ClassVar[int]
    CPYTHON_SIGNERS_FIELD_NUMBER: _ClassVar[int]
    pypi_index: str
    debian_mirror: str
    debian_suite: str
    debian_keyring: bytes
    cpython_suites: _containers.RepeatedScalarFieldContainer[str]
    cpython_signers: _containers.ScalarMap[str, str]
    def __init__(self, pypi_index: _Optional[str] = ..., debian_mirror: _Optional[str] = ..., debian_suite: _Optional[str] = ..., debian_keyring: _Optional[bytes] = ..., cpython_suites: _Optional[_Iterable[str]] = ..., cpython_signers: _Optional[_Mapping[str, str]] = ...) -> None: ...

class LockRequest(_message.Message):
    __slots__ = ("config_file", "config_text", "sources", "check", "current_lock")
    CONFIG_FILE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_TEXT_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    CURRENT_LOCK_FIELD_NUMBER: _ClassVar[int]
    config_file: str
    config_text: bytes
    sources: Sources
    check: bool
    current_lock: bytes
    def __init__(self, config_file: _Optional[str] = ..., config_text: _Optional[bytes] = ..., sources: _Optional[_Union[Sources, _Mapping]] = ..., check: _Optional[bool] = ..., current_lock: _Optional[bytes] = ...) -> None: ...

class LockResponse(_message.Message):
    __slots__ = ("lock_text", "pylock_text", "stale", "counts")
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    LOCK_TEXT_FIELD_NUMBER: _ClassVar[int]
    PYLOCK_TEXT_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    lock_text: bytes
    pylock_text: bytes
    stale: _containers.RepeatedScalarFieldContainer[str]
    counts: _containers.ScalarMap[str, int]
    def __init__(self, lock_text: _Optional[bytes] = ..., pylock_text: _Optional[bytes] = ..., stale: _Optional[_Iterable[str]] = ..., counts: _Optional[_Mapping[str, int]] = ...) -> None: ...

class FetchRequest(_message.Message):
    __slots__ = ("lock_file", "lock_text", "offline", "pylock_store_paths")
    LOCK_FILE_FIELD_NUMBER: _ClassVar[int]
    LOCK_TEXT_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_FIELD_NUMBER: _ClassVar[int]
    PYLOCK_STORE_PATHS_FIELD_NUMBER: _ClassVar[int]
    lock_file: str
    lock_text: bytes
    offline: bool
    pylock_store_paths: bool
    def __init__(self, lock_file: _Optional[str] = ..., lock_text: _Optional[bytes] = ..., offline: _Optional[bool] = ..., pylock_store_paths: _Optional[bool] = ...) -> None: ...

class FetchArtifact(_message.Message):
    __slots__ = ("kind", "name", "version", "filename", "digest", "size", "url")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    version: str
    filename: str
    digest: str
    size: int
    url: str
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., filename: _Optional[str] = ..., digest: _Optional[str] = ..., size: _Optional[int] = ..., url: _Optional[str] = ...) -> None: ...

class FetchPlan(_message.Message):
    __slots__ = ("artifacts", "bytes", "present", "present_bytes")
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    PRESENT_BYTES_FIELD_NUMBER: _ClassVar[int]
    artifacts: int
    bytes: int
    present: int
    present_bytes: int
    def __init__(self, artifacts: _Optional[int] = ..., bytes: _Optional[int] = ..., present: _Optional[int] = ..., present_bytes: _Optional[int] = ...) -> None: ...

class FetchReport(_message.Message):
    __slots__ = ("fetched", "fetched_bytes", "present", "missing", "pylock_text", "tree", "root")
    FETCHED_FIELD_NUMBER: _ClassVar[int]
    FETCHED_BYTES_FIELD_NUMBER: _ClassVar[int]
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    PYLOCK_TEXT_FIELD_NUMBER: _ClassVar[int]
    TREE_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    fetched: int
    fetched_bytes: int
    present: int
    missing: _containers.RepeatedCompositeFieldContainer[FetchArtifact]
    pylock_text: bytes
    tree: str
    root: str
    def __init__(self, fetched: _Optional[int] = ..., fetched_bytes: _Optional[int] = ..., present: _Optional[int] = ..., missing: _Optional[_Iterable[_Union[FetchArtifact, _Mapping]]] = ..., pylock_text: _Optional[bytes] = ..., tree: _Optional[str] = ..., root: _Optional[str] = ...) -> None: ...

class FetchEvent(_message.Message):
    __slots__ = ("plan", "done", "report")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    plan: FetchPlan
    done: FetchArtifact
    report: FetchReport
    def __init__(self, plan: _Optional[_Union[FetchPlan, _Mapping]] = ..., done: _Optional[_Union[FetchArtifact, _Mapping]] = ..., report: _Optional[_Union[FetchReport, _Mapping]] = ...) -> None: ...
