"""Unpacking .deb files into a merged-/usr root (seal.daemon.image.deb).

Synthetic packages come in two kinds: built by ``dpkg-deb --build`` from a tree
(what Debian's tools make) and assembled here member by member (what they never
make: '..', absolute names, bzip2). Real packages come from apt's cache (no
network) or, for the tests marked ``network``, from the Debian mirror.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard
from debfixture import Deb, make_repo, signing_keys

from seal.daemon.errors import DaemonError
from seal.daemon.image.deb import (
    DebError,
    UnsafeDebMember,
    read_deb,
    unpack_debs,
)

APT_CACHE = Path("/var/cache/apt/archives")
CONTROL = "Package: {name}\nVersion: {version}\nArchitecture: amd64\nDescription: t\n"


# ---- synthetic packages --------------------------------------------------------------------


def ar(members: list[tuple[str, bytes]]) -> bytes:
    """An ar archive as dpkg-deb writes one."""
    out = [b"!<arch>\n"]
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n"
        out += [header.encode(), data, b"\n" if len(data) % 2 else b""]
    return b"".join(out)


def compress(data: bytes, ext: str) -> bytes:
    return {
        "": lambda d: d,
        ".gz": lambda d: gzip.compress(d, mtime=0),
        ".xz": lzma.compress,
        ".lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
        ".bz2": bz2.compress,
        ".zst": lambda d: zstandard.ZstdCompressor().compress(d),
    }[ext](data)


def entry(name: str, kind: str = "file", data: bytes = b"", mode: int = 0o644, target: str = ""):
    """One tar member: kind is file, dir, symlink, hardlink, chr, fifo."""
    info = tarfile.TarInfo(name)
    info.mode = mode
    types = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
        "chr": tarfile.CHRTYPE,
        "fifo": tarfile.FIFOTYPE,
    }
    info.type = types[kind]
    info.linkname = target
    info.size = len(data) if kind == "file" else 0
    return info, data


def tar(entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for info, data in entries:
            t.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buf.getvalue()


def deb(entries, *, name: str = "p", version: str = "1", ext: str = ".xz") -> bytes:
    """A .deb assembled member by member."""
    control = tar([entry("./control", data=CONTROL.format(name=name, version=version).encode())])
    return ar(
        [
            ("debian-binary", b"2.0\n"),
            ("control.tar.xz", lzma.compress(control)),
            (f"data.tar{ext}", compress(tar([entry("./", "dir", mode=0o755), *entries]), ext)),
        ]
    )


def dpkg_deb(tmp: Path, name: str, tree: Path, compression: str = "xz") -> Path:
    """A .deb built by dpkg-deb from ``tree`` (DEBIAN/control is added)."""
    (tree / "DEBIAN").mkdir(exist_ok=True)
    (tree / "DEBIAN" / "control").write_text(CONTROL.format(name=name, version="1.0"))
    out = tmp / f"{name}.deb"
    cmd = ["dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build", str(tree), str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


def mem(data: bytes):
    return lambda: io.BytesIO(data)


def files(*paths: Path):
    return [(p.name, (lambda p=p: open(p, "rb"))) for p in paths]


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root``: (kind, content sha256 / link target, executable)."""
    out: dict[str, tuple] = {}
    for dirpath, dirs, names in os.walk(root):
        for name in dirs + names:
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                out[rel] = ("file", digest, bool(st.st_mode & 0o111))
    return out


# ---- reading -------------------------------------------------------------------------------


