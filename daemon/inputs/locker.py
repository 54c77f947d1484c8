"""Lock an image config: resolve every input, pin it, and write the lock's text.

Three resolutions run side by side (each mostly waits on the network): the
wheels (``resolve``, for the config's CPython on bookworm's glibc), the Debian
toolchain and runtime closures (``debian``, from a verified InRelease), and
the CPython source with its signature and signing key (``cpython``).  The
result is a ``lockfile.Lock`` and its PEP 751 export; nothing is written to
disk here (the client writes the files).

Which Debian packages a build needs is policy, kept here: ``TOOLCHAIN``
compiles CPython (gcc, make, the C library and the -dev packages of every
extension module CPython builds), ``RUNTIME`` is what a compiled CPython links
against plus certificates, time zones and /etc/services; the config's
``base`` adds to the runtime.

Warm locks reuse, per daemon: the HTTP connections, the wheels' METADATA
(cached on disk by the wheel's SHA-256), a suite's parsed Packages index for
as long as its InRelease is the same, and the CPython suites' verified
Sources indexes for ``CPYTHON_TTL``.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import lockfile, pylock
from .config import ImageConfig, parse_config
from .cpython import RELEASE_MANAGERS, CPythonResolver, CPythonSource, Signer
from .debian import DEFAULT_KEYRING, DEFAULT_MIRROR, DEFAULT_SUITE, DebianArchive, PinnedPackage
from .http import HttpClient
from .pypi import DEFAULT_INDEX, SimpleIndex
from .resolve import PinnedWheel, ResolveError, resolve
from .target import DEFAULT_GLIBC, Target

# Searched in order until one carries the version (each costs its Sources index): the
# newest stable release first, which carries the CPython most configs ask for.
DEFAULT_CPYTHON_SUITES = ("trixie", "bookworm", "sid")
ARCH = "amd64"
GLIBC = DEFAULT_GLIBC  # bookworm's: the wheels must run on the runtime's C library
CPYTHON_TTL = 600.0  # seconds a daemon reuses the CPython suites' verified Sources indexes

TOOLCHAIN = (
    "gcc",
    "make",
    "mawk",  # configure's config.status runs awk (Priority required, not Essential)
    "libc6-dev",
    "pkg-config",
    "xz-utils",
    "libssl-dev",
    "zlib1g-dev",
    "libffi-dev",
    "libbz2-dev",
    "liblzma-dev",
    "libsqlite3-dev",
    "libncurses-dev",
    "libreadline-dev",
    "uuid-dev",
    "libgdbm-dev",
    "libgdbm-compat-dev",  # dbm.ndbm
    "libexpat1-dev",
)
RUNTIME = (
    "libc6",
    "libssl3",
    "zlib1g",
    "libffi8",
    "libbz2-1.0",
    "liblzma5",
    "libsqlite3-0",
    "libncursesw6",
    "libreadline8",
    "libuuid1",
    "libgdbm6",
    "libgdbm-compat4",  # dbm.ndbm
    "libexpat1",
    "ca-certificates",
    "tzdata",
    "netbase",
)


@dataclass(frozen=True)
class Sources:
    """Where a lock looks (defaults: PyPI, deb.debian.org bookworm, the archive keyring)."""

    pypi_index: str = DEFAULT_INDEX
    debian_mirror: str = DEFAULT_MIRROR
    debian_suite: str = DEFAULT_SUITE
    debian_keyring: bytes | None = None  # a keyring's bytes instead of the system's
    cpython_suites: tuple[str, ...] = DEFAULT_CPYTHON_SUITES
    # "X.Y" -> fingerprint: pins added to (or replacing) cpython.RELEASE_MANAGERS
    cpython_signers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class LockResult:
    lock_text: str
    pylock_text: str
    counts: dict[str, int] = field(default_factory=dict)


class _Getter:
    """``debian.Getter`` over the shared HTTP client (404 raises NotFound)."""

    def __init__(self, http: HttpClient):
        self._http = http

    def get(self, url: str) -> bytes:
        return self._http.get(url).body


class _Caches:
    """What outlives one lock in the daemon: connections and verified, parsed indexes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.http = HttpClient()
        self.archives: dict[tuple, DebianArchive] = {}
        self.cpython: dict[tuple, tuple[float, CPythonResolver]] = {}

    def cpython_resolver(
        self, sources: Sources, keyrings: tuple[str, ...], key: bytes
    ) -> CPythonResolver:
        """A resolver whose verified Sources indexes are reused for ``CPYTHON_TTL`` seconds.

        (Sources indexes are large and change a few times a day; the lock records
        which InRelease it read, so a reused one is still named exactly.)
        """
        signers = dict(RELEASE_MANAGERS)
        for series, fingerprint in sources.cpython_signers:
            signers[series] = Signer(f"pinned for {series}", fingerprint, "the lock request")
        ident = (sources.debian_mirror, sources.cpython_suites, key, sources.cpython_signers)
        now = time.monotonic()
        with self.lock:
            known = self.cpython.get(ident)
            if known is not None and now - known[0] < CPYTHON_TTL:
                return known[1]
        resolver = CPythonResolver(
            _Getter(self.http),
            mirror=sources.debian_mirror,
            suites=sources.cpython_suites,
            keyrings=keyrings,
            signers=signers,
        )
        with self.lock:
            self.cpython[ident] = (now, resolver)
        return resolver

    def archive(self, sources: Sources, keyrings: tuple[str, ...], key: bytes) -> DebianArchive:
        """A verified archive; its parsed index is kept while the InRelease stays the same."""
        ident = (sources.debian_mirror, sources.debian_suite, key)
        with self.lock:
            known = self.archives.get(ident)
        fresh = DebianArchive(
            _Getter(self.http),
            mirror=sources.debian_mirror,
            suite=sources.debian_suite,
            arch=ARCH,
            keyrings=keyrings,
            prefetch=known is None,  # a first lock reads the index: fetch it with the InRelease
        )
        release = fresh.release()
        with self.lock:
            known = self.archives.get(ident)
            if known is not None and known.release().inrelease_sha256 == release.inrelease_sha256:
                return known
            self.archives[ident] = fresh
        return fresh


