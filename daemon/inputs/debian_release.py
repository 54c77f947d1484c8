"""A Debian archive's signed metadata: InRelease checked with gpgv, then its Packages indexes.

Trust flows one way: the InRelease is verified against the given keyring(s) and
only the text gpgv says was signed is parsed; every Packages index is checked
against the size and SHA-256 listed there before it is decompressed.

    release = fetch_release(getter, "https://deb.debian.org/debian", "bookworm")
    packages = fetch_packages(getter, release, "main", "amd64")
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Protocol

from ..errors import DaemonError

DEFAULT_MIRROR = "https://deb.debian.org/debian"
DEFAULT_SUITE = "bookworm"
DEFAULT_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


class Getter(Protocol):
    """What this module needs of HTTP: the body of a URL, raising when there is none (404)."""

    def get(self, url: str) -> bytes: ...


# ---------------------------------------------------------------------------- errors


class ReleaseError(DaemonError):
    """The archive's InRelease cannot be trusted or used."""

    reason = "debian-release-invalid"

    def __init__(self, message: str, *, reason: str | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        if reason is not None:
            self.reason = reason


class SignatureError(ReleaseError):
    """gpgv did not find a good signature by a trusted key on the InRelease."""

    reason = "debian-release-signature"


class IndexHashMismatch(DaemonError):
    """An index file's bytes differ from the size or SHA-256 its Release lists."""

    reason = "hash-mismatch"

    def __init__(self, artifact: str, url: str, expected: str, actual: str):
        super().__init__(
            f"{artifact} from {url} does not match its Release entry: "
            f"expected {expected}, got {actual}",
            hint="the mirror may be mid-update or tampered with; retry later or use another mirror",
            temporary=True,
        )
        self.artifact = artifact
        self.url = url
        self.expected = expected
        self.actual = actual


class IndexMissing(DaemonError, LookupError):
    """The Release lists no Packages index for this component and architecture."""

    reason = "debian-index-missing"


# ---------------------------------------------------------------------------- InRelease


@dataclass(frozen=True)
class Verified:
    """The text gpgv vouches for, and the primary-key fingerprints of its good signatures."""

    text: bytes
    signers: tuple[str, ...]


def verify_inrelease(
    data: bytes, keyrings: Sequence[Path | str] = (DEFAULT_KEYRING,), *, gpgv: str = "gpgv"
) -> Verified:
    """Check an InRelease's clearsigned signature with gpgv; return only the signed text.

    At least one signature must be good and made by a key in ``keyrings``
    (signatures by keys that are not there are ignored, as apt does: Debian
    signs with several keys). A bad, expired or revoked signature rejects it;
    so does a signature over MD5/SHA-1 only (apt refuses those too).

    Raises:
        SignatureError: unsigned, garbled, bad signature, weak digest, no trusted signer.
    """
    _check_clearsigned_shape(data)
    with tempfile.TemporaryDirectory(prefix="seal-gpgv-") as tmp:
        signed, out = os.path.join(tmp, "InRelease"), os.path.join(tmp, "Release")
        with open(signed, "wb") as f:
            f.write(data)
        cmd = [gpgv, "--homedir", tmp, "--status-fd", "1", "--output", out]
        for keyring in keyrings:
            cmd += ["--keyring", os.path.abspath(keyring)]
        try:
            proc = subprocess.run([*cmd, signed], capture_output=True, timeout=60)
        except FileNotFoundError:
            raise SignatureError(
                f"{gpgv} not found: it is needed to check Debian's InRelease signature",
                reason="gpgv-missing",
                hint="install it: apt-get install gpgv",
            ) from None
        except subprocess.TimeoutExpired:
            raise SignatureError("gpgv did not finish within 60 s", reason="gpgv-timeout") from None
        signers = _good_signers(proc.stdout.decode("utf-8", "replace"), proc.stderr)
        with open(out, "rb") as f:
            text = f.read()
    return Verified(text=text, signers=signers)


def _check_clearsigned_shape(data: bytes) -> None:
    """Refuse anything but exactly one clearsigned message with nothing around it."""
    head = b"-----BEGIN PGP SIGNED MESSAGE-----"
    if not data.startswith(head):
        raise SignatureError(
            "InRelease is not a clearsigned message (unsigned or garbled)",
            reason="debian-release-unsigned",
        )
    stripped = data.rstrip(b"\r\n")
    if data.count(head) != 1 or not stripped.endswith(b"-----END PGP SIGNATURE-----"):
        raise SignatureError(
            "InRelease holds more than one signed part or data after its signature",
            reason="debian-release-unsigned",
        )


# OpenPGP hash algorithm ids gpg reports in VALIDSIG that apt refuses: MD5, SHA-1, RIPEMD-160.
_WEAK_HASHES = {"1", "2", "3"}


def _good_signers(status: str, stderr: bytes) -> tuple[str, ...]:
    """The primary fingerprints of strong VALIDSIG lines; raise on any bad signature."""
    good: list[str] = []
    weak: list[str] = []
    missing: list[str] = []
    for line in status.splitlines():
        words = line.split()
        if len(words) < 3 or words[0] != "[GNUPG:]":
            continue
        kind = words[1]
        if kind in ("BADSIG", "EXPKEYSIG", "REVKEYSIG", "EXPSIG"):
            raise SignatureError(
                f"InRelease has a bad signature ({kind} from key {words[2]})",
                reason="debian-release-bad-signature",
                hint="the file was altered or the key is expired/revoked; do not use this mirror",
            )
        if kind == "VALIDSIG" and len(words) >= 12:
            (weak if words[9] in _WEAK_HASHES else good).append(words[11])
        elif kind == "NO_PUBKEY":
            missing.append(words[2])
    if good:
        return tuple(sorted(set(good)))
    if weak:
        raise SignatureError(
            f"InRelease is signed only with a weak digest (MD5/SHA-1) by {', '.join(weak)}",
            reason="debian-release-weak-digest",
            hint="the archive must sign with SHA-256 or stronger, as apt requires",
        )
    if missing:
        raise SignatureError(
            f"InRelease is signed only by keys not in the keyring: {', '.join(missing)}",
            reason="debian-release-untrusted-key",
            hint="pass the archive's keyring (e.g. /usr/share/keyrings/debian-archive-keyring.gpg)",
        )
    detail = stderr.decode("utf-8", "replace").strip().splitlines()
    raise SignatureError(
        "InRelease has no valid signature"
        + (f": {detail[-1].removeprefix('gpgv: ')}" if detail else ""),
        reason="debian-release-unsigned",
    )


# ---------------------------------------------------------------------------- Release


@dataclass(frozen=True)
class IndexFile:
    """One file a Release lists: path relative to ``dists/<suite>/``, size, SHA-256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Release:
    """The parsed, verified Release of one suite, and where it came from (for the lock)."""

    mirror: str
    suite: str
    codename: str
    date: datetime
    valid_until: datetime | None
    architectures: tuple[str, ...]
    components: tuple[str, ...]
    files: dict[str, IndexFile] = field(repr=False)
    dist: str = ""  # the name under dists/ it was fetched by (suite or codename)
    inrelease_url: str = ""
    inrelease_sha256: str = ""
    inrelease_size: int = 0
    signers: tuple[str, ...] = ()

    def dists_url(self, path: str) -> str:
        """The URL of ``path`` under this suite's ``dists/`` directory."""
        return f"{self.mirror}/dists/{self.dist or self.codename or self.suite}/{path}"


def parse_release(text: bytes | str, *, mirror: str = "") -> Release:
    """Parse the (already verified) Release text: the fields seal uses and the SHA256 list.

    Raises:
        ReleaseError: a required field is missing or malformed.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    fields = _release_fields(text)
    for name in ("Date", "SHA256"):
        if name not in fields:
            raise ReleaseError(f"Release has no {name} field")
    return Release(
        mirror=mirror.rstrip("/"),
        suite=fields.get("Suite", "").strip(),
        codename=fields.get("Codename", "").strip(),
        date=_parse_date(fields["Date"], "Date"),
        valid_until=_parse_date(fields["Valid-Until"], "Valid-Until")
        if "Valid-Until" in fields
        else None,
        architectures=tuple(fields.get("Architectures", "").split()),
        components=tuple(fields.get("Components", "").split()),
        files=_parse_sha256_list(fields["SHA256"]),
    )


def _release_fields(text: str) -> dict[str, str]:
    """The first stanza's fields; continuation lines are kept, joined by newlines."""
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        if line[0] in " \t":
            if key is None:
                raise ReleaseError(f"Release starts with a continuation line: {line!r}")
            fields[key] += "\n" + line.strip()
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise ReleaseError(f"Release has a line that is not a field: {line!r}")
        fields[key] = value.strip()
    return fields


def _parse_date(value: str, name: str) -> datetime:
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        raise ReleaseError(f"Release has a malformed {name}: {value!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _parse_sha256_list(value: str) -> dict[str, IndexFile]:
    files: dict[str, IndexFile] = {}
    for line in value.splitlines():
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or len(parts[0]) != 64 or not parts[1].isdigit():
            raise ReleaseError(f"Release has a malformed SHA256 line: {line!r}")
        digest, size, path = parts
        files[path] = IndexFile(path=path, size=int(size), sha256=digest.lower())
    return files


def check_valid_until(release: Release, now: datetime | None = None) -> None:
    """Reject a Release past its Valid-Until (a replayed, stale archive).

    Raises:
        ReleaseError: reason ``debian-release-expired``.
    """
    now = now or datetime.now(UTC)
    if release.valid_until is not None and now > release.valid_until:
        raise ReleaseError(
            f"Release of {release.codename or release.suite} expired at "
            f"{release.valid_until.isoformat()} (now {now.isoformat(timespec='seconds')})",
            reason="debian-release-expired",
            hint="the mirror is stale; for a snapshot mirror turn the Valid-Until check off",
        )


def fetch_release(
    getter: Getter,
    mirror: str = DEFAULT_MIRROR,
    suite: str = DEFAULT_SUITE,
    keyrings: Sequence[Path | str] = (DEFAULT_KEYRING,),
    *,
    check_expiry: bool = True,
    now: datetime | None = None,
) -> Release:
    """Download, verify and parse ``dists/<suite>/InRelease``.

    ``check_expiry=False`` is for snapshot mirrors, whose old Releases are past
    their Valid-Until by design.

    Raises:
        SignatureError, ReleaseError: see ``verify_inrelease``, ``parse_release``;
            also when the Release is for another suite than asked.
    """
    mirror = mirror.rstrip("/")
    url = f"{mirror}/dists/{suite}/InRelease"
    data = getter.get(url)
    verified = verify_inrelease(data, keyrings)
    release = parse_release(verified.text, mirror=mirror)
    if suite not in (release.suite, release.codename):
        raise ReleaseError(
            f"{url} is for suite {release.suite!r} (codename {release.codename!r}), not {suite!r}",
            reason="debian-release-suite-mismatch",
        )
    if check_expiry:
        check_valid_until(release, now)
    return dataclasses.replace(
        release,
        dist=suite,
        inrelease_url=url,
        inrelease_sha256=hashlib.sha256(data).hexdigest(),
        inrelease_size=len(data),
        signers=verified.signers,
    )
