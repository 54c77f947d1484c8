"""Trees over the real socket: PutTree -> Put missing -> CommitTree, Checkout, leases."""

from __future__ import annotations

import os
import time

import grpc
import pytest
from daemonkit import (
    CHUNK,
    NONE,
    ZSTD,
    File,
    Link,
    build_tree,
    checkout,
    dpb,
    fails,
    flatten,
    put,
    put_tree,
    upload_tree,
)

from seal.proto.v1 import store_pb2 as pb
from seal.store import Digest, Directory, DirectoryNode, FileNode

C = grpc.StatusCode


def sample_spec(tag: bytes = b"") -> dict:
    tag = tag or os.urandom(8)
    return {
        "README": File(b"hello " + tag),
        "bin": {"tool": File(b"#!/bin/sh\necho " + tag + b"\n", exe=True)},
        "lib": {
            "big.bin": File(os.urandom(CHUNK + 4321)),  # more than one data chunk
            "empty": File(b""),
            "same-as-readme": File(b"hello " + tag),  # one blob, listed twice
            "deep": {"deeper": {"x": File(tag)}},
            "nothing": {},
        },
        "link": Link(b"lib/big.bin"),
        b"bytes-\xff-name": File(b"not utf-8 " + tag),
    }


class TestUpload:
    def test_put_tree_put_missing_commit_with_root_then_checkout(self, daemon):
        spec = sample_spec()
        tree = build_tree(spec)
        lease, missing = put_tree(daemon.store, tree)
        # every distinct blob is missing on a store that has none of them
        assert sorted(d for d, _ in missing) == sorted(tree.blobs)
        assert lease.blobs == len(tree.blobs) and lease.missing_blobs == len(tree.blobs)
        assert lease.missing_bytes == sum(len(b) for b in tree.blobs.values())
        assert lease.ttl_seconds > 0
        for digest, size in missing:
            assert size == len(tree.blobs[digest])
            put(daemon.store, tree.blobs[digest], lease_id=lease.lease_id)
        r = daemon.store.CommitTree(pb.CommitTreeRequest(lease_id=lease.lease_id, root_name="app"))
        assert r.root_digest.hash == tree.root.hex and r.root_digest.size_bytes == tree.size
        st = daemon.store.Stat(pb.StatRequest(digest=dpb(tree.root)))
        assert st.kind == pb.OBJECT_KIND_TREE and list(st.roots) == ["app"]
        summary, got = checkout(daemon.store, tree.root)
        assert got == flatten(spec)
        assert summary.entries == len(got)
        assert summary.content_bytes == sum(
            f.data.__len__() for f in got.values() if isinstance(f, File)
        )
        # the lease ended with the commit
        f = fails(daemon.store.CommitTree, pb.CommitTreeRequest(lease_id=lease.lease_id))
        assert f.code == C.NOT_FOUND and f.reason == "lease-not-found"

    @pytest.mark.parametrize("compression", [NONE, ZSTD], ids=["plain", "zstd"])
    def test_checkout_streams_the_same_tree(self, daemon, compression):
        spec = sample_spec()
        tree = build_tree(spec)
        upload_tree(daemon.store, tree)
        _, got = checkout(daemon.store, tree.root, compression=compression)
        assert got == flatten(spec)

    def test_checkout_entries_only(self, daemon):
        spec = sample_spec()
        tree = build_tree(spec)
        upload_tree(daemon.store, tree)
        summary, got = checkout(daemon.store, tree.root, entries_only=True)
        assert summary.content_bytes == 0
        assert set(got) == set(flatten(spec))
        assert all(f.data == b"" for f in got.values() if isinstance(f, File))

    def test_many_small_files_are_packed_into_few_messages(self, daemon):
        spec = {f"f{i:04}": File(os.urandom(4000)) for i in range(400)}
        tree = build_tree(spec)
        upload_tree(daemon.store, tree)
        request = pb.CheckoutRequest(digest=dpb(tree.root))
        messages = list(daemon.store.Checkout(request))
        assert 1 < len(messages) <= 3  # 1.6 MB of content
        assert checkout(daemon.store, tree.root)[1] == flatten(spec)

    def test_second_upload_sends_nothing_and_shared_blobs_dedupe(self, daemon):
        spec = sample_spec()
        tree = build_tree(spec)
        upload_tree(daemon.store, tree)
        lease, missing = put_tree(daemon.store, tree)
        assert missing == [] and lease.missing_blobs == 0
        daemon.store.CommitTree(pb.CommitTreeRequest(lease_id=lease.lease_id))
        spec2 = dict(spec, extra=File(b"only new blob " + os.urandom(4)))
        lease2, missing2 = put_tree(daemon.store, build_tree(spec2))
        assert [len(build_tree(spec2).blobs[d]) for d, _ in missing2] == [18]
        daemon.store.CancelTree(pb.CancelTreeRequest(lease_id=lease2.lease_id))

    def test_stored_subtree_may_be_left_out_of_the_listing(self, daemon):
        sub = {"a": File(os.urandom(20))}
        sub_tree = build_tree(sub)
        upload_tree(daemon.store, sub_tree)
        spec = {"sub": sub, "b": File(os.urandom(20))}
        tree = build_tree(spec)
        lease, missing = put_tree(daemon.store, tree, encodings=tree.encodings[:1])
        assert [d for d, _ in missing] == [Digest.of_bytes(spec["b"].data)]
        put(daemon.store, spec["b"].data, lease_id=lease.lease_id)
        daemon.store.CommitTree(pb.CommitTreeRequest(lease_id=lease.lease_id))
        assert checkout(daemon.store, tree.root)[1] == flatten(spec)


