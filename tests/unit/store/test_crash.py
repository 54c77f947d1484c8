"""Crash safety: a writer SIGKILLed at any point leaves no record of a missing or partial file.

A child process ingests a large tree (3,000 small files and a few 2-8 MiB files) and is
killed, either after a random delay inside the ingest's time span or at an exact point
(a fault hook in the child kills itself with SIGKILL).  Both ingest paths are run: the
in-process one and the one whose files are written by worker processes (which the kill
leaves running: they must stop writing at once, and what they wrote is never trusted).
After each kill the test opens the store and checks: verify() finds nothing missing,
corrupt or dangling; every root's closure is whole; re-ingesting succeeds and checks out
identical to the source; gc then leaves no orphan, and every file on disk is accounted
for by a record.

Set SEAL_CRASH_SEED to replay the random kill points of a failed run.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from storekit import File, Link, model_digest, object_files, read_spec, write_spec

import seal.store.ingest as ingest_module
from seal.store import Digest, Store

CHILD = r"""
import os, signal, sys

from seal.store import Digest, Store
import seal.store.batch as batch_module
import seal.store.ingest as ingest_module
from seal.store.db import MetaDB

store_path, src, extra, fault, path = sys.argv[1:6]
kind, _, arg = fault.partition(":")
ingest_module.POOL_MIN_FILES = 1 if path == "pool" else 10**9


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def die_on_call(owner, name, n=1, after=False):
    real = getattr(owner, name)
    calls = [0]

    def hooked(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n and not after:
            die()
        result = real(*args, **kwargs)
        if calls[0] == n and after:
            die()
        return result

    setattr(owner, name, hooked)


if kind == "open":
    die_on_call(os, "replace")  # the store's VERSION file is about to appear
store = Store.open(store_path)
if kind == "add":
    die_on_call(batch_module.Batch, "add_fd", int(arg))  # N-1 files are in place
elif kind == "adopt":
    die_on_call(batch_module.Batch, "adopt", int(arg))  # N-1 jobs' files are in place
elif kind == "worker":  # a worker dies mid-ingest: the ingest fails, nothing is recorded
    def kill_a_worker(*args, real=batch_module.Batch.adopt):
        from seal.store import pool
        os.kill(pool._pool.workers[0].proc.pid, signal.SIGKILL)
        return real(*args)
    batch_module.Batch.adopt = kill_a_worker
elif kind == "syncfs":
    die_on_call(batch_module, "syncfs")
elif kind == "record":
    die_on_call(MetaDB, "record")
elif kind == "record-after":
    die_on_call(MetaDB, "record", after=True)
print("ready", flush=True)

if kind == "gc":
    store.put_path(src, root="src")
    store.put_path(extra)  # unrooted: gc's to sweep
    die_on_call(os, "unlink", int(arg))
    store.gc()
elif kind == "exec-copy":
    store.put_path(src, root="src")
    data = open(os.path.join(src, "big-2"), "rb").read()  # stored plain only
    die_on_call(MetaDB, "record")
    with store.batch() as b:
        b.add_bytes(data, executable=True)
elif kind == "worker":
    try:
        store.put_path(src, root="src")
    except Exception as exc:
        print(type(exc).__name__, flush=True)
        die()
else:
    store.put_path(src, root="src")
print("done", flush=True)
store.close()
"""

N_SMALL = 3000
BIG = {b"big-2": 2, b"big-5": 5, b"big-8": 8}  # MiB


def _source_spec(rng: random.Random) -> dict:
    spec: dict = {}
    for i in range(N_SMALL):
        top = spec.setdefault(f"d{i % 25:02d}".encode(), {})
        leaf = top.setdefault(f"e{i % 4}".encode(), {})
        size = rng.choice([0, 1, 17, 200, 1000, 4000, rng.randrange(8000)])
        # every 97th file has the same content: one blob at many paths
        data = b"duplicate content\n" if i % 97 == 0 else rng.randbytes(size)
        leaf[f"f{i}".encode()] = File(data, i % 11 == 0)
        if i % 150 == 0:
            leaf[f"l{i}".encode()] = Link(f"../e{(i + 1) % 4}/f{i}".encode())
    for name, mib in BIG.items():
        spec[name] = File(rng.randbytes(mib << 20), mib == 5)
    return spec


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """The big source tree on disk, its spec, and its expected tree digest."""
    base = tmp_path_factory.mktemp("crash-src")
    spec = _source_spec(random.Random(20240601))
    write_spec(base / "src", spec)
    extra = {
        b"extra": {f"x{i}".encode(): File(b"only in the unrooted tree %d" % i) for i in range(30)}
    }
    write_spec(base / "extra", extra)
    return {
        "src": base / "src",
        "extra": base / "extra",
        "spec": spec,
        "digest": model_digest(spec)[0],
    }


def _child(
    workdir: Path, store: Path, source, fault: str = "none", path: str = "inproc"
) -> subprocess.Popen:
    script = workdir / "child.py"
    if not script.exists():
        script.write_text(CHILD)
    src, extra = str(source["src"]), str(source["extra"])
    proc = subprocess.Popen(
        [sys.executable, str(script), str(store), src, extra, fault, path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if line.strip() != "ready":  # died before the interesting part (the "open" fault)
        proc.wait(timeout=60)
    return proc


def _finish(proc: subprocess.Popen) -> tuple[int, bool]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, -signal.SIGKILL), err
    return proc.returncode, "done" in out


def _finish_worker_kill(proc: subprocess.Popen) -> None:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    assert "WorkerDied" in out, (out, err)


def measure_span(base: Path, source, path: str = "inproc") -> float:
    """Seconds from the child's 'ready' to 'done' for an uninterrupted ingest under ``base``.

    The shorter of two runs: a calibration slowed by a busy machine would otherwise put
    many kill points after the end of later, faster ingests.
    """
    spans = []
    for i in range(2):
        store = base / f"calibrate{i}"
        proc = _child(base, store, source, path=path)
        start = time.monotonic()
        assert proc.stdout.readline().strip() == "done", proc.stderr.read()
        spans.append(time.monotonic() - start)
        _finish(proc)
        shutil.rmtree(store)
    return min(spans)


def check_recovered(store_path: Path, source, workdir: Path) -> dict:
    """The store a killed writer left is sound; then it takes the tree and cleans up."""
    facts = {}
    with Store.open(store_path) as store:
        report = store.verify()
        assert (report.missing, report.corrupt, report.dangling) == ([], [], [])
        facts["orphans"] = len(report.orphaned)
        facts["records"] = store.db.count()
        facts["roots"] = store.roots()
        for digest in facts["roots"].values():
            store.closure(digest)  # every record of a rooted closure is there

        digest = store.put_path(source["src"], root="src")
        assert digest == source["digest"]
        out = workdir / "checkout"
        shutil.rmtree(out, ignore_errors=True)
        store.checkout(digest, out)
        assert read_spec(out) == source["spec"]
        shutil.rmtree(out)

        store.gc()
        report = store.verify()
        assert report.ok and report.orphaned == []
        assert {rec.digest for rec in store.db.iter_objects()} == store.closure(digest)
        # every file on disk is accounted for by a record (nothing hides from gc)
        expected_files = set()
        for rec in store.db.iter_objects():
            expected_files.add(store.layout.object_path(rec.digest))
            if rec.has_exec:
                expected_files.add(store.layout.object_path(rec.digest, True))
        assert object_files(store) == expected_files
    return facts


class TestRandomKills:
    @pytest.mark.parametrize("path", ["inproc", "pool"])
    @pytest.mark.parametrize(
        ("kills", "where"),
        [
            pytest.param(15, "tmpfs", id="15-kills-tmpfs"),
            pytest.param(60, "disk", id="60-kills-disk", marks=pytest.mark.slow),
        ],
    )
    def test_sigkill_during_ingest(self, tmp_path, fast_tmp, source, kills, where, path):
        # SIGKILL leaves the page cache intact, so a tmpfs store shows the same states as a
        # disk one, faster; the slow variant runs on tmp_path's disk filesystem with syncfs.
        base = fast_tmp if where == "tmpfs" else tmp_path
        ingest_span = measure_span(base, source, path)
        seed = int(os.environ.get("SEAL_CRASH_SEED") or random.randrange(2**32))
        rng = random.Random(seed)
        context = f"SEAL_CRASH_SEED={seed}, ingest span {ingest_span:.2f}s on {where}, {path}"
        killed_mid_ingest = 0
        states = set()
        for i in range(kills):
            # stratified: one kill point in each of `kills` equal slices of the span
            delay = (i + rng.random()) / kills * ingest_span
            store_path = base / f"store{i}"
            proc = _child(base, store_path, source, path=path)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            _, finished = _finish(proc)
            killed_mid_ingest += not finished
            try:
                facts = check_recovered(store_path, source, base)
            except AssertionError as exc:
                raise AssertionError(f"kill {i} at {delay:.3f}s ({context}): {exc}") from exc
            states.add(
                "complete"
                if facts["roots"]
                else "partial"
                if facts["orphans"] or facts["records"]
                else "before-writes"
            )
            shutil.rmtree(store_path)
        assert killed_mid_ingest >= kills // 3, (
            f"{killed_mid_ingest}/{kills} mid-ingest ({context})"
        )
        assert "partial" in states, f"no kill landed while objects were being written ({context})"


FAULTS = {
    # fault -> what the store must show before recovery
    "add:1": "nothing-recorded",
    "add:1500": "nothing-recorded",
    "syncfs": "nothing-recorded",
    "record": "nothing-recorded",
    "record-after": "rooted",
    "exec-copy": "rooted",
    "gc:1": "rooted",
    "gc:40": "rooted",
}
POOL_FAULTS = {  # the same states, with the files written by worker processes
    "adopt:1": "nothing-recorded",
    "adopt:5": "nothing-recorded",
    "syncfs": "nothing-recorded",
    "record": "nothing-recorded",
    "record-after": "rooted",
}
CASES = [(f, "inproc") for f in FAULTS] + [(f, "pool") for f in POOL_FAULTS]


class TestKillAtExactPoints:
    @pytest.mark.parametrize(("fault", "path"), CASES, ids=[f"{f}-{p}" for f, p in CASES])
    def test_kill_point(self, fast_tmp, source, fault, path):
        store_path = fast_tmp / "store"
        code, finished = _finish(_child(fast_tmp, store_path, source, fault, path))
        assert code == -signal.SIGKILL and not finished, "the fault point was not reached"
        facts = check_recovered(store_path, source, fast_tmp)
        if {**FAULTS, **POOL_FAULTS}[fault] == "nothing-recorded":
            assert facts["records"] == 0 and facts["roots"] == {}
            if fault != "add:1":
                assert facts["orphans"] > 0  # complete files, no records: gc's job
        else:
            assert facts["roots"] == {"src": source["digest"]}

    def test_a_worker_killed_mid_ingest_fails_it_and_records_nothing(self, fast_tmp, source):
        store_path = fast_tmp / "store"
        _finish_worker_kill(_child(fast_tmp, store_path, source, "worker", "pool"))
        facts = check_recovered(store_path, source, fast_tmp)
        assert facts["records"] == 0 and facts["roots"] == {}

    def test_kill_while_creating_the_store(self, fast_tmp, source):
        store_path = fast_tmp / "store"
        code, _ = _finish(_child(fast_tmp, store_path, source, "open"))
        assert code == -signal.SIGKILL
        # a store whose creation was cut short must open (and complete) next time
        check_recovered(store_path, source, fast_tmp)


class TestLeftovers:
    @pytest.mark.parametrize("path", ["inproc", "pool"])
    def test_torn_files_under_object_names_are_never_trusted(
        self, fast_tmp, source, path, monkeypatch
    ):
        # A writer that died mid-write may leave a partial file under an object's final
        # name, with no record. The next ingest of those bytes must replace it.
        store_path = fast_tmp / "store"
        victims = [source["src"] / "big-8", source["src"] / "d07" / "e3" / "f7"]
        with Store.open(store_path) as store:
            for path in victims:
                data = path.read_bytes()
                digest = Digest.of_bytes(data)
                for exe in (False, True):
                    torn = Path(store.layout.object_path(digest, exe))
                    torn.write_bytes(data[: len(data) // 2])
                    os.chmod(torn, 0o444)
            assert len(store.verify().orphaned) == 4
        monkeypatch.setattr(ingest_module, "POOL_MIN_FILES", 1 if path == "pool" else 10**9)
        facts = check_recovered(store_path, source, fast_tmp)
        assert facts["orphans"] == 4
