"""Ingest a directory as a tree: scan and refuse bad entries first, then write.

Scanning the whole directory before writing anything means bad input (a FIFO,
a device, a setuid file) fails before one object is stored.

Then the files are added, in one of two ways:

* in-process (small trees, or when the worker pool is unavailable or busy):
  one thread reads, hashes and writes each file;
* with worker processes (trees of at least ``POOL_MIN_FILES`` files): the
  per-file work (the scan's ``lstat``, then open, read, hash, create the
  object) is spread over the pool's processes (pool.py, ingest_worker.py),
  which sidesteps the GIL; this process only walks the directories, hands out
  jobs, builds the directory listings as their files come back, and records
  everything in the batch.  A thread pool over files was measured 1.6-2x
  *slower* than one thread (the threads convoy on the GIL).

The scan reads entry types from the directories themselves (d_type), so only
directories and files need a stat call, and the files' calls are the part the
workers can share.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import pool
from .db import Kind
from .digest import Digest
from .errors import StoreError, UnsupportedFile
from .ingest_worker import SMALL_FILE
from .layout import PLAIN_MODE, set_object_mtime
from .tree import encode_listing

if TYPE_CHECKING:
    from .batch import Batch

# Below this many files a tree is ingested in-process: handing out jobs and
# starting the pool (once per process, ~20-50 ms) would cost more than it saves.
POOL_MIN_FILES = 1000
JOB_FILES = 256  # files per job at most (measured: 64 was ~7% slower, 512 no faster) ...
JOB_BYTES = 2 << 20  # ... and bytes to read (a larger file is a job of its own) ...
JOB_NAME_BYTES = 16 << 10  # ... and bytes of names, to keep each job frame small
STAT_JOB_FILES = 256  # files per job of the scan's stat-ing

_SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX
_TYPE_BITS = 0o170000  # stat.S_IFMT's mask
_TREE_TYPES = frozenset((stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK))
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


@dataclass
class _DirPlan:
    """One directory of a scan (the client's upload walks these too)."""

    path: bytes
    files: list[tuple[bytes, bytes, bool]] = field(default_factory=list)  # name, path, exec
    sizes: list[int] = field(default_factory=list)  # the files' sizes at the scan
    execs: bytearray = field(default_factory=bytearray)  # their exec bits (ingest reads these)
    symlinks: list[tuple[bytes, bytes]] = field(default_factory=list)
    subdirs: list[tuple[bytes, int]] = field(default_factory=list)  # (name, plan index)


def check_mode(path: bytes | str, mode: int) -> None:
    """Refuse what a tree cannot hold, naming the path."""
    if stat.S_ISFIFO(mode):
        raise UnsupportedFile(
            os.fsdecode(path), "is a FIFO; trees hold files, directories and symlinks only"
        )
    if stat.S_ISSOCK(mode):
        raise UnsupportedFile(
            os.fsdecode(path), "is a socket; trees hold files, directories and symlinks only"
        )
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise UnsupportedFile(
            os.fsdecode(path), "is a device node; trees hold files, directories and symlinks only"
        )
    if mode & _SPECIAL_BITS:
        bits = [
            n
            for b, n in (
                (stat.S_ISUID, "setuid"),
                (stat.S_ISGID, "setgid"),
                (stat.S_ISVTX, "sticky"),
            )
            if mode & b
        ]
        raise UnsupportedFile(
            os.fsdecode(path), f"has the {'/'.join(bits)} bit; seal refuses special permission bits"
        )


def scan(root: bytes) -> list[_DirPlan]:
    """Walk ``root`` without following symlinks; parents come before children."""
    walk = _Walk(root, stat_files=True)
    walk.finish()
    return walk.plans


class _Walk:
    """A breadth-first walk that reads directories, one ``step`` at a time.

    Entry types come from the directory itself (d_type): directories are
    stat-ed for their mode bits, symlinks read, other types refused; files are
    only listed (exec bit and size unknown) until ``_stat_in_process`` or
    ``_stat_with_workers`` checks them and fills in ``sizes`` and ``execs``
    (the former also the exec bits of ``files``, for ``scan``'s callers) --
    unless ``stat_files``, which does it on the way in one pass.
    """

    def __init__(self, root: bytes, *, stat_files: bool = False):
        self.plans = [_DirPlan(root)]
        self.read = 0  # plans[:read] have been read
        self.files = 0
        self.stat_files = stat_files

    def step(self) -> bool:
        """Read the next directory; False when every directory has been read."""
        if self.read == len(self.plans):
            return False
        plans = self.plans
        plan = plans[self.read]
        self.read += 1
        try:
            entries = list(os.scandir(plan.path))
        except OSError as exc:
            raise _os_error(plan.path, exc) from None
        stat_files = self.stat_files
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False):
                    if stat_files:
                        st = entry.stat(follow_symlinks=False)
                        exe = _file_mode(entry.path, st.st_mode)
                        plan.files.append((entry.name, entry.path, exe))
                        plan.sizes.append(st.st_size)
                        plan.execs.append(exe)
                    else:
                        plan.files.append((entry.name, entry.path, False))
                    continue
                if entry.is_dir(follow_symlinks=False):
                    mode = entry.stat(follow_symlinks=False).st_mode
                    if mode & _SPECIAL_BITS:
                        check_mode(entry.path, mode)
                    plan.subdirs.append((entry.name, len(plans)))
                    plans.append(_DirPlan(entry.path))
                    continue
                if entry.is_symlink():
                    plan.symlinks.append((entry.name, os.readlink(entry.path)))
                    continue
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError as exc:
                raise _os_error(entry.path, exc) from None
            check_mode(entry.path, mode)
            raise UnsupportedFile(os.fsdecode(entry.path), "has an unknown file type")
        if not stat_files:
            plan.sizes = [0] * len(plan.files)
            plan.execs = bytearray(len(plan.files))
        self.files += len(plan.files)
        return True

    def read_until(self, files: int) -> bool:
        """Read on until ``files`` files are listed (True) or the walk ends (False)."""
        while self.files < files:
            if not self.step():
                return False
        return True

    def finish(self) -> None:
        while self.step():
            pass


