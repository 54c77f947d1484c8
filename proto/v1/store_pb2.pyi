from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Compression(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPRESSION_NONE: _ClassVar[Compression]
    COMPRESSION_ZSTD: _ClassVar[Compression]

class ObjectKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OBJECT_KIND_UNSPECIFIED: _ClassVar[ObjectKind]
    OBJECT_KIND_BLOB: _ClassVar[ObjectKind]
    OBJECT_KIND_TREE: _ClassVar[ObjectKind]
COMPRESSION_NONE: Compression
COMPRESSION_ZSTD: Compression
OBJECT_KIND_UNSPECIFIED: ObjectKind
OBJECT_KIND_BLOB: ObjectKind
OBJECT_KIND_TREE: ObjectKind

class Digest(_message.Message):
    __slots__ = ("hash", "size_bytes")
    HASH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    hash: str
    size_bytes: int
    def __init__(self, hash: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class FindMissingRequest(_message.Message):
    __slots__ = ("digests",)
    DIGESTS_FIELD_NUMBER: _ClassVar[int]
    digests: _containers.RepeatedCompositeFieldContainer[Digest]
    def __init__(self, digests: _Optional[_Iterable[_Union[Digest, _Mapping]]] = ...) -> None: ...

class FindMissingResponse(_message.Message):
    __slots__ = ("missing",)
    MISSING_FIELD_NUMBER: _ClassVar[int]
    missing: _containers.RepeatedCompositeFieldContainer[Digest]
    def __init__(self, missing: _Optional[_Iterable[_Union[Digest, _Mapping]]] = ...) -> None: ...

class PutRequest(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: PutHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[PutHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class PutHeader(_message.Message):
    __slots__ = ("digest", "compression", "lease_id", "root_name")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    ROOT_NAME_FIELD_NUMBER: _ClassVar[int]
    digest: Digest
    compression: Compression
    lease_id: str
    root_name: str
    def __init__(self, digest: _Optional[_Union[Digest, _Mapping]] = ..., compression: _Optional[_Union[Compression, str]] = ..., lease_id: _Optional[str] = ..., root_name: _Optional[str] = ...) -> None: ...

class BatchPutRequest(_message.Message):
    __slots__ = ("blobs", "lease_id")
    class Blob(_message.Message):
        __slots__ = ("digest", "data")
        DIGEST_FIELD_NUMBER: _ClassVar[int]
        DATA_FIELD_NUMBER: _ClassVar[int]
        digest: Digest
        data: bytes
        def __init__(self, digest: _Optional[_Union[Digest, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    blobs: _containers.RepeatedCompositeFieldContainer[BatchPutRequest.Blob]
    lease_id: str
    def __init__(self, blobs: _Optional[_Iterable[_Union[BatchPutRequest.Blob, _Mapping]]] = ..., lease_id: _Optional[str] = ...) -> None: ...

class BatchPutResponse(_message.Message):
    __slots__ = ("created",)
    CREATED_FIELD_NUMBER: _ClassVar[int]
    created: int
    def __init__(self, created: _Optional[int] = ...) -> None: ...

class AddHandoffRequest(_message.Message):
    __slots__ = ("token", "root_name", "display_path")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ROOT_NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_PATH_FIELD_NUMBER: _ClassVar[int]
    token: str
    root_name: str
    display_path: str
    def __init__(self, token: _Optional[str] = ..., root_name: _Optional[str] = ..., display_path: _Optional[str] = ...) -> None: ...

class AddHandoffResponse(_message.Message):
    __slots__ = ("digest", "kind")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    digest: Digest
    kind: ObjectKind
    def __init__(self, digest: _Optional[_Union[Digest, _Mapping]] = ..., kind: _Optional[_Union[ObjectKind, str]] = ...) -> None: ...

class PutResponse(_message.Message):
    __slots__ = ("digest", "created")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    digest: Digest
    created: bool
    def __init__(self, digest: _Optional[_Union[Digest, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("digest", "compression", "offset", "limit")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    digest: Digest
    compression: Compression
    offset: int
    limit: int
    def __init__(self, digest: _Optional[_Union[Digest, _Mapping]] = ..., compression: _Optional[_Union[Compression, str]] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class StatRequest(_message.Message):
    __slots__ = ("digest",)
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    digest: Digest
    def __init__(self, digest: _Optional[_Union[Digest, _Mapping]] = ...) -> None: ...

class StatResponse(_message.Message):
    __slots__ = ("digest", "kind", "executable_copy", "roots")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    EXECUTABLE_COPY_FIELD_NUMBER: _ClassVar[int]
    ROOTS_FIELD_NUMBER: _ClassVar[int]
    digest: Digest
    kind: ObjectKind
    executable_copy: bool
    roots: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, digest: _Optional[_Union[Digest, _Mapping]] = ..., kind: _Optional[_Union[ObjectKind, str]] = ..., executable_copy: _Optional[bool] = ..., roots: _Optional[_Iterable[str]] = ...) -> None: ...

class PutTreeRequest(_message.Message):
    __slots__ = ("header", "directories")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DIRECTORIES_FIELD_NUMBER: _ClassVar[int]
    header: PutTreeHeader
    directories: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, header: _Optional[_Union[PutTreeHeader, _Mapping]] = ..., directories: _Optional[_Iterable[bytes]] = ...) -> None: ...

class PutTreeHeader(_message.Message):
    __slots__ = ("root_digest",)
    ROOT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    root_digest: Digest
    def __init__(self, root_digest: _Optional[_Union[Digest, _Mapping]] = ...) -> None: ...

class PutTreeResponse(_message.Message):
    __slots__ = ("lease", "missing")
    LEASE_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    lease: TreeLease
    missing: _containers.RepeatedCompositeFieldContainer[Digest]
    def __init__(self, lease: _Optional[_Union[TreeLease, _Mapping]] = ..., missing: _Optional[_Iterable[_Union[Digest, _Mapping]]] = ...) -> None: ...

class TreeLease(_message.Message):
    __slots__ = ("lease_id", "ttl_seconds", "blobs", "missing_blobs", "missing_bytes")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    MISSING_BLOBS_FIELD_NUMBER: _ClassVar[int]
    MISSING_BYTES_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    ttl_seconds: int
    blobs: int
    missing_blobs: int
    missing_bytes: int
    def __init__(self, lease_id: _Optional[str] = ..., ttl_seconds: _Optional[int] = ..., blobs: _Optional[int] = ..., missing_blobs: _Optional[int] = ..., missing_bytes: _Optional[int] = ...) -> None: ...

class CommitTreeRequest(_message.Message):
    __slots__ = ("lease_id", "root_name")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    ROOT_NAME_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    root_name: str
    def __init__(self, lease_id: _Optional[str] = ..., root_name: _Optional[str] = ...) -> None: ...

class CommitTreeResponse(_message.Message):
    __slots__ = ("root_digest",)
    ROOT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    root_digest: Digest
    def __init__(self, root_digest: _Optional[_Union[Digest, _Mapping]] = ...) -> None: ...

class CancelTreeRequest(_message.Message):
    __slots__ = ("lease_id",)
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    def __init__(self, lease_id: _Optional[str] = ...) -> None: ...

class CancelTreeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckoutRequest(_message.Message):
    __slots__ = ("digest", "compression", "entries_only")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_ONLY_FIELD_NUMBER: _ClassVar[int]
    digest: Digest
    compression: Compression
    entries_only: bool
    def __init__(self, digest: _Optional[_Union[Digest, _Mapping]] = ..., compression: _Optional[_Union[Compression, str]] = ..., entries_only: _Optional[bool] = ...) -> None: ...

class CheckoutResponse(_message.Message):
    __slots__ = ("summary", "items")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    summary: CheckoutSummary
    items: _containers.RepeatedCompositeFieldContainer[CheckoutItem]
    def __init__(self, summary: _Optional[_Union[CheckoutSummary, _Mapping]] = ..., items: _Optional[_Iterable[_Union[CheckoutItem, _Mapping]]] = ...) -> None: ...

class CheckoutSummary(_message.Message):
    __slots__ = ("entries", "content_bytes")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    CONTENT_BYTES_FIELD_NUMBER: _ClassVar[int]
    entries: int
    content_bytes: int
    def __init__(self, entries: _Optional[int] = ..., content_bytes: _Optional[int] = ...) -> None: ...

class CheckoutItem(_message.Message):
    __slots__ = ("directory", "file", "symlink", "data")
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    SYMLINK_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    directory: CheckoutDirectory
    file: CheckoutFile
    symlink: CheckoutSymlink
    data: bytes
    def __init__(self, directory: _Optional[_Union[CheckoutDirectory, _Mapping]] = ..., file: _Optional[_Union[CheckoutFile, _Mapping]] = ..., symlink: _Optional[_Union[CheckoutSymlink, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class CheckoutDirectory(_message.Message):
    __slots__ = ("path", "digest")
    PATH_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    path: bytes
    digest: Digest
    def __init__(self, path: _Optional[bytes] = ..., digest: _Optional[_Union[Digest, _Mapping]] = ...) -> None: ...

class CheckoutFile(_message.Message):
    __slots__ = ("path", "digest", "is_executable")
    PATH_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    IS_EXECUTABLE_FIELD_NUMBER: _ClassVar[int]
    path: bytes
    digest: Digest
    is_executable: bool
    def __init__(self, path: _Optional[bytes] = ..., digest: _Optional[_Union[Digest, _Mapping]] = ..., is_executable: _Optional[bool] = ...) -> None: ...

class CheckoutSymlink(_message.Message):
    __slots__ = ("path", "target")
    PATH_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    path: bytes
    target: bytes
    def __init__(self, path: _Optional[bytes] = ..., target: _Optional[bytes] = ...) -> None: ...

class Root(_message.Message):
    __slots__ = ("name", "digest")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    name: str
    digest: Digest
    def __init__(self, name: _Optional[str] = ..., digest: _Optional[_Union[Digest, _Mapping]] = ...) -> None: ...

class ListRootsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRootsResponse(_message.Message):
    __slots__ = ("roots",)
    ROOTS_FIELD_NUMBER: _ClassVar[int]
    roots: _containers.RepeatedCompositeFieldContainer[Root]
    def __init__(self, roots: _Optional[_Iterable[_Union[Root, _Mapping]]] = ...) -> None: ...

class AddRootRequest(_message.Message):
    __slots__ = ("root",)
    ROOT_FIELD_NUMBER: _ClassVar[int]
    root: Root
    def __init__(self, root: _Optional[_Union[Root, _Mapping]] = ...) -> None: ...

class AddRootResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RemoveRootRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RemoveRootResponse(_message.Message):
    __slots__ = ("digest",)
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    digest: Digest
    def __init__(self, digest: _Optional[_Union[Digest, _Mapping]] = ...) -> None: ...

class GCRequest(_message.Message):
    __slots__ = ("dry_run",)
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    dry_run: bool
    def __init__(self, dry_run: _Optional[bool] = ...) -> None: ...

class GCResponse(_message.Message):
    __slots__ = ("removed", "report")
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    removed: GCRemoved
    report: GCReport
    def __init__(self, removed: _Optional[_Union[GCRemoved, _Mapping]] = ..., report: _Optional[_Union[GCReport, _Mapping]] = ...) -> None: ...

class GCRemoved(_message.Message):
    __slots__ = ("objects", "orphans", "trees")
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    ORPHANS_FIELD_NUMBER: _ClassVar[int]
    TREES_FIELD_NUMBER: _ClassVar[int]
    objects: _containers.RepeatedCompositeFieldContainer[Digest]
    orphans: _containers.RepeatedScalarFieldContainer[str]
    trees: _containers.RepeatedCompositeFieldContainer[Digest]
    def __init__(self, objects: _Optional[_Iterable[_Union[Digest, _Mapping]]] = ..., orphans: _Optional[_Iterable[str]] = ..., trees: _Optional[_Iterable[_Union[Digest, _Mapping]]] = ...) -> None: ...

class GCReport(_message.Message):
    __slots__ = ("dry_run", "live", "objects", "orphans", "trees", "bytes_freed")
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    ORPHANS_FIELD_NUMBER: _ClassVar[int]
    TREES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FREED_FIELD_NUMBER: _ClassVar[int]
    dry_run: bool
    live: int
    objects: int
    orphans: int
    trees: int
    bytes_freed: int
    def __init__(self, dry_run: _Optional[bool] = ..., live: _Optional[int] = ..., objects: _Optional[int] = ..., orphans: _Optional[int] = ..., trees: _Optional[int] = ..., bytes_freed: _Optional[int] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("progress", "problem", "report")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    progress: VerifyProgress
    problem: VerifyProblem
    report: VerifyReport
    def __init__(self, progress: _Optional[_Union[VerifyProgress, _Mapping]] = ..., problem: _Optional[_Union[VerifyProblem, _Mapping]] = ..., report: _Optional[_Union[VerifyReport, _Mapping]] = ...) -> None: ...

class VerifyProgress(_message.Message):
    __slots__ = ("checked", "total_objects", "bytes_checked", "total_bytes")
    CHECKED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    BYTES_CHECKED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    checked: int
    total_objects: int
    bytes_checked: int
    total_bytes: int
    def __init__(self, checked: _Optional[int] = ..., total_objects: _Optional[int] = ..., bytes_checked: _Optional[int] = ..., total_bytes: _Optional[int] = ...) -> None: ...

class VerifyProblem(_message.Message):
    __slots__ = ("kind", "digest", "tree", "path")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[VerifyProblem.Kind]
        KIND_MISSING: _ClassVar[VerifyProblem.Kind]
        KIND_CORRUPT: _ClassVar[VerifyProblem.Kind]
        KIND_DANGLING: _ClassVar[VerifyProblem.Kind]
        KIND_ORPHANED: _ClassVar[VerifyProblem.Kind]
    KIND_UNSPECIFIED: VerifyProblem.Kind
    KIND_MISSING: VerifyProblem.Kind
    KIND_CORRUPT: VerifyProblem.Kind
    KIND_DANGLING: VerifyProblem.Kind
    KIND_ORPHANED: VerifyProblem.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    TREE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    kind: VerifyProblem.Kind
    digest: Digest
    tree: Digest
    path: str
    def __init__(self, kind: _Optional[_Union[VerifyProblem.Kind, str]] = ..., digest: _Optional[_Union[Digest, _Mapping]] = ..., tree: _Optional[_Union[Digest, _Mapping]] = ..., path: _Optional[str] = ...) -> None: ...

class VerifyReport(_message.Message):
    __slots__ = ("ok", "checked", "bytes_checked", "missing", "corrupt", "dangling", "orphaned")
    OK_FIELD_NUMBER: _ClassVar[int]
    CHECKED_FIELD_NUMBER: _ClassVar[int]
    BYTES_CHECKED_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    CORRUPT_FIELD_NUMBER: _ClassVar[int]
    DANGLING_FIELD_NUMBER: _ClassVar[int]
    ORPHANED_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    checked: int
    bytes_checked: int
    missing: int
    corrupt: int
    dangling: int
    orphaned: int
    def __init__(self, ok: _Optional[bool] = ..., checked: _Optional[int] = ..., bytes_checked: _Optional[int] = ..., missing: _Optional[int] = ..., corrupt: _Optional[int] = ..., dangling: _Optional[int] = ..., orphaned: _Optional[int] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("pid", "store_path", "socket", "uptime_seconds", "version", "store_format", "handoff_address")
    PID_FIELD_NUMBER: _ClassVar[int]
    STORE_PATH_FIELD_NUMBER: _ClassVar[int]
    SOCKET_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STORE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    HANDOFF_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    pid: int
    store_path: str
    socket: str
    uptime_seconds: float
    version: str
    store_format: int
    handoff_address: str
    def __init__(self, pid: _Optional[int] = ..., store_path: _Optional[str] = ..., socket: _Optional[str] = ..., uptime_seconds: _Optional[float] = ..., version: _Optional[str] = ..., store_format: _Optional[int] = ..., handoff_address: _Optional[str] = ...) -> None: ...

class ShutdownRequest(_message.Message):
    __slots__ = ("grace_seconds",)
    GRACE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    grace_seconds: float
    def __init__(self, grace_seconds: _Optional[float] = ...) -> None: ...

class ShutdownResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
