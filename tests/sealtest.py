"""Helpers shared by test folders (importable because tests/conftest.py adds tests/)."""

from __future__ import annotations

import os
import sys
import tempfile
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


UNPRIVILEGED_UID = 54321  # no passwd entry needed; any unused uid


def blocking_ancestor(path: str) -> str | None:
    """The top-most directory above ``path`` that other users cannot traverse, if any."""
    parts = Path(path).parts
    for i in range(2, len(parts) + 1):
        here = os.path.join(*parts[:i])
        if os.path.isdir(here) and not os.stat(here).st_mode & 0o001:
            return here
    return None


def as_unprivileged(cmd: list[str], scratch: Path, uid: int = UNPRIVILEGED_UID) -> list[str]:
    """``cmd`` run with uid/gid ``uid`` (needs root, setpriv and unshare from util-linux).

    This Python may live where other users cannot reach it (pyenv under /root, 0700):
    then the command runs in a private mount namespace where a world-traversable
    tmpfs over that directory shows just the interpreter's prefix.
    """
    drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *cmd]
    blocked = blocking_ancestor(sys.base_prefix)
    if blocked is None:
        return drop
    hold = tempfile.mkdtemp(prefix="seal-py-", dir=scratch)
    script = (
        "set -e; "
        f'mount --bind "{sys.base_prefix}" "{hold}"; '
        f'mount -t tmpfs -o mode=0755 seal-test "{blocked}"; '
        f'mkdir -p "{sys.base_prefix}"; '
        f'mount --bind "{hold}" "{sys.base_prefix}"; '
        'exec "$@"'
    )
    return ["unshare", "--mount", "--", "/bin/sh", "-c", script, "sh", *drop]
