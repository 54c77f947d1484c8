"""Lazy index scans: the same answers as parsing everything, from the stanzas that are asked for."""

from __future__ import annotations

import gzip
import hashlib
import random
import re

import pytest
from debfixture import Deb, FileGetter, make_repo, signing_keys

from seal.daemon.inputs import debian_packages
from seal.daemon.inputs.cpython import parse_sources, scan_sources
from seal.daemon.inputs.debian import (
    BinaryPackage,
    DebianArchive,
    IndexHashMismatch,
    IndexParseError,
    PackageIndex,
    ScannedPackages,
    closure,
    parse_packages,
)

FIELDS = (
    ("Package", "name"),
    ("Version", "version"),
    ("Architecture", "architecture"),
    ("Essential", "essential"),
    ("Priority", "priority"),
    ("Multi-Arch", "multi_arch"),
    ("Source", "source"),
    ("Pre-Depends", "pre_depends"),
    ("Depends", "depends"),
    ("Provides", "provides"),
    ("Filename", "filename"),
    ("Size", "size"),
    ("SHA256", "sha256"),
)


def pkg(name: str, version: str = "1.0", arch: str = "amd64", **fields) -> BinaryPackage:
    filename = f"pool/main/{name}_{version}_{arch}.deb"
    digest = hashlib.sha256(filename.encode()).hexdigest()
    return BinaryPackage(name, version, arch, filename, 100, digest, **fields)


def stanza(p: BinaryPackage, *, package_last: bool = False) -> str:
    """A Packages stanza for ``p``, with a multi-line Description and Provides folded."""
    lines = []
    for field, attr in FIELDS:
        value = getattr(p, attr)
        if value in ("", False):
            continue
        if attr == "essential":
            value = "yes"
        if attr == "provides" and ", " in str(value):
            first, rest = str(value).split(", ", 1)
            value = f"{first},\n {rest}"  # a continuation line
        lines.append(f"{field}: {value}")
    lines.append("Description: a package\n Package: not-a-field (a continuation line)\n .")
    if package_last:
        lines.append(lines.pop(0))
    return "\n".join(lines) + "\n"


def text_of(packages: list[BinaryPackage], **kwargs) -> bytes:
    return "\n".join(stanza(p, **kwargs) for p in packages).encode()


INDEX = [
    pkg("app", depends="libfoo (>= 1.2), mta, shell", pre_depends="base-lib"),
    pkg("libfoo", "1:1.0-1", source="foo (1:1.0-1)"),
    pkg("libfoo", "1:1.1-1"),  # two versions: newest first
    pkg("libfoo", "1:9.0-1", arch="i386"),  # another architecture: never a candidate
    pkg("base-lib", arch="all", priority="required"),
    pkg("postfix", provides="mta, mail-transport-agent (= 2)", priority="optional"),
    pkg("exim4", provides="mta", priority="standard"),
    pkg("dash", essential=True, provides="shell", priority="required"),
    pkg("not-essential-now", "2.0"),
    pkg("not-essential-now", "1.0", essential=True),  # only an older version is Essential
    pkg("twice", provides="v, v (= 3)"),
]
NAMES = sorted({p.name for p in INDEX} | {"mta", "mail-transport-agent", "shell", "v", "none"})


def _both(packages: list[BinaryPackage], **kwargs) -> tuple[PackageIndex, PackageIndex]:
    text = text_of(packages, **kwargs)
    return PackageIndex(parse_packages(text)), PackageIndex(ScannedPackages([(text, "Packages")]))


class TestScannedPackages:
    @pytest.mark.parametrize("package_last", [False, True], ids=["package-first", "package-last"])
    def test_answers_as_the_parsed_index_does(self, package_last):
        eager, lazy = _both(INDEX, package_last=package_last)
        for name in NAMES:
            assert lazy.versions(name) == eager.versions(name), name
            assert lazy.providers(name) == eager.providers(name), name
        assert lazy.essential() == eager.essential()
        assert [p.name for p in lazy.essential()] == ["dash"]
        assert [p.version for p in lazy.versions("libfoo")] == ["1:1.1-1", "1:1.0-1"]
        assert [(p.name, v) for p, v in lazy.providers("v")] == [("twice", ""), ("twice", "3")]

    def test_the_same_stanza_is_the_same_object(self):
        _, lazy = _both(INDEX)
        assert lazy.versions("dash")[0] is lazy.providers("shell")[0][0]

    def test_closures_are_the_same(self):
        rng = random.Random(7)
        for _ in range(10):
            shuffled = INDEX[:]
            rng.shuffle(shuffled)
            eager, lazy = _both(shuffled)
            for roots, essential in ((["app"], False), (["app", "postfix"], True)):
                want = closure(eager, roots, mirror="http://m", essential=essential)
                assert closure(lazy, roots, mirror="http://m", essential=essential) == want

    def test_only_asked_stanzas_are_parsed(self):
        text = text_of(INDEX[:2]) + b"\nPackage: broken\nVersion: 1\n"
        lazy = PackageIndex(ScannedPackages([(text, "Packages")]))
        assert [p.name for p in closure(lazy, ["libfoo"], mirror="http://m")] == ["libfoo"]
        with pytest.raises(IndexParseError, match="broken has no"):
            lazy.versions("broken")

    def test_components_keep_their_order(self):
        main, contrib = text_of([pkg("x", "1.0")]), text_of([pkg("x", "1.0", source="y")])
        scanned = ScannedPackages([(main, "main"), (contrib, "contrib")])
        assert [p.source for p in scanned.named("x")] == ["", "y"]


