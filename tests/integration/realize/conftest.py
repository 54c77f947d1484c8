"""Fixtures for build tests: a real daemon on a temporary store, and root trees staged
from the host's installed packages and added to that store through the real CLI."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_KITS = [str(Path(__file__).parent), str(Path(__file__).parent.parent / "client")]
for _kit in _KITS:
    if _kit not in sys.path:
        sys.path.insert(0, _kit)

from buildkit import BuildDaemon  # noqa: E402
from hostroot import SHELL_PACKAGES, TOOLCHAIN_PACKAGES, stage_host_root  # noqa: E402


@pytest.fixture(scope="session")
def shell_root_dir(tmp_path_factory) -> Path:
    return stage_host_root(tmp_path_factory.mktemp("shell-root") / "root", SHELL_PACKAGES)


@pytest.fixture(scope="session")
def toolchain_root_dir(tmp_path_factory) -> Path:
    return stage_host_root(tmp_path_factory.mktemp("toolchain-root") / "root", TOOLCHAIN_PACKAGES)


@pytest.fixture(scope="module")
def builder(tmp_path_factory, shell_root_dir):
    """One daemon per test module, with the shell root in its store."""
    daemon = BuildDaemon(tmp_path_factory.mktemp("b") / "store").start()
    try:
        daemon.shell_root = daemon.add(shell_root_dir)
        yield daemon
    finally:
        daemon.close()
