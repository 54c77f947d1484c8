"""The interpreter and platform a lock is made for: marker environment and wheel tags.

::

    target = Target.cpython("3.13.5")           # x86_64 Linux, glibc 2.36 (Debian bookworm)
    target.describe()                           # "cp313 manylinux_2_36 x86_64"
    target.markers()["python_version"]          # "3.13"
    target.tag_rank(Tag("cp313", "cp313", "manylinux_2_17_x86_64"))   # lower is better

Nothing here looks at the host: packaging's ``sys_tags()`` and
``default_environment()`` describe the interpreter seal runs on, which is not
the one the image gets. The tag list is what pip computes on the target itself
(CPython tags, then compatible tags; manylinux from the target's glibc down to
2.5, each legacy alias right after its PEP 600 twin), minus ``linux_<arch>``:
such wheels are built for one machine and never portable. musllinux wheels are
not compatible with a glibc target and are absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.version import InvalidVersion, Version

DEFAULT_GLIBC = (2, 36)  # Debian 12 "bookworm", the default base
DEFAULT_MACHINE = "x86_64"
_LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
_OLDEST_GLIBC_MINOR = {"x86_64": 5, "i686": 5}  # PEP 513's floor; other machines start at 2.17


class InvalidTarget(ValueError):
    """A target description that cannot be used (a bad version, an old glibc)."""


@dataclass(frozen=True)
class Target:
    """CPython ``python_version`` on ``machine`` Linux with glibc ``glibc``.

    ``python_version`` is a full release ``X.Y.Z`` (it is compared with
    ``Requires-Python`` and ``python_full_version`` markers).
    """

    python_version: str
    machine: str = DEFAULT_MACHINE
    glibc: tuple[int, int] = DEFAULT_GLIBC

    def __post_init__(self) -> None:
        try:
            version = Version(self.python_version)
        except InvalidVersion:
            raise InvalidTarget(f"not a Python version: {self.python_version!r}") from None
        exact = version.base_version == self.python_version  # no rc, no "3.13.05"
        if len(version.release) != 3 or version.major != 3 or not exact:
            raise InvalidTarget(f"need a CPython release X.Y.Z, not {self.python_version!r}")
        if self.glibc[0] != 2 or self.glibc[1] < 17:
            raise InvalidTarget(f"glibc {self.glibc[0]}.{self.glibc[1]} is older than 2.17")

    @classmethod
    def cpython(
        cls,
        python_version: str,
        *,
        machine: str = DEFAULT_MACHINE,
        glibc: tuple[int, int] = DEFAULT_GLIBC,
    ) -> Target:
        """The default target shape: CPython on glibc Linux (x86_64, bookworm's glibc)."""
        return cls(python_version, machine, glibc)

    @cached_property
    def version(self) -> Version:
        return Version(self.python_version)

    @property
    def short_version(self) -> tuple[int, int]:
        """``(X, Y)``."""
        return self.version.major, self.version.minor

    @property
    def interpreter(self) -> str:
        """The interpreter tag, e.g. ``cp313``."""
        major, minor = self.short_version
        return f"cp{major}{minor}"

    def describe(self) -> str:
        """A short human form for messages: ``cp313 manylinux_2_36 x86_64``."""
        return f"{self.interpreter} manylinux_{self.glibc[0]}_{self.glibc[1]} {self.machine}"

    def markers(self, extra: str = "") -> dict[str, str]:
        """The PEP 508 marker environment of the target, every key set.

        ``platform_release`` and ``platform_version`` describe the kernel the
        container will run on, which is unknown at lock time: they are empty
        strings (a marker comparing them is false, never the host's kernel).
        """
        major, minor = self.short_version
        return {
            "implementation_name": "cpython",
            "implementation_version": self.python_version,
            "os_name": "posix",
            "platform_machine": self.machine,
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": self.python_version,
            "platform_python_implementation": "CPython",
            "python_version": f"{major}.{minor}",
            "sys_platform": "linux",
            "extra": extra,
        }

    @cached_property
    def platforms(self) -> tuple[str, ...]:
        """manylinux platform tags, best first: ``manylinux_2_36_x86_64`` ... ``manylinux1_...``."""
        oldest = _OLDEST_GLIBC_MINOR.get(self.machine, 17)
        result: list[str] = []
        for minor in range(self.glibc[1], oldest - 1, -1):
            result.append(f"manylinux_2_{minor}_{self.machine}")
            legacy = _LEGACY_MANYLINUX.get((2, minor))
            if legacy is not None:
                result.append(f"{legacy}_{self.machine}")
        return tuple(result)

    @cached_property
    def tags(self) -> tuple[Tag, ...]:
        """Every wheel tag the target accepts, most preferred first."""
        version = self.short_version
        ordered = [*cpython_tags(version, [self.interpreter], self.platforms)]
        ordered += compatible_tags(version, self.interpreter, self.platforms)
        return tuple(dict.fromkeys(ordered))  # first occurrence wins

    @cached_property
    def _ranks(self) -> dict[Tag, int]:
        return {tag: rank for rank, tag in enumerate(self.tags)}

    def tag_rank(self, tag: Tag) -> int | None:
        """The tag's position in :attr:`tags` (lower is better), None if incompatible."""
        return self._ranks.get(tag)

    def best_tag(self, tags: frozenset[Tag]) -> tuple[int, Tag] | None:
        """The best ``(rank, tag)`` among a wheel's tags, None if none is compatible."""
        ranked = [(rank, tag) for tag in tags if (rank := self._ranks.get(tag)) is not None]
        return min(ranked, key=lambda pair: pair[0]) if ranked else None
