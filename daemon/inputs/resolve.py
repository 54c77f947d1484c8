"""Resolve pinned requirements to a complete, pinned set of wheels for a target.

::

    index = SimpleIndex(http=HttpClient(), cache_dir=state / "wheel-metadata")
    result = resolve(["fastapi==0.104.1", "uvicorn==0.24.0"], Target.cpython("3.13.5"), index)
    for wheel in result.wheels:                 # sorted by name
        print(wheel.name, wheel.version, wheel.filename, wheel.sha256)

The algorithm is resolvelib's; the policy is :class:`WheelProvider`'s (as in
pip), with the per-file rules in ``seal.daemon.inputs.candidates``: a
candidate is a version with a wheel the target accepts; newest versions first.
Dependencies come from each wheel's METADATA, their markers evaluated in the
target's environment (never the host's) with the extras asked for.
``name[extra]`` is its own identifier whose candidate depends on
``name==<same version>`` plus the extra's requirements. When nothing fits,
:func:`resolve` names the most specific cause: an unknown project, a version
that does not exist, a version without a wheel for the target, or requirements
that conflict, with who asked for them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import Tag
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version
from resolvelib import (
    AbstractProvider,
    BaseReporter,
    ResolutionImpossible,
    ResolutionTooDeep,
    Resolver,
)
from resolvelib.structs import RequirementInformation

from seal.daemon.errors import DaemonError
from seal.daemon.inputs.candidates import (
    Catalog,
    Choice,
    InvalidMetadata,
    ProjectReleases,
    applies,
    matching,
    normalized_extras,
    python_ok,
    usable,
)
from seal.daemon.inputs.config import PackagePin
from seal.daemon.inputs.pypi import File, ProjectNotFound, SimpleIndex
from seal.daemon.inputs.target import Target

__all__ = [
    "Candidate",
    "InvalidMetadata",
    "InvalidRequirementText",
    "NoCompatibleWheel",
    "NoMatchingVersion",
    "PinnedWheel",
    "Resolution",
    "ResolutionConflict",
    "ResolutionTooComplex",
    "ResolveError",
    "UnknownProject",
    "WheelProvider",
    "resolve",
]

MAX_ROUNDS = 20_000
SHOWN_FILES = 8  # files listed in a no-wheel error before "and N more"
SHOWN_VERSIONS = 8

Key = tuple[str, tuple[str, ...]]  # (normalized name, sorted normalized extras)


# -- errors ---------------------------------------------------------------------------------


class ResolveError(DaemonError):
    """Base class of this module's errors."""

    reason = "resolve-error"


class InvalidRequirementText(ResolveError, ValueError):
    """A requirement string that is not PEP 508."""

    reason = "invalid-requirement"


class UnknownProject(ResolveError, LookupError):
    """A requirement names a project the index does not have."""

    reason = "unknown-project"

    def __init__(self, name: str, index_url: str, requested_by: Sequence[str]):
        super().__init__(
            f"no project named {name!r} on {index_url} (required by {_join(requested_by)})",
            hint="check the spelling of the name, or the index URL",
        )
        self.name = name
        self.index_url = index_url
        self.requested_by = tuple(requested_by)


class NoMatchingVersion(ResolveError, LookupError):
    """No version of the project satisfies a requirement (a typo'd pin, a pre-release...)."""

    reason = "no-matching-version"

    def __init__(self, requirement: str, requested_by: str, available: Sequence[str]):
        shown = _truncated(available, SHOWN_VERSIONS) or "none"
        super().__init__(
            f"no version matches {requirement} (required by {requested_by}); "
            f"newest versions: {shown}",
            hint="pin a version the index has (pre-releases only when pinned exactly)",
        )
        self.requirement = requirement
        self.requested_by = requested_by
        self.available = tuple(available)


