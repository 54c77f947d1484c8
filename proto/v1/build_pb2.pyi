from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DerivationDocument(_message.Message):
    __slots__ = ("name", "json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    json: bytes
    def __init__(self, name: _Optional[str] = ..., json: _Optional[bytes] = ...) -> None: ...

class BuildLimits(_message.Message):
    __slots__ = ("timeout_seconds", "max_output_bytes", "max_processes")
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_PROCESSES_FIELD_NUMBER: _ClassVar[int]
    timeout_seconds: float
    max_output_bytes: int
    max_processes: int
    def __init__(self, timeout_seconds: _Optional[float] = ..., max_output_bytes: _Optional[int] = ..., max_processes: _Optional[int] = ...) -> None: ...

class RealizeRequest(_message.Message):
    __slots__ = ("documents", "target", "limits", "root")
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    documents: _containers.RepeatedCompositeFieldContainer[DerivationDocument]
    target: str
    limits: BuildLimits
    root: str
    def __init__(self, documents: _Optional[_Iterable[_Union[DerivationDocument, _Mapping]]] = ..., target: _Optional[str] = ..., limits: _Optional[_Union[BuildLimits, _Mapping]] = ..., root: _Optional[str] = ...) -> None: ...

class BuildEvent(_message.Message):
    __slots__ = ("plan", "started", "log", "finished", "result")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    plan: Plan
    started: BuildStarted
    log: LogChunk
    finished: BuildFinished
    result: Result
    def __init__(self, plan: _Optional[_Union[Plan, _Mapping]] = ..., started: _Optional[_Union[BuildStarted, _Mapping]] = ..., log: _Optional[_Union[LogChunk, _Mapping]] = ..., finished: _Optional[_Union[BuildFinished, _Mapping]] = ..., result: _Optional[_Union[Result, _Mapping]] = ...) -> None: ...

class Plan(_message.Message):
    __slots__ = ("target", "to_build", "cached")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TO_BUILD_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    target: str
    to_build: _containers.RepeatedScalarFieldContainer[str]
    cached: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, target: _Optional[str] = ..., to_build: _Optional[_Iterable[str]] = ..., cached: _Optional[_Iterable[str]] = ...) -> None: ...

class BuildStarted(_message.Message):
    __slots__ = ("drv", "name", "build_id", "check")
    DRV_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    drv: str
    name: str
    build_id: int
    check: bool
    def __init__(self, drv: _Optional[str] = ..., name: _Optional[str] = ..., build_id: _Optional[int] = ..., check: _Optional[bool] = ...) -> None: ...

