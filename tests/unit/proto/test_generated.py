"""The committed gRPC modules: current with the .proto, importable as seal.proto.v1, usable."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from seal.proto.v1 import store_pb2, store_pb2_grpc
from seal.store import Digest
from seal.store.tree import Directory, FileNode

REPO = Path(__file__).resolve().parents[3]
GENERATE = REPO / "proto" / "generate.py"


def test_generated_code_is_current():
    proc = subprocess.run(
        [sys.executable, str(GENERATE), "--check"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, (
        f"proto/generate.py --check exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    )


class TestImports:
    def test_modules_live_under_the_seal_namespace(self):
        assert store_pb2.__name__ == "seal.proto.v1.store_pb2"
        assert store_pb2.DESCRIPTOR.package == "seal.v1"
        assert store_pb2.DESCRIPTOR.name == "seal/proto/v1/store.proto"
        # the grpc stubs import the messages by their installed name, not a bare "store_pb2"
        assert store_pb2_grpc.seal_dot_proto_dot_v1_dot_store__pb2 is store_pb2

    @pytest.mark.parametrize(
        "name",
        ["StoreStub", "StoreServicer", "add_StoreServicer_to_server",
         "DaemonStub", "DaemonServicer", "add_DaemonServicer_to_server"],
    )  # fmt: skip
    def test_stub_classes_exist(self, name):
        assert hasattr(store_pb2_grpc, name)


class TestDigest:
    def test_round_trip(self):
        d = Digest.of_bytes(b"hello")
        msg = store_pb2.Digest(hash=d.hex, size_bytes=5)
        back = store_pb2.Digest.FromString(msg.SerializeToString())
        assert back == msg
        assert Digest.from_hex(back.hash) == d
        assert back.size_bytes == 5

    def test_wire_form_is_reapi_compatible(self):
        # field 1: string hash (64 lowercase hex, no prefix); field 2: int64 size_bytes
        msg = store_pb2.Digest(hash="ab" * 32, size_bytes=300)
        assert msg.SerializeToString() == b"\x0a\x40" + b"ab" * 32 + b"\x10\xac\x02"

    def test_same_bytes_as_inside_a_store_tree(self):
        d = Digest.of_bytes(b"content")
        tree = Directory.build(files=[FileNode(b"f", d, 7, False)])
        msg = store_pb2.Digest(hash=d.hex, size_bytes=7).SerializeToString()
        assert msg in tree.encode()


# The RPC shapes the daemon and client are written against:
# (service, method, client streams, server streams).
RPCS = [
    ("Store", "FindMissing", False, False),
    ("Store", "Put", True, False),
    ("Store", "BatchPut", False, False),
    ("Store", "Get", False, True),
    ("Store", "Stat", False, False),
    ("Store", "PutTree", True, True),
    ("Store", "CommitTree", False, False),
    ("Store", "CancelTree", False, False),
    ("Store", "Checkout", False, True),
    ("Store", "ListRoots", False, False),
    ("Store", "AddRoot", False, False),
    ("Store", "RemoveRoot", False, False),
    ("Store", "GC", False, True),
    ("Store", "Verify", False, True),
    ("Store", "AddHandoff", False, False),
    ("Daemon", "Status", False, False),
    ("Daemon", "Shutdown", False, False),
]


class TestServices:
    @pytest.mark.parametrize(("service", "method", "client_streaming", "server_streaming"), RPCS)
    def test_rpc_shape(self, service, method, client_streaming, server_streaming):
        m = store_pb2.DESCRIPTOR.services_by_name[service].methods_by_name[method]
        assert (m.client_streaming, m.server_streaming) == (client_streaming, server_streaming)

    def test_no_unlisted_rpcs(self):
        listed = {(s, m) for s, m, _, _ in RPCS}
        declared = {
            (s.name, m.name)
            for s in store_pb2.DESCRIPTOR.services_by_name.values()
            for m in s.methods
        }
        assert declared == listed


class _Store(store_pb2_grpc.StoreServicer):
    """Just enough of a servicer to drive the generated code over a real channel."""

    def __init__(self):
        self.blobs: dict[str, bytes] = {}

    def FindMissing(self, request, context):
        return store_pb2.FindMissingResponse(
            missing=[d for d in request.digests if d.hash not in self.blobs]
        )

    def Put(self, request_iterator, context):
        first = next(request_iterator)
        data = first.data + b"".join(r.data for r in request_iterator)
        assert Digest.of_bytes(data).hex == first.header.digest.hash
        self.blobs[first.header.digest.hash] = data
        return store_pb2.PutResponse(digest=first.header.digest, created=True)

    def Get(self, request, context):
        data = self.blobs[request.digest.hash]
        for i in range(0, len(data), 4):
            yield store_pb2.GetResponse(data=data[i : i + 4])


class _Daemon(store_pb2_grpc.DaemonServicer):
    def Status(self, request, context):
        return store_pb2.StatusResponse(pid=1, version="test", store_format=1)


def test_stubs_work_over_a_unix_socket():
    tmp = tempfile.mkdtemp(prefix="seal-proto-")  # short: socket paths are limited to ~108 bytes
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    store_pb2_grpc.add_StoreServicer_to_server(_Store(), server)
    store_pb2_grpc.add_DaemonServicer_to_server(_Daemon(), server)
    address = f"unix://{tmp}/s.sock"
    server.add_insecure_port(address)
    server.start()
    try:
        with grpc.insecure_channel(address) as channel:
            stub = store_pb2_grpc.StoreStub(channel)
            data = b"hello, store"
            d = store_pb2.Digest(hash=Digest.of_bytes(data).hex, size_bytes=len(data))
            assert list(stub.FindMissing(store_pb2.FindMissingRequest(digests=[d])).missing) == [d]
            header = store_pb2.PutHeader(digest=d)
            chunks = [store_pb2.PutRequest(header=header, data=data[:5]),
                      store_pb2.PutRequest(data=data[5:])]  # fmt: skip
            assert stub.Put(iter(chunks)).digest == d
            assert not stub.FindMissing(store_pb2.FindMissingRequest(digests=[d])).missing
            got = b"".join(r.data for r in stub.Get(store_pb2.GetRequest(digest=d)))
            assert got == data
            with pytest.raises(grpc.RpcError) as info:
                stub.Stat(store_pb2.StatRequest(digest=d))
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
            status = store_pb2_grpc.DaemonStub(channel).Status(store_pb2.StatusRequest())
            assert (status.version, status.store_format) == ("test", 1)
    finally:
        server.stop(grace=None)
        shutil.rmtree(tmp, ignore_errors=True)
