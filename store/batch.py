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

Worker processes (a big tree ingest, see ingest.py and pool.py) create objects
before the batch knows their digests, so they cannot be held first: while they
write, the batch keeps ``gc`` out (``workers_may_write``), then ``adopt`` takes
their results over, holding each digest, and ``settle`` rewrites any object a
worker found under its name but nobody in the batch completed (a crash's torn
leftover, say) before the batch commits.

Every object file gets the fixed mtime ``OBJECT_MTIME`` (1980-01-01), so trees
materialized from any store show the same timestamps to the builds that read them.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO

from .bigcopy import copy_and_hash
from .db import FLAG_EXEC, Kind, ObjectRecord
from .digest import Digest
from .errors import DigestMismatch, ObjectNotFound, UnsupportedFile
from .ingest_worker import MADE_EXEC, MADE_PLAIN, copy_file, read_rest, write_all
from .layout import EXEC_MODE, PLAIN_MODE, set_object_mtime, syncfs

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
        # raw digests of the files this batch wrote (or adopted), by executable copy or not
        self._made: dict[bool, set[bytes]] = {False: set(), True: set()}
        self._unsure: list[tuple[Digest, bool, bytes]] = []  # taken names to check in settle

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
        return self._add_copied(fd, executable)

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

    def _add_copied(self, fd: int, executable: bool) -> tuple[Digest, int]:
        """Copy a large file into tmp/ in the kernel while hashing the copy (bigcopy.py)."""
        tmp = self._store._tmp_name()
        out = os.open(tmp, _CREATE_FLAGS, PLAIN_MODE)
        try:
            raw, size = copy_and_hash(fd, out, tmp)
            self._store._fix_mode(out, PLAIN_MODE)
            set_object_mtime(out)
        except BaseException:
            os.close(out)
            os.unlink(tmp)
            raise
        os.close(out)
        digest = Digest(raw)
        self._place_staged(digest, size, executable, tmp)
        return digest, size

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
                    writing = writer.submit(write_all, fd, chunk)
                if writing is not None:
                    writing.result()
            self._store._fix_mode(fd, PLAIN_MODE)
            set_object_mtime(fd)
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
        self._place_staged(digest, size, executable, tmp)
        return digest, size

    def _place_staged(self, digest, size: int, executable: bool, tmp: str) -> None:
        """Place a blob written to ``tmp``; the staged file is gone afterwards either way."""
        try:
            self._place(digest, size, Kind.BLOB, executable, staged=tmp)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)

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
            else:
                tmp = self._store._tmp_name()
                _copy_file(source, tmp, mode, self._store)
                os.rename(tmp, final)
        else:
            try:
                fd = os.open(final, _CREATE_FLAGS, mode)
            except FileExistsError:
                tmp = self._store._tmp_name()
                fd = os.open(tmp, _CREATE_FLAGS, mode)
            else:
                tmp = None
            try:
                write_all(fd, data)
                self._store._fix_mode(fd, mode)
                set_object_mtime(fd)
            finally:
                os.close(fd)
            if tmp is not None:
                os.rename(tmp, final)
        self._made[executable].add(digest.raw)
        self._wrote = True

    # -- objects written by worker processes ---------------------------------------------
    @contextlib.contextmanager
    def workers_may_write(self) -> Iterator[bool]:
        """Keep gc out while other processes create objects this batch has not held yet.

        Yields False when a gc is running (do the work in-process instead); the
        block must ``adopt`` every worker result before it ends.
        """
        gc_mutex = self._store._gc_mutex
        if not gc_mutex.acquire(blocking=False):
            yield False
            return
        try:
            yield True
        finally:
            gc_mutex.release()

    def adopt(self, results: Iterable[tuple[Digest, int, bool, int, bytes]]) -> None:
        """Take over blobs a worker hashed and (maybe) wrote: ``(digest, size, executable,
        made, source)`` with ``made`` the worker's MADE_PLAIN/MADE_EXEC bits.

        A file the batch needs but no one in it made (the worker found the name
        taken) is remembered with its ``source`` path for ``settle``.  Runs once
        per file of a big tree: kept to plain dict and set operations.
        """
        results = list(results)
        with self._mutex:
            pending = self._pending
            fresh = [r[0] for r in results if r[0] not in pending]
            self._store._hold(fresh)
            self._held.extend(fresh)
            recorded = self._records(fresh)
            made_plain, made_exec, unsure = self._made[False], self._made[True], self._unsure
            for digest, size, executable, made, source in results:
                if made:
                    self._wrote = True
                    if made & MADE_PLAIN:
                        made_plain.add(digest.raw)
                    if made & MADE_EXEC:
                        made_exec.add(digest.raw)
                record = pending.get(digest)
                if record is None:
                    record = recorded.get(digest.raw)
                    if record is None:  # new to the store: the common case
                        if not made & MADE_PLAIN:
                            unsure.append((digest, False, source))
                        if executable and not made & MADE_EXEC:
                            unsure.append((digest, True, source))
                        flags = FLAG_EXEC if executable else 0
                        pending[digest] = ObjectRecord(digest, size, Kind.BLOB, flags)
                        continue
                flags = record.flags
                if executable and not flags & FLAG_EXEC:
                    if not made & MADE_EXEC:
                        unsure.append((digest, True, source))
                    flags |= FLAG_EXEC
                if flags != record.flags or not int(record.kind) & Kind.BLOB.value:
                    pending[digest] = ObjectRecord(
                        digest, record.size, record.kind | Kind.BLOB, flags
                    )

    def _records(self, digests: list[Digest]) -> dict[bytes, ObjectRecord]:
        """The records of those of ``digests`` that are recorded (by raw digest), in one
        read transaction."""
        db = self._db
        if db.objects is None or not digests:
            return {}
        found = {}
        with db.env.begin(db=db.objects) as txn:
            for digest in digests:
                value = txn.get(digest.raw)
                if value is not None:
                    found[digest.raw] = ObjectRecord.unpack(digest.raw, value)
        return found

    def settle(self) -> None:
        """Write every adopted object whose name a worker found taken and nobody here
        completed (a torn leftover, or a concurrent writer's file): from its source,
        through tmp/ and a rename, as for any taken name."""
        unsure, self._unsure = self._unsure, []
        for digest, executable, source in sorted(unsure, key=lambda u: u[1]):  # plain first
            if digest.raw in self._made[executable]:
                continue
            if executable:
                self._write(digest, True, None, None)  # copies the plain object
            else:
                self._rewrite_from(source, digest)

    def _rewrite_from(self, source: bytes, digest: Digest) -> None:
        tmp = self._store._tmp_name()
        try:
            sfd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise UnsupportedFile(os.fsdecode(source), exc.strerror or str(exc)) from None
        try:
            hasher = hashlib.sha256()
            dfd = os.open(tmp, _CREATE_FLAGS, PLAIN_MODE)
            try:
                while chunk := os.read(sfd, CHUNK):
                    hasher.update(chunk)
                    write_all(dfd, chunk)
                self._store._fix_mode(dfd, PLAIN_MODE)
                set_object_mtime(dfd)
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)
        if hasher.digest() != digest.raw:
            os.unlink(tmp)
            raise UnsupportedFile(os.fsdecode(source), "changed while being added")
        os.rename(tmp, self._layout.object_path(digest))
        self._made[False].add(digest.raw)
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
    return data if len(data) == size else read_rest(fd, data)


def _copy_file(src: str, dst: str, mode: int, store: Store) -> None:
    def finish(fd: int, mode: int) -> None:
        store._fix_mode(fd, mode)
        set_object_mtime(fd)

    copy_file(src, dst, mode, finish)
