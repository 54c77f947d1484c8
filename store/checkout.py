"""Materialize a tree as real directories whose files are hardlinks to store objects.

Linking costs one syscall per entry whatever the file sizes (as Nix, pnpm and
Bazel's sandbox do).  Executable files link to the blob's separate 0555 inode,
so no shared inode is ever chmod-ed.  Where linking is impossible (another
filesystem, the inode's link limit) the file is copied instead.
"""

from __future__ import annotations

import errno
import os
import shutil
from typing import TYPE_CHECKING

from .digest import Digest
from .errors import StoreError

if TYPE_CHECKING:
    from .store import Store

_COPY_ERRNOS = {errno.EXDEV, errno.EMLINK, errno.EPERM}


def write_tree(store: Store, tree: Digest, dest: bytes) -> int:
    """Create the tree's contents under the existing empty directory ``dest``.

    Returns the number of entries written.
    """
    layout = store.layout
    stack = [(tree, dest)]
    count = 0
    can_link = True
    while stack:
        digest, path = stack.pop()
        directory = store.read_tree(digest)
        for f in directory.files:
            src = layout.object_path(f.digest, f.executable)
            dst = path + b"/" + f.name
            if can_link:
                try:
                    os.link(src, dst)
                    count += 1
                    continue
                except FileNotFoundError:
                    raise _missing(f.digest) from None
                except OSError as exc:
                    if exc.errno not in _COPY_ERRNOS:
                        raise
                    can_link = exc.errno == errno.EMLINK
            try:
                shutil.copyfile(src, dst)
            except FileNotFoundError:
                raise _missing(f.digest) from None
            os.chmod(dst, 0o555 if f.executable else 0o444)
            count += 1
        for link in directory.symlinks:
            os.symlink(link.target, path + b"/" + link.name)
            count += 1
        for sub in directory.directories:
            child = path + b"/" + sub.name
            os.mkdir(child)
            stack.append((sub.digest, child))
            count += 1
    return count


def _missing(digest: Digest) -> StoreError:
    return StoreError(
        f"{digest} is recorded but its file is missing from the store",
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