_caches: _Caches | None = None
_caches_lock = threading.Lock()


def _shared() -> _Caches:
    global _caches
    with _caches_lock:
        if _caches is None:
            _caches = _Caches()
        return _caches


def lock(
    config_text: str, config_file: str, sources: Sources, scratch: Path, cache_dir: Path | None
) -> LockResult:
    """Resolve ``config_text`` into a lock (raises ConfigError, ResolveError, ...)."""
    config = parse_config(config_text, config_file)
    caches = _shared()
    keyrings = _keyrings(sources, scratch)
    target = Target.cpython(config.python_version, glibc=GLIBC)
    with ThreadPoolExecutor(3, thread_name_prefix="seal-lock") as pool:
        wheels_job = pool.submit(_wheels, config, target, sources, caches, cache_dir)
        debs_job = pool.submit(_debs, config, sources, caches, keyrings)
        cpython_job = pool.submit(_cpython, config, sources, caches, keyrings, scratch)
        wheels = wheels_job.result()
        archive, toolchain, runtime = debs_job.result()
        resolver, source = cpython_job.result()
    debian_sources = {
        lockfile.DebianSource.of(archive.release(), architecture=ARCH, components=("main",))
    }
    cpython_release, _ = resolver.find(config.python_version)
    debian_sources.add(
        lockfile.DebianSource.of(cpython_release, architecture="source", components=("main",))
    )
    artifacts = [
        *(_wheel_artifact(w) for w in wheels),
        *(_deb_artifact(p, "toolchain") for p in toolchain),
        *(_deb_artifact(p, "runtime") for p in runtime),
        *_cpython_artifacts(source),
    ]
    result = lockfile.Lock.for_config(
        config,
        target={
            "platform": "linux/amd64",
            "glibc": f"{GLIBC[0]}.{GLIBC[1]}",
            "python": target.describe(),
        },
        sources=lockfile.Sources(
            pypi=sources.pypi_index,
            cpython=sources.debian_mirror,
            debian=tuple(debian_sources),
        ),
        artifacts=artifacts,
        generator=lockfile.generator(),
    )
    counts = Counter(a.kind for a in result.artifacts)
    return LockResult(lockfile.dumps(result), pylock.export(result), dict(counts))


