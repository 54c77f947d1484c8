"""seal's content-addressed store: blobs and trees named by SHA-256, LMDB metadata.

>>> from seal.store import Store
>>> with Store.open("/tmp/example-store") as store:          # doctest: +SKIP
...     tree = store.put_tree("some/dir")
...     store.checkout(tree, "copy")

This package knows nothing of gRPC; it speaks its own frozen value types.
"""

import importlib

# Public names resolve on first use (PEP 562), so importing one small module such as
# seal.store.digest (the client does) does not load LMDB and the whole store.
_WHERE = {
    "CorruptObject": "errors",
    "Digest": "digest",
    "DigestMismatch": "errors",
    "Directory": "tree",
    "DirectoryNode": "tree",
    "Entry": "store",
    "FileNode": "tree",
    "GcReport": "gc",
    "IncompleteTree": "errors",
    "InvalidDigest": "errors",
    "InvalidName": "errors",
    "Kind": "db",
    "Lease": "store",
    "Listing": "listing",
    "ListingIncomplete": "errors",
    "MalformedTree": "tree",
    "NotATree": "errors",
    "ObjectInfo": "store",
    "ObjectNotFound": "errors",
    "Store": "store",
    "StoreError": "errors",
    "StoreLocked": "errors",
    "StoreMissing": "errors",
    "StoreVersionError": "errors",
    "SymlinkNode": "tree",
    "UnsupportedFile": "errors",
    "VerifyReport": "verify",
    "default_root": "layout",
}


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'seal.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "CorruptObject",
    "DigestMismatch",
    "IncompleteTree",
    "Lease",
    "Listing",
    "ListingIncomplete",
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
