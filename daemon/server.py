"""The daemon process: the store's writer lock, the Unix-socket listener, the lifecycle.

>>> with create_server("/tmp/store") as daemon:           # doctest: +SKIP
...     channel = grpc.insecure_channel(daemon.address)
...     ...                                              # stopped, unlocked on exit

``run`` is the foreground process (``python -m seal.daemon``, ``seal daemon
run``): it serves until SIGTERM, SIGINT or a Shutdown call, then stops
accepting, lets in-flight calls finish within a grace period (a write batch
either commits or rolls back), removes the socket, releases the lock and
returns 0.

The socket is ``seal.store.layout.socket_path(store)``: ``<store>/daemon.sock``,
or, when that path is too long for a socket address, a short path in a
private ``/tmp/seal-<uid>/`` with ``<store>/daemon.sock`` a symlink to it.  The
socket is 0600 in a 0700 directory (0660/0750 with ``socket_group``), so
only its owner (or that group) can connect.
"""

from __future__ import annotations

import contextlib
import grp
import importlib
import logging
import os
import signal
import socket as socketlib
import stat
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

# Builds fork and exec bwrap at once; gRPC's fork handlers only log noise about it.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import grpc  # noqa: E402
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from seal.daemon.build.realizer import Realizer, RealizerConfig
from seal.daemon.errors import DaemonError, ListenError, SocketInUse
from seal.daemon.handoff import HandoffServer
from seal.daemon.leases import DEFAULT_TTL, Uploads
from seal.daemon.services import (
    BuildServicer,
    DaemonServicer,
    Identity,
    ImagesServicer,
    InFlight,
    InputsServicer,
    QueryServicer,
    StoreServicer,
)
from seal.proto.v1 import build_pb2_grpc, inputs_pb2_grpc
from seal.proto.v1 import store_pb2_grpc as pb_grpc
from seal.store import Store, StoreError, StoreLocked, StoreVersionError
from seal.store.layout import FORMAT_VERSION, SOCKET_NAME, socket_path

log = logging.getLogger("seal.daemon")

DEFAULT_GRACE = 5.0  # seconds in-flight calls may run after a stop request
_STRAGGLER_WAIT = 10.0  # then how long to wait for handler threads still running
MAX_MESSAGE = 2 << 20  # 1 MiB payloads plus framing; larger messages: RESOURCE_EXHAUSTED
MAX_WORKERS = 32
SERVICE_NAMES = (
    "",
    "seal.v1.Store",
    "seal.v1.Daemon",
    "seal.v1.Build",
    "seal.v1.Query",
    "seal.v1.Inputs",
)
_MAX_SUN_PATH = 107  # sun_path is 108 bytes with the NUL

# Exit codes of the daemon process; the same numbers as the CLI's (client/exitcodes.py).
EXIT_OK, EXIT_FAILED, EXIT_BUSY, EXIT_INCOMPATIBLE, EXIT_INTERNAL = 0, 1, 6, 7, 70


def version() -> str:
    try:
        return metadata.version("seal")
    except metadata.PackageNotFoundError:
        return "unknown"


