"""Per-ELF hardening facts: PIE, RELRO, BIND_NOW, stack protector, FORTIFY.

The rules are those of Debian's ``hardening-check`` (package devscripts), read
with pyelftools instead of readelf, so that seal's report and that tool agree
file by file::

    facts = scan_tree(Path("rootfs"))
    Path("hardening.json").write_bytes(report_json(facts))
    for line in failures(facts):
        print(line)

Three-valued facts.  ``pie``, ``stack_protector`` and ``fortify`` may be
``None``, meaning the fact cannot be judged; ``failures`` lets ``None`` pass,
as hardening-check does:

- ``pie`` is ``None`` for a shared object ("regular shared library (ignored)").
- ``stack_protector`` is ``None`` when the file has no symbol table at all
  ("unknown, no symbols found"; a stripped static binary).  A shared object with
  a symbol table but no ``__stack_chk_fail`` import is ``False``, even when it
  was compiled with ``-fstack-protector-strong`` and simply has no function the
  protector instruments: hardening-check says "no, not found!" for it too.
- ``fortify`` is ``None`` when no fortifiable libc function and no ``__*_chk``
  variant is imported ("unknown, no protectable libc functions used").

Only loadable ELF files (``ET_EXEC``, ``ET_DYN``) get facts; relocatable
objects and core files are not loaded by anyone and are skipped like non-ELF
files.  A file that starts with the ELF magic but cannot be read whole
(truncated, corrupt) raises :class:`ElfUnreadable`; ``scan_tree`` records it as
an entry of kind ``"unreadable"`` that always fails.
"""

from __future__ import annotations

import json
import os
import stat
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from elftools.common.exceptions import ELFError
from elftools.construct import ConstructError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from seal.daemon.errors import DaemonError

__all__ = [
    "FACTS",
    "ElfFacts",
    "ElfUnreadable",
    "elf_facts",
    "failures",
    "report_json",
    "scan_tree",
]

REPORT_SCHEMA = "seal.hardening/v1"

# The facts a file can be required to have, in report order, with their labels.
FACTS: dict[str, str] = {
    "pie": "PIE",
    "relro": "RELRO",
    "bind_now": "BIND_NOW",
    "stack_protector": "stack protector",
    "fortify": "FORTIFY",
}

# glibc functions that have a __<name>_chk variant: hardening-check's table
# (its --find-libc-functions output for glibc), so both tools judge alike.
FORTIFIABLE_LIBC = frozenset(
    """
    asprintf confstr dprintf fdelt fgets fgets_unlocked fgetws fgetws_unlocked fprintf fread
    fread_unlocked fwprintf getcwd getdomainname getgroups gethostname getlogin_r gets getwd
    longjmp mbsnrtowcs mbsrtowcs mbstowcs memcpy memmove mempcpy memset obstack_printf
    obstack_vprintf poll ppoll pread64 pread printf ptsname_r read readlink readlinkat
    realpath recv recvfrom snprintf sprintf stpcpy stpncpy strcat strcpy strncat strncpy
    swprintf syslog ttyname_r vasprintf vdprintf vfprintf vfwprintf vprintf vsnprintf
    vsprintf vswprintf vsyslog vwprintf wcpcpy wcpncpy wcrtomb wcscat wcscpy wcsncat wcsncpy
    wcsnrtombs wcsrtombs wcstombs wctomb wmemcpy wmemmove wmempcpy wmemset wprintf
    """.split()  # noqa: SIM905 (a table to read, not a list to edit)
)

_ELF_MAGIC = b"\x7fELF"
_HEADER_SIZE = {b"\x01": 52, b"\x02": 64}  # by EI_CLASS: ELFCLASS32, ELFCLASS64
# Symbol types hardening-check counts as functions (STT_GNU_IFUNC is STT_LOOS).
_FUNC_TYPES = frozenset({"STT_FUNC", "STT_NOTYPE", "STT_LOOS", "STT_GNU_IFUNC"})
_DT_NULL = 0
_DT_BIND_NOW = 24
_DT_FLAGS = 30
_DT_FLAGS_1 = 0x6FFFFFFB
_DF_BIND_NOW = 0x8
_DF_1_NOW = 0x1
_DF_1_PIE = 0x08000000


