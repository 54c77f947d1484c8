"""The bubblewrap sandbox against a real store: identity, escapes, limits, outputs.

Each escape test states what a build tries and what must stop it; every one of
them was seen to fail with that protection taken out of sandbox.py or outputs.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from seal.daemon.build import cgroup, outputs, sandbox
from seal.daemon.build.sandbox import Limits
from seal.daemon.errors import BuildFailed, SandboxUnavailable
from seal.store import Store
from seal.store.digest import Digest

MiB = 1 << 20


def token() -> str:
    """A number usable as a unique, harmless argument (``sleep 1000.<token>``)."""
    return str(secrets.randbelow(10**9)).zfill(9)


def processes_with(marker: str) -> list[int]:
    """Live processes (not zombies) whose argv contains ``marker``."""
    found = []
    needle = marker.encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                if needle not in f.read():
                    continue
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in (b"Z", b"X"):
            found.append(int(entry.name))
    return found


# -- identity and environment --------------------------------------------------------------
class TestIdentity:
    def test_identity_and_environment(self, builds):
        ran = builds.run(
            "id; hostname; uname -n; umask; pwd; echo ---; env | sort",
            env={"PATH": builds.path, "FOO": "bar baz"},
            outputs=["out", "dev"],
            cores=3,
            source_date_epoch=400000000,
        )
        assert ran.result.ok, ran.log
        head, env = ran.log.split("---\n")
        assert head.splitlines() == [
            "uid=1000(builder) gid=1000(builder) groups=1000(builder)",
            "localhost",
            "localhost",
            "0022",
            "/build",
        ]
        assert env.splitlines() == [
            "FOO=bar baz",
            "HOME=/homeless-shelter",
            "LC_ALL=C.UTF-8",
            f"PATH={builds.path}",
            "PWD=/build",
            "SEAL_BUILD_CORES=3",
            "SOURCE_DATE_EPOCH=400000000",
            "TMPDIR=/tmp",
            "TZ=UTC",
            "dev=/out/dev",
            "out=/out/out",
        ]

    def test_path_is_unset_unless_the_derivation_sets_it(self, builds):
        ran = builds.run('echo "$PATH"; ls', env={})
        assert ran.log.splitlines()[0] == "/path-not-set"
        assert not ran.result.ok  # ls is not found without a PATH

    def test_etc_holds_the_roots_entries_and_generated_files(self, builds):
        ran = builds.run("cat /etc/passwd /etc/group /etc/hosts; cat /etc/debian_version")
        assert ran.result.ok, ran.log
        lines = ran.log.splitlines()
        assert lines[:6] == [
            "builder:x:1000:1000:seal builder:/homeless-shelter:/bin/sh",
            "nobody:x:65534:65534:nobody:/nonexistent:/bin/false",
            "builder:x:1000:",
            "nogroup:x:65534:",
            "127.0.0.1 localhost",
            "::1 localhost",
        ]
        assert lines[6] == Path("/etc/debian_version").read_text().strip()

    def test_status_and_signal_are_reported(self, builds):
        ran = builds.run("echo before; exit 2")
        assert (ran.result.ok, ran.result.exit_status) == (False, 2)
        assert ran.result.reason == "builder exited with status 2"
        assert ran.log == "before\n"
        ran = builds.run("kill -9 $$")
        assert ran.result.reason == "builder killed by signal 9 (SIGKILL)"

    def test_stdout_and_stderr_are_merged_in_order(self, builds):
        ran = builds.run("echo one; echo two >&2; echo three")
        assert ran.log == "one\ntwo\nthree\n"

    def test_log_is_capped(self, builds, monkeypatch):
        monkeypatch.setattr(sandbox, "LOG_LIMIT", 1000)
        ran = builds.run("head -c 5000 /dev/zero | tr '\\0' x; echo")
        assert ran.result.ok
        assert ran.log == "x" * 1000 + "\n[seal: log truncated]\n"

    def test_inputs_are_visible_read_only(self, builds, store, tmp_path):
        src = tmp_path / "src"
        src.mkdir()
        (src / "hello.txt").write_text("hi\n")
        blob = tmp_path / "note"
        blob.write_text("a note\n")
        tree_path = store.materialize(store.put_tree(src))
        blob_path = Path(store.layout.object_path(store.put_file(blob)))
        ran = builds.run(
            "cat /inputs/src/hello.txt /inputs/note; cp /inputs/src/hello.txt $out/",
            inputs={"src": tree_path, "note": blob_path},
        )
        assert ran.result.ok, ran.log
        assert ran.log == "hi\na note\n"
        assert (ran.out / "hello.txt").read_text() == "hi\n"

    def test_a_missing_builder_is_reported(self, builds):
        ran = builds.run("", args=["/no/such/builder"])
        assert (
            ran.result.reason
            == "cannot run the builder /no/such/builder: No such file or directory"
        )
        assert ran.result.exit_status is None

    def test_a_missing_input_is_reported(self, builds, tmp_path):
        ran = builds.run("true", inputs={"x": tmp_path / "missing"})
        assert ran.result.reason.startswith("the sandbox could not be set up: bwrap: ")
        assert str(tmp_path / "missing") in ran.result.reason

    def test_parallel_builds(self, builds):
        results: dict[int, object] = {}

        def one(i: int) -> None:
            results[i] = builds.run(f"echo {i} > $out/n; sleep 0.2; cat $out/n")

        threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted((r.result.ok, r.log) for r in results.values()) == [
            (True, f"{i}\n") for i in range(4)
        ]

    def test_missing_bwrap_is_reported(self, monkeypatch):
        monkeypatch.setattr(sandbox, "_probe_result", None)
        monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
        monkeypatch.setattr(sandbox, "_FALLBACK_PATHS", ())
        with pytest.raises(SandboxUnavailable) as info:
            sandbox.find_bwrap()
        assert info.value.message == "bubblewrap (bwrap) is not installed"
        assert info.value.hint == "apt-get install bubblewrap"
        monkeypatch.setattr(sandbox, "_probe_result", None)  # the next test probes again


# -- escapes ---------------------------------------------------------------------------------
class TestEscapes:
    def test_no_tcp_to_the_hosts_loopback(self, builds):
        # protection: the network namespace (--unshare-net)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.2)
        port = listener.getsockname()[1]
        try:
            script = f"exec 3<>/dev/tcp/127.0.0.1/{port} && echo CONNECTED"
            ran = builds.run(script, args=["/bin/bash", "-c", script])
            with pytest.raises(TimeoutError):
                listener.accept()
        finally:
            listener.close()
        assert "CONNECTED" not in ran.log
        assert not ran.result.ok

    def test_only_loopback_exists(self, builds):
        ran = builds.run("cat /proc/net/dev")
        names = sorted(line.split(":")[0].strip() for line in ran.log.splitlines()[2:])
        assert names == ["lo"]

    def test_no_dns(self, builds):
        # protection: the network namespace; a resolver on the host's 127.0.0.1:53 (where
        # glibc asks when there is no resolv.conf) would otherwise answer.
        server = _FakeDns()
        try:
            ran = builds.run("getent hosts pypi.org && echo RESOLVED")
        finally:
            server.close()
        assert "RESOLVED" not in ran.log and "10.11.12.13" not in ran.log
        assert server.queries == 0
        assert not ran.result.ok

    def test_hosts_home_and_shadow_are_invisible(self, builds):
        # protection: "/" is a fresh tmpfs holding only the root tree
        secret = token()
        marker = Path.home() / f".seal-marker-{token()}"
        marker.write_text(f"secret {secret}\n")
        try:
            ran = builds.run(
                f"cat {marker}; ls -a {Path.home()}; cat /etc/shadow; ls /etc; "
                "find / -path /proc -prune -o -name '.seal-marker-*' -print; echo done"
            )
        finally:
            marker.unlink()
        assert ran.result.ok, ran.log
        assert secret not in ran.log and ".seal-marker" not in ran.log.replace(str(marker), "")
        assert f"cat: {marker}: No such file or directory" in ran.log
        assert "shadow" not in ran.log.replace("cat: /etc/shadow: No such file", "")

    def test_store_is_invisible(self, builds, store):
        # protection: only the materialized tree's entries are bound, never the store
        blob = store.put_bytes(b"store internals")
        obj = store.layout.object_path(blob)
        ran = builds.run(
            f"ls {store.root}; cat {store.root}/VERSION; cat {obj}; ls {store.root}/db; "
            "echo ---; find / -path /proc -prune -o -path '*/objects/sha256/*' -print; echo done"
        )
        assert ran.result.ok, ran.log
        attempts, found = ran.log.split("---\n")
        assert found == "done\n"
        assert "store internals" not in attempts
        assert ran.log.count("No such file or directory") == 4, ran.log

    def test_writes_outside_build_and_out_fail(self, builds, store, tmp_path):
        # protection: --remount-ro / and read-only binds of the root and the inputs
        src = tmp_path / "src"
        src.mkdir()
        (src / "f").write_text("input\n")
        tree_path = store.materialize(store.put_tree(src))
        env_before = (builds.root / "usr/bin/env").read_bytes()
        ran = builds.run(
            "for p in /x /etc/x /usr/x /usr/bin/x /inputs/src/x /inputs/x /bin/x; do "
            "  touch $p 2>/dev/null && echo WROTE $p; done; "
            "mkdir /newdir 2>/dev/null && echo WROTE /newdir; "
            "chmod 777 /usr/bin/env 2>/dev/null && echo WROTE chmod; "
            "echo x >> /usr/bin/env 2>/dev/null && echo WROTE append; "
            "echo x >> /inputs/src/f 2>/dev/null && echo WROTE input; "
            "rm /etc/passwd 2>/dev/null && echo WROTE rm; "
            "touch /build/ok $out/ok /tmp/ok && echo writable-ok",
            inputs={"src": tree_path},
        )
        assert ran.result.ok, ran.log
        assert "WROTE" not in ran.log
        assert "writable-ok" in ran.log
        assert (ran.workdir / "build/ok").exists() and (ran.out / "ok").exists()
        assert sorted(os.listdir(tree_path)) == ["f"]
        assert (tree_path / "f").read_text() == "input\n"
        assert (builds.root / "usr/bin/env").read_bytes() == env_before
        assert stat.S_IMODE(os.stat(builds.root / "usr/bin/env").st_mode) == 0o555
        assert not (builds.root / "x").exists() and not (builds.root / "usr/x").exists()

    def test_setuid_output_fails_collection(self, builds, store):
        # protection: collect refuses special bits (the store's check), naming the build's path
        unique = f"only in doc {token()}\n"
        ran = builds.run(
            f"printf '{unique}' > $doc/readme; mkdir -p $out/sub; "
            "touch $out/sub/file; chmod u+s $out/sub/file",
            outputs=["doc", "out"],
        )
        assert ran.result.ok, ran.log
        with pytest.raises(BuildFailed) as info:
            outputs.collect(store, ran.workdir, ["doc", "out"])
        assert info.value.message.startswith("/out/out/sub/file: ")
        assert "setuid" in info.value.message
        assert not store.has(Digest.of_bytes(unique.encode()))  # nothing of doc was stored

    def test_fifo_output_fails_collection(self, builds, store):
        ran = builds.run("mkfifo $out/pipe")
        assert ran.result.ok, ran.log
        with pytest.raises(BuildFailed) as info:
            outputs.collect(store, ran.workdir, ["out"])
        assert info.value.message.startswith("/out/out/pipe: is a FIFO")

    def test_device_nodes_cannot_be_made(self, builds, store):
        # protection: the user namespace and --cap-drop ALL (no CAP_MKNOD on the host)
        ran = builds.run("mknod $out/null c 1 3 || echo MKNOD-FAILED")
        assert "MKNOD-FAILED" in ran.log
        assert not os.path.lexists(ran.out / "null")

    def test_no_capabilities_and_no_new_privileges(self, builds):
        ran = builds.run("grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs)' /proc/self/status")
        fields = dict(line.split(":\t") for line in ran.log.splitlines())
        assert fields["CapEff"] == fields["CapPrm"] == fields["CapBnd"] == "0" * 16
        assert fields["NoNewPrivs"] == "1"


# -- limits ----------------------------------------------------------------------------------
class TestLimits:
    def test_fork_bomb_is_contained(self, builds):
        # protection: max_processes (pids cgroup as root, RLIMIT_NPROC otherwise) + the timeout
        mark = f"bomb{token()}"
        start = time.monotonic()
        script = "b() { b | b & }; b; sleep 30"  # the builder outlives the bomb's first round
        ran = builds.run(
            script,
            args=["/bin/sh", "-c", script, mark],
            limits=Limits(timeout=10, max_processes=64),
        )
        assert not ran.result.ok
        if os.geteuid() == 0:
            assert ran.result.reason == "killed: process limit of 64 reached"
        assert time.monotonic() - start < 15
        assert processes_with(mark) == []

    def test_process_limit(self, builds):
        # protection: the pids cgroup (as root RLIMIT_NPROC does not apply)
        mark = token()
        ran = builds.run(
            f"i=0; while [ $i -lt 200 ]; do sleep 1000.{mark} & i=$((i+1)); done; "
            "echo SPAWNED-ALL; wait",
            limits=Limits(timeout=20, max_processes=64),
        )
        assert not ran.result.ok
        assert "SPAWNED-ALL" not in ran.log
        if os.geteuid() == 0:
            assert ran.result.reason == "killed: process limit of 64 reached"
        assert processes_with(f"1000.{mark}") == []

    def test_timeout_kills_the_whole_tree(self, builds):
        mark = token()
        start = time.monotonic()
        ran = builds.run(
            f"sleep 1000.{mark} & (sleep 1002.{mark} &); exec sleep 1001.{mark}",
            limits=Limits(timeout=1),
        )
        took = time.monotonic() - start
        assert ran.result == sandbox.SandboxResult(
            False, None, "killed: wall-clock timeout of 1 s exceeded", ran.result.duration
        )
        assert 1 <= took < 4
        assert processes_with(mark) == []

    def test_background_processes_die_with_the_builder(self, builds):
        # protection: the pid namespace: its init exiting kills everything left in it
        mark = token()
        start = time.monotonic()
        ran = builds.run(
            f"(sleep 1000.{mark} > /dev/null 2>&1 &); sleep 1001.{mark} & echo started"
        )
        assert ran.result.ok, ran.log
        assert time.monotonic() - start < 3
        assert processes_with(mark) == []

    def test_the_build_dies_with_the_daemon(self, builds, tmp_path):
        # protection: --die-with-parent (and the pid namespace behind it)
        mark = token()
        daemon = subprocess.Popen(
            [sys.executable, "-c", _FAKE_DAEMON, str(builds.root), str(tmp_path / "w"), mark],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while not processes_with(f"1001.{mark}") and time.monotonic() < deadline:
                if daemon.poll() is not None:
                    break
                time.sleep(0.05)
            started = processes_with(f"1001.{mark}") != []
            daemon_cgroup = _cgroup_of(daemon.pid)
            # bwrap's pid 1 arms its parent-death signal just after starting the builder;
            # a daemon killed in that instant leaves the build to the stale-cgroup sweep.
            time.sleep(0.5)
        finally:
            daemon.kill()
            daemon.wait()
        assert started and daemon.returncode == -signal.SIGKILL
        for _ in range(100):
            if not processes_with(mark):
                break
            time.sleep(0.05)
        assert processes_with(mark) == []
        builds.run("true")  # the next build removes the dead daemon's build cgroup
        if daemon_cgroup is not None:
            assert not os.path.exists(daemon_cgroup)

    def test_a_dead_daemons_leftovers_are_swept(self, builds, tmp_path):
        # The window --die-with-parent misses, made wide: the build's processes are moved
        # into a cgroup named like a dead daemon's.  The next build kills them.
        parent = cgroup.pids_parent()
        if parent is None:
            pytest.skip("no writable pids cgroup here")
        mark = token()
        sleeper = subprocess.Popen(["sleep", f"1000.{mark}"])
        dead = _dead_pid()
        stale = os.path.join(parent, f"seal-build-{dead}-0")
        os.mkdir(stale)
        try:
            with open(os.path.join(stale, "cgroup.procs"), "w") as f:
                f.write(str(sleeper.pid))
            builds.run("true")
            assert sleeper.wait(timeout=5) == -signal.SIGKILL
            assert not os.path.exists(stale)
        finally:
            sleeper.kill()
            sleeper.wait()
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(stale)

    def test_cancel(self, builds):
        mark = token()
        cancel = threading.Event()
        timer = threading.Timer(0.5, cancel.set)
        timer.start()
        start = time.monotonic()
        try:
            ran = builds.run(
                f"sleep 1000.{mark} & exec sleep 1001.{mark}",
                cancel=cancel,
                limits=Limits(timeout=30),
            )
        finally:
            timer.cancel()
        assert (ran.result.ok, ran.result.exit_status, ran.result.reason) == (
            False,
            None,
            "cancelled",
        )
        assert time.monotonic() - start < 2
        assert processes_with(mark) == []

    def test_cancelled_before_start(self, builds):
        cancel = threading.Event()
        cancel.set()
        ran = builds.run("echo never", cancel=cancel)
        assert ran.result.reason == "cancelled" and ran.log == ""

    def test_one_big_file_is_stopped_at_the_limit(self, builds):
        # protection: RLIMIT_FSIZE stops the write at the limit; the size check fails the build
        start = time.monotonic()
        ran = builds.run(
            "head -c 100000000 /dev/zero > $out/big; echo WROTE-ALL; sleep 30",
            limits=Limits(timeout=20, max_output_bytes=MiB),
        )
        assert not ran.result.ok
        assert ran.result.reason.endswith("output exceeded 1 MiB"), ran.result.reason
        assert "WROTE-ALL" not in ran.log or os.path.getsize(ran.out / "big") <= MiB
        assert os.path.getsize(ran.out / "big") <= MiB
        assert time.monotonic() - start < 10

    def test_many_small_files_are_stopped_by_the_watcher(self, builds):
        # protection: the watcher summing the bytes under /out a few times a second
        start = time.monotonic()
        ran = builds.run(
            "for i in $(seq 1 40); do head -c 50000 /dev/zero > $out/f$i; done; sleep 30",
            limits=Limits(timeout=20, max_output_bytes=MiB),
        )
        assert ran.result.reason == "killed: output exceeded 1 MiB"
        assert ran.result.exit_status is None
        assert time.monotonic() - start < 5

    def test_many_small_files_fail_the_final_count(self, builds):
        # protection: the count after the builder ends (it may finish between two scans)
        ran = builds.run(
            "for i in $(seq 1 40); do head -c 50000 /dev/zero > $out/f$i; done",
            limits=Limits(timeout=20, max_output_bytes=MiB),
        )
        assert not ran.result.ok
        assert ran.result.reason.endswith("output exceeded 1 MiB")

    def test_sparse_files_count_at_full_size(self, builds):
        ran = builds.run(
            "truncate -s 900K $out/a; truncate -s 900K $out/b",
            limits=Limits(timeout=20, max_output_bytes=MiB),
        )
        assert ran.result.reason.endswith("output exceeded 1 MiB")

    def test_within_limits_is_ok(self, builds):
        ran = builds.run(
            "head -c 500000 /dev/zero > $out/half",
            limits=Limits(timeout=20, max_output_bytes=MiB, max_processes=64),
        )
        assert ran.result.ok, ran.log


# -- outputs ---------------------------------------------------------------------------------
class TestCollect:
    def test_directory_and_file_outputs(self, builds, store):
        ran = builds.run(
            "echo hi > $out/a; mkdir $out/d; ln -s a $out/link; "
            "rmdir $bin; printf '#!/bin/sh\\n' > $bin; chmod 755 $bin",
            outputs=["out", "bin"],
        )
        assert ran.result.ok, ran.log
        got = outputs.collect(store, ran.workdir, ["out", "bin"])
        assert store.get_bytes(got["bin"]) == b"#!/bin/sh\n"
        entries = {e.path: e.kind for e in store.walk(got["out"])}
        assert entries == {b"a": "file", b"d": "dir", b"link": "symlink"}

    def test_unreadable_directories_are_still_collected(self, builds, store):
        ran = builds.run("mkdir $out/d; echo x > $out/d/f; chmod 000 $out/d/f $out/d")
        got = outputs.collect(store, ran.workdir, ["out"])
        assert [e.path for e in store.walk(got["out"])] == [b"d", b"d/f"]

    @pytest.mark.parametrize(
        "script, message",
        [
            ("mkdir /out/extra", "/out/extra: not a declared output (declared: out)"),
            ("rmdir $out", "/out/out: the output is missing (the build removed it)"),
            ("rmdir $out; ln -s /etc $out", "/out/out: is a symlink"),
            ("chmod +t $out", "/out/out: has the sticky bit"),
        ],
    )
    def test_refused(self, builds, store, script, message):
        ran = builds.run(script)
        assert ran.result.ok, ran.log
        with pytest.raises(BuildFailed) as info:
            outputs.collect(store, ran.workdir, ["out"])
        assert info.value.message.startswith(message)


# -- determinism -----------------------------------------------------------------------------
PROBE = (
    "id; uname -n; env | sort; umask; date -d @$SOURCE_DATE_EPOCH; pwd; "
    "ls -la --time-style=+ /; ls -la --time-style=+ /etc /out; ls /proc/self/fd; "
    "cat /proc/1/cmdline; echo; cat /proc/1/environ; echo; cat /proc/self/cgroup; ulimit -c -f"
)


def _normalized(log: str) -> str:
    """Mask the two fields of ``ls -la /`` that cannot match: /proc's link count (the
    host's process count) and its owner (host root: ``builder`` when the daemon runs as
    root, unmapped ``nobody`` when it runs as a user)."""
    log = re.sub(r"^(dr-xr-xr-x) +\d+ +\S+ +\S+ (.* proc)$", r"\1 N U G \2", log, flags=re.M)
    return re.sub(r" +", " ", log)  # ls pads its columns to the widest value, /proc's too


class TestDeterminism:
    def test_same_view_from_different_stores_and_callers(
        self, builds_for, shell_root_dir, tmp_path, unprivileged_or_none, build_doc
    ):
        logs = []
        for i, (umask, env) in enumerate(
            [(0o022, {"TZ": "UTC", "LANG": "C"}), (0o077, {"TZ": "Asia/Tokyo", "LANG": "de_DE"})]
        ):
            with Store.open(tmp_path / f"s{i}" / ("x" * i) / "store") as store:
                builds = builds_for(store, shell_root_dir, tmp_path / f"work{i}" / ("y" * i))
                old_umask = os.umask(umask)
                saved = {k: os.environ.get(k) for k in env}
                os.environ.update(env)
                try:
                    ran = builds.run(PROBE)
                finally:
                    os.umask(old_umask)
                    for k, v in saved.items():
                        if v is None:
                            os.environ.pop(k, None)
                        else:
                            os.environ[k] = v
                assert ran.result.ok, ran.log
                logs.append(_normalized(ran.log))
        assert logs[0] == logs[1]
        if unprivileged_or_none is None:
            return
        [result] = unprivileged_or_none.run(
            [build_doc(PROBE, Limits(timeout=60))],
            umask=0o077,
            env={"TZ": "Europe/Paris", "LANG": "fr_FR.UTF-8"},
        )
        assert result["ok"], result
        assert _normalized(result["log"]) == logs[0]

    def test_same_view_whatever_umask_the_root_was_materialized_with(
        self, builds_for, shell_root_dir, tmp_path
    ):
        logs = []
        for i, umask in enumerate((0o022, 0o077)):
            old_umask = os.umask(umask)
            try:
                store = Store.open(tmp_path / f"s{i}")
                builds = builds_for(store, shell_root_dir, tmp_path / f"work{i}")
            finally:
                os.umask(old_umask)
            with store:
                ran = builds.run("ls -la --time-style=+ / /usr")
            logs.append(_normalized(ran.log))
        assert logs[0] == logs[1]


@pytest.fixture
def unprivileged_or_none(request):
    try:
        return request.getfixturevalue("unprivileged")
    except pytest.skip.Exception as exc:
        print(f"determinism as an unprivileged user skipped: {exc}")
        return None


class TestUnprivileged:
    def test_builds_run_as_a_user(self, unprivileged, build_doc):
        [result] = unprivileged.run([build_doc("id; echo hi > $out/x", Limits(timeout=30))])
        assert result["ok"], result
        assert result["log"].startswith("uid=1000(builder) gid=1000(builder)")

    def test_process_limit_by_rlimit(self, unprivileged, build_doc):
        mark = token()
        script = (
            f"i=0; while [ $i -lt 200 ]; do sleep 1000.{mark} & i=$((i+1)); done; "
            "echo SPAWNED-ALL; wait"
        )
        [result] = unprivileged.run([build_doc(script, Limits(timeout=20, max_processes=64))])
        assert not result["ok"]
        assert "SPAWNED-ALL" not in result["log"]
        assert processes_with(f"1000.{mark}") == []


# -- a real toolchain --------------------------------------------------------------------------
NESTED_USERNS_C = r"""
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
int main(void) {
    if (unshare(CLONE_NEWUSER) == 0) { puts("NESTED"); return 0; }
    perror("unshare");
    return 1;
}
"""


class TestToolchain:
    def test_compile_with_gcc_and_make(self, toolchain_builds):
        ran = toolchain_builds.run(
            "printf '#include <stdio.h>\\nint main(void){puts(\"hello\");return 0;}\\n' > hello.c; "
            "printf 'hello: hello.c\\n\\tcc -O2 -o $@ $<\\n' > Makefile; "
            "make && ./hello && cp hello $out/",
            limits=Limits(timeout=120),
        )
        assert ran.result.ok, ran.log
        assert ran.log.splitlines()[-1] == "hello"
        assert os.access(ran.out / "hello", os.X_OK)

    def test_no_new_user_namespace_inside(self, toolchain_builds):
        # protection: --disable-userns
        ran = toolchain_builds.run(
            f"cat > u.c <<'EOF'\n{NESTED_USERNS_C}EOF\ncc -o u u.c && ./u",
            limits=Limits(timeout=120),
        )
        assert "NESTED" not in ran.log
        assert "unshare: " in ran.log and not ran.result.ok


# -- helpers ---------------------------------------------------------------------------------
# A stand-in daemon: runs one build that sleeps until it is killed.
_FAKE_DAEMON = r"""
import sys
from pathlib import Path
from seal.daemon.build import sandbox
root, work, mark = sys.argv[1:]
script = f"sleep 1000.{mark} & exec sleep 1001.{mark}"
spec = sandbox.SandboxSpec(
    root=Path(root), inputs={}, args=["/bin/sh", "-c", script], env={"PATH": "/usr/bin:/bin"},
    outputs=["out"], source_date_epoch=315532800)
