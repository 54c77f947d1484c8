"""CPython's source for an exact ``X.Y.Z``: found on the Debian mirror, pinned, upstream-signed.

    resolver = CPythonResolver(getter)                    # bookworm, trixie, sid
    source = resolver.resolve("3.13.5", work_dir)         # pins; no 20 MB download
    fetched = fetch_and_verify(client, source, cache_dir) # downloads, checks hash + signature

python.org is not reachable from every site, so the tarball comes from the
Debian archive, which ships upstream's bytes as ``pythonX.Y_X.Y.Z.orig.tar.xz``
with upstream's detached signature next to it (``.orig.tar.xz.asc``) and the
release manager's key in the source package (``debian/upstream/signing-key.asc``
inside ``pythonX.Y_<debian version>.debian.tar.xz``).  The chain of trust:

1. the suite's InRelease, verified with gpgv against the Debian archive keyring;
2. ``main/source/Sources.xz``, checked against the Release before decompression;
3. the orig tarball, its ``.asc`` and the debian.tar.xz, pinned by the SHA-256
   and size that Sources lists;
4. the ``.asc`` must be a good signature by the fingerprint pinned *in this module*
   for the minor version (``RELEASE_MANAGERS``).  The key from debian.tar.xz only
   supplies the key material: a key with another fingerprint is refused.

The pinned signing-key artifact is the debian.tar.xz itself (a file on the
mirror with a SHA-256 from the verified index, so the fetch step stores it like
any other input and an offline verifier can redo the extraction), together with
the SHA-256 of the extracted armored key (so the lock's diff shows when the key
changes, not only the packaging).  Neither is the trust anchor: the fingerprint is.

What the mirror carries (measured 2026-11-26): bookworm 3.11.2 (an ``.orig.tar.gz``
equal to python.org's ``Python-3.11.2.tgz``, but no ``.asc`` and no signing key),
trixie 3.13.5 (``.asc`` + key), forky/sid 3.13.x, 3.14.x, 3.15.x (3.14 and later
without ``.asc``: PEP 761 ended OpenPGP signatures; they are Sigstore-only).
A version without an upstream signature is refused (reason ``cpython-unsigned``).
"""

from __future__ import annotations

import hashlib
import io
import lzma
import re
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from ..errors import DaemonError
from .debian_closure import compare_versions
from .debian_packages import (
    FASTEST,
    SMALLEST,
    Prefetch,
    best_entry,
    fetch_index,
    field_lines,
    prefetch_url,
    stanza_start,
    stanza_text,
)
from .debian_release import (
    DEFAULT_KEYRING,
    DEFAULT_MIRROR,
    Getter,
    IndexFile,
    Release,
    ReleaseError,
    fetch_release,
)
from .http import HttpClient, HttpError
from .signature import SignatureResult, keyring_from_armored, verify_detached

PYTHON_ORG = "https://www.python.org/ftp/python"
DEFAULT_SUITES = ("bookworm", "trixie", "sid")
SIGNING_KEY_MEMBER = "debian/upstream/signing-key.asc"
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")
_PACKAGE = rb"python\d+\.\d+"  # the source packages of CPython, for scan_sources
_TARBALL_SUFFIXES = {".tar.xz": ".tar.xz", ".tar.gz": ".tgz"}  # Debian's -> python.org's


# ---------------------------------------------------------------------------- signers


@dataclass(frozen=True)
class Signer:
    """The release manager whose OpenPGP key signs a minor version's source tarballs."""

    name: str
    fingerprint: str
    source: str  # where this fact was read


_PGP_PAGE = "https://www.python.org/downloads/metadata/pgp/ (key ids)"
_DOCKER = "docker-library/python Dockerfiles, GPG_KEY (full fingerprint)"
_LANGA = Signer(
    "Łukasz Langa", "E3FF2839C048B25C084DEBE9B26995E310250568", f"{_PGP_PAGE}; {_DOCKER}"
)
_GALINDO = Signer(
    "Pablo Galindo Salgado", "A035C8C19219BA821ECEA86B64E628F8D684696D", f"{_PGP_PAGE}; {_DOCKER}"
)
_WOUTERS = Signer(
    "Thomas Wouters",
    "7169605F62C751356D054A26A821E680E5FA6305",
    f"{_PGP_PAGE}; {_DOCKER}; Debian python3.13 debian/upstream/signing-key.asc",
)

