"""Fixed timestamps: every object file and every directory of a materialized tree or a
checkout has the mtime 315532800 (1980-01-01T00:00:00Z, the SOURCE_DATE_EPOCH floor), so a
build that reads its inputs sees the same timestamps whatever store they came from."""

from __future__ import annotations

import io
import os
import stat
import tempfile
from pathlib import Path

import pytest
from storekit import File, Link, object_files, read_spec, write_spec

from seal.store import Digest, Store
from seal.store.layout import OBJECT_MTIME

EPOCH = 315532800
MiB = 1 << 20
SPEC = {
    b"run": File(b"#!/bin/sh\necho run\n", True),
    b"doc": File(b"#!/bin/sh\necho run\n"),  # the same bytes, used plainly
    b"empty": File(b""),
    b"big": File(bytes(range(256)) * (6 * MiB // 256), False),  # streamed, not read whole
    b"bigx": File(b"x" * (3 * MiB), True),
    b"lib": {b"deep": {b"m.py": File(b"print(1)\n")}, b"void": {}},
    b"link": Link(b"lib/deep/m.py"),
}


def _mtimes(paths) -> dict[str, int]:
    return {str(p): os.lstat(p).st_mtime_ns for p in paths}


def _tree_entries(root: Path) -> tuple[list[Path], list[Path]]:
    """(directories including ``root``, regular files) under ``root``."""
    dirs, files = [root], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirs += [Path(dirpath) / d for d in dirnames]
        files += [
            Path(dirpath) / f
            for f in filenames
            if stat.S_ISREG(os.lstat(Path(dirpath) / f).st_mode)
        ]
    return dirs, files


@pytest.fixture
def filled(store, tmp_path, ingest_path):
    src = tmp_path / "src"
    write_spec(src, SPEC)
    # the source's own times must not leak into the store
    os.utime(src / "run", ns=(10**18, 10**18))
    return store.put_tree(src)


class TestObjectFiles:
    def test_the_constant(self):
        assert OBJECT_MTIME == EPOCH

    def test_every_object_of_an_ingested_tree(self, store, filled):
        found = object_files(store)
        assert len(found) >= 9  # blobs, exec copies, trees
        assert set(_mtimes(found).values()) == {EPOCH * 10**9}

    def test_every_way_of_adding_an_object(self, store, tmp_path):
        big = tmp_path / "big"
        big.write_bytes(os.urandom(3 * MiB))
        digests = [
            store.put_file(big),  # copied in the kernel, hashed from the copy
            store.put_bytes(b"small"),
            store.put_stream(io.BytesIO(os.urandom(2 * MiB))),  # the daemon's uploads
        ]
        with store.batch() as b:
            b.add_exec_copy(digests[1])  # a 0555 copy of a recorded blob
            digests.append(b.add_bytes(b"exec", executable=True))
            digests.append(b.add_stream(io.BytesIO(b"s" * (2 * MiB)), executable=True)[0])
        paths = [store.layout.object_path(d) for d in digests]
        paths += [store.layout.object_path(d, True) for d in (digests[1], *digests[3:])]
        assert all(os.path.exists(p) for p in paths)
        assert set(_mtimes(paths).values()) == {EPOCH * 10**9}
        assert set(_mtimes(object_files(store)).values()) == {EPOCH * 10**9}

    def test_verify_is_content_only(self, store, filled):
        report = store.verify()
        assert report.ok and report.orphaned == []


class TestMaterializedTrees:
    def test_materialize(self, store, filled):
        target = store.materialize(filled)
        dirs, files = _tree_entries(target)
        assert len(dirs) == 4 and len(files) == 6
        assert set(_mtimes(dirs).values()) == {EPOCH * 10**9}
        assert set(_mtimes(files).values()) == {EPOCH * 10**9}
        assert store.verify().ok and store.verify().orphaned == []

    def test_checkout(self, store, filled, tmp_path):
        out = tmp_path / "out"
        store.checkout(filled, out)
        dirs, files = _tree_entries(out)
        assert len(dirs) == 4
        assert set(_mtimes(dirs + files).values()) == {EPOCH * 10**9}
        # plain and executable uses keep their modes
        assert stat.S_IMODE(os.stat(out / "run").st_mode) == 0o555
        assert stat.S_IMODE(os.stat(out / "doc").st_mode) == 0o444

    def test_copied_files_too(self, store, filled):
        # /dev/shm is another filesystem than the store's: files are copied, not linked
        if os.stat("/dev/shm").st_dev == os.stat(store.root).st_dev:
            pytest.skip("/dev/shm is on the store's filesystem: cannot provoke EXDEV")
        with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
            out = Path(other) / "out"
            store.checkout(filled, out)
            assert read_spec(out) == SPEC
            dirs, files = _tree_entries(out)
            assert set(_mtimes(dirs + files).values()) == {EPOCH * 10**9}
            run = os.stat(out / "run")
            exec_copy = store.layout.object_path(_digest(SPEC[b"run"]), True)
            assert run.st_ino != os.stat(exec_copy).st_ino
            assert stat.S_IMODE(run.st_mode) == 0o555

    def test_in_another_store_the_same_times(self, tmp_path, filled, store):
        with Store.open(tmp_path / "other") as other:
            src = tmp_path / "src2"
            write_spec(src, SPEC)
            assert other.put_tree(src) == filled
            assert _relative_mtimes(store.materialize(filled)) == _relative_mtimes(
                other.materialize(filled)
            )


def _relative_mtimes(root: Path) -> dict[str, int]:
    dirs, files = _tree_entries(root)
    return {str(p.relative_to(root)): os.lstat(p).st_mtime_ns for p in dirs + files}


def _digest(node: File) -> Digest:
    return Digest.of_bytes(node.data)
