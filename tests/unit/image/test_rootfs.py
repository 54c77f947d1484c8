"""Finishing unpacked roots (seal.daemon.image.rootfs).

Synthetic roots come from hand-made trees (and the host's CA certificates and
zoneinfo where it has them); the tests marked ``network`` unpack real Debian
packages fetched with apt-get download and run their programs under bubblewrap.
"""

from __future__ import annotations

import functools
import os
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from seal.daemon.image.deb import unpack_debs
from seal.daemon.image.rootfs import (
    NONROOT_UID,
    RUNTIME_MODES,
    RUNTIME_OWNERS,
    RootfsError,
    finish_runtime,
    finish_toolchain,
)

HOST_CERTS = Path("/usr/share/ca-certificates")
HOST_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
HOST_UTC = Path("/usr/share/zoneinfo/Etc/UTC")


def put(root: Path, rel: str, data: bytes = b"x", *, mode: int = 0o644) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return path


def link(root: Path, rel: str, target: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def merged_root(tmp: Path) -> Path:
    """An empty root with Debian 12's merged-/usr links."""
    root = tmp / "root"
    for top in ("bin", "sbin", "lib", "lib64"):
        (root / "usr" / top).mkdir(parents=True)
        (root / top).symlink_to(f"usr/{top}")
    return root


def inside(root: Path, path: str) -> Path:
    """``path`` resolved as the root's own processes would (absolute links start at root)."""
    parts = [p for p in path.split("/") if p]
    here: list[str] = []
    for _ in range(100):
        if not parts:
            return root.joinpath(*here)
        part = parts.pop(0)
        candidate = root.joinpath(*here, part)
        if part == "..":
            here = here[:-1]
        elif candidate.is_symlink():
            target = os.readlink(candidate)
            here = [] if target.startswith("/") else here
            parts = [p for p in target.split("/") if p] + parts
        else:
            here.append(part)
    raise AssertionError(f"symlink loop at {path}")


# ---- toolchain -----------------------------------------------------------------------------


class TestToolchain:
    def test_the_links_maintainer_scripts_would_make(self, tmp_path):
        root = merged_root(tmp_path)
        for tool in ("dash", "mawk", "gcc-12", "c89-gcc", "c99-gcc", "cpp-12", "g++-12"):
            put(root, f"usr/bin/{tool}", mode=0o755)
        for name, target in (("gcc", "gcc-12"), ("cpp", "cpp-12"), ("g++", "g++-12")):
            link(root, f"usr/bin/{name}", target)
        finish_toolchain(root)
        links = {
            rel: os.readlink(root / rel)
            for rel in ("usr/bin/sh", "usr/bin/awk", "usr/bin/nawk", "usr/bin/cc")
            + ("usr/bin/c89", "usr/bin/c99", "usr/bin/c++", "usr/lib/cpp")
        }
        assert links == {
            "usr/bin/sh": "dash",
            "usr/bin/awk": "mawk",
            "usr/bin/nawk": "mawk",
            "usr/bin/cc": "gcc",
            "usr/bin/c89": "c89-gcc",
            "usr/bin/c99": "c99-gcc",
            "usr/bin/c++": "g++",
            "usr/lib/cpp": "/usr/bin/cpp",
        }
        assert (root / "tmp").is_dir()
        for rel in ("bin/sh", "bin/cc", "lib/cpp"):  # through the merged-/usr links
            assert inside(root, rel).is_file(), rel

    def test_without_the_packages_no_dangling_links(self, tmp_path):
        root = tmp_path / "root"
        root.mkdir()
        finish_toolchain(root)
        dangling = [p for p in root.rglob("*") if p.is_symlink() and not p.exists()]
        assert dangling == []
        assert sorted(p.name for p in root.iterdir()) == ["bin", "etc", "lib", "sbin", "tmp", "usr"]
        assert os.readlink(root / "bin") == "usr/bin"

    def test_gawk_is_preferred_as_update_alternatives_would(self, tmp_path):
        root = merged_root(tmp_path)
        put(root, "usr/bin/mawk", mode=0o755)
        put(root, "usr/bin/gawk", mode=0o755)
        finish_toolchain(root)
        assert os.readlink(root / "usr/bin/awk") == "gawk"

    def test_a_shipped_link_is_left_alone(self, tmp_path):
        root = merged_root(tmp_path)
        put(root, "usr/bin/dash", mode=0o755)
        put(root, "usr/bin/bash", mode=0o755)
        link(root, "usr/bin/sh", "bash")
        finish_toolchain(root)
        assert os.readlink(root / "usr/bin/sh") == "bash"


# ---- runtime -------------------------------------------------------------------------------


@pytest.fixture
def runtime(tmp_path) -> Path:
    """A runtime-like root: shells, docs, man pages, locales."""
    root = merged_root(tmp_path)
    for shell in ("dash", "bash"):
        put(root, f"usr/bin/{shell}", b"\x7fELF" + shell.encode(), mode=0o755)
    link(root, "usr/bin/sh", "dash")
    put(root, "usr/bin/true", mode=0o755)
    put(root, "usr/share/doc/libc6/copyright", b"C" * 10)
    put(root, "usr/share/doc/libc6/changelog.Debian.gz", b"L" * 1000)
    put(root, "usr/share/doc/libc6/NEWS.gz", b"N" * 24)
    link(root, "usr/share/doc/libc6-dev", "libc6")
    put(root, "usr/share/man/man1/true.1.gz", b"M" * 300)
    put(root, "usr/share/locale/de/LC_MESSAGES/libc.mo", b"D" * 4000)
    link(root, "usr/share/locale/de/LC_TIME", "LC_MESSAGES")
    put(root, "usr/share/lintian/overrides/libc6", b"O" * 7)
    return root


class TestRuntime:
    def test_users_groups_and_directories(self, runtime):
        report = finish_runtime(runtime)
        passwd = (runtime / "etc/passwd").read_text().splitlines()
        assert passwd == [
            "root:x:0:0:root:/root:/usr/sbin/nologin",
            "nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin",
        ]
        assert (runtime / "etc/group").read_text() == "root:x:0:\nnonroot:x:65532:\n"
        nss = (runtime / "etc/nsswitch.conf").read_text()
        assert "passwd:         files\n" in nss and "hosts:          files dns\n" in nss
        for rel in ("tmp", "root", "home/nonroot"):
            assert (runtime / rel).is_dir() and not (runtime / rel).is_symlink()
        assert {"etc/group", "etc/nsswitch.conf", "etc/passwd"} <= set(report.written)
        assert RUNTIME_MODES["tmp"] == 0o1777
        assert RUNTIME_OWNERS["home/nonroot"] == (NONROOT_UID, NONROOT_UID)
        for rel in ("etc/passwd", "etc/group", "etc/nsswitch.conf"):
            assert (runtime / rel).stat().st_mode & 0o777 == 0o644

    def test_an_nsswitch_shipped_is_kept(self, runtime):
        put(runtime, "etc/nsswitch.conf", b"hosts: files\n")
        report = finish_runtime(runtime)
        assert (runtime / "etc/nsswitch.conf").read_bytes() == b"hosts: files\n"
        assert "etc/nsswitch.conf" not in report.written

    def test_no_shell_unless_asked(self, runtime):
        report = finish_runtime(runtime)
        assert report.removed_shells == ("usr/bin/sh", "usr/bin/dash", "usr/bin/bash")
        for rel in ("usr/bin/sh", "bin/sh", "usr/bin/dash", "usr/bin/bash"):
            assert not os.path.lexists(runtime / rel)
        assert (runtime / "usr/bin/true").exists()

    def test_a_shell_when_asked(self, runtime):
        report = finish_runtime(runtime, shell=True)
        assert report.removed_shells == ()
        assert os.readlink(runtime / "usr/bin/sh") == "dash"
        assert (runtime / "etc/passwd").read_text().startswith("root:x:0:0:root:/root:/bin/sh\n")

    def test_docs_trimmed_to_copyright_and_counted(self, runtime):
        report = finish_runtime(runtime)
        trimmed = {t.path: (t.files, t.bytes) for t in report.trimmed}
        assert trimmed == {
            "usr/share/doc": (2, 1024),
            "usr/share/man": (1, 300),
            "usr/share/locale": (1, 4000),
            "usr/share/lintian": (1, 7),
        }
        assert report.trimmed_bytes == 5331
        assert (runtime / "usr/share/doc/libc6/copyright").read_bytes() == b"C" * 10
        assert sorted(p.name for p in (runtime / "usr/share/doc/libc6").iterdir()) == ["copyright"]
        assert (runtime / "usr/share/doc/libc6-dev/copyright").exists()
        assert not (runtime / "usr/share/man").exists()

    @pytest.mark.skipif(not HOST_CERTS.is_dir(), reason=f"the host has no {HOST_CERTS}")
    def test_the_ca_bundle_is_what_update_ca_certificates_writes(self, runtime):
        shutil.copytree(HOST_CERTS, runtime / "usr/share/ca-certificates", symlinks=True)
        report = finish_runtime(runtime)
        bundle = runtime / "etc/ssl/certs/ca-certificates.crt"
        context = ssl.create_default_context(cafile=str(bundle))
        assert len(context.get_ca_certs()) == report.ca_certificates > 100
        # the host's bundle is update-ca-certificates' work: its certificates from
        # /usr/share/ca-certificates first (then any local ones it was given)
        if not HOST_BUNDLE.is_file():
            pytest.skip(f"the host has no {HOST_BUNDLE} to compare with")
        assert HOST_BUNDLE.read_bytes().startswith(bundle.read_bytes())
        # OpenSSL's default file (libssl3 looks in /usr/lib/ssl) is the bundle
        assert inside(runtime, "usr/lib/ssl/cert.pem") == bundle
        assert inside(runtime, "usr/lib/ssl/certs") == bundle.parent
        pem = runtime / "etc/ssl/certs/ISRG_Root_X1.pem"
        if (runtime / "usr/share/ca-certificates/mozilla/ISRG_Root_X1.crt").exists():
            assert os.readlink(pem) == "/usr/share/ca-certificates/mozilla/ISRG_Root_X1.crt"

    def test_a_certificate_without_a_final_newline_gets_one(self, runtime):
        put(runtime, "usr/share/ca-certificates/b/two.crt", b"TWO\n")
        put(runtime, "usr/share/ca-certificates/a/one (x),y.crt", b"ONE")
        put(runtime, "usr/share/ca-certificates/a/notes.txt", b"NOT A CERT")
        finish_runtime(runtime)
        certs = runtime / "etc/ssl/certs"
        assert (certs / "ca-certificates.crt").read_bytes() == b"ONE\nTWO\n"
        assert os.readlink(certs / "one_=x=_y.pem") == "/usr/share/ca-certificates/a/one (x),y.crt"
        conf = (runtime / "etc/ca-certificates.conf").read_text()
        assert conf == "a/one (x),y.crt\nb/two.crt\n"

    def test_no_certificates_no_bundle(self, runtime):
        report = finish_runtime(runtime)
        assert report.ca_certificates == 0
        assert not (runtime / "etc/ssl").exists()

    @pytest.mark.skipif(not HOST_UTC.is_file(), reason=f"the host has no {HOST_UTC}")
    def test_utc_when_tzdata_is_there(self, runtime):
        shutil.copy(HOST_UTC, put(runtime, "usr/share/zoneinfo/Etc/UTC"))
        finish_runtime(runtime)
        assert os.readlink(runtime / "etc/localtime") == "/usr/share/zoneinfo/Etc/UTC"
        assert inside(runtime, "etc/localtime").read_bytes().startswith(b"TZif")
        assert (runtime / "etc/timezone").read_text() == "Etc/UTC\n"

    def test_no_tzdata_no_localtime(self, runtime):
        finish_runtime(runtime)
        assert not os.path.lexists(runtime / "etc/localtime")

    def test_it_does_not_write_through_a_symlink(self, runtime, tmp_path):
        (tmp_path / "elsewhere").mkdir()
        (runtime / "etc").symlink_to(tmp_path / "elsewhere")
        with pytest.raises(RootfsError) as err:
            finish_runtime(runtime)
        assert err.value.reason == "rootfs-error" and "etc" in str(err.value)
        assert list((tmp_path / "elsewhere").iterdir()) == []

    def test_finishing_twice_gives_the_same_root(self, runtime):
        put(runtime, "usr/share/ca-certificates/a/one.crt", b"ONE\n")
        put(runtime, "usr/share/zoneinfo/Etc/UTC", b"TZif2")
        finish_runtime(runtime)
        first = listing(runtime)
        finish_runtime(runtime)
        assert listing(runtime) == first


def listing(root: Path) -> dict[str, str | bytes | None]:
    """path -> link target, file content or None (a directory)."""
    out: dict[str, str | bytes | None] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = os.readlink(path)
        else:
            out[rel] = path.read_bytes() if path.is_file() else None
    return out


# ---- real packages, run under bubblewrap ----------------------------------------------------

PACKAGES = [
    "libc6",
    "dash",
    "mawk",
    "libssl3",
    "openssl",
    "zlib1g",
    "ca-certificates",
    "tzdata",
    "netbase",
]


@pytest.fixture(scope="module")
def debs(tmp_path_factory) -> dict[str, Path]:
    """The packages above, from the Debian mirror (apt-get download, once)."""
    dest = tmp_path_factory.mktemp("debs")
    done = subprocess.run(["apt-get", "download", *PACKAGES], cwd=dest, capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"apt-get download failed: {done.stderr.decode()[-300:]}")
    return {name: next(dest.glob(f"{name}_*.deb")) for name in PACKAGES}


def unpack(debs: dict[str, Path], names: list[str], root: Path) -> None:
    unpack_debs([(n, functools.partial(open, debs[n], "rb")) for n in names], root)


def bwrap(root: Path, *args: str) -> subprocess.CompletedProcess:
    if shutil.which("bwrap") is None:
        pytest.skip("needs bubblewrap")
    cmd = ["bwrap", "--bind", str(root), "/", "--proc", "/proc", "--dev", "/dev"]
    cmd += ["--unshare-all", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@pytest.mark.network
def test_the_root_s_own_loader_finds_libraries_without_ld_so_cache(debs, tmp_path):
    root = tmp_path / "root"
    unpack(debs, ["libc6", "dash", "mawk", "libssl3", "openssl", "zlib1g"], root)
    finish_toolchain(root)
    assert not os.path.lexists(root / "etc/ld.so.cache")
    script = "echo 3 4 | awk '{print $1 * $2}'; openssl version; echo $0"
    done = bwrap(root, "/bin/sh", "-c", script)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "12" and lines[1].startswith("OpenSSL 3.") and lines[2] == "/bin/sh"
    # the loader's built-in path is what made that work
    debug = bwrap(root, "--setenv", "LD_DEBUG", "libs", "/usr/bin/openssl", "version")
    assert "/usr/lib/x86_64-linux-gnu:" in debug.stderr and "(system search path)" in debug.stderr


@pytest.mark.network
def test_a_real_runtime_root(debs, tmp_path):
    root = tmp_path / "root"
    names = ["libc6", "libssl3", "zlib1g", "ca-certificates", "tzdata", "netbase", "openssl"]
    unpack(debs, names, root)
    report = finish_runtime(root)
    bundle = root / "etc/ssl/certs/ca-certificates.crt"
    context = ssl.create_default_context(cafile=str(bundle))
    assert len(context.get_ca_certs()) == report.ca_certificates > 100
    passwd = (root / "etc/passwd").read_text()
    assert "nonroot:x:65532:65532:" in passwd
    assert not os.path.lexists(root / "usr/bin/sh") and not os.path.lexists(root / "bin/sh")
    assert inside(root, "etc/localtime").read_bytes().startswith(b"TZif")
    assert (root / "etc/services").is_file()
    assert report.trimmed_bytes > 1_000_000
    # the root's own OpenSSL, run without a shell, trusts a root from the bundle by default
    crt = "/usr/share/ca-certificates/mozilla/ISRG_Root_X1.crt"
    done = bwrap(root, "/usr/bin/openssl", "verify", crt)
    assert done.returncode == 0 and done.stdout.strip().endswith(": OK"), done.stderr
