"""Write batches: objects become visible together, at the end of the block, or not at all."""

from __future__ import annotations

import io
import os

import pytest

from seal.store import Digest, Kind

MiB = 1 << 20


class TestCommit:
    def test_nothing_recorded_until_the_block_ends(self, store):
        with store.batch() as b:
            digests = [b.add_bytes(f"object {i}".encode()) for i in range(50)]
            big, size = b.add_stream(io.BytesIO(b"s" * (2 * MiB)))
            assert size == 2 * MiB
            assert not any(store.has(d) for d in digests + [big])
            assert store.db.count() == 0
            # ... though the files are already in place
            assert all(os.path.exists(store.layout.object_path(d)) for d in digests + [big])
        assert all(store.has(d) for d in digests + [big])
        assert store.db.count() == 51

    def test_one_lmdb_transaction_per_batch(self, store):
        # LMDB's last transaction id moves by one per write transaction
        before = store.db.env.info()["last_txnid"]
        with store.batch() as b:
            for _ in range(500):
                b.add_bytes(os.urandom(32))
            b.set_root("r", b.add_bytes(b"root"))
        assert store.db.env.info()["last_txnid"] == before + 1

    def test_an_exception_records_nothing(self, store):
        with pytest.raises(KeyError), store.batch() as b:
            d = b.add_bytes(b"doomed")
            b.set_root("r", d)
            raise KeyError("boom")
        assert not store.has(d)
        assert store.roots() == {}
        # the file that was written is an orphan: reported, then collected
        path = store.layout.object_path(d)
        assert store.verify().orphaned == [path]
        assert store.gc().orphans == [path]
        assert not os.path.exists(path)

    def test_refs_and_kind_are_recorded(self, store):
        child = Digest.of_bytes(b"child")
        with store.batch() as b:
            b.add_bytes(b"child")
            parent = b.add_bytes(b"not really a tree", kind=Kind.TREE, refs=[child])
        assert store.stat(parent).kind is Kind.TREE
        assert store.db.refs_of(parent) == [child]
        assert store.closure(parent) == {parent, child}

    def test_same_digest_twice_in_a_batch(self, store):
        with store.batch() as b:
            d1 = b.add_bytes(b"twice")
            d2 = b.add_bytes(b"twice", executable=True)
            d3, _ = b.add_stream(io.BytesIO(b"twice"))
        assert d1 == d2 == d3
        assert store.db.count() == 1
        assert store.stat(d1).executable_copy

    def test_add_fd_small_and_streamed(self, store, tmp_path):
        for size in (10, MiB + 10):
            data = os.urandom(size)
            (tmp_path / "f").write_bytes(data)
            fd = os.open(tmp_path / "f", os.O_RDONLY)
            try:
                with store.batch() as b:
                    d, n = b.add_fd(fd, size)
            finally:
                os.close(fd)
            assert (d, n) == (Digest.of_bytes(data), size)
            assert store.get_bytes(d) == data

    def test_add_fd_reads_what_is_there_not_the_announced_size(self, store, tmp_path):
        (tmp_path / "f").write_bytes(b"grew after fstat")
        fd = os.open(tmp_path / "f", os.O_RDONLY)
        try:
            with store.batch() as b:
                d, n = b.add_fd(fd, 4)
        finally:
            os.close(fd)
        assert (d, n) == (Digest.of_bytes(b"grew after fstat"), 16)
