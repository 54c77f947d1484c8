"""Write a tree that the daemon streams (``seal store checkout``) into a new directory.

The daemon never writes to a path a client names: it streams entries and file
content, and this module writes them.  The tree is assembled in a hidden
sibling of the destination and renamed into place, so the destination is
either complete or untouched.  Every path is checked to stay inside the
destination, and every file's content is re-hashed against its digest.
Files are read-only (0444, or 0555 for executables), as the store's own
checkouts are.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable

from seal.store.digest import Digest
from seal.store.tree import check_name

from . import exitcodes
from .errors import ClientError, corrupt_download

# Items of the stream, in order (what ``rpc`` makes of the wire's CheckoutItem):
#   ("dir", path)  ("symlink", path, target)  ("file", path, digest, size, executable)
#   ("data", bytes)  -- content of the last file, until its size is reached
Item = tuple


def prepare(dest: str | os.PathLike) -> tuple[bytes, bytes]:
    """Check ``dest`` (absent or an empty directory); return (target, staging) paths."""
    target = os.fsencode(os.path.abspath(dest))
    if os.path.lexists(target) and (
        not os.path.isdir(target) or os.path.islink(target) or os.listdir(target)
    ):
        raise ClientError(
            f"{os.fsdecode(target)} exists and is not an empty directory",
            hint="choose a new path",
            reason="destination-exists",
            exit_code=exitcodes.BAD_INPUT,
        )
    parent, name = os.path.split(target)
    if not os.path.isdir(parent):
        raise ClientError(
            f"{os.fsdecode(parent)} is not a directory",
            reason="destination-exists",
            exit_code=exitcodes.BAD_INPUT,
        )
    staging = parent + b"/." + name + b".seal-" + os.urandom(6).hex().encode()
    return target, staging


def write(items: Iterable[Item], dest: str | os.PathLike) -> int:
    """Write the streamed tree at ``dest``; return the number of entries written."""
    target, staging = prepare(dest)
    os.mkdir(staging)
    try:
        count = _write_items(items, staging)
        if os.path.isdir(target) and not os.path.islink(target):
            os.rmdir(target)  # an empty directory: checked in prepare
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return count


def _write_items(items: Iterable[Item], base: bytes) -> int:
    count = 0
    fd = -1
    remaining = 0
    hasher = None
    current: tuple[bytes, Digest, bool] | None = None
    try:
        for item in items:
            kind = item[0]
            if kind == "data":
                if fd < 0 or len(item[1]) > remaining:
                    raise _protocol("file content beyond the file's size")
                _write_all(fd, item[1])
                hasher.update(item[1])
                remaining -= len(item[1])
                if remaining == 0:
                    fd, done = -1, fd
                    _finish(done, hasher, current)
                continue
            if fd >= 0:
                raise _protocol("a file's content ended early")
            path = base + b"/" + _relative(item[1])
            if kind == "dir":
                os.mkdir(path)
            elif kind == "symlink":
                os.symlink(item[2], path)
            elif kind == "file":
                _, _, digest, size, exe = item
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                current, hasher, remaining = (path, digest, exe), hashlib.sha256(), size
                if size == 0:
                    fd, done = -1, fd
                    _finish(done, hasher, current)
            else:
                raise _protocol(f"unknown item {kind!r}")
            count += 1
        if fd >= 0:
            raise _protocol("the stream ended inside a file")
    finally:
        if fd >= 0:
            os.close(fd)
    return count


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _finish(fd: int, hasher, current: tuple[bytes, Digest, bool]) -> None:
    """Check the file's content against its digest, make it read-only, close it."""
    path, digest, exe = current
    try:
        if hasher.digest() != digest.raw:
            raise corrupt_download(
                f"{os.fsdecode(path)}: the daemon sent content that does not hash to {digest}"
            )
        os.fchmod(fd, 0o555 if exe else 0o444)
    finally:
        os.close(fd)


def _relative(path: bytes) -> bytes:
    """A stream path, checked to be relative and free of '.', '..' and empty parts."""
    try:
        for part in path.split(b"/"):
            check_name(part)
    except ValueError:
        raise _protocol(f"unsafe entry path {path!r}") from None
    return path


def _protocol(what: str) -> ClientError:
    return ClientError(
        f"the daemon sent a malformed checkout stream: {what}",
        hint="report this with the daemon's log",
        reason="protocol-error",
        exit_code=exitcodes.INTERNAL,
    )
