"""Per-build pids cgroups: the process limit that holds even when the daemon runs as root.

RLIMIT_NPROC does not bind processes whose real uid is root, and a root daemon's
sandbox maps its builder to root outside; a cgroup with ``pids.max`` binds
everyone.  Works with the pids hierarchy of cgroup v1 and with cgroup v2 where
the daemon's cgroup can delegate the pids controller.  ``PidsCgroup.create``
returns None when neither is writable (an unprivileged daemon without a
delegated cgroup): the sandbox then falls back to RLIMIT_NPROC.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time

_cgroup_counter = itertools.count()


class PidsCgroup:
    """A per-build cgroup with ``pids.max`` set (cgroup v1 pids hierarchy or cgroup v2)."""

    def __init__(self, path: str):
        self.path = path
        self.procs_fd = os.open(f"{path}/cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)

    @classmethod
    def create(cls, limit: int) -> PidsCgroup | None:
        """A fresh cgroup under the daemon's own, or None when none can be made here."""
        parent = pids_parent()
        if parent is None:
            return None
        _remove_stale(parent)
        path = f"{parent}/seal-build-{os.getpid()}-{next(_cgroup_counter)}"
        try:
            os.mkdir(path)
        except OSError:
            return None
        try:
            with open(f"{path}/pids.max", "w") as f:
                f.write(str(limit))
            return cls(path)
        except OSError:
            _rmdir(path)
            return None

    def breached(self) -> bool:
        """Whether a fork was refused for the limit."""
        try:
            with open(f"{self.path}/pids.events") as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "max":
                        return int(value) > 0
        except (OSError, ValueError):
            pass
        return False

    def pids(self) -> list[int]:
        return _cgroup_pids(self.path)

    def empty(self) -> bool:
        return not self.pids()

    def kill_all(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # a pid in our cgroup cannot be reused meanwhile

    def remove(self) -> None:
        os.close(self.procs_fd)
        for _ in range(500):
            self.kill_all()
            if _rmdir(self.path):
                return
            time.sleep(0.01)


def _cgroup_pids(path: str) -> list[int]:
    try:
        with open(f"{path}/cgroup.procs") as f:
            return [int(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return []


def _rmdir(path: str) -> bool:
    try:
        os.rmdir(path)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _remove_stale(parent: str) -> None:
    """Kill what is left in the build cgroups of daemons that died, and remove those cgroups.

    ``--die-with-parent`` normally takes a build down with its daemon, but bwrap's
    pid 1 arms its parent-death signal only after starting the builder, so a
    daemon killed in that instant can leave a build running on its own.
    """
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        parts = name.split("-")
        if len(parts) == 4 and parts[:2] == ["seal", "build"] and parts[2].isdigit():
            pid = int(parts[2])
            if pid != os.getpid() and not os.path.exists(f"/proc/{pid}"):
                path = f"{parent}/{name}"
                for pid in _cgroup_pids(path):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                for _ in range(5):
                    if _rmdir(path):
                        break
                    time.sleep(0.01)  # the killed need a moment to leave; else next time


def pids_parent() -> str | None:
    """The daemon's own cgroup directory in a hierarchy with the pids controller, if writable."""
    try:
        with open("/proc/self/mounts") as f:
            mounts = [line.split() for line in f]
        with open("/proc/self/cgroup") as f:
            memberships = [line.rstrip("\n").split(":", 2) for line in f]
    except OSError:
        return None
    own_v1 = next((m[2] for m in memberships if len(m) == 3 and "pids" in m[1].split(",")), None)
    own_v2 = next((m[2] for m in memberships if len(m) == 3 and m[0] == "0"), None)
    for fields in mounts:
        if len(fields) < 4:
            continue
        mountpoint, fstype, options = _unescape(fields[1]), fields[2], fields[3].split(",")
        if fstype == "cgroup" and "pids" in options and own_v1 is not None:
            parent = mountpoint + own_v1.rstrip("/")
            if os.access(parent, os.W_OK):
                return parent
        if fstype == "cgroup2" and own_v2 is not None:
            parent = mountpoint + own_v2.rstrip("/")
            if os.access(parent, os.W_OK) and _v2_delegates_pids(parent):
                return parent
    return None


def _v2_delegates_pids(parent: str) -> bool:
    try:
        with open(f"{parent}/cgroup.subtree_control") as f:
            if "pids" in f.read().split():
                return True
        with open(f"{parent}/cgroup.controllers") as f:
            if "pids" not in f.read().split():
                return False
        with open(f"{parent}/cgroup.subtree_control", "w") as f:
            f.write("+pids")  # refused when the daemon's cgroup holds processes itself
        return True
    except OSError:
        return False


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
