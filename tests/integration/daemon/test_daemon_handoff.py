"""AddHandoff: a local client hands the daemon an open descriptor instead of streaming bytes.

Driven through the raw handoff socket and the generated stubs against a real
daemon process; the CLI's use of it is covered by the client tests (which
run both upload modes).
"""

from __future__ import annotations

import array
import os
import socket
import stat
import time

import grpc
import pytest
from daemonkit import fails

from seal.client import handoff as client_handoff
from seal.client import upload
from seal.daemon.errors import HandoffUnknown
from seal.daemon.handoff import MAGIC, HandoffServer
from seal.proto.v1 import store_pb2 as pb
from seal.store import Digest

OTHER_UID = 54321  # tests/sealtest.py's unprivileged user id


def address(running) -> str:
    return running.daemon.Status(pb.StatusRequest()).handoff_address


def exchange(addr: str, payload: bytes, fds: list[int]) -> bytes:
    """One raw exchange on the handoff socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
        sock.settimeout(5)
        sock.connect("\0" + addr)
        ancillary = []
        if fds:
            rights = array.array("i", fds).tobytes()
            ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)]
        sock.sendmsg([payload], ancillary)
        return sock.recv(256)


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_bytes(b"alpha\n")
    (root / "tool").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "tool").chmod(0o755)
    (root / "link").symlink_to("sub/a.txt")
    return root


class TestAddHandoff:
    def test_a_directory_is_stored_with_the_digest_a_client_computes(self, fresh_daemon, tree):
        token = client_handoff.hand_over(address(fresh_daemon), tree)
        assert token
        r = fresh_daemon.store.AddHandoff(
            pb.AddHandoffRequest(token=token, root_name="t", display_path=str(tree))
        )
        listing = upload.scan_tree(os.fsencode(tree))
        assert r.digest.hash == listing.root.hex and r.kind == pb.OBJECT_KIND_TREE
        assert r.digest.size_bytes == listing.root_size
        roots = fresh_daemon.store.ListRoots(pb.ListRootsRequest()).roots
        assert [(x.name, x.digest.hash) for x in roots] == [("t", listing.root.hex)]
        report = [e for e in fresh_daemon.store.Verify(pb.VerifyRequest()) if e.HasField("report")]
        assert report[-1].report.ok

    def test_a_file_and_a_token_serves_once(self, fresh_daemon, tmp_path):
        data = os.urandom(3 << 20)
        (tmp_path / "big").write_bytes(data)
        token = client_handoff.hand_over(address(fresh_daemon), tmp_path / "big")
        r = fresh_daemon.store.AddHandoff(pb.AddHandoffRequest(token=token))
        assert r.digest.hash == Digest.of_bytes(data).hex and r.kind == pb.OBJECT_KIND_BLOB
        assert r.digest.size_bytes == len(data)
        again = fails(fresh_daemon.store.AddHandoff, pb.AddHandoffRequest(token=token))
        assert again.code == grpc.StatusCode.NOT_FOUND and again.reason == "handoff-unknown"

    def test_an_unknown_token_is_not_found(self, daemon):
        f = fails(daemon.store.AddHandoff, pb.AddHandoffRequest(token="0" * 32))
        assert f.code == grpc.StatusCode.NOT_FOUND and f.reason == "handoff-unknown"
        assert f.hint

    def test_what_a_tree_cannot_hold_is_named_by_the_clients_path(self, fresh_daemon, tree):
        os.mkfifo(tree / "sub" / "pipe")
        token = client_handoff.hand_over(address(fresh_daemon), tree)
        f = fails(
            fresh_daemon.store.AddHandoff,
            pb.AddHandoffRequest(token=token, root_name="t", display_path="/my/tree"),
        )
        assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "unsupported-file"
        assert f.details.startswith("/my/tree/sub/pipe: ") and "/proc/" not in f.details
        assert not fresh_daemon.store.ListRoots(pb.ListRootsRequest()).roots


class TestHandoffSocket:
    def test_malformed_exchanges_are_refused(self, daemon, tmp_path):
        addr = address(daemon)
        assert exchange(addr, MAGIC, []).startswith(b"err handoff-malformed ")
        fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert exchange(addr, b"hello", [fd]).startswith(b"err handoff-malformed ")
            assert exchange(addr, MAGIC, [fd, fd]).startswith(b"err handoff-malformed ")
        finally:
            os.close(fd)

    def test_only_a_file_or_a_directory(self, daemon, tmp_path):
        os.mkfifo(tmp_path / "pipe")
        fd = os.open(tmp_path / "pipe", os.O_RDONLY | os.O_NONBLOCK)
        try:
            assert exchange(address(daemon), MAGIC, [fd]).startswith(b"err unsupported-file ")
        finally:
            os.close(fd)
        # the client library does not even try: it streams, and the stream names the problem
        assert client_handoff.hand_over(address(daemon), tmp_path / "pipe") is None

    @pytest.mark.skipif(os.getuid() != 0, reason="switching to another uid needs root")
    def test_another_uid_is_refused(self, daemon, tmp_path):
        addr = address(daemon)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: another user hands over a directory it may read
            try:
                os.close(read)
                os.setgroups([])
                os.setgid(OTHER_UID)
                os.setuid(OTHER_UID)
                fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
                os.write(write, exchange(addr, MAGIC, [fd]))
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as f:
            reply = f.read()
        os.waitpid(pid, 0)
        assert reply.startswith(b"err handoff-denied ")

    def test_no_address_means_streaming(self, tree):
        assert client_handoff.hand_over("", tree) is None
        assert client_handoff.hand_over("seal-handoff-nobody-listens", tree) is None


class TestHandoffServer:
    """The listener in this process: tokens lapse and their descriptors are closed."""

    def test_a_lapsed_token_is_unknown_and_its_descriptor_closed(self, tmp_path):
        server = HandoffServer(ttl=0.2)
        server.start()
        try:
            before = open_fds()
            token = client_handoff.hand_over(server.address, tmp_path)
            assert token and len(open_fds() - before) >= 1  # the received descriptor
            time.sleep(0.3)
            with pytest.raises(HandoffUnknown):
                server.take(token)
            assert open_fds() == before
        finally:
            server.close()

    def test_take_returns_the_directory_handed_over(self, tmp_path):
        server = HandoffServer()
        server.start()
        try:
            token = client_handoff.hand_over(server.address, tmp_path)
            fd = server.take(token)
            try:
                st = os.fstat(fd)
                assert stat.S_ISDIR(st.st_mode) and st.st_ino == os.stat(tmp_path).st_ino
            finally:
                os.close(fd)
            with pytest.raises(HandoffUnknown):
                server.take(token)
        finally:
            server.close()

    def test_close_closes_what_waits(self, tmp_path):
        before = open_fds()
        server = HandoffServer()
        server.start()
        assert client_handoff.hand_over(server.address, tmp_path)
        server.close()
        assert open_fds() == before
