"""``kill -9`` of the daemon while clients upload: the next call restarts it, the store
verifies clean, and the uploads, run again, succeed."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess

import pytest
from clientkit import (
    check_output,
    daemon_pids,
    make_tree,
    run_seal,
    seal_cmd,
    seal_json,
    snapshot,
    upload_env,
    wait_for,
)

from seal.client import exitcodes

# what the daemon logs once an upload is under way, by upload mode
_UNDER_WAY = {"stream": "opened for", "handoff": "adding a handed-over descriptor"}


@pytest.mark.parametrize("mode", ["handoff", "stream"])
def test_kill_9_during_uploads(store, tmp_path, mode):
    rng = random.Random(99)
    pool = [rng.randbytes(rng.choice([100, 50_000, 1_500_000])) for _ in range(60)]
    # handed-over trees are read at local speed: make them big enough to be caught mid-way
    picks, unique = (40, 200) if mode == "stream" else (60, 2000)
    trees = [
        make_tree(tmp_path / f"tree{i}", pool, rng, picks=picks, unique=unique) for i in range(4)
    ]
    first = seal_json(store, "daemon", "start")["pid"]

    log = store / "daemon.log"
    marker = _UNDER_WAY[mode]
    before = log.read_text().count(marker)
    procs = [
        subprocess.Popen(
            seal_cmd(store, "--json", "store", "add", str(t), "--root", f"t{i}"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=upload_env(mode),
        )
        for i, t in enumerate(trees)
    ]
    # kill once uploads are under way: a lease is open and blobs are arriving, or the
    # daemon reads a handed-over tree
    wait_for(lambda: log.read_text().count(marker) > before, 60, "a tree upload")
    os.kill(first, signal.SIGKILL)

    failed = []
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=120)
        check_output(p, err)  # one line, no traceback
        if p.returncode != 0:
            assert p.returncode == exitcodes.UNAVAILABLE, err
            assert json.loads(err)["error"]["reason"] == "daemon-unavailable"
            failed.append(i)
    assert failed, "every upload finished before the kill: the test did not test anything"

    # the next call starts a new daemon; what the dead one left is consistent
    report = seal_json(store, "store", "verify")
    (second,) = daemon_pids(store)
    assert second != first
    assert report["ok"] is True
    assert report["missing"] == report["corrupt"] == report["dangling"] == []

    # the uploads, run again, succeed and check out identically
    for i, tree in enumerate(trees):
        digest = seal_json(store, "store", "add", str(tree), "--root", f"t{i}")["digest"]
        out = tmp_path / f"out{i}"
        run_seal(store, "-q", "store", "checkout", digest, str(out))
        assert snapshot(out) == snapshot(tree)
    assert sorted(seal_json(store, "store", "roots")) == [f"t{i}" for i in range(4)]
    seal_json(store, "store", "gc")  # removes the dead daemon's orphans, if any
    report = seal_json(store, "store", "verify")
    assert report["ok"] is True and report["orphaned"] == []