class LogChunk(_message.Message):
    __slots__ = ("drv", "data")
    DRV_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    drv: str
    data: bytes
    def __init__(self, drv: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class BuildFinished(_message.Message):
    __slots__ = ("drv", "build_id", "ok", "reason", "outputs", "log", "duration_seconds")
    class OutputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DRV_FIELD_NUMBER: _ClassVar[int]
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    drv: str
    build_id: int
    ok: bool
    reason: str
    outputs: _containers.ScalarMap[str, str]
    log: str
    duration_seconds: float
    def __init__(self, drv: _Optional[str] = ..., build_id: _Optional[int] = ..., ok: _Optional[bool] = ..., reason: _Optional[str] = ..., outputs: _Optional[_Mapping[str, str]] = ..., log: _Optional[str] = ..., duration_seconds: _Optional[float] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("drv", "outputs", "log", "cached", "check")
    class OutputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DRV_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    drv: str
    outputs: _containers.ScalarMap[str, str]
    log: str
    cached: bool
    check: CheckResult
    def __init__(self, drv: _Optional[str] = ..., outputs: _Optional[_Mapping[str, str]] = ..., log: _Optional[str] = ..., cached: _Optional[bool] = ..., check: _Optional[_Union[CheckResult, _Mapping]] = ...) -> None: ...

class DerivationRef(_message.Message):
    __slots__ = ("drv", "documents")
    DRV_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    drv: str
    documents: _containers.RepeatedCompositeFieldContainer[DerivationDocument]
    def __init__(self, drv: _Optional[str] = ..., documents: _Optional[_Iterable[_Union[DerivationDocument, _Mapping]]] = ...) -> None: ...

class Realisation(_message.Message):
    __slots__ = ("drv", "outputs", "log", "build_id", "started", "duration_seconds")
    class OutputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DRV_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    drv: str
    outputs: _containers.ScalarMap[str, str]
    log: str
    build_id: int
    started: float
    duration_seconds: float
    def __init__(self, drv: _Optional[str] = ..., outputs: _Optional[_Mapping[str, str]] = ..., log: _Optional[str] = ..., build_id: _Optional[int] = ..., started: _Optional[float] = ..., duration_seconds: _Optional[float] = ...) -> None: ...

class CheckResult(_message.Message):
    __slots__ = ("drv", "reproducible", "expected", "actual", "differing", "diffoscope", "time", "log", "build_id")
    class ExpectedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ActualEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DRV_FIELD_NUMBER: _ClassVar[int]
    REPRODUCIBLE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_FIELD_NUMBER: _ClassVar[int]
    DIFFERING_FIELD_NUMBER: _ClassVar[int]
    DIFFOSCOPE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    drv: str
    reproducible: bool
    expected: _containers.ScalarMap[str, str]
    actual: _containers.ScalarMap[str, str]
    differing: _containers.RepeatedScalarFieldContainer[str]
    diffoscope: str
    time: float
    log: str
    build_id: int
    def __init__(self, drv: _Optional[str] = ..., reproducible: _Optional[bool] = ..., expected: _Optional[_Mapping[str, str]] = ..., actual: _Optional[_Mapping[str, str]] = ..., differing: _Optional[_Iterable[str]] = ..., diffoscope: _Optional[str] = ..., time: _Optional[float] = ..., log: _Optional[str] = ..., build_id: _Optional[int] = ...) -> None: ...

class DerivationInfo(_message.Message):
    __slots__ = ("drv", "json", "realisation", "checks")
    DRV_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    REALISATION_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    drv: str
    json: bytes
    realisation: Realisation
    checks: _containers.RepeatedCompositeFieldContainer[CheckResult]
    def __init__(self, drv: _Optional[str] = ..., json: _Optional[bytes] = ..., realisation: _Optional[_Union[Realisation, _Mapping]] = ..., checks: _Optional[_Iterable[_Union[CheckResult, _Mapping]]] = ...) -> None: ...

class BuildRecord(_message.Message):
    __slots__ = ("id", "drv", "name", "started", "duration_seconds", "status", "reason", "outputs", "log", "check")
    class OutputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    DRV_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    id: int
    drv: str
    name: str
    started: float
    duration_seconds: float
    status: str
    reason: str
    outputs: _containers.ScalarMap[str, str]
    log: str
    check: bool
    def __init__(self, id: _Optional[int] = ..., drv: _Optional[str] = ..., name: _Optional[str] = ..., started: _Optional[float] = ..., duration_seconds: _Optional[float] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., outputs: _Optional[_Mapping[str, str]] = ..., log: _Optional[str] = ..., check: _Optional[bool] = ...) -> None: ...

class ListBuildsRequest(_message.Message):
    __slots__ = ("drv", "limit")
    DRV_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    drv: str
    limit: int
    def __init__(self, drv: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListBuildsResponse(_message.Message):
    __slots__ = ("builds",)
    BUILDS_FIELD_NUMBER: _ClassVar[int]
    builds: _containers.RepeatedCompositeFieldContainer[BuildRecord]
    def __init__(self, builds: _Optional[_Iterable[_Union[BuildRecord, _Mapping]]] = ...) -> None: ...

class ImageBuildRequest(_message.Message):
    __slots__ = ("config_file", "config_text", "lock_file", "lock_text", "app_tree", "limits", "check")
    CONFIG_FILE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_TEXT_FIELD_NUMBER: _ClassVar[int]
    LOCK_FILE_FIELD_NUMBER: _ClassVar[int]
    LOCK_TEXT_FIELD_NUMBER: _ClassVar[int]
    APP_TREE_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    config_file: str
    config_text: bytes
    lock_file: str
    lock_text: bytes
    app_tree: str
    limits: BuildLimits
    check: bool
    def __init__(self, config_file: _Optional[str] = ..., config_text: _Optional[bytes] = ..., lock_file: _Optional[str] = ..., lock_text: _Optional[bytes] = ..., app_tree: _Optional[str] = ..., limits: _Optional[_Union[BuildLimits, _Mapping]] = ..., check: _Optional[bool] = ...) -> None: ...

class ImageBuilt(_message.Message):
    __slots__ = ("manifest_digest", "archive", "archive_size", "hardening", "summary", "output", "root", "source_date_epoch", "cached", "checks")
    MANIFEST_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_SIZE_FIELD_NUMBER: _ClassVar[int]
    HARDENING_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_DATE_EPOCH_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    manifest_digest: str
    archive: str
    archive_size: int
    hardening: str
    summary: str
    output: str
    root: str
    source_date_epoch: int
    cached: bool
    checks: _containers.RepeatedCompositeFieldContainer[CheckResult]
    def __init__(self, manifest_digest: _Optional[str] = ..., archive: _Optional[str] = ..., archive_size: _Optional[int] = ..., hardening: _Optional[str] = ..., summary: _Optional[str] = ..., output: _Optional[str] = ..., root: _Optional[str] = ..., source_date_epoch: _Optional[int] = ..., cached: _Optional[bool] = ..., checks: _Optional[_Iterable[_Union[CheckResult, _Mapping]]] = ...) -> None: ...

class ImageBuildEvent(_message.Message):
    __slots__ = ("build", "built")
    BUILD_FIELD_NUMBER: _ClassVar[int]
    BUILT_FIELD_NUMBER: _ClassVar[int]
    build: BuildEvent
    built: ImageBuilt
    def __init__(self, build: _Optional[_Union[BuildEvent, _Mapping]] = ..., built: _Optional[_Union[ImageBuilt, _Mapping]] = ...) -> None: ...
