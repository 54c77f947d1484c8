"""Debian inputs for a lock: a verified suite's index and the pinned closures of package sets.

    archive = DebianArchive(getter)                       # bookworm, main, amd64
    toolchain = archive.closure(["gcc", "make", "libc6-dev"])
    origin = archive.release()                            # InRelease URL, SHA-256, Date

The work is split by trust boundary: ``debian_release`` (InRelease, gpgv,
Release), ``debian_packages`` (Packages indexes checked against the Release),
``debian_closure`` (versions, relations, the closure); this module ties them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from .debian_closure import (
    PackageIndex,
    PinnedPackage,
    Unsatisfiable,
    closure,
    compare_versions,
)
from .debian_packages import (
    FASTEST,
    BinaryPackage,
    IndexParseError,
    Prefetch,
    ScannedPackages,
    fetch_index,
    fetch_packages,
    index_entry,
    parse_packages,
    prefetch_url,
)
from .debian_release import (
    DEFAULT_KEYRING,
    DEFAULT_MIRROR,
    DEFAULT_SUITE,
    Getter,
    IndexHashMismatch,
    IndexMissing,
    Release,
    ReleaseError,
    SignatureError,
    fetch_release,
    verify_inrelease,
)

__all__ = [
    "DEFAULT_KEYRING",
    "DEFAULT_MIRROR",
    "DEFAULT_SUITE",
    "BinaryPackage",
    "DebianArchive",
    "Getter",
    "IndexHashMismatch",
    "IndexMissing",
    "IndexParseError",
    "PackageIndex",
    "PinnedPackage",
    "Release",
    "ReleaseError",
    "ScannedPackages",
    "SignatureError",
    "Unsatisfiable",
    "closure",
    "compare_versions",
    "fetch_packages",
    "fetch_release",
    "parse_packages",
    "verify_inrelease",
]


class DebianArchive:
    """One suite of one mirror for one architecture; fetches and verifies lazily, once."""

    def __init__(
        self,
        getter: Getter,
        *,
        mirror: str = DEFAULT_MIRROR,
        suite: str = DEFAULT_SUITE,
        components: Sequence[str] = ("main",),
        arch: str = "amd64",
        keyrings: Sequence[Path | str] = (DEFAULT_KEYRING,),
        check_expiry: bool = True,
        now: datetime | None = None,
        prefetch: bool = False,
    ):
        """``prefetch``: download the indexes while the InRelease is fetched and verified
        (for an archive whose indexes will be read; they are checked all the same)."""
        self.getter = getter
        self.mirror = mirror.rstrip("/")
        self.suite = suite
        self.components = tuple(components)
        self.arch = arch
        self.keyrings = tuple(keyrings)
        self.check_expiry = check_expiry
        self.now = now
        self._release: Release | None = None
        self._prefetch = prefetch
        self._prefetched: dict[str, Prefetch] = {}  # by component
        self._texts: list[tuple[bytes, str]] | None = None
        self._packages: list[BinaryPackage] | None = None
        self._index: PackageIndex | None = None

    def release(self) -> Release:
        """The verified Release; its ``inrelease_sha256`` and ``date`` go into the lock."""
        if self._release is None:
            if self._prefetch and self._texts is None:
                for c in self.components:
                    path = f"{c}/binary-{self.arch}/Packages{FASTEST[0]}"
                    url = prefetch_url(self.mirror, self.suite, path)
                    self._prefetched[c] = Prefetch(self.getter, url)
            self._release = fetch_release(
                self.getter,
                self.mirror,
                self.suite,
                self.keyrings,
                check_expiry=self.check_expiry,
                now=self.now,
            )
        return self._release

    def texts(self) -> list[tuple[bytes, str]]:
        """Each component's verified Packages text and its URL (fetched once).

        The gzip form is preferred: it decompresses in a third of xz's time.
        """
        if self._texts is None:
            release = self.release()
            self._texts = [
                fetch_index(
                    self.getter,
                    release,
                    index_entry(release, c, self.arch, FASTEST),
                    self._prefetched.pop(c, None),
                )
                for c in self.components
            ]
        return self._texts

    def packages(self) -> list[BinaryPackage]:
        """Every package of the configured components, in component then file order (cached)."""
        if self._packages is None:
            found: list[BinaryPackage] = []
            for text, url in self.texts():
                found += parse_packages(text, where=url)
            self._packages = found
        return self._packages

    def index(self) -> PackageIndex:
        """The packages by name and by what they provide (stanzas parsed as the closure asks)."""
        if self._index is None:
            self._index = PackageIndex(ScannedPackages(self.texts()), self.arch)
        return self._index

    def closure(self, roots: Iterable[str], *, essential: bool = False) -> list[PinnedPackage]:
        """The pinned closure of ``roots`` (see ``debian_closure.closure``)."""
        return closure(self.index(), roots, mirror=self.mirror, arch=self.arch, essential=essential)
