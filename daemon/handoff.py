"""The handoff socket: a local client passes the daemon an open descriptor (SCM_RIGHTS).

Why: through gRPC a client hashes everything first and the bytes cross in
1 MiB messages (a fifth of a local add's speed, bench/RESULTS.md).  A client
running as the daemon's own user instead opens the file or directory itself,
hands the descriptor over here, and gets a one-time token; ``AddHandoff``
then ingests through that descriptor as fast as a local add.  The daemon
still never opens a path a client names: the client opened it, with its own
permissions.  Peers of any other uid (a socket group) are refused here and
stream bytes as before.

The socket lives in Linux's abstract namespace under a random name that
Status publishes, so no file is left behind by a killed daemon; abstract
sockets have no file permissions, which is why every peer's uid is checked
(SO_PEERCRED).  One exchange per connection, on SOCK_SEQPACKET: the client
sends ``MAGIC`` with exactly one descriptor; the daemon answers
``ok <token>`` or ``err <reason> <message>`` and closes.  A token is used
once and lapses after ``TOKEN_TTL`` seconds (its descriptor is closed).
"""

from __future__ import annotations

import array
import contextlib
import logging
import os
import secrets
import socket
import stat
import struct
import threading
import time

from seal.daemon.errors import HandoffUnknown

log = logging.getLogger("seal.daemon")

MAGIC = b"seal-handoff-1"
TOKEN_TTL = 60.0  # seconds between handing a descriptor over and AddHandoff
MAX_PENDING = 256  # descriptors held at once; more are refused (reason "handoff-busy")
_RECV_TIMEOUT = 2.0  # a peer that connects and sends nothing is dropped after this
_MAX_FDS = 4  # ancillary room: extra descriptors are received only to be closed
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class HandoffServer:
    """Accepts descriptors on an abstract Unix socket; ``take`` claims one by token."""

    def __init__(self, ttl: float = TOKEN_TTL, max_pending: int = MAX_PENDING):
        self.address = f"seal-handoff-{os.getpid()}-{secrets.token_hex(8)}"
        self._ttl = ttl
        self._max_pending = max_pending
        self._pending: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        self._sock.bind("\0" + self.address)
        self._sock.listen(64)
        self._sock.settimeout(0.5)  # wakes the accept loop to notice close()
        self._thread = threading.Thread(target=self._serve, name="seal-handoff", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop accepting and close every descriptor still waiting."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=5)
        self._sock.close()
        with self._lock:
            pending, self._pending = self._pending, {}
        for fd, _ in pending.values():
            os.close(fd)

    def take(self, token: str) -> int:
        """The descriptor handed over under ``token``; the caller owns (and closes) it."""
        with self._lock:
            self._expire(time.monotonic())
            entry = self._pending.pop(token, None)
        if entry is None:
            raise HandoffUnknown(self._ttl)
        return entry[0]

    # -- the accept loop -------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._closed.is_set():
                    return
                log.exception("the handoff socket failed; clients will stream bytes instead")
                return
            with conn:
                try:
                    self._exchange(conn)
                except OSError as exc:  # the peer went away mid-exchange: nothing to keep
                    log.debug("handoff exchange failed: %s", exc)

    def _exchange(self, conn: socket.socket) -> None:
        conn.settimeout(_RECV_TIMEOUT)
        _, uid, _ = _PEERCRED.unpack(
            conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        )
        fds = array.array("i")
        msg, ancdata, flags, _ = conn.recvmsg(64, socket.CMSG_SPACE(_MAX_FDS * fds.itemsize))
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        # _admit owns the descriptors from here: it keeps one or closes them all
        conn.sendall(self._admit(uid, msg, flags, fds))

    def _admit(self, uid: int, msg: bytes, flags: int, fds: array.array) -> bytes:
        """Keep the one descriptor and answer its token, or close them all and say why."""
        refusal = None
        if uid != os.getuid():
            refusal = ("handoff-denied", "only the daemon's own user may hand over descriptors")
        elif msg != MAGIC or len(fds) != 1 or flags & socket.MSG_CTRUNC:
            refusal = ("handoff-malformed", f"send {MAGIC.decode()} with exactly one descriptor")
        else:
            mode = os.fstat(fds[0]).st_mode  # a descriptor just received: fstat cannot fail
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                refusal = ("unsupported-file", "hand over a regular file or a directory")
        if refusal is not None:
            for fd in fds:
                os.close(fd)
            return f"err {refusal[0]} {refusal[1]}".encode()
        token = secrets.token_hex(16)
        with self._lock:
            now = time.monotonic()
            self._expire(now)
            if len(self._pending) >= self._max_pending:
                os.close(fds[0])
                return b"err handoff-busy too many descriptors wait for AddHandoff"
            self._pending[token] = (fds[0], now + self._ttl)
        return b"ok " + token.encode()

    def _expire(self, now: float) -> None:
        """Close lapsed descriptors (called with the lock held)."""
        for token in [t for t, (_, deadline) in self._pending.items() if deadline < now]:
            os.close(self._pending.pop(token)[0])
