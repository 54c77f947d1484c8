"""What an index offers one target: releases, the wheel each would use, their requirements.

::

    catalog = Catalog(index, Target.cpython("3.13.5"), jobs=8)
    project = catalog.project("pydantic-core")              # ProjectReleases, newest first
    release, choice = next(usable(project, [Requirement("pydantic-core==2.14.5")]))
    choice.file.filename, choice.tag                        # the best wheel for the target
    catalog.requirements(choice.file)                       # its Requires-Dist, parsed
    catalog.close()

The resolver's provider (``seal.daemon.inputs.resolve``) decides with these;
this module holds the rules that do not need the resolver's state: a wheel
counts when one of its tags is in :attr:`Target.tags` (the best rank wins,
then the higher build tag, then the filename), the index lists its SHA-256
(else it cannot be pinned) and its ``Requires-Python`` admits the target's
full version; yanked files count only for a requirement pinning their version
with ``==``/``===`` (PEP 592); pre-releases only for a requirement naming one.

:class:`Catalog` fetches each project page and METADATA once per resolution,
and ahead of need: the resolver asks for one at a time, so a small thread pool
starts, for every newly seen requirement, its project page, then the METADATA
of its newest usable wheel, then the same for that wheel's dependencies
(markers evaluated for the target). A wrong guess costs one request.
"""

from __future__ import annotations

import email.parser
import functools
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from seal.daemon.inputs.pypi import File, PyPIError, SimpleIndex
from seal.daemon.inputs.target import Target

T = TypeVar("T")


class InvalidMetadata(PyPIError):
    """A wheel's METADATA has a Requires-Dist line or marker that cannot be parsed."""

    reason = "invalid-wheel-metadata"

    def __init__(self, filename: str, text: str, problem: Exception):
        super().__init__(
            f"{filename}: cannot use Requires-Dist {text!r} ({problem})",
            hint="pin another version of the package that requires it",
        )
        self.filename = filename


# -- what the index offers, for the target --------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """A wheel the target accepts, with its rank in the target's tag order."""

    rank: int
    tag: Tag
    file: File


@dataclass(frozen=True)
class Release:
    """One version: every file (for messages) and its usable wheels, best first."""

    version: Version
    files: tuple[File, ...]
    wheels: tuple[Choice, ...]  # yanked ones included: see pick()

    def pick(self, allow_yanked: bool) -> Choice | None:
        """The best wheel, yanked ones only when allowed and nothing else is left."""
        for choice in self.wheels:
            if not choice.file.yanked:
                return choice
        return self.wheels[0] if allow_yanked and self.wheels else None


@dataclass(frozen=True)
class ProjectReleases:
    name: str
    releases: tuple[Release, ...]  # newest first


def build_releases(name: str, files: Iterable[File], target: Target) -> ProjectReleases:
    """Group a project page's files by version and rank the wheels for ``target``."""
    grouped: dict[Version, list[File]] = defaultdict(list)
    usable: dict[Version, list[tuple[int, Any, str, Choice]]] = defaultdict(list)
    platforms = frozenset((*target.platforms, "any"))
    for file in files:
        info = _file_info(name, file, platforms)
        if info is None:
            continue
        version, build, tags = info
        grouped[version].append(file)
        best = target.best_tag(tags) if tags else None
        if best is not None and file.sha256 and python_ok(file.requires_python, target):
            rank, tag = best
            # lower rank first, then the higher build tag (PEP 427), then the name
            key = (rank, -build[0] if build else 0, file.filename)
            usable[version].append((*key, Choice(rank, tag, file)))
    releases = [
        Release(
            version,
            tuple(sorted(grouped[version], key=lambda f: f.filename)),
            tuple(entry[-1] for entry in sorted(usable[version], key=lambda e: e[:3])),
        )
        for version in sorted(grouped, reverse=True)
    ]
    return ProjectReleases(name, tuple(releases))


def _file_info(
    name: str, file: File, platforms: frozenset[str]
) -> tuple[Version, Any, frozenset[Tag]] | None:
    """``(version, build, tags)`` of a wheel, ``(version, (), ∅)`` of an sdist or of a wheel
    for other platforms (most of a big project's files: parsed cheaply), else None."""
    try:
        if file.is_wheel:
            parts = file.filename[:-4].split("-")
            if len(parts) in (5, 6) and platforms.isdisjoint(parts[-1].split(".")):
                version = _version(parts[1])
                same = version is not None and _name(parts[0]) == name
                return (version, (), frozenset()) if same else None
            wheel_name, version, build, tags = parse_wheel_filename(file.filename)
            return (version, build, tags) if wheel_name == name else None
        if file.is_sdist:
            sdist_name, version = parse_sdist_filename(file.filename)
            return (version, (), frozenset()) if sdist_name == name else None
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return None


@functools.lru_cache(maxsize=4096)
def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


@functools.lru_cache(maxsize=1024)
def _name(text: str) -> str:
    return canonicalize_name(text)


def python_ok(requires_python: str | None, target: Target) -> bool:
    """Whether ``Requires-Python`` admits the target; an unparsable one is ignored (as pip)."""
    spec = _specifier(requires_python) if requires_python else None
    return spec is None or spec.contains(target.version, prereleases=True)


@functools.lru_cache(maxsize=1024)
def _specifier(text: str) -> SpecifierSet | None:
    """A parsed Requires-Python (most files of a project share one), or None if unparsable."""
    try:
        return SpecifierSet(text)
    except ValueError:
        return None


def _prereleases_ok(requirements: Sequence[Requirement]) -> bool:
    return any(r.specifier.prereleases for r in requirements)


