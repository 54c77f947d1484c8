"""Checkout and materialize: trees become real directories of hardlinks to store objects."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from storekit import File, Link, fs, read_spec, trees, write_spec

from seal.store import Digest, NotATree, ObjectNotFound, Store, StoreError

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)

SAMPLE = {
    b"bin": {b"tool": File(b"#!/bin/sh\necho hi\n", True)},
    b"doc": File(b"#!/bin/sh\necho hi\n", False),  # same bytes, plain use
    b"\xff\xfe": File(b"not utf-8 name"),
    b"lib": {b"deep": {b"er": {b"x.py": File(b"print(1)\n")}}, b"empty": File(b"")},
    b"link": Link(b"bin/tool"),
    b"abs": Link(b"/etc/passwd"),
}


@pytest.fixture
def sample(store, tmp_path):
    src = tmp_path / "src"
    write_spec(src, SAMPLE)
    return store.put_tree(src)


class TestCheckout:
    def test_reproduces_the_tree(self, store, tmp_path, sample):
        count = store.checkout(sample, tmp_path / "out")
        assert read_spec(tmp_path / "out") == SAMPLE
        assert count == 11  # every file, symlink and directory below the top

    @PROPERTY
    @given(spec=trees())
    def test_round_trip_random_trees(self, fast_tmp, spec):
        with tempfile.TemporaryDirectory(dir=fast_tmp) as work, Store.open(work + "/s") as store:
            write_spec(work + "/src", spec)
            digest = store.put_tree(work + "/src")
            store.checkout(digest, work + "/out")
            assert read_spec(work + "/out") == spec
            # and the checkout ingests back to the same digest
            assert store.put_tree(work + "/out") == digest

    def test_files_are_hardlinks_to_the_objects(self, store, tmp_path, sample):
        out = tmp_path / "out"
        store.checkout(sample, out)
        data = SAMPLE[b"doc"].data
        digest = Digest.of_bytes(data)
        plain = os.stat(store.layout.object_path(digest, False))
        exe = os.stat(store.layout.object_path(digest, True))
        doc, tool = os.stat(out / "doc"), os.stat(out / "bin" / "tool")
        assert doc.st_ino == plain.st_ino and doc.st_dev == plain.st_dev
        assert tool.st_ino == exe.st_ino
        assert plain.st_ino != exe.st_ino  # exec and plain uses: separate inodes
        assert stat.S_IMODE(doc.st_mode) == 0o444
        assert stat.S_IMODE(tool.st_mode) == 0o555
        assert plain.st_nlink == 2 and exe.st_nlink == 2

    def test_two_checkouts_share_inodes_and_modes_stay(self, store, tmp_path, sample):
        store.checkout(sample, tmp_path / "one")
        store.checkout(sample, tmp_path / "two")
        a, b = os.stat(tmp_path / "one" / "doc"), os.stat(tmp_path / "two" / "doc")
        assert a.st_ino == b.st_ino
        assert stat.S_IMODE(b.st_mode) == 0o444
        assert stat.S_IMODE(os.stat(tmp_path / "two" / "bin" / "tool").st_mode) == 0o555

    def test_non_utf8_names_round_trip(self, store, tmp_path):
        spec = {b"\xff\xfe": {b"\x80\x81": File(b"x")}, b"caf\xc3\xa9": Link(b"\xfe\xff")}
        write_spec(tmp_path / "src", spec)
        digest = store.put_tree(tmp_path / "src")
        store.checkout(digest, tmp_path / "out")
        assert read_spec(tmp_path / "out") == spec
        assert os.listdir(fs(tmp_path / "out")).count(b"\xff\xfe") == 1

    def test_symlinks_are_checked_out_verbatim(self, store, tmp_path, sample):
        out = tmp_path / "out"
        store.checkout(sample, out)
        assert os.readlink(out / "abs") == "/etc/passwd"
        assert os.readlink(out / "link") == "bin/tool"
        assert (out / "abs").is_symlink()

    def test_empty_tree(self, store, tmp_path):
        (tmp_path / "src").mkdir()
        digest = store.put_tree(tmp_path / "src")
        assert store.checkout(digest, tmp_path / "out") == 0
        assert os.listdir(tmp_path / "out") == []

    @pytest.mark.parametrize("layout", ["empty-dir-named-a", "empty-dir-named-b"])
    def test_empty_file_and_empty_dir_in_one_tree(self, store, tmp_path, layout):
        # An empty file and an empty directory have the same digest (sha256 of b"").
        # Both orders must work: scandir's order (by name hash on ext4) decides which of the
        # two ingest meets first, so one of these two cases puts the empty file first.
        spec = (
            {b"a": {}, b"b": {b"f": File(b"")}}
            if layout == "empty-dir-named-a"
            else {b"b": {}, b"a": {b"f": File(b"")}}
        )
        write_spec(tmp_path / "src", spec)
        digest = store.put_tree(tmp_path / "src")
        store.checkout(digest, tmp_path / "out")
        assert read_spec(tmp_path / "out") == spec
        assert [e.path for e in store.walk(digest)] == sorted(
            [b"a", b"b", b"a/f" if b"f" in spec[b"a"] else b"b/f"]
        )

    def test_empty_dir_after_empty_blob_was_stored(self, store, tmp_path):
        store.put_bytes(b"")
        (tmp_path / "src" / "d").mkdir(parents=True)
        digest = store.put_tree(tmp_path / "src")
        store.checkout(digest, tmp_path / "out")
        assert read_spec(tmp_path / "out") == {b"d": {}}

    def test_into_an_existing_empty_directory(self, store, tmp_path, sample):
        (tmp_path / "out").mkdir()
        store.checkout(sample, tmp_path / "out")
        assert read_spec(tmp_path / "out") == SAMPLE

    @pytest.mark.parametrize("occupant", ["file-inside", "dir-inside", "is-a-file", "is-a-link"])
    def test_refuses_an_occupied_destination(self, store, tmp_path, sample, occupant):
        out = tmp_path / "out"
        if occupant == "file-inside":
            out.mkdir()
            (out / "keep").write_bytes(b"mine")
        elif occupant == "dir-inside":
            (out / "keep").mkdir(parents=True)
        elif occupant == "is-a-file":
            out.write_bytes(b"mine")
        else:
            (tmp_path / "elsewhere").mkdir()
            out.symlink_to("elsewhere")
        before = _snapshot(tmp_path)
        with pytest.raises(StoreError) as info:
            store.checkout(sample, out)
        assert info.value.reason == "store-error"
        assert _snapshot(tmp_path) == before  # untouched, and no staging left beside it

    def test_missing_parent(self, store, tmp_path, sample):
        with pytest.raises(StoreError):
            store.checkout(sample, tmp_path / "no" / "such" / "out")
        assert not (tmp_path / "no").exists()

    def test_unknown_digest(self, store, tmp_path):
        unknown = Digest.of_bytes(b"never stored")
        with pytest.raises(ObjectNotFound) as info:
            store.checkout(unknown, tmp_path / "out")
        assert info.value.reason == "object-not-found"
        assert info.value.digest == unknown
        assert not (tmp_path / "out").exists()

    def test_a_blob_is_not_a_tree(self, store, tmp_path):
        blob = store.put_bytes(b"just bytes")
        with pytest.raises(NotATree) as info:
            store.checkout(blob, tmp_path / "out")
        assert info.value.reason == "not-a-tree"
        assert not (tmp_path / "out").exists()

    def test_missing_object_fails_cleanly(self, store, tmp_path, sample):
        # A store damaged under us: the error is a StoreError and nothing is left behind.
        path = store.layout.object_path(Digest.of_bytes(b"print(1)\n"))
        os.unlink(path)
        before = _snapshot(tmp_path)
        with pytest.raises(StoreError):
            store.checkout(sample, tmp_path / "out")
        assert _snapshot(tmp_path) == before

    def test_copies_across_filesystems(self, store, sample):
        # /dev/shm is another filesystem than tmp_path: hardlinks are impossible (EXDEV)
        if os.stat("/dev/shm").st_dev == os.stat(store.root).st_dev:
            pytest.skip("/dev/shm is on the store's filesystem: cannot provoke EXDEV")
        with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
            out = Path(other) / "out"
            store.checkout(sample, out)
            assert read_spec(out) == SAMPLE
            doc = os.stat(out / "doc")
            assert (
                doc.st_ino
                != os.stat(
                    store.layout.object_path(Digest.of_bytes(b"#!/bin/sh\necho hi\n"))
                ).st_ino
            )
            assert stat.S_IMODE(doc.st_mode) == 0o444
            assert stat.S_IMODE(os.stat(out / "bin" / "tool").st_mode) == 0o555

    def test_copies_a_file_whose_inode_is_out_of_links(self, store, tmp_path, sample, monkeypatch):
        # ext4 allows 65,000 links per inode: a blob used in very many checkouts hits it
        real_link = os.link
        refused = []

        def link(src, dst, **kwargs):
            if dst == b"doc":
                refused.append(dst)
                raise OSError(errno.EMLINK, "Too many links")
            return real_link(src, dst, **kwargs)

        monkeypatch.setattr(os, "link", link)
        out = tmp_path / "out"
        store.checkout(sample, out)
        assert refused == [b"doc"]
        assert read_spec(out) == SAMPLE
        doc, tool = os.stat(out / "doc"), os.stat(out / "bin" / "tool")
        digest = Digest.of_bytes(SAMPLE[b"doc"].data)
        assert doc.st_ino != os.stat(store.layout.object_path(digest)).st_ino  # a copy
        assert stat.S_IMODE(doc.st_mode) == 0o444
        assert tool.st_ino == os.stat(store.layout.object_path(digest, True)).st_ino  # linked
        assert doc.st_mtime == tool.st_mtime == 315532800

    def test_a_missing_exec_copy_fails_cleanly(self, store, tmp_path, sample):
        os.unlink(store.layout.object_path(Digest.of_bytes(SAMPLE[b"doc"].data), True))
        before = _snapshot(tmp_path)
        with pytest.raises(StoreError) as info:
            store.checkout(sample, tmp_path / "out")
        assert "missing" in str(info.value)
        assert _snapshot(tmp_path) == before


def _snapshot(root: Path) -> dict:
    """Every path under ``root`` (the store excepted) with its type and file content."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        if dirpath == str(root):
            dirs[:] = [d for d in dirs if d != "store"]
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            mode = os.lstat(p).st_mode
            content = Path(p).read_bytes() if stat.S_ISREG(mode) else None
            out[os.path.relpath(p, root)] = (stat.S_IFMT(mode), content)
    return out


class TestMaterialize:
    def test_makes_trees_dir_of_hardlinks(self, store, sample):
        path = store.materialize(sample)
        assert path == store.layout.tree_path(sample)
        assert read_spec(path) == SAMPLE
        assert (
            os.stat(path / "doc").st_ino
            == os.stat(store.layout.object_path(Digest.of_bytes(SAMPLE[b"doc"].data))).st_ino
        )

    def test_made_once_then_reused(self, store, sample):
        first = store.materialize(sample)
        ino = os.stat(first).st_ino
        assert store.materialize(sample) == first
        assert os.stat(first).st_ino == ino

    def test_unknown_and_non_tree(self, store):
        with pytest.raises(ObjectNotFound):
            store.materialize(Digest.of_bytes(b"nothing"))
        with pytest.raises(NotATree):
            store.materialize(store.put_bytes(b"blob"))
        assert os.listdir(store.layout.trees) == []

    def test_needs_a_writable_store(self, store, store_path, sample):
        store.close()
        with Store.open(store_path, readonly=True) as ro:
            with pytest.raises(StoreError):
                ro.materialize(sample)
            # but a read-only store can check out
            ro.checkout(sample, store_path.parent / "out")
        assert read_spec(store_path.parent / "out") == SAMPLE
