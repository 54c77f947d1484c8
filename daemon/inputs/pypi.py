"""A PyPI simple-API client: PEP 691 JSON project pages and wheel metadata.

::

    index = SimpleIndex(http=HttpClient(), cache_dir=state / "wheel-metadata")
    files = index.project_files("FastAPI")          # PEP 503-normalized to "fastapi"
    wheel = next(f for f in files if f.filename == "fastapi-0.104.1-py3-none-any.whl")
    text = index.wheel_metadata(wheel)              # the wheel's METADATA bytes

Wheel metadata comes from the PEP 658 ``<file-url>.metadata`` document when the
server has it (always tried: PyPI often lists no ``core-metadata`` key, and
about a third of recent wheels answer 404), else from the wheel itself: its zip
central directory and the one METADATA member are read with HTTP range
requests, and if the server ignores Range, the whole wheel is downloaded and
checked against the index's SHA-256. Results are cached by the wheel's SHA-256.

Metadata read with ranges cannot be checked against the wheel's hash (that needs
every byte); the fetcher checks the whole wheel before anything is installed.
"""

from __future__ import annotations

import contextlib
import email.parser
import hashlib
import io
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin

from packaging.tags import Tag
from packaging.utils import (
    BuildTag,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from seal.daemon.errors import DaemonError
from seal.daemon.inputs.http import (
    HashMismatch,
    HttpClient,
    HttpStatusError,
    NotFound,
    RangeNotSupported,
)

DEFAULT_INDEX = "https://pypi.org/simple/"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
TAIL = 64 * 1024  # first range read from a wheel's end: EOCD + central directory, usually
MIN_READ = 32 * 1024  # smallest range fetched for a later miss


# -- errors ---------------------------------------------------------------------------------


class PyPIError(DaemonError):
    """Base class of this module's errors."""

    reason = "pypi-error"


class ProjectNotFound(PyPIError, LookupError):
    """The index has no project by this name."""

    reason = "pypi-project-not-found"

    def __init__(self, name: str, index_url: str):
        super().__init__(
            f"no project named {name!r} on {index_url}",
            hint="check the spelling in the config, or the index URL",
        )
        self.name = name
        self.index_url = index_url


class BadIndexResponse(PyPIError):
    """A project page is not a PEP 691 JSON document this client understands."""

    reason = "pypi-bad-response"

    def __init__(self, url: str, problem: str, hint: str | None = None):
        super().__init__(f"{url}: {problem}", hint=hint)
        self.url = url


class MetadataUnavailable(PyPIError):
    """A wheel's METADATA cannot be read: not a wheel, no .dist-info, a broken zip."""

    reason = "wheel-metadata-unavailable"

    def __init__(self, filename: str, url: str, problem: str):
        super().__init__(
            f"cannot read the metadata of {filename} ({url}): {problem}",
            hint="the file is not a valid wheel; report it to the project or pin another version",
        )
        self.filename = filename
        self.url = url


# -- files ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class File:
    """One distribution file on a project page (PEP 691).

    ``url`` is absolute (resolved against the page's final URL), without fragment.
    ``metadata_listed`` says whether the page announced a PEP 658 metadata file
    (``core-metadata`` or the older ``dist-info-metadata``); ``metadata_sha256`` is
    its hash when given. ``upload_time`` is the ISO 8601 text of the page.
    """

    filename: str
    url: str
    sha256: str | None
    size: int | None = None
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    metadata_listed: bool = False
    metadata_sha256: str | None = None
    upload_time: str | None = None

    @classmethod
    def from_json(cls, entry: Mapping[str, Any], page_url: str) -> File:
        """Parse one ``files`` entry; raises ``ValueError`` or ``KeyError`` if malformed."""
        filename = entry["filename"]
        url, fragment = _absolute(page_url, entry["url"])
        hashes = entry.get("hashes") or {}
        sha256 = hashes.get("sha256")
        if sha256 is None and fragment.startswith("sha256="):
            sha256 = fragment[len("sha256=") :]
        yanked = entry.get("yanked", False)
        metadata = entry.get("core-metadata", entry.get("dist-info-metadata", False))
        size = entry.get("size")
        return cls(
            filename=filename,
            url=url,
            sha256=_hex(sha256),
            size=int(size) if size is not None else None,
            requires_python=entry.get("requires-python") or None,
            yanked=bool(yanked),
            yanked_reason=yanked if isinstance(yanked, str) and yanked else None,
            metadata_listed=bool(metadata),
            metadata_sha256=_hex(metadata.get("sha256")) if isinstance(metadata, dict) else None,
            upload_time=entry.get("upload-time"),
        )

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")

    @property
    def is_sdist(self) -> bool:
        return self.filename.endswith((".tar.gz", ".zip"))

    def wheel_info(self) -> tuple[NormalizedName, Version, BuildTag, frozenset[Tag]]:
        """``(name, version, build, tags)`` from a wheel filename (packaging's parser).

        Raises ``packaging.utils.InvalidWheelFilename`` for anything else.
        """
        return parse_wheel_filename(self.filename)

    def sdist_info(self) -> tuple[NormalizedName, Version]:
        """``(name, version)`` from an sdist filename; raises ``InvalidSdistFilename``."""
        return parse_sdist_filename(self.filename)

    @property
    def metadata_url(self) -> str:
        """Where PEP 658 puts this file's metadata."""
        return self.url + ".metadata"


def _absolute(page_url: str, url: str) -> tuple[str, str]:
    """``url`` resolved against the page, and its fragment apart.

    PyPI's URLs are absolute and fragment-free: those skip urljoin and urldefrag,
    which cost ~25 us a file (pydantic-core's page lists 15,000 files).
    """
    if url.startswith(("https://", "http://")) and "#" not in url and url[-1] not in "?;":
        return url, ""
    return urldefrag(urljoin(page_url, url))


_HEX64 = re.compile(r"[0-9a-f]{64}")


def _hex(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).lower()
    if not _HEX64.fullmatch(text):
        raise ValueError(f"not a sha256 hex digest: {value!r}")
    return text


@dataclass(frozen=True)
class Project:
    """A project page: its normalized name, its URL and its files."""

    name: str
    url: str
    files: tuple[File, ...]


def normalize_name(name: str) -> str:
    """PEP 503: runs of ``-``, ``_``, ``.`` become one ``-``, lowercase."""
    return str(canonicalize_name(name))


# -- the index ------------------------------------------------------------------------------


class SimpleIndex:
    """A PEP 691 index (default: PyPI) read through ``http``; thread-safe.

    ``cache_dir``, if given, keeps wheel metadata by the wheel's SHA-256 (written
    atomically, so concurrent users and crashes leave whole files only).
    """

    def __init__(
        self,
        index_url: str = DEFAULT_INDEX,
        *,
        http: HttpClient | None = None,
        cache_dir: Path | str | None = None,
    ):
        self.index_url = index_url if index_url.endswith("/") else index_url + "/"
        self.http = http or HttpClient()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None

    def project_url(self, name: str) -> str:
        """The project page's URL: the index URL + the normalized name + ``/``."""
        return urljoin(self.index_url, normalize_name(name) + "/")

    def project(self, name: str) -> Project:
        """Fetch and parse a project page; raises :class:`ProjectNotFound` on 404."""
        url = self.project_url(name)
        try:
            response = self.http.get(url, {"Accept": f"{SIMPLE_JSON}, application/json;q=0.5"})
        except NotFound:
            raise ProjectNotFound(name, self.index_url) from None
        doc = _parse_page(response.url, response.headers.get("content-type", ""), response.body)
        try:
            files = tuple(File.from_json(entry, response.url) for entry in doc["files"])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise BadIndexResponse(response.url, f"malformed file entry ({e!r})") from None
        return Project(
            normalize_name(doc.get("name") or name),
            response.url,
            files,
        )

    def project_files(self, name: str) -> list[File]:
        """Every file on the project page of ``name`` (any spelling of the name)."""
        return list(self.project(name).files)

    def wheel_metadata(self, file: File) -> bytes:
        """The METADATA text of a wheel: cache, then PEP 658, then range reads, then download.

        Raises :class:`HashMismatch` when the PEP 658 file (or the downloaded wheel)
        does not have the hash the index lists, :class:`MetadataUnavailable` when
        the wheel has no readable METADATA, and the HTTP errors of ``http``.
        """
        if not file.is_wheel:
            raise ValueError(f"not a wheel: {file.filename}")
        cached = self._cache_get(file)
        if cached is not None:
            return cached
        data = self._pep658(file)
        if data is None:
            data = self._from_wheel(file)
        _check_names(file, data)
        self._cache_put(file, data)
        return data

    # -- metadata sources

    def _pep658(self, file: File) -> bytes | None:
        """The ``.metadata`` file, verified when listed with a hash; None if absent."""
        try:
            response = self.http.get(file.metadata_url)
        except NotFound:
            return None
        except HttpStatusError as e:
            if e.status == 403:  # some object stores answer 403 for a missing key
                return None
            raise
        data = response.body
        if file.metadata_sha256 is not None:
            actual = hashlib.sha256(data).hexdigest()
            if actual != file.metadata_sha256:
                raise HashMismatch(
                    file.metadata_url,
                    file.metadata_sha256,
                    actual,
                    artifact=f"metadata of {file.filename}",
                )
        return data

    def _from_wheel(self, file: File) -> bytes:
        try:
            with zipfile.ZipFile(_RangeReader(self.http, file.url)) as zf:
                return _read_metadata(zf, file)
        except RangeNotSupported:
            pass
        except (zipfile.BadZipFile, EOFError):
            pass  # decide on the whole file, checked against the index's hash
        return self._from_download(file)

    def _from_download(self, file: File) -> bytes:
        with tempfile.SpooledTemporaryFile(max_size=16 << 20) as spool:
            self.http.download(file.url, spool, file.sha256, file.size, artifact=file.filename)
            spool.seek(0)
            try:
                with zipfile.ZipFile(spool) as zf:
                    return _read_metadata(zf, file)
            except (zipfile.BadZipFile, EOFError) as e:
                raise MetadataUnavailable(
                    file.filename, file.url, f"not a zip file ({e})"
                ) from None

    # -- cache

    def _cache_path(self, file: File) -> Path | None:
        if self.cache_dir is None or file.sha256 is None:
            return None
        return self.cache_dir / file.sha256[:2] / f"{file.sha256}.metadata"

    def _cache_get(self, file: File) -> bytes | None:
        path = self._cache_path(file)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def _cache_put(self, file: File, data: bytes) -> None:
        path = self._cache_path(file)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


# -- helpers --------------------------------------------------------------------------------


def _parse_page(url: str, content_type: str, body: bytes) -> dict:
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype not in (SIMPLE_JSON, "application/json"):
        raise BadIndexResponse(
            url,
            f"answered {ctype or 'no content type'}, not PEP 691 JSON",
            hint="use an index that serves the JSON simple API (PyPI, devpi, Artifactory...)",
        )
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise BadIndexResponse(url, f"invalid JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
        raise BadIndexResponse(url, "no 'files' list in the project page")
    version = str((doc.get("meta") or {}).get("api-version", ""))
    if version.split(".")[0] != "1":
        raise BadIndexResponse(
            url,
            f"simple API version {version or '(none)'} is not supported (need 1.x)",
            hint="upgrade seal, or use another index",
        )
    return doc


def _read_metadata(zf: zipfile.ZipFile, file: File) -> bytes:
    """The ``<name>-<version>.dist-info/METADATA`` member of a wheel."""
    try:
        name = canonicalize_name(file.wheel_info()[0])
    except InvalidWheelFilename:
        name = None
    candidates = [
        n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
    ]
    matching = [n for n in candidates if _dist_info_project(n) == name]
    chosen = matching or candidates
    if len(chosen) != 1:
        problem = "no .dist-info/METADATA" if not chosen else f"several: {', '.join(chosen)}"
        raise MetadataUnavailable(file.filename, file.url, problem)
    return zf.read(chosen[0])


def _dist_info_project(member: str) -> str:
    stem = member.split("/", 1)[0][: -len(".dist-info")]
    return canonicalize_name(stem.rpartition("-")[0] or stem)


def _check_names(file: File, data: bytes) -> None:
    """The metadata must describe the wheel it came from (name and version)."""
    headers = email.parser.BytesHeaderParser().parsebytes(data)
    name, version = headers.get("Name"), headers.get("Version")
    try:
        want_name, want_version, _, _ = file.wheel_info()
    except InvalidWheelFilename:
        return
    if name is None or canonicalize_name(name) != want_name:
        raise MetadataUnavailable(file.filename, file.url, f"METADATA names {name!r}")
    try:
        same = version is not None and Version(version) == want_version
    except InvalidVersion:
        same = False
    if not same:
        raise MetadataUnavailable(file.filename, file.url, f"METADATA has version {version!r}")


class _RangeReader(io.RawIOBase):
    """A read-only, seekable view of a remote file that fetches what is read with ranges.

    The first read fetches the last :data:`TAIL` bytes (which also tells the
    size); later misses fetch at least :data:`MIN_READ` bytes. Fetched pieces
    are kept, so zipfile's many small reads cost a few requests in all.
    """

    def __init__(self, http: HttpClient, url: str):
        super().__init__()
        self._http = http
        self._url = url
        tail = http.get_range(url, -TAIL)
        if tail.total is None:
            raise RangeNotSupported(f"{url} did not tell its size", url=url)
        self._size = tail.total
        self._pieces: list[tuple[int, bytes]] = [(tail.start, tail.data)]
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        data = self._slice(self._pos, self._pos + want)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def _slice(self, start: int, end: int) -> bytes:
        for first, data in self._pieces:
            if first <= start and end <= first + len(data):
                return data[start - first : end - first]
        stop = min(self._size, max(end, start + MIN_READ))
        got = self._http.get_range(self._url, start, stop)
        if len(got.data) < end - start:
            raise EOFError(f"{self._url}: short range read at {start}")
        self._pieces.append((got.start, got.data))
        return got.data[: end - start]
