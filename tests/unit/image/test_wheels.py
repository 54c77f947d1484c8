"""install_wheels with real wheels (tests/pypifixture.build_wheel), and COMPILE_SCRIPT run by
this machine's interpreter."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import marshal
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pypifixture import Dist, build_wheel

from seal.daemon.image.wheels import (
    COMPILE_SCRIPT,
    WheelConflict,
    WheelCorrupt,
    WheelInput,
    WheelInstallError,
    install_wheels,
)
from seal.store.errors import CorruptObject

SITE = "usr/local/lib/python3.13/site-packages"
ENTRY_POINTS = b"[console_scripts]\ndemo = demo.cli:main\n[gui_scripts]\ndemo-gui = demo.cli:main\n"


def _exec_bits(dist: Dist, members: set[str]) -> Dist:
    """``dist`` with the exec bit set in the zip attributes of ``members`` (RECORD unchanged)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(dist.data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename in members:
                info.external_attr = 0o100755 << 16
            dst.writestr(info, src.read(info))
    return Dist(dist.name, dist.version, dist.filename, out.getvalue(), dist.metadata)


def demo_wheel() -> Dist:
    """A package, a console and a gui entry point, a #!python script, data, a header, an
    executable file inside the package."""
    dist = build_wheel(
        "demo",
        "1.0",
        files={
            "demo/cli.py": b"def main():\n    return 0\n",
            "demo/tool.sh": b"#!/bin/sh\necho tool\n",
            "demo-1.0.dist-info/entry_points.txt": ENTRY_POINTS,
            "demo-1.0.data/scripts/demo-sh": b"#!python\nprint('hi')\n",
            "demo-1.0.data/data/share/demo/readme.txt": b"data\n",
            "demo-1.0.data/headers/demo.h": b"#define DEMO 1\n",
        },
    )
    return _exec_bits(dist, {"demo/tool.sh"})


def other_wheel(name: str = "other", files: dict[str, bytes] | None = None) -> Dist:
    return build_wheel(name, "2.0", files=files or {f"{name}/extra.py": b"X = 1\n"})


def inp(dist: Dist, sha256: str | None = None) -> WheelInput:
    return WheelInput(dist.filename, sha256 or dist.sha256, lambda: io.BytesIO(dist.data))


def raw_input(filename: str, data: bytes) -> WheelInput:
    """A wheel input whose pinned hash is that of ``data`` (whatever is in it)."""
    return WheelInput(filename, hashlib.sha256(data).hexdigest(), lambda: io.BytesIO(data))


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under root: its permission bits and (files) bytes."""
    out = {}
    for path in sorted(root.rglob("*")):
        mode = path.lstat().st_mode & 0o7777
        data = path.read_bytes() if path.is_file() else None
        out[path.relative_to(root).as_posix()] = (mode, data)
    return out


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def record_rows(root: Path, dist_info: str) -> list[list[str]]:
    text = (root / SITE / dist_info / "RECORD").read_text()
    return list(csv.reader(io.StringIO(text)))


def urlsafe_sha256(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


class TestLayout:
    def test_schemes_land_under_the_prefix(self, tmp_path: Path):
        report = install_wheels([inp(demo_wheel())], tmp_path)
        tree = snapshot(tmp_path)
        files = set(tree)
        assert {
            f"{SITE}/demo/__init__.py",
            f"{SITE}/demo/cli.py",
            f"{SITE}/demo-1.0.dist-info/METADATA",
            "usr/local/bin/demo",
            "usr/local/bin/demo-gui",
            "usr/local/bin/demo-sh",
            "usr/local/share/demo/readme.txt",
            "usr/local/include/python3.13/demo/demo.h",
        } <= files
        assert report.site_packages == SITE
        assert not any(f.endswith((".pyc", "direct_url.json", "REQUESTED")) for f in files)
        (wheel,) = report.wheels
        assert (wheel.name, wheel.version) == ("demo", "1.0")
        assert wheel.files == tuple(sorted(f for f in files if tree[f][1] is not None))

    def test_scripts_are_for_the_final_interpreter(self, tmp_path: Path):
        install_wheels([inp(demo_wheel())], tmp_path)
        bin_dir = tmp_path / "usr/local/bin"
        for name in ("demo", "demo-gui", "demo-sh"):
            first = (bin_dir / name).read_bytes().split(b"\n", 1)[0]
            assert first == b"#!/usr/local/bin/python3.13", name
        assert b"from demo.cli import main" in (bin_dir / "demo").read_bytes()
        assert (bin_dir / "demo-sh").read_bytes().endswith(b"\nprint('hi')\n")

    def test_other_prefix_and_python(self, tmp_path: Path):
        install_wheels([inp(demo_wheel())], tmp_path, prefix="/opt/app/", python="3.12")
        assert (tmp_path / "opt/app/lib/python3.12/site-packages/demo/cli.py").is_file()
        script = (tmp_path / "opt/app/bin/demo").read_bytes()
        assert script.startswith(b"#!/opt/app/bin/python3.12\n")
        assert (tmp_path / "opt/app/include/python3.12/demo/demo.h").is_file()

    @pytest.mark.parametrize("prefix", ["", "usr/../etc", "usr//local"])
    def test_bad_prefix(self, tmp_path: Path, prefix: str):
        with pytest.raises(ValueError, match="prefix"):
            install_wheels([inp(demo_wheel())], tmp_path, prefix=prefix)

    def test_installer_file_and_modes(self, tmp_path: Path):
        with umask(0o077):
            install_wheels([inp(demo_wheel())], tmp_path)
        assert (tmp_path / SITE / "demo-1.0.dist-info/INSTALLER").read_bytes() == b"seal\n"
        executables = {"usr/local/bin/demo", "usr/local/bin/demo-gui", "usr/local/bin/demo-sh"}
        executables.add(f"{SITE}/demo/tool.sh")
        for rel, (mode, data) in snapshot(tmp_path).items():
            if data is None:
                assert mode == 0o755, rel
            else:
                assert mode == (0o755 if rel in executables else 0o644), rel


class TestRecord:
    def test_lists_every_file_with_its_hash(self, tmp_path: Path):
        install_wheels([inp(demo_wheel())], tmp_path)
        rows = record_rows(tmp_path, "demo-1.0.dist-info")
        site = tmp_path / SITE
        listed = {os.path.normpath(site / row[0]) for row in rows}
        on_disk = {str(p) for p in tmp_path.rglob("*") if p.is_file()}
        assert listed == on_disk
        for path, digest, size in rows:
            if path == "demo-1.0.dist-info/RECORD":
                assert (digest, size) == ("", "")
                continue
            data = (site / path).read_bytes()
            assert (digest, size) == (urlsafe_sha256(data), str(len(data))), path

    def test_rows_sorted_by_path(self, tmp_path: Path):
        install_wheels([inp(demo_wheel())], tmp_path)
        paths = [row[0] for row in record_rows(tmp_path, "demo-1.0.dist-info")]
        assert paths == sorted(paths)
        assert "../../../bin/demo" in paths


class TestDeterminism:
    def test_same_tree_whatever_the_order_and_umask(self, tmp_path: Path):
        wheels = [inp(demo_wheel()), inp(other_wheel())]
        with umask(0o022):
            install_wheels(wheels, tmp_path / "a")
        with umask(0o077):
            install_wheels(list(reversed(wheels)), tmp_path / "b")
        with umask(0o002):
            install_wheels(wheels, tmp_path / "c")
        a = snapshot(tmp_path / "a")
        assert len(a) > 10
        assert a == snapshot(tmp_path / "b") == snapshot(tmp_path / "c")

    def test_report_in_file_name_order(self, tmp_path: Path):
        report = install_wheels([inp(other_wheel("zeta")), inp(demo_wheel())], tmp_path)
        assert [w.name for w in report.wheels] == ["demo", "zeta"]


class TestRefusals:
    def test_corrupt_wheel_names_it_and_writes_nothing(self, tmp_path: Path):
        good, bad = demo_wheel(), other_wheel("zeta")
        flipped = bytearray(bad.data)
        flipped[len(flipped) // 2] ^= 0xFF
        actual = hashlib.sha256(flipped).hexdigest()
        corrupt = WheelInput(bad.filename, bad.sha256, lambda: io.BytesIO(bytes(flipped)))
        root = tmp_path / "root"
        with pytest.raises(WheelCorrupt) as caught:
            install_wheels([inp(good), corrupt], root)
        err = caught.value
        assert isinstance(err, CorruptObject)
        assert err.reason == "corrupt-object"
        assert bad.filename in err.message and bad.sha256 in err.message and actual in err.message
        assert not root.exists()

    def test_all_corrupt_wheels_named(self, tmp_path: Path):
        a, b = demo_wheel(), other_wheel()
        with pytest.raises(WheelCorrupt) as caught:
            install_wheels([inp(a, "0" * 64), inp(b, "1" * 64)], tmp_path)
        assert a.filename in caught.value.message and b.filename in caught.value.message

    def test_two_wheels_one_path(self, tmp_path: Path):
        first = other_wheel("alpha", {"shared/x.py": b"A = 1\n"})
        second = other_wheel("beta", {"shared/x.py": b"B = 1\n"})
        root = tmp_path / "root"
        with pytest.raises(WheelConflict) as caught:
            install_wheels([inp(second), inp(first)], root)
        message = caught.value.message
        assert f"{SITE}/shared/x.py" in message
        assert first.filename in message and second.filename in message
        assert caught.value.reason == "wheel-conflict"
        assert not root.exists()

    def test_two_wheels_one_script(self, tmp_path: Path):
        clash = other_wheel("alpha", {"alpha-2.0.data/scripts/demo": b"#!python\n"})
        with pytest.raises(WheelConflict, match="usr/local/bin/demo from both"):
            install_wheels([inp(demo_wheel()), inp(clash)], tmp_path / "root")

    def test_path_already_in_root(self, tmp_path: Path):
        taken = tmp_path / "usr/local/bin/demo"
        taken.parent.mkdir(parents=True)
        taken.write_bytes(b"mine")
        with pytest.raises(WheelConflict, match="the root"):
            install_wheels([inp(demo_wheel())], tmp_path)
        assert taken.read_bytes() == b"mine"
        assert not (tmp_path / SITE).exists()

    def test_record_must_match_members(self, tmp_path: Path):
        dist = demo_wheel()
        out = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(dist.data)) as src, zipfile.ZipFile(out, "w") as dst:
            for info in src.infolist():
                data = src.read(info)
                if info.filename == "demo/cli.py":
                    data = b"def main():\n    return 1\n"
                dst.writestr(info, data)
        tampered = raw_input(dist.filename, out.getvalue())
        with pytest.raises(WheelInstallError, match=r"demo/cli\.py didn't match RECORD"):
            install_wheels([tampered], tmp_path / "root")
        assert not (tmp_path / "root").exists()

    def test_data_path_escaping_its_scheme(self, tmp_path: Path):
        dist = other_wheel("evil", {"evil-2.0.data/data/../../../../escaped.txt": b"x"})
        with pytest.raises(WheelInstallError, match="outside"):
            install_wheels([inp(dist)], tmp_path / "root")
        assert not list(tmp_path.rglob("escaped.txt"))

    def test_not_a_zip(self, tmp_path: Path):
        wheel = raw_input("x-1.0-py3-none-any.whl", b"not a wheel")
        with pytest.raises(WheelInstallError, match="x-1.0-py3-none-any.whl"):
            install_wheels([wheel], tmp_path)


# -- COMPILE_SCRIPT ---------------------------------------------------------------------------

FINAL = "/usr/local/lib/python3.13/site-packages"


def compile_tree(src: Path, *, seed: str = "0") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    return subprocess.run(
        [sys.executable, "-c", COMPILE_SCRIPT, str(src), FINAL],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def pycs(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.pyc"))}


SOURCE = b"""\
KEYS = frozenset({"alpha", "beta", "gamma", "delta", "epsilon"})

def f(x):
    return x in {"one", "two", "three", "four"}

class C:
    def m(self):
        return lambda: 1
"""


@pytest.fixture
def site_tree(tmp_path: Path) -> Path:
    site = tmp_path / "build/root" / SITE
    (site / "pkg/sub").mkdir(parents=True)
    (site / "pkg/__init__.py").write_bytes(SOURCE)
    (site / "pkg/sub/mod.py").write_bytes(b"def g():\n    return 2\n")
    (site / "pkg/template.py").write_bytes(b"{% if x %}\nprint 'py2'\n")
    (site / "pkg/data.txt").write_bytes(b"not python")
    return site


class TestCompileScript:
    def test_unchecked_hash_pycs_naming_the_final_path(self, site_tree: Path):
        result = compile_tree(site_tree)
        assert result.returncode == 0, result.stderr
        tag = sys.implementation.cache_tag
        data = (site_tree / f"pkg/sub/__pycache__/mod.{tag}.pyc").read_bytes()
        flags = int.from_bytes(data[4:8], "little")
        assert flags == 0b01  # PEP 552: hash-based, check_source clear
        code = marshal.loads(data[16:])
        assert code.co_filename == f"{FINAL}/pkg/sub/mod.py"
        nested = [c for c in code.co_consts if hasattr(c, "co_filename")]
        assert nested and all(c.co_filename == f"{FINAL}/pkg/sub/mod.py" for c in nested)
        assert sorted(pycs(site_tree)) == [
            f"pkg/__pycache__/__init__.{tag}.pyc",
            f"pkg/sub/__pycache__/mod.{tag}.pyc",
        ]
        assert not list(site_tree.rglob("*.opt-*.pyc"))
        for path in site_tree.rglob("*.pyc"):
            assert path.stat().st_mode & 0o777 == 0o644

    def test_invalid_python_is_skipped_and_listed(self, site_tree: Path):
        result = compile_tree(site_tree)
        assert result.returncode == 0
        assert "pkg/template.py" in result.stderr
        assert "2 files compiled, 1 skipped" in result.stdout

    def test_same_bytes_every_run_and_hash_seed(self, site_tree: Path, tmp_path: Path):
        copy = tmp_path / "copy"
        shutil.copytree(site_tree, copy)
        assert compile_tree(site_tree, seed="1").returncode == 0
        first = pycs(site_tree)
        assert compile_tree(site_tree, seed="2").returncode == 0  # recompiles in place
        assert compile_tree(copy, seed="12345").returncode == 0
        assert first == pycs(site_tree) == pycs(copy)
        assert len(first) == 2

    def test_missing_directory_fails(self, tmp_path: Path):
        result = compile_tree(tmp_path / "nope")
        assert result.returncode != 0
        assert "not a directory" in result.stderr

    def test_unwritable_pycache_fails(self, site_tree: Path):
        (site_tree / "pkg/sub/__pycache__").write_bytes(b"a file where a directory goes")
        result = compile_tree(site_tree)
        assert result.returncode == 1
        assert "pkg/sub/mod.py" in result.stderr


# -- a real wheel from PyPI, against pip ------------------------------------------------------


@pytest.mark.network
def test_click_matches_pip_target(tmp_path: Path):
    dl = tmp_path / "dl"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "download", "--no-deps", "--only-binary", ":all:", "--dest", dl, "click==8.1.7"],
        check=True,
    )
    (wheel,) = dl.glob("*.whl")
    report = install_wheels([raw_input(wheel.name, wheel.read_bytes())], tmp_path / "root")
    assert (report.wheels[0].name, report.wheels[0].version) == ("click", "8.1.7")

    target = tmp_path / "target"
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-compile", "--target", target, wheel], check=True
    )
    site = tmp_path / "root" / SITE
    ours = {p.relative_to(site) for p in site.rglob("*.py")}
    theirs = {p.relative_to(target) for p in target.rglob("*.py")}
    assert ours == theirs and len(ours) > 10
    assert compile_tree(site).returncode == 0
    assert len(pycs(site)) == len(ours)