# Minor version -> signer.  3.14 and later have no OpenPGP signatures at all
# (PEP 761: Sigstore only), so there is nothing to pin for them here.
RELEASE_MANAGERS: Mapping[str, Signer] = MappingProxyType(
    {
        "3.8": _LANGA,
        "3.9": _LANGA,
        "3.10": _GALINDO,
        "3.11": _GALINDO,
        "3.12": _WOUTERS,
        "3.13": _WOUTERS,
    }
)


# ---------------------------------------------------------------------------- errors


class CPythonSourceError(DaemonError):
    """The CPython source for a version cannot be found, pinned or trusted.

    ``reason``: ``cpython-version-invalid``, ``cpython-version-unknown``,
    ``cpython-signer-unknown``, ``cpython-unsigned``, ``cpython-repacked``,
    ``cpython-signing-key-missing``, ``cpython-signing-key-mismatch``,
    ``cpython-hash-mismatch``, ``cpython-download-failed``.
    """

    reason = "cpython-source"

    def __init__(self, message: str, *, reason: str | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        if reason is not None:
            self.reason = reason


# ---------------------------------------------------------------------------- values


@dataclass(frozen=True)
class PinnedArtifact:
    """A file by name, where to get it (first URL first), its SHA-256 (hex) and size."""

    filename: str
    urls: tuple[str, ...]
    sha256: str
    size: int


@dataclass(frozen=True)
class CPythonSource:
    """The pinned CPython source of one version (what the lock records)."""

    version: str
    tarball: PinnedArtifact
    signature: PinnedArtifact
    signing_key: PinnedArtifact  # the debian.tar.xz holding SIGNING_KEY_MEMBER
    signing_key_sha256: str  # of the armored key extracted from it
    signer_fingerprint: str
    signer_name: str
    suite: str
    debian_version: str
    inrelease_url: str
    inrelease_sha256: str


@dataclass(frozen=True)
class SourceFile:
    """One file of a source package, from ``Checksums-Sha256``."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class SourcePackage:
    """One stanza of a Sources index, reduced to what pinning needs."""

    name: str
    version: str
    directory: str
    files: tuple[SourceFile, ...] = field(repr=False)

    @property
    def upstream_version(self) -> str:
        """The version without epoch and Debian revision: ``1:3.13.5-2+b1`` -> ``3.13.5``."""
        version = self.version.split(":", 1)[-1]
        return version.rsplit("-", 1)[0] if "-" in version else version

    def file(self, name: str) -> SourceFile | None:
        return next((f for f in self.files if f.name == name), None)


@dataclass(frozen=True)
class Available:
    """A CPython version a suite carries, and whether it can be locked from there."""

    version: str
    suite: str
    debian_version: str
    signed: bool  # an .orig.tar.*.asc is listed
    repacked: bool  # the orig tarball is not upstream's (e.g. +dfsg)


@dataclass(frozen=True)
class VerifiedSource:
    """Downloaded, hash-checked and signature-checked files of a CPythonSource."""

    tarball: Path
    signature: Path
    keyring: Path
    result: SignatureResult


# ---------------------------------------------------------------------------- Sources index


def parse_sources(
    text: bytes | str, *, want: Callable[[str], bool] | None = None, where: str = "Sources"
) -> list[SourcePackage]:
    """Parse a Sources index (only the stanzas whose Package ``want`` accepts), in file order.

    Raises:
        CPythonSourceError: a kept stanza lacks Version, Directory or Checksums-Sha256.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    out = []
    for stanza in text.split("\n\n"):
        name = _package_name(stanza)
        if name and (want is None or want(name)):
            out.append(_parse_source_stanza(name, stanza, where))
    return out


def _package_name(stanza: str) -> str:
    for line in stanza.lstrip("\n").split("\n", 3)[:3]:  # Package comes first in practice
        if line.startswith("Package:"):
            return line[8:].strip()
    match = re.search(r"^Package:[ \t]*(\S+)", stanza, re.M)
    return match.group(1) if match else ""


def _parse_source_stanza(name: str, stanza: str, where: str) -> SourcePackage:
    fields: dict[str, str] = {}
    key = ""
    for line in stanza.split("\n"):
        if line[:1] in (" ", "\t"):
            if key:
                fields[key] += "\n" + line.strip()
        elif line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    missing = [k for k in ("Version", "Directory", "Checksums-Sha256") if not fields.get(k)]
    if missing:
        raise CPythonSourceError(
            f"{where}: source package {name} has no {', '.join(missing)} field",
            reason="debian-index-invalid",
        )
    files = tuple(
        _source_file(line, name, where) for line in fields["Checksums-Sha256"].splitlines() if line
    )
    return SourcePackage(name, fields["Version"], fields["Directory"].strip("/"), files)


def _source_file(line: str, name: str, where: str) -> SourceFile:
    parts = line.split()
    if len(parts) != 3 or len(parts[0]) != 64 or not parts[1].isdigit():
        raise CPythonSourceError(
            f"{where}: source package {name} has a malformed Checksums-Sha256 line: {line!r}",
            reason="debian-index-invalid",
        )
    return SourceFile(name=parts[2], size=int(parts[1]), sha256=parts[0].lower())


def scan_sources(text: bytes, name: bytes, *, where: str = "Sources") -> list[SourcePackage]:
    """The stanzas of a Sources index whose Package matches the regex ``name``, in file order.

    Only those stanzas are decoded and parsed (one regex pass finds them), which
    for trixie's 57 MB index is ~0.05 s instead of ~0.4 s for ``parse_sources``.

    Raises:
        CPythonSourceError: a kept stanza lacks Version, Directory or Checksums-Sha256.
    """
    out = []
    for match in field_lines(text, b"Package", name):
        stanza = stanza_text(text, stanza_start(text, match.start())).decode("utf-8")
        out.append(_parse_source_stanza(match.group(1).decode(), stanza.strip("\n"), where))
    return out


def sources_entry(
    release: Release, component: str = "main", order: Sequence[str] = SMALLEST
) -> IndexFile:
    """The Release's entry for ``<component>/source/Sources`` (first form in ``order``).

    Raises:
        IndexMissing: the Release lists no Sources index for the component.
    """
    return best_entry(release, f"{component}/source/Sources", order=order)


def fetch_sources(
    getter: Getter,
    release: Release,
    component: str = "main",
    *,
    want: Callable[[str], bool] | None = None,
) -> list[SourcePackage]:
    """Download a Sources index, check it against the Release, then parse it.

    Nothing is decompressed before the compressed bytes match their entry; the
    decompressed bytes must match the plain entry too when the Release lists it.

    Raises:
        IndexMissing, IndexHashMismatch, CPythonSourceError.
    """
    entry = sources_entry(release, component)
    text, url = fetch_index(getter, release, entry)
    return parse_sources(text, want=want, where=url)


# ---------------------------------------------------------------------------- versions


def parse_version(version: str) -> tuple[int, int, int]:
    """``"3.13.5"`` -> ``(3, 13, 5)``; raises CPythonSourceError for anything else."""
    match = _VERSION.fullmatch(version.strip())
    if not match:
        raise CPythonSourceError(
            f"python_version {version!r} is not an exact X.Y.Z version",
            reason="cpython-version-invalid",
            hint="pin a final release, e.g. 3.13.5",
        )
    major, minor, micro = (int(g) for g in match.groups())
    return major, minor, micro


def signer_for(version: str, signers: Mapping[str, Signer] = RELEASE_MANAGERS) -> Signer:
    """The pinned signer of ``version``'s minor series.

    Raises:
        CPythonSourceError: reason ``cpython-signer-unknown``, naming the known ones.
    """
    major, minor, _ = parse_version(version)
    series = f"{major}.{minor}"
    signer = signers.get(series)
    if signer is not None:
        return signer
    known = ", ".join(
        f"{s} {signers[s].fingerprint} ({signers[s].name})"
        for s in sorted(signers, key=_version_key)
    )
    sigstore = " (3.14 and later are signed with Sigstore only, PEP 761)" if minor >= 14 else ""
    raise CPythonSourceError(
        f"no OpenPGP signer is pinned for CPython {series}{sigstore}; known: {known or 'none'}",
        reason="cpython-signer-unknown",
        hint="use a version whose series has a pinned release-manager key",
    )


def _orig_files(package: SourcePackage) -> tuple[SourceFile | None, SourceFile | None]:
    """The package's orig tarball and its ``.asc`` (each None when not listed)."""
    prefix = f"{package.name}_{package.upstream_version}.orig.tar."
    tarball = next(
        (f for f in package.files if f.name.startswith(prefix) and not f.name.endswith(".asc")),
        None,
    )
    asc = package.file(tarball.name + ".asc") if tarball else None
    return tarball, asc


def python_org_urls(version: str, suffix: str = ".tar.xz", base: str = PYTHON_ORG) -> list[str]:
    """python.org's tarball URL, then its ``.asc`` (for ``.tar.xz``/``.tgz``)."""
    parse_version(version)
    tarball = f"{base.rstrip('/')}/{version}/Python-{version}{suffix}"
    return [tarball, tarball + ".asc"]


# ---------------------------------------------------------------------------- resolving


class CPythonResolver:
    """Finds and pins CPython sources in the configured suites of one mirror (caches indexes)."""

    def __init__(
        self,
        getter: Getter,
        *,
        mirror: str = DEFAULT_MIRROR,
        suites: Sequence[str] = DEFAULT_SUITES,
        keyrings: Sequence[Path | str] = (DEFAULT_KEYRING,),
        signers: Mapping[str, Signer] = RELEASE_MANAGERS,
        python_org: str | None = PYTHON_ORG,
        check_expiry: bool = True,
        now: datetime | None = None,
    ):
        self.getter = getter
        self.mirror = mirror.rstrip("/")
        self.suites = tuple(suites)
        self.keyrings = tuple(keyrings)
        self.signers = signers
        self.python_org = python_org
        self.check_expiry = check_expiry
        self.now = now
        self._suites: dict[str, tuple[Release, list[SourcePackage]]] = {}
        self.unverified: dict[str, ReleaseError] = {}  # suites skipped, and why

    def packages(self, suite: str) -> tuple[Release, list[SourcePackage]]:
        """The verified Release of ``suite`` and its ``pythonX.Y`` source packages (cached).

        Raises:
            ReleaseError (also for a suite that failed before), IndexHashMismatch, ...
        """
        if suite in self.unverified:
            raise self.unverified[suite]
        if suite not in self._suites:
            # the index is fetched while the InRelease is verified (checked against it after)
            path = f"main/source/Sources{FASTEST[0]}"
            prefetched = Prefetch(self.getter, prefetch_url(self.mirror, suite, path))
            try:
                release = fetch_release(
                    self.getter,
                    self.mirror,
                    suite,
                    self.keyrings,
                    check_expiry=self.check_expiry,
                    now=self.now,
                )
            except ReleaseError as e:
                self.unverified[suite] = e
                raise
            entry = sources_entry(release, order=FASTEST)
            text, url = fetch_index(self.getter, release, entry, prefetched)
            self._suites[suite] = (release, scan_sources(text, _PACKAGE, where=url))
        return self._suites[suite]

    def _verified(self) -> Iterator[tuple[Release, list[SourcePackage]]]:
        """Each configured suite whose InRelease verifies, in order; the others are noted.

        A suite that cannot be trusted (bad signature, past Valid-Until) is skipped
        and named in ``unverified``: nothing of it is used.  When no suite verifies,
        the first error is raised.  A Sources hash mismatch is never skipped.
        """
        for suite in self.suites:
            try:
                yield self.packages(suite)
            except ReleaseError:
                continue
        if self.suites and len(self.unverified) == len(self.suites):
            raise self.unverified[self.suites[0]]

    def available(self) -> list[Available]:
        """Every CPython version the verified suites carry, by version then suite order."""
        out = []
        for release, packages in self._verified():
            for package in packages:
                tarball, asc = _orig_files(package)
                plain = _VERSION.fullmatch(package.upstream_version) is not None
                out.append(
                    Available(
                        version=package.upstream_version,
                        suite=release.dist,
                        debian_version=package.version,
                        signed=asc is not None,
                        repacked=tarball is None or not plain,
                    )
                )
        return sorted(out, key=lambda a: (_version_key(a.version), self.suites.index(a.suite)))

    def find(self, version: str) -> tuple[Release, SourcePackage]:
        """The first verified suite (in order) whose ``pythonX.Y`` has upstream ``version``.

        Raises:
            CPythonSourceError: ``cpython-version-unknown`` listing what the suites carry,
                ``cpython-repacked`` when only a repacked tarball has that version.
        """
        major, minor, _ = parse_version(version)
        name = f"python{major}.{minor}"
        for release, packages in self._verified():
            matches = [p for p in packages if p.name == name and p.upstream_version == version]
            if matches:
                best = matches[0]
                for p in matches[1:]:
                    if compare_versions(p.version, best.version) > 0:
                        best = p
                return release, best
        raise self._unknown(version, name)

    def _unknown(self, version: str, name: str) -> CPythonSourceError:
        available = self.available()
        repacked = [a for a in available if a.version.startswith(version + "+")]
        if repacked:
            a = repacked[0]
            return CPythonSourceError(
                f"CPython {version} is on the Debian mirror only as a repacked tarball "
                f"({name} {a.debian_version} in {a.suite}): upstream's signature cannot verify it",
                reason="cpython-repacked",
                hint="pick another version or a suite with the pristine upstream tarball",
            )
        skipped = "".join(
            f"; {suite} not searched: {error.message}" for suite, error in self.unverified.items()
        )
        return CPythonSourceError(
            f"CPython {version} is not on the Debian mirror (suites {', '.join(self.suites)}); "
            f"available: {describe_available(available)}{skipped}",
            reason="cpython-version-unknown",
            hint="pin one of the available versions, or add a suite that carries it",
        )

    def resolve(self, version: str, work_dir: Path | str | None = None) -> CPythonSource:
        """Find, pin and check ``version``'s source (downloads the small debian.tar.xz only).

        The key in the debian.tar.xz must hold the pinned fingerprint; the tarball's
        signature itself is checked by ``verify_source`` once the tarball is fetched.

        Raises:
            CPythonSourceError, SignatureError, ReleaseError, IndexHashMismatch.
        """
        signer = signer_for(version, self.signers)
        release, package = self.find(version)
        tarball, asc = _orig_files(package)
        where = f"{package.name} {package.version} in {release.dist}"
        if tarball is None:
            raise CPythonSourceError(
                f"{where} lists no {package.name}_{version}.orig.tar.* file",
                reason="cpython-repacked",
            )
        if asc is None:
            raise CPythonSourceError(
                f"CPython {version} ({where}) has no upstream signature ({tarball.name}.asc) "
                "on the Debian mirror",
                reason="cpython-unsigned",
                hint=f"signed ones: {describe_available(self.available(), signed_only=True)}",
            )
        debian = self._debian_tar(package, where)
        key_sha256 = self._check_key(debian, package, signer, work_dir)
        return CPythonSource(
            version=version,
            tarball=self._pin(package, tarball, version),
            signature=self._pin(package, asc, version),
            signing_key=self._pin(package, debian, None),
            signing_key_sha256=key_sha256,
            signer_fingerprint=signer.fingerprint,
            signer_name=signer.name,
            suite=release.codename or release.dist,
            debian_version=package.version,
            inrelease_url=release.inrelease_url,
            inrelease_sha256=release.inrelease_sha256,
        )

    def _debian_tar(self, package: SourcePackage, where: str) -> SourceFile:
        debian = package.file(f"{package.name}_{package.version.split(':', 1)[-1]}.debian.tar.xz")
        if debian is None:
            raise CPythonSourceError(
                f"{where} lists no .debian.tar.xz, so no {SIGNING_KEY_MEMBER}",
                reason="cpython-signing-key-missing",
            )
        return debian

    def _check_key(
        self,
        debian: SourceFile,
        package: SourcePackage,
        signer: Signer,
        work_dir: Path | str | None,
    ) -> str:
        """Fetch the debian.tar.xz, check it, and make sure its key is the pinned one."""
        url = f"{self.mirror}/{package.directory}/{debian.name}"
        data = self.getter.get(url)
        _check_file_bytes(data, debian.name, url, debian.sha256, debian.size)
        with tempfile.TemporaryDirectory(prefix="seal-cpython-", dir=work_dir) as tmp:
            keyring = Path(tmp, "signing-key.gpg")
            armored, primaries = signing_keyring(data, keyring, name=debian.name)
        if signer.fingerprint not in primaries:
            raise CPythonSourceError(
                f"{SIGNING_KEY_MEMBER} in {debian.name} holds {', '.join(primaries)}, "
                f"not the pinned {signer.fingerprint} ({signer.name})",
                reason="cpython-signing-key-mismatch",
                hint="the pinned fingerprint is the trust anchor; do not change it to match",
            )
        return hashlib.sha256(armored).hexdigest()

    def _pin(self, package: SourcePackage, file: SourceFile, version: str | None) -> PinnedArtifact:
        """The mirror's URL, then python.org's for the tarball and its .asc (same bytes)."""
        urls = [f"{self.mirror}/{package.directory}/{file.name}"]
        if version is not None and self.python_org:
            suffix = _python_org_suffix(file.name)
            if suffix is not None:
                tarball, asc = python_org_urls(version, suffix, self.python_org)
                urls.append(asc if file.name.endswith(".asc") else tarball)
        return PinnedArtifact(file.name, tuple(urls), file.sha256, file.size)


def _python_org_suffix(name: str) -> str | None:
    for debian, upstream in _TARBALL_SUFFIXES.items():
        if name.removesuffix(".asc").endswith(debian):
            return upstream
    return None


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def describe_available(available: Sequence[Available], *, signed_only: bool = False) -> str:
    """``3.11.2 (bookworm, unsigned), 3.13.5 (trixie), 3.13.15 (forky, sid, unsigned)``."""
    by_version: dict[str, list[Available]] = {}
    for a in available:
        if not signed_only or (a.signed and not a.repacked):
            by_version.setdefault(a.version, []).append(a)
    parts = []
    for version, entries in by_version.items():
        notes = [e.suite for e in entries]
        if not any(e.signed for e in entries):
            notes.append("unsigned")
        if all(e.repacked for e in entries):
            notes.append("repacked")
        parts.append(f"{version} ({', '.join(notes)})")
    return ", ".join(parts) or "none"


# ---------------------------------------------------------------------------- keys, checks


def extract_signing_key(debian_tar: bytes, *, name: str = "debian.tar.xz") -> bytes:
    """The armored ``debian/upstream/signing-key.asc`` inside a debian.tar.xz.

    Raises:
        CPythonSourceError: ``cpython-signing-key-missing`` (no such member, or not a tar.xz).
    """
    try:
        # one decompression call (the GIL is let go once, not per tar block: other
        # threads of a lock keep it busy), then the tar read from memory
        plain = lzma.decompress(debian_tar)
        with tarfile.open(fileobj=io.BytesIO(plain), mode="r|") as tar:
            for member in tar:
                if member.name.removeprefix("./") == SIGNING_KEY_MEMBER and member.isfile():
                    handle = tar.extractfile(member)
                    if handle is not None:
                        return handle.read()
    except (lzma.LZMAError, tarfile.TarError, EOFError) as e:
        raise CPythonSourceError(
            f"{name} is not a readable tar.xz ({e})", reason="cpython-signing-key-missing"
        ) from e
    raise CPythonSourceError(
        f"{name} has no {SIGNING_KEY_MEMBER}: the package does not ship upstream's key",
        reason="cpython-signing-key-missing",
    )


def signing_keyring(
    debian_tar: bytes, keyring: Path | str, *, name: str = "debian.tar.xz"
) -> tuple[bytes, tuple[str, ...]]:
    """Write a gpgv keyring of the debian.tar.xz's signing key; return (armored, primaries)."""
    armored = extract_signing_key(debian_tar, name=name)
    target = Path(keyring)
    asc = target.with_name(target.name + ".asc")
    asc.write_bytes(armored)
    return armored, keyring_from_armored(asc, target)


def _check_file_bytes(data: bytes, name: str, url: str, sha256: str, size: int) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if len(data) != size or actual != sha256:
        raise CPythonSourceError(
            f"{name} from {url}: expected sha256:{sha256} ({size} bytes), "
            f"got sha256:{actual} ({len(data)} bytes)",
            reason="cpython-hash-mismatch",
            hint="the mirror serves other bytes than its signed index lists; try another mirror",
        )


def _check_file(path: Path, pin: PinnedArtifact) -> None:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    if size != pin.size or digest.hexdigest() != pin.sha256:
        raise CPythonSourceError(
            f"{path} is not the pinned {pin.filename}: expected sha256:{pin.sha256} "
            f"({pin.size} bytes), got sha256:{digest.hexdigest()} ({size} bytes)",
            reason="cpython-hash-mismatch",
            hint="fetch it again; the lock pins these bytes",
        )


def verify_source(
    source: CPythonSource,
    tarball: Path | str,
    signature: Path | str,
    keyring: Path | str,
) -> SignatureResult:
    """Check downloaded files against the pins, then the signature against the pinned signer.

    Raises:
        CPythonSourceError: ``cpython-hash-mismatch``.
        SignatureError: see ``signature.verify_detached`` (bad, wrong key, revoked, ...).
    """
    _check_file(Path(tarball), source.tarball)
    _check_file(Path(signature), source.signature)
    return verify_detached(tarball, signature, keyring, source.signer_fingerprint)


def locked_keyring(debian_tar: bytes, keyring: Path, key_sha256: str, *, name: str) -> Path:
    """``signing_keyring``, refusing a key other than the one the lock recorded (its sha256)."""
    armored, _ = signing_keyring(debian_tar, keyring, name=name)
    actual = hashlib.sha256(armored).hexdigest()
    if actual != key_sha256:
        raise CPythonSourceError(
            f"{SIGNING_KEY_MEMBER} in {name} is not the locked key: expected "
            f"sha256:{key_sha256}, got sha256:{actual}",
            reason="cpython-hash-mismatch",
        )
    return keyring


def fetch_and_verify(
    client: HttpClient, source: CPythonSource, cache_dir: Path | str
) -> VerifiedSource:
    """Download (or reuse from ``cache_dir``) the three pinned files, then ``verify_source``.

    Each URL of an artifact is tried in order; a file already in the cache with
    the pinned hash is not downloaded again.
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    tarball = _download(client, source.tarball, cache)
    signature = _download(client, source.signature, cache)
    debian = _download(client, source.signing_key, cache)
    keyring = cache / f"python-{source.version}-signing-key.gpg"
    locked_keyring(debian.read_bytes(), keyring, source.signing_key_sha256, name=debian.name)
    # _download checked each file's pinned size and hash: the signature is what is left
    result = verify_detached(tarball, signature, keyring, source.signer_fingerprint)
    return VerifiedSource(tarball, signature, keyring, result)


def _download(client: HttpClient, pin: PinnedArtifact, cache: Path) -> Path:
    target = cache / pin.filename
    if target.is_file():
        try:
            _check_file(target, pin)
            return target
        except CPythonSourceError:
            target.unlink()
    errors = []
    for url in pin.urls:
        partial = target.with_name(target.name + ".part")
        try:
            with open(partial, "wb") as out:
                client.download(url, out, pin.sha256, pin.size, artifact=pin.filename)
        except HttpError as e:
            partial.unlink(missing_ok=True)
            errors.append(f"{url}: {e.message}")
            continue
        partial.replace(target)
        return target
    raise CPythonSourceError(
        f"could not download {pin.filename}: " + "; ".join(errors),
        reason="cpython-download-failed",
    )


__all__ = [
    "DEFAULT_SUITES",
    "PYTHON_ORG",
    "RELEASE_MANAGERS",
    "SIGNING_KEY_MEMBER",
    "Available",
    "CPythonResolver",
    "CPythonSource",
    "CPythonSourceError",
    "PinnedArtifact",
    "Signer",
    "SourceFile",
    "SourcePackage",
    "VerifiedSource",
    "describe_available",
    "extract_signing_key",
    "fetch_and_verify",
    "locked_keyring",
    "fetch_sources",
    "parse_sources",
    "parse_version",
    "python_org_urls",
    "scan_sources",
    "signer_for",
    "signing_keyring",
    "sources_entry",
    "verify_source",
]
