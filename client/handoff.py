"""Hand the daemon an open descriptor instead of streaming bytes (the client's side).

The daemon's side and the why are in ``seal.daemon.handoff``.  ``hand_over``
opens a regular file or a directory (never following a symlink), passes the
descriptor over the daemon's abstract handoff socket with SCM_RIGHTS and
returns the token for ``AddHandoff``.  It returns None whenever the handoff
is not available — no address, another network namespace, another user, a
busy daemon — and the caller then streams bytes over gRPC as before; only
``SEAL_UPLOAD=stream`` turns it off on purpose.
"""

from __future__ import annotations

import array
import os
import socket
import stat

MAGIC = b"seal-handoff-1"  # the daemon's seal.daemon.handoff.MAGIC
_TIMEOUT = 5.0
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def enabled() -> bool:
    """False when the user asked for uploads over gRPC only (``SEAL_UPLOAD=stream``)."""
    return os.environ.get("SEAL_UPLOAD", "") != "stream"


def hand_over(address: str, path: str | os.PathLike) -> str | None:
    """The daemon's token for ``path`` opened here, or None to stream instead."""
    if not address:
        return None
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISDIR(mode):
            fd = os.open(path, _OPEN_FLAGS | os.O_DIRECTORY)
        elif stat.S_ISREG(mode):
            fd = os.open(path, _OPEN_FLAGS | os.O_NONBLOCK)
        else:
            return None  # the streaming path names what is wrong with it
    except OSError:
        return None
    try:
        return _send(address, fd)
    finally:
        os.close(fd)


def _send(address: str, fd: int) -> str | None:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(_TIMEOUT)
            sock.connect("\0" + address)
            rights = array.array("i", [fd]).tobytes()
            sock.sendmsg([MAGIC], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
            reply = sock.recv(256)
    except OSError:
        return None  # no such socket here (another network namespace), or it went away
    if reply.startswith(b"ok "):
        return reply[3:].decode("ascii", "replace").strip() or None
    return None  # refused (another user, busy): streaming still works