def _file_mode(path: bytes, mode: int) -> bool:
    """Check a listed file's mode; return its executable bit."""
    if mode & _SPECIAL_BITS or mode & _TYPE_BITS != stat.S_IFREG:
        check_mode(path, mode)
        raise UnsupportedFile(os.fsdecode(path), "changed type while being scanned")
    return bool(mode & stat.S_IXUSR)


def _stat_in_process(plans: list[_DirPlan]) -> None:
    for plan in plans:
        files, sizes, execs = plan.files, plan.sizes, plan.execs
        if not files:
            continue
        try:
            dfd = os.open(plan.path, _DIR_FLAGS)
        except OSError as exc:
            raise _os_error(plan.path, exc) from None
        try:
            for j, (name, path, _) in enumerate(files):
                try:
                    st = os.lstat(name, dir_fd=dfd)  # no walk down the whole path again
                except OSError as exc:
                    raise _os_error(path, exc) from None
                exe = _file_mode(path, st.st_mode)
                files[j] = (name, path, exe)
                sizes[j] = st.st_size
                execs[j] = exe
        finally:
            os.close(dfd)


def _stat_with_workers(walk: _Walk, workers: pool.Pool) -> None:
    """Finish the walk while the workers stat the files of the directories read so far."""
    plans = walk.plans

    def jobs():
        segments: list[tuple[int, int, int]] = []
        groups: list[tuple[bytes, list[bytes]]] = []
        count = name_bytes = 0
        index = 0
        while True:
            while index < walk.read:
                plan = plans[index]
                names = [f[0] for f in plan.files]
                for first in range(0, len(names), STAT_JOB_FILES):
                    piece = names[first : first + STAT_JOB_FILES]
                    segments.append((index, first, first + len(piece)))
                    groups.append((plan.path, piece))
                    count += len(piece)
                    name_bytes += len(plan.path) + sum(map(len, piece)) + 8 * len(piece)
                    if count >= STAT_JOB_FILES or name_bytes >= JOB_NAME_BYTES:
                        yield segments, ("stat", groups)
                        segments, groups = [], []
                        count = name_bytes = 0
                index += 1
            if not walk.step():
                break
        if count:
            yield segments, ("stat", groups)

    for segments, ((sizes, execs), error) in workers.run(jobs()):
        k = 0
        for index, first, end in segments:
            n = min(end - first, len(sizes) - k)
            plan = plans[index]
            plan.sizes[first : first + n] = sizes[k : k + n]
            plan.execs[first : first + n] = execs[k : k + n]
            k += n
        if error is not None:
            raise _worker_error(plans, segments, error)


