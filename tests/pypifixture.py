"""A local PyPI for tests: real wheels built here, a PEP 691 JSON simple index, fault switches.

Usage (the ``pypi_server`` and ``fast_http`` fixtures below wrap this: import them into a
conftest, or write the three-line fixture in the test module, which keeps ruff's F811 quiet)::

    with PyPIFixture(tmp_path) as pypi:
        wheel = pypi.add_wheel("demo", "1.0", requires_dist=["idna>=3"])
        pypi.no_metadata.add(wheel.filename)      # PEP 658 file answers 404
        pypi.fail(wheel.filename, times=2)        # two HTTP 500s, then the file
        index = SimpleIndex(pypi.index_url, ...)

Layout served on ``http://127.0.0.1:<port>/``: ``simple/`` (project list),
``simple/<normalized-name>/`` (a project page; other spellings redirect there),
``files/<filename>`` and ``files/<filename>.metadata``. Every request is
logged in :attr:`PyPIFixture.requests` (path, Range header, status, body bytes
sent, client port) so tests can assert on what the client really did.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import re
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from seal.daemon.inputs.http import HttpClient, RetryPolicy

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def normalize(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _dist_name(name: str) -> str:
    """The name as it appears in wheel filenames and .dist-info directories."""
    return normalize(name).replace("-", "_")


# -- building distributions -----------------------------------------------------------------


@dataclass
class Dist:
    """A distribution file the fixture serves, with what the index says about it."""

    name: str
    version: str
    filename: str
    data: bytes
    metadata: bytes | None  # the METADATA (wheels) or PKG-INFO (sdists) text
    requires_python: str | None = None
    upload_time: str | None = "2024-01-02T03:04:05.000000Z"
    yanked: bool | str = False

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def metadata_sha256(self) -> str | None:
        return hashlib.sha256(self.metadata).hexdigest() if self.metadata is not None else None

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


def core_metadata(
    name: str,
    version: str,
    requires_dist: Iterable[str] = (),
    requires_python: str | None = None,
    extras: Iterable[str] = (),
) -> bytes:
    """A METADATA / PKG-INFO document (metadata version 2.1)."""
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Provides-Extra: {extra}" for extra in extras]
    lines += [f"Requires-Dist: {req}" for req in requires_dist]
    return ("\n".join(lines) + "\n\nA test distribution.\n").encode()


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build_wheel(
    name: str,
    version: str,
    *,
    requires_dist: Iterable[str] = (),
    requires_python: str | None = None,
    extras: Iterable[str] = (),
    tag: str = "py3-none-any",
    padding: int = 0,
    metadata_first: bool = False,
    files: dict[str, bytes] | None = None,
) -> Dist:
    """A real wheel: a module, optional incompressible padding, and its .dist-info.

    ``padding`` bytes of pseudo-random data go into an uncompressed member, so
    the file is about that much larger; ``metadata_first`` puts .dist-info at
    the start of the archive (most tools write it last).
    """
    dist = _dist_name(name)
    info = f"{dist}-{version}.dist-info"
    metadata = core_metadata(name, version, requires_dist, requires_python, extras)
    wheel = (
        f"Wheel-Version: 1.0\nGenerator: seal-tests\nRoot-Is-Purelib: "
        f"{'true' if tag.endswith('-none-any') else 'false'}\nTag: {tag}\n"
    ).encode()
    payload = {f"{dist}/__init__.py": f'__version__ = "{version}"\n'.encode()}
    payload.update(files or {})
    if padding:
        rng = random.Random(f"{name}-{version}")
        payload[f"{dist}/padding.bin"] = rng.randbytes(padding)
    meta_members = {f"{info}/METADATA": metadata, f"{info}/WHEEL": wheel}
    members = {**meta_members, **payload} if metadata_first else {**payload, **meta_members}
    record = [_record_line(path, data) for path, data in members.items()]
    record.append(f"{info}/RECORD,,")
    members[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for path, data in members.items():
            entry = zipfile.ZipInfo(path, date_time=_EPOCH)
            entry.external_attr = 0o644 << 16
            stored = path.endswith("padding.bin")
            entry.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            zf.writestr(entry, data)
    filename = f"{dist}-{version}-{tag}.whl"
    return Dist(name, version, filename, out.getvalue(), metadata, requires_python)


def build_sdist(
    name: str,
    version: str,
    *,
    requires_dist: Iterable[str] = (),
    requires_python: str | None = None,
) -> Dist:
    """A minimal sdist (``.tar.gz`` with PKG-INFO and pyproject.toml)."""
    dist = _dist_name(name)
    root = f"{dist}-{version}"
    pkg_info = core_metadata(name, version, requires_dist, requires_python)
    pyproject = f'[project]\nname = "{name}"\nversion = "{version}"\n'.encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for path, data in ((f"{root}/PKG-INFO", pkg_info), (f"{root}/pyproject.toml", pyproject)):
            entry = tarfile.TarInfo(path)
            entry.size = len(data)
            entry.mode = 0o644
            tar.addfile(entry, io.BytesIO(data))
    return Dist(name, version, f"{root}.tar.gz", out.getvalue(), None, requires_python)


# -- the server -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request the fixture answered."""

    path: str
    range: str | None
    status: int
    sent: int  # body bytes written
    port: int  # the client's port: one per connection
    headers: dict[str, str] = field(default_factory=dict, compare=False)


