"""GC, roots and verify over the real socket, and GC racing concurrent uploads."""

from __future__ import annotations

import os
import random
import threading
import time

import grpc
import pytest
from daemonkit import (
    File,
    build_tree,
    checkout,
    connect,
    dpb,
    fails,
    flatten,
    object_files,
    put,
    put_tree,
    upload_tree,
)

from seal.proto.v1 import store_pb2 as pb
from seal.store import Digest

C = grpc.StatusCode


def gc(stub, dry_run=False) -> tuple[pb.GCReport, list[pb.GCRemoved]]:
    removed, report = [], None
    for r in stub.GC(pb.GCRequest(dry_run=dry_run), timeout=60):
        assert report is None, "the report comes last"
        if r.HasField("removed"):
            removed.append(r.removed)
        else:
            report = r.report
    return report, removed


def verify(stub) -> tuple[pb.VerifyReport, list, list]:
    progress, problems, report = [], [], None
    for r in stub.Verify(pb.VerifyRequest(), timeout=120):
        assert report is None, "the report comes last"
        kind = r.WhichOneof("event")
        if kind == "progress":
            progress.append(r.progress)
        elif kind == "problem":
            problems.append(r.problem)
        else:
            report = r.report
    return report, problems, progress


def present(stub, digest: Digest) -> bool:
    return not stub.FindMissing(pb.FindMissingRequest(digests=[dpb(digest)])).missing


class TestGC:
    def test_gc_frees_unrooted_keeps_rooted_and_dry_run_removes_nothing(self, fresh_daemon):
        stub = fresh_daemon.store
        kept = os.urandom(100)
        put(stub, kept, root_name="keep")
        loose = [os.urandom(100) for _ in range(3)]
        for data in loose:
            put(stub, data)
        report, removed = gc(stub, dry_run=True)
        assert report.dry_run and report.objects == 3 and report.live == 1
        assert report.bytes_freed == 300
        listed = {d.hash for batch in removed for d in batch.objects}
        assert listed == {Digest.of_bytes(d).hex for d in loose}
        assert all(present(stub, Digest.of_bytes(d)) for d in loose)
        report, _ = gc(stub)
        assert not report.dry_run and report.objects == 3
        assert not any(present(stub, Digest.of_bytes(d)) for d in loose)
        assert present(stub, Digest.of_bytes(kept))

    def test_in_flight_lease_holds_what_it_sent_and_what_it_found(self, fresh_daemon):
        stub = fresh_daemon.store
        found = os.urandom(50)  # in the store, unrooted, before the upload begins
        put(stub, found)
        spec = {"found": File(found), "a": File(os.urandom(50)), "b": File(os.urandom(50))}
        tree = build_tree(spec)
        lease, missing = put_tree(stub, tree)
        assert {d for d, _ in missing} == {Digest.of_bytes(spec[n].data) for n in "ab"}
        put(stub, spec["a"].data, lease_id=lease.lease_id)
        outsider = os.urandom(50)
        put(stub, outsider)  # no lease, no root: the control that gc does collect
        gc(stub)
        assert not present(stub, Digest.of_bytes(outsider))
        assert present(stub, Digest.of_bytes(found)) and present(
            stub, Digest.of_bytes(spec["a"].data)
        )
        put(stub, spec["b"].data, lease_id=lease.lease_id)
        stub.CommitTree(pb.CommitTreeRequest(lease_id=lease.lease_id, root_name="t"))
        gc(stub)
        assert checkout(stub, tree.root)[1] == flatten(spec)

    def test_put_under_a_lease_is_held_until_the_lease_ends(self, fresh_daemon):
        stub = fresh_daemon.store
        lease, _ = put_tree(stub, build_tree({"a": File(os.urandom(10))}))
        extra = os.urandom(10)  # not part of the tree: held only because the Put names the lease
        put(stub, extra, lease_id=lease.lease_id)
        gc(stub)
        assert present(stub, Digest.of_bytes(extra))
        stub.CancelTree(pb.CancelTreeRequest(lease_id=lease.lease_id))
        gc(stub)
        assert not present(stub, Digest.of_bytes(extra))

    def test_commit_without_root_ends_the_hold(self, fresh_daemon):
        stub = fresh_daemon.store
        tree = build_tree({"x": File(os.urandom(10))})
        upload_tree(stub, tree)  # recorded, not rooted, lease ended
        report, _ = gc(stub)
        assert report.objects == 2 and not present(stub, tree.root)

    def test_lapsed_lease_releases_its_holds(self, start_daemon):
        running = start_daemon(None, "--lease-ttl", "2")
        stub = running.store
        spec = {"a": File(os.urandom(10)), "b": File(os.urandom(10))}
        lease, _ = put_tree(stub, build_tree(spec))
        put(stub, spec["a"].data, lease_id=lease.lease_id)
        gc(stub)
        assert present(stub, Digest.of_bytes(spec["a"].data))
        time.sleep(3)
        gc(stub)
        assert not present(stub, Digest.of_bytes(spec["a"].data))

    def test_orphan_files_are_reported_relative_to_the_store(self, fresh_daemon):
        fan = fresh_daemon.store_dir / "objects" / "sha256" / "00"
        (fan / "junk").write_bytes(b"left by a crash")
        report, removed = gc(fresh_daemon.store)
        assert report.orphans == 1
        assert [o for b in removed for o in b.orphans] == ["objects/sha256/00/junk"]


