"""Daemon supervision against fake daemons: died early, never ready, another version, wedged.

The fakes are small scripts run the way the real daemon is (``--store S
--socket P`` appended), as BuildStream tests its casd manager.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from seal.client import daemonproc, exitcodes
from seal.client.errors import ClientError
from seal.store import Store

FAKE_SERVER = textwrap.dedent(
    """
    import argparse, os, signal, sys, threading
    from concurrent import futures
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from seal.proto.v1 import store_pb2 as pb, store_pb2_grpc as pb_grpc

    p = argparse.ArgumentParser()
    p.add_argument("--store"); p.add_argument("--socket")
    p.add_argument("--version", default="0.0.0-other")
    p.add_argument("--wedged", action="store_true")
    a = p.parse_args()
    marker = os.path.join(os.path.dirname(a.store), "fake-events")
    stop = threading.Event()

    class Daemon(pb_grpc.DaemonServicer):
        def Status(self, request, context):
            return pb.StatusResponse(pid=os.getpid(), store_path=a.store,
                                     socket="unix://" + a.socket, version=a.version,
                                     store_format=1)
        def Shutdown(self, request, context):
            with open(marker, "a") as f:
                f.write("shutdown\\n")
            if not a.wedged:
                stop.set()
            return pb.ShutdownResponse()

    def on_term(signum, frame):
        with open(marker, "a") as f:
            f.write("sigterm\\n")  # and go on serving: only SIGKILL ends it

    if a.wedged:
        signal.signal(signal.SIGTERM, on_term)
    server = grpc.server(futures.ThreadPoolExecutor(4))
    pb_grpc.add_DaemonServicer_to_server(Daemon(), server)
    h = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(h, server)
    server.add_insecure_port("unix:" + a.socket)
    server.start()
    h.set("", health_pb2.HealthCheckResponse.SERVING)
    print("fake daemon serving", flush=True)
    stop.wait()
    server.stop(0)
    """
)


def fake(tmp_path: Path, name: str, body: str) -> list[str]:
    script = tmp_path / f"{name}.py"
    script.write_text(body)
    return [sys.executable, str(script)]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    d = tmp_path / "store"
    Store.open(d).close()  # an existing store: its log is appended to daemon.log
    return d


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False


class TestStartFailures:
    def test_died_early_quotes_its_last_line_and_names_the_log(self, tmp_path, store):
        cmd = fake(
            tmp_path,
            "dies",
            "import sys\nprint('one')\nprint('the real cause', file=sys.stderr)\nsys.exit(3)\n",
        )
        sup = daemonproc.Supervisor(store, command=cmd)
        with pytest.raises(ClientError) as info:
            sup.connect()
        err = info.value
        assert "the real cause" in err.message and "exit code 3" in err.message
        assert str(store / "daemon.log") in err.hint
        assert err.reason == "daemon-failed" and err.exit_code == exitcodes.UNAVAILABLE
        assert "the real cause" in (store / "daemon.log").read_text()

    @pytest.mark.parametrize(
        "code, reason, exit_code",
        [(6, "store-locked", exitcodes.BUSY), (7, "store-version", exitcodes.INCOMPATIBLE)],
    )
    def test_daemon_exit_codes(self, tmp_path, store, code, reason, exit_code):
        line = "2026-01-01T00:00:00 seal-daemon[9] ERROR cannot start: store X is locked by pid 42"
        cmd = fake(
            tmp_path, "exits", f"import sys\nprint({line!r}, file=sys.stderr)\nsys.exit({code})\n"
        )
        with pytest.raises(ClientError) as info:
            daemonproc.Supervisor(store, command=cmd).connect()
        assert (info.value.reason, info.value.exit_code) == (reason, exit_code)
        assert info.value.message.endswith(": store X is locked by pid 42")  # log prefix gone

    def test_never_ready_is_killed_after_the_deadline(self, tmp_path, store):
        pidfile = tmp_path / "pid"
        cmd = fake(
            tmp_path,
            "hangs",
            f"import os, time\nopen({str(pidfile)!r}, 'w')"
            ".write(str(os.getpid()))\nprint('starting', flush=True)\ntime.sleep(600)\n",
        )
        started = time.monotonic()
        with pytest.raises(ClientError) as info:
            daemonproc.Supervisor(store, command=cmd).connect()
        took = time.monotonic() - started
        assert daemonproc.START_TIMEOUT <= took < daemonproc.START_TIMEOUT + 2
        assert info.value.reason == "daemon-start-timeout" and "starting" in info.value.message
        assert not alive(int(pidfile.read_text()))

    def test_failed_start_in_a_new_store_keeps_its_log_and_the_store_can_be_made(self, tmp_path):
        store = tmp_path / "new-store"
        cmd = fake(
            tmp_path, "dies", "import sys\nprint('no store', file=sys.stderr)\nsys.exit(1)\n"
        )
        with pytest.raises(ClientError) as info:
            daemonproc.Supervisor(store, command=cmd).connect()
        assert "no store" in info.value.message and str(store / "daemon.log") in info.value.hint
        assert [p.name for p in store.iterdir()] == ["daemon.log"]
        with Store.open(store) as s:  # the daemon's log does not make the directory foreign
            assert s.put_bytes(b"x")


class TestReplace:
    def start_fake(self, tmp_path: Path, store: Path, *args: str) -> subprocess.Popen:
        cmd = fake(tmp_path, "server", FAKE_SERVER)
        sock = daemonproc.Supervisor(store).socket
        proc = subprocess.Popen(
            [*cmd, "--store", str(store), "--socket", sock, *args],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert proc.stdout.readline().strip() == "fake daemon serving"
        return proc

    def test_other_version_is_stopped_and_replaced(self, tmp_path, store):
        old = self.start_fake(tmp_path, store)
        sup = daemonproc.Supervisor(store)
        try:
            assert sup.running()["version"] == "0.0.0-other"
            sup.connect()
            assert old.wait(timeout=10) == 0  # it exited by itself, on the Shutdown call
            assert (tmp_path / "fake-events").read_text() == "shutdown\n"
            info = sup.running()
            assert info["version"] == daemonproc.client_version() and info["pid"] != old.pid
        finally:
            sup.stop()
            sup.close()
            if old.poll() is None:
                old.kill()

    def test_wedged_daemon_gets_sigkill(self, tmp_path, store, monkeypatch):
        monkeypatch.setattr(daemonproc, "SHUTDOWN_WAIT", 0.5)
        monkeypatch.setattr(daemonproc, "TERM_WAIT", 0.5)
        old = self.start_fake(tmp_path, store, "--wedged")
        sup = daemonproc.Supervisor(store)
        try:
            assert sup.stop()["pid"] == old.pid
            assert not alive(old.pid) and sup.running() is None
            assert (tmp_path / "fake-events").read_text() == "shutdown\nsigterm\n"
        finally:
            if old.poll() is None:
                old.kill()

    def test_daemon_of_another_store_is_refused(self, tmp_path, store):
        other = tmp_path / "other-store"
        Store.open(other).close()
        proc = self.start_fake(tmp_path, other, "--version", daemonproc.client_version())
        try:
            sock = daemonproc.Supervisor(other).socket
            with pytest.raises(ClientError) as info:
                daemonproc.Supervisor(store, sock).connect()
            assert info.value.reason == "daemon-store-mismatch"
            # naming only the socket means: that daemon, whatever its store
            conn = daemonproc.Supervisor(store, sock, check_store=False).connect()
            conn.close()
        finally:
            proc.kill()
            proc.wait()


class TestProbe:
    def test_states(self, tmp_path):
        import socket

        path = str(tmp_path / "s.sock")
        assert daemonproc.probe(path) == "absent"
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        assert daemonproc.probe(path) == "absent"  # bound, not listening: stale
        s.listen()
        assert daemonproc.probe(path) == "listening"
        if os.getuid() == 0:
            return  # root may connect to anything: the denied case is an integration test
        os.chmod(path, 0)
        assert daemonproc.probe(path) == "denied"
