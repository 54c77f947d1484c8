"""CPython sources from a Debian mirror: a signed local mirror with a fake python3.13 package.

The mirror is built here (debfixture makes binary repositories only): Sources
indexes for two suites, Releases clearsigned with debfixture's archive key, and
a pool with a tiny "upstream" tarball signed by a throwaway release manager
whose public key sits in the debian.tar.xz as ``debian/upstream/signing-key.asc``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cpythonfixture import (
    ReleaseManager,
    make_mirror,
    new_key,
    python311,
    python313,
    release_manager,
    tar_xz,
)
from debfixture import FileGetter, UrlGetter, serve, signing_keys

from seal.daemon.inputs.cpython import (
    CPythonResolver,
    CPythonSourceError,
    Signer,
    extract_signing_key,
    fetch_and_verify,
    parse_sources,
    python_org_urls,
    signer_for,
    verify_source,
)
from seal.daemon.inputs.debian_release import IndexHashMismatch, SignatureError
from seal.daemon.inputs.http import HttpClient, RetryPolicy
from seal.daemon.inputs.signature import SignatureError as DetachedSignatureError

pytestmark = pytest.mark.skipif(
    shutil.which("gpg") is None or shutil.which("gpgv") is None,
    reason="gpg and gpgv are needed (apt-get install gpg gpgv)",
)

JUNE_2020 = int(datetime(2020, 6, 1, tzinfo=UTC).timestamp())


@pytest.fixture(scope="module")
def rm() -> ReleaseManager:
    with release_manager() as manager:
        yield manager


def resolver(root: Path | str, rm: ReleaseManager, *, fingerprint: str = "", **kw):
    mirror = root.as_uri() if isinstance(root, Path) else root
    signers = {
        "3.11": Signer("test 3.11 RM", rm.other, "test"),
        "3.13": Signer("test RM", fingerprint or rm.fingerprint, "test"),
    }
    kw.setdefault("getter", FileGetter())
    return CPythonResolver(
        mirror=mirror,
        suites=("bookworm", "trixie"),
        keyrings=[signing_keys().keyring],
        signers=signers,
        python_org="https://python.invalid/ftp/python",
        **kw,
    )


@pytest.fixture(scope="module")
def good(rm, tmp_path_factory) -> Path:
    return make_mirror(tmp_path_factory.mktemp("good"), [python313(rm)])


@pytest.fixture
def client():
    with HttpClient(retry=RetryPolicy(attempts=1)) as c:
        yield c


# -- pinning ------------------------------------------------------------------------------------
def test_found_pinned_and_verified(good, rm, client, tmp_path):
    with serve(good) as url:
        source = resolver(url, rm, getter=UrlGetter()).resolve("3.13.5", tmp_path)
        fetched = fetch_and_verify(client, source, tmp_path / "cache")
    index = {line.split()[2]: line.split() for line in _sha256_lines(good, "trixie")}
    assert source.suite == "trixie" and source.debian_version == "3.13.5-2"
    assert source.signer_fingerprint == rm.fingerprint and source.signer_name == "test RM"
    for pin in (source.tarball, source.signature, source.signing_key):
        assert [pin.sha256, str(pin.size)] == index[pin.filename][:2]
        assert pin.urls[0] == f"{url}/pool/main/p/python3.13/{pin.filename}"
    assert source.tarball.urls[1] == "https://python.invalid/ftp/python/3.13.5/Python-3.13.5.tar.xz"
    assert source.signature.urls[1].endswith("/3.13.5/Python-3.13.5.tar.xz.asc")
    assert source.signing_key.filename == "python3.13_3.13.5-2.debian.tar.xz"
    assert source.signing_key_sha256 == hashlib.sha256(rm.public()).hexdigest()
    inrelease = (good / "dists/trixie/InRelease").read_bytes()
    assert source.inrelease_sha256 == hashlib.sha256(inrelease).hexdigest()
    assert fetched.result.primary_fingerprint == rm.fingerprint
    assert (
        fetched.tarball.read_bytes()
        == (good / "pool/main/p/python3.13" / fetched.tarball.name).read_bytes()
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # no key left behind


def _sha256_lines(root: Path, suite: str) -> list[str]:
    text = (root / "dists" / suite / "main/source/Sources").read_text()
    block = text.split("Checksums-Sha256:\n", 1)[1].split("Directory:", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_pinned_fingerprint_not_in_the_shipped_key_is_rejected(good, rm):
    with pytest.raises(CPythonSourceError) as err:
        resolver(good, rm, fingerprint=rm.other).resolve("3.13.5")
    assert err.value.reason == "cpython-signing-key-mismatch"
    assert rm.other in str(err.value) and rm.fingerprint in str(err.value)


def test_signature_by_another_key_in_the_keyring_is_rejected(rm, tmp_path, client):
    # the package ships both keys; the tarball is signed by the one that is not pinned
    both = rm.gpg("--armor", "--export", rm.fingerprint, rm.other)
    pkg = python313(rm, sig_key=rm.other)
    debian = tar_xz({"debian/upstream/signing-key.asc": both})
    pkg.files["python3.13_3.13.5-2.debian.tar.xz"] = debian
    root = make_mirror(tmp_path, [pkg])
    with serve(root) as url:
        source = resolver(url, rm, getter=UrlGetter()).resolve("3.13.5", tmp_path)
        with pytest.raises(DetachedSignatureError) as err:
            fetch_and_verify(client, source, tmp_path / "cache")
    assert err.value.reason == "signature-wrong-key"


def test_verify_source_with_another_pinned_fingerprint_fails(good, rm, client, tmp_path):
    with serve(good) as url:
        source = resolver(url, rm, getter=UrlGetter()).resolve("3.13.5", tmp_path)
        fetched = fetch_and_verify(client, source, tmp_path / "cache")
    wrong = dataclasses.replace(source, signer_fingerprint=rm.other)
    with pytest.raises(DetachedSignatureError) as err:
        verify_source(wrong, fetched.tarball, fetched.signature, fetched.keyring)
    assert err.value.reason in ("signature-wrong-key", "signature-no-pubkey")


def test_tampered_pool_tarball_fails_the_index_hash(rm, tmp_path, client):
    root = make_mirror(tmp_path, [python313(rm, tamper="pool")])
    with serve(root) as url:
        source = resolver(url, rm, getter=UrlGetter()).resolve("3.13.5", tmp_path)
        with pytest.raises(CPythonSourceError) as err:
            fetch_and_verify(client, source, tmp_path / "cache")
    assert err.value.reason == "cpython-download-failed"
    assert source.tarball.sha256 in str(err.value)
    assert not (tmp_path / "cache" / source.tarball.filename).exists()


def test_tampered_tarball_listed_in_the_index_fails_the_signature(rm, tmp_path, client):
    root = make_mirror(tmp_path, [python313(rm, tamper="index")])
    with serve(root) as url:
        source = resolver(url, rm, getter=UrlGetter()).resolve("3.13.5", tmp_path)
        with pytest.raises(DetachedSignatureError) as err:
            fetch_and_verify(client, source, tmp_path / "cache")
    assert err.value.reason == "signature-bad"


def test_verify_source_rechecks_the_pinned_hash(good, rm, client, tmp_path):
    with serve(good) as url:
        source = resolver(url, rm, getter=UrlGetter()).resolve("3.13.5", tmp_path)
        fetched = fetch_and_verify(client, source, tmp_path / "cache")
    changed = tmp_path / "changed.tar.xz"
    changed.write_bytes(fetched.tarball.read_bytes()[:-1] + b"\0")
    with pytest.raises(CPythonSourceError) as err:
        verify_source(source, changed, fetched.signature, fetched.keyring)
    assert err.value.reason == "cpython-hash-mismatch"


def test_expired_key_signature_made_before_expiry_is_good(tmp_path, client):
    home = Path(tempfile.mkdtemp(prefix="seal-rm-"))
    try:
        old = new_key(home, "Old RM <old@python.invalid>", "1y", at=JUNE_2020 - 86400)
        rm = ReleaseManager(home, old, old)
        root = make_mirror(tmp_path, [python313(rm, sig_at=JUNE_2020)])
        with serve(root) as url:
            source = resolver(url, rm, getter=UrlGetter()).resolve("3.13.5", tmp_path)
            fetched = fetch_and_verify(client, source, tmp_path / "cache")
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    assert fetched.result.key_expired is not None
    assert fetched.result.created < fetched.result.key_expired


# -- finding ------------------------------------------------------------------------------------
def test_unknown_version_lists_what_the_suites_carry(good, rm):
    with pytest.raises(CPythonSourceError) as err:
        resolver(good, rm).resolve("3.13.9")
    assert err.value.reason == "cpython-version-unknown"
    assert "CPython 3.13.9 is not on the Debian mirror" in str(err.value)
    assert "available: 3.11.2 (bookworm, unsigned), 3.13.5 (trixie)" in str(err.value)


def test_version_without_upstream_signature_is_refused(good, rm):
    with pytest.raises(CPythonSourceError) as err:
        resolver(good, rm).resolve("3.11.2")
    assert err.value.reason == "cpython-unsigned"
    assert "bookworm" in str(err.value) and "python3.11_3.11.2.orig.tar.gz.asc" in str(err.value)
    assert err.value.hint == "signed ones: 3.13.5 (trixie)"


def test_series_without_a_pinned_signer_names_the_known_ones(good, rm):
    with pytest.raises(CPythonSourceError) as err:
        resolver(good, rm).resolve("3.14.0")
    assert err.value.reason == "cpython-signer-unknown"
    assert "Sigstore only" in str(err.value) and f"3.13 {rm.fingerprint}" in str(err.value)
    assert signer_for("3.13.5").fingerprint == "7169605F62C751356D054A26A821E680E5FA6305"
    assert signer_for("3.11.2").fingerprint == "A035C8C19219BA821ECEA86B64E628F8D684696D"
    assert signer_for("3.12.1").name == "Thomas Wouters"


@pytest.mark.parametrize("bad", ["3.13", "3.13.5rc1", "latest", "3.13.5-2"])
def test_inexact_version_is_refused(good, rm, bad):
    with pytest.raises(CPythonSourceError) as err:
        resolver(good, rm).resolve(bad)
    assert err.value.reason in ("cpython-version-invalid", "cpython-signer-unknown")


def test_repacked_tarball_is_refused(rm, tmp_path):
    pkg = python313(rm, version="3.13.5+dfsg")
    root = make_mirror(tmp_path, [pkg])
    with pytest.raises(CPythonSourceError) as err:
        resolver(root, rm).resolve("3.13.5")
    assert err.value.reason == "cpython-repacked" and "3.13.5+dfsg-2" in str(err.value)


def test_missing_signing_key_member(rm, tmp_path):
    root = make_mirror(tmp_path, [python313(rm, no_key=True)])
    with pytest.raises(CPythonSourceError) as err:
        resolver(root, rm).resolve("3.13.5")
    assert err.value.reason == "cpython-signing-key-missing"


def test_newest_debian_revision_of_a_version_wins(rm, tmp_path):
    older = python313(rm)
    renamed = {k.replace("-2.debian", "-10.debian"): v for k, v in older.files.items()}
    newer = dataclasses.replace(older, version="3.13.5-10", files=renamed)
    root = make_mirror(tmp_path, [newer, older])
    assert resolver(root, rm).resolve("3.13.5").debian_version == "3.13.5-10"


# -- the archive's own checks ----------------------------------------------------------------------
def test_sources_hash_mismatch_is_rejected(rm, tmp_path):
    root = make_mirror(tmp_path, [python313(rm)], corrupt="hash")
    with pytest.raises(IndexHashMismatch) as err:
        resolver(root, rm).resolve("3.13.5")
    listed = _release_entry(root, "trixie", "main/source/Sources.xz")
    assert err.value.artifact == "main/source/Sources.xz"
    assert err.value.expected == f"sha256:{listed}"  # caught before decompressing


def _release_entry(root: Path, suite: str, path: str) -> str:
    text = (root / "dists" / suite / "InRelease").read_text()
    return next(line.split()[0] for line in text.splitlines() if line.endswith(" " + path))


def test_untrusted_inrelease_is_skipped_and_named(rm, tmp_path):
    root = make_mirror(tmp_path, [python313(rm)], sign="untrusted")
    with pytest.raises(CPythonSourceError) as err:
        resolver(root, rm).resolve("3.13.5")
    assert err.value.reason == "cpython-version-unknown"
    assert "trixie not searched: InRelease is signed only by keys not in the keyring" in str(
        err.value
    )


def test_no_verifiable_suite_raises_the_archive_error(rm, tmp_path):
    root = make_mirror(tmp_path, [python313(rm)], sign="untrusted")
    r = resolver(root, rm)
    r.suites = ("trixie",)
    with pytest.raises(SignatureError):
        r.resolve("3.13.5")


# -- small parts ----------------------------------------------------------------------------------
def test_parse_sources_keeps_wanted_stanzas_and_their_files(rm):
    text = python311().stanza() + "\nPackage: zlib\nVersion: 1\nDirectory: pool/z\n"
    text += "Checksums-Sha256:\n " + "0" * 64 + " 1 z.dsc\n"
    parsed = parse_sources(text, want=lambda n: n.startswith("python"))
    assert [p.name for p in parsed] == ["python3.11"]
    assert parsed[0].upstream_version == "3.11.2" and len(parsed[0].files) == 2
    with pytest.raises(CPythonSourceError):
        parse_sources("Package: x\nVersion: 1\n")


def test_extract_signing_key_refuses_garbage():
    with pytest.raises(CPythonSourceError) as err:
        extract_signing_key(b"not xz", name="x.debian.tar.xz")
    assert err.value.reason == "cpython-signing-key-missing"


def test_python_org_urls():
    assert python_org_urls("3.11.2", ".tgz") == [
        "https://www.python.org/ftp/python/3.11.2/Python-3.11.2.tgz",
        "https://www.python.org/ftp/python/3.11.2/Python-3.11.2.tgz.asc",
    ]


# -- the real mirror ------------------------------------------------------------------------------
CPYTHON_3_13_5_SHA256 = "93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640"
REAL_CACHE = Path(os.environ.get("SEAL_CI_CACHE", "/var/cache/seal-ci")) / "cpython"


@pytest.mark.network
def test_real_mirror_cpython_3_13_5_pinned_and_verified(tmp_path_factory):
    cache = REAL_CACHE
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        cache = tmp_path_factory.mktemp("cpython-cache")
    started = time.perf_counter()
    r = CPythonResolver(UrlGetter())  # deb.debian.org, bookworm/trixie/sid, system keyring
    source = r.resolve("3.13.5", tmp_path_factory.mktemp("work"))
    resolved = time.perf_counter()
    with HttpClient() as client:
        fetched = fetch_and_verify(client, source, cache)
    verified = time.perf_counter()
    available = r.available()
    print(
        f"\nresolve 3.13.5 (bookworm + trixie indexes) {resolved - started:.2f}s, "
        f"fetch+verify {verified - resolved:.2f}s; available: "
        + ", ".join(f"{a.version}@{a.suite}" for a in available)
    )
    assert source.suite == "trixie"
    assert (
        source.tarball.sha256 == "93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640"
    )
    assert source.signer_fingerprint == "7169605F62C751356D054A26A821E680E5FA6305"
    assert fetched.result.primary_fingerprint == source.signer_fingerprint
    assert fetched.result.key_expired is not None  # Thomas Wouters' key expired 2026-07-02
    assert any(a.version == "3.11.2" and a.suite == "bookworm" for a in available)
    with pytest.raises(CPythonSourceError) as err:  # found in bookworm, but no .asc there
        r.resolve("3.11.2")
    assert err.value.reason == "cpython-unsigned" and "bookworm" in str(err.value)
