"""Supervise the store's daemon: find it, start it when none answers, stop it.

The client's side of the embedded default (DESIGN.md §5), modelled on how
BuildStream runs buildbox-casd and pants runs pantsd:

- a daemon answers when its socket accepts a connection and its Status
  reports this seal's version and store format; one that differs is stopped
  and replaced (pants' fingerprint);
- starting happens under a spawn lock (an flock on the store directory),
  and whoever gets the lock looks again first, so two clients starting at
  once leave one daemon;
- the daemon runs as ``python -m seal.daemon --store S --socket P``, detached
  in its own session (Ctrl-C in the terminal does not reach it), stdin from
  /dev/null, stdout and stderr appended to ``<store>/daemon.log``;
- the client waits for grpc.health.v1 SERVING under a 3 s deadline while
  checking that the child lives; if it exits, the error quotes the last line
  it logged and names the log;
- stopping is the Shutdown call, then SIGTERM, a wait, SIGKILL.

>>> sup = Supervisor(store_root)                    # doctest: +SKIP
>>> conn = sup.connect()                            # a Connection to a ready daemon
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from seal.store.layout import FORMAT_VERSION, socket_path

from . import exitcodes
from .errors import ClientError

if TYPE_CHECKING:
    from . import rpc

START_TIMEOUT = 3.0  # the bound on waiting for a new daemon to serve
LOCK_TIMEOUT = 30.0  # how long to wait for another client that is starting the daemon
SHUTDOWN_WAIT = 10.0  # after the Shutdown call (in-flight calls may finish first)
TERM_WAIT = 5.0  # after SIGTERM, before SIGKILL
LOG_NAME = "daemon.log"
LOG_KEEP_BYTES = 4 << 20  # a larger log is moved to daemon.log.1 before a start
# The daemon's exit codes at start (seal.daemon.server.run) -> reason
_START_FAILURES = {6: "store-locked", 7: "store-version"}

DAEMON_COMMAND = [sys.executable, "-m", "seal.daemon"]
_ABSENT_ERRNOS = {errno.ENOENT, errno.ECONNREFUSED, errno.ENOTDIR, errno.ENOTSOCK}
_DENIED_ERRNOS = {errno.EACCES, errno.EPERM}
_version_cache: list[str] = []
# "<time> seal-daemon[<pid>] ERROR cannot start: " before the daemon's message
_LOG_PREFIX = re.compile(r"^\S+ seal-daemon\[\d+\] [A-Z]+ (cannot start: )?")


def client_version() -> str:
    """This seal's distribution version (what the daemon's Status must report)."""
    if not _version_cache:
        from importlib import metadata

        try:
            _version_cache.append(metadata.version("seal"))
        except metadata.PackageNotFoundError:
            _version_cache.append("unknown")
    return _version_cache[0]


def probe(path: str) -> str:
    """'listening', 'absent' (no socket, or nobody accepts) or 'denied' for a Unix socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.connect(path)
    except OSError as exc:
        if exc.errno in _DENIED_ERRNOS:
            return "denied"
        if exc.errno in _ABSENT_ERRNOS:
            return "absent"
        raise ClientError(
            f"cannot connect to the seal daemon at {path}: {exc.strerror}",
            reason="daemon-unavailable",
            exit_code=exitcodes.UNAVAILABLE,
        ) from None
    finally:
        s.close()
    return "listening"


