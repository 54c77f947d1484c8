"""Debian inputs: InRelease verification, Packages indexes, versions, the dependency closure."""

from __future__ import annotations

import hashlib
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from debfixture import Deb, FileGetter, UrlGetter, make_repo, serve, signing_keys

from seal.daemon.inputs import debian_packages
from seal.daemon.inputs.debian import (
    BinaryPackage,
    DebianArchive,
    IndexHashMismatch,
    IndexMissing,
    ReleaseError,
    SignatureError,
    Unsatisfiable,
    closure,
    compare_versions,
    fetch_packages,
    fetch_release,
    verify_inrelease,
)

BASIC = [
    Deb("app", depends="libfoo (>= 1.2), mta", pre_depends="base-lib"),
    Deb("libfoo", version="1:1.0-1"),
    Deb("base-lib", arch="all"),
    Deb("postfix", provides="mta"),
]


@pytest.fixture(scope="module")
def keys():
    return signing_keys()


@pytest.fixture(scope="module")
def good_repo(keys, tmp_path_factory):
    return make_repo(tmp_path_factory.mktemp("good"), BASIC, keys)


def _release(repo, **kwargs):
    return fetch_release(FileGetter(), repo.url, repo.suite, [repo.keyring], **kwargs)


class TestInRelease:
    def test_good_signature_is_accepted(self, good_repo, keys):
        release = _release(good_repo)
        inrelease = good_repo.dists("InRelease").read_bytes()
        assert release.signers == (keys.trusted,)
        assert release.codename == "bookworm" and release.suite == "stable"
        assert release.inrelease_sha256 == hashlib.sha256(inrelease).hexdigest()
        assert release.inrelease_url.endswith("/dists/bookworm/InRelease")
        assert abs(release.date - datetime.now(UTC)) < timedelta(minutes=5)
        assert release.architectures == ("amd64", "all") and release.components == ("main",)
        assert set(release.files) == {
            "main/binary-amd64/Packages",
            "main/binary-amd64/Packages.gz",
            "main/binary-amd64/Packages.xz",
        }

    def test_only_the_signed_text_is_returned(self, good_repo):
        verified = verify_inrelease(good_repo.dists("InRelease").read_bytes(), [good_repo.keyring])
        assert verified.text == good_repo.dists("Release").read_bytes()

    @pytest.mark.parametrize(
        ("sign", "reason"),
        [
            ("tampered", "debian-release-bad-signature"),
            ("garbled", "debian-release-unsigned"),
            ("untrusted", "debian-release-untrusted-key"),
            ("sha1", "debian-release-weak-digest"),
            ("none", "debian-release-unsigned"),
        ],
    )
    def test_bad_signatures_are_rejected(self, keys, tmp_path, sign, reason):
        repo = make_repo(tmp_path, BASIC[:1], keys, sign=sign)
        with pytest.raises(SignatureError) as caught:
            _release(repo)
        assert caught.value.reason == reason

    @pytest.mark.parametrize(
        "wrap",
        [
            lambda data: b"Origin: evil\n" + data,
            lambda data: data + b"\nSHA256:\n 00 1 main/evil\n",
            lambda data: data + data,
            lambda data: data[: len(data) // 2],
            lambda data: b"",
        ],
        ids=["text-before", "text-after", "two-messages", "truncated", "empty"],
    )
    def test_garbled_files_are_rejected(self, good_repo, wrap):
        data = wrap(good_repo.dists("InRelease").read_bytes())
        with pytest.raises(SignatureError):
            verify_inrelease(data, [good_repo.keyring])

    def test_expired_release_is_rejected_unless_told(self, keys, tmp_path):
        past = datetime(2020, 1, 1, tzinfo=UTC)
        repo = make_repo(tmp_path, BASIC[:1], keys, date=past, valid_until=past + timedelta(7))
        with pytest.raises(ReleaseError) as caught:
            _release(repo)
        assert caught.value.reason == "debian-release-expired"
        release = _release(repo, check_expiry=False)  # a snapshot mirror
        assert release.valid_until == past + timedelta(7)
        assert release.date == past

    def test_release_for_another_suite_is_rejected(self, keys, tmp_path):
        repo = make_repo(tmp_path, BASIC[:1], keys, suite="trixie")
        (repo.root / "dists" / "trixie").rename(repo.root / "dists" / "bookworm")
        with pytest.raises(ReleaseError) as caught:
            fetch_release(FileGetter(), repo.url, "bookworm", [repo.keyring])
        assert caught.value.reason == "debian-release-suite-mismatch"


class TestPackagesIndex:
    def test_index_is_fetched_and_parsed(self, good_repo):
        getter = FileGetter()
        packages = fetch_packages(getter, _release(good_repo), "main", "amd64")
        assert getter.urls[-1].endswith("/dists/bookworm/main/binary-amd64/Packages.xz")
        app = next(p for p in packages if p.name == "app")
        assert (app.version, app.architecture, app.pre_depends) == ("1.0-1", "amd64", "base-lib")
        assert app.depends == "libfoo (>= 1.2), mta"
        deb = good_repo.root / app.filename
        assert app.size == deb.stat().st_size
        assert app.sha256 == hashlib.sha256(deb.read_bytes()).hexdigest()

    @pytest.mark.parametrize(("omit", "suffix"), [(["xz"], ".gz"), (["xz", "gz"], "/Packages")])
    def test_falls_back_to_what_the_release_lists(self, keys, tmp_path, omit, suffix):
        repo = make_repo(tmp_path, BASIC, keys, omit=omit)
        getter = FileGetter()
        packages = fetch_packages(getter, _release(repo), "main", "amd64")
        assert getter.urls[-1].endswith(suffix)
        assert sorted(p.name for p in packages) == ["app", "base-lib", "libfoo", "postfix"]

    @pytest.mark.parametrize("how", ["hash", "size"])
    def test_mismatch_is_rejected_before_decompressing(self, keys, tmp_path, monkeypatch, how):
        repo = make_repo(tmp_path, BASIC, keys, corrupt_xz=how)
        release = _release(repo)

        def forbidden(*args, **kwargs):
            raise AssertionError("an unverified index was decompressed or parsed")

        monkeypatch.setattr(debian_packages, "_decompress", forbidden)
        monkeypatch.setattr(debian_packages, "parse_packages", forbidden)
        with pytest.raises(IndexHashMismatch) as caught:
            fetch_packages(FileGetter(), release, "main", "amd64")
        error = caught.value
        assert error.reason == "hash-mismatch"
        assert error.artifact == "main/binary-amd64/Packages.xz"
        entry = release.files["main/binary-amd64/Packages.xz"]
        assert (entry.sha256 if how == "hash" else str(entry.size)) in error.expected
        assert "Packages.xz" in str(error) and error.expected in str(error)

    def test_missing_component_is_named(self, good_repo):
        with pytest.raises(IndexMissing, match="contrib/binary-amd64/Packages"):
            fetch_packages(FileGetter(), _release(good_repo), "contrib", "amd64")


class TestVersions:
    @pytest.mark.parametrize(
        ("low", "high"),
        [
            ("1.0", "1.1"),
            ("2.4", "2.30"),
            ("1.0~rc1", "1.0"),
            ("1.0~~", "1.0~"),
            ("1.0~rc1-1", "1.0-1"),
            ("1.0", "1.0a"),
            ("1.0", "1.0+dfsg"),
            ("1.0-1", "1.0-1+b1"),
            ("1.0-1", "1.0-2"),
            ("1.0-9", "1.0-10"),
            ("9.9", "1:0.1"),
            ("1:2.0", "2:1.0"),
            ("1.0+a", "1.0.a"),
            ("2.36-9+deb12u3", "2.36-9+deb12u10"),
        ],
    )
    def test_order(self, low, high):
        assert compare_versions(low, high) == -1
        assert compare_versions(high, low) == 1

    @pytest.mark.parametrize(("a", "b"), [("0:1.0", "1.0"), ("1.0-01", "1.0-1"), ("1.0", "1.0")])
    def test_equal(self, a, b):
        assert compare_versions(a, b) == 0


def pkg(name: str, version: str = "1.0", arch: str = "amd64", **fields) -> BinaryPackage:
    """A package as an index lists it (no .deb behind it)."""
    filename = f"pool/main/{name}_{version}_{arch}.deb"
    digest = hashlib.sha256(filename.encode()).hexdigest()
    return BinaryPackage(name, version, arch, filename, 100, digest, **fields)


def names(packages, roots, **kwargs):
    return [p.name for p in closure(packages, roots, mirror="http://m", **kwargs)]


class TestClosure:
    def test_depends_and_pre_depends_are_followed(self):
        index = [pkg("a", depends="b"), pkg("b", pre_depends="c"), pkg("c"), pkg("d")]
        assert names(index, ["a"]) == ["a", "b", "c"]

    def test_first_satisfiable_alternative_is_chosen(self):
        index = [pkg("a", depends="missing | c (>= 2) | b | c"), pkg("b"), pkg("c")]
        assert names(index, ["a"]) == ["a", "b"]

    def test_alternative_already_in_the_set_is_preferred(self):
        index = [pkg("a", depends="b | c"), pkg("z", depends="c"), pkg("b"), pkg("c")]
        assert names(index, ["a", "z"]) == ["a", "c", "z"]
        assert names(index, ["a"]) == ["a", "b"]

    def test_virtual_package_via_provides(self):
        index = [
            pkg("app", depends="mail-transport-agent"),
            pkg("postfix", provides="mail-transport-agent", priority="optional"),
            pkg("exim4", provides="mail-transport-agent", priority="standard"),
        ]
        assert names(index, ["app"]) == ["app", "exim4"]
        assert names(index, ["app", "postfix"]) == ["app", "postfix"]

    def test_versioned_dependency_needs_a_versioned_provides(self):
        index = [
            pkg("app", depends="libfoo-abi (>= 2)"),
            pkg("old", provides="libfoo-abi"),
            pkg("low", provides="libfoo-abi (= 1.9)"),
            pkg("new", provides="libfoo-abi (= 2.1)"),
        ]
        assert names(index, ["app"]) == ["app", "new"]
        with pytest.raises(Unsatisfiable):  # an unversioned Provides meets no version at all
            names([pkg("app", depends="libbar (<< 9)"), pkg("old", provides="libbar")], ["app"])

    @pytest.mark.parametrize(
        ("dependency", "version", "ok"),
        [
            ("b (>= 1.0)", "1.0~rc1", False),
            ("b (>= 1.0~)", "1.0~rc1", True),
            ("b (>= 2.0)", "1:0.5", True),
            ("b (<< 2.0)", "1:0.5", False),
            ("b (<= 1.0-1)", "1.0-1", True),
            ("b (= 1.0-1)", "1.0-1+b1", False),
            ("b (>> 1.0)", "1.0+dfsg", True),
            ("b (>> 1.0)", "1.0", False),
        ],
    )
    def test_versioned_constraints(self, dependency, version, ok):
        index = [pkg("a", depends=dependency), pkg("b", version)]
        if ok:
            assert names(index, ["a"]) == ["a", "b"]
        else:
            with pytest.raises(Unsatisfiable):
                names(index, ["a"])

    def test_architectures_and_qualifiers(self):
        index = [
            pkg("a", depends="b:any, c:native, d, f:i386 | g"),
            pkg("f"),
            pkg("g", arch="all"),
            pkg("b", multi_arch="allowed"),
            pkg("c"),
            pkg("d", arch="i386"),
            pkg("d", arch="all"),
        ]
        pinned = closure(index, ["a"], mirror="http://m/")
        assert [(p.name, p.architecture) for p in pinned] == [
            ("a", "amd64"),
            ("b", "amd64"),
            ("c", "amd64"),
            ("d", "all"),
            ("g", "all"),
        ]
        assert pinned[3].url == "http://m/pool/main/d_1.0_all.deb"

    def test_essential_packages_only_when_asked(self):
        index = [
            pkg("app"),
            pkg("dash", essential=True, pre_depends="libc"),
            pkg("libc"),
            pkg("other"),
        ]
        assert names(index, ["app"]) == ["app"]
        assert names(index, ["app"], essential=True) == ["app", "dash", "libc"]

    def test_unsatisfiable_dependency_names_everything(self):
        index = [pkg("a", depends="b (>= 2:1)"), pkg("b", "1:3.0"), pkg("v", provides="b (= 1)")]
        with pytest.raises(Unsatisfiable) as caught:
            names(index, ["a"])
        error = caught.value
        assert (error.package, error.dependency, error.reason) == (
            "a",
            "b (>= 2:1)",
            "debian-unsatisfiable",
        )
        assert error.available == ("b 1:3.0", "v 1.0 (provides b (= 1))")
        assert "a depends on b (>= 2:1)" in str(error) and "b 1:3.0" in str(error)

    def test_unknown_root(self):
        with pytest.raises(Unsatisfiable, match="root nope"):
            names([pkg("a")], ["nope"])

    def test_output_is_sorted_and_independent_of_index_order(self):
        index = [
            pkg("z", depends="y | x, mta"),
            pkg("y", depends="w"),
            pkg("x"),
            pkg("w", pre_depends="v (>= 1~)"),
            pkg("v", "0.9"),
            pkg("v", "1.1"),
            pkg("p1", provides="mta"),
            pkg("p2", provides="mta"),
        ]
        expected = closure(index, ["z"], mirror="http://m")
        assert [p.name for p in expected] == ["p1", "v", "w", "y", "z"]
        assert next(p for p in expected if p.name == "v").version == "1.1"
        rng = random.Random(5)
        for _ in range(20):
            rng.shuffle(index)
            assert closure(index, ["z"], mirror="http://m") == expected


class TestArchive:
    def test_closure_of_a_served_repository(self, good_repo):
        with serve(good_repo.root) as url:
            archive = DebianArchive(UrlGetter(), mirror=url, keyrings=[good_repo.keyring])
            pinned = archive.closure(["app"])
            assert [p.name for p in pinned] == ["app", "base-lib", "libfoo", "postfix"]
            for p in pinned:
                data = UrlGetter().get(p.url)
                assert (len(data), hashlib.sha256(data).hexdigest()) == (p.size, p.sha256)
            assert archive.release().inrelease_url == f"{url}/dists/bookworm/InRelease"


@pytest.mark.network
def test_real_bookworm_mirror():
    getter = UrlGetter()
    archive = DebianArchive(getter)  # deb.debian.org, bookworm, main, amd64, system keyring
    started = time.perf_counter()
    release = archive.release()
    fetched = time.perf_counter()
    packages = archive.packages()
    parsed = time.perf_counter()
    pinned = archive.closure(["gcc", "make", "libc6-dev"])
    done = time.perf_counter()
    print(
        f"\nInRelease {fetched - started:.2f}s, Packages ({len(packages)}) fetch+check+parse "
        f"{parsed - fetched:.2f}s, index+closure ({len(pinned)}) {done - parsed:.2f}s"
    )
    assert release.codename == "bookworm" and release.signers
    assert len(release.inrelease_sha256) == 64
    assert len(packages) > 50_000
    by_name = {p.name: p for p in pinned}
    for name in ("gcc", "make", "libc6", "libc6-dev", "binutils", "cpp"):
        assert len(by_name[name].sha256) == 64 and by_name[name].size > 0
        assert by_name[name].url.startswith("https://deb.debian.org/debian/pool/main/")
    assert Path(by_name["libc6"].url).name.startswith("libc6_")
