"""Detached signatures checked with gpgv, against throwaway keys made with ``gpg --batch``.

Keys "from the past" are made with ``--faked-system-time``: gpg then dates the
key, its self-signatures and the signatures it makes at that time, and gpgv,
run today, sees them as it would a release manager's key that has expired since.
"""

from __future__ import annotations

import lzma
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from seal.daemon.inputs.signature import (
    SignatureError,
    keyring_from_armored,
    verify_detached,
)

pytestmark = pytest.mark.skipif(
    shutil.which("gpg") is None or shutil.which("gpgv") is None,
    reason="gpg and gpgv are needed (apt-get install gpg gpgv)",
)

T2020 = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp())
JUNE_2020 = int(datetime(2020, 6, 1, tzinfo=UTC).timestamp())
DEC_2020 = int(datetime(2020, 12, 1, tzinfo=UTC).timestamp())
T2022 = int(datetime(2022, 1, 1, tzinfo=UTC).timestamp())


class Gpg:
    """A throwaway GnuPG home (short path: gpg-agent's socket lives in it)."""

    def __init__(self, home: Path):
        self.home = home

    def run(self, *args: str, at: int | None = None) -> str:
        cmd = ["gpg", "--homedir", str(self.home), "--batch", "--no-tty", "--passphrase", ""]
        cmd += ["--pinentry-mode", "loopback"]
        if at is not None:
            cmd += ["--faked-system-time", f"{at}!"]
        proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def new_key(self, uid: str, *, usage: str = "sign", expire: str = "never", at=None) -> str:
        self.run("--quick-gen-key", uid, "ed25519", usage, expire, at=at)
        return self.fingerprint(uid)

    def fingerprint(self, uid: str, *, subkey: bool = False) -> str:
        fprs = [
            line.split(":")[9]
            for line in self.run("--with-colons", "--list-keys", f"={uid}").splitlines()
            if line.startswith("fpr:")
        ]
        return fprs[-1] if subkey else fprs[0]

    def sign(self, key: str, data: Path, out: Path, *, at: int | None = None) -> Path:
        self.run("--local-user", f"{key}!", "--detach-sign", "--output", str(out), str(data), at=at)
        return out

    def revoke(self, fpr: str) -> None:
        cert = (self.home / "openpgp-revocs.d" / f"{fpr}.rev").read_text()
        rev = self.home / "rev.asc"
        rev.write_text(cert.replace(":-----BEGIN", "-----BEGIN"))  # gpg guards it with a colon
        self.run("--import", str(rev))

    def export_armored(self, out: Path, *fprs: str) -> Path:
        out.write_text(self.run("--armor", "--export", *fprs))
        return out

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"], check=False)
        shutil.rmtree(self.home, ignore_errors=True)


@dataclass
class Keys:
    dir: Path
    data: Path
    keyring: Path  # every key but the stranger's
    good: str
    other: str
    stranger: str
    old: str  # created 2020 with a one-year expiry
    late: str  # created 2020, later set to expire on 2021-01-01
    revoked: str
    old_revoked: str  # expired, then revoked
    primary: str  # certify-only primary ...
    subkey: str  # ... with a signing subkey
    sigs: dict[str, Path]


@pytest.fixture(scope="module")
def keys() -> Iterator[Keys]:
    gpg = Gpg(Path(tempfile.mkdtemp(prefix="sg")))
    work = Path(tempfile.mkdtemp(prefix="seal-sig-"))
    try:
        yield _make_keys(gpg, work)
    finally:
        gpg.close()
        shutil.rmtree(work, ignore_errors=True)


