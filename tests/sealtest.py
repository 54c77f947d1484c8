"""Helpers shared by test folders (importable because tests/conftest.py adds tests/)."""

from __future__ import annotations

import os
from pathlib import Path


def daemon_pids(store: Path) -> list[int]:
    """Live processes running ``-m seal.daemon`` for ``store`` (zombies excluded)."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if b"seal.daemon" in argv and os.fsencode(store) in argv and state not in (b"Z", b"X"):
            pids.append(int(entry.name))
    return sorted(pids)
