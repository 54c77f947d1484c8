"""Builtins: deterministic, versioned functions inside seal that a derivation can name.

A builtin's ``(name, version)`` is part of every dependent derivation's digest,
so changing what one produces means adding a new version, never editing an old
one.  Fixed-output builtins (fetches) are the only code that reaches the
network, and their result must match the derivation's declared SHA-256.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seal.daemon.errors import BuildFailed, InvalidDerivation
from seal.store import Store
from seal.store.digest import Digest

from .derivation import BuiltinBuilder, Derivation

FETCH_TIMEOUT = 60.0
CHUNK = 1 << 20


@dataclass(frozen=True)
class BuiltinContext:
    store: Store
    drv: Derivation
    inputs: Mapping[str, Digest]  # input name -> object digest (dep outputs resolved)
    scratch: Path  # a private directory for the builtin's temporary files
    log: Callable[[bytes], None]
    cancelled: Callable[[], bool]


Builtin = Callable[[BuiltinContext], dict[str, Digest]]


def _fetch_url_v1(ctx: BuiltinContext) -> dict[str, Digest]:
    """Download ``params.url`` (https or http) and keep it if its SHA-256 is the declared one."""
    url = ctx.drv.builder.params["url"]  # type: ignore[union-attr]
    want = ctx.drv.fixed_sha256
    ctx.log(f"fetching {url}\n".encode())
    target = ctx.scratch / "download"
    digest = hashlib.sha256()
    size = 0
    try:
        # The system trust store (and SSL_CERT_FILE) decides which servers are trusted.
        context = ssl.create_default_context()
        with (
            urllib.request.urlopen(url, timeout=FETCH_TIMEOUT, context=context) as resp,
            open(target, "wb") as out,
        ):
            while chunk := resp.read(CHUNK):
                if ctx.cancelled():
                    raise BuildFailed("cancelled")
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BuildFailed(f"fetching {url} failed: {reason}") from None
    got = digest.hexdigest()
    if got != want:
        raise BuildFailed(
            f"{url}: hash mismatch: expected sha256:{want}, got sha256:{got} ({size} bytes)",
            hint="the server sent other bytes than the derivation pins; nothing was stored",
        )
    ctx.log(f"fetched {size} bytes, sha256:{got}\n".encode())
    return {"out": ctx.store.put_hashed_file(target, Digest.from_hex(got), size)}


def _check_fetch_url_v1(params: Mapping[str, Any], drv: Derivation, where: str) -> None:
    url = params.get("url")
    if set(params) != {"url"} or not isinstance(url, str):
        raise InvalidDerivation('params is {"url": "<https URL>"}', where=where)
    if not url.startswith(("https://", "http://")):
        raise InvalidDerivation(f"{url!r} is not an http(s) URL", where=where)
    _require_fixed(drv, where)


def _fetch_url_v2(ctx: BuiltinContext) -> dict[str, Digest]:
    """Download the first of ``params.urls`` that serves the pinned bytes; keep them.

    Each URL gets the HTTP client's retries (connection errors, 5xx, 429,
    truncated bodies, with backoff); a URL that fails for good, or serves other
    bytes, hands over to the next (a mirror).  Size and SHA-256 are checked
    while the bytes arrive; nothing is stored unless both match.
    """
    from seal.daemon.inputs.http import HttpError

    params = ctx.drv.builder.params  # type: ignore[union-attr]
    want, size = ctx.drv.fixed_sha256, params["size"]
    target = ctx.scratch / "download"
    failures: list[HttpError] = []
    for url in params["urls"]:
        if ctx.cancelled():
            raise BuildFailed("cancelled")
        ctx.log(f"fetching {url}\n".encode())
        try:
            with open(target, "wb") as out:
                got = _http().download(url, out, want, size, artifact=ctx.drv.name)
        except HttpError as exc:
            ctx.log(f"  {exc.message}\n".encode())
            failures.append(exc)
            continue
        ctx.log(f"fetched {got.size} bytes, sha256:{got.sha256}\n".encode())
        # hashed and checked while downloading: renamed into the store, not copied and re-hashed
        stored = ctx.store.put_hashed_file(target, Digest.from_hex(got.sha256), got.size)
        return {"out": stored}
    with contextlib.suppress(FileNotFoundError):
        os.unlink(target)
    first = failures[0]
    more = f" (and {len(failures) - 1} more URLs failed)" if len(failures) > 1 else ""
    named = first.message if ctx.drv.name in first.message else f"{ctx.drv.name}: {first.message}"
    raise BuildFailed(named + more, hint=first.hint)


_client_lock = threading.Lock()
_client = None


# Connections per host: as many as the realizer runs fetches at once (RealizerConfig's
# max_fetches), so that a lock's files, nearly all on one mirror, do not queue for them.
FETCH_CONNECTIONS = 8


def _http():
    """One HTTP client per daemon, so fetches share kept-alive connections."""
    global _client
    with _client_lock:
        if _client is None:
            from seal.daemon.inputs.http import HttpClient

            _client = HttpClient(per_host=FETCH_CONNECTIONS)
        return _client


def _check_fetch_url_v2(params: Mapping[str, Any], drv: Derivation, where: str) -> None:
    urls, size = params.get("urls"), params.get("size")
    if (
        set(params) != {"urls", "size"}
        or not isinstance(urls, list)
        or not urls
        or not isinstance(size, int)
        or isinstance(size, bool)
        or size < 0
    ):
        raise InvalidDerivation(
            'params is {"urls": ["<https URL>", <mirrors>...], "size": <bytes>}', where=where
        )
    for url in urls:
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise InvalidDerivation(f"{url!r} is not an http(s) URL", where=where)
    _require_fixed(drv, where)


def _require_fixed(drv: Derivation, where: str) -> None:
    if drv.fixed_sha256 is None:
        raise InvalidDerivation(
            'fetch-url needs a declared hash: add "fixed": {"sha256": ...}', where=where
        )


_REGISTRY: dict[tuple[str, int], tuple[Builtin, Callable[..., None]]] = {
    ("fetch-url", 1): (_fetch_url_v1, _check_fetch_url_v1),
    ("fetch-url", 2): (_fetch_url_v2, _check_fetch_url_v2),
}


def _registry() -> dict[tuple[str, int], tuple[Builtin, Callable[..., None]]]:
    """The fetch builtins here, plus the image steps (their own module, loaded on first use)."""
    from .image_builtins import IMAGE_BUILTINS

    return {**_REGISTRY, **IMAGE_BUILTINS}


def validate(drv: Derivation, where: str = "derivation") -> None:
    """Refuse an unknown builtin or version, or parameters it does not take."""
    builder = drv.builder
    if not isinstance(builder, BuiltinBuilder):
        return
    registry = _registry()
    entry = registry.get((builder.builtin, builder.version))
    if entry is None:
        known = ", ".join(f"{n} v{v}" for n, v in sorted(registry))
        raise InvalidDerivation(
            f"unknown builtin {builder.builtin!r} version {builder.version} (known: {known})",
            where=f"{where}.builder",
        )
    entry[1](builder.params, drv, f"{where}.builder.params")


def run(ctx: BuiltinContext) -> dict[str, Digest]:
    builder = ctx.drv.builder
    assert isinstance(builder, BuiltinBuilder)
    return _registry()[(builder.builtin, builder.version)][0](ctx)
