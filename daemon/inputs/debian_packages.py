"""Debian Packages indexes: fetched, checked against the verified Release, parsed.

The parser is a small deb822 reader of its own that keeps only the fields seal
uses: python-debian's reader took ~4.5 s on bookworm's main/amd64 index (63,000
stanzas); this one takes about one second.  A lock needs a few hundred of those
stanzas, so ``ScannedPackages`` does not parse the rest at all: one regex pass
(in C) finds where each package's stanza is, and a stanza is parsed when the
closure asks for it (~0.2 s for bookworm instead of ~2 s to parse and index).
"""

from __future__ import annotations

import hashlib
import lzma
import re
import threading
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from ..errors import DaemonError
from .debian_release import Getter, IndexFile, IndexHashMismatch, IndexMissing, Release

# Index forms in order of preference; the first one the Release lists is fetched.
SMALLEST = (".xz", ".gz", "")  # the fewest bytes to download
# The least time to decompress: gzip inflates bookworm's Packages (50 MB) in ~0.25 s,
# xz in ~0.65 s, for 12 MB instead of 8.8 MB on the wire.
FASTEST = (".gz", ".xz", "")


@dataclass(frozen=True)
class BinaryPackage:
    """One stanza of a Packages index, reduced to what locking needs.

    Relation fields stay raw strings: they are parsed only for the packages a
    closure visits.
    """

    name: str
    version: str
    architecture: str
    filename: str
    size: int
    sha256: str
    depends: str = ""
    pre_depends: str = ""
    provides: str = ""
    essential: bool = False
    priority: str = ""
    multi_arch: str = ""
    source: str = ""

    @property
    def source_name(self) -> str:
        """The source package's name (``Source:`` may add a version in brackets)."""
        return self.source.split(" ", 1)[0] if self.source else self.name


_FIELDS = {
    "Package": "name",
    "Version": "version",
    "Architecture": "architecture",
    "Filename": "filename",
    "Size": "size",
    "SHA256": "sha256",
    "Depends": "depends",
    "Pre-Depends": "pre_depends",
    "Provides": "provides",
    "Essential": "essential",
    "Priority": "priority",
    "Multi-Arch": "multi_arch",
    "Source": "source",
}
_REQUIRED = ("name", "version", "architecture", "filename", "size", "sha256")


class IndexParseError(DaemonError, ValueError):
    """A Packages stanza lacks a required field or has a malformed one."""

    reason = "debian-index-invalid"


