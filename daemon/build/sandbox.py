"""The build sandbox: one bubblewrap (``bwrap``) process tree per build (DESIGN §7).

>>> spec = SandboxSpec(root=root_dir, inputs={"src": src_dir}, args=["/bin/sh", "-c", "make"],
...                    env={}, outputs=["out"], source_date_epoch=315532800)   # doctest: +SKIP
>>> result = run(spec, workdir, log=sys.stdout.buffer.write)                    # doctest: +SKIP

What the builder sees, whoever runs the daemon and wherever its store is:

- new user, pid, ipc, uts, cgroup (when possible) and network namespaces: only
  loopback exists, and no further user namespace can be made inside;
- ``/`` is a read-only tmpfs holding each top-level entry of the root tree
  (bound read-only, symlinks recreated), ``/etc`` with the root's entries plus
  generated ``passwd``, ``group`` and ``hosts``, the inputs read-only at
  ``/inputs/<name>``, writable ``/build`` (the cwd) and ``/out``, a tmpfs
  ``/tmp``, a minimal ``/dev`` and a fresh ``/proc``; nothing else of the host;
- uid/gid 1000 (``builder``), hostname ``localhost``, umask 022, no
  capabilities, its own session; the environment is the derivation's plus
  ``HOME``, ``TZ``, ``LC_ALL``, ``SOURCE_DATE_EPOCH``, ``SEAL_BUILD_CORES``,
  ``TMPDIR``, ``PWD``, one variable per output and ``PATH=/path-not-set`` unless
  the derivation sets ``PATH``.

bwrap's own arguments travel on its stdin (``--args 0``) and it runs with an
empty environment, so the sandbox's pid 1 shows ``bwrap --args 0 -- <args>``
and no host path or variable.  What still differs between hosts and daemons:
``/proc/self/mountinfo`` names the host directories bound in; the link count
of ``/proc`` is the host's process count; host-root-owned things (``/proc``,
the device nodes) show as ``builder`` when the daemon runs as root and as
``nobody`` when it runs as a user (host root is then unmapped); rlimits other
than the two set here are inherited from the daemon.

Limits: a wall-clock timeout; the bytes under ``/out`` (RLIMIT_FSIZE per file,
a watcher summing what is allocated a few times a second, and a final count);
the number of processes (a per-build pids cgroup when the daemon can make one,
else RLIMIT_NPROC, which the kernel does not apply to root and which counts
every process of the daemon's user).  On a breach, a cancel or a timeout the
whole tree is killed: killing the pid namespace's init kills everything in it.
``run`` returns only once every process is gone.  ``--die-with-parent`` takes
the tree down with the daemon's thread; the instant it misses is covered, with
a cgroup, by the next build sweeping the cgroups of dead daemons.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import selectors
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from seal.daemon.errors import SandboxUnavailable

from .cgroup import PidsCgroup

BUILD_UID = 1000
BUILD_GID = 1000
HOME = "/homeless-shelter"
NO_PATH = "/path-not-set"
LOG_LIMIT = 64 << 20
LOG_TRUNCATED = b"\n[seal: log truncated]\n"

PASSWD = (
    f"builder:x:{BUILD_UID}:{BUILD_GID}:seal builder:{HOME}:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = f"builder:x:{BUILD_GID}:\nnogroup:x:65534:\n"
HOSTS = "127.0.0.1 localhost\n::1 localhost\n"
_GENERATED_ETC = {"passwd": PASSWD, "group": GROUP, "hosts": HOSTS}
# Top-level names the sandbox provides itself; the root tree's entries of these names are hidden.
_OWN_MOUNTS = frozenset({"build", "out", "inputs", "tmp", "dev", "proc", "etc"})

_TICK = 0.05  # seconds between checks of the cancel event and the deadline
_SCAN_EVERY = 0.25  # seconds between output-size scans (stretched when a scan is slow)
_PROBE_TIMEOUT = 20.0
_FALLBACK_PATHS = ("/usr/bin/bwrap", "/usr/local/bin/bwrap")  # when bwrap is not on PATH


@dataclass(frozen=True)
class Limits:
    """What one build may use; the realizer picks them, they are not part of a derivation."""

    timeout: float = 6 * 3600.0  # wall-clock seconds
    max_output_bytes: int = 16 << 30  # total bytes under /out (and per file, via RLIMIT_FSIZE)
    max_processes: int = 4096


@dataclass(frozen=True)
class SandboxSpec:
    """One build: the tree that becomes ``/``, its inputs, the command and its environment."""

    root: Path  # a materialized store tree: becomes "/", read-only
    inputs: Mapping[str, Path]  # name -> tree dir or blob file; read-only at /inputs/<name>
    args: Sequence[str]  # argv; args[0] is an absolute path inside the root
    env: Mapping[str, str]  # the derivation's env (already validated)
    outputs: Sequence[str]  # /out/<name> pre-created as empty dirs; env var <name>=/out/<name>
    source_date_epoch: int
    cores: int = 1
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class SandboxResult:
    """How a build ended.  ``reason`` is "" when ``ok``, else one line a person can act on."""

    ok: bool
    exit_status: int | None  # the builder's exit status, or None if seal killed it
    reason: str
    duration: float


# -- finding bubblewrap ----------------------------------------------------------------------
_probe_lock = threading.Lock()
_probe_result: str | SandboxUnavailable | None = None


def find_bwrap() -> str:
    """The path of a bwrap that can build a sandbox here (probed once, then cached).

    Raises SandboxUnavailable when bwrap is not installed, or when a trivial
    sandbox fails (user namespaces disabled, a restrictive security module, ...).
    """
    global _probe_result
    with _probe_lock:
        if _probe_result is None:
            _probe_result = _probe()
        if isinstance(_probe_result, SandboxUnavailable):
            raise _probe_result
        return _probe_result


def _probe() -> str | SandboxUnavailable:
    path = shutil.which("bwrap") or next(
        (p for p in _FALLBACK_PATHS if os.access(p, os.X_OK)), None
    )
    if path is None:
        return SandboxUnavailable(
            "bubblewrap (bwrap) is not installed", hint="apt-get install bubblewrap"
        )
    argv = [
        "bwrap",
        *_NAMESPACE_ARGS,
        "--ro-bind", "/", "/",
        "--proc", "/proc",
        "--dev", "/dev",
        "--", path, "--version",
    ]  # fmt: skip
    try:
        proc = subprocess.run(
            argv,
            executable=path,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env={},
            timeout=_PROBE_TIMEOUT,
            start_new_session=True,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return SandboxUnavailable(f"bubblewrap ({path}) cannot be run: {exc}")
    if proc.returncode == 0:
        return path
    lines = proc.stderr.decode(errors="replace").strip().splitlines()
    why = lines[-1] if lines else f"it exited with status {proc.returncode}"
    hint = None
    if "namespace" in why.lower() or "permission" in why.lower():
        hint = (
            "allow unprivileged user namespaces (sysctl user.max_user_namespaces > 0, "
            "kernel.unprivileged_userns_clone=1, or an AppArmor profile for bwrap) "
            "or run the daemon as root"
        )
    return SandboxUnavailable(f"bubblewrap ({path}) cannot create a sandbox: {why}", hint=hint)


_NAMESPACE_ARGS = (
    "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
    "--unshare-cgroup-try",
    "--uid", str(BUILD_UID), "--gid", str(BUILD_GID),
    "--disable-userns",
    "--cap-drop", "ALL",
    "--new-session",
    "--die-with-parent",
)  # fmt: skip


# -- running a build -------------------------------------------------------------------------
def run(
    spec: SandboxSpec,
    workdir: Path,
    log: Callable[[bytes], None],
    cancel: threading.Event | None = None,
) -> SandboxResult:
    """Run one build in a fresh sandbox and wait until every process of it is gone.

    Creates ``workdir/build`` (the cwd) and ``workdir/out/<name>`` per output;
    the caller ingests the outputs afterwards.  The builder's stdout and stderr
    go, merged and as they come, to ``log`` (at most LOG_LIMIT bytes).

    Raises SandboxUnavailable when bubblewrap is missing or unusable; a build
    that fails, is killed or is cancelled is a result with ``ok=False``.
    """
    bwrap = find_bwrap()
    start = time.monotonic()
    if cancel is not None and cancel.is_set():
        return SandboxResult(False, None, "cancelled", 0.0)
    workdir = Path(workdir)
    out_dir = _prepare_workdir(workdir, spec.outputs)
    limits = spec.limits
    cgroup = PidsCgroup.create(limits.max_processes + 2)  # + bwrap and the namespace's init
    try:
        if cgroup is None and os.geteuid() == 0:
            log(b"[seal: no pids cgroup available; the process limit is not enforced]\n")
        return _Build(spec, workdir, out_dir, log, cancel, cgroup, bwrap, start).run()
    finally:
        if cgroup is not None:
            cgroup.remove()


def _prepare_workdir(workdir: Path, outputs: Sequence[str]) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    build = workdir / "build"
    out = workdir / "out"
    for path in (build, out, *(out / name for name in outputs)):
        path.mkdir()
        os.chmod(path, 0o755)  # not the daemon's umask: the build sees these modes
    return out


def environment(spec: SandboxSpec) -> dict[str, str]:
    """The builder's whole environment, sorted by name."""
    env = dict(spec.env)
    env.setdefault("PATH", NO_PATH)
    env.update(
        HOME=HOME,
        TZ="UTC",
        LC_ALL="C.UTF-8",
        SOURCE_DATE_EPOCH=str(spec.source_date_epoch),
        SEAL_BUILD_CORES=str(spec.cores),
        TMPDIR="/tmp",
        PWD="/build",
    )
    for name in spec.outputs:
        env[name] = f"/out/{name}"
    return dict(sorted(env.items()))


