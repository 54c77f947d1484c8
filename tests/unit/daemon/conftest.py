"""Fixtures for the sandbox tests: a root tree staged from the host, a real store, a runner.

The staged root lives in a world-readable directory so that the tests which run
the daemon side as an unprivileged user can read it too.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from hostroot import SHELL_PACKAGES, TOOLCHAIN_PACKAGES, stage_host_root
from sealtest import UNPRIVILEGED_UID, as_unprivileged

from seal.daemon.build import sandbox
from seal.daemon.build.sandbox import Limits, SandboxResult, SandboxSpec
from seal.store import Store

TEST_LIMITS = Limits(timeout=60.0)
PATH = "/usr/bin:/bin"


@pytest.fixture(scope="session")
def staging_dir():
    base = Path(tempfile.mkdtemp(prefix="seal-hostroot-"))
    os.chmod(base, 0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def shell_root_dir(staging_dir: Path) -> Path:
    return stage_host_root(staging_dir / "shell", SHELL_PACKAGES)


@pytest.fixture(scope="session")
def toolchain_root_dir(staging_dir: Path) -> Path:
    return stage_host_root(staging_dir / "toolchain", TOOLCHAIN_PACKAGES)


@pytest.fixture(scope="session")
def bwrap() -> str:
    try:
        return sandbox.find_bwrap()
    except sandbox.SandboxUnavailable as exc:
        pytest.skip(f"no usable bubblewrap: {exc}")


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "store")
    try:
        yield s
    finally:
        s.close()


@dataclass
class Ran:
    result: SandboxResult
    log: str
    workdir: Path

    @property
    def out(self) -> Path:
        return self.workdir / "out" / "out"


class Builds:
    """Runs shell scripts in sandboxes rooted at one materialized tree."""

    path = PATH

    def __init__(self, store: Store, root: Path, base: Path):
        self.store = store
        self.root = root
        self.base = base
        self.count = itertools.count(1)  # thread-safe: builds may run in parallel

    def spec(self, script: str, **over) -> SandboxSpec:
        fields = dict(
            root=self.root,
            inputs={},
            args=["/bin/sh", "-c", script],
            env={"PATH": PATH},
            outputs=["out"],
            source_date_epoch=315532800,
            limits=TEST_LIMITS,
        )
        fields.update(over)
        return SandboxSpec(**fields)

    def run(self, script: str, *, cancel: threading.Event | None = None, **over) -> Ran:
        workdir = self.base / f"build{next(self.count)}"
        chunks: list[bytes] = []
        result = sandbox.run(self.spec(script, **over), workdir, chunks.append, cancel)
        return Ran(result, b"".join(chunks).decode(errors="replace"), workdir)


@pytest.fixture
def builds_for(bwrap):
    """``builds_for(store, tree_dir, base)``: Builds in a root made of ``tree_dir`` in ``store``."""

    def make(store: Store, tree_dir: Path, base: Path) -> Builds:
        return Builds(store, store.materialize(store.put_tree(tree_dir)), base)

    return make


@pytest.fixture
def builds(builds_for, store: Store, shell_root_dir: Path, tmp_path: Path) -> Builds:
    return builds_for(store, shell_root_dir, tmp_path / "work")


@pytest.fixture(scope="module")
def toolchain_builds(bwrap, toolchain_root_dir: Path, tmp_path_factory):
    """Builds in the toolchain root, one store per test module (ingesting it takes a while)."""
    base = tmp_path_factory.mktemp("toolchain")
    with Store.open(base / "store") as store:
        yield Builds(store, store.materialize(store.put_tree(toolchain_root_dir)), base / "work")


# -- running the daemon side as an unprivileged user -------------------------------------------
# The child stages the root into its own store and runs the builds it is given; it prints
# one JSON result per build.
_RUNNER = r"""
import json, os, sys
from pathlib import Path
from seal.daemon.build import sandbox
from seal.store import Store
job = json.load(sys.stdin)
with Store.open(job["store"]) as store:
    root = store.materialize(store.put_tree(job["root_src"]))
    os.umask(job["umask"])  # only the sandbox's view is under test, not the store's files
    results = []
    for i, b in enumerate(job["builds"]):
        chunks = []
        spec = sandbox.SandboxSpec(root=root, inputs={}, args=b["args"], env=b["env"],
                                   outputs=["out"], source_date_epoch=b["epoch"],
                                   limits=sandbox.Limits(**b["limits"]))
        r = sandbox.run(spec, Path(job["work"]) / f"build{i}", chunks.append)
        results.append({"ok": r.ok, "exit_status": r.exit_status, "reason": r.reason,
                        "log": b"".join(chunks).decode(errors="replace")})
json.dump(results, sys.stdout)
"""


class Unprivileged:
    """Runs sandbox builds from a process with an unprivileged uid (the daemon as a user)."""

    def __init__(self, base: Path, root_src: Path):
        self.base = base
        self.root_src = root_src

    def run(self, builds: list[dict], *, umask: int = 0o022, env: dict | None = None) -> list:
        home = Path(tempfile.mkdtemp(prefix="seal-unpriv-", dir=self.base))
        os.chown(home, UNPRIVILEGED_UID, UNPRIVILEGED_UID)
        job = {"store": str(home / "store"), "root_src": str(self.root_src), "work": str(home)}
        job.update(builds=builds, umask=umask)
        drop = as_unprivileged([sys.executable, "-c", _RUNNER], self.base, UNPRIVILEGED_UID)
        child_env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        child_env.update(env or {})
        proc = subprocess.run(
            drop, input=json.dumps(job), capture_output=True, text=True, env=child_env, timeout=300
        )
        if proc.returncode != 0:
            raise RuntimeError(f"unprivileged runner failed ({proc.returncode}):\n{proc.stderr}")
        return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def unprivileged(bwrap, staging_dir: Path, shell_root_dir: Path) -> Unprivileged:
    if os.geteuid() != 0:
        pytest.skip("running the daemon side as another user needs root to switch users")
    for tool in ("setpriv", "unshare"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} (util-linux) is not installed")
    runner = Unprivileged(staging_dir, shell_root_dir)
    try:
        probe = runner.run([_build_doc("true", Limits(timeout=30))])
    except RuntimeError as exc:
        pytest.skip(f"cannot run builds as uid {UNPRIVILEGED_UID}: {exc}")
    if not probe[0]["ok"]:
        pytest.skip(f"a sandbox as uid {UNPRIVILEGED_UID} fails: {probe[0]['reason']}")
    return runner


def _build_doc(script: str, limits: Limits, env: dict | None = None) -> dict:
    return {
        "args": ["/bin/sh", "-c", script],
        "env": env if env is not None else {"PATH": PATH},
        "epoch": 315532800,
        "limits": {
            "timeout": limits.timeout,
            "max_output_bytes": limits.max_output_bytes,
            "max_processes": limits.max_processes,
        },
    }


@pytest.fixture
def build_doc():
    return _build_doc
