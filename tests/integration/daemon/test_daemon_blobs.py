"""Blobs over the real socket: Put/Get, Stat, FindMissing, limits and errors."""

from __future__ import annotations

import os
import threading

import grpc
import pytest
from daemonkit import (
    CHUNK,
    NONE,
    ZSTD,
    dpb,
    fails,
    get,
    object_files,
    put,
    put_requests,
    store_tmp_files,
)

from seal.proto.v1 import store_pb2 as pb
from seal.store import Digest

C = grpc.StatusCode


class TestPutGet:
    @pytest.mark.parametrize("compression", [NONE, ZSTD], ids=["plain", "zstd"])
    @pytest.mark.parametrize(
        "size", [0, 1, CHUNK - 1, CHUNK, 3 * CHUNK + 12345], ids=["empty", "1", "1M-1", "1M", "3M+"]
    )
    def test_round_trip(self, daemon, compression, size):
        data = os.urandom(size)
        r = put(daemon.store, data, compression=compression)
        digest = Digest.of_bytes(data)
        assert r.digest.hash == digest.hex and r.digest.size_bytes == size
        assert get(daemon.store, digest, size, compression=compression) == data
        assert get(daemon.store, digest, compression=NONE) == data
        st = daemon.store.Stat(pb.StatRequest(digest=dpb(digest)))
        assert st.kind == pb.OBJECT_KIND_BLOB and st.digest.size_bytes == size

    def test_compressible_data_is_sent_and_served_small(self, daemon):
        data = b"seal " * (2 * CHUNK)  # 10 MiB that compresses to a few KiB
        put(daemon.store, data, compression=ZSTD)
        digest = Digest.of_bytes(data)
        wire = list(daemon.store.Get(pb.GetRequest(digest=dpb(digest), compression=ZSTD)))
        assert sum(len(r.data) for r in wire) < len(data) // 100
        assert get(daemon.store, digest, compression=ZSTD) == data

    def test_second_put_reports_not_created(self, daemon):
        data = os.urandom(1000)
        assert put(daemon.store, data).created is True
        assert put(daemon.store, data).created is False

    def test_range(self, daemon):
        data = os.urandom(2 * CHUNK + 7)
        put(daemon.store, data)
        d = Digest.of_bytes(data)
        assert (
            get(daemon.store, d, offset=CHUNK - 3, limit=CHUNK + 5)
            == data[CHUNK - 3 : 2 * CHUNK + 2]
        )
        assert get(daemon.store, d, offset=len(data)) == b""
        assert get(daemon.store, d, offset=10, limit=5, compression=ZSTD) == data[10:15]
        f = fails(daemon.store.Get, pb.GetRequest(digest=dpb(d), offset=len(data) + 1))
        assert f.code == C.OUT_OF_RANGE and f.reason == "out-of-range"

    def test_put_with_root_name_roots_it(self, daemon):
        data = os.urandom(100)
        put(daemon.store, data, root_name="blob-root")
        st = daemon.store.Stat(pb.StatRequest(digest=dpb(Digest.of_bytes(data))))
        assert list(st.roots) == ["blob-root"]

    def test_put_of_a_present_blob_with_root_name_roots_it(self, daemon):
        data = os.urandom(100)
        put(daemon.store, data)
        assert put(daemon.store, data, root_name="late-root").created is False
        st = daemon.store.Stat(pb.StatRequest(digest=dpb(Digest.of_bytes(data))))
        assert list(st.roots) == ["late-root"]


