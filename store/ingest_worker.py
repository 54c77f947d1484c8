"""The per-file half of a parallel tree ingest, run in a separate worker process.

``store/pool.py`` starts this file as a script (``python -I -S ingest_worker.py``:
a fresh interpreter, never a fork of a threaded daemon) and sends it jobs over
its stdin; replies go to its stdout.  It imports only the standard library.

A job names source files, grouped by directory.  For each file the worker
opens it (never following a symlink), checks it is still a plain regular file,
reads and hashes it, and creates its object under the final name:

* small files (read whole) are created in place with ``O_EXCL``; large ones are
  streamed into a staging file and hard-linked to the final name (which also
  fails rather than replace an existing file);
* an executable file also gets its separate 0555 inode (``<hex>.x``);
* every object it creates is 0444/0555 with the fixed mtime ``OBJECT_MTIME``.

When a final name is taken the worker leaves it alone and says so: whether the
file there is a recorded object, a complete copy another worker just wrote, or
a torn leftover of a crash is for the parent to decide, since only it knows
the records.  The worker records nothing; a worker killed mid-write leaves at
most an unrecorded file (an orphan) that the parent never trusts.

It also ``lstat``s files for the scan that precedes any write (a "stat" job),
so that this part of the scan runs in parallel too.

Wire format, both ways: a 4-byte little-endian length, then a ``marshal``ed
value (both ends are the same interpreter).  A job is one of::

    ("ingest", session, objects_dir, tmp_prefix, [(dir_path, [(name, executable), ...]), ...])
    ("stat", [(dir_path, [name, ...]), ...])

and its reply is ``(results, error)``.  For "ingest", ``results`` holds one
``(raw_digest, size, made)`` per file done, in job order (``made``: bit 0 =
the plain object was created by this worker, bit 1 = the executable copy
was); for "stat", ``results`` is ``(sizes, executable bits)`` of the files
checked, in job order (a list, and bytes of 0 or 1).  ``error`` is None, or
``(index, kind, code, text, where)`` for the file at ``index`` that stopped the
job: kind "source" (an OSError opening, reading or stat-ing it: code = errno),
"mode" (not a plain regular file: code = st_mode) or "object" (an OSError
writing the store: code = errno, where = the path).
"""

from __future__ import annotations

import hashlib
import marshal
import os
import signal
import stat
import sys

OBJECT_MTIME = 315532800  # 1980-01-01T00:00:00Z, the SOURCE_DATE_EPOCH floor
_MTIME = (OBJECT_MTIME * 1_000_000_000,) * 2  # (atime, mtime) in ns
SMALL_FILE = 1 << 20  # read whole; larger files are streamed
CHUNK = 1 << 20
MADE_PLAIN, MADE_EXEC = 1, 2
EXEC_SUFFIX = ".x"

_SOURCE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
_REFUSED_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX


class ParentGone(Exception):
    """The process that sent the job died: stop writing into its store at once."""


class _ObjectError(Exception):
    """An OSError writing into the store (not about the source file)."""

    def __init__(self, exc: OSError, where: str):
        super().__init__(exc)
        self.exc = exc
        self.where = where