class TestReadDeb:
    @pytest.mark.parametrize("compression", ["none", "gzip", "xz", "zstd"])
    def test_dpkg_deb_built_packages_of_every_compression(self, tmp_path, compression):
        tree = tmp_path / "tree"
        (tree / "usr/bin").mkdir(parents=True)
        (tree / "usr/bin/hello").write_text("#!/bin/sh\n")
        path = dpkg_deb(tmp_path, "hello", tree, compression)
        with open(path, "rb") as f:
            contents = read_deb(f, path.name)
        assert (contents.package, contents.version, contents.architecture) == (
            "hello",
            "1.0",
            "amd64",
        )
        with contents.data_tar() as t:
            assert "./usr/bin/hello" in [m.name for m in t]

    @pytest.mark.parametrize("ext", ["", ".gz", ".bz2", ".lzma", ".zst"])
    def test_data_compressions_dpkg_deb_does_not_write(self, tmp_path, ext):
        data = deb([entry("./x", data=b"x\n")], ext=ext)
        report = unpack_debs([("p.deb", mem(data))], tmp_path / "root")
        assert (tmp_path / "root/x").read_bytes() == b"x\n"
        assert report.packages[0].files == ("x",)

    @pytest.mark.parametrize(
        "data, words",
        [
            (b"not an archive", "no !<arch>"),
            (ar([("debian-binary", b"2.0\n")]), "expected debian-binary"),
            (ar([("debian-binary", b"3.0\n"), ("control.tar", b""), ("data.tar", b"")]), "3.0"),
            (ar([("debian-binary", b"2.0\n"), ("control.tar.rar", b""), ("data.tar", b"")]), "rar"),
            (deb([])[:-40], "truncated"),
            (
                ar([("debian-binary", b"2.0\n"), ("control.tar", tar([])), ("data.tar", b"")]),
                "no control",
            ),
        ],
    )
    def test_malformed_packages_are_refused_naming_them(self, data, words):
        with pytest.raises(DebError) as err:
            read_deb(io.BytesIO(data), "bad_1.0_amd64.deb")
        assert isinstance(err.value, DaemonError)
        assert err.value.reason == "bad-deb"
        assert "bad_1.0_amd64.deb" in str(err.value) and words in str(err.value)

    def test_a_corrupt_data_tar_is_a_deb_error(self, tmp_path):
        data = bytearray(deb([entry("./x", data=os.urandom(5000))], ext=".gz"))
        data[-200] ^= 0xFF
        with pytest.raises(DebError, match="p.deb: cannot read data.tar.gz"):
            unpack_debs([("p.deb", mem(bytes(data)))], tmp_path / "root")


# ---- unpacking -----------------------------------------------------------------------------


