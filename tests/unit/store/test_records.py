"""Record tables: named LMDB sub-databases beside the object metadata."""

from __future__ import annotations

import subprocess
import sys

import pytest

from seal.store import Store

_MANY_THREADS = """
import sys, threading
from seal.store import Store
with Store.open(sys.argv[1]) as store:
    barrier = threading.Barrier(8)
    def use(n):
        barrier.wait(timeout=10)
        store.records("fetches" if n % 2 else "sources").put_many([(f"k{n}".encode(), b"v")])
    threads = [threading.Thread(target=use, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.records("fetches").get(b"k1") == store.records("sources").get(b"k0") == b"v"
print("ok")
"""


def test_first_use_from_many_threads_at_once(tmp_path):
    """LMDB opens a database in one transaction at a time per process: concurrent first
    uses of a table (two Fetch calls, say) must not deadlock (run apart: a deadlock
    here would hang the test run)."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _MANY_THREADS, str(tmp_path / "store")],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("threads opening a record table at once deadlocked")
    assert proc.stdout.strip() == "ok", proc.stderr


def test_put_many_is_one_transaction_and_unknown_tables_are_refused(tmp_path):
    with Store.open(tmp_path / "store") as store:
        table = store.records("fetches")
        table.put_many([(b"a", b"1"), (b"b", b"2")])
        assert [k for k, _ in table.items()] == [b"a", b"b"]
        with pytest.raises(ValueError, match="unknown record table"):
            store.records("nope")
