"""Fixtures: a temporary store whose daemons (started by the CLI itself) are stopped after
each test; a test fails if a daemon survives ``seal daemon stop``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from clientkit import stop_all  # noqa: E402


@pytest.fixture
def store(tmp_path: Path):
    d = tmp_path / "store"
    yield d
    left = stop_all(d)
    assert not left, f"daemons still running after 'seal daemon stop' (killed): {left}"
