"""The lock: every input of an image config pinned by URL, SHA-256 and size, as reviewable TOML.

    lock = Lock.for_config(config, target=..., sources=..., artifacts=..., generator=generator())
    Path("image.lock").write_text(dumps(lock))
    lock = loads(Path("image.lock").read_text(), "image.lock")
    stale = check(lock, config)          # [] when the lock still fits the config

The text form is canonical: ``dumps`` sorts everything and writes keys in a
fixed order, so ``dumps(loads(t)) == t`` for any ``t`` that ``dumps`` wrote and a
re-lock that changes one wheel changes a few lines.  It holds no timestamp of
its own; the only dates are the ones the sources carry (an InRelease ``Date``).

The writer is seal's own (``tomlwrite``, ~50 lines) rather than ``tomli-w``:
the schema is fixed, the layout (one array element per line, one
``[[artifact]]`` table each) is part of the format, and the daemon gains no
dependency.  Reading
uses ``tomllib``; it gives no line numbers, so errors find the line of the table
they are about in the text themselves.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name

from seal.daemon.errors import InvalidDocument

from .config import PYTHON_VERSION_RE, ImageConfig, PackagePin
from .signature import FINGERPRINT_RE
from .tomlwrite import key_value

if TYPE_CHECKING:
    from .debian_release import Release

LOCK_VERSION = 1
KINDS = ("wheel", "deb", "cpython-source", "signature", "signing-key")
ROLES = ("python", "toolchain", "runtime", "cpython")
_ROLES_OF_KIND = {
    "wheel": ("python",),
    "deb": ("toolchain", "runtime"),
    "cpython-source": ("cpython",),
    "signature": ("cpython",),
    "signing-key": ("cpython",),
}
_SUFFIX_OF_KIND = {"wheel": ".whl", "deb": ".deb"}
_SHA256 = re.compile(r"[0-9a-f]{64}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_REQUIREMENT = re.compile(
    r"(?P<name>[a-z0-9]([a-z0-9-]*[a-z0-9])?)(\[(?P<extras>[^\]]*)\])?==(?P<version>[^\s,;=\[\]]+)"
)
_URL_SCHEMES = ("https://", "http://", "file://")
_HINT = "regenerate it with 'seal lock CONFIG'"

Details = Mapping[str, "str | tuple[str, ...]"]


class LockError(InvalidDocument):
    """A lock file is unreadable or breaks the schema; ``str()`` is ``file:line: message``.

    ``problems`` holds every problem found (this one first), each already located.
    """

    reason = "lock-invalid"

    def __init__(
        self,
        message: str,
        *,
        file: str = "",
        line: int | None = None,
        reason: str | None = None,
        hint: str | None = _HINT,
    ):
        super().__init__(message, hint=hint)
        self.file = file
        self.line = line
        if reason is not None:
            self.reason = reason
        self.problems: tuple[str, ...] = (str(self),)

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        return f"{where}: {self.message}" if where else self.message


# -- the model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    """One pinned file.  ``urls[0]`` is preferred, the rest are mirrors.

    ``signer`` is the OpenPGP fingerprint a detached signature must come from;
    ``signature`` the filename of that signature's own artifact (kind ``signature``).
    ``details`` is a small mapping (wheel tags, deb architecture, source package,
    dependencies), kept sorted; values are strings or tuples of strings.
    """

    kind: str
    name: str
    version: str
    filename: str
    urls: tuple[str, ...]
    sha256: str
    size: int
    role: str
    signer: str | None = None
    signature: str | None = None
    details: Details = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "urls", tuple(self.urls))
        object.__setattr__(self, "details", _frozen_details(self.details))

    @property
    def sort_key(self) -> tuple[str, str, str, str, str]:
        return (self.role, self.kind, self.name, self.version, self.filename)

    @property
    def label(self) -> str:
        """How errors name it: ``wheel fastapi 0.104.1 (python)``."""
        return f"{self.kind} {self.name} {self.version} ({self.role})"


@dataclass(frozen=True)
class DebianSource:
    """The verified InRelease a set of .debs was read from (a later fetch may need it)."""

    mirror: str
    suite: str
    codename: str
    architecture: str
    components: tuple[str, ...]
    date: datetime  # the InRelease Date field, time-zone aware
    inrelease_url: str
    inrelease_sha256: str
    inrelease_size: int
    signers: tuple[str, ...]  # fingerprints gpgv reported

    def __post_init__(self) -> None:
        object.__setattr__(self, "components", tuple(self.components))
        object.__setattr__(self, "signers", tuple(sorted(self.signers)))

    @classmethod
    def of(cls, release: Release, *, architecture: str, components: Iterable[str]) -> DebianSource:
        """From a verified ``debian_release.Release`` and what was read of it."""
        return cls(
            mirror=release.mirror,
            suite=release.suite,
            codename=release.codename,
            architecture=architecture,
            components=tuple(components),
            date=release.date,
            inrelease_url=release.inrelease_url,
            inrelease_sha256=release.inrelease_sha256,
            inrelease_size=release.inrelease_size,
            signers=release.signers,
        )


@dataclass(frozen=True)
class Sources:
    """Where the artifacts were found: the simple index, Debian suites, the CPython source."""

    pypi: str = ""  # the PEP 691 index URL
    cpython: str = ""  # where the CPython tarball was looked up
    debian: tuple[DebianSource, ...] = ()

    def __post_init__(self) -> None:
        ordered = sorted(self.debian, key=lambda d: (d.mirror, d.suite, d.architecture))
        object.__setattr__(self, "debian", tuple(ordered))


@dataclass(frozen=True)
class Lock:
    """A lock for one image config.  The constructor sorts; ``loads`` validates.

    ``python_version``, ``build_type``, ``platforms``, ``packages`` and ``base`` are
    the config values the lock was made for (what ``check`` compares); the image's
    name is kept for people only: renaming an image does not stale its lock.
    """

    config_name: str
    config_digest: str  # config_fingerprint() of the config it was made for
    python_version: str
    target: Mapping[str, str] = field(hash=False)  # platform, glibc, ...
    sources: Sources
    artifacts: tuple[Artifact, ...]
    generator: str  # "seal 0.1.0"
    build_type: str = "hermetic"
    platforms: tuple[str, ...] = ("linux/amd64",)
    packages: tuple[PackagePin, ...] = ()
    base: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        target = MappingProxyType(dict(sorted(self.target.items())))
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "artifacts", tuple(sorted(self.artifacts, key=_artifact_key)))
        object.__setattr__(self, "platforms", tuple(sorted(set(self.platforms))))
        object.__setattr__(self, "packages", tuple(sorted(self.packages, key=lambda p: p.name)))
        object.__setattr__(self, "base", tuple(sorted(set(self.base))))

    @classmethod
    def for_config(
        cls,
        config: ImageConfig,
        *,
        target: Mapping[str, str],
        sources: Sources,
        artifacts: Iterable[Artifact],
        generator: str,
    ) -> Lock:
        """A lock whose config part is taken from ``config``."""
        return cls(
            config_name=config.name,
            config_digest=config_fingerprint(config),
            python_version=config.python_version,
            target=target,
            sources=sources,
            artifacts=tuple(artifacts),
            generator=generator,
            build_type=config.build_type,
            platforms=config.platforms,
            packages=tuple(
                PackagePin(p.name, p.version, p.extras, p.name) for p in config.packages
            ),
            base=config.base,
        )

    def select(self, *, kind: str | None = None, role: str | None = None) -> tuple[Artifact, ...]:
        """The artifacts of one kind and/or role, in lock order."""
        return tuple(
            a
            for a in self.artifacts
            if (kind is None or a.kind == kind) and (role is None or a.role == role)
        )


def _artifact_key(artifact: Artifact) -> tuple[str, ...]:
    return artifact.sort_key + (artifact.sha256,)


def _frozen_details(details: Details) -> Details:
    items = {k: tuple(v) if isinstance(v, list | tuple) else v for k, v in details.items()}
    return MappingProxyType(dict(sorted(items.items())))


def generator() -> str:
    """``seal <installed version>`` for ``Lock.generator``."""
    try:
        return f"seal {metadata.version('seal')}"
    except metadata.PackageNotFoundError:
        return "seal (unknown version)"


# -- what the lock depends on in the config -------------------------------------------------


def config_fingerprint(config: ImageConfig) -> str:
    """``sha256:<hex>`` of the parts of ``config`` that decide what gets locked.

    Only python_version, packages (with extras), base packages, platforms and
    build_type count; name, env, cmd, app, tests do not, so changing them keeps
    the lock current.  Order-free parts (base, platforms, extras) are sorted.
    """
    canonical = {
        "form": 1,  # bump when this canonical form changes
        "python_version": config.python_version,
        "packages": sorted([p.name, p.version, sorted(p.extras)] for p in config.packages),
        "base": sorted(set(config.base)),
        "platforms": sorted(set(config.platforms)),
        "build_type": config.build_type,
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def check(lock: Lock, config: ImageConfig) -> list[str]:
    """Why ``lock`` no longer fits ``config``, one line per reason; empty when it does."""
    reasons = []
    if lock.python_version != config.python_version:
        reasons.append(
            f"python_version changed: {lock.python_version} in the lock, "
            f"{config.python_version} in the config"
        )
    reasons += _package_reasons(lock.packages, config.packages)
    locked_base, wanted_base = set(lock.base), set(config.base)
    reasons += [
        f"base package {b!r} was added to the config" for b in sorted(wanted_base - locked_base)
    ]
    reasons += [
        f"base package {b!r} was removed from the config" for b in sorted(locked_base - wanted_base)
    ]
    if set(lock.platforms) != set(config.platforms):
        reasons.append(
            f"platforms changed: {', '.join(lock.platforms)} in the lock, "
            f"{', '.join(sorted(config.platforms))} in the config"
        )
    if lock.build_type != config.build_type:
        reasons.append(
            f"build_type changed: {lock.build_type} in the lock, {config.build_type} in the config"
        )
    if lock.config_digest != config_fingerprint(config) and not reasons:
        reasons.append(
            "the config digest differs from the lock's (its [config] table was edited, or an "
            "older seal wrote it)"
        )
    return reasons


def _package_reasons(locked: Iterable[PackagePin], wanted: Iterable[PackagePin]) -> list[str]:
    old = {p.name: p for p in locked}
    new = {p.name: p for p in wanted}
    reasons = []
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name), new.get(name)
        if before is None:
            assert after is not None
            reasons.append(f"package {name!r} {after.version} was added to the config")
        elif after is None:
            reasons.append(f"package {name!r} was removed from the config")
        elif before.version != after.version:
            reasons.append(
                f"package {name!r} changed: {before.version} in the lock, "
                f"{after.version} in the config"
            )
        elif tuple(sorted(before.extras)) != tuple(sorted(after.extras)):
            reasons.append(
                f"extras of {name!r} changed: [{', '.join(sorted(before.extras))}] in the lock, "
                f"[{', '.join(sorted(after.extras))}] in the config"
            )
    return reasons


# -- writing --------------------------------------------------------------------------------

_HEADER = "# seal lock file: written by 'seal lock', checked by 'seal lock --check'. Do not edit.\n"


def dumps(lock: Lock) -> str:
    """The canonical text of ``lock``.

    Raises:
        LockError: the lock breaks the schema (``loads`` would reject the text).
    """
    problems = [message for _, message in _lock_problems(lock)]
    if problems:
        error = LockError(f"cannot write an invalid lock: {problems[0]}", hint=None)
        error.problems = tuple(problems)
        raise error
    parts = [_HEADER, f"lock_version = {LOCK_VERSION}\n", key_value("generator", lock.generator)]
    parts += ["\n[config]\n"] + [key_value(k, v) for k, v in _config_table(lock)]
    parts += ["\n[target]\n"] + [key_value(k, v) for k, v in lock.target.items()]
    parts += ["\n[sources]\n", key_value("pypi", lock.sources.pypi)]
    parts += [key_value("cpython", lock.sources.cpython)]
    for debian in lock.sources.debian:
        parts += ["\n[[sources.debian]]\n"] + [
            key_value(k, getattr(debian, k)) for k in _DEBIAN_KEYS
        ]
    parts += [_artifact_text(artifact) for artifact in lock.artifacts]
    return "".join(parts)


def _config_table(lock: Lock) -> list[tuple[str, Any]]:
    return [
        ("name", lock.config_name),
        ("digest", lock.config_digest),
        ("python_version", lock.python_version),
        ("build_type", lock.build_type),
        ("platforms", lock.platforms),
        ("packages", tuple(_requirement(p) for p in lock.packages)),
        ("base", lock.base),
    ]


def _artifact_text(artifact: Artifact) -> str:
    lines = ["\n[[artifact]]\n"] + [key_value(k, getattr(artifact, k)) for k in _ARTIFACT_KEYS]
    lines += [key_value(k, getattr(artifact, k)) for k in _OPTIONAL_KEYS if getattr(artifact, k)]
    if artifact.details:
        lines += ["\n[artifact.details]\n"]
        lines += [key_value(k, v) for k, v in artifact.details.items()]
    return "".join(lines)


_ARTIFACT_KEYS = ("kind", "name", "version", "role", "filename", "sha256", "size", "urls")
_OPTIONAL_KEYS = ("signer", "signature")
_DEBIAN_KEYS = (
    "mirror",
    "suite",
    "codename",
    "architecture",
    "components",
    "date",
    "inrelease_url",
    "inrelease_sha256",
    "inrelease_size",
    "signers",
)


def _requirement(pin: PackagePin) -> str:
    extras = f"[{','.join(sorted(pin.extras))}]" if pin.extras else ""
    return f"{pin.name}{extras}=={pin.version}"


# -- checking (shared by dumps and loads) ---------------------------------------------------


# Where a problem is: an artifact's index, a table's name ("config"), or None (no one place).
_Problem = tuple[int | str | None, str]


def _lock_problems(lock: Lock) -> list[_Problem]:
    """Every schema problem of a lock, each with where it is."""
    problems: list[_Problem] = []
    for table, message in _head_problems(lock):
        problems.append((table, f"{table}: {message}"))
    for i, artifact in enumerate(lock.artifacts):
        problems += [(i, f"artifact {artifact.label}: {m}") for m in _artifact_problems(artifact)]
    problems += [(None, m) for m in _cross_problems(lock.artifacts)]
    return problems


def _head_problems(lock: Lock) -> Iterable[tuple[str, str]]:
    if not _DIGEST.fullmatch(lock.config_digest):
        yield "config", f"digest {lock.config_digest!r} is not sha256: and 64 lowercase hex digits"
    if not PYTHON_VERSION_RE.fullmatch(lock.python_version):
        yield "config", f"python_version {lock.python_version!r} is not X.Y.Z"
    names = [p.name for p in lock.packages]
    for p in lock.packages:
        if canonicalize_name(p.name) != p.name or not _REQUIREMENT.fullmatch(_requirement(p)):
            yield "config", f"package {p.name!r} {p.version!r} is not a normalized name==version"
    for name in sorted({n for n in names if names.count(n) > 1}):
        yield "config", f"package {name!r} is listed twice"
    for key, value in lock.target.items():
        if not _BARE_KEY.fullmatch(key) or not isinstance(value, str):
            yield "target", f"{key!r} = {value!r}: keys are letters, digits, '_', '-'; values text"
    for debian in lock.sources.debian:
        yield from (("sources.debian", m) for m in _debian_problems(debian))


def _debian_problems(debian: DebianSource) -> Iterable[str]:
    name = f"{debian.mirror} {debian.suite}"
    if not _SHA256.fullmatch(debian.inrelease_sha256):
        yield f"{name}: inrelease_sha256 {debian.inrelease_sha256!r} is not 64 lowercase hex digits"
    if debian.inrelease_size < 0:
        yield f"{name}: inrelease_size {debian.inrelease_size} is negative"
    if debian.date.tzinfo is None:
        yield f"{name}: date {debian.date} has no time zone"
    for signer in debian.signers:
        if not FINGERPRINT_RE.fullmatch(signer):
            yield f"{name}: signer {signer!r} is not an OpenPGP fingerprint"


def _is_texts(value: Any) -> bool:
    return isinstance(value, tuple | list) and all(isinstance(v, str) for v in value)


def _artifact_problems(a: Artifact) -> Iterable[str]:
    """What is wrong with one artifact on its own."""
    if a.kind not in KINDS:
        yield f"unknown kind {a.kind!r} (known: {', '.join(KINDS)})"
    elif a.role not in _ROLES_OF_KIND[a.kind]:
        allowed = " or ".join(_ROLES_OF_KIND[a.kind])
        yield f"role {a.role!r} does not fit kind {a.kind!r} (use {allowed})"
    for key in ("name", "version", "filename"):
        if not getattr(a, key):
            yield f"{key} is empty"
    if a.filename in (".", "..") or "/" in a.filename or "\0" in a.filename:
        yield f"filename {a.filename!r} is not a plain file name"
    suffix = _SUFFIX_OF_KIND.get(a.kind)
    if suffix and not a.filename.endswith(suffix):
        yield f"filename {a.filename!r} of a {a.kind} does not end in {suffix}"
    if not _SHA256.fullmatch(a.sha256):
        yield f"sha256 {a.sha256!r} is not 64 lowercase hex digits"
    if a.size < 0:
        yield f"size {a.size} is negative"
    if not a.urls:
        yield "it has no URL"
    for url in a.urls:
        if not url.startswith(_URL_SCHEMES):
            yield f"URL {url!r} is not http(s) or file"
    if a.signer is not None and not FINGERPRINT_RE.fullmatch(a.signer):
        yield f"signer {a.signer!r} is not an OpenPGP fingerprint (40 or 64 upper-case hex digits)"
    if a.signature is not None and a.signer is None:
        yield "it names a signature but no signer to check it against"
    for key, value in a.details.items():
        if not _BARE_KEY.fullmatch(key):
            yield f"details key {key!r} has characters other than letters, digits, '_', '-'"
        if not (isinstance(value, str) or _is_texts(value)):
            yield f"details {key!r} must be text or a list of text"


def _cross_problems(artifacts: Iterable[Artifact]) -> Iterable[str]:
    """Problems between artifacts: duplicates, signatures that are not in the lock."""
    seen: set[tuple[str, ...]] = set()
    signatures = set()
    for a in artifacts:
        if a.sort_key in seen:
            yield f"artifact {a.label} {a.filename} is listed twice"
        seen.add(a.sort_key)
        if a.kind == "signature":
            signatures.add(a.filename)
    for a in artifacts:
        if a.signature is not None and a.signature not in signatures:
            yield f"artifact {a.label}: its signature {a.signature!r} is no signature artifact"


# -- reading --------------------------------------------------------------------------------

_HEADER_LINE = re.compile(r"\s*\[\[?\s*([A-Za-z0-9_.\- ]+?)\s*\]\]?\s*(#.*)?$")
_TOML_LINE = re.compile(r"at line (\d+)")
_MISSING: Any = object()
_TYPE_NAMES = {
    str: "text",
    int: "an integer",
    list: "a list of text",
    datetime: "a date-time",
    dict: "a table",
}
_EMPTY: dict[type, Any] = {
    str: "",
    int: 0,
    list: (),
    datetime: datetime(1970, 1, 1, tzinfo=UTC),
    dict: {},
}
_KEY_TYPES: dict[str, type] = {
    "size": int,
    "urls": list,
    "components": list,
    "signers": list,
    "date": datetime,
    "inrelease_size": int,
}


def loads(text: str, file: str) -> Lock:
    """Read a lock strictly: unknown or missing keys, wrong types, bad hashes are errors.

    Args:
        text: the lock file's text.
        file: the name errors give for it.

    Raises:
        LockError: ``reason`` is ``lock-invalid`` (the first problem; ``problems`` has all)
            or ``lock-version-unsupported`` (a newer seal wrote it).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_LINE.search(str(exc))
        raise LockError(
            f"not valid TOML: {exc}", file=file, line=int(m[1]) if m else None
        ) from None
    where = _Locator(text)
    _check_version(data, file, where)
    reader = _Reader(where)
    lock = reader.lock(data)
    problems = reader.problems
    if not problems:
        problems = _located(_lock_problems(lock), lock, reader.artifact_lines, where)
    if problems:
        problems.sort(key=lambda p: p[0] or 1 << 30)
        line, message = problems[0]
        error = LockError(message, file=file, line=line)
        error.problems = tuple(str(LockError(m, file=file, line=n)) for n, m in problems)
        raise error
    return lock


