"""Helpers for driving the real ``seal`` CLI against real daemons it starts by itself.

Every run of the CLI here checks what a user would see: no traceback ever, and
an error is one ``seal: error:`` line plus at most a hint.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from sealtest import daemon_pids  # noqa: F401 - re-exported for the tests here

SEAL = [sys.executable, "-m", "seal.client.cli"]


def seal_cmd(store: Path, *args: str) -> list[str]:
    return [*SEAL, "--store", str(store), *args]


def check_output(proc: subprocess.CompletedProcess | subprocess.Popen, stderr: str) -> None:
    """What a user sees: no traceback, and a failure is one line (+ hint)."""
    assert "Traceback" not in stderr, stderr
    if proc.returncode != 0 and stderr.strip():  # ('daemon status' exits 1 quietly)
        lines = stderr.strip().splitlines()
        errors = [line for line in lines if line.startswith(("seal: error:", '{"error"'))]
        assert errors, stderr
        assert len(lines) <= 2, stderr


def run_seal(
    store: Path, *args: str, ok: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run the CLI; a call that hangs fails the test with the Python stacks of its threads."""
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    with subprocess.Popen(
        seal_cmd(store, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as p:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
            out, err = p.communicate(timeout=30)
            raise AssertionError(f"seal {' '.join(args)} hung for {timeout} s:\n{err}") from None
    proc = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    check_output(proc, proc.stderr)
    if ok:
        assert proc.returncode == 0, f"seal {' '.join(args)} -> {proc.returncode}:\n{proc.stderr}"
    return proc


def seal_json(store: Path, *args: str):
    return json.loads(run_seal(store, "--json", *args).stdout)


_AT_ONCE = """
import os, sys, time
from seal.client import cli, daemonproc, rpc  # imported before the start line
go = sys.argv[1]
while not os.path.exists(go):
    time.sleep(0.001)
sys.exit(cli.main(sys.argv[2:]))
"""


def seal_at_once(
    store: Path, arglists: list[list[str]], go: Path, env: dict[str, str] | None = None
) -> list[subprocess.Popen]:
    """Start one CLI process per argument list; they call ``main`` together, once loaded."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _AT_ONCE, str(go), "--store", str(store), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for args in arglists
    ]
    time.sleep(0.3 + 0.15 * len(procs))  # let the imports finish (~0.2 s of CPU each)
    go.touch()
    return procs


def upload_env(mode: str) -> dict[str, str]:
    """The environment for CLI uploads by ``mode``: "handoff" (the default) or "stream"."""
    return {**os.environ, "SEAL_UPLOAD": "" if mode == "handoff" else mode}


def stop_all(store: Path) -> list[int]:
    """Stop the store's daemon with the CLI; kill and return any that are left."""
    subprocess.run(seal_cmd(store, "-q", "daemon", "stop"), capture_output=True, timeout=60)
    left = daemon_pids(store)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def make_tree(
    root: Path, pool: list[bytes], rng: random.Random, *, picks: int, unique: int
) -> Path:
    """A tree of shared contents (from ``pool``) and contents of its own, with an
    executable, a symlink, an empty file and nested directories."""
    root.mkdir(parents=True)
    (root / "sub" / "deeper").mkdir(parents=True)
    for i, data in enumerate(rng.sample(pool, picks)):
        where = root / ("sub" if i % 3 == 0 else "") / ("deeper" if i % 5 == 0 else "")
        where.mkdir(parents=True, exist_ok=True)
        (where / f"shared-{i}").write_bytes(data)
    for i in range(unique):
        (root / "sub" / f"own-{i}").write_bytes(rng.randbytes(rng.randrange(1, 5000)))
    tool = root / "tool"
    tool.write_bytes(pool[0])  # the same bytes as a plain file elsewhere: two inodes in store
    tool.chmod(0o755)
    (root / "empty").write_bytes(b"")
    (root / "link").symlink_to("sub/deeper")
    return root


def snapshot(root: Path) -> dict[str, tuple]:
    """Everything a tree keeps: per relative path, its kind, content or target, exec bit."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("symlink", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir",)
            else:
                out[rel] = ("file", p.read_bytes(), bool(p.stat().st_mode & 0o100))
    return out


def object_files(store: Path) -> tuple[set[str], set[str]]:
    """(plain object names, executable-copy names) under objects/sha256/."""
    plain, exe = set(), set()
    for fan in (store / "objects" / "sha256").iterdir():
        for f in fan.iterdir():
            (exe if f.name.endswith(".x") else plain).add(f.name.removesuffix(".x"))
    return plain, exe
