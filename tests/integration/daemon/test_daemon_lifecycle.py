"""The daemon process: health, status, socket permissions, signals, the store lock, restarts."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path

import grpc
import pytest
from daemonkit import (
    CHUNK,
    DaemonProcess,
    File,
    build_tree,
    checkout,
    connect,
    dpb,
    flatten,
    put,
    put_requests,
    upload_tree,
)
from grpc_health.v1 import health_pb2

from seal.proto.v1 import store_pb2 as pb
from seal.store import Digest, Store
from seal.store.layout import FORMAT_VERSION, socket_path

SERVING = health_pb2.HealthCheckResponse.SERVING


def health(stubs, service: str = "") -> int:
    return stubs.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


@pytest.fixture
def short_tmp():
    """A short directory under /tmp, traversable by everyone (for other-uid tests)."""
    path = Path(tempfile.mkdtemp(prefix="sd-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class TestServing:
    def test_health_serving_for_the_server_and_the_store_service(self, daemon):
        assert health(daemon.stubs) == SERVING
        assert health(daemon.stubs, "seal.v1.Store") == SERVING
        with pytest.raises(grpc.RpcError) as info:
            health(daemon.stubs, "no.such.Service")
        assert info.value.code() == grpc.StatusCode.NOT_FOUND

    def test_status(self, daemon):
        r = daemon.daemon.Status(pb.StatusRequest(), timeout=5)
        assert r.pid == daemon.process.proc.pid
        assert r.store_path == str(daemon.store_dir.absolute())
        assert r.socket == "unix://" + socket_path(daemon.store_dir)
        assert r.version == metadata.version("seal")
        assert r.store_format == FORMAT_VERSION
        assert 0 < r.uptime_seconds < 600


class TestSocket:
    def test_socket_0600_in_a_0700_store(self, fresh_daemon):
        path = socket_path(fresh_daemon.store_dir)
        assert path == str(fresh_daemon.store_dir / "daemon.sock")
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        assert stat.S_IMODE(os.stat(fresh_daemon.store_dir).st_mode) == 0o700

    def test_long_store_path_uses_a_private_short_socket_linked_from_the_store(self, tmp_path):
        store = tmp_path / ("x" * 60) / ("y" * 60) / "store"
        short = socket_path(store)
        assert short.startswith(f"/tmp/seal-{os.getuid()}/")
        process = DaemonProcess(store).start()
        try:
            assert stat.S_IMODE(os.lstat(short).st_mode) == 0o600
            assert stat.S_IMODE(os.lstat(os.path.dirname(short)).st_mode) == 0o700
            link = store / "daemon.sock"
            assert link.is_symlink() and os.readlink(link) == short
            assert stat.S_ISSOCK(os.stat(link).st_mode)  # resolves to the live socket
            stubs = connect(f"unix:{short}")
            assert health(stubs) == SERVING
            stubs.close()
        finally:
            assert process.terminate() == 0, process.log_text()
        assert not os.path.lexists(short) and not os.path.lexists(store / "daemon.sock")

    def test_socket_group_gives_0660_in_0750(self, short_tmp):
        gid = 4242  # any gid: root may give files to a group that has no name
        process = DaemonProcess(short_tmp / "store", ["--socket-group", str(gid)]).start()
        try:
            st = os.lstat(process.socket)
            assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == gid
            st = os.stat(short_tmp / "store")
            assert stat.S_IMODE(st.st_mode) == 0o750 and st.st_gid == gid
        finally:
            assert process.terminate() == 0, process.log_text()

    def test_another_uid_cannot_connect_unless_in_the_group(self, short_tmp):
        if os.getuid() != 0:
            pytest.skip("needs root to run a probe as another uid (nobody)")
        python = shutil.which("python3", path="/usr/bin:/bin")
        if python is None:
            pytest.skip("no system python3 for the other-uid probe")
        nobody, gid = 65534, 4242
        process = DaemonProcess(short_tmp / "store", ["--socket-group", str(gid)]).start()
        probe = (
            "import socket, sys\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    sys.exit(13)\n"
        )
        try:

            def connect_as(group: int) -> int:
                return subprocess.run(
                    [python, "-I", "-c", probe, process.socket],
                    user=nobody,
                    group=group,
                    extra_groups=[],
                    timeout=30,
                ).returncode

            assert connect_as(gid) == 0  # the control: in the socket's group it works
            assert connect_as(nobody) == 13  # another uid, not in the group: refused
        finally:
            assert process.terminate() == 0, process.log_text()

    def test_stale_socket_is_removed_at_start(self, tmp_path):
        store = tmp_path / "store"
        Store.open(store).close()  # a store whose daemon died without cleaning up
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(socket_path(store))  # bound, never listening: nobody answers
        stale.close()
        process = DaemonProcess(store).start()
        assert "removing stale socket" in process.log_text()
        assert process.terminate() == 0

    def test_refuses_a_socket_another_process_answers_on(self, tmp_path, short_tmp):
        path = str(short_tmp / "busy.sock")
        other = socket.socket(socket.AF_UNIX)
        other.bind(path)
        other.listen()
        try:
            process = DaemonProcess(tmp_path / "store", socket=path)
            assert process.run_to_exit() == 6
            lines = process.log_text().strip().splitlines()
            assert len(lines) == 1 and "another daemon answers on" in lines[0]
            assert stat.S_ISSOCK(os.lstat(path).st_mode)  # left alone
        finally:
            other.close()


class TestStopping:
    @pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
    def test_signal_exits_0_removes_socket_releases_lock(self, tmp_path, signum):
        store = tmp_path / "store"
        process = DaemonProcess(store).start()
        stubs = connect(process.address)
        put(stubs.store, b"before the signal", root_name="r")
        stubs.close()
        process.proc.send_signal(signum)
        assert process.proc.wait(30) == 0, process.log_text()
        assert not os.path.lexists(socket_path(store))
        with Store.open(store) as s:  # the writer lock is free again
            assert s.get_bytes(Digest.of_bytes(b"before the signal")) == b"before the signal"
            assert s.verify().ok

    def test_shutdown_call_stops_it(self, tmp_path):
        process = DaemonProcess(tmp_path / "store").start()
        stubs = connect(process.address)
        stubs.daemon.Shutdown(pb.ShutdownRequest(grace_seconds=1), timeout=5)
        stubs.close()
        assert process.proc.wait(30) == 0, process.log_text()
        assert not os.path.lexists(process.socket)

    def test_second_daemon_on_the_store_exits_6_with_one_line(self, fresh_daemon):
        second = DaemonProcess(fresh_daemon.store_dir)
        assert second.run_to_exit() == 6
        lines = second.log_text().strip().splitlines()
        assert len(lines) == 1, lines
        assert f"is locked by pid {fresh_daemon.process.proc.pid}" in lines[0]
        assert health(fresh_daemon.stubs) == SERVING  # the first one keeps its socket

    def test_newer_store_format_exits_7_with_one_line(self, tmp_path):
        store = tmp_path / "store"
        Store.open(store).close()
        (store / "VERSION").write_text(f"{FORMAT_VERSION + 1}\n")
        process = DaemonProcess(store)
        assert process.run_to_exit() == 7
        lines = process.log_text().strip().splitlines()
        assert len(lines) == 1 and "newer than this seal supports" in lines[0], lines

    def test_in_flight_upload_finishes_within_the_grace_period(self, tmp_path):
        store = tmp_path / "store"
        process = DaemonProcess(store).start()
        stubs = connect(process.address)
        data = os.urandom(4 * CHUNK)
        signalled = threading.Event()

        def slow_requests():
            for i, message in enumerate(put_requests(data, root_name="slow")):
                if i == 1:
                    process.proc.send_signal(signal.SIGTERM)
                    signalled.set()
                    time.sleep(1)  # in flight while the daemon stops; within the 5 s grace
                yield message

        r = stubs.store.Put(slow_requests(), timeout=30)
        assert signalled.is_set() and r.created
        stubs.close()
        assert process.proc.wait(30) == 0, process.log_text()
        with Store.open(store) as s:
            assert s.roots() == {"slow": Digest.of_bytes(data)}
            assert s.get_bytes(Digest.of_bytes(data)) == data and s.verify().ok

    @pytest.mark.slow
    def test_upload_stalled_past_the_grace_period_is_cut_and_leaves_nothing(self, tmp_path):
        store = tmp_path / "store"
        process = DaemonProcess(store).start()
        stubs = connect(process.address)
        data = os.urandom(4 * CHUNK)
        release = threading.Event()

        def stalled_requests():
            for i, message in enumerate(put_requests(data)):
                if i == 1:
                    process.proc.send_signal(signal.SIGTERM)
                    release.wait(30)
                yield message

        started = time.monotonic()
        with pytest.raises(grpc.RpcError):
            stubs.store.Put(stalled_requests(), timeout=60)
        assert process.proc.wait(30) == 0, process.log_text()
        release.set()
        stubs.close()
        assert time.monotonic() - started < 20
        with Store.open(store) as s:
            assert not s.has(Digest.of_bytes(data))
            report = s.verify()
            assert report.ok and report.orphaned == []

    def test_kill_9_during_uploads_then_a_new_daemon_starts_and_the_store_is_sound(self, tmp_path):
        store = tmp_path / "store"
        process = DaemonProcess(store).start()
        specs = [
            {"f": File(os.urandom(CHUNK * 2 + i)), "g": File(os.urandom(10))} for i in range(8)
        ]
        stop = threading.Event()

        def upload(spec):
            stubs = connect(process.address)
            try:
                while not stop.is_set():
                    upload_tree(stubs.store, build_tree(spec), root_name=str(id(spec)))
            except grpc.RpcError:
                pass  # the daemon died under us
            finally:
                stubs.close()

        threads = [threading.Thread(target=upload, args=(s,)) for s in specs]
        for t in threads:
            t.start()
        time.sleep(1.0)
        process.kill()
        stop.set()
        for t in threads:
            t.join()
        assert os.path.lexists(process.socket)  # a stale socket stays behind a kill -9
        again = DaemonProcess(store).start()
        try:
            stubs = connect(again.address)
            for spec in specs:  # retried uploads succeed
                tree = build_tree(spec)
                upload_tree(stubs.store, tree, root_name="retry")
                assert checkout(stubs.store, tree.root)[1] == flatten(spec)
            report = [
                r.report for r in stubs.store.Verify(pb.VerifyRequest()) if r.HasField("report")
            ]
            assert report[0].ok
            stubs.close()
        finally:
            assert again.terminate() == 0, again.log_text()


def test_checkout_of_the_rooted_tree_survives_a_restart(tmp_path):
    store = tmp_path / "store"
    spec = {"a": File(b"persisted"), "d": {"b": File(b"too", exe=True)}}
    tree = build_tree(spec)
    first = DaemonProcess(store).start()
    stubs = connect(first.address)
    upload_tree(stubs.store, tree, root_name="keep")
    stubs.close()
    assert first.terminate() == 0
    second = DaemonProcess(store).start()
    stubs = connect(second.address)
    assert checkout(stubs.store, tree.root)[1] == flatten(spec)
    st = stubs.store.Stat(pb.StatRequest(digest=dpb(tree.root)))
    assert list(st.roots) == ["keep"]
    stubs.close()
    assert second.terminate() == 0