def bwrap_options(
    spec: SandboxSpec, workdir: Path, data_fds: Mapping[str, int], status_fd: int
) -> list[str]:
    """bwrap's options (everything before ``--``) for ``spec``.

    ``data_fds`` maps each generated /etc file name to a readable fd holding
    its bytes; ``status_fd`` receives bwrap's JSON status lines.
    """
    opts: list[str] = [*_NAMESPACE_ARGS, "--hostname", "localhost", "--clearenv"]
    for key, value in environment(spec).items():
        opts += ["--setenv", key, value]
    root = os.fspath(spec.root)
    for entry in _entries(root):
        if entry.name not in _OWN_MOUNTS:
            opts += _place(entry, f"/{entry.name}")
    opts += ["--perms", "0755", "--dir", "/etc"]
    etc = os.path.join(root, "etc")
    if os.path.isdir(etc) and not os.path.islink(etc):
        for entry in _entries(etc):
            if entry.name not in _GENERATED_ETC:
                opts += _place(entry, f"/etc/{entry.name}")
    for name in sorted(data_fds):
        opts += ["--perms", "0644", "--ro-bind-data", str(data_fds[name]), f"/etc/{name}"]
    opts += ["--perms", "0755", "--dir", "/inputs"]
    for name in sorted(spec.inputs):
        opts += ["--ro-bind", os.fspath(spec.inputs[name]), f"/inputs/{name}"]
    opts += [
        "--bind", os.fspath(workdir / "build"), "/build",
        "--bind", os.fspath(workdir / "out"), "/out",
        "--perms", "1777", "--tmpfs", "/tmp",
        "--dev", "/dev",
        "--proc", "/proc",
        "--chdir", "/build",
        "--remount-ro", "/",
        "--json-status-fd", str(status_fd),
    ]  # fmt: skip
    return opts


