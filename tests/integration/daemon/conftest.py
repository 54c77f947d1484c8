"""Fixtures: a real ``python -m seal.daemon`` process on a temporary store, and stubs for it.

``daemon`` is one daemon per test module (its store accumulates; tests use fresh
random content); ``fresh_daemon`` is one per test.  Teardown stops the daemon with
SIGTERM and fails the test if it does not exit 0 (no request may kill it) or if its
log shows a traceback (an unexpected error, which clients see as INTERNAL).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The helper module sits beside the tests; make it importable whatever import mode runs.
_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from daemonkit import DaemonProcess, Stubs, connect  # noqa: E402


class Running:
    """A started daemon and stubs connected to it."""

    def __init__(self, process: DaemonProcess):
        self.process = process
        self.store_dir = process.store
        self.stubs: Stubs = connect(process.address)
        self.store = self.stubs.store
        self.daemon = self.stubs.daemon
        self.health = self.stubs.health

    def close(self) -> None:
        self.stubs.close()
        code = self.process.terminate()
        log = self.process.log_text()
        assert code == 0, f"daemon exited {code}:\n{log}"
        assert "Traceback" not in log, f"the daemon hit an unexpected error:\n{log}"
        assert "still run after the grace period" not in log, log


def _start(store: Path, *args: str) -> Running:
    return Running(DaemonProcess(store, list(args)).start())


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """A daemon shared by the tests of one module."""
    running = _start(tmp_path_factory.mktemp("d") / "store")
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def fresh_daemon(tmp_path):
    """A daemon of its own for one test, on an empty store."""
    running = _start(tmp_path / "store")
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def start_daemon(tmp_path):
    """A factory: start_daemon(store=None, *args) -> Running; all are stopped after the test."""
    started: list[Running] = []

    def start(store: Path | None = None, *args: str) -> Running:
        running = _start(store or tmp_path / "store", *args)
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            running.close()
