"""``create_server`` in-process (what tests and bench embed), and calls cut short by clients."""

from __future__ import annotations

import os
import socket
import threading
import time

import grpc
import pytest
from daemonkit import CHUNK, connect, get, put, put_requests, store_tmp_files
from grpc_health.v1 import health_pb2

from seal.daemon.errors import SocketInUse
from seal.daemon.server import create_server
from seal.proto.v1 import store_pb2 as pb
from seal.store import Digest, Store, StoreLocked
from seal.store.layout import socket_path


class TestCreateServer:
    def test_owns_the_lock_and_the_socket_and_frees_both(self, tmp_path):
        store = tmp_path / "store"
        with create_server(store) as daemon:
            assert daemon.socket_path == socket_path(store)
            with pytest.raises(StoreLocked):
                Store.open(store)
            stubs = connect(daemon.address)
            check = stubs.health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert check.status == health_pb2.HealthCheckResponse.SERVING
            put(stubs.store, b"embedded", root_name="e")
            stubs.close()
        assert not os.path.lexists(socket_path(store))
        with Store.open(store) as s:
            assert s.roots() == {"e": Digest.of_bytes(b"embedded")}

    def test_frees_them_when_the_block_raises(self, tmp_path):
        store = tmp_path / "store"
        with pytest.raises(RuntimeError), create_server(store):
            raise RuntimeError("boom")
        assert not os.path.lexists(socket_path(store))
        Store.open(store).close()

    def test_a_locked_store_is_refused_and_no_socket_is_made(self, tmp_path):
        store = tmp_path / "store"
        with Store.open(store), pytest.raises(StoreLocked), create_server(store):
            pass
        assert not os.path.lexists(socket_path(store))

    def test_a_busy_socket_is_refused_and_the_lock_freed(self, tmp_path):
        store = tmp_path / "store"
        Store.open(store).close()
        other = socket.socket(socket.AF_UNIX)
        other.bind(socket_path(store))
        other.listen()
        try:
            with pytest.raises(SocketInUse), create_server(store):
                pass
            Store.open(store).close()  # the lock was released on the way out
        finally:
            other.close()

    def test_shutdown_call_ends_serve_forever(self, tmp_path):
        with create_server(tmp_path / "store") as daemon:
            stubs = connect(daemon.address)
            stubs.daemon.Shutdown(pb.ShutdownRequest(grace_seconds=2), timeout=5)
            stubs.close()
            assert daemon.wait(5) and daemon.grace == 2


class TestCancelledCalls:
    """A client that walks away mid-call leaves nothing running and nothing half-written."""

    def test_cancelled_get_stream_ends(self, fresh_daemon):
        data = os.urandom(20 * CHUNK)
        put(fresh_daemon.store, data)
        request = pb.GetRequest(digest=pb.Digest(hash=Digest.of_bytes(data).hex))
        stream = fresh_daemon.store.Get(request)
        next(stream)
        stream.cancel()
        # the daemon serves on; teardown fails if a cancelled call still runs at shutdown
        assert get(fresh_daemon.store, Digest.of_bytes(data), limit=10) == data[:10]

    def test_cancelled_verify_stops_rehashing(self, start_daemon, tmp_path):
        store = tmp_path / "store"
        with Store.open(store) as s, s.batch() as b:  # enough objects for a verify of seconds
            for i in range(30_000):
                b.add_bytes(b"%d" % i)
        running = start_daemon(store)
        verify = running.store.Verify(pb.VerifyRequest())
        first = next(verify)
        assert first.progress.total_objects == 30_000 and first.progress.checked < 30_000
        verify.cancel()
        deadline = time.monotonic() + 20
        while "Verify stopped after" not in running.process.log_text():
            assert time.monotonic() < deadline, running.process.log_text()
            time.sleep(0.05)

    def test_cancelled_put_leaves_no_staging_file(self, fresh_daemon):
        data = os.urandom(4 * CHUNK)
        stalled = threading.Event()

        def requests():
            for i, message in enumerate(put_requests(data)):
                if i == 2:
                    stalled.wait(60)  # the client cancels meanwhile
                yield message

        future = fresh_daemon.store.Put.future(requests())
        time.sleep(0.5)
        future.cancel()
        with pytest.raises(grpc.FutureCancelledError):
            future.result()
        deadline = time.monotonic() + 10
        while store_tmp_files(fresh_daemon.store_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store_tmp_files(fresh_daemon.store_dir) == []
        missing = fresh_daemon.store.FindMissing(
            pb.FindMissingRequest(digests=[pb.Digest(hash=Digest.of_bytes(data).hex)])
        )
        assert len(missing.missing) == 1
        stalled.set()