class TestWrongClaims:
    @pytest.mark.parametrize("wrong", ["digest", "size-short", "size-long"])
    @pytest.mark.parametrize("compression", [NONE, ZSTD], ids=["plain", "zstd"])
    @pytest.mark.parametrize("size", [100, 2 * CHUNK + 5], ids=["small", "streamed"])
    def test_data_loss_and_nothing_stored(self, daemon, wrong, compression, size):
        data = os.urandom(size)  # small blobs are checked in memory, larger ones in tmp/
        before = object_files(daemon.store_dir)
        claim = {
            "digest": dict(digest=Digest.of_bytes(b"something else")),
            "size-short": dict(size=len(data) - 1),
            "size-long": dict(size=len(data) + 1),
        }[wrong]
        f = fails(daemon.store.Put, put_requests(data, compression=compression, **claim))
        assert f.code == C.DATA_LOSS, f
        assert f.reason == "digest-mismatch"
        assert "nothing was stored" in f.details
        assert object_files(daemon.store_dir) == before
        assert store_tmp_files(daemon.store_dir) == []
        r = daemon.store.FindMissing(pb.FindMissingRequest(digests=[dpb(Digest.of_bytes(data))]))
        assert len(r.missing) == 1

    def test_zstd_bomb_costs_at_most_the_claimed_size(self, daemon):
        import zstandard

        bomb = zstandard.ZstdCompressor().compress(bytes(200 * CHUNK))  # 200 MiB of zeros

        def requests():
            header = pb.PutHeader(
                digest=dpb(Digest.of_bytes(b"tiny"), 4), compression=pb.COMPRESSION_ZSTD
            )
            yield pb.PutRequest(header=header, data=bomb)

        f = fails(daemon.store.Put, requests())
        assert f.code == C.DATA_LOSS and "5 bytes" in f.details  # stopped after claimed + 1
        assert store_tmp_files(daemon.store_dir) == []

    def test_bad_zstd_data_is_invalid_argument(self, daemon):
        data = b"not zstd at all"
        header = pb.PutHeader(digest=dpb(Digest.of_bytes(data), len(data)), compression=ZSTD)
        f = fails(daemon.store.Put, iter([pb.PutRequest(header=header, data=data)]))
        assert f.code == C.INVALID_ARGUMENT and f.reason == "bad-compression"
        assert store_tmp_files(daemon.store_dir) == []

    def test_missing_header(self, daemon):
        f = fails(daemon.store.Put, iter([pb.PutRequest(data=b"x")]))
        assert f.code == C.INVALID_ARGUMENT and f.reason == "put-header-missing"

    def test_repeated_header(self, daemon):
        data = os.urandom(10)
        header = pb.PutHeader(digest=dpb(Digest.of_bytes(data), 10))
        msgs = [pb.PutRequest(header=header, data=data[:5]), pb.PutRequest(header=header)]
        f = fails(daemon.store.Put, iter(msgs))
        assert f.code == C.INVALID_ARGUMENT and f.reason == "put-header-repeated"

    @pytest.mark.parametrize("text", ["xyz", "AB" * 32, "ab" * 31])
    def test_malformed_digest(self, daemon, text):
        f = fails(daemon.store.Stat, pb.StatRequest(digest=pb.Digest(hash=text)))
        assert f.code == C.INVALID_ARGUMENT and f.reason == "invalid-digest"

    def test_unknown_compression(self, daemon):
        d = Digest.of_bytes(b"")
        f = fails(daemon.store.Get, pb.GetRequest(digest=dpb(d), compression=7))
        assert f.code == C.INVALID_ARGUMENT


class TestStatAndFindMissing:
    def test_stat_not_found_carries_reason_metadata(self, daemon):
        d = Digest.of_bytes(b"never stored " + os.urandom(8))
        f = fails(daemon.store.Stat, pb.StatRequest(digest=dpb(d)))
        assert f.code == C.NOT_FOUND
        assert f.reason == "object-not-found"
        assert str(d) in f.details

    def test_stat_with_the_wrong_size_is_not_found(self, daemon):
        data = os.urandom(64)
        put(daemon.store, data)
        f = fails(daemon.store.Stat, pb.StatRequest(digest=dpb(Digest.of_bytes(data), 65)))
        assert f.code == C.NOT_FOUND and "64 bytes" in f.hint

    def test_find_missing_in_request_order_each_once(self, daemon):
        present = [os.urandom(50) for _ in range(3)]
        for data in present:
            put(daemon.store, data)
        absent = [Digest.of_bytes(os.urandom(50)) for _ in range(3)]
        ds = [Digest.of_bytes(p) for p in present]
        request = [dpb(absent[0]), dpb(ds[0], 50), dpb(absent[1]), dpb(absent[0]), dpb(ds[1])]
        request += [dpb(ds[2], 51), dpb(absent[2])]  # right hash, wrong size: another object
        r = daemon.store.FindMissing(pb.FindMissingRequest(digests=request))
        assert [m.hash for m in r.missing] == [
            absent[0].hex,
            absent[1].hex,
            ds[2].hex,
            absent[2].hex,
        ]

    def test_find_missing_refuses_more_than_10000(self, daemon):
        # not bytes another test may have put (a random 1-byte blob can be b"7")
        digests = [dpb(Digest.of_bytes(f"never put {i}".encode())) for i in range(10_001)]
        f = fails(daemon.store.FindMissing, pb.FindMissingRequest(digests=digests))
        assert f.code == C.RESOURCE_EXHAUSTED and f.reason == "too-many-digests"
        r = daemon.store.FindMissing(pb.FindMissingRequest(digests=digests[:10_000]))
        assert len(r.missing) == 10_000