class ElfUnreadable(DaemonError, ValueError):
    """A file looks like ELF (or cannot be opened) but cannot be read whole."""

    reason = "elf-unreadable"

    def __init__(self, path: str, problem: str):
        super().__init__(
            f"{path}: unreadable ELF file: {problem}",
            hint="a truncated or corrupt binary: rebuild the step that produced it",
        )
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class ElfFacts:
    """What hardening-check would say about one ELF file (``None``: cannot be judged).

    ``fortified`` lists the ``__<name>_chk`` functions the file imports;
    ``fortifiable`` the plain libc functions it imports that have such a variant.
    ``error`` is set only on the ``"unreadable"`` entries ``scan_tree`` records.
    """

    path: str
    kind: str  # "executable" | "shared-object" | "unreadable"
    pie: bool | None
    relro: bool
    bind_now: bool
    stack_protector: bool | None
    fortify: bool | None
    fortified: tuple[str, ...]
    fortifiable: tuple[str, ...]
    error: str | None = None

    @classmethod
    def unreadable(cls, path: str, problem: str) -> ElfFacts:
        """The entry for a file that could not be read: every fact false, ``error`` set."""
        return cls(
            path=path,
            kind="unreadable",
            pie=False,
            relro=False,
            bind_now=False,
            stack_protector=False,
            fortify=False,
            fortified=(),
            fortifiable=(),
            error=problem,
        )

    def to_json(self) -> dict[str, object]:
        """The file's entry in the report."""
        entry: dict[str, object] = {
            "path": self.path,
            "kind": self.kind,
            **{fact: getattr(self, fact) for fact in FACTS},
            "fortified": list(self.fortified),
            "fortifiable": list(self.fortifiable),
        }
        if self.error is not None:
            entry["error"] = self.error
        return entry


def elf_facts(path: Path, name: str) -> ElfFacts | None:
    """Read the hardening facts of the file at ``path``, recorded under ``name``.

    Returns:
        The facts, or ``None`` when the file is not ELF or not a loadable ELF
        (a relocatable object, a core file).
    Raises:
        ElfUnreadable: the file cannot be opened, or starts like ELF but is
            truncated or corrupt.
    """
    try:
        with open(path, "rb") as stream:
            if stream.read(4) != _ELF_MAGIC:
                return None
            size = os.fstat(stream.fileno()).st_size
            return _read_facts(stream, size, name)
    except ElfUnreadable:
        raise
    except OSError as e:
        raise ElfUnreadable(name, e.strerror or str(e)) from e
    except (ELFError, ConstructError, struct.error, EOFError, ValueError, LookupError) as e:
        raise ElfUnreadable(name, f"corrupt: {e or type(e).__name__}") from e


def _read_facts(stream: BinaryIO, size: int, name: str) -> ElfFacts | None:
    header_size = _HEADER_SIZE.get(stream.read(1))  # EI_CLASS, right after the magic
    if header_size is not None and size < header_size:
        problem = f"truncated: the ELF header needs {header_size} bytes, the file has {size}"
        raise ElfUnreadable(name, problem)
    stream.seek(0)
    elf = ELFFile(stream)
    e_type = elf["e_type"]
    if e_type not in ("ET_EXEC", "ET_DYN"):
        return None
    _check_extent(elf, size, name)

    segment_types = {segment["p_type"] for segment in elf.iter_segments()}
    tags = _dynamic_tags(elf, stream)
    flags = _tag_bits(tags, _DT_FLAGS)
    flags_1 = _tag_bits(tags, _DT_FLAGS_1)

    if e_type == "ET_EXEC":
        kind, pie = "executable", False
    elif segment_types & {"PT_PHDR", "PT_INTERP"} or flags_1 & _DF_1_PIE:
        kind, pie = "executable", True
    else:
        kind, pie = "shared-object", None

    imported = _undefined_functions(elf)
    if imported is None:
        stack_protector: bool | None = None
        imported = set()
    else:
        stack_protector = "__stack_chk_fail" in imported
    fortified = tuple(sorted(f"__{fn}_chk" for fn in FORTIFIABLE_LIBC if f"__{fn}_chk" in imported))
    fortifiable = tuple(sorted(FORTIFIABLE_LIBC & imported))
    fortify = True if fortified else (False if fortifiable else None)

    return ElfFacts(
        path=name,
        kind=kind,
        pie=pie,
        relro="PT_GNU_RELRO" in segment_types,
        bind_now=(
            any(tag == _DT_BIND_NOW for tag, _ in tags)
            or bool(flags & _DF_BIND_NOW)
            or bool(flags_1 & _DF_1_NOW)
        ),
        stack_protector=stack_protector,
        fortify=fortify,
        fortified=fortified,
        fortifiable=fortifiable,
    )


def _check_extent(elf: ELFFile, size: int, name: str) -> None:
    """Refuse a file whose header tables, segments or sections run past its end."""

    def check(what: str, end: int) -> None:
        if end > size:
            raise ElfUnreadable(name, f"truncated: {what} ends at byte {end}, the file has {size}")

    header = elf.header
    check("program header table", header["e_phoff"] + header["e_phnum"] * header["e_phentsize"])
    check("section header table", header["e_shoff"] + header["e_shnum"] * header["e_shentsize"])
    for index, segment in enumerate(elf.iter_segments()):
        check(f"segment {index}", segment["p_offset"] + segment["p_filesz"])
    for section in elf.iter_sections():
        if section["sh_type"] not in ("SHT_NOBITS", "SHT_NULL"):
            check(f"section {section.name!r}", section["sh_offset"] + section["sh_size"])


