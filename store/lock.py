"""The one-writer lock: an flock on ``<store>/lock`` that records the holder's pid."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import StoreLocked


class WriterLock:
    """Held for the lifetime of a writable store; released by ``release`` or process exit."""

    def __init__(self, path: Path, store_root: Path):
        self._path = path
        self._store_root = store_root
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise StoreLocked(self._store_root, pid) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def holder_pid(path: Path) -> int | None:
    """The pid written in the lock file, if any (it may be stale)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        return _read_pid(fd)
    finally:
        os.close(fd)
