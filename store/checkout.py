"""Materialize a tree as real directories whose files are hardlinks to store objects.

Linking costs one syscall per entry whatever the file sizes (as Nix, pnpm and
Bazel's sandbox do).  Executable files link to the blob's separate 0555 inode,
so no shared inode is ever chmod-ed.  Where linking is impossible (another
filesystem, the inode's link limit) the file is copied instead.

Every directory written gets the fixed mtime OBJECT_MTIME (1980-01-01), as
every object file has, so a build that reads the tree sees the same
timestamps whatever store it came from.  A directory's mtime changes when an
entry is added to it, so it is set once all its entries are in (filling its
subdirectories afterwards does not change it).

The per-entry work is kept to the system call: each directory is written
through a descriptor (``linkat``/``symlinkat``/``mkdirat`` relative to it),
objects are named relative to their fan-out directory, and tree objects are
read straight from their files and parsed into plain tuples.
"""

from __future__ import annotations

import errno
import os
import shutil
from typing import TYPE_CHECKING

from .digest import Digest
from .errors import StoreError
from .layout import EXEC_SUFFIX, set_object_mtime
from .tree import parse_listing

if TYPE_CHECKING:
    from .store import Store

_COPY_ERRNOS = {errno.EXDEV, errno.EMLINK, errno.EPERM}
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
_READ = 1 << 16
_EXEC_SUFFIX = EXEC_SUFFIX.encode()


class _Fans(dict):
    """The first two hex digits (bytes) -> a descriptor of that fan-out directory,
    opened on first use (a plain dict lookup afterwards)."""

    def __init__(self, root: bytes):
        super().__init__()
        self.root = root

    def __missing__(self, fan: bytes) -> int:
        fd = self[fan] = os.open(self.root + b"/" + fan, _DIR_FLAGS)
        return fd


class _Objects:
    """Object files named relative to their fan-out directories."""

    def __init__(self, store: Store):
        self.fans = _Fans(os.fsencode(str(store.layout.objects)))

    def read(self, hexname: bytes) -> bytes:
        try:
            fd = os.open(hexname, os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.fans[hexname[:2]])
        except FileNotFoundError:
            raise _missing(hexname) from None
        try:
            data = os.read(fd, _READ)
            if len(data) < _READ:
                return data
            parts = [data]
            while chunk := os.read(fd, _READ):
                parts.append(chunk)
            return b"".join(parts)
        finally:
            os.close(fd)

    def close(self) -> None:
        for fd in self.fans.values():
            os.close(fd)
        self.fans.clear()


def write_tree(store: Store, tree: Digest, dest: bytes) -> int:
    """Create the tree's contents under the existing empty directory ``dest``.

    Returns the number of entries written.
    """
    objects = _Objects(store)
    fans = objects.fans
    stack = [(tree.hex.encode(), dest)]
    count = 0
    can_link = True
    link, symlink, mkdir = os.link, os.symlink, os.mkdir
    # Directories are 0755 whatever the writer's umask: a build must not see the daemon's.
    fix_mode = store._umask != 0o022
    try:
        while stack:
            hexname, path = stack.pop()
            files, dirs, links = parse_listing(objects.read(hexname))
            dfd = os.open(path, _DIR_FLAGS | os.O_NOFOLLOW)
            try:
                for name, digest, _size, executable in files:
                    fan = fans[digest[:2]]
                    source = digest + _EXEC_SUFFIX if executable else digest
                    if can_link:
                        try:
                            link(source, name, src_dir_fd=fan, dst_dir_fd=dfd)
                            continue
                        except FileNotFoundError:
                            raise _missing(digest) from None
                        except OSError as exc:
                            if exc.errno not in _COPY_ERRNOS:
                                raise
                            can_link = exc.errno == errno.EMLINK
                    _copy(source, fan, name, dfd, executable)
                for name, target in links:
                    symlink(target, name, dir_fd=dfd)
                for name, digest, _size in dirs:
                    mkdir(name, dir_fd=dfd)
                    stack.append((digest, path + b"/" + name))
                if fix_mode:
                    os.fchmod(dfd, 0o755)
                set_object_mtime(dfd)  # every entry is in: nothing changes it any more
            finally:
                os.close(dfd)
            count += len(files) + len(links) + len(dirs)
    finally:
        objects.close()
    return count


def _copy(source: bytes, fan: int, name: bytes, dfd: int, executable: bool) -> None:
    """Copy an object into the tree (where it cannot be linked): same mode, same mtime."""
    try:
        sfd = os.open(source, os.O_RDONLY | os.O_CLOEXEC, dir_fd=fan)
    except FileNotFoundError:
        raise _missing(source.removesuffix(_EXEC_SUFFIX)) from None
    try:
        out = os.open(name, _CREATE_FLAGS, 0o555 if executable else 0o444, dir_fd=dfd)
        try:
            offset, size = 0, os.fstat(sfd).st_size
            while offset < size:  # sendfile: copy_file_range refuses some cross-device pairs
                n = os.sendfile(out, sfd, offset, size - offset)
                if n == 0:
                    break
                offset += n
            os.fchmod(out, 0o555 if executable else 0o444)
            set_object_mtime(out)
        finally:
            os.close(out)
    finally:
        os.close(sfd)


def _missing(hexname: bytes) -> StoreError:
    return StoreError(
        f"sha256:{hexname.decode()} is recorded but its file is missing from the store",
        hint="run 'seal store verify'",
    )


def checkout(store: Store, tree: Digest, dest: str | os.PathLike) -> int:
    """Write ``tree`` at ``dest`` (which must not exist or be an empty directory).

    The tree is assembled in a hidden sibling directory and renamed into place,
    so ``dest`` is either complete or untouched.
    """
    store.read_tree(tree)  # fail early: unknown digest or not a tree
    target = os.fsencode(os.path.abspath(dest))
    if os.path.lexists(target) and (
        not os.path.isdir(target) or os.path.islink(target) or os.listdir(target)
    ):
        raise StoreError(
            f"{os.fsdecode(target)} exists and is not an empty directory", hint="choose a new path"
        )
    parent, name = os.path.split(target)
    if not os.path.isdir(parent):
        raise StoreError(f"{os.fsdecode(parent)} is not a directory")
    staging = parent + b"/." + name + b".seal-" + os.urandom(6).hex().encode()
    os.mkdir(staging)
    try:
        count = write_tree(store, tree, staging)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return count
