"""``seal lock`` and ``seal fetch`` through a real daemon, against local fixtures.

A local PyPI (real wheels over HTTP) and a local Debian mirror (real .debs,
a Packages index and a CPython source package, InReleases signed with a test
key, the upstream tarball signed by a test release manager) stand in for
PyPI and deb.debian.org. The daemon resolves, pins and fetches from them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest
from cpythonfixture import python_source, release_manager, write_suite
from debfixture import Deb, make_repo, serve, signing_keys
from pypifixture import PyPIFixture
from sealtest import daemon_pids

from seal.client import exitcodes
from seal.client.daemonproc import Supervisor
from seal.client.inputs import InputsBackend
from seal.daemon.inputs.locker import RUNTIME, TOOLCHAIN

CONFIG = """\
name: demo
python_version: 3.13.5
packages:
  app[fast]: 1.0
  native: 2.0
build_type: hermetic
"""


# -- the fixtures ---------------------------------------------------------------------------
def _pypi(root: Path) -> PyPIFixture:
    pypi = PyPIFixture(root).start()
    pypi.add_wheel(
        "app",
        "1.0",
        requires_dist=[
            "lib>=1",
            'fast-dep; extra == "fast"',
            'winonly; sys_platform == "win32"',
            'oldpy; python_version < "3.12"',
        ],
        extras=["fast"],
    )
    pypi.add_wheel("lib", "1.0")
    pypi.add_wheel("lib", "2.0")
    pypi.yank("lib-2.0-py3-none-any.whl", "broken")
    for name in ("fast-dep", "winonly", "oldpy"):
        pypi.add_wheel(name, "1.0")
    pypi.add_wheel("native", "2.0", tag="cp313-cp313-manylinux_2_17_x86_64")
    pypi.add_wheel("native", "2.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    pypi.add_sdist("nowheel", "1.0")
    return pypi


def _mirror(
    tmp: Path, rm, *, tamper: str = "", python: str = "3.13.5", corrupt_gz=False, **switches
) -> Path:
    debs = [Deb(name) for name in sorted({*TOOLCHAIN, *RUNTIME})]
    debs.append(Deb("dash", essential=True, priority="required"))
    repo = make_repo(tmp, debs, signing_keys(), **switches)
    if corrupt_gz:  # same size, one byte flipped: the form a lock reads first
        gz = repo.dists("main/binary-amd64/Packages.gz")
        data = bytearray(gz.read_bytes())
        data[len(data) // 2] ^= 0xFF
        gz.write_bytes(bytes(data))
    write_suite(repo.root, "trixie", [python_source(rm, version=python, tamper=tamper)])
    return repo.root


@pytest.fixture(scope="module")
def rm():
    with release_manager() as manager:
        yield manager


@pytest.fixture(scope="module")
def world(tmp_path_factory, rm):
    """The PyPI and Debian fixtures, served; the lock options that point at them."""
    tmp = tmp_path_factory.mktemp("world")
    pypi = _pypi(tmp / "pypi")
    with serve(_mirror(tmp, rm)) as mirror:
        yield World(pypi, mirror, rm.fingerprint)
    pypi.stop()


class World:
    def __init__(self, pypi: PyPIFixture, mirror: str, fingerprint: str):
        self.pypi = pypi
        self.mirror = mirror
        self.fingerprint = fingerprint

    def options(self, mirror: str | None = None, series: str = "3.13") -> list[str]:
        return [
            "--index-url",
            self.pypi.index_url,
            "--debian-mirror",
            mirror or self.mirror,
            "--keyring",
            str(signing_keys().keyring),
            "--cpython-suite",
            "trixie",
            "--cpython-signer",
            f"{series}={self.fingerprint}",
        ]


def seal(store: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "seal.client.cli", "--store", str(store), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "store"
    yield path
    subprocess.run(
        [sys.executable, "-m", "seal.client.cli", "--store", str(path), "daemon", "stop"],
        capture_output=True,
        timeout=60,
    )
    assert daemon_pids(path) == []


@pytest.fixture(scope="module")
def locked(tmp_path_factory, world):
    """A config locked once (by its own daemon, stopped afterwards)."""
    tmp = tmp_path_factory.mktemp("locked")
    config = tmp / "demo.yaml"
    config.write_text(CONFIG)
    store = tmp / "store"
    seal(store, "lock", str(config), *world.options())
    seal(store, "daemon", "stop")
    return config


def artifacts(config: Path) -> list[dict]:
    lock = tomllib.loads(config.with_name(config.name + ".lock").read_text())
    return lock["artifact"]


def names(config: Path, kind: str, role: str | None = None) -> dict[str, str]:
    return {
        a["name"]: a["version"]
        for a in artifacts(config)
        if a["kind"] == kind and (role is None or a["role"] == role)
    }


# -- lock -----------------------------------------------------------------------------------
class TestLock:
    def test_wheels_resolved_for_the_target(self, locked):
        # the extra's dependency is in; win32-only and python<3.12-only ones are not;
        # lib 2.0 is yanked, so 1.0
        assert names(locked, "wheel") == {
            "app": "1.0",
            "fast-dep": "1.0",
            "lib": "1.0",
            "native": "2.0",
        }
        native = next(a for a in artifacts(locked) if a["name"] == "native")
        assert native["filename"] == "native-2.0-cp313-cp313-manylinux_2_17_x86_64.whl"

    def test_debian_closures_and_the_cpython_source(self, locked, world):
        toolchain, runtime = names(locked, "deb", "toolchain"), names(locked, "deb", "runtime")
        assert set(TOOLCHAIN) | {"dash"} == set(toolchain)  # Essential packages build
        assert set(RUNTIME) == set(runtime)  # no shell in the runtime
        source = next(a for a in artifacts(locked) if a["kind"] == "cpython-source")
        assert source["version"] == "3.13.5" and source["signer"] == world.fingerprint
        assert source["signature"] == "python3.13_3.13.5.orig.tar.xz.asc"
        for a in artifacts(locked):
            assert len(a["sha256"]) == 64 and a["size"] >= 0 and a["urls"]

    def test_pylock_lists_the_wheels_with_their_hashes(self, locked):
        pylock = tomllib.loads(locked.with_name("pylock.demo.toml").read_text())
        assert pylock["lock-version"] == "1.0"
        wheels = {p["name"]: p["wheels"][0] for p in pylock["packages"]}
        assert set(wheels) == {"app", "fast-dep", "lib", "native"}
        by_name = {a["filename"]: a["sha256"] for a in artifacts(locked)}
        for wheel in wheels.values():
            assert wheel["hashes"]["sha256"] == by_name[wheel["name"]]

    def test_deterministic_and_check(self, locked, world, store, tmp_path):
        config = tmp_path / "demo.yaml"
        config.write_text(CONFIG.replace("name: demo", "name: renamed"))
        assert seal(store, "lock", "--check", str(config), ok=False).returncode == exitcodes.FAILED
        seal(store, "lock", str(config), *world.options())
        lock = config.with_name("demo.yaml.lock").read_text()
        assert lock.replace("renamed", "demo") == locked.with_name("demo.yaml.lock").read_text()
        assert seal(store, "lock", "--check", str(config)).returncode == 0
        config.write_text(config.read_text().replace("native: 2.0", "native: 1.0"))
        proc = seal(store, "lock", "--check", str(config), ok=False)
        assert proc.returncode == exitcodes.FAILED
        assert "native" in proc.stdout and "2.0" in proc.stdout
        assert config.with_name("demo.yaml.lock").read_text() == lock  # --check writes nothing

    def test_a_package_without_a_wheel_is_one_line_naming_its_files(self, world, store, tmp_path):
        config = tmp_path / "c.yaml"
        config.write_text(CONFIG.replace("native: 2.0", "nowheel: 1.0"))
        proc = seal(store, "--json", "lock", str(config), *world.options(), ok=False)
        error = json.loads(proc.stderr)["error"]
        assert "nowheel" in error["message"] and "nowheel-1.0.tar.gz" in error["message"]
        assert not (tmp_path / "c.yaml.lock").exists()

    def test_a_config_error_names_file_line_and_column(self, world, store, tmp_path):
        config = tmp_path / "c.yaml"
        config.write_text(CONFIG.replace("native: 2.0", "native: '>=2'"))
        proc = seal(store, "lock", str(config), *world.options(), ok=False)
        assert proc.returncode == exitcodes.BAD_INPUT
        assert f"{config}:5:" in proc.stderr and "unpinned" in proc.stderr


@pytest.mark.parametrize(
    ("switches", "reason"),
    [
        ({"sign": "untrusted"}, "debian-release-untrusted-key"),
        ({"corrupt_gz": True}, "hash-mismatch"),
        ({"corrupt_xz": "hash", "omit": ("gz",)}, "hash-mismatch"),  # xz when there is no gz
    ],
)
def test_a_bad_debian_mirror_is_refused(tmp_path, rm, world, store, switches, reason):
    config = tmp_path / "demo.yaml"
    config.write_text(CONFIG)
    with serve(_mirror(tmp_path, rm, **switches)) as mirror:
        proc = seal(store, "--json", "lock", str(config), *world.options(mirror), ok=False)
    assert json.loads(proc.stderr)["error"]["reason"] == reason, proc.stderr
    assert not config.with_name("demo.yaml.lock").exists()


# -- fetch ----------------------------------------------------------------------------------
def missing_offline(store: Path, config: Path) -> list[str]:
    proc = seal(store, "--json", "fetch", "--offline", str(config), ok=False)
    assert proc.returncode in (0, exitcodes.FAILED), proc.stderr
    return [a["filename"] for a in json.loads(proc.stdout)["missing"]]


def wheel_file(config: Path, name: str) -> str:
    return next(a["filename"] for a in artifacts(config) if a["name"] == name)


class TestFetch:
    def test_offline_lists_what_is_missing_then_fetch_brings_all(self, locked, store):
        everything = {a["filename"] for a in artifacts(locked)}
        assert set(missing_offline(store, locked)) == everything
        report = json.loads(seal(store, "--json", "fetch", str(locked)).stdout)
        assert report["fetched"] == len(everything) and report["missing"] == []
        assert missing_offline(store, locked) == []
        for a in artifacts(locked):
            info = json.loads(
                seal(store, "--json", "store", "stat", f"sha256:{a['sha256']}").stdout
            )
            assert info["size"] == a["size"]
        again = json.loads(seal(store, "--json", "fetch", str(locked)).stdout)
        assert again["fetched"] == 0 and again["present"] == len(everything)
        # the fetched inputs are one tree, rooted: a gc keeps them
        roots = json.loads(seal(store, "--json", "store", "roots").stdout)
        assert roots == {"lock/demo": report["tree"]} and again["tree"] == report["tree"]
        listing = json.loads(seal(store, "--json", "store", "ls", report["tree"]).stdout)
        assert {e["path"] for e in listing} == everything
        seal(store, "store", "gc")
        assert missing_offline(store, locked) == []

    def test_a_corrupt_download_stores_nothing_and_names_everything(self, locked, world, store):
        name = wheel_file(locked, "lib")
        sha = next(a["sha256"] for a in artifacts(locked) if a["filename"] == name)
        world.pypi.corrupt(name, times=1)  # a mismatch is not retried: one bad download
        proc = seal(store, "fetch", str(locked), ok=False)
        assert proc.returncode == exitcodes.BUILD_FAILED, proc.stderr
        assert name in proc.stderr and world.pypi.file_url(name) in proc.stderr
        assert f"expected sha256:{sha}" in proc.stderr and "got sha256:" in proc.stderr
        assert name in missing_offline(store, locked)

    def test_a_500_and_a_truncated_body_are_retried(self, locked, world, store):
        world.pypi.fail(wheel_file(locked, "app"), times=2)
        world.pypi.truncate(wheel_file(locked, "fast-dep"), times=1)
        seal(store, "fetch", str(locked))
        assert missing_offline(store, locked) == []

    def test_two_clients_fetching_at_once_download_each_file_once(self, locked, world, store):
        world.pypi.clear_log()
        procs = []
        threads = [
            threading.Thread(target=lambda: procs.append(seal(store, "-q", "fetch", str(locked))))
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(procs) == 2 and missing_offline(store, locked) == []
        for name in ("app", "lib", "fast-dep", "native"):
            gets = world.pypi.requests_for(wheel_file(locked, name))
            assert len([g for g in gets if g.status == 200]) == 1, (name, gets)


def test_progress_arrives_while_another_file_still_downloads(locked, world, store):
    """Each file's "done" event is sent when it is in, not when the last one is."""
    held = wheel_file(locked, "native")
    others = {a["filename"] for a in artifacts(locked)} - {held}
    gate = world.pypi.hold(held)
    timer = threading.Timer(60, gate.set)  # were the events held back, this ends the wait
    timer.start()
    before_release: set[str] = set()

    def on_event(kind: str, data: dict) -> None:
        if kind == "done" and not gate.is_set():
            before_release.add(data["filename"])
            if before_release == others:
                gate.set()

    try:
        with Supervisor(store) as supervisor:
            report = InputsBackend(supervisor.connect).fetch(
                str(locked), offline=False, on_event=on_event
            )
    finally:
        timer.cancel()
        gate.set()
    assert report["missing"] == [] and report["fetched"] == len(others) + 1
    assert before_release == others


