"""16 concurrent ``seal store add`` processes of overlapping trees against one daemon."""

from __future__ import annotations

import json
import os
import random

import pytest
from clientkit import (
    check_output,
    daemon_pids,
    make_tree,
    object_files,
    run_seal,
    seal_at_once,
    seal_json,
    snapshot,
    upload_env,
)

from seal.client import upload
from seal.store import Digest

CLIENTS = 16


@pytest.mark.parametrize("mode", ["handoff", "stream"])
def test_sixteen_clients_uploading_overlapping_trees(store, tmp_path, mode):
    rng = random.Random(1616)
    pool = [rng.randbytes(rng.choice([10, 700, 40_000, 300_000])) for _ in range(40)]
    trees = []
    for i in range(CLIENTS):
        if i == CLIENTS - 1:  # one tree twice: identical concurrent uploads
            trees.append(trees[0])
            continue
        trees.append(make_tree(tmp_path / f"tree{i}", pool, rng, picks=20, unique=3))

    arglists = [["--json", "store", "add", str(t), "--root", f"t{i}"] for i, t in enumerate(trees)]
    procs = seal_at_once(store, arglists, go=tmp_path / "go", env=upload_env(mode))
    digests = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        check_output(p, err)
        assert p.returncode == 0, err
        digests.append(json.loads(out)["digest"])
    assert len(daemon_pids(store)) == 1  # sixteen clients raced to start it

    # every tree is stored with the digest the client computed, and checks out identically
    listings = [upload.scan_tree(os.fsencode(t)) for t in trees]
    assert digests == [str(listing.root) for listing in listings]
    assert seal_json(store, "store", "roots") == {f"t{i}": d for i, d in enumerate(digests)}
    for i, (tree, digest) in enumerate(zip(trees, digests, strict=True)):
        out = tmp_path / f"out{i}"
        run_seal(store, "-q", "store", "checkout", digest, str(out))
        assert snapshot(out) == snapshot(tree), f"tree {i} differs after checkout"

    # each blob once: the object files are exactly the distinct contents and directories
    expected: set[str] = set()
    executables: set[str] = set()
    for tree, listing in zip(trees, listings, strict=True):
        expected |= {d.hex for d in listing.blobs}
        expected |= {Digest.of_bytes(e).hex for e in listing.directories}
        executables.add(Digest.of_bytes((tree / "tool").read_bytes()).hex)
    plain, exe = object_files(store)
    assert plain == expected
    assert exe == executables
    assert not [p for p in (store / "tmp").rglob("*") if p.is_file()]

    report = seal_json(store, "store", "verify")
    assert report["ok"] is True and report["checked"] == len(expected)
    assert report["missing"] == report["corrupt"] == report["dangling"] == []
    assert report["orphaned"] == []