class TestRoots:
    def test_add_list_remove(self, fresh_daemon):
        stub = fresh_daemon.store
        data = os.urandom(30)
        put(stub, data)
        d = Digest.of_bytes(data)
        stub.AddRoot(pb.AddRootRequest(root=pb.Root(name="r1", digest=dpb(d))))
        stub.AddRoot(pb.AddRootRequest(root=pb.Root(name="r0", digest=dpb(d, 30))))
        roots = stub.ListRoots(pb.ListRootsRequest()).roots
        assert [(r.name, r.digest.hash, r.digest.size_bytes) for r in roots] == [
            ("r0", d.hex, 30),
            ("r1", d.hex, 30),
        ]
        r = stub.RemoveRoot(pb.RemoveRootRequest(name="r1"))
        assert r.digest.hash == d.hex
        assert [r.name for r in stub.ListRoots(pb.ListRootsRequest()).roots] == ["r0"]

    def test_refusals(self, daemon):
        stub = daemon.store
        absent = Digest.of_bytes(os.urandom(8))
        f = fails(stub.AddRoot, pb.AddRootRequest(root=pb.Root(name="x", digest=dpb(absent))))
        assert f.code == C.NOT_FOUND and f.reason == "object-not-found"
        put(stub, b"root me")
        for bad in ["", "tab\there", "x" * 256]:
            root = pb.Root(name=bad, digest=dpb(Digest.of_bytes(b"root me")))
            f = fails(stub.AddRoot, pb.AddRootRequest(root=root))
            assert f.code == C.INVALID_ARGUMENT and f.reason == "invalid-root-name"
        f = fails(stub.RemoveRoot, pb.RemoveRootRequest(name="no-such-root"))
        assert f.code == C.NOT_FOUND and f.reason == "root-not-found"
        f = fails(
            stub.Put,
            iter(
                [
                    pb.PutRequest(
                        header=pb.PutHeader(digest=dpb(Digest.of_bytes(b"")), root_name="bad\nname")
                    )
                ]
            ),
        )
        assert f.code == C.INVALID_ARGUMENT and f.reason == "invalid-root-name"


class TestVerify:
    def test_clean_store_reports_progress_then_ok(self, fresh_daemon):
        stub = fresh_daemon.store
        for _ in range(300):
            put(stub, os.urandom(20))
        report, problems, progress = verify(stub)
        assert report.ok and report.checked == 300 and problems == []
        assert progress and progress[-1].checked == 300 and progress[-1].total_objects == 300

    def test_corruption_is_reported(self, fresh_daemon):
        stub = fresh_daemon.store
        data = os.urandom(40)
        put(stub, data)
        d = Digest.of_bytes(data)
        path = fresh_daemon.store_dir / "objects" / "sha256" / d.hex[:2] / d.hex
        path.chmod(0o644)
        path.write_bytes(b"x" * 40)
        report, problems, _ = verify(stub)
        assert not report.ok and report.corrupt == 1
        assert [(p.kind, p.digest.hash) for p in problems] == [
            (pb.VerifyProblem.KIND_CORRUPT, d.hex)
        ]


class TestConcurrency:
    def test_gc_racing_16_uploaders_never_frees_rooted_or_held_objects(self, fresh_daemon):
        """16 clients upload overlapping trees (rooted on commit) while gc runs in a loop."""
        pool = [os.urandom(random.randint(1, 3000)) for _ in range(40)]  # shared blobs
        errors: list[BaseException] = []
        committed: dict[str, tuple[Digest, dict]] = {}
        done = threading.Event()
        gc_runs = 0

        def uploader(n: int) -> None:
            stubs = connect(fresh_daemon.process.address)
            rng = random.Random(n)
            try:
                for i in range(6):
                    spec = {
                        f"s{k}": File(rng.choice(pool), exe=rng.random() < 0.2) for k in range(8)
                    }
                    spec["own"] = {"u": File(os.urandom(100))}
                    tree = build_tree(spec)
                    lease, missing = put_tree(stubs.store, tree)
                    for digest, _ in missing:
                        time.sleep(rng.random() / 200)  # let gc in between the calls
                        put(stubs.store, tree.blobs[digest], lease_id=lease.lease_id)
                    name = f"c{n}-{i}"
                    stubs.store.CommitTree(
                        pb.CommitTreeRequest(lease_id=lease.lease_id, root_name=name)
                    )
                    committed[name] = (tree.root, spec)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
            finally:
                stubs.close()

        def collector() -> None:
            nonlocal gc_runs
            stubs = connect(fresh_daemon.process.address)
            try:
                while not done.is_set():
                    gc(stubs.store)
                    gc_runs += 1
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                stubs.close()

        threads = [threading.Thread(target=uploader, args=(n,)) for n in range(16)]
        gc_thread = threading.Thread(target=collector)
        gc_thread.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done.set()
        gc_thread.join()
        assert not errors, errors[:3]
        assert gc_runs >= 5, "gc should have raced the uploads"
        assert len(committed) == 16 * 6
        stub = fresh_daemon.store
        gc(stub)
        for _name, (root, spec) in sorted(committed.items()):
            assert checkout(stub, root)[1] == flatten(spec)
        report, problems, _ = verify(stub)
        assert report.ok and problems == [], problems[:5]
        # each blob is stored once: one plain file per object (plus exec copies)
        files = object_files(fresh_daemon.store_dir)
        plain = {f for f in files if not f.endswith(".x")}
        assert len(plain) == report.checked


@pytest.fixture(autouse=True)
def _seed():
    random.seed(1234)
