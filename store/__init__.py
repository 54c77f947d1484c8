"""seal's content-addressed store: blobs and trees named by SHA-256, LMDB metadata.

>>> from seal.store import Store
>>> with Store.open("/tmp/example-store") as store:          # doctest: +SKIP
...     tree = store.put_tree("some/dir")
...     store.checkout(tree, "copy")

This package knows nothing of gRPC; it speaks its own frozen value types.
"""

from .db import Kind
from .digest import Digest
from .errors import (
    CorruptObject,
    DigestMismatch,
    IncompleteTree,
    InvalidDigest,
    InvalidName,
    NotATree,
    ObjectNotFound,
    StoreError,
    StoreLocked,
    StoreMissing,
    StoreVersionError,
    UnsupportedFile,
)
from .gc import GcReport
from .store import Entry, Lease, ObjectInfo, Store, default_root
from .tree import Directory, DirectoryNode, FileNode, MalformedTree, SymlinkNode
from .verify import VerifyReport

__all__ = [
    "CorruptObject",
    "DigestMismatch",
    "IncompleteTree",
    "Lease",
    "Digest",
    "Directory",
    "DirectoryNode",
    "Entry",
    "FileNode",
    "GcReport",
    "InvalidDigest",
    "InvalidName",
    "Kind",
    "MalformedTree",
    "NotATree",
    "ObjectInfo",
    "ObjectNotFound",
    "Store",
    "StoreError",
    "StoreLocked",
    "StoreMissing",
    "StoreVersionError",
    "SymlinkNode",
    "UnsupportedFile",
    "VerifyReport",
    "default_root",
]
