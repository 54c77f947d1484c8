"""Big-tree ingest with worker processes: the same trees and records as in-process, the
same refusals, and no trust in any file a worker did not finish."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from storekit import File, Link, model_digest, object_files, read_spec, store_state, trees
from storekit import write_spec as write

import seal.store.batch as batch_module
import seal.store.ingest as ingest
import seal.store.pool as pool
from seal.store import Digest, Kind, Store, StoreError, UnsupportedFile
from seal.store.ingest_worker import OBJECT_MTIME, SMALL_FILE
from seal.store.layout import EXEC_SUFFIX
from seal.store.layout import OBJECT_MTIME as LAYOUT_MTIME

MiB = 1 << 20
SPEC = {
    b"run": File(b"#!/bin/sh\necho run\n", True),
    b"doc": File(b"#!/bin/sh\necho run\n"),
    b"empty": File(b""),
    b"\xff\xfe": File(b"not utf-8"),
    b"big": File(bytes(range(256)) * (5 * MiB // 256)),  # a job of its own, streamed
    b"bigx": File(b"y" * (SMALL_FILE + 1), True),
    b"pkg": {
        b"__init__.py": File(b""),
        b"sub": {b"__init__.py": File(b""), b"m.py": File(b"print(1)\n")},
        b"lib.so": File(b"\x7fELF", True),
    },
    b"pkg-1.0.dist-info": {b"INSTALLER": File(b"pip\n"), b"RECORD": File(b"pkg/m.py,,\n")},
    b"link": Link(b"pkg/sub/m.py"),
    b"void": {},
}


@pytest.fixture
def use_pool(monkeypatch):
    """Every tree goes to the worker processes (even on a one-CPU machine)."""
    if pool.worker_count() == 0:
        monkeypatch.setenv("SEAL_INGEST_WORKERS", "2")
    monkeypatch.setattr(ingest, "POOL_MIN_FILES", 1)


@pytest.fixture
def used(monkeypatch):
    """Counts of the two ingest paths taken."""
    counts = {"pool": 0, "inproc": 0}
    real_pool, real_inproc = ingest._ingest_with_workers, ingest._ingest_in_process

    def with_workers(*args):
        counts["pool"] += 1
        return real_pool(*args)

    def in_process(*args):
        counts["inproc"] += 1
        return real_inproc(*args)

    monkeypatch.setattr(ingest, "_ingest_with_workers", with_workers)
    monkeypatch.setattr(ingest, "_ingest_in_process", in_process)
    return counts


def _records(store: Store) -> dict:
    return {r.digest: (r.size, r.kind, r.flags) for r in store.db.iter_objects()}


class TestSameResult:
    def test_same_tree_records_and_files_as_in_process(self, tmp_path, monkeypatch, used):
        write(tmp_path / "src", SPEC)
        results = []
        for path in ("inproc", "pool"):
            if path == "pool":
                monkeypatch.setattr(ingest, "POOL_MIN_FILES", 1)
                if pool.worker_count() == 0:
                    monkeypatch.setenv("SEAL_INGEST_WORKERS", "2")
            with Store.open(tmp_path / path) as store:
                digest = store.put_tree(tmp_path / "src")
                files = {os.path.relpath(p, store.layout.objects) for p in object_files(store)}
                results.append((digest, _records(store), files))
                assert store.verify().ok and store.verify().orphaned == []
        assert used == {"pool": 1, "inproc": 1}
        assert results[0] == results[1]
        assert results[0][0] == model_digest(SPEC)[0]

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(spec=trees(max_leaves=30))
    def test_random_trees(self, fast_tmp, use_pool, spec):
        with Store.open(fast_tmp / "s") as store:
            root = fast_tmp / "src"
            write(root, spec)
            try:
                digest = store.put_tree(root)
                assert digest == model_digest(spec)[0]
                store.checkout(digest, fast_tmp / "out")
                assert read_spec(fast_tmp / "out") == spec
            finally:
                shutil.rmtree(root)
                shutil.rmtree(fast_tmp / "out", ignore_errors=True)
        shutil.rmtree(fast_tmp / "s")

    def test_modes_of_the_objects(self, store, tmp_path, use_pool):
        write(tmp_path / "src", SPEC)
        store.put_tree(tmp_path / "src")
        for path in object_files(store):
            st = os.stat(path)
            assert st.st_mode & 0o7777 == (0o555 if path.endswith(EXEC_SUFFIX) else 0o444)
            assert st.st_mtime == OBJECT_MTIME

    def test_worker_constants_match_the_layout(self):
        # the worker imports nothing of the package: its copies must agree
        assert OBJECT_MTIME == LAYOUT_MTIME
        assert SMALL_FILE == batch_module.SMALL_FILE

    def test_reingest_writes_nothing_new(self, store, tmp_path, use_pool, used):
        write(tmp_path / "src", SPEC)
        first = store.put_tree(tmp_path / "src")
        before = (store_state(store), {p: os.stat(p).st_ino for p in object_files(store)})
        assert store.put_tree(tmp_path / "src") == first
        assert (store_state(store), {p: os.stat(p).st_ino for p in object_files(store)}) == before
        assert used["pool"] == 2

    def test_the_pool_is_reused(self, store, tmp_path, use_pool):
        write(tmp_path / "src", SPEC)
        store.put_tree(tmp_path / "src")
        pids = [w.proc.pid for w in pool._pool.workers]
        store.put_tree(tmp_path / "src")
        assert [w.proc.pid for w in pool._pool.workers] == pids


class TestExecCopies:
    def test_a_blob_stored_plain_gets_its_exec_copy(self, store, tmp_path, use_pool):
        data = b"#!/bin/sh\necho plain first\n"
        digest = store.put_bytes(data)
        assert not store.stat(digest).executable_copy
        write(tmp_path / "src", {b"tool": File(data, True)})
        store.put_tree(tmp_path / "src")
        assert store.stat(digest).executable_copy
        exec_copy = store.layout.object_path(digest, True)
        assert os.stat(exec_copy).st_ino != os.stat(store.layout.object_path(digest)).st_ino
        assert store.verify().ok

    def test_a_torn_exec_copy_beside_a_recorded_blob_is_replaced(self, store, tmp_path, use_pool):
        data = b"#!/bin/sh\necho torn\n" * 100
        digest = store.put_bytes(data)
        torn = store.layout.object_path(digest, True)
        with open(torn, "wb") as f:
            f.write(data[:10])
        write(tmp_path / "src", {b"tool": File(data, True)})
        store.put_tree(tmp_path / "src")
        with open(torn, "rb") as f:
            assert f.read() == data
        assert store.verify().ok


class TestLeftovers:
    @pytest.mark.parametrize("which", ["small", "big", "small-exec", "big-exec"])
    def test_torn_files_under_object_names_are_rewritten(self, store, tmp_path, use_pool, which):
        # what a worker killed mid-write leaves: a partial file under the final name
        name = {"small": b"doc", "big": b"big", "small-exec": b"run", "big-exec": b"bigx"}[which]
        data = SPEC[name].data
        digest = Digest.of_bytes(data)
        for exe in {False, SPEC[name].exe}:
            with open(store.layout.object_path(digest, exe), "wb") as f:
                f.write(data[: len(data) // 2])
        write(tmp_path / "src", SPEC)
        store.put_tree(tmp_path / "src")
        report = store.verify()
        assert report.ok and report.orphaned == []
        with store.open_blob(digest) as f:
            assert f.read() == data

    def test_a_file_changed_since_the_worker_read_it(self, store, tmp_path, use_pool, monkeypatch):
        # The worker found the name taken (a torn leftover) and the source changed before
        # the rewrite: the tree would name bytes no longer there, so the ingest fails.
        write(tmp_path / "src", {b"f": File(b"first version")})
        torn = store.layout.object_path(Digest.of_bytes(b"first version"))
        with open(torn, "wb") as f:
            f.write(b"first")
        real = batch_module.Batch.settle

        def change_then_settle(self):
            (tmp_path / "src" / "f").write_bytes(b"second version")
            return real(self)

        monkeypatch.setattr(batch_module.Batch, "settle", change_then_settle)
        before = store.db.count()
        with pytest.raises(UnsupportedFile) as info:
            store.put_tree(tmp_path / "src")
        assert "changed while being added" in str(info.value)
        assert store.db.count() == before


class TestRefusals:
    @pytest.mark.parametrize("bad", ["fifo", "setuid-file", "sticky-dir", "setgid-file"])
    def test_bad_entries_are_refused_before_any_write(self, store, tmp_path, use_pool, bad):
        write(tmp_path / "src", SPEC)
        where = tmp_path / "src" / "pkg" / "sub" / "bad"
        if bad == "fifo":
            os.mkfifo(where)
        elif bad == "sticky-dir":
            where.mkdir()
            os.chmod(where, 0o1777)
        else:
            where.write_bytes(b"#!/bin/sh\n")
            os.chmod(where, 0o4755 if bad == "setuid-file" else 0o2755)
        before = store_state(store)
        with pytest.raises(UnsupportedFile) as info:
            store.put_tree(tmp_path / "src")
        assert info.value.path == str(where)
        assert store_state(store) == before

    @pytest.mark.parametrize("change", ["removed", "setuid", "fifo", "dir"])
    def test_a_file_changed_after_the_scan(self, store, tmp_path, use_pool, monkeypatch, change):
        write(tmp_path / "src", SPEC)
        victim = tmp_path / "src" / "pkg" / "sub" / "m.py"
        real_stat = ingest._stat_with_workers

        def scan_then_change(walk, workers):
            real_stat(walk, workers)
            if change == "removed":
                victim.unlink()
            elif change == "setuid":
                os.chmod(victim, 0o4755)
            elif change == "fifo":
                victim.unlink()
                os.mkfifo(victim)
            else:
                victim.unlink()
                victim.mkdir()

        monkeypatch.setattr(ingest, "_stat_with_workers", scan_then_change)
        with pytest.raises(UnsupportedFile) as info:
            store.put_tree(tmp_path / "src")
        assert info.value.path == str(victim)
        assert store.db.count() == 0
        # the next ingest works (with a fresh pool if the failed one was stopped)
        monkeypatch.setattr(ingest, "_stat_with_workers", real_stat)
        if change == "setuid":
            os.chmod(victim, 0o644)
        else:
            if change == "dir":
                victim.rmdir()
            elif change == "fifo":
                victim.unlink()
            victim.write_bytes(b"print(1)\n")
        assert store.put_tree(tmp_path / "src") == model_digest(SPEC)[0]
        assert store.verify().ok

    def test_a_store_write_error_is_reported(self, store, tmp_path, use_pool):
        write(tmp_path / "src", {b"f": File(b"cannot be stored")})
        fan = os.path.dirname(store.layout.object_path(Digest.of_bytes(b"cannot be stored")))
        os.rmdir(fan)
        with open(fan, "w") as f:
            f.write("not a directory")
        with pytest.raises(OSError):
            store.put_tree(tmp_path / "src")
        assert store.db.count() == 0


class TestWhenThePoolIsNotUsed:
    def test_small_trees_stay_in_process(self, store, tmp_path, used, monkeypatch):
        monkeypatch.setattr(ingest, "POOL_MIN_FILES", 1000)
        write(tmp_path / "src", SPEC)
        store.put_tree(tmp_path / "src")
        assert used == {"pool": 0, "inproc": 1}

    def test_turned_off(self, store, tmp_path, use_pool, used, monkeypatch):
        monkeypatch.setenv("SEAL_INGEST_WORKERS", "0")
        write(tmp_path / "src", SPEC)
        assert store.put_tree(tmp_path / "src") == model_digest(SPEC)[0]
        assert used == {"pool": 0, "inproc": 1}

    def test_a_bad_setting_is_an_error(self, monkeypatch):
        monkeypatch.setenv("SEAL_INGEST_WORKERS", "many")
        with pytest.raises(StoreError) as info:
            pool.worker_count()
        assert "SEAL_INGEST_WORKERS" in str(info.value)

    def test_workers_that_cannot_start(self, store, tmp_path, use_pool, used, monkeypatch):
        # e.g. an install whose worker script is not a file: ingest in-process, and do not
        # try again on every ingest
        monkeypatch.setattr(pool, "_pool", None)
        monkeypatch.setattr(pool, "_retry_after", 0.0)
        monkeypatch.setattr(pool, "_WORKER_FILE", str(tmp_path / "no-such-worker.py"))
        write(tmp_path / "src", SPEC)
        started = time.monotonic()
        assert store.put_tree(tmp_path / "src") == model_digest(SPEC)[0]
        assert store.put_tree(tmp_path / "src") == model_digest(SPEC)[0]
        assert used == {"pool": 0, "inproc": 2}
        assert pool._pool is None and pool._retry_after > started

    def test_while_a_gc_runs(self, store, tmp_path, use_pool, used):
        # workers write before the batch holds their objects: never while gc may sweep
        write(tmp_path / "src", SPEC)
        with store._gc_mutex:
            assert store.put_tree(tmp_path / "src") == model_digest(SPEC)[0]
        assert used == {"pool": 0, "inproc": 1}

    def test_while_another_ingest_has_the_pool(self, store, tmp_path, use_pool, used):
        write(tmp_path / "src", SPEC)
        with pool.session() as held:
            assert held is not None
            assert store.put_tree(tmp_path / "src") == model_digest(SPEC)[0]
        assert used == {"pool": 0, "inproc": 1}


class TestWorkers:
    def test_a_worker_that_dies_fails_the_ingest_and_is_replaced(
        self, store, tmp_path, use_pool, monkeypatch
    ):
        write(tmp_path / "src", SPEC)
        store.put_tree(tmp_path / "src")  # the pool is up
        real = batch_module.Batch.adopt
        victims = []

        def kill_a_worker(self, results):
            if not victims:
                victims.append(pool._pool.workers[0].proc.pid)
                os.kill(victims[0], signal.SIGKILL)
            return real(self, results)

        monkeypatch.setattr(batch_module.Batch, "adopt", kill_a_worker)
        many = {b"x%d" % i: File(b"%d" % i) for i in range(1500)}  # jobs queued at the kill
        write(tmp_path / "src2", {**SPEC, b"more": many})
        before = store.db.count()
        with pytest.raises(pool.WorkerDied):
            store.put_tree(tmp_path / "src2")
        assert store.db.count() == before
        monkeypatch.setattr(batch_module.Batch, "adopt", real)
        assert store.put_tree(tmp_path / "src2")
        assert victims[0] not in [w.proc.pid for w in pool._pool.workers]
        assert store.verify().ok

    def test_workers_exit_when_their_parent_dies(self, tmp_path):
        code = textwrap.dedent(
            """
            import os, sys, time
            from seal.store import pool
            os.environ["SEAL_INGEST_WORKERS"] = "2"
            with pool.session() as p:
                print(" ".join(str(w.proc.pid) for w in p.workers), flush=True)
                time.sleep(60)
            """
        )
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)
        assert not any(_alive(p) for p in pids)

    def test_gc_in_a_loop_during_pool_ingests(self, fast_tmp, use_pool):
        # gc and worker ingests exclude each other; whichever wins, the store stays whole
        with Store.open(fast_tmp / "store") as store:
            src = fast_tmp / "src"
            write(src, SPEC)
            stop = threading.Event()
            errors = []

            def collecting():
                try:
                    while not stop.is_set():
                        store.gc()
                except BaseException as exc:  # noqa: BLE001 - re-raised below
                    errors.append(exc)

            collector = threading.Thread(target=collecting)
            collector.start()
            try:
                for i in range(15):
                    digest = store.put_path(src, root=f"r{i % 3}")
                    assert Kind.TREE in store.stat(digest).kind
            finally:
                stop.set()
                collector.join()
            assert not errors, errors
            report = store.verify()
            assert report.ok, (report.missing, report.corrupt, report.dangling)
            for digest in store.roots().values():
                store.closure(digest)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