class Supervisor:
    """The daemon of one store (and socket), as this client sees it.

    Args:
        store_root: the store directory.
        socket: the socket path; default ``seal.store.layout.socket_path(store_root)``.
        check_store: refuse a daemon whose Status names another store (off when
            the user named only a socket: then the daemon's store is the store).
        command: the daemon program, to which ``--store S --socket P`` is appended
            (default ``DAEMON_COMMAND``; tests use fake daemons).
    """

    def __init__(
        self,
        store_root: str | os.PathLike,
        socket: str | None = None,
        *,
        check_store: bool = True,
        command: list[str] | None = None,
    ):
        self.store = Path(os.path.abspath(store_root))
        self.socket = os.path.abspath(socket) if socket else socket_path(self.store)
        self.address = "unix:" + self.socket
        self.log = self.store / LOG_NAME
        self.check_store = check_store
        self.command = command or DAEMON_COMMAND
        self._conn: rpc.Connection | None = None
        # a daemon prestart() started: its process, log, and the spawn lock still held
        self._starting: tuple[subprocess.Popen, _Log, contextlib.ExitStack] | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._starting is not None:  # never waited for: it runs on, unwatched
            _proc, log, held = self._starting
            self._starting = None
            log.close()
            held.close()

    def prestart(self) -> None:
        """Start a daemon now if none listens, without waiting for it (nor loading gRPC):
        the caller's own start-up then overlaps the daemon's; ``connect`` waits for it."""
        if self._conn is not None or self._starting is not None:
            return
        if probe(self.socket) != "absent":
            return
        held = contextlib.ExitStack()
        try:
            held.enter_context(self._spawn_lock(create=True))
            if probe(self.socket) != "absent":  # another client started one meanwhile
                held.close()
                return
            proc, log = self._popen()
        except BaseException:
            held.close()
            raise
        self._starting = (proc, log, held)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the embedded default ------------------------------------------------------------
    def connect(self, *, create_store: bool = True) -> rpc.Connection:
        """A connection to a ready daemon of this seal, started here if none answers.

        With ``create_store=False`` a store that does not exist yet is reported
        (reason "store-missing") instead of being created by a new daemon.
        """
        if self._conn is not None:
            return self._conn
        if self._starting is not None:  # prestart() began it: wait for that one
            self._conn, _ = self._start()
            return self._conn
        conn, info = self._answering()
        if conn is not None and self._compatible(info):
            self._conn = conn
            return conn
        if conn is not None:
            conn.close()
        if not create_store and not (self.store / "VERSION").exists():
            raise ClientError(
                f"no store at {self.store}",
                hint="add something to it first, or pass --store",
                reason="store-missing",
                exit_code=exitcodes.exit_code(None, "store-missing"),
            )
        self._conn, _ = self._start()
        return self._conn

    def running(self) -> dict | None:
        """The Status of the daemon answering on the socket, or None; starts nothing."""
        conn, info = self._answering()
        if conn is not None:
            conn.close()
        return info

    def start(self) -> tuple[dict, bool]:
        """Make sure a compatible daemon runs; return its Status and whether it was started."""
        conn, info = self._answering()
        if conn is not None:
            conn.close()
            if self._compatible(info):
                return info, False
        conn, started = self._start()
        try:
            return conn.status(), started
        finally:
            conn.close()

    def stop(self) -> dict | None:
        """Stop the daemon (Shutdown, SIGTERM, SIGKILL); its last Status, or None if none ran."""
        self.close()
        conn, info = self._answering()
        if conn is None:
            return None
        with self._spawn_lock(create=False):
            try:
                self._terminate(conn, info["pid"])
            finally:
                conn.close()
        return info

    # -- internals ---------------------------------------------------------------------------
    def _answering(self) -> tuple[rpc.Connection | None, dict | None]:
        """(connection, Status) of the daemon on the socket, or (None, None)."""
        from . import rpc

        state = probe(self.socket)
        if state == "denied":
            raise ClientError(
                f"cannot connect to the seal daemon at {self.socket}: permission denied",
                hint="the daemon belongs to another user (its socket is private to its owner); "
                "use a store of your own (--store) or ask its owner for a socket group",
                reason="permission-denied",
                exit_code=exitcodes.exit_code("PERMISSION_DENIED", "permission-denied"),
            )
        if state == "absent":
            return None, None
        conn = rpc.Connection(self.address)
        try:
            info = conn.status_or_none()
        except BaseException:
            conn.close()
            raise
        if info is None:
            conn.close()
            return None, None
        if self.check_store and not _same_path(info["store"], self.store):
            conn.close()
            raise ClientError(
                f"the seal daemon on {self.socket} serves the store {info['store']}, "
                f"not {self.store}",
                hint="pass the matching --store, or another --socket",
                reason="daemon-store-mismatch",
                exit_code=exitcodes.BAD_INPUT,
            )
        return conn, info

    def _compatible(self, info: dict | None) -> bool:
        return (
            info is not None
            and info["version"] == client_version()
            and info["store_format"] == FORMAT_VERSION
        )

    def _start(self) -> tuple[rpc.Connection, bool]:
        """Under the spawn lock: reuse a compatible daemon, else replace or start one."""
        if self._starting is not None:
            proc, log, held = self._starting
            self._starting = None
            with held:
                return self._wait_ready(proc, log), True
        with self._spawn_lock(create=True):
            conn, info = self._answering()  # another client may have started it meanwhile
            if conn is not None:
                if self._compatible(info):
                    return conn, False
                try:
                    self._terminate(conn, info["pid"])
                finally:
                    conn.close()
            return self._spawn(), True

    @contextlib.contextmanager
    def _spawn_lock(self, *, create: bool) -> Iterator[None]:
        """An flock on the store directory itself (a lock file would make a new store's
        directory non-empty, which the store refuses to be created in)."""
        try:
            if create:
                os.makedirs(self.store, exist_ok=True)
            fd = os.open(self.store, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            yield  # no store directory: nobody can be starting a daemon for it
            return
        except OSError as exc:
            raise _os_error(f"cannot use {self.store}", exc) from None
        try:
            deadline = time.monotonic() + LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise ClientError(
                            f"another seal client has been starting the daemon of {self.store} "
                            f"for {LOCK_TIMEOUT:.0f} s",
                            hint=f"see {self.log}",
                            reason="daemon-start-timeout",
                            exit_code=exitcodes.UNAVAILABLE,
                        ) from None
                    time.sleep(0.02)
            yield
        finally:
            os.close(fd)

    def _spawn(self) -> rpc.Connection:
        """Start the daemon, wait until it serves, return a connection to it."""
        proc, log = self._popen()
        return self._wait_ready(proc, log)

    def _popen(self) -> tuple[subprocess.Popen, _Log]:
        log = _Log.open(self.store, self.log)
        cmd = [*self.command, "--store", str(self.store), "--socket", self.socket]
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log.fd,
                stderr=log.fd,
                start_new_session=True,
                close_fds=True,
                cwd="/",
            )
        except OSError as exc:
            log.close()
            raise _os_error("cannot start the seal daemon", exc) from None
        return proc, log

    def _wait_ready(self, proc: subprocess.Popen, log: _Log) -> rpc.Connection:
        """Wait until the daemon ``proc`` serves; a connection to it."""
        from . import rpc

        conn = None
        try:
            conn = rpc.Connection(self.address)
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                code = proc.poll()
                if code is not None:
                    raise self._died(code, log)
                if probe(self.socket) == "listening" and conn.serving(timeout=0.25):
                    return conn
                if time.monotonic() > deadline:
                    _kill(proc)
                    raise ClientError(
                        f"the seal daemon did not become ready within {START_TIMEOUT:.0f} s "
                        f"(last logged: {log.last_line() or 'nothing'})",
                        hint=log.hint(),
                        reason="daemon-start-timeout",
                        exit_code=exitcodes.UNAVAILABLE,
                    )
                time.sleep(0.01)
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        finally:
            log.close()

    def _died(self, code: int, log: _Log) -> ClientError:
        last = _LOG_PREFIX.sub("", log.last_line()) or "it logged nothing"
        reason = _START_FAILURES.get(code, "daemon-failed")
        return ClientError(
            f"the seal daemon exited at start (exit code {code}): {last}",
            hint=log.hint(),
            reason=reason,
            exit_code=exitcodes.exit_code("UNAVAILABLE", reason),
        )

    def _terminate(self, conn: rpc.Connection, pid: int) -> None:
        """Shutdown call, wait; SIGTERM, wait; SIGKILL."""
        with contextlib.suppress(ClientError):  # it may be wedged: signals follow
            conn.shutdown()
        if _wait_gone(pid, SHUTDOWN_WAIT):
            return
        for sig, wait in ((signal.SIGTERM, TERM_WAIT), (signal.SIGKILL, TERM_WAIT)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            except PermissionError as exc:
                raise _os_error(f"cannot stop the seal daemon (pid {pid})", exc) from None
            if _wait_gone(pid, wait):
                return
        raise ClientError(
            f"the seal daemon (pid {pid}) did not exit after SIGKILL",
            reason="daemon-stop-failed",
            exit_code=exitcodes.UNAVAILABLE,
        )


class _Log:
    """Where a starting daemon's stdout and stderr go: ``<store>/daemon.log``, appended
    (moved to ``daemon.log.1`` first when it has grown past ``LOG_KEEP_BYTES``)."""

    def __init__(self, fd: int, path: Path, offset: int):
        self.fd = fd
        self.path = path
        self.offset = offset

    @classmethod
    def open(cls, store: Path, path: Path) -> _Log:
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size > LOG_KEEP_BYTES:
                os.replace(path, f"{path}.1")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise _os_error(f"cannot open {path}", exc) from None
        offset = os.lseek(fd, 0, os.SEEK_END)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        os.write(fd, f"--- {stamp} seal client pid {os.getpid()} starts the daemon\n".encode())
        return cls(fd, path, offset)

    def last_line(self) -> str:
        """The last line the daemon wrote since this start (not our header)."""
        try:
            size = os.fstat(self.fd).st_size
            start = max(self.offset, size - 65536)
            text = os.pread(self.fd, size - start, start).decode(errors="replace")
        except OSError:
            return ""
        lines = text.splitlines()
        if start == self.offset:
            lines = lines[1:]  # our header
        lines = [line.strip() for line in lines if line.strip()]
        return lines[-1] if lines else ""

    def hint(self) -> str:
        return f"see {self.path}"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _same_path(a: str, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie counts as exited; ours are reaped)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return state in (b"Z", b"X")


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _os_error(what: str, exc: OSError) -> ClientError:
    denied = isinstance(exc, PermissionError)
    return ClientError(
        f"{what}: {exc.strerror or exc}",
        reason="permission-denied" if denied else "os-error",
        exit_code=exitcodes.PERMISSION if denied else exitcodes.UNAVAILABLE,
    )
