"""A write batch: objects written into objects/, made durable and recorded together.

The order is what makes a crash harmless: (1) write each object under its
final name, (2) one ``syncfs`` for the whole batch, (3) one LMDB transaction
recording every object.  A file is only ever trusted through its record, so
a crash before (3) leaves unrecorded files (orphans) that ``gc`` removes and
``verify`` reports; no record ever points at a missing or partial file.

How (1) is done: an object whose bytes are in memory (small files, trees) is
created in place with O_EXCL, saving a rename per object; when the name is
taken (a leftover of a crash, possibly torn, or a concurrent writer of the
same bytes) it is written to tmp/ and renamed over, atomically.  Streamed
objects are hashed while written to tmp/ and renamed once their digest is
known.  Every digest a batch touches is held as a temp root until the batch
ends, so a concurrent ``gc`` cannot free it.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO

from .db import FLAG_EXEC, Kind, ObjectRecord
from .digest import Digest
from .errors import DigestMismatch, ObjectNotFound
from .layout import EXEC_MODE, PLAIN_MODE, syncfs

if TYPE_CHECKING:
    from .store import Lease, Store

_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
CHUNK = 1 << 20
SMALL_FILE = 1 << 20  # read whole; larger files are streamed through tmp/


class Batch:
    """Collects objects and commits them at once; use via ``Store.batch()``."""

    def __init__(self, store: Store, lease: Lease | None = None):
        self._store = store
        self._lease = lease
        self._layout = store.layout
        self._db = store.db
        self._pending: dict[Digest, ObjectRecord] = {}
        self._refs: dict[Digest, list[Digest]] = {}
        self._held: list[Digest] = []
        self._wrote = False
        self._roots: dict[str, Digest] = {}
        self._mutex = threading.Lock()

    # -- adding objects -----------------------------------------------------------------
    def add_bytes(
        self,
        data: bytes | bytearray | memoryview,
        *,
        kind: Kind = Kind.BLOB,
        executable: bool = False,
        refs: list[Digest] | None = None,
    ) -> Digest:
        digest = Digest(hashlib.sha256(data).digest())
        self._place(digest, len(data), kind, executable, data=data)
        if refs is not None:
            self._refs[digest] = refs
        return digest

    def add_fd(self, fd: int, size: int, *, executable: bool = False) -> tuple[Digest, int]:
        """Add an open regular file of (about) ``size`` bytes; return digest and true size."""
        if size <= SMALL_FILE:
            data = _read_all(fd, size)
            return self.add_bytes(data, executable=executable), len(data)
        return self._add_streamed(lambda buf: os.readv(fd, [buf]), executable)

    def add_stream(
        self,
        stream: BinaryIO,
        *,
        executable: bool = False,
        expected: Digest | None = None,
        expected_size: int | None = None,
    ) -> tuple[Digest, int]:
        """Add everything readable from ``stream``, in constant memory.

        With ``expected``, bytes that hash to another digest (or another size)
        raise DigestMismatch and nothing is stored.
        """
        return self._add_streamed(stream.readinto, executable, expected, expected_size)

    def hold_existing(self, digests) -> None:
        """Hold already-recorded objects this batch builds on until it ends."""
        digests = list(digests)
        self._store._hold(digests)
        with self._mutex:
            self._held.extend(digests)

    def add_exec_copy(self, digest: Digest) -> None:
        """Give a recorded blob its executable inode (for a tree that uses it so)."""
        record = self._db.get(digest) or self._pending.get(digest)
        if record is None:
            raise ObjectNotFound(digest)
        self._place(digest, record.size, record.kind, True)

    def _add_streamed(
        self, readinto, executable: bool, expected=None, expected_size=None
    ) -> tuple[Digest, int]:
        """Hash and write in a pipeline: chunk k is written while chunk k+1 is read
        and hashed (both release the GIL), so the cost nears the slower of the two."""
        tmp = self._store._tmp_name()
        hasher = hashlib.sha256()
        size = 0
        buffers = (bytearray(CHUNK), bytearray(CHUNK))
        fd = os.open(tmp, _CREATE_FLAGS, PLAIN_MODE)
        try:
            with ThreadPoolExecutor(max_workers=1) as writer:
                writing = None
                for k in itertools.count():
                    buf = buffers[k & 1]  # its previous write finished (awaited below)
                    n = readinto(buf)
                    if not n:
                        break
                    chunk = memoryview(buf)[:n]
                    hasher.update(chunk)
                    size += n
                    if writing is not None:
                        writing.result()
                    writing = writer.submit(_write_all, fd, chunk)
                if writing is not None:
                    writing.result()
            self._store._fix_mode(fd, PLAIN_MODE)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)  # a failed read leaves no staging file behind
            raise
        os.close(fd)
        digest = Digest(hasher.digest())
        if (expected is not None and digest != expected) or (
            expected_size is not None and size != expected_size
        ):
            os.unlink(tmp)
            raise DigestMismatch(expected or digest, f"{digest} ({size} bytes)")
        try:
            self._place(digest, size, Kind.BLOB, executable, staged=tmp)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
        return digest, size

    def _place(self, digest, size, kind, executable, *, data=None, staged=None) -> None:
        """Make ``digest`` present in objects/ (plain, and executable if asked) and pending.

        Thread-safe: the bookkeeping is decided under the batch's mutex (the first
        thread to need a file claims writing it), the writes happen outside it.
        Nothing reads the files before ``commit``, which runs after every add.
        """
        write_plain = write_exec = False
        with self._mutex:
            record = self._pending.get(digest)
            if record is None:
                self._store._hold([digest])
                self._held.append(digest)
                record = self._db.get(digest)
                if record is None:
                    record = ObjectRecord(digest, size, kind, 0)
                    self._pending[digest] = record
                    write_plain = True
            flags = record.flags
            if executable and not record.has_exec:
                write_exec = True
                flags |= FLAG_EXEC
            if flags != record.flags or kind not in record.kind:
                self._pending[digest] = ObjectRecord(digest, record.size, record.kind | kind, flags)
        if write_plain:
            self._write(digest, False, data, staged)
        if write_exec:
            self._write(digest, True, data, staged)

    def _write(self, digest: Digest, executable: bool, data, staged) -> None:
        final = self._layout.object_path(digest, executable)
        mode = EXEC_MODE if executable else PLAIN_MODE
        if data is None:
            # streamed: the plain object is the staged file itself; an exec copy is a new inode
            if staged and os.path.lexists(staged):
                source = staged
            else:
                source = self._layout.object_path(digest)
            if not executable and source == staged:
                os.rename(staged, final)
                self._wrote = True
                return
            data_path = source
            tmp = self._store._tmp_name()
            _copy_file(data_path, tmp, mode, self._store)
        else:
            try:
                fd = os.open(final, _CREATE_FLAGS, mode)
            except FileExistsError:
                tmp = self._store._tmp_name()
                fd = os.open(tmp, _CREATE_FLAGS, mode)
            else:
                tmp = None
            try:
                _write_all(fd, data)
                self._store._fix_mode(fd, mode)
            finally:
                os.close(fd)
            if tmp is None:
                self._wrote = True
                return
        os.rename(tmp, final)
        self._wrote = True

    def set_root(self, name: str, digest: Digest) -> None:
        """Root ``digest`` (already added or recorded) in this batch's transaction."""
        self._roots[name] = digest

    # -- ending -------------------------------------------------------------------------
    def commit(self) -> None:
        """Make the batch durable (one syncfs) and record it (one transaction)."""
        try:
            if self._pending or self._refs or self._roots:
                if self._wrote:
                    syncfs(self._layout.objects)
                self._db.record(self._pending.values(), self._refs, self._roots)
        finally:
            self.release()

    def release(self) -> None:
        """Drop this batch's temp roots (after commit, or on abort).

        A batch opened with a lease hands its digests to the lease instead, so
        they stay protected from gc until the lease ends.
        """
        held, self._held = self._held, []
        if self._lease is not None:
            self._lease.hold(held)
        self._store._unhold(held)


def _read_all(fd: int, size: int) -> bytes:
    data = os.read(fd, size + 1)
    if len(data) == size:
        return data
    parts = [data]
    while True:  # the file changed size since fstat, or a short read
        chunk = os.read(fd, CHUNK)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


def _write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _copy_file(src: str, dst: str, mode: int, store: Store) -> None:
    sfd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dfd = os.open(dst, _CREATE_FLAGS, mode)
        try:
            remaining = os.fstat(sfd).st_size
            while remaining > 0:
                n = os.copy_file_range(sfd, dfd, min(remaining, 1 << 30))
                if n == 0:
                    break
                remaining -= n
            store._fix_mode(dfd, mode)
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)