class NoCompatibleWheel(ResolveError, LookupError):
    """A version has no wheel for the target (only sdists, other platforms, yanked...)."""

    reason = "no-compatible-wheel"

    def __init__(
        self,
        name: str,
        version: str,
        target: Target,
        files: Sequence[str],
        requested_by: str,
        newest_usable: str | None,
    ):
        listing = _truncated(files, SHOWN_FILES) or "no files"
        elsewhere = (
            f"version {newest_usable} has one"
            if newest_usable
            else "no version of it has one for this target"
        )
        super().__init__(
            f"no wheel of {name} {version} for {target.describe()} (required by "
            f"{requested_by}); its files: {listing}",
            hint=f"building wheels from sdists comes later; {elsewhere}",
        )
        self.name = name
        self.version = version
        self.target = target
        self.files = tuple(files)
        self.requested_by = requested_by
        self.newest_usable = newest_usable


class ResolutionConflict(ResolveError):
    """Requirements on one project that no version satisfies together."""

    reason = "resolution-conflict"

    def __init__(self, conflicts: Mapping[str, Sequence[tuple[str, str]]]):
        parts = [
            f"{name}: " + ", ".join(f"{req} (from {parent})" for req, parent in asked)
            for name, asked in conflicts.items()
        ]
        super().__init__(
            "conflicting requirements for " + "; ".join(parts),
            hint="change the pins so they agree, or pin the packages that ask for them "
            "at versions that do",
        )
        self.conflicts = {name: tuple(asked) for name, asked in conflicts.items()}


class ResolutionTooComplex(ResolveError):
    """The resolver gave up after too many rounds of backtracking."""

    reason = "resolution-too-deep"


# -- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PinnedWheel:
    """One wheel of the resolution: what the lock records and the fetcher downloads.

    ``tag`` is the tag that made the wheel compatible (the best of its tags for
    the target); ``extras`` the extras that were asked for; ``dependencies``
    and ``required_by`` are normalized names; ``direct``: a root requirement.
    """

    name: str
    version: str
    filename: str
    url: str
    sha256: str
    size: int | None
    requires_python: str | None
    tag: str
    extras: tuple[str, ...]
    dependencies: tuple[str, ...]
    required_by: tuple[str, ...]
    direct: bool
    yanked: bool = False


@dataclass(frozen=True)
class Resolution:
    """The pinned closure of ``requirements`` for ``target``, wheels sorted by name."""

    target: Target
    index_url: str
    requirements: tuple[str, ...]
    wheels: tuple[PinnedWheel, ...]

    def by_name(self) -> dict[str, PinnedWheel]:
        return {wheel.name: wheel for wheel in self.wheels}


# -- the provider ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A version of a project (with extras, for ``name[extra]``) and the wheel chosen for it."""

    name: str
    version: Version
    extras: tuple[str, ...]
    choice: Choice

    @property
    def key(self) -> Key:
        return self.name, self.extras

    @property
    def file(self) -> File:
        return self.choice.file

    def __str__(self) -> str:
        return f"{_show_key(self.key)} {self.version}"