def test_fetch_checks_the_cpython_signature(tmp_path, rm, world, store):
    # the signed index lists a tarball the release manager never signed
    config = tmp_path / "demo.yaml"
    config.write_text(CONFIG)
    with serve(_mirror(tmp_path, rm, tamper="index")) as mirror:
        seal(store, "lock", str(config), *world.options(mirror))
        proc = seal(store, "--json", "fetch", str(config), ok=False)
    assert json.loads(proc.stderr)["error"]["reason"] == "signature-bad", proc.stderr


def test_a_signature_check_passed_before_is_not_taken_for_another_signer(locked, store, tmp_path):
    """The second fetch skips the check it passed; a lock naming another fingerprint
    for the same bytes is checked again, and refused."""
    seal(store, "fetch", str(locked))
    again = json.loads(seal(store, "--json", "fetch", str(locked)).stdout)
    assert again["fetched"] == 0
    config = tmp_path / locked.name
    shutil.copy(locked, config)
    text = locked.with_name(locked.name + ".lock").read_text()
    signer = next(a["signer"] for a in artifacts(locked) if a.get("signer"))
    other = ("0" if signer[0] != "0" else "1") + signer[1:]
    config.with_name(config.name + ".lock").write_text(text.replace(signer, other))
    proc = seal(store, "--json", "fetch", str(config), ok=False)
    error = json.loads(proc.stderr)["error"]
    assert error["reason"] == "signature-wrong-key", proc.stderr
    assert f"not by the pinned key {other}" in error["message"]
    # the signature is named by its file, not by its place in the store
    assert ".asc (the signature of " in error["message"] and "objects/" not in error["message"]


