"""GC frees exactly what no root (and no temp root) reaches, materialized trees included."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from storekit import File, Link, object_files, read_spec, write_spec

from seal.store import Digest, Directory, FileNode, Kind, Store

SHARED = File(b"shared between a rooted and an unrooted tree\n")


def _spec(tag: str, *, shared: bool = True) -> dict:
    t = tag.encode()
    spec = {
        b"own-" + t: File(b"only in " + t),
        b"exe-" + t: File(b"#!/bin/sh\n# " + t, True),
        b"sub": {b"deep-" + t: File(t * 50), b"link": Link(b"../own-" + t)},
    }
    if shared:
        spec[b"shared"] = SHARED
    return spec


@pytest.fixture
def forest(store, tmp_path):
    """Five trees: two rooted by add_root/put_path, one rooted twice, two unrooted."""
    digests = {}
    for tag in ("r1", "r2", "r3", "u1", "u2"):
        write_spec(tmp_path / tag, _spec(tag))
    digests["r1"] = store.put_tree(tmp_path / "r1")
    store.add_root("one", digests["r1"])
    digests["r2"] = store.put_path(tmp_path / "r2", root="two")
    digests["r3"] = store.put_path(tmp_path / "r3", root="three")
    store.add_root("three-again", digests["r3"])
    digests["u1"] = store.put_tree(tmp_path / "u1")
    digests["u2"] = store.put_tree(tmp_path / "u2")
    digests["blob"] = store.put_bytes(b"unrooted loose blob")
    return digests


def _files_of(store: Store, digests) -> set[str]:
    out = set()
    for d in digests:
        for exe in (False, True):
            p = store.layout.object_path(d, exe)
            if os.path.exists(p):
                out.add(p)
    return out


class TestCollect:
    def test_frees_exactly_the_unreachable(self, store, forest):
        live = store.closure(*store.roots().values())
        everything = {rec.digest for rec in store.db.iter_objects()}
        dead = everything - live
        assert Digest.of_bytes(SHARED.data) in live  # shared content stays
        assert {forest["u1"], forest["u2"], forest["blob"]} <= dead
        dead_files = _files_of(store, dead)
        dead_bytes = sum(store.stat(d).size for d in dead)
        assert any(p.endswith(".x") for p in dead_files)  # exec copies are swept too

        report = store.gc()

        assert report.dry_run is False
        assert set(report.objects) == dead
        assert report.live == len(live)
        assert report.orphans == []
        assert report.bytes_freed == dead_bytes
        assert {rec.digest for rec in store.db.iter_objects()} == live
        assert not any(os.path.exists(p) for p in dead_files)
        assert object_files(store) == _files_of(store, live)
        for d in live:
            store.get_bytes(d)
        verify = store.verify()
        assert verify.ok and verify.orphaned == []

    def test_rooted_trees_still_check_out(self, store, forest, tmp_path):
        store.gc()
        for tag, name in (("r1", "one"), ("r2", "two"), ("r3", "three")):
            assert store.roots()[name] == forest[tag]
            store.checkout(forest[tag], tmp_path / f"out-{tag}")
            assert read_spec(tmp_path / f"out-{tag}") == _spec(tag)

    def test_dry_run_reports_the_same_and_deletes_nothing(self, store, forest):
        before_files = object_files(store)
        before_records = {rec.digest for rec in store.db.iter_objects()}
        store.materialize(forest["u1"])
        (Path(store.layout.objects) / "00" / "junk").write_bytes(b"junk")

        dry = store.gc(dry_run=True)

        assert dry.dry_run is True
        assert object_files(store) == before_files | {str(store.layout.objects / "00" / "junk")}
        assert {rec.digest for rec in store.db.iter_objects()} == before_records
        assert store.layout.tree_path(forest["u1"]).is_dir()

        real = store.gc()
        assert (real.objects, real.orphans, real.trees, real.bytes_freed, real.live) == (
            dry.objects,
            dry.orphans,
            dry.trees,
            dry.bytes_freed,
            dry.live,
        )
        assert store.gc(dry_run=True).objects == []

    def test_removing_a_root_frees_its_tree(self, store, forest):
        store.remove_root("two")
        report = store.gc()
        assert forest["r2"] in report.objects
        assert not store.has(forest["r2"])
        assert store.has(forest["r1"]) and store.has(forest["r3"])
        store.remove_root("three")
        assert forest["r3"] not in store.gc().objects  # still rooted as "three-again"
        store.remove_root("three-again")
        assert forest["r3"] in store.gc().objects

    def test_a_second_gc_frees_nothing(self, store, forest):
        store.gc()
        files = object_files(store)
        again = store.gc()
        assert (again.objects, again.orphans, again.trees, again.bytes_freed) == ([], [], [], 0)
        assert object_files(store) == files

    def test_empty_store(self, store):
        report = store.gc()
        assert (report.live, report.objects, report.orphans) == (0, [], [])


class TestMaterializedTrees:
    def test_unrooted_materialized_trees_are_removed(self, store, forest):
        rooted = store.materialize(forest["r1"])
        unrooted = store.materialize(forest["u1"])
        report = store.gc()
        assert report.trees == [forest["u1"]]
        assert not unrooted.exists()
        assert rooted.is_dir()
        assert read_spec(rooted) == _spec("r1")

    def test_subtree_of_a_rooted_tree_is_kept(self, store, forest):
        sub = next(d.digest for d in store.read_tree(forest["r2"]).directories)
        path = store.materialize(sub)
        store.gc()
        assert path.is_dir()

    def test_junk_in_trees_dir_is_removed(self, store, forest):
        junk = store.layout.trees / "not-a-digest"
        junk.mkdir()
        (junk / "f").write_bytes(b"x")
        store.gc()
        assert not junk.exists()


class TestOrphans:
    def test_unrecorded_object_files_are_removed(self, store, forest):
        data = b"written, never recorded (a crash between rename and commit)"
        d = Digest.of_bytes(data)
        path = Path(store.layout.object_path(d))
        path.write_bytes(data)
        junk = store.layout.objects / "ab" / "not-hex"
        junk.write_bytes(b"?")
        misplaced = store.layout.objects / "00" / Digest.of_bytes(b"m").hex  # wrong fan-out dir
        misplaced.write_bytes(b"m")
        assert sorted(store.verify().orphaned) == sorted(map(str, (path, junk, misplaced)))

        report = store.gc()

        assert sorted(report.orphans) == sorted(map(str, (path, junk, misplaced)))
        assert not path.exists() and not junk.exists() and not misplaced.exists()
        verify = store.verify()
        assert verify.ok and verify.orphaned == []

    def test_unrecorded_exec_copy_of_a_live_blob(self, store):
        # A batch adding the exec use of a known blob died before its commit: the .x file
        # has no record (the blob's record lacks the exec flag). It is an orphan.
        d = store.put_bytes(b"#!/bin/sh\n")
        store.add_root("keep", d)
        xpath = store.layout.object_path(d, True)
        Path(xpath).write_bytes(b"#!/bin/sh\n")
        os.chmod(xpath, 0o555)
        assert xpath in store.verify().orphaned
        assert xpath in store.gc().orphans
        assert not os.path.exists(xpath)


class TestTempRoots:
    def test_open_batch_survives_gc(self, store):
        with store.batch() as b:
            d = b.add_bytes(b"held by an open batch")
            x = b.add_bytes(b"held, exec", executable=True)
            report = store.gc()
            assert d not in report.objects
            assert str(store.layout.object_path(d)) not in report.orphans
            assert os.path.exists(store.layout.object_path(d))
            assert os.path.exists(store.layout.object_path(x, True))
        assert store.get_bytes(d) == b"held by an open batch"
        assert store.stat(x).executable_copy
        assert store.verify().ok
        # once the batch is over and nothing roots it, it goes
        assert {d, x} <= set(store.gc().objects)

    def test_recorded_but_unrooted_object_reused_by_an_open_batch(self, store):
        d = store.put_bytes(b"recorded earlier, unrooted")
        with store.batch() as b:
            assert b.add_bytes(b"recorded earlier, unrooted") == d
            assert d not in store.gc().objects
            b.set_root("kept", d)
        assert store.roots() == {"kept": d}
        assert store.get_bytes(d) == b"recorded earlier, unrooted"
        assert d not in store.gc().objects

    def test_add_root_while_gc_runs(self, store, tmp_path, monkeypatch):
        # gc runs in the window between add_root's closure check and its root record:
        # the root must still end up with its whole closure.
        write_spec(tmp_path / "src", _spec("late"))
        tree = store.put_tree(tmp_path / "src")
        real_set_root = store.db.set_root
        ran = []

        def set_root_after_a_gc(name, digest):
            ran.append(store.gc())
            real_set_root(name, digest)

        monkeypatch.setattr(store.db, "set_root", set_root_after_a_gc)
        store.add_root("late", tree)
        monkeypatch.undo()
        assert ran, "the interleaving was not exercised"
        assert len(store.closure(tree)) == len(store.closure(tree, missing_ok=True))
        assert store.verify().ok
        store.checkout(tree, tmp_path / "out")
        assert read_spec(tmp_path / "out") == _spec("late")


class TestConcurrentGc:
    """Must-show 4: gc in a loop in one thread, rooted ingests in another, one Store."""

    N_TREES = 24

    def test_gc_never_frees_what_an_ingest_holds(self, store, tmp_path):
        for i in range(self.N_TREES):
            write_spec(tmp_path / f"keep{i}", _spec(f"k{i % 6}"))  # repeats: dedupe paths
            write_spec(tmp_path / f"drop{i}", _spec(f"k{(i + 3) % 6}"))
            (tmp_path / f"keep{i}" / "unique").write_bytes(os.urandom(64))
            (tmp_path / f"drop{i}" / "big").write_bytes(os.urandom(1_500_000))  # streamed
        rooted: dict[str, Digest] = {}

        def ingest():
            for i in range(self.N_TREES):
                # an unrooted tree sharing content with later rooted ones: gc wants it
                store.put_path(tmp_path / f"drop{i}")
                rooted[f"keep{i}"] = store.put_path(tmp_path / f"keep{i}", root=f"keep{i}")

        gc_runs = _gc_while(store, ingest)
        assert sum(len(r.objects) for r in gc_runs) > 0, "gc never had anything to free"

        assert store.roots() == rooted
        for i in range(self.N_TREES):
            tree = rooted[f"keep{i}"]
            store.closure(tree)  # raises if a record is gone
            out = tmp_path / f"out{i}"
            store.checkout(tree, out)
            assert read_spec(out) == read_spec(tmp_path / f"keep{i}")
        verify = store.verify()
        assert verify.ok, (verify.missing, verify.corrupt, verify.dangling)
        store.gc()
        verify = store.verify()
        assert verify.ok and verify.orphaned == []

    def test_small_rooted_batches_during_long_marks(self, fast_tmp):
        # Many live objects make each gc's mark long; tiny batches (tmpfs: no syncfs cost)
        # then start and commit *inside* a mark, which is where temp roots matter most.
        with Store.open(fast_tmp / "store") as store:
            with store.batch() as b:
                nodes = []
                for i in range(4000):
                    data = b"live %d" % i
                    nodes.append(FileNode(b"f%d" % i, b.add_bytes(data), len(data), False))
                tree = Directory.build(files=nodes)
                big = b.add_bytes(tree.encode(), kind=Kind.TREE, refs=tree.children())
                b.set_root("big", big)
            rooted: dict[str, Digest] = {}

            def ingest():
                for i in range(400):
                    with store.batch() as b:
                        d = b.add_bytes(b"small rooted object %d" % i)
                        b.set_root(f"small{i}", d)
                    rooted[f"small{i}"] = d
                    store.put_bytes(b"unrooted %d" % i)  # something for gc to do

            _gc_while(store, ingest)
            rooted["big"] = big
            assert store.roots() == rooted
            for name, d in rooted.items():
                assert store.has(d), name
                assert os.path.exists(store.layout.object_path(d)), name
            report = store.verify()
            assert report.ok, (report.missing[:3], report.dangling[:3])


def _gc_while(store: Store, ingest) -> list:
    """Run ``ingest`` in one thread and gc in a loop in another until it ends.

    Re-raises the first error of either thread; returns the gc reports and
    checks that the two overlapped.
    """
    done = threading.Event()
    looping = threading.Event()  # the ingest starts once gc is looping: on a busy machine
    errors: list[BaseException] = []  # a late start would leave too little overlap
    gc_runs = []

    def ingesting():
        try:
            looping.wait(timeout=120)
            ingest()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)
        finally:
            done.set()

    def collecting():
        try:
            while not done.is_set():
                gc_runs.append(store.gc())
                looping.set()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            looping.set()

    threads = [threading.Thread(target=ingesting), threading.Thread(target=collecting)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert len(gc_runs) >= 3, "gc and ingest did not overlap"
    return gc_runs


def test_a_temp_root_keeps_everything_its_tree_reaches(store, tmp_path):
    """Holding a tree's digest (as a build holds its inputs) protects the whole tree."""
    write_spec(tmp_path / "held", _spec("held", shared=False))
    tree = store.put_tree(tmp_path / "held")
    everything = store.closure(tree)
    assert len(everything) > 4
    with store.lease() as lease:
        lease.hold([tree])
        report = store.gc()
        assert not set(report.objects) & everything
        assert store.closure(tree) == everything
        store.checkout(tree, tmp_path / "out")
        assert read_spec(tmp_path / "out") == _spec("held", shared=False)
    assert everything <= set(store.gc().objects)  # released: now it all goes