class TestUnpack:
    def test_merged_usr(self, tmp_path):
        data = deb(
            [
                entry("./bin/", "dir", mode=0o755),
                entry("./bin/sh", "symlink", target="dash"),
                entry("./bin/dash", data=b"\x7fELF", mode=0o755),
                entry("./lib64/ld.so", "symlink", target="/lib/x86_64-linux-gnu/ld.so"),
                entry("./lib/x86_64-linux-gnu/ld.so", data=b"ld", mode=0o755),
                entry("./sbin/init", data=b"init", mode=0o755),
                entry("./usr/bin/env", data=b"env", mode=0o755),
            ]
        )
        root = tmp_path / "root"
        report = unpack_debs([("p.deb", mem(data))], root)
        assert report.merged_links == ("bin", "lib", "lib64", "sbin")
        for top in report.merged_links:
            assert os.readlink(root / top) == f"usr/{top}"
            assert (root / "usr" / top).is_dir() and not (root / "usr" / top).is_symlink()
        assert not (root / "lib32").exists()
        assert os.readlink(root / "usr/bin/sh") == "dash"  # kept as shipped
        assert (root / "bin/dash").read_bytes() == b"\x7fELF"
        assert os.readlink(root / "usr/lib64/ld.so") == "/lib/x86_64-linux-gnu/ld.so"
        assert report.packages[0].files == (
            "usr/bin/dash",
            "usr/bin/env",
            "usr/bin/sh",
            "usr/lib/x86_64-linux-gnu/ld.so",
            "usr/lib64/ld.so",
            "usr/sbin/init",
        )

    def test_a_file_where_merged_usr_has_a_link_is_refused(self, tmp_path):
        data = deb([entry("./lib64", data=b"not a dir")])
        with pytest.raises(DebError, match=r"p.deb: \./lib64: .*merged /usr"):
            unpack_debs([("p.deb", mem(data))], tmp_path / "root")

    def test_modes_are_0755_or_0644_whatever_the_umask(self, tmp_path):
        data = deb(
            [
                entry("./etc/", "dir", mode=0o700),
                entry("./etc/secret", data=b"s", mode=0o600),
                entry("./etc/tool", data=b"t", mode=0o700),
                entry("./etc/group-x", data=b"g", mode=0o610),
            ]
        )
        old = os.umask(0o077)
        try:
            unpack_debs([("p.deb", mem(data))], tmp_path / "root")
        finally:
            os.umask(old)
        root = tmp_path / "root"
        modes = {p: stat.S_IMODE((root / p).lstat().st_mode) for p in ("", "etc", "etc/secret")}
        modes |= {p: stat.S_IMODE((root / p).lstat().st_mode) for p in ("etc/tool", "etc/group-x")}
        assert modes == {
            "": 0o755,
            "etc": 0o755,
            "etc/secret": 0o644,
            "etc/tool": 0o755,
            "etc/group-x": 0o755,
        }

    def test_hardlinks_become_copies(self, tmp_path):
        tree = tmp_path / "tree"
        (tree / "usr/bin").mkdir(parents=True)
        (tree / "usr/bin/perl5.36").write_bytes(b"perl" * 1000)
        (tree / "usr/bin/perl5.36").chmod(0o755)
        os.link(tree / "usr/bin/perl5.36", tree / "usr/bin/perl")
        path = dpkg_deb(tmp_path, "perl", tree)
        listing = subprocess.run(["dpkg-deb", "-c", str(path)], capture_output=True, text=True)
        assert "link to" in listing.stdout  # dpkg-deb did ship a hardlink
        root = tmp_path / "root"
        report = unpack_debs(files(path), root)
        a, b = (root / "usr/bin/perl5.36").lstat(), (root / "usr/bin/perl").lstat()
        assert a.st_ino != b.st_ino and a.st_nlink == b.st_nlink == 1
        assert (root / "usr/bin/perl").read_bytes() == b"perl" * 1000
        assert b.st_mode & 0o111
        assert "usr/bin/perl" in report.packages[0].files

    def test_a_hardlink_to_nothing_before_it_is_refused(self, tmp_path):
        data = deb([entry("./a", "hardlink", target="./b"), entry("./b", data=b"b")])
        with pytest.raises(DebError, match=r"p.deb: \./a: a hardlink to \./b"):
            unpack_debs([("p.deb", mem(data))], tmp_path / "root")

    def test_setuid_setgid_sticky_are_dropped_and_reported(self, tmp_path):
        tree = tmp_path / "tree"
        (tree / "usr/bin").mkdir(parents=True)
        (tree / "tmp").mkdir()
        (tree / "tmp").chmod(0o1777)
        for name, mode in (("su", 0o4755), ("wall", 0o2755)):
            (tree / "usr/bin" / name).write_bytes(name.encode())
            (tree / "usr/bin" / name).chmod(mode)
        path = dpkg_deb(tmp_path, "login", tree)
        root = tmp_path / "root"
        report = unpack_debs(files(path), root)
        assert [(d.path, d.mode) for d in report.dropped_modes] == [
            ("tmp", 0o1777),
            ("usr/bin/su", 0o4755),
            ("usr/bin/wall", 0o2755),
        ]
        for rel in ("tmp", "usr/bin/su", "usr/bin/wall"):
            assert stat.S_IMODE((root / rel).lstat().st_mode) == 0o755

    def test_device_nodes_and_fifos_are_skipped_and_reported(self, tmp_path):
        data = deb([entry("./dev/", "dir"), entry("./dev/null", "chr"), entry("./run/ctl", "fifo")])
        root = tmp_path / "root"
        report = unpack_debs([("p.deb", mem(data))], root)
        assert [(s.path, s.kind) for s in report.skipped] == [
            ("dev/null", "character device"),
            ("run/ctl", "fifo"),
        ]
        assert not os.path.lexists(root / "dev/null") and not os.path.lexists(root / "run/ctl")

    def test_same_path_different_content_last_wins_reported(self, tmp_path):
        a = deb([entry("./etc/conf", data=b"a\n"), entry("./etc/same", data=b"=")], name="a")
        b = deb([entry("./etc/conf", data=b"b\n"), entry("./etc/same", data=b"=")], name="b")
        root = tmp_path / "root"
        report = unpack_debs([("a.deb", mem(a)), ("b.deb", mem(b))], root)
        assert (root / "etc/conf").read_bytes() == b"b\n"
        assert [(c.path, c.previous, c.winner, c.detail) for c in report.conflicts] == [
            ("etc/conf", "a.deb", "b.deb", "different content")
        ]
        # identical files (Multi-Arch: same, shared docs) belong to both and are no conflict
        assert report.packages[0].files == ("etc/same",)
        assert report.packages[1].files == ("etc/conf", "etc/same")

    def test_a_symlink_replacing_a_file_is_a_conflict(self, tmp_path):
        a = deb([entry("./usr/bin/awk", data=b"awk")], name="a")
        b = deb([entry("./usr/bin/awk", "symlink", target="mawk")], name="b")
        report = unpack_debs([("a.deb", mem(a)), ("b.deb", mem(b))], tmp_path / "root")
        assert os.readlink(tmp_path / "root/usr/bin/awk") == "mawk"
        assert report.conflicts[0].detail == "a file replaced by a link"

    def test_a_file_over_a_directory_with_content_is_refused(self, tmp_path):
        a = deb([entry("./opt/x/", "dir"), entry("./opt/x/y", data=b"y")], name="a")
        b = deb([entry("./opt/x", data=b"x")], name="b")
        with pytest.raises(DebError, match="b.deb"):
            unpack_debs([("a.deb", mem(a)), ("b.deb", mem(b))], tmp_path / "root")

    @pytest.mark.parametrize(
        "entries",
        [
            [entry("./../evil", data=b"x")],
            [entry("./usr/../../evil", data=b"x")],
            [entry("/etc/evil", data=b"x")],
            [entry("./up", "symlink", target="../.."), entry("./up/evil", data=b"x")],
            [entry("./usr/a", "symlink", target="../../../tmp"), entry("./usr/a/evil", data=b"x")],
        ],
        ids=["dotdot", "dotdot-inside", "absolute", "through-symlink", "through-nested-symlink"],
    )
    def test_paths_leaving_the_root_are_refused(self, tmp_path, entries):
        root = tmp_path / "sub" / "root"
        with pytest.raises(UnsafeDebMember) as err:
            unpack_debs([("evil_1_amd64.deb", mem(deb(entries)))], root)
        assert err.value.reason == "unsafe-deb-member"
        assert err.value.package == "evil_1_amd64.deb" and err.value.member
        assert not list(tmp_path.rglob("evil"))

    def test_absolute_symlinks_are_followed_inside_the_root(self, tmp_path):
        # openssl ships usr/lib/ssl/certs -> /etc/ssl/certs; a later member under it lands
        # in the root's etc/ssl/certs, as dpkg puts it on the target system, never the host's
        a = deb([entry("./usr/lib/ssl/certs", "symlink", target="/etc/ssl/certs")], name="a")
        b = deb([entry("./usr/lib/ssl/certs/x.pem", data=b"pem")], name="b")
        root = tmp_path / "root"
        report = unpack_debs([("a.deb", mem(a)), ("b.deb", mem(b))], root)
        assert (root / "etc/ssl/certs/x.pem").read_bytes() == b"pem"
        assert report.packages[1].files == ("etc/ssl/certs/x.pem",)
        assert not Path("/etc/ssl/certs/x.pem").exists()

    def test_the_destination_must_be_empty(self, tmp_path):
        (tmp_path / "root").mkdir()
        (tmp_path / "root/old").write_text("x")
        with pytest.raises(DebError, match="must be empty"):
            unpack_debs([], tmp_path / "root")

    def test_the_tree_depends_on_the_inputs_only(self, tmp_path):
        data = [
            ("a.deb", mem(deb([entry("./bin/a", data=b"a", mode=0o750)], name="a"))),
            ("b.deb", mem(deb([entry("./usr/share/b/", "dir", mode=0o700)], name="b"))),
        ]
        old = os.umask(0o077)
        try:
            unpack_debs(data, tmp_path / "one")
        finally:
            os.umask(old)
        unpack_debs(data, tmp_path / "two")
        one, two = snapshot(tmp_path / "one"), snapshot(tmp_path / "two")
        assert one == two and len(one) > 5

    def test_a_debfixture_repository_package(self, tmp_path):
        repo = make_repo(tmp_path, [Deb("tiny", version="2.0-1")], signing_keys())
        (path,) = repo.root.rglob("*.deb")
        report = unpack_debs(files(path), tmp_path / "root")
        (pkg,) = report.packages
        assert (pkg.package, pkg.version, pkg.files) == (
            "tiny",
            "2.0-1",
            ("usr/share/doc/tiny/README",),
        )


