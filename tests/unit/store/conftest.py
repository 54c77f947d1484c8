"""Fixtures for the store library tests (real LMDB, real files, real processes)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

# The helper module sits beside the tests; make it importable whatever import mode runs.
_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from seal.store import Store  # noqa: E402


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(store_path: Path):
    """A fresh writable store, closed (lock released) after the test."""
    s = Store.open(store_path)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def fast_tmp(tmp_path: Path):
    """A scratch directory on tmpfs when there is one (syncfs is then nearly free), else tmp_path.

    Property tests open a store per example; on a disk each batch's syncfs costs tens of ms.
    """
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="seal-test-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["inproc", "pool"])
def ingest_path(request, monkeypatch) -> str:
    """Run the test with trees ingested in-process, then with the worker-process pool.

    The pool normally takes only trees of POOL_MIN_FILES files or more; here it takes
    every tree, so small test trees exercise it too.
    """
    from seal.store import ingest, pool

    monkeypatch.delenv("SEAL_INGEST_WORKERS", raising=False)
    if request.param == "pool":
        if pool.worker_count() == 0:
            monkeypatch.setenv("SEAL_INGEST_WORKERS", "2")  # one CPU: still test the path
        monkeypatch.setattr(ingest, "POOL_MIN_FILES", 1)
    else:
        monkeypatch.setattr(ingest, "POOL_MIN_FILES", 10**9)
    return request.param
