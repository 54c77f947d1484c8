"""The store calls the daemon builds uploads on: verified streams, leases, tree listings."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from seal.store import (
    Digest,
    DigestMismatch,
    Directory,
    DirectoryNode,
    FileNode,
    IncompleteTree,
    MalformedTree,
    Store,
)


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "store") as s:
        yield s


def _object_files(store: Store) -> set[str]:
    return {str(p) for p in store.layout.objects.rglob("*") if p.is_file()}


def _listing(files: dict[bytes, tuple[bytes, bool]]) -> tuple[Digest, list[bytes], dict]:
    """A two-level tree (top/sub) whose sub holds ``files``; returns root, encodings, blobs."""
    blobs = {Digest.of_bytes(data): data for data, _ in files.values()}
    sub = Directory.build(
        files=[FileNode(n, Digest.of_bytes(d), len(d), x) for n, (d, x) in files.items()]
    )
    sub_bytes = sub.encode()
    top = Directory.build(
        directories=[DirectoryNode(b"sub", Digest.of_bytes(sub_bytes), len(sub_bytes))]
    )
    top_bytes = top.encode()
    return Digest.of_bytes(top_bytes), [top_bytes, sub_bytes], blobs


class TestVerifiedStream:
    def test_matching_digest_is_stored(self, store):
        data = os.urandom(3 << 20)  # streamed through tmp/, not the in-memory path
        with store.batch() as b:
            d, size = b.add_stream(
                io.BytesIO(data), expected=Digest.of_bytes(data), expected_size=len(data)
            )
        assert size == len(data) and store.get_bytes(d) == data

    @pytest.mark.parametrize("wrong", ["digest", "size"])
    def test_mismatch_stores_nothing(self, store, wrong):
        data = os.urandom(2 << 20)
        before = _object_files(store)
        expected = Digest.of_bytes(b"other") if wrong == "digest" else Digest.of_bytes(data)
        size = len(data) + (1 if wrong == "size" else 0)
        with pytest.raises(DigestMismatch) as info, store.batch() as b:
            b.add_stream(io.BytesIO(data), expected=expected, expected_size=size)
        assert info.value.reason == "digest-mismatch"
        assert _object_files(store) == before
        assert not store.has(Digest.of_bytes(data))
        assert os.listdir(store._tmp_dir) == []


class TestLease:
    def test_lease_keeps_uploads_from_gc_until_released(self, store):
        lease = store.lease()
        with store.batch(lease) as b:
            d = b.add_bytes(b"uploaded, not yet part of a tree")
        assert d not in store.gc().objects  # held by the lease after the batch ended
        assert store.has(d)
        lease.release()
        assert d in store.gc().objects
        assert not store.has(d)


class TestPutDirectories:
    def test_complete_listing_is_recorded_and_rooted(self, store, tmp_path):
        root, encodings, blobs = _listing(
            {
                b"tool": (b"#!/bin/sh\n", True),
                b"data": (b"#!/bin/sh\n", False),
                b"x": (b"plain", False),
            }
        )
        for data in blobs.values():
            store.put_bytes(data)
        assert store.put_directories(encodings, root, root_name="up") == root
        assert store.roots() == {"up": root}
        store.checkout(root, tmp_path / "out")
        tool = tmp_path / "out/sub/tool"
        assert tool.read_bytes() == b"#!/bin/sh\n" and os.access(tool, os.X_OK)
        assert not os.access(tmp_path / "out/sub/data", os.X_OK)
        assert store.verify().ok and store.verify().orphaned == []

    def test_missing_blobs_are_listed_and_nothing_recorded(self, store):
        root, encodings, blobs = _listing({b"a": (b"one", False), b"b": (b"two", False)})
        store.put_bytes(b"one")
        before = store.db.count()
        with pytest.raises(IncompleteTree) as info:
            store.put_directories(encodings, root, root_name="up")
        assert info.value.missing == [Digest.of_bytes(b"two")]
        assert store.db.count() == before and store.roots() == {}

    def test_missing_subdirectory_is_listed(self, store):
        root, encodings, blobs = _listing({b"a": (b"one", False)})
        store.put_bytes(b"one")
        with pytest.raises(IncompleteTree) as info:
            store.put_directories(encodings[:1], root)
        assert info.value.missing == [Digest.of_bytes(encodings[1])]

    def test_recorded_subtree_may_be_left_out(self, store):
        root, encodings, blobs = _listing({b"a": (b"one", False)})
        store.put_bytes(b"one")
        store.put_directories(encodings[1:], Digest.of_bytes(encodings[1]))
        assert store.put_directories(encodings[:1], root) == root
        assert store.read_tree(root).directories[0].name == b"sub"

    def test_malformed_listing_is_refused(self, store):
        with pytest.raises(MalformedTree):
            store.put_directories([b"\x0a\x00garbage"], Digest.of_bytes(b"x"))


class TestListingSizes:
    def test_a_file_size_that_lies_is_refused(self, store):
        store.put_bytes(b"four")
        bad = Directory.build(files=[FileNode(b"f", Digest.of_bytes(b"four"), 5, False)])
        data = bad.encode()
        with pytest.raises(MalformedTree):
            store.put_directories([data], Digest.of_bytes(data))
        assert not store.has(Digest.of_bytes(data))

    def test_a_directory_size_that_lies_is_refused(self, store):
        sub = Directory.build().encode()
        top = Directory.build(
            directories=[DirectoryNode(b"d", Digest.of_bytes(sub), len(sub) + 1)]
        ).encode()
        with pytest.raises(MalformedTree):
            store.put_directories([top, sub], Digest.of_bytes(top))


class TestFailedStream:
    def test_a_read_error_leaves_no_staging_file(self, store):
        class Broken(io.RawIOBase):
            sent = 0

            def readinto(self, buf):
                if self.sent > (4 << 20):
                    raise OSError("connection lost")
                self.sent += len(buf)
                buf[:] = b"x" * len(buf)
                return len(buf)

        with pytest.raises(OSError), store.batch() as b:
            b.add_stream(Broken())
        assert os.listdir(store._tmp_dir) == []
