"""Detached OpenPGP signatures (CPython's ``.asc``) checked with gpgv against a pinned key.

>>> keyring_from_armored(Path("signing-key.asc"), Path("python.gpg"))       # doctest: +SKIP
('7169605F62C751356D054A26A821E680E5FA6305',)
>>> verify_detached(tarball, tarball_asc, Path("python.gpg"), PINNED)         # doctest: +SKIP
SignatureResult(fingerprint='7169...', primary_fingerprint='7169...', created=..., key_expired=...)

The rule: gpgv must report a good signature (VALIDSIG) whose signing key or
its primary key is the pinned fingerprint; any other key in the keyring does
not count.  What gpgv 2.2 reports, measured (see tests/unit/inputs/test_signature.py):

- A key that has expired since: ``KEYEXPIRED <when>``, ``EXPKEYSIG``, then
  ``VALIDSIG``, exit status 0.  Release managers' keys expire, and a signature
  made while the key was valid stays good, so this is accepted, but only when
  the signature was made before the expiry: gpgv reports a signature made
  *after* the key expired in exactly the same way (exit 0), so seal compares
  the VALIDSIG creation time with the KEYEXPIRED time itself.
- A revoked key: ``REVKEYSIG`` + ``VALIDSIG``, exit status 0 — rejected here.
  A key both revoked and expired is reported as ``EXPKEYSIG`` only, with no
  word of the revocation, so seal also reads the keyring's key listing
  (``gpg --show-keys``) and rejects a revoked primary key or signing subkey.
  Every revocation counts, whatever its stated reason.
- Tampered data: ``BADSIG``, exit 1.  A key missing from the keyring:
  ``ERRSIG`` + ``NO_PUBKEY``, exit 2.  Not a signature: ``NODATA``, exit 2.

A signature's creation time is what its signer wrote in it: the "made before
expiry" rule keeps out old keys used by mistake, not a thief holding the key.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from seal.daemon.errors import DaemonError

TIMEOUT = 60.0
FINGERPRINT_RE = re.compile(r"[0-9A-F]{40}|[0-9A-F]{64}")
_ENV = {"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


class SignatureError(DaemonError):
    """A detached signature is not a good one by the pinned key, or cannot be checked.

    ``reason`` tells which: ``signature-bad`` (the data or signature was changed),
    ``signature-wrong-key``, ``signature-no-pubkey``, ``signature-key-revoked``,
    ``signature-after-key-expiry``, ``signature-expired``, ``signature-unreadable``,
    ``signature-unverifiable``, ``keyring-invalid``, ``fingerprint-invalid``,
    ``gpgv-missing``, ``gpg-missing``, ``gpg-failed``.
    """

    reason = "signature-invalid"

    def __init__(self, message: str, *, reason: str | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        if reason is not None:
            self.reason = reason


@dataclass(frozen=True)
class SignatureResult:
    """A good signature by the pinned key.

    ``fingerprint`` is the key that signed (perhaps a subkey), ``primary_fingerprint``
    its primary key; ``key_expired`` is set when the key has expired since signing.
    """

    fingerprint: str
    primary_fingerprint: str
    created: datetime
    key_expired: datetime | None = None


@dataclass
class _Block:
    """The status lines gpgv gives for one signature (from one NEWSIG to the next)."""

    verdict: str = ""  # GOODSIG, EXPSIG, EXPKEYSIG, REVKEYSIG, BADSIG or ERRSIG
    key_id: str = ""
    validsig: list[str] = field(default_factory=list)
    errsig: list[str] = field(default_factory=list)
    no_pubkey: bool = False
    key_expired: list[int] = field(default_factory=list)


def normalize_fingerprint(fingerprint: str) -> str:
    """Upper-case hex without spaces; raises SignatureError unless it is a v4 or v5 fingerprint."""
    fpr = re.sub(r"\s+", "", fingerprint).upper().removeprefix("0X")
    if not FINGERPRINT_RE.fullmatch(fpr):
        raise SignatureError(
            f"{fingerprint!r} is not an OpenPGP key fingerprint",
            reason="fingerprint-invalid",
            hint="pin the full fingerprint (40 hex digits), not a short or long key id",
        )
    return fpr


def verify_detached(
    data_path: Path | str,
    sig_path: Path | str,
    keyring_path: Path | str,
    fingerprint: str,
    *,
    gpgv: str = "gpgv",
    gpg: str = "gpg",
    name: str | None = None,
) -> SignatureResult:
    """Check that ``sig_path`` is a good signature of ``data_path`` by the pinned key.

    Args:
        keyring_path: a binary keyring gpgv reads (see ``keyring_from_armored``).
        fingerprint: the pinned key: the primary key's or the signing subkey's fingerprint.
        name: what errors call the signature (default: ``sig_path``), e.g. its file name
            when the path is a store object's.

    Raises:
        SignatureError: with a ``reason`` naming what is wrong.
    """
    pinned = normalize_fingerprint(fingerprint)
    keyring = Path(keyring_path).resolve()  # gpgv looks a bare name up in its home directory
    if not keyring.is_file():
        raise SignatureError(f"keyring {keyring} does not exist", reason="keyring-invalid")
    with tempfile.TemporaryDirectory(prefix="seal-gpgv-") as home:
        cmd = [gpgv, "--homedir", home, "--status-fd", "1", "--keyring", str(keyring)]
        proc = _run([*cmd, "--", str(sig_path), str(data_path)], gpgv)
    blocks = _parse_status(proc.stdout.decode("utf-8", "replace"))
    good = [b for b in blocks if b.validsig and pinned in _fingerprints(b)]
    shown = name or sig_path
    if not good:
        raise _no_good_signature(blocks, pinned, shown, proc.stderr)
    result = _accept(good[0], shown)
    _check_not_revoked(keyring, result, shown, gpg)
    return result


def keyring_from_armored(
    asc_path: Path | str, keyring_path: Path | str, *, gpg: str = "gpg"
) -> tuple[str, ...]:
    """Turn an armored public key file into a binary keyring for gpgv; return its primary keys.

    The import runs in a throwaway GnuPG home, so ``~/.gnupg`` is never read or
    written; the keyring is replaced atomically.  Revocations and expiry dates
    in the file are kept.
    """
    target = Path(keyring_path)
    with tempfile.TemporaryDirectory(prefix="seal-gpg-") as home:
        base = [gpg, "--homedir", home, "--batch", "--no-autostart", "--no-tty"]
        # gpg exits 2 when one key of several fails to import: judge by what was imported
        imported = _run([*base, "--import", "--", str(asc_path)], gpg)
        listing = _run([*base, "--with-colons", "--list-keys"], gpg, check=True)
        fingerprints = _primary_fingerprints(listing.stdout.decode("utf-8", "replace"))
        if not fingerprints:
            detail = imported.stderr.decode("utf-8", "replace").strip().splitlines()
            raise SignatureError(
                f"{asc_path} holds no public key" + (f" ({detail[0]})" if detail else ""),
                reason="keyring-invalid",
            )
        exported = _run([*base, "--export", *fingerprints], gpg, check=True).stdout
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.write_bytes(exported)
    os.replace(tmp, target)
    return fingerprints


# -- gpgv's status lines ----------------------------------------------------------------------
def _parse_status(text: str) -> list[_Block]:
    blocks: list[_Block] = []
    for line in text.splitlines():
        if not line.startswith("[GNUPG:] "):
            continue
        keyword, *args = line.removeprefix("[GNUPG:] ").split()
        if keyword == "NEWSIG":
            blocks.append(_Block())
            continue
        if not blocks:  # NODATA and errors before any signature
            continue
        block = blocks[-1]
        if keyword in ("GOODSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG", "BADSIG", "ERRSIG"):
            block.verdict = keyword
            block.key_id = args[0] if args else ""
            if keyword == "ERRSIG":
                block.errsig = args
        elif keyword == "VALIDSIG":
            block.validsig = args
        elif keyword == "NO_PUBKEY":
            block.no_pubkey = True
        elif keyword == "KEYEXPIRED" and args and args[0].isdigit():
            block.key_expired.append(int(args[0]))
    return blocks


def _fingerprints(block: _Block) -> tuple[str, str]:
    """(signing key, primary key) from VALIDSIG; old gpg versions omit the primary."""
    signer = block.validsig[0].upper()
    primary = block.validsig[9].upper() if len(block.validsig) >= 10 else signer
    return signer, primary


def _timestamp(field_: str) -> datetime:
    """VALIDSIG's time: seconds since the epoch, or ISO 8601 basic (``20200601T000000``)."""
    if "T" in field_:
        return datetime.strptime(field_, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    return datetime.fromtimestamp(int(field_), UTC)


def _accept(block: _Block, sig_path: Path | str) -> SignatureResult:
    signer, primary = _fingerprints(block)
    created = _timestamp(block.validsig[2])
    if block.verdict == "REVKEYSIG":
        raise _revoked(primary, sig_path)
    if block.verdict == "EXPSIG":
        raise SignatureError(
            f"the signature {sig_path} by {primary} has expired", reason="signature-expired"
        )
    expired = None
    if block.verdict == "EXPKEYSIG":
        if not block.key_expired:
            raise SignatureError(
                f"gpgv says key {primary} has expired but not when; cannot tell whether "
                f"{sig_path} was made before",
                reason="signature-after-key-expiry",
            )
        expired = datetime.fromtimestamp(min(block.key_expired), UTC)
        if created >= expired:
            raise SignatureError(
                f"{sig_path} was made on {created:%Y-%m-%d %H:%M:%S} UTC, after key {primary} "
                f"expired on {expired:%Y-%m-%d %H:%M:%S} UTC",
                reason="signature-after-key-expiry",
                hint="a signature counts only if made while the key was valid",
            )
    elif block.verdict != "GOODSIG":
        raise SignatureError(
            f"gpgv gave VALIDSIG for {sig_path} with {block.verdict or 'no verdict'}",
            reason="signature-unverifiable",
        )
    return SignatureResult(signer, primary, created, expired)


def _no_good_signature(
    blocks: Sequence[_Block], pinned: str, sig_path: Path | str, stderr: bytes
) -> SignatureError:
    """The most telling error when no signature by the pinned key was good."""
    if not blocks:
        detail = stderr.decode("utf-8", "replace").strip().splitlines()
        return SignatureError(
            f"{sig_path} is not an OpenPGP signature"
            + (f" ({detail[0].removeprefix('gpgv: ')})" if detail else ""),
            reason="signature-unreadable",
        )
    for b in blocks:
        if b.verdict == "BADSIG":
            return SignatureError(
                f"BAD signature {sig_path} (key {b.key_id}): the file or the signature was changed",
                reason="signature-bad",
                hint="fetch both again; if it persists, the mirror serves altered files",
            )
    signers = sorted({_fingerprints(b)[1] for b in blocks if b.validsig})
    if signers:
        return SignatureError(
            f"{sig_path} is signed by {', '.join(signers)}, not by the pinned key {pinned}",
            reason="signature-wrong-key",
            hint="a good signature by another key in the keyring does not count",
        )
    for b in blocks:
        if b.no_pubkey:
            issuer = b.errsig[-1] if len(b.errsig) >= 7 else b.key_id
            return SignatureError(
                f"{sig_path} was made by key {issuer}, which is not in the keyring "
                f"(pinned: {pinned})",
                reason="signature-no-pubkey",
            )
    return SignatureError(
        f"gpgv cannot check {sig_path} (unsupported algorithm or damaged signature)",
        reason="signature-unverifiable",
    )


# -- revocation, from the keyring's listing ---------------------------------------------------
def _check_not_revoked(
    keyring: Path, result: SignatureResult, sig_path: Path | str, gpg: str
) -> None:
    """gpgv says nothing of the revocation of a key that has also expired: look for it."""
    with tempfile.TemporaryDirectory(prefix="seal-gpg-") as home:
        base = [gpg, "--homedir", home, "--batch", "--no-autostart", "--no-tty"]
        listing = _run([*base, "--with-colons", "--show-keys", str(keyring)], gpg, check=True)
    validity = _validities(listing.stdout.decode("utf-8", "replace"))
    primary = validity.get(result.primary_fingerprint)
    if primary is None:
        raise SignatureError(
            f"key {result.primary_fingerprint} is not in the keyring {keyring} gpg lists",
            reason="keyring-invalid",
        )
    if primary == "r" or validity.get(result.fingerprint) == "r":
        raise _revoked(result.primary_fingerprint, sig_path)


def _validities(colons: str) -> dict[str, str]:
    """Fingerprint -> validity letter (``r`` revoked, ``e`` expired, ...) of each key and subkey."""
    out: dict[str, str] = {}
    pending = ""
    for line in colons.splitlines():
        fields = line.split(":")
        if fields[0] in ("pub", "sub"):
            pending = fields[1]
        elif fields[0] == "fpr" and len(fields) > 9 and pending:
            out[fields[9].upper()] = pending
            pending = ""
    return out


def _primary_fingerprints(colons: str) -> tuple[str, ...]:
    out = []
    after_pub = False
    for line in colons.splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            after_pub = True
        elif fields[0] == "fpr" and after_pub and len(fields) > 9:
            out.append(fields[9].upper())
            after_pub = False
    return tuple(out)


def _revoked(fingerprint: str, sig_path: Path | str) -> SignatureError:
    return SignatureError(
        f"key {fingerprint}, which made {sig_path}, is revoked",
        reason="signature-key-revoked",
        hint="a revoked key's signatures are not trusted; pin the key that replaced it",
    )


def _run(cmd: list[str], tool: str, *, check: bool = False) -> subprocess.CompletedProcess[bytes]:
    try:
        proc = subprocess.run(
            cmd, capture_output=True, env=_ENV, timeout=TIMEOUT, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise SignatureError(
            f"{tool} not found: it is needed to check OpenPGP signatures",
            reason="gpgv-missing" if "gpgv" in tool else "gpg-missing",
            hint="install it: apt-get install gpgv gpg",
        ) from None
    except subprocess.TimeoutExpired:
        raise SignatureError(
            f"{tool} did not finish in {TIMEOUT:.0f} s", reason="gpg-failed"
        ) from None
    if check and proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SignatureError(
            f"{tool} failed (exit {proc.returncode})" + (f": {detail[-1]}" if detail else ""),
            reason="gpg-failed",
        )
    return proc