def _entries(path: str) -> list[os.DirEntry]:
    with os.scandir(path) as it:
        return sorted(it, key=lambda e: e.name)


def _place(entry: os.DirEntry, dest: str) -> list[str]:
    if entry.is_symlink():
        return ["--symlink", os.readlink(entry.path), dest]
    if entry.is_dir(follow_symlinks=False) or entry.is_file(follow_symlinks=False):
        return ["--ro-bind", entry.path, dest]
    return []  # a store tree holds nothing else


class _Build:
    """The state of one running build: its process, pipes, deadline and what ended it."""

    def __init__(
        self,
        spec: SandboxSpec,
        workdir: Path,
        out_dir: Path,
        log: Callable[[bytes], None],
        cancel: threading.Event | None,
        cgroup: PidsCgroup | None,
        bwrap: str,
        start: float,
    ):
        self.spec = spec
        self.limits: Limits = spec.limits
        self.workdir: Path = workdir
        self.out_dir: Path = out_dir
        self.log = log
        self.cancel: threading.Event | None = cancel
        self.cgroup: PidsCgroup | None = cgroup
        self.bwrap: str = bwrap
        self.start = start
        self.deadline = start + self.limits.timeout
        self.proc: subprocess.Popen | None = None
        self.init_pidfd: int | None = None  # the sandbox's pid 1, once bwrap reports it
        self.exit_code: int | None = None
        self.killed: str | None = None  # why seal killed the build
        self.logged = 0
        self.log_tail = b""
        self.status_buf = b""
        self.fds: list[int] = []  # open pipe ends, closed when the build ends

    # -- the whole life of the build -------------------------------------------------------
    def run(self) -> SandboxResult:
        fds = self.fds
        try:
            data_fds = {}
            for name, text in _GENERATED_ETC.items():
                data_fds[name] = _data_pipe(text.encode(), fds)
            status_r, status_w = os.pipe2(os.O_CLOEXEC)
            fds += [status_r, status_w]
            args_r, args_w = os.pipe2(os.O_CLOEXEC)
            fds += [args_r, args_w]
            log_r, log_w = os.pipe2(os.O_CLOEXEC)
            fds += [log_r, log_w]
            options = bwrap_options(self.spec, self.workdir, data_fds, status_w)
            args_data = b"".join(os.fsencode(a) + b"\0" for a in options)
            self.proc = subprocess.Popen(
                ["bwrap", "--args", "0", "--", *self.spec.args],
                executable=self.bwrap,
                stdin=args_r,
                stdout=log_w,
                stderr=log_w,
                pass_fds=(*data_fds.values(), status_w),
                env={},
                umask=0o022,
                start_new_session=True,
                extra_groups=[] if os.geteuid() == 0 else None,
                preexec_fn=_child_setup(self.limits, self.cgroup),
            )
            for fd in (*data_fds.values(), status_w, args_r, log_w):
                _close(fd, fds)
            self._loop(log_r, status_r, args_w, args_data)
        except BaseException:
            self._kill()
            raise
        finally:
            self._reap()
            for fd in list(fds):
                _close(fd, fds)
            if self.init_pidfd is not None:
                os.close(self.init_pidfd)
        return self._result()

    def _loop(self, log_r: int, status_r: int, args_w: int, args_data: bytes) -> None:
        os.set_blocking(args_w, False)
        sel = selectors.DefaultSelector()
        sel.register(log_r, selectors.EVENT_READ, "log")
        sel.register(status_r, selectors.EVENT_READ, "status")
        sel.register(args_w, selectors.EVENT_WRITE, "args")
        pending = memoryview(args_data)
        next_scan = self.start + _SCAN_EVERY
        killed_at = 0.0
        exited_at: float | None = None
        try:
            while sel.get_map():
                for key, _ in sel.select(_TICK):
                    if key.data == "args":
                        try:
                            pending = pending[os.write(args_w, pending[: 1 << 16]) :]
                        except (BlockingIOError, InterruptedError):
                            continue
                        except BrokenPipeError:  # bwrap died before reading them all
                            pending = pending[:0]
                        if not pending:
                            sel.unregister(args_w)
                            _close(args_w, self.fds)
                        continue
                    chunk = os.read(key.fd, 1 << 16)
                    if not chunk:
                        sel.unregister(key.fd)
                    elif key.data == "log":
                        self._emit(chunk)
                    else:
                        self._status(chunk)
                now = time.monotonic()
                if self.proc.poll() is not None:
                    # bwrap reaped the namespace's init, so nothing of the build should be
                    # left; whatever is (only possible without a pid namespace) is killed,
                    # and a log pipe someone still holds is not waited on for ever.
                    if exited_at is None:
                        exited_at = now
                        if self.cgroup is not None:
                            self.cgroup.kill_all()
                    elif now - exited_at > 2.0:
                        break
                if self.killed is not None:
                    if now - killed_at > 1.0:  # a fork raced the kill: kill again
                        self._kill()
                        killed_at = now
                    continue
                if self.cancel is not None and self.cancel.is_set():
                    self._stop("cancelled")
                    killed_at = now
                elif now >= self.deadline:
                    self._stop(f"killed: wall-clock timeout of {self.limits.timeout:g} s exceeded")
                    killed_at = now
                elif self.cgroup is not None and self.cgroup.breached():
                    self._stop(f"killed: process limit of {self.limits.max_processes} reached")
                    killed_at = now
                elif now >= next_scan:
                    size = output_bytes(self.out_dir, self.limits.max_output_bytes)
                    if size > self.limits.max_output_bytes:
                        self._stop(f"killed: output exceeded {_size(self.limits.max_output_bytes)}")
                        killed_at = now
                    scan_took = time.monotonic() - now
                    next_scan = now + max(_SCAN_EVERY, 4 * scan_took)
        finally:
            sel.close()

    # -- log and status pipes --------------------------------------------------------------
    def _emit(self, chunk: bytes) -> None:
        self.log_tail = (self.log_tail + chunk)[-4096:]
        if self.logged >= LOG_LIMIT:
            return
        room = LOG_LIMIT - self.logged
        self.logged += len(chunk)
        if len(chunk) <= room:
            self.log(chunk)
            return
        self.log(chunk[:room])
        self.log(LOG_TRUNCATED)

    def _status(self, chunk: bytes) -> None:
        self.status_buf += chunk
        *lines, self.status_buf = self.status_buf.split(b"\n")
        for line in lines:
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if not isinstance(doc, dict):
                continue
            if isinstance(doc.get("child-pid"), int):
                self._watch_init(doc["child-pid"])
            if isinstance(doc.get("exit-code"), int):
                self.exit_code = doc["exit-code"]

    def _watch_init(self, pid: int) -> None:
        """Hold a pidfd on the sandbox's pid 1: killing it kills the whole namespace."""
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return  # already gone
        if _parent_of(pid) != self.proc.pid:  # reaped and the pid reused: not ours
            os.close(fd)
            return
        self.init_pidfd = fd
        if self.killed is not None:
            self._kill()

    # -- stopping --------------------------------------------------------------------------
    def _stop(self, reason: str) -> None:
        self.killed = reason
        self._kill()

    def _kill(self) -> None:
        """SIGKILL the namespace's init, bwrap's session and every pid in the cgroup."""
        if self.init_pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.init_pidfd, signal.SIGKILL)
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # not reaped yet: the group is ours
        if self.cgroup is not None:
            self.cgroup.kill_all()

    def _reap(self) -> None:
        """Wait for bwrap, the namespace's init (so every process in it) and the cgroup."""
        if self.proc is None:
            return
        while True:
            try:
                self.proc.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                self._kill()
        while self.init_pidfd is not None and not _readable(self.init_pidfd, 1.0):
            self._kill()
        while self.cgroup is not None and not self.cgroup.empty():
            self.cgroup.kill_all()
            time.sleep(0.01)

    def _result(self) -> SandboxResult:
        duration = time.monotonic() - self.start
        limits = self.limits
        if self.killed is not None:
            return SandboxResult(False, None, self.killed, duration)
        if output_bytes(self.out_dir, limits.max_output_bytes) > limits.max_output_bytes:
            reason = f"output exceeded {_size(limits.max_output_bytes)}"
            return SandboxResult(False, self.exit_code, reason, duration)
        if self.exit_code is None:
            return SandboxResult(False, None, self._setup_failure(), duration)
        if self.cgroup is not None and self.cgroup.breached():
            reason = f"killed: process limit of {limits.max_processes} reached"
            return SandboxResult(False, self.exit_code, reason, duration)
        if self.exit_code != 0:
            if self.exit_code == 1 and self._bwrap_said():
                return SandboxResult(False, None, self._setup_failure(), duration)
            return SandboxResult(False, self.exit_code, _describe(self.exit_code), duration)
        return SandboxResult(True, 0, "", duration)

    def _bwrap_said(self) -> str:
        lines = self.log_tail.decode(errors="replace").strip().splitlines()
        return lines[-1] if lines and lines[-1].startswith("bwrap: ") else ""

    def _setup_failure(self) -> str:
        said = self._bwrap_said()
        program, sep, why = said.removeprefix("bwrap: execvp ").rpartition(": ")
        if said.startswith("bwrap: execvp ") and sep:
            return f"cannot run the builder {program}: {why}"
        if said:
            return f"the sandbox could not be set up: {said}"
        return f"the sandbox could not be set up (bwrap exited with status {self.proc.returncode})"