class Daemon:
    """A running daemon, as ``create_server`` yields it."""

    def __init__(self, store: Store, address: str, socket_path: str, stop: threading.Event):
        self.store = store
        self.address = address  # "unix:<path>", what grpc.insecure_channel takes
        self.socket_path = socket_path
        self._stop = stop
        self.grace = DEFAULT_GRACE

    def request_stop(self, grace: float | None = None) -> None:
        """Ask the daemon to stop (returns at once; ``create_server``'s exit does the stop)."""
        if grace is not None:
            self.grace = grace
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop is requested; True if it was."""
        return self._stop.wait(timeout)

    def serve_forever(self) -> None:
        """Block until a stop is requested (waking up now and then, so signals get in)."""
        while not self._stop.wait(0.5):
            pass


@contextlib.contextmanager
def create_server(
    store_root: str | os.PathLike,
    socket: str | os.PathLike | None = None,
    *,
    socket_group: str | None = None,
    lease_ttl: float = DEFAULT_TTL,
    max_workers: int = MAX_WORKERS,
    stop_event: threading.Event | None = None,
    realizer_config: RealizerConfig | None = None,
) -> Iterator[Daemon]:
    """Open the store (taking its writer lock), listen, serve; undo all of it on exit.

    Raises StoreLocked when another process writes the store, SocketInUse
    when another daemon answers on the socket, ListenError when the socket
    cannot be made.  Leaving the block stops the server gracefully (see
    ``Daemon.grace``), removes the socket and releases the lock.
    """
    started = time.monotonic()
    store = Store.open(store_root)
    listener: _Listener | None = None
    server: grpc.Server | None = None
    uploads: Uploads | None = None
    health_servicer: health.HealthServicer | None = None
    realizer: Realizer | None = None
    handoff: HandoffServer | None = None
    in_flight = InFlight()
    idle = True
    try:
        listener = _Listener(store.root, socket, socket_group)
        listener.prepare()
        stop = stop_event if stop_event is not None else threading.Event()
        daemon = Daemon(store, f"unix:{listener.path}", listener.path, stop)
        uploads = Uploads(store, ttl=lease_ttl)
        health_servicer = health.HealthServicer(experimental_non_blocking=True)
        handoff = _handoff_server()
        server = grpc.server(
            ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="seal-rpc"),
            options=[("grpc.max_receive_message_length", MAX_MESSAGE)],
        )
        identity = Identity(
            store_path=str(store.root),
            address=f"unix://{listener.path}",
            version=version(),
            store_format=FORMAT_VERSION,
            started=started,
            handoff_address=handoff.address if handoff is not None else "",
        )
        pb_grpc.add_StoreServicer_to_server(
            StoreServicer(store, uploads, in_flight, handoff), server
        )
        pb_grpc.add_DaemonServicer_to_server(
            DaemonServicer(identity, daemon.request_stop, in_flight), server
        )
        realizer = Realizer(store, realizer_config or RealizerConfig())
        build_pb2_grpc.add_BuildServicer_to_server(BuildServicer(realizer, in_flight), server)
        build_pb2_grpc.add_QueryServicer_to_server(QueryServicer(realizer, in_flight), server)
        inputs_pb2_grpc.add_InputsServicer_to_server(InputsServicer(realizer, in_flight), server)
        build_pb2_grpc.add_ImagesServicer_to_server(ImagesServicer(realizer, in_flight), server)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        listener.bind(server)
        server.start()
        uploads.start_reaper()
        if handoff is not None:
            handoff.start()
        for name in SERVICE_NAMES:
            health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "serving store %s on %s (pid %d, seal %s)",
            store.root,
            identity.address,
            os.getpid(),
            identity.version,
        )
        threading.Thread(target=_settle, name="seal-settle", daemon=True).start()
        yield daemon
    finally:
        if health_servicer is not None:
            health_servicer.enter_graceful_shutdown()  # NOT_SERVING for every service
        if realizer is not None:
            realizer.stop()  # running builds end as cancelled, so their streams end too
        if server is not None:
            grace = daemon.grace
            log.info("stopping: in-flight calls have %.0f s to finish", grace)
            server.stop(grace).wait()
            idle = in_flight.wait_idle(_STRAGGLER_WAIT)
            if not idle:
                log.warning(
                    "%d calls still run after the grace period; the store stays locked "
                    "until they end or the process exits",
                    in_flight.count,
                )
        if uploads is not None:
            uploads.close()
        if handoff is not None:
            handoff.close()
        if listener is not None:
            listener.remove()
        if idle:
            store.close()
            if server is not None:
                log.info("stopped; store %s released", store.root)


def _handoff_server() -> HandoffServer | None:
    """The descriptor handoff socket, or None (clients then stream bytes) if it cannot be made."""
    try:
        return HandoffServer()
    except OSError as exc:
        log.warning("no descriptor handoff (%s): local clients will stream bytes", exc)
        return None


# Imported after the daemon answers, not before: the call that started it is served
# sooner, and the next ones find them loaded.
_WARM_MODULES = (
    "seal.daemon.inputs.locker",
    "seal.daemon.inputs.fetch",
    "seal.daemon.inputs.pylock",
    "seal.daemon.build.planner",
    "seal.daemon.build.image_builtins",
)


def _settle() -> None:
    """After start: say whether builds can run here, then load what calls will need."""
    _report_sandbox()
    for name in _WARM_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # the call that needs it reports the error
            log.debug("loading %s failed", name, exc_info=True)


def _report_sandbox() -> None:
    """Say at start, not at the first build, when builds cannot run here."""
    from seal.daemon.build.sandbox import find_bwrap

    try:
        find_bwrap()
    except DaemonError as exc:
        log.warning("builds will fail: %s%s", exc.message, f" ({exc.hint})" if exc.hint else "")


def run(
    store_root: str | os.PathLike,
    socket: str | os.PathLike | None = None,
    socket_group: str | None = None,
    *,
    lease_ttl: float = DEFAULT_TTL,
    max_jobs: int | None = None,
) -> int:
    """Serve in the foreground until SIGTERM/SIGINT or a Shutdown call; return an exit code.

    Errors at start are logged as one line: 6 when the store is locked by
    another writer (or another daemon answers on the socket), 7 when the
    store's format is newer, 1 for any other refusal; 70 (with a traceback)
    for a bug.
    """
    _configure_logging()
    stop = threading.Event()
    previous = _install_signal_handlers(stop)
    try:
        config = RealizerConfig() if max_jobs is None else RealizerConfig(max_jobs=max_jobs)
        with create_server(
            store_root,
            socket,
            socket_group=socket_group,
            lease_ttl=lease_ttl,
            stop_event=stop,
            realizer_config=config,
        ) as daemon:
            daemon.serve_forever()
    except (StoreError, DaemonError) as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        log.error("cannot start: %s%s", exc.message, hint)
        if isinstance(exc, StoreLocked | SocketInUse):
            return EXIT_BUSY
        if isinstance(exc, StoreVersionError):
            return EXIT_INCOMPATIBLE
        return EXIT_FAILED
    except Exception:
        log.exception("the daemon failed")
        return EXIT_INTERNAL
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return EXIT_OK


def _install_signal_handlers(stop: threading.Event) -> dict:
    """SIGTERM/SIGINT request a graceful stop; a second one ends the process at once."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}

    def handle(signum, frame):
        if stop.is_set():
            log.warning("%s again: exiting now", signal.Signals(signum).name)
            os._exit(EXIT_FAILED)
        log.info("%s: stopping (send it again to exit at once)", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, handle)
    return previous