def _dynamic_tags(elf: ELFFile, stream: BinaryIO) -> list[tuple[int, int]]:
    """The (d_tag, d_val) pairs of the PT_DYNAMIC segment, read raw (no string lookups)."""
    for segment in elf.iter_segments():
        if segment["p_type"] != "PT_DYNAMIC":
            continue
        word = "q" if elf.elfclass == 64 else "i"
        entry = struct.Struct(("<" if elf.little_endian else ">") + word + word.upper())
        stream.seek(segment["p_offset"])
        data = stream.read(segment["p_filesz"])
        tags = []
        for offset in range(0, len(data) - entry.size + 1, entry.size):
            tag, value = entry.unpack_from(data, offset)
            if tag == _DT_NULL:
                break
            tags.append((tag, value))
        return tags
    return []


def _tag_bits(tags: Iterable[tuple[int, int]], wanted: int) -> int:
    bits = 0
    for tag, value in tags:
        if tag == wanted:
            bits |= value
    return bits


def _undefined_functions(elf: ELFFile) -> set[str] | None:
    """Names of undefined function symbols in .dynsym and .symtab; ``None`` without either.

    Like ``readelf -sW`` as hardening-check reads it: FUNC, IFUNC and NOTYPE
    symbols whose section is UND, with any ``@VERSION`` suffix cut off.  The
    null symbol every table starts with counts (as the empty name), which is why
    only a file without any symbol table is "unknown".
    """
    tables = [s for s in elf.iter_sections() if isinstance(s, SymbolTableSection)]
    if not any(table.num_symbols() for table in tables):
        return None
    names = set()
    for table in tables:
        for symbol in table.iter_symbols():
            if symbol["st_shndx"] == "SHN_UNDEF" and symbol["st_info"]["type"] in _FUNC_TYPES:
                names.add(symbol.name.split("@", 1)[0])
    return names


def scan_tree(root: Path) -> list[ElfFacts]:
    """Facts for every regular ELF file under ``root`` (symlinks not followed), by path.

    Paths are relative to ``root`` in POSIX form.  A file that cannot be read
    whole becomes an entry of kind ``"unreadable"`` with ``error`` set, which
    ``failures`` always reports; the scan itself does not stop.
    """
    found: list[ElfFacts] = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for filename in sorted(filenames):
            path = Path(directory, filename)
            name = path.relative_to(root).as_posix()
            try:
                if not stat.S_ISREG(path.lstat().st_mode):
                    continue
                facts = elf_facts(path, name)
            except ElfUnreadable as e:
                facts = ElfFacts.unreadable(name, e.problem)
            except OSError as e:
                facts = ElfFacts.unreadable(name, e.strerror or str(e))
            if facts is not None:
                found.append(facts)
    found.sort(key=lambda facts: facts.path)
    return found


def failures(
    facts: Iterable[ElfFacts],
    *,
    require: Sequence[str] = ("relro", "bind_now", "pie", "stack_protector", "fortify"),
) -> list[str]:
    """One line per file lacking a required fact; ``None`` (not judgeable) passes.

    Raises:
        ValueError: ``require`` names a fact that does not exist.
    """
    unknown = [fact for fact in require if fact not in FACTS]
    if unknown:
        raise ValueError(f"unknown hardening facts {unknown}; known: {', '.join(FACTS)}")
    lines = []
    for item in facts:
        if item.error is not None:
            lines.append(f"{item.path}: unreadable ELF file: {item.error}")
            continue
        missing = [FACTS[fact] for fact in FACTS if fact in require and not _passes(item, fact)]
        if missing:
            lines.append(f"{item.path} ({item.kind}): no {', no '.join(missing)}")
    return lines


def _passes(item: ElfFacts, fact: str) -> bool:
    return getattr(item, fact) is not False


def report_json(facts: Sequence[ElfFacts]) -> bytes:
    """The report as deterministic JSON: sorted keys, files by path, counts per fact.

    ``summary`` counts each fact's values as ``yes``/``no``/``unknown``
    (``not_applicable`` for the PIE of shared objects); ``failures`` holds the
    lines of :func:`failures` with every fact required.
    """
    ordered = sorted(facts, key=lambda item: item.path)
    kinds: dict[str, int] = {}
    for item in ordered:
        kinds[item.kind] = kinds.get(item.kind, 0) + 1
    summary: dict[str, object] = {"files": len(ordered), "kinds": kinds}
    for fact in FACTS:
        counts = {"yes": 0, "no": 0, "not_applicable" if fact == "pie" else "unknown": 0}
        for item in ordered:
            value = getattr(item, fact)
            if value is None:
                counts["not_applicable" if fact == "pie" else "unknown"] += 1
            else:
                counts["yes" if value else "no"] += 1
        summary[fact] = counts
    document = {
        "schema": REPORT_SCHEMA,
        "rules": "devscripts hardening-check (PIE, stack protector, FORTIFY, RELRO, BIND_NOW)",
        "summary": summary,
        "failures": failures(ordered),
        "files": [item.to_json() for item in ordered],
    }
    return (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=True) + "\n").encode()
