"""verify(): every record has a complete, correct file; every file has a record."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from storekit import File, Link, flip_byte, make_writable, write_spec

from seal.store import Digest, Store

SPEC = {
    b"a": File(b"alpha" * 100),
    b"run": File(b"#!/bin/sh\nexit 0\n", True),
    b"d": {b"b": File(b"beta"), b"l": Link(b"../a")},
}


@pytest.fixture
def filled(store, tmp_path):
    write_spec(tmp_path / "src", SPEC)
    tree = store.put_path(tmp_path / "src", root="src")
    blob = store.put_bytes(b"loose blob")
    return tree, blob


def _problems(report):
    return report.missing, report.corrupt, report.dangling, report.orphaned


class TestClean:
    def test_clean_store(self, store, filled):
        report = store.verify()
        assert report.ok
        assert _problems(report) == ([], [], [], [])
        assert report.checked == store.db.count() == 6
        assert report.bytes_checked == sum(r.size for r in store.db.iter_objects())

    def test_empty_store(self, store):
        report = store.verify()
        assert report.ok and report.checked == 0

    def test_materialized_trees_are_not_orphans(self, store, filled):
        store.materialize(filled[0])
        assert store.verify().orphaned == []

    def test_readonly_store_verifies(self, store, store_path, filled):
        store.close()
        with Store.open(store_path, readonly=True) as ro:
            assert ro.verify().ok


class TestCorrupt:
    @pytest.mark.parametrize("offset", [0, 250, -1], ids=["first", "middle", "last"])
    def test_flipped_byte_in_a_blob(self, store, filled, offset):
        d = Digest.of_bytes(b"alpha" * 100)
        flip_byte(store.layout.object_path(d), offset % 500)
        report = store.verify()
        assert report.corrupt == [d]
        assert (report.missing, report.dangling, report.orphaned) == ([], [], [])
        assert not report.ok

    def test_flipped_byte_in_the_exec_copy_only(self, store, filled):
        d = Digest.of_bytes(b"#!/bin/sh\nexit 0\n")
        flip_byte(store.layout.object_path(d, True), 3)
        assert store.verify().corrupt == [d]

    def test_flipped_byte_in_a_tree_object(self, store, filled):
        tree, _ = filled
        flip_byte(store.layout.object_path(tree), 5)
        assert store.verify().corrupt == [tree]

    @pytest.mark.parametrize("change", ["truncate", "append", "empty"])
    def test_wrong_length(self, store, filled, change):
        _, blob = filled
        path = store.layout.object_path(blob)
        make_writable(path)
        with open(path, "r+b") as f:
            if change == "truncate":
                f.truncate(3)
            elif change == "append":
                f.seek(0, os.SEEK_END)
                f.write(b"!")
            else:
                f.truncate(0)
        assert store.verify().corrupt == [blob]

    def test_two_corrupt_objects_are_both_listed(self, store, filled):
        tree, blob = filled
        flip_byte(store.layout.object_path(tree))
        flip_byte(store.layout.object_path(blob))
        assert store.verify().corrupt == sorted([tree, blob])


class TestMissing:
    def test_deleted_object_file(self, store, filled):
        d = Digest.of_bytes(b"beta")
        os.unlink(store.layout.object_path(d))
        report = store.verify()
        assert report.missing == [d]
        assert (report.corrupt, report.dangling, report.orphaned) == ([], [], [])

    def test_deleted_exec_copy(self, store, filled):
        d = Digest.of_bytes(b"#!/bin/sh\nexit 0\n")
        os.unlink(store.layout.object_path(d, True))
        assert store.verify().missing == [d]

    def test_object_replaced_by_a_symlink(self, store, filled, tmp_path):
        # verify must not follow a symlink to content that happens to be right
        d = Digest.of_bytes(b"beta")
        path = store.layout.object_path(d)
        (tmp_path / "elsewhere").write_bytes(b"beta")
        os.unlink(path)
        os.symlink(tmp_path / "elsewhere", path)
        assert store.verify().missing == [d]


def _delete_record(store: Store, digest: Digest) -> None:
    """Remove an object's record with raw LMDB (as a torn or buggy writer would)."""
    env = store.db.env
    objects = env.open_db(b"objects")
    with env.begin(write=True, db=objects) as txn:
        assert txn.delete(digest.raw)


class TestDangling:
    def test_tree_child_without_record(self, store, filled):
        tree, _ = filled
        d = Digest.of_bytes(b"alpha" * 100)
        _delete_record(store, d)
        report = store.verify()
        assert report.dangling == [(tree, d)]
        assert report.orphaned == [store.layout.object_path(d)]  # its file has no record now
        assert not report.ok

    def test_subtree_without_record(self, store, filled):
        tree, _ = filled
        sub = store.read_tree(tree).directories[0].digest
        _delete_record(store, sub)
        report = store.verify()
        assert report.dangling == [(tree, sub)]


class TestOrphaned:
    def test_unrecorded_files_and_junk(self, store, filled):
        data = b"complete file, no record"
        orphan = Path(store.layout.object_path(Digest.of_bytes(data)))
        orphan.write_bytes(data)
        junk = store.layout.objects / "12" / "README"
        junk.write_bytes(b"?")
        (store.layout.objects / "zz").mkdir()
        stray = store.layout.objects / "zz" / "file"
        stray.write_bytes(b"?")
        unknown_tree = store.layout.tree_path(Digest.of_bytes(b"not a recorded tree"))
        unknown_tree.mkdir()
        report = store.verify()
        assert report.ok  # orphans are harmless leftovers
        assert report.orphaned == sorted(map(str, (orphan, junk, stray, unknown_tree)))
        store.gc()
        assert store.verify().orphaned == []