class TestRefusals:
    def test_commit_before_all_blobs_is_failed_precondition_and_lease_stays(self, daemon):
        spec = {"a": File(os.urandom(30)), "b": File(os.urandom(30))}
        tree = build_tree(spec)
        lease, missing = put_tree(daemon.store, tree)
        put(daemon.store, spec["a"].data, lease_id=lease.lease_id)
        f = fails(daemon.store.CommitTree, pb.CommitTreeRequest(lease_id=lease.lease_id))
        assert f.code == C.FAILED_PRECONDITION and f.reason == "tree-incomplete"
        assert Digest.of_bytes(spec["b"].data).hex in f.details
        assert fails(daemon.store.Stat, pb.StatRequest(digest=dpb(tree.root))).code == C.NOT_FOUND
        put(daemon.store, spec["b"].data, lease_id=lease.lease_id)
        daemon.store.CommitTree(pb.CommitTreeRequest(lease_id=lease.lease_id, root_name="ab"))
        assert checkout(daemon.store, tree.root)[1] == flatten(spec)

    def test_unknown_lease_is_not_found(self, daemon):
        for call, request in [
            (daemon.store.CommitTree, pb.CommitTreeRequest(lease_id="nope")),
            (daemon.store.CancelTree, pb.CancelTreeRequest(lease_id="nope")),
        ]:
            f = fails(call, request)
            assert f.code == C.NOT_FOUND and f.reason == "lease-not-found" and f.hint
        data = os.urandom(10)
        f = fails(daemon.store.Put, iter(put_lease_requests(data, "nope")))
        assert f.code == C.NOT_FOUND and f.reason == "lease-not-found"

    def test_cancel_ends_the_lease(self, daemon):
        tree = build_tree({"a": File(os.urandom(10))})
        lease, _ = put_tree(daemon.store, tree)
        daemon.store.CancelTree(pb.CancelTreeRequest(lease_id=lease.lease_id))
        f = fails(daemon.store.CommitTree, pb.CommitTreeRequest(lease_id=lease.lease_id))
        assert f.reason == "lease-not-found"

    def test_malformed_directory_is_invalid_argument(self, daemon):
        good = build_tree({"a": File(b"x")})
        bad = b"\x0a\x03abc"  # not a canonical Directory encoding
        f = fails(daemon.store.PutTree, tree_requests(good.root, [good.encodings[0], bad]))
        assert f.code == C.INVALID_ARGUMENT and f.reason == "malformed-tree"
        assert str(Digest.of_bytes(bad)) in f.details

    def test_unsorted_names_are_invalid(self, daemon):
        a, b = (FileNode(n, Digest.of_bytes(b""), 0, False) for n in (b"b", b"a"))
        raw = Directory(files=(a, b)).encode()
        f = fails(daemon.store.PutTree, tree_requests(Digest.of_bytes(raw), [raw]))
        assert f.code == C.INVALID_ARGUMENT and f.reason == "malformed-tree"

    def test_listing_that_is_not_closed(self, daemon):
        tree = build_tree({"sub": {"a": File(os.urandom(10))}})
        f = fails(daemon.store.PutTree, tree_requests(tree.root, tree.encodings[:1]))
        assert f.code == C.FAILED_PRECONDITION and f.reason == "listing-incomplete"
        f = fails(daemon.store.PutTree, tree_requests(Digest.of_bytes(b"root?"), []))
        assert f.reason == "listing-incomplete"

    def test_lying_sizes_are_refused(self, daemon):
        data = os.urandom(10)
        put(daemon.store, data)
        lie = Directory(files=(FileNode(b"f", Digest.of_bytes(data), 11, False),)).encode()
        f = fails(daemon.store.PutTree, tree_requests(Digest.of_bytes(lie), [lie]))
        assert f.code == C.INVALID_ARGUMENT and "11" in f.details
        sub = Directory().encode()
        top = Directory(directories=(DirectoryNode(b"d", Digest.of_bytes(sub), 5),)).encode()
        f = fails(daemon.store.PutTree, tree_requests(Digest.of_bytes(top), [top, sub]))
        assert f.code == C.INVALID_ARGUMENT

    def test_missing_tree_header(self, daemon):
        f = fails(daemon.store.PutTree, iter([pb.PutTreeRequest(directories=[b""])]))
        assert f.code == C.INVALID_ARGUMENT and f.reason == "put-tree-header"

    def test_directory_over_the_message_limit_is_resource_exhausted(self, daemon):
        def big_directory(entries: int) -> bytes:
            names = (b"f%07d" % i for i in range(entries))
            nodes = (FileNode(n, Digest.of_bytes(b""), 0, False) for n in names)
            return Directory(files=tuple(nodes)).encode()

        alone = big_directory(20_000)  # ~1.7 MB: over 1 MiB, so it travels alone; accepted
        assert CHUNK < len(alone) < 2 * CHUNK
        lease, missing = put_tree_raw(daemon.store, alone)
        assert set(missing) <= {Digest.of_bytes(b"")}  # every file is empty
        daemon.store.CancelTree(pb.CancelTreeRequest(lease_id=lease.lease_id))
        huge = big_directory(40_000)  # ~3.4 MB: beyond the daemon's 2 MiB message limit
        f = fails(daemon.store.PutTree, tree_requests(Digest.of_bytes(huge), [huge]))
        assert f.code == C.RESOURCE_EXHAUSTED
        assert put_tree(daemon.store, build_tree({"x": File(b"still serving")}))[0].lease_id

    def test_listing_message_over_1mib_is_resource_exhausted(self, daemon):
        dirs = [
            Directory(files=(FileNode(b"f%07d" % i, Digest.of_bytes(b""), 0, False),)).encode()
            for i in range(20000)
        ]  # ~1.7 MB in one message
        header = pb.PutTreeHeader(root_digest=dpb(Digest.of_bytes(dirs[0])))
        request = pb.PutTreeRequest(header=header, directories=dirs)
        f = fails(daemon.store.PutTree, iter([request]))
        assert f.code == C.RESOURCE_EXHAUSTED and f.reason == "message-too-large"

    def test_checkout_of_a_blob_is_not_a_tree(self, daemon):
        data = os.urandom(10)
        put(daemon.store, data)
        request = pb.CheckoutRequest(digest=dpb(Digest.of_bytes(data)))
        f = fails(daemon.store.Checkout, request)
        assert f.code == C.INVALID_ARGUMENT and f.reason == "not-a-tree"