sandbox.run(spec, Path(work), sys.stdout.buffer.write)
"""


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _cgroup_of(pid: int) -> str | None:
    """The per-build pids cgroup directory a daemon process made, if it made one."""
    parent = cgroup.pids_parent()
    if parent is None:
        return None
    for name in os.listdir(parent):
        if name.startswith(f"seal-build-{pid}-"):
            return os.path.join(parent, name)
    return None


class _FakeDns:
    """A UDP DNS responder on the host's 127.0.0.1:53 answering every A query with 10.11.12.13."""

    def __init__(self):
        self.queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind(("127.0.0.1", 53))
        except OSError as exc:
            self.sock.close()
            pytest.skip(f"cannot listen on 127.0.0.1:53 for the DNS test: {exc}")
        self.sock.settimeout(0.1)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                query, peer = self.sock.recvfrom(512)
            except (TimeoutError, OSError):
                continue
            self.queries += 1
            end = 12
            while end < len(query) and query[end]:
                end += query[end] + 1
            question = query[12 : end + 5]
            qtype = int.from_bytes(query[end + 1 : end + 3], "big")
            answers = 1 if qtype == 1 else 0
            reply = query[:2] + b"\x81\x80\x00\x01" + answers.to_bytes(2, "big") + b"\0\0\0\0"
            reply += question
            if answers:
                reply += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes(
                    [10, 11, 12, 13]
                )
            self.sock.sendto(reply, peer)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.sock.close()
