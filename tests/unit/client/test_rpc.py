"""The client's gRPC boundary: one table from status and reason to exit code; message packing."""

from __future__ import annotations

import grpc
import pytest

from seal.client import exitcodes, rpc
from seal.proto.v1 import store_pb2 as pb
from seal.store import Digest, Directory, FileNode


class FailedCall(grpc.RpcError):
    """What a failed call raises: code, details and trailing metadata (the grpc.Call interface)."""

    def __init__(self, code: grpc.StatusCode, details: str, metadata=()):
        self._code, self._details, self._metadata = code, details, tuple(metadata)

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._metadata


C = grpc.StatusCode


class TestExitCodes:
    @pytest.mark.parametrize(
        "code, reason, expected",
        [
            (C.INVALID_ARGUMENT, "invalid-digest", exitcodes.BAD_INPUT),
            (C.NOT_FOUND, "object-not-found", exitcodes.NOT_FOUND),
            (C.NOT_FOUND, "root-not-found", exitcodes.NOT_FOUND),
            (C.DATA_LOSS, "digest-mismatch", exitcodes.DATA_LOSS),
            (C.UNAVAILABLE, "socket-in-use", exitcodes.UNAVAILABLE),
            (C.UNAVAILABLE, "store-locked", exitcodes.BUSY),
            (C.FAILED_PRECONDITION, "tree-incomplete", exitcodes.PRECONDITION),
            (C.FAILED_PRECONDITION, "store-version", exitcodes.INCOMPATIBLE),
            (C.RESOURCE_EXHAUSTED, "message-too-large", exitcodes.LIMIT),
            (C.PERMISSION_DENIED, "permission-denied", exitcodes.PERMISSION),
            (C.OUT_OF_RANGE, "out-of-range", exitcodes.BAD_INPUT),
            (C.INTERNAL, "internal", exitcodes.INTERNAL),
        ],
    )
    def test_daemon_refusals(self, code, reason, expected):
        err = rpc.from_rpc_error(
            FailedCall(code, "what went wrong", [("seal-reason", reason), ("seal-hint", "do X")])
        )
        assert (err.exit_code, err.reason, err.message, err.hint) == (
            expected,
            reason,
            "what went wrong",
            "do X",
        )

    def test_transport_failure_is_daemon_unavailable(self):
        err = rpc.from_rpc_error(
            FailedCall(C.UNAVAILABLE, "failed to connect to all addresses\nmore detail")
        )
        assert err.reason == "daemon-unavailable" and err.exit_code == exitcodes.UNAVAILABLE
        assert "\n" not in err.message and err.hint

    def test_unknown_status_without_reason_is_internal(self):
        err = rpc.from_rpc_error(FailedCall(C.UNKNOWN, "Exception calling application: boom"))
        assert err.exit_code == exitcodes.INTERNAL and err.reason == "daemon-error"

    def test_every_exit_code_is_documented(self):
        for _, _, code in rpc.EXIT_CODES:
            assert f"\n  {code} " in exitcodes.HELP

    def test_translated_catches_rpc_errors_only_as_client_errors(self):
        with pytest.raises(rpc.ClientError) as info, rpc.translated():
            raise FailedCall(C.NOT_FOUND, "gone", [("seal-reason", "object-not-found")])
        assert info.value.exit_code == exitcodes.NOT_FOUND
        with pytest.raises(rpc.ClientError) as info:
            rpc.parse_digest("sha256:nope")
        assert info.value.reason == "invalid-digest"


class TestMessages:
    def test_tree_listing_packed_under_one_mib(self):
        # 300 directories of ~10 KB each: about 3 MB of listing
        dirs = []
        for i in range(300):
            files = [
                FileNode(b"f%04d-%03d" % (i, j), Digest.of_bytes(b"%d-%d" % (i, j)), 1, False)
                for j in range(110)
            ]
            dirs.append(Directory.build(files).encode())
        root = Digest.of_bytes(dirs[0])
        msgs = list(rpc._tree_requests(root, len(dirs[0]), dirs))
        assert len(msgs) > 2
        assert msgs[0].HasField("header") and not any(m.HasField("header") for m in msgs[1:])
        assert msgs[0].header.root_digest.hash == root.hex
        assert all(sum(map(len, m.directories)) <= rpc.CHUNK for m in msgs)
        assert [d for m in msgs for d in m.directories] == dirs

    def test_put_header_first_and_empty_blob(self):
        header = pb.PutHeader(digest=rpc.digest_pb(Digest.of_bytes(b""), 0))
        (only,) = rpc._put_requests(header, [])
        assert only.HasField("header") and only.data == b""
        msgs = list(rpc._put_requests(header, [b"a", b"b"]))
        assert msgs[0].HasField("header") and not msgs[1].HasField("header")
        assert [m.data for m in msgs] == [b"a", b"b"]