def _pins(requirement: Requirement, version: Version) -> bool:
    """``==V`` or ``===V`` exactly (no wildcard): the PEP 592 case for yanked files."""
    for spec in requirement.specifier:
        if spec.operator == "===" and spec.version == str(version):
            return True
        exact = spec.operator == "==" and not spec.version.endswith(".*")
        if exact and Version(spec.version) == version:
            return True
    return False


def matching(project: ProjectReleases, requirements: Sequence[Requirement]) -> Iterator[Release]:
    """Releases that satisfy every requirement, newest first (whether they have wheels or not)."""
    prereleases = _prereleases_ok(requirements)
    for release in project.releases:
        version = release.version
        if version.is_prerelease and not prereleases:
            continue
        if all(r.specifier.contains(version, prereleases=True) for r in requirements):
            yield release


def usable(
    project: ProjectReleases, requirements: Sequence[Requirement]
) -> Iterator[tuple[Release, Choice]]:
    """Matching releases that have a wheel for the target, with the wheel to use."""
    for release in matching(project, requirements):
        pinned = any(_pins(r, release.version) for r in requirements)
        choice = release.pick(allow_yanked=pinned)
        if choice is not None:
            yield release, choice


# -- fetching, shared by the resolver and the look-ahead ------------------------------------


class Catalog:
    """Project pages and wheel requirements, each fetched once, ahead of need when it can."""

    def __init__(self, index: SimpleIndex, target: Target, jobs: int):
        self.index = index
        self.target = target
        self._pool = ThreadPoolExecutor(max(1, jobs), thread_name_prefix="seal-resolve")
        self._lock = threading.Lock()
        self._closed = False
        self._projects: dict[str, Future[ProjectReleases]] = {}
        self._requires: dict[str, Future[tuple[Requirement, ...]]] = {}  # by file URL

    def close(self) -> None:
        """Drop the look-ahead not started yet and wait for the requests in flight."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- what the resolver asks (blocking)

    def project(self, name: str) -> ProjectReleases:
        """The releases of ``name`` for the target; raises the index's errors."""
        return self._wait(self._projects, name, lambda: self._load_project(name))

    def requirements(self, file: File) -> tuple[Requirement, ...]:
        """Every ``Requires-Dist`` of a wheel, markers not yet evaluated."""
        return self._wait(self._requires, file.url, lambda: self._load_requires(file))

    # -- look-ahead

    def prefetch(self, requirement: Requirement) -> None:
        """Start fetching what resolving ``requirement`` will probably need."""
        name = canonicalize_name(requirement.name)
        self._start(self._projects, name, lambda: self._guess_project(name, requirement))

    def _guess_project(self, name: str, requirement: Requirement) -> ProjectReleases:
        project = self._load_project(name)
        guess = next(usable(project, [requirement]), None)
        if guess is not None:
            file = guess[1].file
            extras = normalized_extras(requirement)
            self._start(self._requires, file.url, lambda: self._guess_requires(file, extras))
        return project

    def _guess_requires(self, file: File, extras: tuple[str, ...]) -> tuple[Requirement, ...]:
        requires = self._load_requires(file)
        for requirement in requires:
            try:
                wanted = applies(requirement, self.target, extras, file.filename)
            except InvalidMetadata:
                continue  # reported if the resolver ever asks for it
            if wanted:
                self.prefetch(requirement)
        return requires

    # -- loading

    def _load_project(self, name: str) -> ProjectReleases:
        return build_releases(name, self.index.project_files(name), self.target)

    def _load_requires(self, file: File) -> tuple[Requirement, ...]:
        return parse_requires(self.index.wheel_metadata(file), file.filename)

    # -- futures

    def _start(self, table: dict[str, Future[T]], key: str, fn: Callable[[], T]) -> Future[T]:
        with self._lock:
            future = table.get(key)
            if future is None:
                if self._closed:
                    future = Future()
                    future.cancel()
                else:
                    future = self._pool.submit(fn)
                table[key] = future
            return future

    def _wait(self, table: dict[str, Future[T]], key: str, fn: Callable[[], T]) -> T:
        future = self._start(table, key, fn)
        if future.cancel():  # still queued behind look-ahead: do it here rather than wait
            future = Future()
            try:
                future.set_result(fn())
            except Exception as e:  # kept, so asking again raises the same error
                future.set_exception(e)
            with self._lock:
                table[key] = future
        return future.result()


def parse_requires(metadata: bytes, filename: str) -> tuple[Requirement, ...]:
    """The ``Requires-Dist`` lines of a METADATA document, parsed."""
    headers = email.parser.BytesHeaderParser().parsebytes(metadata)
    result = []
    for value in headers.get_all("Requires-Dist") or []:
        text = " ".join(str(value).split())  # unfold continuation lines
        try:
            result.append(Requirement(text))
        except InvalidRequirement as e:
            raise InvalidMetadata(filename, text, e) from None
    return tuple(result)


def applies(requirement: Requirement, target: Target, extras: Iterable[str], where: str) -> bool:
    """Whether a dependency's marker holds on the target for one of ``extras`` (or none)."""
    if requirement.marker is None:
        return True
    try:
        return any(
            requirement.marker.evaluate(target.markers(extra), context="metadata")
            for extra in ("", *extras)
        )
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName) as e:
        raise InvalidMetadata(where, str(requirement), e) from None


def normalized_extras(requirement: Requirement) -> tuple[str, ...]:
    return tuple(sorted({canonicalize_name(e) for e in requirement.extras}))