# ---- real packages, against dpkg-deb -x -----------------------------------------------------


def merged(path: str) -> str:
    top, _, rest = path.partition("/")
    if top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        return f"usr/{path}"
    return path


def dpkg_snapshot(tmp: Path, debs: list[Path]) -> dict[str, tuple]:
    """What ``dpkg-deb -x`` unpacks, with the merged-/usr rename applied."""
    out: dict[str, tuple] = {}
    for i, path in enumerate(debs):
        dest = tmp / f"dpkg-{i}"
        subprocess.run(["dpkg-deb", "-x", str(path), str(dest)], check=True)
        out |= {merged(p): v for p, v in snapshot(dest).items()}
    return out


def assert_like_dpkg(tmp: Path, debs: list[Path]) -> None:
    root = tmp / "root"
    report = unpack_debs(files(*debs), root)
    mine = snapshot(root)
    for top in report.merged_links:
        assert mine.pop(top) == ("link", f"usr/{top}")
    theirs = dpkg_snapshot(tmp, debs)
    assert mine.keys() == theirs.keys()
    differ = [p for p in mine if mine[p] != theirs[p]]
    assert differ == []
    shipped = {p for pkg in report.packages for p in pkg.files}
    assert shipped == {p for p, v in theirs.items() if v[0] != "dir"}