def _make_keys(gpg: Gpg, work: Path) -> Keys:
    data = work / "Python-3.13.5.tar.xz"
    data.write_bytes(b"not really a tarball\n" * 100)
    good = gpg.new_key("Good RM <good@example.org>")
    other = gpg.new_key("Other <other@example.org>")
    stranger = gpg.new_key("Stranger <stranger@example.org>")
    old = gpg.new_key("Old RM <old@example.org>", expire="1y", at=T2020)
    late = gpg.new_key("Late RM <late@example.org>", at=T2020)
    revoked = gpg.new_key("Revoked <revoked@example.org>")
    old_revoked = gpg.new_key("Old revoked <oldrev@example.org>", expire="1y", at=T2020)
    primary = gpg.new_key("Sub RM <sub@example.org>", usage="cert", at=T2020)
    gpg.run("--quick-add-key", primary, "ed25519", "sign", "never", at=T2020)
    subkey = gpg.fingerprint("Sub RM <sub@example.org>", subkey=True)

    def sign(name: str, key: str, at: int | None = None) -> tuple[str, Path]:
        return name, gpg.sign(key, data, work / f"{name}.sig", at=at)

    sigs = dict(
        [
            sign("good", good),
            sign("other", other),
            sign("stranger", stranger),
            sign("old", old, at=JUNE_2020),
            sign("late_before", late, at=JUNE_2020),
            sign("late_after", late, at=T2022),
            sign("revoked", revoked),
            sign("old_revoked", old_revoked, at=JUNE_2020),
            sign("subkey", subkey, at=JUNE_2020),
        ]
    )
    # The late key gets an expiry after it signed in 2022: that signature was made after it.
    gpg.run("--quick-set-expire", late, "2021-01-01", at=DEC_2020)
    gpg.revoke(revoked)
    gpg.revoke(old_revoked)
    trusted = [good, other, old, late, revoked, old_revoked, primary]
    armored = gpg.export_armored(work / "signing-key.asc", *trusted)
    keyring = work / "trusted.gpg"
    assert sorted(keyring_from_armored(armored, keyring)) == sorted(trusted)
    return Keys(
        work, data, keyring, good, other, stranger, old, late, revoked, old_revoked,
        primary, subkey, sigs,
    )  # fmt: skip


def verify(keys: Keys, sig: str, fingerprint: str, data: Path | None = None):
    return verify_detached(data or keys.data, keys.sigs[sig], keys.keyring, fingerprint)


def reason(keys: Keys, sig: str, fingerprint: str, data: Path | None = None) -> str:
    with pytest.raises(SignatureError) as info:
        verify(keys, sig, fingerprint, data)
    return info.value.reason


class TestAccepted:
    def test_a_good_signature_by_the_pinned_key(self, keys: Keys):
        result = verify(keys, "good", keys.good)
        assert result.fingerprint == result.primary_fingerprint == keys.good
        assert result.key_expired is None
        assert abs((datetime.now(UTC) - result.created).total_seconds()) < 600

    def test_the_pin_may_be_spelled_with_spaces_and_lower_case(self, keys: Keys):
        spaced = " ".join(keys.good[i : i + 4] for i in range(0, 40, 4)).lower()
        assert verify(keys, "good", spaced).primary_fingerprint == keys.good

    def test_an_expired_key_whose_signature_was_made_before_expiry(self, keys: Keys):
        result = verify(keys, "old", keys.old)
        assert result.created == datetime.fromtimestamp(JUNE_2020, UTC)
        assert result.key_expired is not None
        assert result.created < result.key_expired < datetime(2021, 1, 2, tzinfo=UTC)

    def test_a_signing_subkey_of_the_pinned_primary_key(self, keys: Keys):
        result = verify(keys, "subkey", keys.primary)
        assert (result.primary_fingerprint, result.fingerprint) == (keys.primary, keys.subkey)
        assert result.key_expired is None

    def test_a_signature_made_before_the_expiry_set_later(self, keys: Keys):
        assert verify(keys, "late_before", keys.late).key_expired is not None