class Worker:
    """One worker's state: the open object fan-out directories of the current session."""

    def __init__(self) -> None:
        self.session = None
        self.objects = ""
        self.tmp_prefix = ""
        self.fans: dict[str, int] = {}
        self.staged = 0
        self.parent = os.getppid()
        self.umask = os.umask(0o022)
        os.umask(self.umask)

    # -- jobs ---------------------------------------------------------------------------
    def run(self, job) -> tuple[list, tuple | None]:
        if job[0] == "stat":
            return self.stat(job[1])
        _, session, objects, tmp_prefix, groups = job
        if session != self.session:
            self._close_fans()
            self.session, self.objects = session, os.fsdecode(objects)
            self.tmp_prefix = os.fsdecode(tmp_prefix)
        results: list[tuple[bytes, int, int]] = []
        for dir_path, files in groups:
            try:
                dfd = os.open(dir_path, _DIR_FLAGS)
            except OSError as exc:
                return results, (len(results), "source", exc.errno, exc.strerror, "")
            try:
                for name, executable in files:
                    self.check_parent()
                    try:
                        results.append(self.ingest(dfd, name, executable))
                    except _ObjectError as exc:
                        e = exc.exc
                        return results, (len(results), "object", e.errno, e.strerror, exc.where)
                    except _ModeError as exc:
                        return results, (len(results), "mode", exc.mode, "", "")
                    except OSError as exc:
                        return results, (len(results), "source", exc.errno, exc.strerror, "")
            finally:
                os.close(dfd)
        return results, None

    def stat(self, groups) -> tuple[tuple[list, bytes], tuple | None]:
        """Check that each named entry is a plain regular file (not following symlinks);
        return their sizes and executable bits (one byte each, 0 or 1)."""
        sizes: list[int] = []
        execs = bytearray()
        for dir_path, names in groups:
            try:
                dfd = os.open(dir_path, _DIR_FLAGS)
            except OSError as exc:
                return (sizes, bytes(execs)), (len(sizes), "source", exc.errno, exc.strerror, "")
            try:
                for name in names:
                    try:
                        st = os.lstat(name, dir_fd=dfd)
                    except OSError as exc:
                        error = (len(sizes), "source", exc.errno, exc.strerror, "")
                        return (sizes, bytes(execs)), error
                    mode = st.st_mode
                    if mode & _REFUSED_BITS or not stat.S_ISREG(mode):
                        return (sizes, bytes(execs)), (len(sizes), "mode", mode, "", "")
                    sizes.append(st.st_size)
                    execs.append(1 if mode & stat.S_IXUSR else 0)
            finally:
                os.close(dfd)
        return (sizes, bytes(execs)), None

    def ingest(self, dfd: int, name: bytes, executable: bool) -> tuple[bytes, int, int]:
        fd = os.open(name, _SOURCE_FLAGS, dir_fd=dfd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_mode & _REFUSED_BITS:
                raise _ModeError(st.st_mode)
            size = st.st_size
            if size > SMALL_FILE:
                return self._ingest_streamed(fd, executable)
            data = os.read(fd, size + 1)
            if len(data) != size:
                data = read_rest(fd, data)
        finally:
            os.close(fd)
        raw = hashlib.sha256(data).digest()
        hexname = raw.hex()
        made = 0
        if self._create(hexname, data, 0o444):
            made = MADE_PLAIN
        if executable and self._create(hexname + EXEC_SUFFIX, data, 0o555):
            made |= MADE_EXEC
        return raw, len(data), made

    def check_parent(self) -> None:
        """Raise ParentGone once the parent has died (this process was re-parented).

        Checked before every file and every chunk, so a writer killed mid-ingest
        is not followed by its workers' writes for longer than one file.
        """
        if os.getppid() != self.parent:
            raise ParentGone

    # -- writing objects ----------------------------------------------------------------
    def _fan(self, hexname: str) -> int:
        fan = hexname[:2]
        fd = self.fans.get(fan)
        if fd is None:
            path = f"{self.objects}/{fan}"
            try:
                fd = self.fans[fan] = os.open(path, _DIR_FLAGS)
            except OSError as exc:
                raise _ObjectError(exc, path) from None
        return fd

    def _create(self, filename: str, data, mode: int) -> bool:
        """Create the object ``filename`` holding ``data``; False if the name is taken."""
        fan = self._fan(filename)
        try:
            fd = os.open(filename, _CREATE_FLAGS, mode, dir_fd=fan)
        except FileExistsError:
            return False
        except OSError as exc:
            raise _ObjectError(exc, self._where(filename)) from None
        try:
            written = os.write(fd, data)
            if written != len(data):
                write_all(fd, data, written)
            if mode & self.umask:
                os.fchmod(fd, mode)
            os.utime(fd, ns=_MTIME)
        except OSError as exc:
            os.close(fd)
            os.unlink(filename, dir_fd=fan)  # no partial file under an object's name
            raise _ObjectError(exc, self._where(filename)) from None
        os.close(fd)
        return True

    def _ingest_streamed(self, fd: int, executable: bool) -> tuple[bytes, int, int]:
        """Hash a large file while copying it to a staging file; link that into place."""
        staged = self._staging_name()
        try:
            out = os.open(staged, _CREATE_FLAGS, 0o444)
        except OSError as exc:
            raise _ObjectError(exc, staged) from None
        hasher = hashlib.sha256()
        size = 0
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        try:
            try:
                while n := os.readv(fd, [buf]):
                    self.check_parent()
                    hasher.update(view[:n])
                    size += n
                    try:
                        write_all(out, view[:n])
                    except OSError as exc:
                        raise _ObjectError(exc, staged) from None
                try:
                    self._finish(out, 0o444)
                except OSError as exc:
                    raise _ObjectError(exc, staged) from None
            finally:
                os.close(out)
            raw = hasher.digest()
            hexname = raw.hex()
            made = MADE_PLAIN if self._link(staged, hexname) else 0
            if executable:
                copy = self._staging_name()
                try:
                    copy_file(staged, copy, 0o555, self._finish)
                except OSError as exc:
                    raise _ObjectError(exc, copy) from None
                try:
                    made |= MADE_EXEC if self._link(copy, hexname + EXEC_SUFFIX) else 0
                finally:
                    os.unlink(copy)
        finally:
            os.unlink(staged)
        return raw, size, made

    def _link(self, staged: str, filename: str) -> bool:
        """Give the complete file ``staged`` its object name; False if the name is taken."""
        fan = self._fan(filename)
        try:
            os.link(staged, filename, dst_dir_fd=fan)
        except FileExistsError:
            return False
        except OSError as exc:
            raise _ObjectError(exc, self._where(filename)) from None
        return True

    def _finish(self, fd: int, mode: int) -> None:
        if mode & self.umask:
            os.fchmod(fd, mode)
        os.utime(fd, ns=_MTIME)

    def _staging_name(self) -> str:
        self.staged += 1
        return f"{self.tmp_prefix}p{os.getpid()}-{self.staged}"

    def _where(self, filename: str) -> str:
        return f"{self.objects}/{filename[:2]}/{filename}"

    def _close_fans(self) -> None:
        for fd in self.fans.values():
            os.close(fd)
        self.fans.clear()


class _ModeError(Exception):
    def __init__(self, mode: int):
        super().__init__(mode)
        self.mode = mode


def read_rest(fd: int, data: bytes) -> bytes:
    """``data`` and everything after it in ``fd``: the file changed size since its
    fstat, or a read came back short."""
    parts = [data]
    while True:
        chunk = os.read(fd, CHUNK)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


def write_all(fd: int, data, done: int = 0) -> None:
    """Write ``data`` from offset ``done`` on (the first write may come back short)."""
    view = memoryview(data)[done:]
    while view:
        n = os.write(fd, view)
        view = view[n:]


def copy_file(src: str, dst: str, mode: int, finish) -> None:
    """Copy ``src`` into the new file ``dst`` in the kernel; ``finish(fd, mode)`` before close."""
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
            finish(dfd, mode)
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)


# -- framing ------------------------------------------------------------------------------
def read_frame(fd: int):
    """One framed value from ``fd``, or None at a clean end of stream."""
    header = _read_exact(fd, 4)
    if header is None:
        return None
    body = _read_exact(fd, int.from_bytes(header, "little"))
    if body is None:
        raise EOFError("stream ended inside a frame")
    return marshal.loads(body)


def write_frame(fd: int, value) -> None:
    body = marshal.dumps(value)
    write_all(fd, len(body).to_bytes(4, "little") + body)


def _read_exact(fd: int, n: int) -> bytes | None:
    """``n`` bytes from ``fd``, or None if the stream ends first."""
    parts = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            return None
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    worker = Worker()
    rfd, wfd = sys.stdin.fileno(), sys.stdout.fileno()
    try:
        write_frame(wfd, ("ready", os.getpid()))  # the parent waits for this once
        while (job := read_frame(rfd)) is not None:
            write_frame(wfd, worker.run(job))
    except (BrokenPipeError, EOFError, ParentGone):
        pass  # the parent went away: nothing is waiting for the reply
    return 0


if __name__ == "__main__":
    sys.exit(main())