class WheelProvider(AbstractProvider):
    """resolvelib's provider: every policy decision of the resolution lives here."""

    def __init__(self, catalog: Catalog, target: Target):
        self.catalog = catalog
        self.target = target
        self.requested_by: dict[str, set[str]] = defaultdict(set)  # name -> who asked

    def identify(self, requirement_or_candidate: Requirement | Candidate) -> Key:
        if isinstance(requirement_or_candidate, Candidate):
            return requirement_or_candidate.key
        requirement = requirement_or_candidate
        return canonicalize_name(requirement.name), normalized_extras(requirement)

    def get_preference(
        self,
        identifier: Key,
        resolutions: Mapping[Key, Candidate],
        candidates: Mapping[Key, Iterator[Candidate]],
        information: Mapping[Key, Iterator[RequirementInformation]],
        backtrack_causes: Sequence[RequirementInformation],
    ) -> tuple[bool, bool, int, Key]:
        """Backtrack causes first, then exact pins, then the fewest candidates; ties by name."""
        asked = [info.requirement for info in information[identifier]]
        pinned = any(any(s.operator in ("==", "===") for s in r.specifier) for r in asked)
        causes = {self.identify(info.requirement) for info in backtrack_causes}
        count = sum(1 for _ in candidates[identifier])
        return identifier not in causes, not pinned, count, identifier

    def find_matches(
        self,
        identifier: Key,
        requirements: Mapping[Key, Iterator[Requirement]],
        incompatibilities: Mapping[Key, Iterator[Candidate]],
    ) -> list[Candidate]:
        name, extras = identifier
        asked = list(requirements[identifier])
        excluded = {candidate.version for candidate in incompatibilities[identifier]}
        project = self._project(name)
        return [
            Candidate(name, release.version, extras, choice)
            for release, choice in usable(project, asked)
            if release.version not in excluded
        ]

    def is_satisfied_by(self, requirement: Requirement, candidate: Candidate) -> bool:
        return requirement.specifier.contains(candidate.version, prereleases=True)

    def get_dependencies(self, candidate: Candidate) -> list[Requirement]:
        requires = self.catalog.requirements(candidate.file)
        filename = candidate.file.filename
        if candidate.extras:
            base = Requirement(f"{candidate.name}=={candidate.version}")
            extra = [
                r
                for r in requires
                if applies(r, self.target, candidate.extras, filename)
                and not applies(r, self.target, (), filename)
            ]
            result = [base, *extra]
        else:
            result = [r for r in requires if applies(r, self.target, (), filename)]
        result = [r for r in result if self.identify(r) != candidate.key]
        for requirement in result:
            self.requested_by[canonicalize_name(requirement.name)].add(str(candidate))
            self.catalog.prefetch(requirement)
        return result

    def _project(self, name: str) -> ProjectReleases:
        try:
            return self.catalog.project(name)
        except ProjectNotFound:
            asked = sorted(self.requested_by.get(name, ())) or [ROOT]
            raise UnknownProject(name, self.catalog.index.index_url, asked) from None


ROOT = "the requested packages"


def _show_key(key: Key) -> str:
    name, extras = key
    return f"{name}[{','.join(extras)}]" if extras else name


def _show_requirement(requirement: Requirement) -> str:
    extras = f"[{','.join(normalized_extras(requirement))}]" if requirement.extras else ""
    return f"{canonicalize_name(requirement.name)}{extras}{requirement.specifier}"


def _join(items: Sequence[str]) -> str:
    return ", ".join(items) if items else ROOT


def _truncated(items: Sequence[str], shown: int) -> str:
    """The first ``shown`` items, then how many more there are."""
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


# -- entry point ----------------------------------------------------------------------------


def resolve(
    requirements: Iterable[PackagePin | Requirement | str],
    target: Target,
    index: SimpleIndex,
    *,
    jobs: int = 8,
    reporter: BaseReporter | None = None,
) -> Resolution:
    """Pin ``requirements`` and their whole dependency closure to wheels for ``target``.

    Args:
        requirements: the roots: config pins, PEP 508 strings or parsed
            requirements; a root whose marker is false on the target is dropped.
        target: the interpreter and platform the wheels are for.
        index: where project pages and metadata come from (thread-safe).
        jobs: threads fetching pages and METADATA ahead of the resolver.
        reporter: a resolvelib reporter to observe progress.

    Raises:
        UnknownProject, NoMatchingVersion, NoCompatibleWheel, ResolutionConflict,
        ResolutionTooComplex, InvalidMetadata, InvalidRequirementText, and the
        index's HTTP errors.
    """
    roots = [r for r in map(_root, requirements) if applies(r, target, (), "the request")]
    target.tag_rank(Tag("py3", "none", "any"))  # build the tag table before threads share it
    catalog = Catalog(index, target, jobs)
    provider = WheelProvider(catalog, target)
    try:
        for root in roots:
            catalog.prefetch(root)
        resolver = Resolver(provider, reporter or BaseReporter())
        try:
            result = resolver.resolve(roots, max_rounds=MAX_ROUNDS)
        except ResolutionImpossible as e:
            raise _explain(provider, e.causes) from None
        except ResolutionTooDeep as e:
            raise ResolutionTooComplex(
                f"gave up after {e.round_count} rounds of backtracking",
                hint="pin more of the dependencies to narrow the search",
            ) from None
    finally:
        catalog.close()
    wheels = _pinned(result.mapping, result.graph)
    return Resolution(target, index.index_url, tuple(sorted(map(str, roots))), wheels)