def ingest_file(
    batch: Batch, path: bytes | str, executable: bool | None = None
) -> tuple[Digest, int, bool]:
    """Add one regular file; return its digest, size and executable bit."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise _os_error(path, exc) from None
    try:
        return ingest_open_file(batch, fd, path, executable)
    finally:
        os.close(fd)


def ingest_open_file(
    batch: Batch, fd: int, path: bytes | str, executable: bool | None = None
) -> tuple[Digest, int, bool]:
    """Add the regular file open as ``fd`` (read from its current offset); ``path`` names it."""
    st = os.fstat(fd)
    check_mode(path, st.st_mode)
    if not stat.S_ISREG(st.st_mode):
        raise UnsupportedFile(
            os.fsdecode(path), "changed into a non-regular file while being added"
        )
    exe = bool(st.st_mode & stat.S_IXUSR) if executable is None else executable
    digest, size = batch.add_fd(fd, st.st_size, executable=exe)
    return digest, size, exe


def ingest_hashed_file(batch: Batch, path: bytes | str, digest: Digest, size: int) -> Digest:
    """Add a file the caller wrote and hashed itself (a download), by renaming it into objects/.

    For a writer that already hashed every byte as it wrote them (the fetch
    builtin hashes while downloading and checks the pinned SHA-256): reading
    and hashing the file again would only repeat that.  The file must be a
    regular file nobody writes any more; ``digest`` and ``size`` are trusted,
    but the size is checked.  When the file is on another filesystem than the
    store's objects, it is copied and hashed as ``ingest_file`` does, and the
    digest must match.  Either way the file is gone afterwards.

    Raises:
        UnsupportedFile: not a regular file, or not of ``size`` bytes.
        DigestMismatch: (other filesystem only) its bytes hash to another digest;
            nothing is stored.
    """
    store = batch._store
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise _os_error(path, exc) from None
    try:
        st = os.fstat(fd)
        check_mode(path, st.st_mode)
        if not stat.S_ISREG(st.st_mode):
            raise UnsupportedFile(os.fsdecode(path), "is not a regular file")
        if st.st_size != size:
            raise UnsupportedFile(os.fsdecode(path), f"has {st.st_size} bytes, not {size}")
        if st.st_dev != os.stat(store.layout.objects).st_dev:  # no rename across filesystems
            with open(fd, "rb", closefd=False) as stream:
                batch.add_stream(stream, expected=digest, expected_size=size)
            os.unlink(path)
            return digest
        os.fchmod(fd, PLAIN_MODE)  # what objects are; the writer's umask gave it other bits
        set_object_mtime(fd)
    finally:
        os.close(fd)
    batch._place_staged(digest, size, False, os.fsdecode(path))
    return digest


def ingest_tree(batch: Batch, root: bytes) -> tuple[Digest, int]:
    """Add a directory and everything under it; return the tree's digest and size."""
    try:
        check_mode(root, os.lstat(root).st_mode)
    except OSError as exc:
        raise _os_error(root, exc) from None
    walk = _Walk(root)
    statted = False
    if walk.read_until(POOL_MIN_FILES):
        with pool.session() as workers:
            if workers is not None:
                _stat_with_workers(walk, workers)
                statted = True
                with batch.workers_may_write() as allowed:
                    if allowed:
                        result = _ingest_with_workers(batch, walk.plans, workers)
                if allowed:
                    batch.settle()
                    return result
    if not statted:
        walk.finish()
        _stat_in_process(walk.plans)
    return _ingest_in_process(batch, walk.plans)


def _ingest_in_process(batch: Batch, plans: list[_DirPlan]) -> tuple[Digest, int]:
    done: list[tuple[Digest, int] | None] = [None] * len(plans)
    for index in range(len(plans) - 1, -1, -1):
        plan = plans[index]
        files, blobs = [], []
        for (name, path, _), exe in zip(plan.files, plan.execs, strict=True):
            exe = bool(exe)
            digest, size, _ = ingest_file(batch, path, exe)
            files.append((name, digest.raw, size, exe))
            blobs.append(digest)
        done[index] = _add_directory(batch, plan, files, blobs, done)
    return done[0]


def _add_directory(
    batch: Batch,
    plan: _DirPlan,
    files: list[tuple[bytes, bytes, int, bool]],
    blobs: list[Digest],
    done: list[tuple[Digest, int] | None],
) -> tuple[Digest, int]:
    """Add one directory's listing to the batch, once its files (``files`` as
    encode_listing takes them, ``blobs`` their digests) and subdirectories are in."""
    subdirs = [done[child] for _, child in plan.subdirs]
    data = encode_listing(
        files,
        [(name, d.raw, size) for (name, _), (d, size) in zip(plan.subdirs, subdirs, strict=True)],
        plan.symlinks,
    )
    digest = batch.add_bytes(data, kind=Kind.TREE, refs=blobs + [d for d, _ in subdirs])
    for _, child in plan.subdirs:
        done[child] = None  # keep memory flat on wide trees
    return digest, len(data)


