"""A small HTTP(S) client for package indexes and artifacts, on the standard library.

One :class:`HttpClient` is shared by every thread of the daemon: it keeps a few
keep-alive connections per (scheme, host, port), follows redirects, retries what
is worth retrying (connection errors, 5xx, 429, truncated bodies) with
exponential backoff and jitter, and streams downloads while hashing them::

    client = HttpClient()
    page = client.get("https://pypi.org/simple/fastapi/", {"Accept": JSON})
    with open(path, "wb") as out:
        got = client.download(url, out, expected_sha256=sha, expected_size=size)

TLS uses ``ssl.create_default_context()``: the system trust store, which honours
``SSL_CERT_FILE``. Never certifi: sites that intercept TLS put their CA in the
system store only.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import random
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, TypeVar
from urllib.parse import urljoin, urlsplit

from seal.daemon.errors import DaemonError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_T = TypeVar("_T")


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("seal")
    except metadata.PackageNotFoundError:
        return "0+unknown"


USER_AGENT = f"seal/{_version()}"


# -- errors ---------------------------------------------------------------------------------


class HttpError(DaemonError):
    """Base class of the errors of this module; ``url`` is the address asked for."""

    reason = "http-error"

    def __init__(self, message: str, *, url: str, hint: str | None = None, temporary=False):
        super().__init__(message, hint=hint, temporary=temporary)
        self.url = url


class ConnectionFailed(HttpError):
    """No answer: DNS, refused or reset connection, TLS failure, timeout."""

    reason = "http-connection-failed"

    def __init__(self, url: str, cause: BaseException):
        tls = isinstance(cause, ssl.SSLError)
        super().__init__(
            f"cannot reach {url}: {_describe(cause)}",
            url=url,
            hint=(
                "the server's certificate is not trusted by the system store "
                "(set SSL_CERT_FILE to a bundle that has your site's CA)"
                if tls
                else "check the network and proxy settings, or use a mirror"
            ),
            temporary=not isinstance(cause, ssl.SSLCertVerificationError),
        )
        self.cause = cause


class HttpStatusError(HttpError):
    """The server answered with an error status (after retries, for 5xx and 429)."""

    reason = "http-status"

    def __init__(self, url: str, status: int, text: str = ""):
        temporary = status >= 500 or status == 429
        super().__init__(
            f"GET {url} answered HTTP {status}{' ' + text if text else ''}",
            url=url,
            hint="the server is failing or rate-limiting; try again later" if temporary else None,
            temporary=temporary,
        )
        self.status = status
        self.retry_after: float | None = None  # seconds, from a Retry-After header


class NotFound(HttpStatusError):
    """HTTP 404 or 410: the document or file does not exist."""

    reason = "http-not-found"


class TooManyRedirects(HttpError):
    """A chain of redirects is longer than the client allows (or loops)."""

    reason = "http-too-many-redirects"


class TruncatedBody(HttpError):
    """The body ended before Content-Length (or the expected size) was reached."""

    reason = "http-truncated"

    def __init__(self, url: str, got: int, expected: int | None):
        of = f" of {expected}" if expected is not None else ""
        super().__init__(
            f"download of {url} stopped after {got}{of} bytes",
            url=url,
            hint="the connection was cut; try again",
            temporary=True,
        )
        self.got = got
        self.expected = expected


class SizeMismatch(HttpError):
    """The body is longer than the size the caller pinned."""

    reason = "size-mismatch"

    def __init__(self, url: str, expected: int, actual: int):
        super().__init__(
            f"{url} is larger than expected: {actual} bytes or more, expected {expected}",
            url=url,
            hint="the file changed upstream or the mirror serves another file; re-lock it",
        )
        self.expected = expected
        self.actual = actual


class HashMismatch(HttpError):
    """The bytes of a download do not have the SHA-256 the caller pinned."""

    reason = "hash-mismatch"

    def __init__(self, url: str, expected: str, actual: str, *, artifact: str = ""):
        what = f"{artifact} from {url}" if artifact else url
        super().__init__(
            f"hash mismatch for {what}: expected sha256:{expected}, got sha256:{actual}",
            url=url,
            hint="the file changed upstream or was tampered with; nothing was stored",
        )
        self.artifact = artifact
        self.expected = expected
        self.actual = actual


class RangeNotSupported(HttpError):
    """The server ignored a Range header (answered 200 with the whole body)."""

    reason = "http-range-ignored"


class InvalidUrl(HttpError, ValueError):
    """The URL is not an absolute http(s) URL."""

    reason = "invalid-url"


def _describe(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    if isinstance(err, socket.gaierror):
        return f"name resolution failed ({err.strerror})"
    if isinstance(err, TimeoutError | socket.timeout):
        return "timed out"
    return text


# -- values ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    """A whole response: ``url`` is the final one (after redirects); header names are lowercase."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class RangeResponse:
    """Bytes ``[start, start + len(data))`` of a resource whose total size is ``total``."""

    url: str
    start: int
    data: bytes
    total: int | None