def cached(*names: str) -> list[Path]:
    found = []
    for name in names:
        paths = sorted(APT_CACHE.glob(f"{name}_*.deb"))
        if not paths:
            pytest.skip(f"no {name}_*.deb in {APT_CACHE} (apt-get download {name} puts one there)")
        found.append(paths[-1])
    return found


def test_cached_packages_unpack_as_dpkg_deb_does(tmp_path):
    # busybox: bin/; passwd: sbin/ and setuid files; libssl3: lib/ ; tzdata: many links
    assert_like_dpkg(tmp_path, cached("busybox", "passwd", "libssl3", "tzdata"))


@pytest.fixture(scope="session")
def downloaded(tmp_path_factory) -> Path:
    """Base packages fetched from the Debian mirror with apt-get download (once)."""
    dest = tmp_path_factory.mktemp("debs")
    names = ["libc6", "dash", "mawk", "coreutils", "ca-certificates", "tzdata", "base-files"]
    done = subprocess.run(["apt-get", "download", *names], cwd=dest, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"apt-get download failed: {done.stderr.strip()[-300:]}")
    return dest


@pytest.mark.network
def test_base_packages_unpack_as_dpkg_deb_does(tmp_path, downloaded):
    debs = sorted(downloaded.glob("*.deb"))
    assert len(debs) == 7
    assert_like_dpkg(tmp_path, debs)


@pytest.mark.network
def test_base_files_reports_its_sticky_directories(tmp_path, downloaded):
    (path,) = downloaded.glob("base-files_*.deb")
    report = unpack_debs(files(path), tmp_path / "root")
    assert ("tmp", 0o1777) in [(d.path, d.mode) for d in report.dropped_modes]
    assert report.skipped == () and report.conflicts == ()