def check(config_text: str, config_file: str, lock_text: str, lock_file: str) -> list[str]:
    """Why the lock no longer fits the config (empty: it does)."""
    config = parse_config(config_text, config_file)
    return lockfile.check(lockfile.loads(lock_text, lock_file), config)


# -- the three resolutions ------------------------------------------------------------------
def _wheels(
    config: ImageConfig, target: Target, sources: Sources, caches: _Caches, cache_dir: Path | None
) -> tuple[PinnedWheel, ...]:
    index = SimpleIndex(sources.pypi_index, http=caches.http, cache_dir=cache_dir)
    resolution = resolve(config.packages, target, index)
    for wheel in resolution.wheels:
        if wheel.size is None:
            raise ResolveError(
                f"the index lists no size for {wheel.filename}",
                hint="the lock pins every file's size; use an index that gives it (PEP 700)",
            )
    return resolution.wheels


def _debs(
    config: ImageConfig, sources: Sources, caches: _Caches, keyrings: tuple[str, ...]
) -> tuple[DebianArchive, list[PinnedPackage], list[PinnedPackage]]:
    archive = caches.archive(sources, keyrings, sources.debian_keyring or b"")
    # the toolchain runs a shell and coreutils in the sandbox: Essential packages too
    toolchain = archive.closure(TOOLCHAIN, essential=True)
    runtime = archive.closure((*RUNTIME, *config.base))
    return archive, toolchain, runtime


def _cpython(
    config: ImageConfig,
    sources: Sources,
    caches: _Caches,
    keyrings: tuple[str, ...],
    scratch: Path,
) -> tuple[CPythonResolver, CPythonSource]:
    resolver = caches.cpython_resolver(sources, keyrings, sources.debian_keyring or b"")
    return resolver, resolver.resolve(config.python_version, scratch)


def _keyrings(sources: Sources, scratch: Path) -> tuple[str, ...]:
    if not sources.debian_keyring:
        return (str(DEFAULT_KEYRING),)
    path = scratch / "debian-keyring.gpg"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(sources.debian_keyring)
    return (str(path),)


# -- artifacts --------------------------------------------------------------------------------
def _wheel_artifact(w: PinnedWheel) -> lockfile.Artifact:
    details: dict[str, str | Sequence[str]] = {"tags": (w.tag,)}
    if w.dependencies:
        details["requires"] = tuple(w.dependencies)
    return lockfile.Artifact(
        kind="wheel",
        name=w.name,
        version=w.version,
        filename=w.filename,
        urls=(w.url,),
        sha256=w.sha256,
        size=w.size or 0,
        role="python",
        details=details,
    )


def _deb_artifact(p: PinnedPackage, role: str) -> lockfile.Artifact:
    return lockfile.Artifact(
        kind="deb",
        name=p.name,
        version=p.version,
        filename=p.url.rsplit("/", 1)[-1],
        urls=(p.url,),
        sha256=p.sha256,
        size=p.size,
        role=role,
        details={"architecture": p.architecture, "source": p.source},
    )


def _cpython_artifacts(s: CPythonSource) -> list[lockfile.Artifact]:
    common = {"name": "cpython", "role": "cpython"}
    return [
        lockfile.Artifact(
            kind="cpython-source",
            version=s.version,
            filename=s.tarball.filename,
            urls=s.tarball.urls,
            sha256=s.tarball.sha256,
            size=s.tarball.size,
            signer=s.signer_fingerprint,
            signature=s.signature.filename,
            details={"signer": s.signer_name, "suite": s.suite},
            **common,
        ),
        lockfile.Artifact(
            kind="signature",
            version=s.version,
            filename=s.signature.filename,
            urls=s.signature.urls,
            sha256=s.signature.sha256,
            size=s.signature.size,
            **common,
        ),
        lockfile.Artifact(
            kind="signing-key",
            version=s.debian_version,
            filename=s.signing_key.filename,
            urls=s.signing_key.urls,
            sha256=s.signing_key.sha256,
            size=s.signing_key.size,
            details={
                "key_sha256": s.signing_key_sha256,
                "member": "debian/upstream/signing-key.asc",
            },
            **common,
        ),
    ]