def _child_setup(limits: Limits, cgroup: PidsCgroup | None) -> Callable[[], None]:
    """What the forked child does before exec-ing bwrap: join the cgroup, set rlimits."""
    fsize = _capped(resource.RLIMIT_FSIZE, limits.max_output_bytes)
    nproc = None if os.geteuid() == 0 else _capped(resource.RLIMIT_NPROC, limits.max_processes)
    procs_fd = cgroup.procs_fd if cgroup is not None else None

    def setup() -> None:
        if procs_fd is not None:
            os.write(procs_fd, b"0")  # "0": the writing process itself
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

    return setup


def _capped(which: int, wanted: int) -> int:
    hard = resource.getrlimit(which)[1]
    return wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)


def _data_pipe(data: bytes, fds: list[int]) -> int:
    """A pipe already holding ``data`` (a few hundred bytes: it fits the pipe buffer)."""
    r, w = os.pipe2(os.O_CLOEXEC)
    fds.append(r)
    try:
        os.write(w, data)
    finally:
        os.close(w)
    return r


def _close(fd: int, fds: list[int]) -> None:
    if fd in fds:
        fds.remove(fd)
        os.close(fd)


def _readable(fd: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _describe(code: int) -> str:
    # bwrap reports a builder killed by signal n as 128+n, as a shell does.
    if 128 < code < 128 + signal.NSIG:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            name = ""
        if name:
            return f"builder killed by signal {code - 128} ({name})"
    return f"builder exited with status {code}"


def output_bytes(root: Path, stop_above: int | None = None) -> int:
    """Bytes under ``root``: per entry the larger of its size and its allocation.

    Sparse files count at their full size (ingesting reads them whole).  A
    directory the builder made unreadable is given back its owner's access
    first.  Stops counting once past ``stop_above``.
    """
    total = 0
    stack = [os.fspath(root)]
    while stack:
        path = stack.pop()
        try:
            it = os.scandir(path)
        except PermissionError:
            try:
                os.chmod(path, 0o700)
                it = os.scandir(path)
            except OSError:
                continue
        except OSError:
            continue
        with it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                total += max(st.st_size, st.st_blocks * 512)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
                if stop_above is not None and total > stop_above:
                    return total
    return total


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"