class TestLeaseTTL:
    def test_unused_lease_lapses_and_a_used_one_does_not(self, start_daemon):
        running = start_daemon(None, "--lease-ttl", "2")
        stub = running.store
        idle_tree = build_tree({"a": File(os.urandom(10))})
        idle, _ = put_tree(stub, idle_tree)
        busy_spec = {"b": File(os.urandom(10)), "c": File(os.urandom(10))}
        busy, _ = put_tree(stub, build_tree(busy_spec))
        assert idle.ttl_seconds == 2
        for name in ("b", "c"):  # each Put renews the busy lease
            time.sleep(1.2)
            put(stub, busy_spec[name].data, lease_id=busy.lease_id)
        time.sleep(1.2)  # 3.6 s after the idle lease was last used
        stub.CommitTree(pb.CommitTreeRequest(lease_id=busy.lease_id))
        f = fails(stub.CommitTree, pb.CommitTreeRequest(lease_id=idle.lease_id))
        assert f.code == C.NOT_FOUND and f.reason == "lease-not-found"
        assert "lapsed" in running.process.log_text()


def put_tree_raw(stub, encoding: bytes):
    """PutTree of a one-directory tree given as its encoding."""
    lease, missing = None, []
    for r in stub.PutTree(tree_requests(Digest.of_bytes(encoding), [encoding])):
        lease = r.lease if r.HasField("lease") else lease
        missing += [Digest.from_hex(d.hash) for d in r.missing]
    return lease, missing


def put_lease_requests(data: bytes, lease_id: str):
    header = pb.PutHeader(digest=dpb(Digest.of_bytes(data), len(data)), lease_id=lease_id)
    yield pb.PutRequest(header=header, data=data)


def tree_requests(root: Digest, encodings: list[bytes]):
    yield pb.PutTreeRequest(header=pb.PutTreeHeader(root_digest=dpb(root)))
    for data in encodings:
        yield pb.PutTreeRequest(directories=[data])