class TestLimits:
    def test_chunk_over_1mib_is_refused_by_the_daemon(self, daemon):
        data = os.urandom(CHUNK + CHUNK // 2)  # under gRPC's limit, over the API's
        f = fails(daemon.store.Put, put_requests(data, chunk=len(data)))
        assert f.code == C.RESOURCE_EXHAUSTED and f.reason == "chunk-too-large"
        assert store_tmp_files(daemon.store_dir) == []
        assert put(daemon.store, data).created  # the same bytes in 1 MiB chunks are fine

    def test_message_over_grpc_limit_and_the_daemon_keeps_serving(self, daemon):
        data = os.urandom(3 * CHUNK)
        f = fails(daemon.store.Put, put_requests(data, chunk=len(data)))
        assert f.code == C.RESOURCE_EXHAUSTED
        # a later chunk too big, after a good first one
        good_then_huge = [*put_requests(data[:100], size=len(data))][:1]
        good_then_huge.append(pb.PutRequest(data=data))
        assert fails(daemon.store.Put, iter(good_then_huge)).code == C.RESOURCE_EXHAUSTED
        assert store_tmp_files(daemon.store_dir) == []
        small = os.urandom(10)
        assert put(daemon.store, small).created
        assert get(daemon.store, Digest.of_bytes(small)) == small


class TestConcurrentUploads:
    def test_identical_concurrent_uploads_are_stored_once(self, fresh_daemon):
        data = os.urandom(3 * CHUNK + 1)
        digest = Digest.of_bytes(data)
        barrier = threading.Barrier(8)
        results, errors = [], []

        def upload():
            try:
                barrier.wait()
                results.append(put(fresh_daemon.store, data))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=upload) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert all(r.digest.hash == digest.hex for r in results) and len(results) == 8
        files = object_files(fresh_daemon.store_dir)
        assert files == {f"objects/sha256/{digest.hex[:2]}/{digest.hex}"}
        assert store_tmp_files(fresh_daemon.store_dir) == []
        assert get(fresh_daemon.store, digest) == data
        report = [r for r in fresh_daemon.store.Verify(pb.VerifyRequest()) if r.HasField("report")]
        assert report[0].report.ok and report[0].report.checked == 1
        assert report[0].report.orphaned == 0


def _batch(blobs: list[bytes], **kwargs) -> pb.BatchPutRequest:
    return pb.BatchPutRequest(
        blobs=[
            pb.BatchPutRequest.Blob(digest=dpb(Digest.of_bytes(b), len(b)), data=b) for b in blobs
        ],
        **kwargs,
    )


class TestBatchPut:
    def test_many_small_blobs_in_one_call(self, fresh_daemon):
        blobs = [os.urandom(n) for n in (0, 1, 100, 4096, 60000)]
        r = fresh_daemon.store.BatchPut(_batch(blobs + blobs[:2]))
        assert r.created == len(blobs)
        for data in blobs:
            assert get(fresh_daemon.store, Digest.of_bytes(data), len(data)) == data
        assert fresh_daemon.store.BatchPut(_batch(blobs)).created == 0

    def test_one_wrong_digest_stores_nothing(self, fresh_daemon):
        good, bad = os.urandom(500), os.urandom(500)
        before = object_files(fresh_daemon.store_dir)
        request = _batch([good, bad])
        request.blobs[1].data = bad[:-1] + bytes([bad[-1] ^ 1])
        f = fails(fresh_daemon.store.BatchPut, request)
        assert f.code == C.DATA_LOSS and f.reason == "digest-mismatch"
        assert object_files(fresh_daemon.store_dir) == before

    def test_more_than_a_chunk_of_data_is_refused(self, fresh_daemon):
        f = fails(fresh_daemon.store.BatchPut, _batch([os.urandom(CHUNK // 2 + 1)] * 2))
        assert f.code == C.RESOURCE_EXHAUSTED and f.reason == "batch-too-large"
        fresh_daemon.store.BatchPut(_batch([b"still serving"]))
