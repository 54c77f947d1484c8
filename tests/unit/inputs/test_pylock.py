"""seal.daemon.inputs.pylock: the PEP 751 export, parsed back and installed with uv.

The uv tests build two real wheels, write a pylock.toml whose entries are
``path``s to them, and run (uv 0.13 measured)::

    UV_PYTHON_DOWNLOADS=never uv pip install --offline --no-config --cache-dir C \\
        --python <this python> --target T -r pylock.toml

They are skipped, with the reason, when uv is not on PATH (``pip install uv``).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from pypifixture import PyPIFixture, build_wheel

from seal.daemon.inputs.lockfile import Artifact, Lock, LockError, Sources
from seal.daemon.inputs.pylock import export, local_paths

INDEX = "https://pypi.org/simple/"


def wheel_artifact(dist, url: str | None = None) -> Artifact:
    return Artifact(
        kind="wheel",
        name=dist.name,
        version=dist.version,
        filename=dist.filename,
        urls=(url or f"https://files.pythonhosted.org/packages/xx/{dist.filename}",),
        sha256=dist.sha256,
        size=dist.size,
        role="python",
    )


def host_target() -> dict[str, str]:
    """The target of a lock made for this machine (so uv accepts its environments marker)."""
    if sys.platform == "linux" and platform.machine() == "x86_64":
        return {"platform": "linux/amd64"}
    return {}


def make_lock(arts, python_version: str = "3.13.5", target=None) -> Lock:
    deb = Artifact(
        "deb", "libc6", "2.36-9", "libc6_2.36-9_amd64.deb",
        ("https://deb.debian.org/debian/pool/main/g/glibc/libc6_2.36-9_amd64.deb",),
        "9" * 64, 10, "runtime",
    )  # fmt: skip
    return Lock(
        config_name="demo",
        config_digest="sha256:" + "0" * 64,
        python_version=python_version,
        target={"platform": "linux/amd64"} if target is None else target,
        sources=Sources(pypi=INDEX),
        artifacts=(*arts, deb),
        generator="seal 0.1.0",
    )


def host_lock(dists) -> Lock:
    """A lock of ``dists`` for this interpreter and machine, which uv installs here."""
    return make_lock([wheel_artifact(d) for d in dists], platform.python_version(), host_target())


@pytest.fixture(scope="module")
def dists():
    """Two real wheels; alpha-pkg depends on beta."""
    return [
        build_wheel("alpha-pkg", "1.0", requires_dist=["beta==2.0"]),
        build_wheel("beta", "2.0"),
    ]


class TestExport:
    def test_has_the_pep_751_keys(self, dists):
        data = tomllib.loads(export(make_lock([wheel_artifact(d) for d in dists])))
        assert data["lock-version"] == "1.0"
        assert data["created-by"] == "seal"
        assert data["requires-python"] == "==3.13.5"
        assert data["environments"] == ['sys_platform == "linux" and platform_machine == "x86_64"']
        assert [p["name"] for p in data["packages"]] == ["alpha-pkg", "beta"]  # debs left out
        alpha = data["packages"][0]
        assert alpha["version"] == "1.0"
        assert alpha["index"] == INDEX
        (wheel,) = alpha["wheels"]
        assert wheel == {
            "name": dists[0].filename,
            "url": f"https://files.pythonhosted.org/packages/xx/{dists[0].filename}",
            "size": dists[0].size,
            "hashes": {"sha256": dists[0].sha256},
        }

    def test_paths_mode_writes_paths_and_no_urls(self, dists, tmp_path):
        lock = make_lock([wheel_artifact(d) for d in dists])
        paths = local_paths(lock, tmp_path / "wheels", tmp_path / "out")
        assert paths == {d.filename: f"../wheels/{d.filename}" for d in dists}
        data = tomllib.loads(export(lock, paths=paths))
        for package in data["packages"]:
            assert "index" not in package
            (wheel,) = package["wheels"]
            assert wheel["path"] == f"../wheels/{wheel['name']}" and "url" not in wheel

    def test_a_wheel_without_a_path_is_an_error(self, dists):
        lock = make_lock([wheel_artifact(d) for d in dists])
        with pytest.raises(LockError, match="no local path given for beta-2.0"):
            export(lock, paths={dists[0].filename: "a.whl"})

    def test_two_versions_of_one_project_is_an_error(self, dists):
        other = build_wheel("beta", "3.0")
        with pytest.raises(LockError, match="beta: the lock has versions 2.0 and 3.0"):
            export(make_lock([wheel_artifact(d) for d in (*dists, other)]))

    def test_output_is_deterministic(self, dists):
        arts = [wheel_artifact(d) for d in dists]
        extra = build_wheel("beta", "2.0", tag="cp313-cp313-manylinux_2_17_x86_64")
        forward = export(make_lock([*arts, wheel_artifact(extra)]))
        backward = export(make_lock([wheel_artifact(extra), *reversed(arts)]))
        assert forward == backward
        beta = tomllib.loads(forward)["packages"][1]
        assert [w["name"] for w in beta["wheels"]] == sorted(w["name"] for w in beta["wheels"])

    def test_no_environments_for_an_unknown_platform(self, dists):
        text = export(make_lock([wheel_artifact(d) for d in dists], target={}))
        assert "environments" not in tomllib.loads(text)


# -- installing with uv ---------------------------------------------------------------------


def uv_install(
    pylock: Path, target: Path, cache: Path, *, offline: bool = True
) -> subprocess.CompletedProcess[str]:
    uv = shutil.which("uv")
    if uv is None:
        print("uv is not installed: 'pip install uv' runs these tests")
        pytest.skip("uv is not installed (pip install uv)")
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"}
    cmd = [uv, "pip", "install", *(["--offline"] if offline else []), "--no-config"]
    cmd += ["--cache-dir", str(cache), "--python", sys.executable]
    cmd += ["--target", str(target), "-r", str(pylock)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def write_wheels(dists, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for dist in dists:
        (directory / dist.filename).write_bytes(dist.data)


def imported_versions(target: Path) -> str:
    code = "import alpha_pkg, beta; print(alpha_pkg.__version__, beta.__version__)"
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return out.stdout.strip()


class TestUvInstalls:
    def test_offline_install_from_paths(self, dists, tmp_path):
        write_wheels(dists, tmp_path / "wheels")
        lock = host_lock(dists)
        out = tmp_path / "out"
        out.mkdir()
        paths = local_paths(lock, tmp_path / "wheels", out)
        (out / "pylock.toml").write_text(export(lock, paths=paths))
        result = uv_install(out / "pylock.toml", tmp_path / "site", tmp_path / "cache")
        assert result.returncode == 0, result.stderr
        assert imported_versions(tmp_path / "site") == "1.0 2.0"

    def test_store_style_paths_work_because_name_carries_the_filename(self, dists, tmp_path):
        """A store object is named by its digest, not by the wheel's filename."""
        objects = tmp_path / "store" / "objects"
        objects.mkdir(parents=True)
        for dist in dists:
            (objects / dist.sha256).write_bytes(dist.data)
        lock = host_lock(dists)
        paths = {d.filename: str(objects / d.sha256) for d in dists}  # absolute paths
        (tmp_path / "pylock.toml").write_text(export(lock, paths=paths))
        result = uv_install(tmp_path / "pylock.toml", tmp_path / "site", tmp_path / "cache")
        assert result.returncode == 0, result.stderr
        assert imported_versions(tmp_path / "site") == "1.0 2.0"

    def test_wrong_sha256_is_refused(self, dists, tmp_path):
        write_wheels(dists, tmp_path / "wheels")
        arts = [wheel_artifact(d) for d in dists]
        arts[1] = Artifact(**{**arts[1].__dict__, "sha256": "0" * 64})
        lock = make_lock(arts, platform.python_version(), host_target())
        paths = local_paths(lock, tmp_path / "wheels", tmp_path)
        (tmp_path / "pylock.toml").write_text(export(lock, paths=paths))
        result = uv_install(tmp_path / "pylock.toml", tmp_path / "site", tmp_path / "cache")
        assert result.returncode != 0
        assert "hash mismatch" in result.stderr.lower()
        assert not (tmp_path / "site" / "beta").exists()

    def test_wrong_python_is_refused(self, dists, tmp_path):
        write_wheels(dists, tmp_path / "wheels")
        lock = make_lock([wheel_artifact(d) for d in dists], "3.0.1", host_target())
        paths = local_paths(lock, tmp_path / "wheels", tmp_path)
        (tmp_path / "pylock.toml").write_text(export(lock, paths=paths))
        result = uv_install(tmp_path / "pylock.toml", tmp_path / "site", tmp_path / "cache")
        assert result.returncode != 0
        assert "==3.0.1" in result.stderr

    def test_url_mode_installs_from_an_index(self, dists, tmp_path):
        with PyPIFixture(tmp_path / "pypi") as pypi:
            for dist in dists:
                pypi.add(dist)
            arts = [wheel_artifact(d, pypi.file_url(d.filename)) for d in dists]
            lock = make_lock(arts, platform.python_version(), host_target())
            (tmp_path / "pylock.toml").write_text(export(lock))
            result = uv_install(
                tmp_path / "pylock.toml", tmp_path / "site", tmp_path / "cache", offline=False
            )
        assert result.returncode == 0, result.stderr
        assert imported_versions(tmp_path / "site") == "1.0 2.0"