def parse_packages(text: bytes | str, *, where: str = "Packages") -> list[BinaryPackage]:
    """Parse a Packages index into packages, in file order.

    Raises:
        IndexParseError: a stanza misses Package, Version, Architecture,
            Filename, Size or SHA256, or its Size is not a number.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    packages = []
    for number, stanza in enumerate(text.split("\n\n"), 1):
        if stanza.strip():
            packages.append(_parse_stanza(stanza, where, number))
    return packages


def _parse_stanza(stanza: str, where: str, number: int | str) -> BinaryPackage:
    values: dict[str, str] = {}
    key = None
    for line in stanza.split("\n"):
        if not line:
            continue
        if line[0] == " " or line[0] == "\t":
            if key is not None:  # a continuation of a field we keep
                values[key] += " " + line.strip()
            continue
        name, _, value = line.partition(":")
        key = _FIELDS.get(name)
        if key is not None:
            values[key] = value.strip()
    missing = [k for k in _REQUIRED if not values.get(k)]
    if missing:
        label = values.get("name", f"stanza {number}" if isinstance(number, int) else number)
        raise IndexParseError(f"{where}: {label} has no {', '.join(missing)} field")
    try:
        size = int(values.pop("size"))
    except ValueError:
        raise IndexParseError(f"{where}: {values['name']} has a malformed Size") from None
    essential = values.pop("essential", "").lower() == "yes"
    return BinaryPackage(size=size, essential=essential, **values)


def index_entry(
    release: Release, component: str, arch: str, order: Sequence[str] = SMALLEST
) -> IndexFile:
    """The Release's entry for the Packages of ``component``/``arch`` (first form in ``order``).

    Raises:
        IndexMissing: the Release lists no Packages for them.
    """
    return best_entry(
        release,
        f"{component}/binary-{arch}/Packages",
        f"architectures: {' '.join(release.architectures) or '?'}",
        order=order,
    )


def best_entry(
    release: Release, base: str, more: str = "", *, order: Sequence[str] = SMALLEST
) -> IndexFile:
    """The Release's entry for ``base`` in the first form of ``order`` it lists.

    Raises:
        IndexMissing: the Release lists none of them (the hint adds ``more``).
    """
    for suffix in order:
        entry = release.files.get(base + suffix)
        if entry is not None:
            return entry
    hint = f"components: {' '.join(release.components) or '?'}" + (f"; {more}" if more else "")
    raise IndexMissing(
        f"the Release of {release.codename or release.suite} lists no {base}[.xz|.gz]",
        hint=hint,
    )


def check_bytes(data: bytes, entry: IndexFile, url: str) -> None:
    """Compare ``data`` with its Release entry, size first (cheap), then SHA-256.

    Raises:
        IndexHashMismatch: naming the file, the expected and the actual value.
    """
    if len(data) != entry.size:
        raise IndexHashMismatch(entry.path, url, f"{entry.size} bytes", f"{len(data)} bytes")
    actual = hashlib.sha256(data).hexdigest()
    if actual != entry.sha256:
        raise IndexHashMismatch(entry.path, url, f"sha256:{entry.sha256}", f"sha256:{actual}")


def fetch_packages(
    getter: Getter, release: Release, component: str = "main", arch: str = "amd64"
) -> list[BinaryPackage]:
    """Download one Packages index, verify it against the Release, then parse it.

    Nothing is decompressed or parsed before the compressed bytes match. When
    the Release also lists the uncompressed index, the decompressed bytes must
    match that entry as well (and decompression stops past its size).

    Raises:
        IndexMissing, IndexHashMismatch, IndexParseError.
    """
    entry = index_entry(release, component, arch)
    text, url = fetch_index(getter, release, entry)
    return parse_packages(text, where=url)


class Prefetch:
    """An index downloaded before its Release is verified, so the two transfers overlap.

    Its bytes are only handed to ``fetch_index``, which checks them against the
    verified Release before anything else looks at them; a failed or unneeded
    prefetch is simply not used.
    """

    def __init__(self, getter: Getter, url: str):
        self.url = url
        self._result: Future[bytes] = Future()
        worker = threading.Thread(target=self._run, args=(getter,), name="seal-prefetch")
        worker.daemon = True
        worker.start()

    def _run(self, getter: Getter) -> None:
        try:
            self._result.set_result(getter.get(self.url))
        except BaseException as e:  # reported by take() as "not prefetched"
            self._result.set_exception(e)

    def take(self, url: str) -> bytes | None:
        """The prefetched bytes if ``url`` is what was prefetched and it came; else None."""
        if url != self.url:
            return None
        try:
            return self._result.result()
        except Exception:
            return None  # fetch_index asks again, and reports that error


def prefetch_url(mirror: str, suite: str, path: str) -> str:
    """The URL ``Release.dists_url`` will give ``path`` of ``suite`` fetched by that name."""
    return f"{mirror.rstrip('/')}/dists/{suite}/{path}"


def fetch_index(
    getter: Getter, release: Release, entry: IndexFile, prefetched: Prefetch | None = None
) -> tuple[bytes, str]:
    """The text of the index ``entry`` (plain or compressed) and its URL.

    Nothing is decompressed before the downloaded bytes match ``entry``; when the
    Release lists the plain index too, the text must match it (and decompression
    stops past its size).  ``prefetched`` bytes of the same URL are used instead
    of downloading again (checked the same way).

    Raises:
        IndexHashMismatch.
    """
    url = release.dists_url(entry.path)
    data = prefetched.take(url) if prefetched is not None else None
    if data is not None:
        try:
            check_bytes(data, entry, url)
        except IndexHashMismatch:  # fetched before the InRelease: the mirror may have moved on
            data = None
    if data is None:
        data = getter.get(url)
        check_bytes(data, entry, url)
    plain = release.files.get(entry.path.removesuffix(".xz").removesuffix(".gz"))
    text = _decompress(data, entry.path, url, limit=plain.size + 1 if plain else None)
    if plain is not None and plain is not entry:
        check_bytes(text, plain, url + " (decompressed)")
    return text, url


def _decompress(data: bytes, path: str, url: str, *, limit: int | None) -> bytes:
    try:
        if path.endswith(".xz"):
            return lzma.LZMADecompressor().decompress(data, max_length=limit or -1)
        if path.endswith(".gz"):
            inflater = zlib.decompressobj(wbits=31)
            return inflater.decompress(data, limit or 0)
    except (lzma.LZMAError, zlib.error) as e:
        raise IndexHashMismatch(path, url, "a valid compressed index", f"corrupt data ({e})") from e
    return data


# ---------------------------------------------------------------------------- lazy scanning


def field_lines(text: bytes, field: bytes, value: bytes = rb"[^\n]*") -> Iterator[re.Match]:
    """Every line ``<field>: <value>`` that starts a line of ``text``, in file order.

    The value is group 1 (without the blanks after the colon). Continuation
    lines begin with a blank, so they never match: only fields do.
    """
    body = re.escape(field) + rb":[ \t]*(" + value + rb")[ \t]*(?=\n|\Z)"
    head = re.compile(body).match(text)  # the first stanza has no newline before it
    if head is not None:
        yield head
    yield from re.compile(rb"\n" + body).finditer(text)


def stanza_start(text: bytes, position: int) -> int:
    """The offset of the stanza that holds ``position`` (say, a ``field_lines`` match)."""
    blank = text.rfind(b"\n\n", 0, position + 1)
    return 0 if blank < 0 else blank + 2


def stanza_text(text: bytes, start: int) -> bytes:
    """The stanza that begins at ``start`` (up to the next blank line)."""
    end = text.find(b"\n\n", start)
    return text[start : end if end >= 0 else len(text)]


_VIRTUAL = re.compile(rb"(?:^|[,|])\s*([a-z0-9][a-z0-9+.\-]*)")


class ScannedPackages:
    """Verified Packages texts, indexed by one regex pass each; stanzas parsed when asked.

    Gives what ``debian_closure.PackageIndex`` needs: the stanzas of a name, those
    whose Provides may name it, and the names of stanzas with an Essential field,
    all in component then file order.  A stanza parsed once is the same object
    every time (the closure compares packages by identity).  Errors in stanzas
    nobody asks for are not seen.
    """

    def __init__(self, texts: Sequence[tuple[bytes, str]]):
        self._texts = list(texts)
        self._named: dict[bytes, list[tuple[int, int]]] = {}
        self._providing: dict[bytes, list[tuple[int, int]]] = {}
        self._essential: list[tuple[int, int]] = []
        self._parsed: dict[tuple[int, int], BinaryPackage] = {}
        for part, (text, _) in enumerate(self._texts):
            self._scan(part, text)

    def _scan(self, part: int, text: bytes) -> None:
        # positions of matches, not of stanzas: _package finds a stanza's start when it is asked
        named, providing = self._named, self._providing
        for m in field_lines(text, b"Package", rb"[^\s]+"):
            named.setdefault(m[1], []).append((part, m.start()))
        for m in field_lines(text, b"Provides", rb"[^\n]*(?:\n[ \t][^\n]*)*"):
            key = (part, m.start())
            for name in _VIRTUAL.findall(m[1]):
                keys = providing.setdefault(name, [])
                if not keys or keys[-1] != key:
                    keys.append(key)
        self._essential += [(part, m.start()) for m in field_lines(text, b"Essential")]

    def _package(self, key: tuple[int, int]) -> BinaryPackage:
        part, position = key
        text, where = self._texts[part]
        start = stanza_start(text, position)
        package = self._parsed.get((part, start))
        if package is None:
            stanza = stanza_text(text, start).decode("utf-8")
            package = _parse_stanza(stanza.strip("\n"), where, f"the stanza at byte {start}")
            package = self._parsed.setdefault((part, start), package)
        return package

    def named(self, name: str) -> list[BinaryPackage]:
        """The stanzas whose Package is ``name``."""
        return [self._package(k) for k in self._named.get(name.encode(), ())]

    def providing(self, name: str) -> list[BinaryPackage]:
        """The stanzas whose Provides names ``name`` (maybe more: check their Provides)."""
        return [self._package(k) for k in self._providing.get(name.encode(), ())]

    def essential_names(self) -> list[str]:
        """The names of the stanzas with an Essential field (whatever its value)."""
        return [self._package(k).name for k in self._essential]