def _configure_logging() -> None:
    if log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s seal-daemon[%(process)d] %(levelname)s %(message)s",
            datefmt="%Y-%m-%dT%H:%M:%S",
        )
    )
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


class _Listener:
    """The socket file: where it goes, who may connect, and cleaning it up."""

    def __init__(self, store_root: Path, path: str | os.PathLike | None, group: str | None) -> None:
        self._store_root = store_root
        self._gid = _group_id(group) if group is not None else None
        self._link: str | None = None  # <store>/daemon.sock when it links to a short path
        default = socket_path(store_root)
        self.path = os.path.abspath(path) if path is not None else default
        self._private_dir: str | None = None  # a directory someone chose: leave its mode
        if self.path == default or os.path.dirname(self.path) == str(store_root):
            self._private_dir = os.path.dirname(self.path)
        if self.path == default and default != str(store_root / SOCKET_NAME):
            self._link = str(store_root / SOCKET_NAME)
        if len(os.fsencode(self.path)) > _MAX_SUN_PATH:
            raise ListenError(
                f"socket path {self.path} is longer than a Unix socket address allows "
                f"({_MAX_SUN_PATH} bytes)",
                hint="pass a shorter --socket",
            )
        self._inode: tuple[int, int] | None = None

    def prepare(self) -> None:
        """Make the socket's directory private, and clear a stale socket file."""
        directory = os.path.dirname(self.path)
        if self._private_dir is not None:
            if self._private_dir != str(self._store_root):
                _make_private_dir(self._private_dir)
            mode = 0o750 if self._gid is not None else 0o700
            os.chmod(self._private_dir, mode)
            if self._gid is not None:
                os.chown(self._private_dir, -1, self._gid)
        elif not os.path.isdir(directory):
            raise ListenError(f"cannot listen on {self.path}: {directory} is not a directory")
        _clear_stale(self.path)

    def bind(self, server: grpc.Server) -> None:
        mode = 0o660 if self._gid is not None else 0o600
        old = os.umask(0o777 & ~mode)
        try:
            server.add_insecure_port(f"unix:{self.path}")
        except RuntimeError as exc:
            raise ListenError(f"cannot listen on {self.path}: {exc}") from None
        finally:
            os.umask(old)
        os.chmod(self.path, mode)
        if self._gid is not None:
            os.chown(self.path, -1, self._gid)
        st = os.lstat(self.path)
        self._inode = (st.st_dev, st.st_ino)
        if self._link is not None:
            tmp = f"{self._link}.{os.getpid()}.tmp"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(self.path, tmp)
            os.replace(tmp, self._link)

    def remove(self) -> None:
        """Remove our socket (grpc may have already) and the link to it; nobody else's."""
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(self.path)
            if self._inode == (st.st_dev, st.st_ino):
                os.unlink(self.path)
        if self._link is not None:
            with contextlib.suppress(FileNotFoundError, OSError):
                if os.readlink(self._link) == self.path:
                    os.unlink(self._link)


def _group_id(group: str) -> int:
    try:
        return int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise ListenError(f"unknown group {group!r} for --socket-group") from None


def _make_private_dir(path: str) -> None:
    """Create ``path`` (e.g. /tmp/seal-<uid>) as ours alone; refuse one someone else planted."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise ListenError(
            f"{path} is not a directory owned by uid {os.getuid()}; refusing to put the "
            "daemon's socket there",
            hint=f"remove {path}, or pass --socket",
        )


def _clear_stale(path: str) -> None:
    """Remove a socket file nobody answers on; refuse if a daemon does."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not (stat.S_ISSOCK(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        raise ListenError(
            f"cannot listen on {path}: it exists and is not a socket",
            hint="move it away, or pass another --socket",
        )
    probe = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("removing stale socket %s", path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    except OSError as exc:
        if isinstance(exc, TimeoutError):
            raise SocketInUse(path) from None
        raise ListenError(f"cannot probe the existing socket {path}: {exc.strerror}") from None
    finally:
        probe.close()
    raise SocketInUse(path)