def _check_version(data: dict[str, Any], file: str, where: _Locator) -> None:
    version = data.get("lock_version")
    line = where.key(1, "lock_version")
    if version is None:
        raise LockError(
            "missing key 'lock_version': this is not a seal lock file", file=file, line=1
        )
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise LockError(f"lock_version {version!r} is not a positive integer", file=file, line=line)
    if version > LOCK_VERSION:
        raise LockError(
            f"lock_version {version} was written by a newer seal; this one reads "
            f"lock_version {LOCK_VERSION}",
            file=file,
            line=line,
            reason="lock-version-unsupported",
            hint="upgrade seal, or re-lock with this one: seal lock CONFIG",
        )


def _located(
    problems: list[_Problem], lock: Lock, artifact_lines: dict[int, int | None], where: _Locator
) -> list[tuple[int | None, str]]:
    """``_lock_problems`` with lines: an artifact's found by identity (the lock sorted them)."""
    out: list[tuple[int | None, str]] = []
    for place, message in problems:
        if isinstance(place, int):
            out.append((artifact_lines.get(id(lock.artifacts[place])), message))
        else:
            out.append((where.table(place) if place else None, message))
    return out


class _Locator:
    """Lines of table headers and keys in the text (tomllib keeps none)."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.headers: list[tuple[str, int]] = []
        for number, line in enumerate(self.lines, 1):
            m = _HEADER_LINE.match(line)
            if m:
                self.headers.append((m[1].replace(" ", ""), number))

    def table(self, name: str, index: int = 0, after: int = 0) -> int | None:
        """The line of the ``index``-th header ``[name]``/``[[name]]`` past line ``after``.

        The root table (``name == ""``) starts at line 1.
        """
        if not name:
            return 1
        found = [number for header, number in self.headers if header == name and number > after]
        return found[index] if index < len(found) else None

    def key(self, start: int | None, key: str) -> int | None:
        """The line of ``key = ...`` in the table starting at ``start``, else ``start``."""
        if start is None:
            return None
        ends = [number for _, number in self.headers if number > start]
        end = ends[0] if ends else len(self.lines) + 1
        pattern = re.compile(rf"\s*{re.escape(key)}\s*=")
        for number in range(start, end):
            if pattern.match(self.lines[number - 1]):
                return number
        return start


class _Table:
    """One TOML table being read: typed access, every problem recorded, unknown keys found."""

    def __init__(self, reader: _Reader, data: Any, label: str, start: int | None):
        self.reader = reader
        self.label = label
        self.start = start  # the line of its header
        self.data = data if isinstance(data, dict) else {}
        self.used: set[str] = set()
        if not isinstance(data, dict):
            self.fail("", f"{label} must be a table, not {type(data).__name__}")

    def fail(self, key: str, message: str) -> None:
        line = self.reader.where.key(self.start, key) if key else self.start
        self.reader.problems.append((line, f"{self.label}: {message}"))

    def get(self, key: str, kind: type, default: Any = _MISSING) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is _MISSING:
                self.fail("", f"missing key {key!r}")
                return _EMPTY[kind]
            return default
        value = self.data[key]
        if not _is(value, kind):
            self.fail(key, f"{key!r} must be {_TYPE_NAMES[kind]}, not {value!r}")
            return _EMPTY[kind] if default is _MISSING else default
        return tuple(value) if kind is list else value

    def tables(self, key: str) -> list[Any]:
        """An optional array of tables (``[[key]]``)."""
        self.used.add(key)
        value = self.data.get(key, [])
        if not isinstance(value, list):
            self.fail(key, f"{key!r} must be an array of tables ([[{key}]])")
            return []
        return value

    def finish(self) -> None:
        for key in self.data:
            if key not in self.used:
                self.fail(key, f"unknown key {key!r}")


def _is(value: Any, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is list:
        return isinstance(value, list) and _is_texts(value)
    return isinstance(value, kind)


class _Reader:
    """Builds a Lock from parsed TOML, recording ``(line, message)`` problems as it goes."""

    def __init__(self, where: _Locator):
        self.where = where
        self.problems: list[tuple[int | None, str]] = []
        self.artifact_lines: dict[int, int | None] = {}  # id(Artifact) -> its header's line

    def lock(self, data: dict[str, Any]) -> Lock:
        root = _Table(self, data, "lock", 1)
        root.get("lock_version", int)
        generator_ = root.get("generator", str)
        config = _Table(self, root.get("config", dict), "config", self.where.table("config"))
        target = _Table(self, root.get("target", dict), "target", self.where.table("target"))
        sources = self.sources(root.get("sources", dict))
        artifacts = [self.artifact(t, i) for i, t in enumerate(root.tables("artifact"))]
        root.finish()
        lock = Lock(
            config_name=config.get("name", str),
            config_digest=config.get("digest", str),
            python_version=config.get("python_version", str),
            build_type=config.get("build_type", str),
            platforms=config.get("platforms", list),
            packages=self.requirements(config),
            base=config.get("base", list),
            target={k: target.get(k, str) for k in target.data},
            sources=sources,
            artifacts=tuple(artifacts),
            generator=generator_,
        )
        config.finish()
        return lock

    def requirements(self, config: _Table) -> tuple[PackagePin, ...]:
        pins = []
        for text in config.get("packages", list):
            m = _REQUIREMENT.fullmatch(text)
            if m is None:
                config.fail(
                    "packages", f"package {text!r} is not name==version or name[extras]==version"
                )
                continue
            extras = tuple(sorted(e for e in (m["extras"] or "").split(",") if e))
            pins.append(PackagePin(m["name"], m["version"], extras, m["name"]))
        return tuple(pins)

    def sources(self, data: Any) -> Sources:
        table = _Table(self, data, "sources", self.where.table("sources"))
        pypi, cpython = table.get("pypi", str), table.get("cpython", str)
        debian = [self.debian(t, i) for i, t in enumerate(table.tables("debian"))]
        table.finish()
        return Sources(pypi=pypi, cpython=cpython, debian=tuple(debian))

    def debian(self, data: Any, index: int) -> DebianSource:
        start = self.where.table("sources.debian", index)
        table = _Table(self, data, f"sources.debian {index + 1}", start)
        values = {key: table.get(key, _KEY_TYPES.get(key, str)) for key in _DEBIAN_KEYS}
        table.finish()
        return DebianSource(**values)

    def artifact(self, data: Any, index: int) -> Artifact:
        raw = data if isinstance(data, dict) else {}
        label = f"artifact {index + 1} ({raw.get('kind')} {raw.get('name')} {raw.get('version')})"
        start = self.where.table("artifact", index)
        table = _Table(self, data, label, start)
        values = {key: table.get(key, _KEY_TYPES.get(key, str)) for key in _ARTIFACT_KEYS}
        values.update({key: table.get(key, str, None) for key in _OPTIONAL_KEYS})
        details = _Table(
            self, table.get("details", dict, {}), f"{label} details", self.details_line(start)
        )
        values["details"] = {key: self.detail(details, key) for key in details.data}
        details.finish()
        table.finish()
        artifact = Artifact(**values)
        for message in _artifact_problems(artifact):
            self.problems.append((start, f"{label}: {message}"))
        self.artifact_lines[id(artifact)] = start
        return artifact

    def details_line(self, start: int | None) -> int | None:
        """The ``[artifact.details]`` header of the artifact at ``start``, if it has one."""
        if start is None:
            return None
        details = self.where.table("artifact.details", 0, start)
        following = self.where.table("artifact", 0, start)
        if details is None or (following is not None and following < details):
            return start
        return details

    def detail(self, details: _Table, key: str) -> str | tuple[str, ...]:
        value = details.data[key]
        details.used.add(key)
        if isinstance(value, str) or _is(value, list):
            return value if isinstance(value, str) else tuple(value)
        details.fail(key, f"{key!r} must be text or a list of text, not {value!r}")
        return ""