def test_uv_installs_the_fetched_wheels_offline_from_the_pylock(tmp_path, rm, world, store):
    """A lock for this very interpreter, so uv can install it: the store's files, no network."""
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not os.path.exists(uv):
        pytest.skip("uv is not installed (pip install uv)")
    host = ".".join(map(str, sys.version_info[:3]))
    config = tmp_path / "uvdemo.yaml"
    config.write_text(CONFIG.replace("3.13.5", host).replace("  native: 2.0\n", ""))
    series = ".".join(host.split(".")[:2])
    with serve(_mirror(tmp_path, rm, python=host)) as mirror:
        seal(store, "lock", str(config), *world.options(mirror, series))
        pylock = tmp_path / "pylock.uvdemo-store.toml"
        seal(store, "-q", "fetch", str(config), "--pylock", str(pylock))
    text = pylock.read_text()
    assert "url =" not in text and str(store) in text  # the store's files, not PyPI's
    site = tmp_path / "site"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_CONFIG": "1"}
    proc = subprocess.run(
        [uv, "pip", "install", "--offline", "--cache-dir", str(tmp_path / "uv-cache")]
        + ["--python", sys.executable, "--target", str(site), "-r", str(pylock)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    installed = {p.name.split("-")[0] for p in site.glob("*.dist-info")}
    expected = {"app", "fast_dep", "lib"}
    if sys.version_info < (3, 12):  # app needs oldpy on such a target (the 3.13 lock has not)
        expected.add("oldpy")
    assert installed == expected


def test_the_fetched_wheels_hash_as_locked(locked, store):
    seal(store, "-q", "fetch", str(locked))
    store_objects = store / "objects" / "sha256"
    for a in artifacts(locked):
        data = (store_objects / a["sha256"][:2] / a["sha256"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == a["sha256"] and len(data) == a["size"]
    assert os.path.exists(store / "VERSION")


def test_a_missing_config_starts_no_daemon_and_makes_no_store(store, tmp_path):
    for verb in ("lock", "fetch", "build"):
        proc = seal(store, verb, str(tmp_path / "missing.yaml"), ok=False)
        assert proc.returncode in (exitcodes.BAD_INPUT, exitcodes.NOT_FOUND), proc.stderr
        assert "missing.yaml" in proc.stderr
    assert not store.exists() and daemon_pids(store) == []


def test_an_unreadable_lock_is_named_with_its_line(store, tmp_path):
    """A broken lock file's error says which file (and line) to look at."""
    config = tmp_path / "image.yaml"
    config.write_text("name: x\npython_version: 3.13.5\npackages: {}\nbuild_type: hermetic\n")
    (tmp_path / "image.yaml.lock").write_text("lock_version = 1\nnot toml\n")
    proc = seal(store, "fetch", str(config), ok=False)
    assert proc.returncode == 3, proc.stderr
    assert f"{tmp_path / 'image.yaml.lock'}:2: not valid TOML" in proc.stderr