@dataclass(frozen=True)
class Download:
    """What :meth:`HttpClient.download` wrote: the final URL, sha256 (hex) and size."""

    url: str
    sha256: str
    size: int


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before trying again.

    ``attempts`` counts every try (1 means no retry). The n-th wait is
    ``min(max_delay, base_delay * 2**n)``, of which ``jitter`` (a fraction) is random.
    """

    attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 8.0
    jitter: float = 0.5

    def delay(self, retry: int) -> float:
        full = min(self.max_delay, self.base_delay * (2**retry))
        return full * (1 - self.jitter) + random.uniform(0, full * self.jitter)


# -- connection pool ------------------------------------------------------------------------

_Key = tuple[str, str, int]
_STALE = (
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)


@dataclass
class _Host:
    slots: threading.BoundedSemaphore
    idle: list[http.client.HTTPConnection] = field(default_factory=list)


class _Pool:
    """Idle keep-alive connections per (scheme, host, port), at most ``per_host`` in use at once."""

    def __init__(self, per_host: int, timeout: float, context: ssl.SSLContext):
        self._per_host = per_host
        self._timeout = timeout
        self._context = context
        self._lock = threading.Lock()
        self._hosts: dict[_Key, _Host] = {}

    def _host(self, key: _Key) -> _Host:
        with self._lock:
            host = self._hosts.get(key)
            if host is None:
                host = self._hosts[key] = _Host(threading.BoundedSemaphore(self._per_host))
            return host

    def acquire(self, key: _Key) -> tuple[http.client.HTTPConnection, bool]:
        """A connection (and whether it was reused); blocks while ``per_host`` are in use."""
        host = self._host(key)
        host.slots.acquire()
        with self._lock:
            if host.idle:
                return host.idle.pop(), True
        scheme, hostname, port = key
        if scheme == "https":
            conn = http.client.HTTPSConnection(
                hostname, port, timeout=self._timeout, context=self._context
            )
        else:
            conn = http.client.HTTPConnection(hostname, port, timeout=self._timeout)
        return conn, False

    def release(self, key: _Key, conn: http.client.HTTPConnection, reusable: bool) -> None:
        host = self._host(key)
        if reusable:
            with self._lock:
                host.idle.append(conn)
        else:
            conn.close()
        host.slots.release()

    def close(self) -> None:
        with self._lock:
            for host in self._hosts.values():
                for conn in host.idle:
                    conn.close()
                host.idle.clear()


# -- the client -----------------------------------------------------------------------------


class _Exchange:
    """One response being read, with the connection it holds until :meth:`finish`."""

    def __init__(
        self,
        pool: _Pool,
        key: _Key,
        conn: http.client.HTTPConnection,
        resp: http.client.HTTPResponse,
        url: str,
    ):
        self._pool = pool
        self._key = key
        self._conn = conn
        self.resp = resp
        self.url = url
        self._done = False

    @property
    def status(self) -> int:
        return self.resp.status

    def header(self, name: str) -> str | None:
        return self.resp.getheader(name)

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in self.resp.getheaders():
            key = name.lower()
            out[key] = f"{out[key]}, {value}" if key in out else value
        return out

    def content_length(self) -> int | None:
        value = self.header("Content-Length")
        if value is None or self.header("Transfer-Encoding"):
            return None
        try:
            return int(value)
        except ValueError:
            return None

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        """The body in pieces; raises :class:`TruncatedBody` when it ends early."""
        expected = self.content_length()
        got = 0
        while True:
            try:
                piece = self.resp.read(size)
            except http.client.IncompleteRead as e:
                raise TruncatedBody(self.url, got + len(e.partial), expected) from None
            except (OSError, http.client.HTTPException) as e:
                raise ConnectionFailed(self.url, e) from None
            if not piece:
                break
            got += len(piece)
            yield piece
        if expected is not None and got < expected:
            raise TruncatedBody(self.url, got, expected)

    def read_all(self) -> bytes:
        return b"".join(self.chunks())

    def read_to_end(self) -> bytes:
        """The whole body; the connection is kept only if it was read to its end."""
        complete = False
        try:
            body = self.read_all()
            complete = True
        finally:
            self.finish(reusable=complete)
        return body

    def finish(self, *, reusable: bool = True) -> None:
        """Give the connection back: to the pool if the body was read to its end."""
        if self._done:
            return
        self._done = True
        # a body read to its end leaves the response closed; anything else is unsafe to reuse
        ok = reusable and self.resp.isclosed()
        self._pool.release(self._key, self._conn, ok)


class HttpClient:
    """A thread-safe HTTP(S) client with keep-alive, redirects and retries (see module doc)."""

    def __init__(
        self,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        per_host: int = 6,
        max_redirects: int = 10,
        user_agent: str = USER_AGENT,
        ssl_context: ssl.SSLContext | None = None,
    ):
        self.retry = retry or RetryPolicy()
        self.max_redirects = max_redirects
        self.user_agent = user_agent
        context = ssl_context or ssl.create_default_context()
        self._pool = _Pool(per_host, timeout, context)

    def close(self) -> None:
        """Close the idle connections (the client stays usable: it opens new ones)."""
        self._pool.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # public API

    def get(self, url: str, headers: Mapping[str, str] | None = None) -> Response:
        """GET ``url`` and read the whole body (gzip-decoded if the server compressed it).

        Raises :class:`NotFound` on 404/410, :class:`HttpStatusError` on other
        error statuses, :class:`ConnectionFailed`, :class:`TruncatedBody` (the
        retryable ones only once the retry policy gives up).
        """
        asked = {"Accept-Encoding": "gzip", **(headers or {})}

        def once() -> Response:
            ex = self._open(url, asked)
            body, headers = ex.read_to_end(), ex.headers()
            if headers.get("content-encoding", "").lower() == "gzip":
                body = _gunzip(ex.url, body)
            return Response(ex.url, ex.status, headers, body)

        return self._retrying(url, once)

    def get_range(self, url: str, start: int, end: int | None = None) -> RangeResponse:
        """Bytes ``[start, end)`` of ``url``; ``end=None`` reads to the end.

        A negative ``start`` asks for the last ``-start`` bytes (the total size
        comes back in the answer). Raises :class:`RangeNotSupported` when the
        server ignores Range and answers 200: the caller decides how to fall back.
        """
        if start < 0:
            spec = f"bytes={start}"
        elif end is None:
            spec = f"bytes={start}-"
        elif end <= start:
            raise ValueError(f"empty range [{start}, {end})")
        else:
            spec = f"bytes={start}-{end - 1}"
        asked = {"Range": spec, "Accept-Encoding": "identity"}

        def once() -> RangeResponse:
            ex = self._open(url, asked)
            if ex.status != 206:
                ex.finish(reusable=False)  # do not read a whole file nobody asked for
                raise RangeNotSupported(
                    f"{url} ignored the Range header (HTTP {ex.status})",
                    url=url,
                    hint="the server does not serve byte ranges; download the whole file",
                )
            data = ex.read_to_end()
            first, total = _content_range(ex.url, ex.header("Content-Range"))
            _check_range(ex.url, spec, first, data, start, end, total)
            return RangeResponse(ex.url, first, data, total)

        return self._retrying(url, once)

    def download(
        self,
        url: str,
        dest: BinaryIO,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
        *,
        artifact: str = "",
    ) -> Download:
        """Stream ``url`` into ``dest``, hashing while writing; verify size and hash.

        A truncated body is retried (``dest`` is rewound and truncated to where it
        started, so it must be seekable for retries). A hash or size mismatch is
        not retried and names the URL, the expected and the actual value; the
        bytes already written stay in ``dest``: the caller discards them.
        """
        expected_sha256 = expected_sha256.lower() if expected_sha256 else None
        origin = dest.tell() if dest.seekable() else None
        attempt = 0

        def once() -> Download:
            nonlocal attempt
            if attempt:  # a retry: only when dest could be rewound (can_retry)
                dest.seek(origin)
                dest.truncate()
            attempt += 1
            return self._download_once(url, dest, expected_sha256, expected_size, artifact)

        return self._retrying(url, once, can_retry=lambda: origin is not None)

    # internals

    def _download_once(
        self,
        url: str,
        dest: BinaryIO,
        expected_sha256: str | None,
        expected_size: int | None,
        artifact: str,
    ) -> Download:
        ex = self._open(url, {"Accept-Encoding": "identity"})
        digest = hashlib.sha256()
        size = 0
        reusable = False
        try:
            length = ex.content_length()
            if expected_size is not None and length is not None and length > expected_size:
                raise SizeMismatch(ex.url, expected_size, length)
            for piece in ex.chunks():
                size += len(piece)
                if expected_size is not None and size > expected_size:
                    raise SizeMismatch(ex.url, expected_size, size)
                digest.update(piece)
                dest.write(piece)
            reusable = True
        finally:
            ex.finish(reusable=reusable)
        if expected_size is not None and size < expected_size:
            raise TruncatedBody(ex.url, size, expected_size)
        actual = digest.hexdigest()
        if expected_sha256 is not None and actual != expected_sha256:
            raise HashMismatch(ex.url, expected_sha256, actual, artifact=artifact)
        return Download(ex.url, actual, size)

    def _retrying(
        self, url: str, once: Callable[[], _T], can_retry: Callable[[], bool] = lambda: True
    ) -> _T:
        policy = self.retry
        for attempt in range(policy.attempts):
            try:
                return once()
            except HttpError as e:
                last = attempt == policy.attempts - 1
                if not e.temporary or last or not can_retry():
                    raise
                wait = policy.delay(attempt)
                after = e.retry_after if isinstance(e, HttpStatusError) else None
                if after is not None:
                    wait = max(wait, min(after, policy.max_delay))
                log.debug("retrying %s in %.2fs after: %s", url, wait, e.message)
                time.sleep(wait)
        raise AssertionError("unreachable")  # attempts < 1

    def _open(self, url: str, headers: Mapping[str, str]) -> _Exchange:
        """Send a GET, following redirects; returns a 2xx exchange, raises on error statuses."""
        seen = [url]
        for _ in range(self.max_redirects + 1):
            ex = self._send(url, headers)
            if ex.status in REDIRECTS and ex.header("Location"):
                target = urljoin(url, ex.header("Location") or "")
                _drain(ex)
                if target in seen:
                    break
                seen.append(target)
                url = target
                continue
            if ex.status >= 400:
                _raise_status(ex)
            return ex
        raise TooManyRedirects(
            f"too many redirects from {seen[0]} (last: {url})",
            url=seen[0],
            hint="the server redirects in a loop or too deep",
        )

    def _send(self, url: str, headers: Mapping[str, str]) -> _Exchange:
        key, target = _split(url)
        sent = {"User-Agent": self.user_agent, **headers}
        while True:
            conn, reused = self._pool.acquire(key)
            try:
                conn.request("GET", target, headers=sent)
                resp = conn.getresponse()
            except _STALE as e:
                self._pool.release(key, conn, False)
                if reused:
                    continue  # the server closed an idle keep-alive connection: open a new one
                raise ConnectionFailed(url, e) from None
            except (OSError, http.client.HTTPException) as e:
                self._pool.release(key, conn, False)
                raise ConnectionFailed(url, e) from None
            return _Exchange(self._pool, key, conn, resp, url)


def _split(url: str) -> tuple[_Key, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidUrl(f"not an http(s) URL: {url!r}", url=url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidUrl(f"bad port in URL {url!r}", url=url) from None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return (parts.scheme, parts.hostname, port), target


def _drain(ex: _Exchange) -> None:
    """Read a small body (redirect, error page) so the connection can be reused."""
    try:
        length = ex.content_length()
        if length is not None and length <= 64 * 1024:
            ex.read_all()
            ex.finish()
            return
    except HttpError:
        pass
    ex.finish(reusable=False)


def _raise_status(ex: _Exchange) -> None:
    status = ex.status
    _drain(ex)
    err_type = NotFound if status in (404, 410) else HttpStatusError
    err = err_type(ex.url, status, ex.resp.reason or "")
    err.retry_after = _retry_after(ex.header("Retry-After"))
    raise err


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare enough to use our own backoff


def _gunzip(url: str, body: bytes) -> bytes:
    try:
        return zlib.decompress(body, wbits=47)  # gzip or zlib container
    except zlib.error as e:
        raise HttpError(f"{url} sent a corrupt gzip body: {e}", url=url, temporary=True) from None


def _content_range(url: str, value: str | None) -> tuple[int, int | None]:
    """First byte and total size from ``Content-Range: bytes first-last/total``."""
    try:
        unit, _, rest = (value or "").partition(" ")
        span, _, total = rest.partition("/")
        first = int(span.split("-", 1)[0])
        if unit.strip().lower() != "bytes":
            raise ValueError(unit)
        return first, None if total.strip() == "*" else int(total)
    except ValueError:
        raise HttpError(f"{url} answered 206 with a bad Content-Range {value!r}", url=url) from None


def _check_range(
    url: str, spec: str, first: int, data: bytes, start: int, end: int | None, total: int | None
) -> None:
    """A 206 must hold the bytes asked for: servers that shift ranges are not trusted."""
    if start < 0:
        wanted = max(0, total + start) if total is not None else first
        ok = first == wanted
    else:
        ok = first == start and (end is None or first + len(data) <= end)
    if not ok:
        raise HttpError(
            f"{url} answered {spec!r} with bytes from {first} (+{len(data)})",
            url=url,
            hint="the server's range support is broken; download the whole file",
        )
