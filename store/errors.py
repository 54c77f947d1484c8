"""The store's exceptions: one base class, subclasses only where callers must tell them apart.

Every error carries a stable kebab-case ``reason`` (tests and ``--json`` use it),
a message a person can act on, and an optional ``hint``.  This module imports
nothing else from the package.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the store raises."""

    reason = "store-error"

    def __init__(self, message: str, *, hint: str | None = None, temporary: bool = False):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.temporary = temporary


class InvalidDigest(StoreError, ValueError):
    """A digest string is not ``sha256:<64 lowercase hex>``."""

    reason = "invalid-digest"


class ObjectNotFound(StoreError, LookupError):
    """No object with this digest is in the store."""

    reason = "object-not-found"

    def __init__(self, digest: object, *, hint: str | None = None):
        super().__init__(f"{digest} is not in the store", hint=hint)
        self.digest = digest


class NotATree(StoreError):
    """An operation that needs a tree was given another kind of object."""

    reason = "not-a-tree"


class UnsupportedFile(StoreError):
    """A path cannot be ingested: FIFO, socket, device, setuid/setgid/sticky, or missing."""

    reason = "unsupported-file"

    def __init__(self, path: object, why: str):
        super().__init__(f"{path}: {why}")
        self.path = path
        self.why = why


class InvalidName(StoreError, ValueError):
    """A tree entry name is empty, '.', '..' or contains '/'."""

    reason = "invalid-name"


class CorruptObject(StoreError):
    """Bytes do not hash to the digest that names them."""

    reason = "corrupt-object"

    def __init__(self, digest: object, actual: object):
        super().__init__(f"{digest}: content hashes to {actual}")
        self.digest = digest
        self.actual = actual


class StoreLocked(StoreError):
    """Another process holds the store's writer lock."""

    reason = "store-locked"

    def __init__(self, path: object, pid: int | None):
        holder = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"store {path} is locked by {holder}",
            hint="stop that process or use its daemon; one writer per store",
            temporary=True,
        )
        self.path = path
        self.pid = pid


class StoreVersionError(StoreError):
    """The store on disk has a format this seal cannot read."""

    reason = "store-version"


class StoreMissing(StoreError):
    """No store exists at the path and the caller asked not to create one."""

    reason = "store-missing"


class DigestMismatch(StoreError):
    """Bytes sent under a claimed digest hash to something else; nothing was stored."""

    reason = "digest-mismatch"

    def __init__(self, expected: object, actual: object, *, what: str = "upload"):
        super().__init__(
            f"{what} claimed {expected} but its bytes hash to {actual}; nothing was stored"
        )
        self.expected = expected
        self.actual = actual


class IncompleteTree(StoreError):
    """A tree listing references objects the store does not have."""

    reason = "tree-incomplete"

    def __init__(self, missing: list):
        shown = ", ".join(str(d) for d in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        super().__init__(
            f"tree is incomplete: {len(missing)} objects missing ({shown}{more})",
            hint="upload the missing blobs, then commit again",
        )
        self.missing = missing


class ListingIncomplete(IncompleteTree):
    """A tree listing references directories that were neither sent nor stored."""

    reason = "listing-incomplete"

    def __init__(self, missing: list):
        super().__init__(missing)
        shown = ", ".join(str(d) for d in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        self.message = (
            f"the tree listing leaves out {len(missing)} directories the store does not "
            f"hold ({shown}{more})"
        )
        self.args = (self.message,)
        self.hint = (
            "send every directory of the tree in the listing (a GC may have freed "
            "a subtree reported present), then PutTree again"
        )
