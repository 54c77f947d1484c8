"""The dependency closure of Debian binary packages for one architecture, without apt.

Follows Depends and Pre-Depends (not Recommends), alternatives, virtual
packages (Provides, versioned or not) and versioned constraints compared with
dpkg's version ordering. There is no backtracking: the index of one suite holds
one version per package, so the first consistent choice is the choice. Every
choice is deterministic: the same index and roots give the same closure.

    pinned = closure(packages, ["gcc", "make", "libc6-dev"], mirror=release.mirror)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..errors import DaemonError
from .debian_packages import BinaryPackage

# ---------------------------------------------------------------------------- versions


def _order(char: str) -> int:
    """dpkg's weight of one non-digit character: ~ sorts before the end, letters before the rest."""
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_part(a: str, b: str) -> int:
    """dpkg's verrevcmp: alternate runs of non-digits (by _order) and digits (as numbers)."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ca = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            cb = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ca != cb:
                return -1 if ca < cb else 1
            i += i < len(a) and not a[i].isdigit()
            j += j < len(b) and not b[j].isdigit()
        start_i, start_j = i, j
        while i < len(a) and a[i].isdigit():
            i += 1
        while j < len(b) and b[j].isdigit():
            j += 1
        na, nb = int(a[start_i:i] or 0), int(b[start_j:j] or 0)
        if na != nb:
            return -1 if na < nb else 1
    return 0


@functools.lru_cache(maxsize=65536)
def _split_version(version: str) -> tuple[int, str, str]:
    epoch, sep, rest = version.partition(":")
    if not sep:
        epoch, rest = "0", version
    upstream, sep, revision = rest.rpartition("-")
    if not sep:
        upstream, revision = rest, ""
    try:
        return int(epoch), upstream, revision
    except ValueError:
        raise InvalidVersion(version) from None


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as Debian version ``a`` sorts before, with or after ``b`` (epochs, ``~``)."""
    ea, ua, ra = _split_version(a)
    eb, ub, rb = _split_version(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


_OPERATORS = {
    "<<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    "=": lambda c: c == 0,
    ">=": lambda c: c >= 0,
    ">>": lambda c: c > 0,
    "<": lambda c: c <= 0,  # obsolete spellings of <= and >= (Policy 7.1)
    ">": lambda c: c >= 0,
}


def version_satisfies(version: str, op: str, wanted: str) -> bool:
    """Whether ``version`` satisfies the constraint ``(op wanted)``."""
    return _OPERATORS[op](compare_versions(version, wanted))


# ---------------------------------------------------------------------------- relations


@dataclass(frozen=True)
class Atom:
    """One alternative of a relation: ``name[:arch] [(op version)] [[archs]]``."""

    name: str
    arch: str = ""  # "", "any", "native" or an architecture name
    op: str = ""
    version: str = ""
    archs: tuple[str, ...] = ()  # an architecture restriction list, rare outside sources

    def __str__(self) -> str:
        text = self.name + (f":{self.arch}" if self.arch else "")
        return text + (f" ({self.op} {self.version})" if self.op else "")


_ATOM = re.compile(
    r"""\s*(?P<name>[a-z0-9][a-z0-9+.\-]*)(?::(?P<arch>[a-z0-9\-]+))?\s*
        (?:\(\s*(?P<op><<|<=|>=|>>|=|<|>)\s*(?P<version>[^\s)]+)\s*\)\s*)?
        (?:\[(?P<archs>[^\]]*)\]\s*)?(?:<[^>]*>\s*)*$""",
    re.VERBOSE,
)


@functools.lru_cache(maxsize=65536)
def parse_relations(text: str) -> tuple[tuple[Atom, ...], ...]:
    """Parse a Depends-style field: comma-separated relations of ``|``-separated alternatives.

    Raises:
        InvalidRelation: an alternative does not parse.
    """
    relations = []
    for relation in text.split(","):
        if not relation.strip():
            continue
        atoms = []
        for alternative in relation.split("|"):
            m = _ATOM.match(alternative)
            if m is None:
                raise InvalidRelation(alternative.strip(), text)
            archs = tuple((m["archs"] or "").split())
            atoms.append(Atom(m["name"], m["arch"] or "", m["op"] or "", m["version"] or "", archs))
        relations.append(tuple(atoms))
    return tuple(relations)


# ---------------------------------------------------------------------------- errors


class InvalidVersion(DaemonError, ValueError):
    """A version string has a non-numeric epoch."""

    reason = "debian-invalid-version"

    def __init__(self, version: str):
        super().__init__(f"invalid Debian version {version!r}: the epoch must be a number")


class InvalidRelation(DaemonError, ValueError):
    """A dependency field does not parse."""

    reason = "debian-invalid-relation"

    def __init__(self, atom: str, field: str):
        super().__init__(f"cannot parse dependency {atom!r} in {field!r}")


class Unsatisfiable(DaemonError, LookupError):
    """No package in the index satisfies a dependency (or a root is not there)."""

    reason = "debian-unsatisfiable"

    def __init__(self, package: str, dependency: str, available: Sequence[str]):
        where = f"{package} depends on {dependency}" if package else f"root {dependency}"
        have = ", ".join(available) if available else "nothing of that name"
        super().__init__(
            f"{where}, which no package satisfies; available: {have}",
            hint="check the suite, components and architecture, or pin another version",
        )
        self.package = package
        self.dependency = dependency
        self.available = tuple(available)


# ---------------------------------------------------------------------------- closure


@dataclass(frozen=True)
class PinnedPackage:
    """A .deb as the lock records it."""

    name: str
    version: str
    architecture: str
    url: str
    sha256: str
    size: int
    source: str

    @classmethod
    def of(cls, package: BinaryPackage, mirror: str) -> PinnedPackage:
        """Pin ``package`` at ``mirror`` (URL = mirror + its Filename)."""
        return cls(
            name=package.name,
            version=package.version,
            architecture=package.architecture,
            url=f"{mirror.rstrip('/')}/{package.filename}",
            sha256=package.sha256,
            size=package.size,
            source=package.source_name,
        )


_PRIORITY = {"required": 0, "important": 1, "standard": 2, "optional": 3, "extra": 4}


class PackageSource(Protocol):
    """Where a ``PackageIndex`` finds stanzas (``debian_packages.ScannedPackages``)."""

    def named(self, name: str) -> Sequence[BinaryPackage]: ...

    def providing(self, name: str) -> Sequence[BinaryPackage]: ...

    def essential_names(self) -> Iterable[str]: ...


class _Listed:
    """A ``PackageSource`` over parsed packages, indexed up front."""

    def __init__(self, packages: Iterable[BinaryPackage]):
        self._named: dict[str, list[BinaryPackage]] = {}
        self._providing: dict[str, list[BinaryPackage]] = {}
        self._essential: list[str] = []
        for package in packages:
            self._named.setdefault(package.name, []).append(package)
            for relation in parse_relations(package.provides) if package.provides else ():
                for atom in relation:
                    providers = self._providing.setdefault(atom.name, [])
                    if not providers or providers[-1] is not package:
                        providers.append(package)
            if package.essential:
                self._essential.append(package.name)

    def named(self, name: str) -> Sequence[BinaryPackage]:
        return self._named.get(name, ())

    def providing(self, name: str) -> Sequence[BinaryPackage]:
        return self._providing.get(name, ())

    def essential_names(self) -> Iterable[str]:
        return self._essential


class PackageIndex:
    """The packages of one architecture (plus ``all``), by name and by what they provide.

    Built from parsed packages, or from a ``PackageSource`` that parses stanzas
    only when they are asked for; either way each name is looked up once.
    """

    def __init__(self, packages: Iterable[BinaryPackage] | PackageSource, arch: str = "amd64"):
        self.arch = arch
        self._source: PackageSource = (
            packages if hasattr(packages, "providing") else _Listed(packages)  # type: ignore[arg-type]
        )
        self._versions: dict[str, list[BinaryPackage]] = {}
        self._providers: dict[str, list[tuple[BinaryPackage, str]]] = {}

    def _ours(self, package: BinaryPackage) -> bool:
        return package.architecture in (self.arch, "all")

    def versions(self, name: str) -> list[BinaryPackage]:
        """The packages called ``name``, newest first (index order among equal versions)."""
        found = self._versions.get(name)
        if found is None:
            found = [p for p in self._source.named(name) if self._ours(p)]
            found.sort(key=_NEWEST_FIRST)
            self._versions[name] = found
        return found

    def providers(self, name: str) -> list[tuple[BinaryPackage, str]]:
        """(package, provided version or "") for each Provides of ``name``, by priority, name."""
        found = self._providers.get(name)
        if found is None:
            found = []
            for package in self._source.providing(name):
                if not self._ours(package) or not package.provides:
                    continue
                for relation in parse_relations(package.provides):
                    found += [(package, a.version) for a in relation if a.name == name]
            found.sort(key=lambda p: (_PRIORITY.get(p[0].priority, 5), p[0].name))
            self._providers[name] = found
        return found

    def applies(self, atom: Atom) -> bool:
        """False when an architecture restriction list excludes this architecture."""
        if not atom.archs:
            return True
        negated = [a[1:] for a in atom.archs if a.startswith("!")]
        if negated:
            return self.arch not in negated
        return self.arch in atom.archs or "any" in atom.archs

    def candidates(self, atom: Atom) -> list[BinaryPackage]:
        """Packages satisfying ``atom``: real ones (newest first), then providers.

        A versioned dependency is met by a Provides only when that Provides
        carries a version (Policy 7.5). Single-architecture resolution: ``:any``
        and ``:native`` accept this architecture's packages.
        """
        if atom.arch not in ("", "any", "native", self.arch):
            return []
        found = [p for p in self.versions(atom.name) if self._meets(p.version, atom)]
        for package, provided in self.providers(atom.name):
            if (not atom.op or (provided and self._meets(provided, atom))) and package not in found:
                found.append(package)
        return found

    @staticmethod
    def _meets(version: str, atom: Atom) -> bool:
        return not atom.op or version_satisfies(version, atom.op, atom.version)

    def available(self, atom: Atom) -> list[str]:
        """What the index has under ``atom``'s name, for error messages."""
        names = [f"{p.name} {p.version}" for p in self.versions(atom.name)]
        names += [
            f"{p.name} {p.version} (provides {atom.name}{f' (= {v})' if v else ''})"
            for p, v in self.providers(atom.name)
        ]
        return names

    def essential(self) -> list[BinaryPackage]:
        """The newest version of every ``Essential: yes`` package, by name."""
        newest = [self.versions(name) for name in sorted(set(self._source.essential_names()))]
        return [v[0] for v in newest if v and v[0].essential]


_NEWEST_FIRST = functools.cmp_to_key(lambda a, b: compare_versions(b.version, a.version))


class _Resolver:
    """One closure computation: a work queue of selected packages, then deferred choices."""

    def __init__(self, index: PackageIndex):
        self.index = index
        self.selected: dict[str, BinaryPackage] = {}
        self.queue: list[BinaryPackage] = []
        self.deferred: list[tuple[BinaryPackage, tuple[Atom, ...]]] = []

    def add(self, package: BinaryPackage, needed_by: str, atom: Atom) -> None:
        current = self.selected.get(package.name)
        if current is None:
            self.selected[package.name] = package
            self.queue.append(package)
        elif current is not package:
            raise Unsatisfiable(
                needed_by, str(atom), [f"{current.name} {current.version} (already chosen)"]
            )

    def satisfied(self, atom: Atom) -> bool:
        return any(self.selected.get(p.name) is p for p in self.index.candidates(atom))

    def run(self) -> None:
        while self.queue or self.deferred:
            while self.queue:
                self._visit(self.queue.pop(0))
            if self.deferred:
                package, atoms = self.deferred.pop(0)
                self._choose(package, atoms)

    def _visit(self, package: BinaryPackage) -> None:
        for text in (package.pre_depends, package.depends):
            for relation in parse_relations(text) if text else ():
                atoms = tuple(a for a in relation if self.index.applies(a))
                if not atoms or any(self.satisfied(a) for a in atoms):
                    continue
                if len(atoms) == 1:
                    self._choose(package, atoms)
                else:  # decide later, when more of the closure is known
                    self.deferred.append((package, atoms))

    def _choose(self, package: BinaryPackage, atoms: tuple[Atom, ...]) -> None:
        """Satisfy one relation: an alternative already selected, else the first satisfiable."""
        if any(self.satisfied(a) for a in atoms):
            return
        for atom in atoms:
            choices = self.index.candidates(atom)
            fresh = [c for c in choices if c.name not in self.selected]
            if fresh:
                self.add(fresh[0], package.name, atom)
                return
        available = [s for a in atoms for s in self.index.available(a)]
        raise Unsatisfiable(package.name, " | ".join(map(str, atoms)), available)


def closure(
    packages: Iterable[BinaryPackage] | PackageIndex,
    roots: Iterable[str],
    *,
    mirror: str,
    arch: str = "amd64",
    essential: bool = False,
) -> list[PinnedPackage]:
    """The roots and everything they need, pinned, sorted by name.

    Args:
        packages: the parsed index (or a ``PackageIndex`` built once for many closures).
        roots: package names, or relations such as ``"libc6 (>= 2.36)"``.
        mirror: the mirror the .deb URLs point at.
        arch: the architecture; ``all`` packages are always included.
        essential: also add every ``Essential: yes`` package and its closure
            (what a root filesystem that runs dpkg or a shell needs).

    Raises:
        Unsatisfiable: a root or a dependency has no package satisfying it.
    """
    index = packages if isinstance(packages, PackageIndex) else PackageIndex(packages, arch)
    resolver = _Resolver(index)
    wanted = [r for text in roots for r in parse_relations(text)]
    if essential:
        wanted += [(Atom(p.name),) for p in index.essential()]
    for atoms in wanted:
        if any(resolver.satisfied(a) for a in atoms):
            continue
        choices = [c for a in atoms for c in index.candidates(a)]
        if not choices:
            available = [s for a in atoms for s in index.available(a)]
            raise Unsatisfiable("", " | ".join(map(str, atoms)), available)
        resolver.add(choices[0], "", atoms[0])
    resolver.run()
    chosen = sorted(resolver.selected.values(), key=lambda p: (p.name, p.architecture))
    return [PinnedPackage.of(p, mirror) for p in chosen]