def _ingest_with_workers(
    batch: Batch, plans: list[_DirPlan], workers: pool.Pool
) -> tuple[Digest, int]:
    """Files go out in jobs, deepest directories first; each directory's listing is
    added as soon as its files (and its subdirectories, deeper still) are back."""
    store = batch._store
    objects = os.fsencode(str(store.layout.objects))
    tmp_prefix = os.fsencode(store._tmp_name())
    session = (os.getpid(), workers.session)
    files: list[list] = [[None] * len(plan.files) for plan in plans]  # as encode_listing takes
    blobs: list[list] = [[None] * len(plan.files) for plan in plans]
    left = [len(plan.files) for plan in plans]
    done: list[tuple[Digest, int] | None] = [None] * len(plans)
    next_dir = len(plans) - 1  # listings are added from the last plan (deepest) up

    def jobs():
        segments: list[tuple[int, int, int]] = []  # (plan index, first file, end)
        groups: list[tuple[bytes, list[tuple[bytes, bool]]]] = []
        count = size = name_bytes = 0
        for index in range(len(plans) - 1, -1, -1):
            plan = plans[index]
            for j, ((name, _path, _), file_size, exe) in enumerate(
                zip(plan.files, plan.sizes, plan.execs, strict=True)
            ):
                if count and (
                    count >= JOB_FILES
                    or size + file_size > JOB_BYTES
                    or name_bytes >= JOB_NAME_BYTES
                    or file_size > SMALL_FILE
                ):
                    yield segments, ("ingest", session, objects, tmp_prefix, groups)
                    segments, groups = [], []
                    count = size = name_bytes = 0
                if segments and segments[-1][0] == index:
                    segments[-1] = (index, segments[-1][1], j + 1)
                    groups[-1][1].append((name, bool(exe)))
                else:
                    segments.append((index, j, j + 1))
                    groups.append((plan.path, [(name, bool(exe))]))
                    name_bytes += len(plan.path)
                count += 1
                size += file_size
                name_bytes += len(name) + 8
        if count:
            yield segments, ("ingest", session, objects, tmp_prefix, groups)

    for segments, (results, error) in workers.run(jobs()):
        adopted = []
        k = 0
        for index, first, end in segments:
            plan, row, row_blobs = plans[index], files[index], blobs[index]
            for j in range(first, min(end, first + len(results) - k)):
                raw, size, made = results[k]
                k += 1
                name, path, _ = plan.files[j]
                exe = plan.execs[j] == 1
                row[j] = (name, raw, size, exe)
                row_blobs[j] = digest = Digest(raw)
                adopted.append((digest, size, exe, made, path))
            left[index] -= end - first
        batch.adopt(adopted)
        if error is not None:
            raise _worker_error(plans, segments, error)
        while next_dir >= 0 and not left[next_dir]:
            done[next_dir] = _add_directory(
                batch, plans[next_dir], files[next_dir], blobs[next_dir], done
            )
            files[next_dir] = blobs[next_dir] = []
            next_dir -= 1
    return done[0]


def _worker_error(plans: list[_DirPlan], segments, error) -> Exception:
    """The exception for a worker's error report about the ``index``-th file of a job."""
    index, kind, code, text, where = error
    for plan_index, first, end in segments:
        if index < end - first:
            path = plans[plan_index].files[first + index][1]
            break
        index -= end - first
    else:  # pragma: no cover - a worker names a file of its job
        return StoreError(f"an ingest worker reported an unknown file: {error!r}")
    if kind == "source":
        return _os_error(path, OSError(code, text))
    if kind == "mode":
        check_mode(path, code)  # raises for what a tree cannot hold
        why = "changed into a non-regular file while being added"
        return UnsupportedFile(os.fsdecode(path), why)
    return OSError(code, text, os.fsdecode(where))


def _os_error(path: bytes | str, exc: OSError) -> StoreError:
    if isinstance(exc, FileNotFoundError):
        return UnsupportedFile(os.fsdecode(path), "no such file or directory")
    if isinstance(exc, PermissionError):
        return UnsupportedFile(os.fsdecode(path), "permission denied")
    return UnsupportedFile(os.fsdecode(path), exc.strerror or str(exc))