class PyPIFixture:
    """A PEP 691 index with wheels and sdists, on loopback, with switches for faults.

    Switches (plain attributes; flip them at any time):

    - ``serve_metadata``: PEP 658 ``.metadata`` files are served (else all 404);
      ``no_metadata``: filenames whose ``.metadata`` answers 404 anyway.
    - ``metadata_key``: the key listing the metadata in project pages:
      ``"core-metadata"`` (PEP 714), ``"dist-info-metadata"`` (older) or ``None``.
    - ``relative_urls``: file URLs on project pages are relative (``../../files/x``).
    - ``honor_range``: answer Range requests with 206 (else 200 and the whole file).
    - ``page_content_type``: the Content-Type of project pages (``text/html`` mimics
      an index without the JSON API; the body stays JSON).
    - :meth:`fail`, :meth:`truncate`, :meth:`corrupt`, :meth:`yank`.
    """

    def __init__(self, root: Path | None = None):
        self.root = root
        self.dists: dict[str, Dist] = {}  # by filename
        self.serve_metadata = True
        self.no_metadata: set[str] = set()
        self.metadata_key: str | None = "core-metadata"
        self.relative_urls = True
        self.honor_range = True
        self.page_content_type = JSON_TYPE
        self.requests: list[Request] = []
        self._failures: dict[str, list[int]] = {}  # path -> statuses still to answer
        self._truncations: dict[str, int] = {}
        self._corruptions: dict[str, int] = {}
        self._holds: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- content

    def add(self, dist: Dist) -> Dist:
        """Serve ``dist`` (and write it under ``root``, if the fixture has one)."""
        with self._lock:
            self.dists[dist.filename] = dist
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / dist.filename).write_bytes(dist.data)
        return dist

    def add_wheel(self, name: str, version: str, **kwargs) -> Dist:
        """Build a wheel with :func:`build_wheel` and serve it."""
        return self.add(build_wheel(name, version, **kwargs))

    def add_sdist(self, name: str, version: str, **kwargs) -> Dist:
        """Build an sdist with :func:`build_sdist` and serve it."""
        return self.add(build_sdist(name, version, **kwargs))

    # -- switches

    def yank(self, filename: str, reason: str | None = None) -> None:
        """Mark a file yanked (with a reason, if given)."""
        self.dists[filename].yanked = reason or True

    def fail(self, target: str, times: int = 1, status: int = 500) -> None:
        """Answer ``status`` the next ``times`` requests for ``target`` (a filename or path)."""
        with self._lock:
            self._failures.setdefault(self._path(target), []).extend([status] * times)

    def truncate(self, filename: str, times: int = 1) -> None:
        """Send half of the file (with the full Content-Length), then close, ``times`` times."""
        with self._lock:
            self._truncations[filename] = self._truncations.get(filename, 0) + times

    def corrupt(self, filename: str, times: int = 1_000_000) -> None:
        """Flip a byte in the middle of the file (or .metadata file), ``times`` times."""
        with self._lock:
            self._corruptions[filename] = self._corruptions.get(filename, 0) + times

    def hold(self, filename: str) -> threading.Event:
        """Keep requests for ``filename`` waiting until the returned event is set."""
        gate = threading.Event()
        with self._lock:
            self._holds[filename] = gate
        return gate

    # -- addresses and observations

    @property
    def url(self) -> str:
        assert self._server is not None, "the fixture is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    @property
    def index_url(self) -> str:
        return self.url + "simple/"

    def file_url(self, filename: str) -> str:
        return f"{self.url}files/{filename}"

    def requests_for(self, target: str) -> list[Request]:
        """Requests whose path is ``target``'s (a filename is taken as ``/files/<filename>``)."""
        path = self._path(target)
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def bytes_sent(self, target: str) -> int:
        return sum(r.sent for r in self.requests_for(target))

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    @staticmethod
    def _path(target: str) -> str:
        return target if target.startswith("/") else f"/files/{target}"

    # -- lifecycle

    def start(self) -> PyPIFixture:
        handler = type("Handler", (_Handler,), {"fixture": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> PyPIFixture:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- answers (called by the handler)

    def _take(self, table: dict, key: str):
        with self._lock:
            value = table.get(key)
            if not value:
                return None
            if isinstance(value, list):
                return value.pop(0)
            table[key] = value - 1
            return True

    def _log(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _project_names(self) -> list[str]:
        return sorted({normalize(d.name) for d in self.dists.values()})

    def _project_page(self, project: str) -> dict | None:
        files = [d for d in self.dists.values() if normalize(d.name) == project]
        if not files:
            return None
        return {
            "meta": {"api-version": "1.1"},
            "name": project,
            "versions": sorted({d.version for d in files}),
            "files": [self._file_entry(d) for d in sorted(files, key=lambda d: d.filename)],
        }

    def _file_entry(self, dist: Dist) -> dict:
        url = f"../../files/{dist.filename}" if self.relative_urls else self.file_url(dist.filename)
        entry: dict = {
            "filename": dist.filename,
            "url": url,
            "hashes": {"sha256": dist.sha256},
            "size": dist.size,
            "yanked": dist.yanked,
        }
        if dist.requires_python:
            entry["requires-python"] = dist.requires_python
        if dist.upload_time:
            entry["upload-time"] = dist.upload_time
        if self.metadata_key and dist.metadata is not None:
            entry[self.metadata_key] = {"sha256": dist.metadata_sha256}
        return entry


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """Clients that hang up (tests cut connections on purpose) are not worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # headers and body go out in two writes
    timeout = 10
    fixture: PyPIFixture

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_GET(self):
        path = unquote(urlsplit(self.path).path)
        status = self.fixture._take(self.fixture._failures, path)
        if status is not None:
            return self._send(path, status, b"injected failure\n", "text/plain")
        if path == "/simple/" or path == "/simple":
            doc = {"meta": {"api-version": "1.1"}, "projects": self._projects()}
            return self._send(path, 200, json.dumps(doc).encode(), JSON_TYPE)
        if path.startswith("/simple/"):
            return self._project(path)
        if path.startswith("/files/"):
            return self._file(path, path[len("/files/") :])
        self._send(path, 404, b"not found\n", "text/plain")

    def _projects(self) -> list[dict]:
        return [{"name": name} for name in self.fixture._project_names()]

    def _project(self, path: str):
        name = path[len("/simple/") :].strip("/")
        canonical = normalize(name)
        if name != canonical or not path.endswith("/"):
            return self._redirect(path, f"/simple/{canonical}/")
        page = self.fixture._project_page(canonical)
        if page is None:
            return self._send(path, 404, b"no such project\n", "text/plain")
        self._send(path, 200, json.dumps(page).encode(), self.fixture.page_content_type)

    def _file(self, path: str, filename: str):
        fixture = self.fixture
        if filename.endswith(".metadata"):
            dist = fixture.dists.get(filename[: -len(".metadata")])
            if (
                dist is None
                or dist.metadata is None
                or not fixture.serve_metadata
                or dist.filename in fixture.no_metadata
            ):
                return self._send(path, 404, b"not found\n", "text/plain")
            data = dist.metadata
            if fixture._take(fixture._corruptions, filename):
                data = _flip(data)
            return self._send(path, 200, data, "application/octet-stream")
        dist = fixture.dists.get(filename)
        if dist is None:
            return self._send(path, 404, b"not found\n", "text/plain")
        with fixture._lock:
            gate = fixture._holds.get(filename)
        if gate is not None:
            gate.wait()
        data = dist.data
        if fixture._take(fixture._corruptions, filename):
            data = _flip(data)
        asked = self.headers.get("Range")
        if asked and fixture.honor_range:
            return self._range(path, data, asked)
        if fixture._take(fixture._truncations, filename):
            return self._send(path, 200, data, "application/octet-stream", cut=len(data) // 2)
        self._send(path, 200, data, "application/octet-stream")

    def _range(self, path: str, data: bytes, asked: str):
        match = _RANGE.match(asked.strip())
        size = len(data)
        if not match or match.groups() == ("", ""):
            return self._send(path, 416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
        first, last = match.groups()
        if first == "":
            start, end = max(0, size - int(last)), size
        else:
            start = int(first)
            end = min(size, int(last) + 1) if last else size
        if start >= size or start >= end:
            return self._send(path, 416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
        extra = {"Content-Range": f"bytes {start}-{end - 1}/{size}"}
        self._send(path, 206, data[start:end], "application/octet-stream", extra)

    def _redirect(self, path: str, location: str):
        self._send(path, 301, b"", "text/plain", {"Location": location})

    def _send(self, path, status, body, ctype, extra=None, cut=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if status == 206 or (status == 200 and path.startswith("/files/")):
            self.send_header("Accept-Ranges", "bytes")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        payload = body if cut is None else body[:cut]
        # logged before the headers go out, so a client that has an answer sees its entry
        self.fixture._log(
            Request(
                path,
                self.headers.get("Range"),
                status,
                len(payload),
                self.client_address[1],
                {k.lower(): v for k, v in self.headers.items()},
            )
        )
        self.end_headers()
        try:
            self.wfile.write(payload)
            self.wfile.flush()
        except OSError:
            pass
        if cut is not None:
            self.close_connection = True  # the client sees the connection cut mid-body


def _flip(data: bytes) -> bytes:
    if not data:
        return data
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


@pytest.fixture
def pypi_server(tmp_path: Path) -> Iterator[PyPIFixture]:
    """A started :class:`PyPIFixture` writing its files under ``tmp_path / "pypi"``."""
    with PyPIFixture(tmp_path / "pypi") as server:
        yield server


FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.01)


@pytest.fixture
def fast_http() -> Iterator[HttpClient]:
    """An :class:`HttpClient` that retries 4 times with millisecond backoff."""
    with HttpClient(retry=FAST_RETRY, timeout=10) as client:
        yield client