class TestScanSources:
    def test_same_stanzas_as_parse_sources(self):
        def source(name: str, version: str) -> str:
            sha = hashlib.sha256(name.encode()).hexdigest()
            return (
                f"Package: {name}\nBinary: {name}\nVersion: {version}\n"
                f"Directory: pool/main/p/{name}\nChecksums-Sha256:\n {sha} 10 {name}.dsc\n"
            )

        stanzas = [
            source("python3.12", "3.12.1-1"),
            source("python3.13-doc", "3.13.5-1"),  # not CPython's source: the name must match whole
            source("pythonx", "1"),
            source("python3.13", "3.13.5-2"),
            source("zlib", "1"),
        ]
        text = "\n".join(stanzas).encode()
        want = parse_sources(text, want=lambda n: re.fullmatch(r"python\d+\.\d+", n))
        got = scan_sources(text, rb"python\d+\.\d+")
        assert got == want
        assert [p.name for p in got] == ["python3.12", "python3.13"]


class TestArchiveForms:
    def test_the_gzip_form_is_read_first(self, tmp_path):
        repo = make_repo(tmp_path, [Deb("a")], signing_keys())
        getter = FileGetter()
        archive = DebianArchive(getter, mirror=repo.url, keyrings=[repo.keyring])
        assert [p.name for p in archive.closure(["a"])] == ["a"]
        assert getter.urls[-1].endswith("/main/binary-amd64/Packages.gz")

    def test_a_corrupt_gzip_form_is_refused_before_decompressing(self, tmp_path, monkeypatch):
        repo = make_repo(tmp_path, [Deb("a")], signing_keys())
        gz = repo.dists("main/binary-amd64/Packages.gz")
        gz.write_bytes(gzip.compress(b"Package: evil\n", mtime=0))

        def forbidden(*args, **kwargs):
            raise AssertionError("an unverified index was decompressed")

        monkeypatch.setattr(debian_packages, "_decompress", forbidden)
        archive = DebianArchive(FileGetter(), mirror=repo.url, keyrings=[repo.keyring])
        with pytest.raises(IndexHashMismatch, match="Packages.gz"):
            archive.closure(["a"])


class TestPrefetch:
    """With ``prefetch``, the index downloads beside the InRelease and is checked after it."""

    def _archive(self, repo, getter):
        return DebianArchive(getter, mirror=repo.url, keyrings=[repo.keyring], prefetch=True)

    def test_the_index_is_downloaded_once(self, tmp_path):
        repo = make_repo(tmp_path, [Deb("a")], signing_keys())
        getter = FileGetter()
        assert [p.name for p in self._archive(repo, getter).closure(["a"])] == ["a"]
        gz = [u for u in getter.urls if u.endswith("/main/binary-amd64/Packages.gz")]
        assert len(gz) == 1
        assert any(u.endswith("/InRelease") for u in getter.urls)

    def test_a_prefetched_index_is_checked_like_any(self, tmp_path, monkeypatch):
        repo = make_repo(tmp_path, [Deb("a")], signing_keys())
        repo.dists("main/binary-amd64/Packages.gz").write_bytes(gzip.compress(b"Package: x\n"))
        monkeypatch.setattr(debian_packages, "_decompress", self._forbidden)
        getter = FileGetter()
        with pytest.raises(IndexHashMismatch, match="Packages.gz"):
            self._archive(repo, getter).closure(["a"])
        # the bad prefetched copy is not trusted as final: the file is asked for again
        assert sum(u.endswith("Packages.gz") for u in getter.urls) == 2

    def test_a_wrong_guess_costs_nothing_but_the_request(self, tmp_path):
        repo = make_repo(tmp_path, [Deb("a")], signing_keys(), omit=["gz"])
        getter = FileGetter()
        assert [p.name for p in self._archive(repo, getter).closure(["a"])] == ["a"]
        assert getter.urls[-1].endswith("/main/binary-amd64/Packages.xz")

    @staticmethod
    def _forbidden(*args, **kwargs):
        raise AssertionError("an unverified index was decompressed")