def _root(requirement: PackagePin | Requirement | str) -> Requirement:
    if isinstance(requirement, Requirement):
        return requirement
    if isinstance(requirement, PackagePin):
        extras = f"[{','.join(requirement.extras)}]" if requirement.extras else ""
        requirement = f"{requirement.name}{extras}=={requirement.version}"
    try:
        return Requirement(requirement)
    except InvalidRequirement as e:
        raise InvalidRequirementText(
            f"not a PEP 508 requirement: {requirement!r} ({e})",
            hint="write name==version, e.g. fastapi==0.104.1",
        ) from None


def _pinned(mapping: Mapping[Key, Candidate], graph: Any) -> tuple[PinnedWheel, ...]:
    """One :class:`PinnedWheel` per project, the extras' identifiers folded into it."""
    keys: dict[str, list[Key]] = defaultdict(list)
    for key in mapping:
        keys[key[0]].append(key)
    wheels = []
    for name in sorted(keys):
        base = mapping[(name, ())]
        children = {c[0] for k in keys[name] for c in graph.iter_children(k)} - {name}
        parents = {p for k in keys[name] for p in graph.iter_parents(k)}
        file = base.file
        wheels.append(
            PinnedWheel(
                name=name,
                version=str(base.version),
                filename=file.filename,
                url=file.url,
                sha256=file.sha256 or "",  # usable wheels have one: see build_releases
                size=file.size,
                requires_python=file.requires_python,
                tag=str(base.choice.tag),
                extras=tuple(sorted({e for k in keys[name] for e in k[1]})),
                dependencies=tuple(sorted(children)),
                required_by=tuple(sorted({p[0] for p in parents if p is not None} - {name})),
                direct=None in parents,
                yanked=file.yanked,
            )
        )
    return tuple(wheels)


# -- explaining ResolutionImpossible --------------------------------------------------------


def _explain(provider: WheelProvider, causes: Iterable[RequirementInformation]) -> ResolveError:
    """The most specific error for the causes: a lone requirement nothing satisfies, else a
    conflict between requirements."""
    ordered = sorted(causes, key=lambda c: (provider.identify(c.requirement), str(c.requirement)))
    for cause in ordered:
        problem = _lone_problem(provider, cause)
        if problem is not None:
            return problem
    conflicts: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for cause in ordered:
        asked = (_show_requirement(cause.requirement), _parent(cause.parent))
        bucket = conflicts[_show_key(provider.identify(cause.requirement))]
        if asked not in bucket:
            bucket.append(asked)
    return ResolutionConflict(conflicts)


def _lone_problem(provider: WheelProvider, cause: RequirementInformation) -> ResolveError | None:
    """NoMatchingVersion / NoCompatibleWheel if this requirement alone cannot be met."""
    requirement = cause.requirement
    name = canonicalize_name(requirement.name)
    project = provider._project(name)
    if next(usable(project, [requirement]), None) is not None:
        return None
    parent = _parent(cause.parent)
    release = next(matching(project, [requirement]), None)
    if release is None:
        versions = [str(r.version) for r in project.releases]
        return NoMatchingVersion(_show_requirement(requirement), parent, versions)
    newest = next(usable(project, []), None)
    return NoCompatibleWheel(
        name,
        str(release.version),
        provider.target,
        [_describe_file(f, provider.target) for f in release.files],
        parent,
        str(newest[0].version) if newest else None,
    )


def _describe_file(file: File, target: Target) -> str:
    """A filename, with why a wheel the target's tags accept was still refused."""
    notes = []
    if file.is_wheel:
        tags = parse_wheel_filename(file.filename)[3]
        if target.best_tag(tags) is not None:
            if not python_ok(file.requires_python, target):
                notes.append(f"requires-python {file.requires_python}")
            if file.yanked:
                notes.append("yanked")
            if not file.sha256:
                notes.append("no sha256 listed")
    return f"{file.filename} ({', '.join(notes)})" if notes else file.filename


def _parent(parent: Candidate | None) -> str:
    return ROOT if parent is None else str(parent)
