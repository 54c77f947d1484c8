"""Copy a large file into the store while hashing the copy, on two threads.

One thread copies inside the kernel (``copy_file_range``, falling back to
``sendfile``, then to read/write) in COPY_CHUNK steps and publishes how far it
got; the calling thread hashes the *copy* up to that point through a
read-only ``mmap`` (no copy into a Python buffer).  Hashing the copy, not the
source, means the digest is of the very bytes stored even if the source file
changes meanwhile.  The two threads are not in lockstep: each runs whenever
a core is free, so a busy machine costs less than with a chunk-by-chunk
pipeline.  The work itself (one kernel copy plus one hash) cannot shrink: on
one free core the copy's cost adds to the hash's.
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import threading

COPY_CHUNK = 8 << 20
_FALLBACK_ERRNOS = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF}


class _Copier(threading.Thread):
    """Copies ``src`` to ``dst`` (both open descriptors, from their current offsets)."""

    def __init__(self, src: int, dst: int):
        super().__init__(name="seal-copy", daemon=True)
        self.src, self.dst = src, dst
        self.copied = 0
        self.finished = False
        self.error: BaseException | None = None
        self.stopped = False  # set by the hashing side to cut the copy short
        self.cond = threading.Condition()

    def run(self) -> None:
        try:
            step = _copy_file_range
            while not self.stopped:
                try:
                    n = step(self.src, self.dst)
                except OSError as exc:
                    if exc.errno not in _FALLBACK_ERRNOS or step is _read_write:
                        raise
                    step = _sendfile if step is _copy_file_range else _read_write
                    continue
                if not n:
                    break
                with self.cond:
                    self.copied += n
                    self.cond.notify()
        except BaseException as exc:  # handed to the hashing thread
            self.error = exc
        finally:
            with self.cond:
                self.finished = True
                self.cond.notify()

    def wait_past(self, offset: int) -> tuple[int, bool]:
        """Block until more than ``offset`` bytes are copied or the copy ended."""
        with self.cond:
            while self.copied <= offset and not self.finished:
                self.cond.wait()
            return self.copied, self.finished


def copy_and_hash(src: int, dst: int, dst_path: str) -> tuple[bytes, int]:
    """Copy everything readable from ``src`` into the new file ``dst`` (open for
    writing, at ``dst_path``); return the raw SHA-256 of what was written and its size."""
    copier = _Copier(src, dst)
    copier.start()
    try:
        hasher = hashlib.sha256()
        hashed = 0
        rfd = os.open(dst_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            while True:
                limit, finished = copier.wait_past(hashed)
                if copier.error is not None:
                    raise copier.error
                if limit > hashed:
                    _hash_range(hasher, rfd, hashed, limit)
                    hashed = limit
                if finished:
                    break
        finally:
            os.close(rfd)
    finally:
        copier.stopped = True
        copier.join()
    if copier.error is not None:
        raise copier.error
    return hasher.digest(), hashed


def _hash_range(hasher, fd: int, start: int, end: int) -> None:
    """Hash bytes [start, end) of the file ``fd`` through a read-only mapping."""
    base = start - start % mmap.ALLOCATIONGRANULARITY
    try:
        mapping = mmap.mmap(fd, end - base, prot=mmap.PROT_READ, offset=base)
    except (OSError, ValueError):  # a filesystem without mmap: read instead
        _hash_by_reading(hasher, fd, start, end)
        return
    with mapping:
        view = memoryview(mapping)
        try:
            hasher.update(view[start - base :])
        finally:
            view.release()


def _hash_by_reading(hasher, fd: int, start: int, end: int) -> None:
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    while start < end:
        n = os.preadv(fd, [view[: min(len(buf), end - start)]], start)
        if not n:
            raise OSError(errno.EIO, "staged copy shorter than written")
        hasher.update(view[:n])
        start += n


def _copy_file_range(src: int, dst: int) -> int:
    return os.copy_file_range(src, dst, COPY_CHUNK)


def _sendfile(src: int, dst: int) -> int:
    return os.sendfile(dst, src, None, COPY_CHUNK)


def _read_write(src: int, dst: int) -> int:
    data = os.read(src, 1 << 20)
    view = memoryview(data)
    while view:
        view = view[os.write(dst, view) :]
    return len(data)