class TestRejected:
    def test_tampered_data(self, keys: Keys):
        tampered = keys.dir / "tampered.tar.xz"
        tampered.write_bytes(keys.data.read_bytes() + b"!")
        assert reason(keys, "good", keys.good, tampered) == "signature-bad"

    def test_a_good_signature_by_another_trusted_key(self, keys: Keys):
        assert reason(keys, "other", keys.good) == "signature-wrong-key"

    def test_the_right_signature_but_another_pinned_fingerprint(self, keys: Keys):
        assert reason(keys, "good", keys.other) == "signature-wrong-key"

    def test_a_key_that_is_not_in_the_keyring(self, keys: Keys):
        assert reason(keys, "stranger", keys.stranger) == "signature-no-pubkey"

    def test_a_signature_made_after_the_key_expired(self, keys: Keys):
        # gpgv itself reports this one exactly like the good one before it (EXPKEYSIG +
        # VALIDSIG, exit 0): seal compares the times.
        assert reason(keys, "late_after", keys.late) == "signature-after-key-expiry"

    def test_a_revoked_key(self, keys: Keys):
        assert reason(keys, "revoked", keys.revoked) == "signature-key-revoked"

    def test_an_expired_and_revoked_key(self, keys: Keys):
        # gpgv says EXPKEYSIG and nothing of the revocation: seal reads the key listing.
        assert reason(keys, "old_revoked", keys.old_revoked) == "signature-key-revoked"

    def test_not_a_signature(self, keys: Keys):
        keys.sigs["junk"] = keys.dir / "junk.sig"
        keys.sigs["junk"].write_text("hello\n")
        assert reason(keys, "junk", keys.good) == "signature-unreadable"

    @pytest.mark.parametrize("pin", ["", "DEADBEEF", "0x" + "A" * 16, "G" * 40])
    def test_a_pin_that_is_not_a_fingerprint(self, keys: Keys, pin: str):
        assert reason(keys, "good", pin) == "fingerprint-invalid"

    def test_a_missing_keyring(self, keys: Keys, tmp_path: Path):
        with pytest.raises(SignatureError) as info:
            verify_detached(keys.data, keys.sigs["good"], tmp_path / "none.gpg", keys.good)
        assert info.value.reason == "keyring-invalid"


class TestKeyring:
    def test_a_file_without_keys(self, tmp_path: Path):
        (tmp_path / "empty.asc").write_text("not a key\n")
        with pytest.raises(SignatureError) as info:
            keyring_from_armored(tmp_path / "empty.asc", tmp_path / "k.gpg")
        assert info.value.reason == "keyring-invalid"
        assert not (tmp_path / "k.gpg").exists()

    def test_the_users_gnupg_home_is_not_touched(
        self, keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ):
        monkeypatch.setenv("HOME", str(tmp_path))
        monkeypatch.setenv("GNUPGHOME", str(tmp_path / "gnupg"))
        armored = keys.dir / "signing-key.asc"
        keyring_from_armored(armored, tmp_path / "k.gpg")
        verify_detached(keys.data, keys.sigs["good"], tmp_path / "k.gpg", keys.good)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["k.gpg"]


# -- the real thing -------------------------------------------------------------------------------
MIRROR = "http://deb.debian.org/debian/pool/main/p/python3.13"
THOMAS_WOUTERS = "7169605F62C751356D054A26A821E680E5FA6305"  # 3.12 and 3.13 release manager


@pytest.mark.network
def test_cpython_3_13_5_from_the_debian_mirror_with_its_expired_key(tmp_path: Path):
    """debian/upstream/signing-key.asc expired on 2026-07-02; 3.13.5 was signed in 2025."""

    def get(name: str) -> Path:
        out = tmp_path / name
        with urllib.request.urlopen(f"{MIRROR}/{name}", timeout=120) as resp:
            out.write_bytes(resp.read())
        return out

    debian = get("python3.13_3.13.5-2.debian.tar.xz")
    with lzma.open(debian) as xz, tarfile.open(fileobj=xz) as tar:
        member = tar.extractfile("debian/upstream/signing-key.asc")
        assert member is not None
        (tmp_path / "signing-key.asc").write_bytes(member.read())
    keyring = tmp_path / "python.gpg"
    assert keyring_from_armored(tmp_path / "signing-key.asc", keyring) == (THOMAS_WOUTERS,)
    tarball = get("python3.13_3.13.5.orig.tar.xz")
    result = verify_detached(tarball, get(f"{tarball.name}.asc"), keyring, THOMAS_WOUTERS)
    assert result.created < datetime(2026, 7, 2, tzinfo=UTC)
    assert result.key_expired is not None  # expired since: still good
