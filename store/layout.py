"""Where things live under a store root, and the filesystem primitives the store relies on.

::

    VERSION                  format version; a newer one is refused
    objects/sha256/ab/<hex>  blob bytes, read-only (0444)
    objects/sha256/ab/<hex>.x  the same bytes as a separate 0555 inode, for executable uses
                             (every object file has the mtime OBJECT_MTIME)
    db/                      LMDB environment
    tmp/                     staging on the same filesystem (atomic rename)
    trees/<hex>/             materialized trees: directories of hardlinks to objects
                             (every directory has the mtime OBJECT_MTIME too)
    keys/                    signing keys
    cache/<name>/            data derived from the network that the daemon may drop at any
                             time (e.g. wheels' METADATA by the wheel's SHA-256)
    lock                     the writer lock (flock), holding the writer's pid
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from .digest import Digest

FORMAT_VERSION = 1
EXEC_SUFFIX = ".x"
PLAIN_MODE = 0o444
EXEC_MODE = 0o555
# 1980-01-01T00:00:00Z, the SOURCE_DATE_EPOCH floor: the mtime of every object file and
# every directory of a materialized tree, so that builds reading their inputs see the same
# timestamps whichever store the inputs come from (Nix uses 1).
OBJECT_MTIME = 315532800
_MTIME_NS = (OBJECT_MTIME * 1_000_000_000,) * 2


def set_object_mtime(fd_or_path: int | bytes | str, *, dir_fd: int | None = None) -> None:
    """Give an object file (or a materialized directory) the fixed mtime (and atime)."""
    os.utime(fd_or_path, ns=_MTIME_NS, dir_fd=dir_fd)


def default_root() -> Path:
    """``$SEAL_STORE``, else ``$XDG_DATA_HOME/seal``, else ``~/.local/share/seal``."""
    if env := os.environ.get("SEAL_STORE"):
        return Path(env)
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(data_home) / "seal"


class Layout:
    """Paths of one store; creates nothing by itself except in ``create``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).absolute()
        self.version_file = self.root / "VERSION"
        self.objects = self.root / "objects" / "sha256"
        self.db = self.root / "db"
        self.tmp = self.root / "tmp"
        self.trees = self.root / "trees"
        self.keys = self.root / "keys"
        self.cache = self.root / "cache"
        self.lock = self.root / "lock"
        self._objects_str = str(self.objects)

    def object_path(self, digest: Digest, executable: bool = False) -> str:
        h = digest.raw.hex()
        suffix = EXEC_SUFFIX if executable else ""
        return f"{self._objects_str}/{h[:2]}/{h}{suffix}"

    def tree_path(self, digest: Digest) -> Path:
        return self.trees / digest.hex

    def create(self) -> None:
        """Make every directory of the layout (idempotent)."""
        for d in (self.db, self.tmp, self.trees):
            d.mkdir(parents=True, exist_ok=True)
        self.keys.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.objects.mkdir(parents=True, exist_ok=True)
        for i in range(256):
            (self.objects / f"{i:02x}").mkdir(exist_ok=True)


_libc = ctypes.CDLL(None, use_errno=True)
_syncfs = getattr(_libc, "syncfs", None)


def syncfs(path: str | os.PathLike) -> None:
    """Flush the whole filesystem holding ``path``: one sync per batch, not one per file."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _syncfs is None:
            os.sync()
        elif _syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


SOCKET_NAME = "daemon.sock"
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes; keep a margin


def socket_path(root: str | os.PathLike) -> str:
    """The daemon's Unix socket for the store at ``root`` (both sides use this).

    ``<store>/daemon.sock`` when that fits in a socket address; otherwise a short
    path under ``/tmp/seal-<uid>/`` named by a hash of the store path, which the
    daemon links to from ``<store>/daemon.sock``.
    """
    root = Path(root).absolute()
    path = str(root / SOCKET_NAME)
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        return path
    key = Digest.of_bytes(os.fsencode(str(root))).hex[:16]
    return f"/tmp/seal-{os.getuid()}/{key}.sock"
