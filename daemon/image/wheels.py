"""Install locked wheels into a staging root: offline, verified, byte-for-byte deterministic.

The ``install-wheels`` builtin's work.  Each wheel's bytes are hashed against the
lock before anything is written; the whole set is then planned (every target
path, so two wheels claiming one file fail before a byte lands) and written with
fixed modes, a fixed ``INSTALLER``, no ``direct_url.json`` and no bytecode.  The
.pyc files are compiled later, inside the sandbox, by the interpreter that will
run them: :data:`COMPILE_SCRIPT` is that program.

>>> report = install_wheels(
...     [WheelInput("click-8.1.7-py3-none-any.whl", sha256, lambda: store.open_blob(d))],
...     Path("stage"),
... )
>>> report.wheels[0].files[:1]
('usr/local/lib/python3.13/site-packages/click-8.1.7.dist-info/INSTALLER',)

Layout under the root (``prefix`` defaults to ``usr/local``): purelib and platlib
in ``<prefix>/lib/python<X.Y>/site-packages``, scripts in ``<prefix>/bin`` with a
``#!/<prefix>/bin/python<X.Y>`` shebang, data at ``<prefix>``, headers in
``<prefix>/include/python<X.Y>/<distribution>``.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import re
import stat
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from installer import install
from installer.destinations import WheelDestination
from installer.exceptions import InstallerError
from installer.records import Hash, RecordEntry
from installer.scripts import Script
from installer.sources import WheelFile
from installer.utils import (
    Scheme,
    construct_record_file,
    copyfileobj_with_hashing,
    fix_shebang,
    parse_metadata_file,
)

from seal.daemon.errors import BuildFailed
from seal.store.errors import CorruptObject, StoreError

__all__ = [
    "COMPILE_SCRIPT",
    "INSTALLER_TEXT",
    "InstallReport",
    "InstalledWheel",
    "WheelConflict",
    "WheelCorrupt",
    "WheelInput",
    "WheelInstallError",
    "install_wheels",
]

INSTALLER_TEXT = b"seal\n"
_FILE_MODE = 0o644
_EXEC_MODE = 0o755
_DIR_MODE = 0o755
_CHUNK = 1 << 20
_ROOT = "the root"  # the owner of a path that was there before the install
_PYTHON = re.compile(r"[0-9]+\.[0-9]+\Z")


# -- inputs, outputs, errors -----------------------------------------------------------------


@dataclass(frozen=True)
class WheelInput:
    """A locked wheel: its file name, the SHA-256 the lock pins, and how to read its bytes."""

    filename: str
    sha256: str  # lowercase hex
    open: Callable[[], BinaryIO]


@dataclass(frozen=True)
class InstalledWheel:
    """What one wheel put into the root (the SBOM's view of it)."""

    filename: str
    name: str  # the project name as its METADATA spells it
    version: str
    sha256: str
    files: tuple[str, ...]  # root-relative POSIX paths, sorted


@dataclass(frozen=True)
class InstallReport:
    """Every wheel installed, in install order (sorted by file name)."""

    site_packages: str  # root-relative, e.g. "usr/local/lib/python3.13/site-packages"
    wheels: tuple[InstalledWheel, ...]


class WheelCorrupt(CorruptObject):
    """A stored wheel's bytes do not hash to what the lock pins: data loss in the store."""

    def __init__(self, filename: str, expected: str, actual: str, *, others: Sequence[str] = ()):
        more = f" (also corrupt: {', '.join(others)})" if others else ""
        StoreError.__init__(
            self,
            f"wheel {filename}: expected sha256 {expected}, its bytes hash to {actual}{more}; "
            "nothing was installed",
            hint="run 'seal store verify', then fetch again",
        )
        self.filename = filename
        self.expected = self.digest = expected
        self.actual = actual
        self.others = tuple(others)


class WheelInstallError(BuildFailed):
    """A wheel cannot be installed: not a zip, a bad RECORD, a path outside its scheme, ..."""

    reason = "wheel-install-failed"


class WheelConflict(WheelInstallError):
    """Two wheels (or a wheel and the root) claim the same path; nothing was installed."""

    reason = "wheel-conflict"

    def __init__(self, clashes: Sequence[tuple[str, str, str]]):
        shown = "; ".join(_clash(*clash) for clash in clashes[:3])
        more = f" and {len(clashes) - 3} more" if len(clashes) > 3 else ""
        super().__init__(
            f"wheels write the same path: {shown}{more}; nothing was installed",
            hint="pin versions that do not overlap, or drop one of the packages",
        )
        self.clashes = tuple(clashes)


def _clash(path: str, first: str, second: str) -> str:
    if first == _ROOT:
        return f"{path} from {second} is already in the root"
    return f"{path} from both {first} and {second}"


# -- the layout ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Root-relative scheme directories for one target interpreter."""

    prefix: str
    python: str

    @property
    def site_packages(self) -> str:
        return f"{self.prefix}/lib/python{self.python}/site-packages"

    @property
    def interpreter(self) -> str:
        return f"/{self.prefix}/bin/python{self.python}"

    def schemes(self, distribution: str) -> dict[str, str]:
        return {
            "purelib": self.site_packages,
            "platlib": self.site_packages,
            "scripts": f"{self.prefix}/bin",
            "data": self.prefix,
            "headers": f"{self.prefix}/include/python{self.python}/{distribution}",
        }


def _check_prefix(prefix: str) -> str:
    clean = prefix.strip("/")
    parts = clean.split("/")
    if not clean or any(p in ("", ".", "..") for p in parts) or "\\" in clean:
        raise ValueError(f"prefix {prefix!r} must be a plain relative path such as 'usr/local'")
    return clean


# -- the destination -------------------------------------------------------------------------


@dataclass
class _Claims:
    """Every root-relative path planned so far, with the wheel that writes it."""

    owner: dict[str, str] = field(default_factory=dict)
    clashes: list[tuple[str, str, str]] = field(default_factory=list)


class _StagingDestination(WheelDestination):
    """Writes one wheel under ``root`` with fixed modes, or (``claims`` given) only plans it.

    Planning records each target path in ``claims`` and reports clashes with other
    wheels or with files already in the root; writing assumes a clean plan.
    """

    def __init__(
        self,
        root: Path,
        layout: _Layout,
        distribution: str,
        wheel: str,
        *,
        claims: _Claims | None = None,
    ):
        self._root = root
        self._layout = layout
        self._schemes = layout.schemes(distribution)
        self._wheel = wheel
        self._claims = claims
        self.written: list[str] = []

    # installer's protocol

    def write_file(
        self, scheme: Scheme, path: str | os.PathLike[str], stream: BinaryIO, is_executable: bool
    ) -> RecordEntry:
        inner = os.fspath(path)
        if scheme == "scripts":
            with fix_shebang(stream, self._layout.interpreter) as fixed:
                return self._write(scheme, inner, fixed, executable=True)
        return self._write(scheme, inner, stream, executable=is_executable)

    def write_script(self, name: str, module: str, attr: str, section: str) -> RecordEntry:
        script = Script(name, module, attr, section)  # type: ignore[arg-type]
        script_name, data = script.generate(self._layout.interpreter, "posix")
        return self._write(Scheme("scripts"), script_name, io.BytesIO(data), executable=True)

    def finalize_installation(
        self,
        scheme: Scheme,
        record_file_path: str,
        records: Iterable[tuple[Scheme, RecordEntry]],
    ) -> None:
        base = self._schemes[scheme]
        # paths made relative to the RECORD's scheme first, so the rows sort by what they say
        rows = []
        for other, entry in records:
            path = posixpath.relpath(self._target(other, entry.path), base)
            rows.append((other, RecordEntry(path, entry.hash_, entry.size)))
        with construct_record_file(rows) as record:
            self._write(scheme, record_file_path, record, executable=False)

    # the work

    def _target(self, scheme: str, inner: str) -> str:
        """The root-relative path of ``inner`` in ``scheme``, refusing anything outside it."""
        parts = inner.replace("\\", "/").split("/")
        if inner.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise WheelInstallError(
                f"wheel {self._wheel}: {inner!r} would land outside its {scheme} directory"
            )
        return posixpath.join(self._schemes[scheme], *parts)

    def _write(self, scheme: str, inner: str, stream: BinaryIO, *, executable: bool) -> RecordEntry:
        rel = self._target(scheme, inner)
        self.written.append(rel)
        if self._claims is not None:
            self._plan(rel)
            return RecordEntry(inner, None, None)
        path = self._root / rel
        _make_parents(self._root, rel)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags, 0o600)
        with open(fd, "wb") as out:
            digest, size = copyfileobj_with_hashing(stream, out, "sha256")
            os.fchmod(out.fileno(), _EXEC_MODE if executable else _FILE_MODE)
        return RecordEntry(inner, Hash("sha256", digest), size)

    def _plan(self, rel: str) -> None:
        assert self._claims is not None
        earlier = self._claims.owner.get(rel)
        if earlier is not None:
            self._claims.clashes.append((rel, earlier, self._wheel))
        elif os.path.lexists(self._root / rel):
            self._claims.clashes.append((rel, _ROOT, self._wheel))
        self._claims.owner[rel] = self._wheel


def _make_parents(root: Path, rel: str) -> None:
    """Create the directories above ``rel`` with mode 0755, refusing symlinks on the way."""
    current = root
    for part in rel.split("/")[:-1]:
        current = current / part
        try:
            st = current.lstat()
        except FileNotFoundError:
            current.mkdir()
            current.chmod(_DIR_MODE)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise WheelInstallError(f"{current.relative_to(root)} in the root is not a directory")


# -- reading and checking wheels -------------------------------------------------------------


def _spool(wheel: WheelInput, stack: ExitStack) -> tuple[BinaryIO, str]:
    """Copy the wheel to an anonymous temporary file, hashing it on the way."""
    copy = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 - the stack closes it
    hasher = hashlib.sha256()
    with wheel.open() as src:
        while chunk := src.read(_CHUNK):
            hasher.update(chunk)
            copy.write(chunk)
    copy.seek(0)
    return copy, hasher.hexdigest()


def _open_wheel(wheel: WheelInput, data: BinaryIO, stack: ExitStack) -> WheelFile:
    """The wheel as installer's source, its RECORD checked against its members."""
    try:
        archive = stack.enter_context(zipfile.ZipFile(data))
        archive.filename = wheel.filename  # WheelFile names the distribution from it
        source = WheelFile(archive)
        source.validate_record(validate_contents=True)
    except (zipfile.BadZipFile, InstallerError, ValueError) as err:
        issues = getattr(err, "issues", None) or [str(err)]
        raise WheelInstallError(f"wheel {wheel.filename} is not installable: {issues[0]}") from err
    return source


def _metadata(source: WheelFile) -> tuple[str, str]:
    meta = parse_metadata_file(source.read_dist_info("METADATA"))
    return meta.get("Name") or source.distribution, meta.get("Version") or source.version


def _run(source: WheelFile, destination: _StagingDestination, filename: str) -> None:
    try:
        install(source, destination, {"INSTALLER": INSTALLER_TEXT})
    except (InstallerError, ValueError) as err:
        raise WheelInstallError(f"wheel {filename} is not installable: {err}") from err


def install_wheels(
    wheels: Sequence[WheelInput],
    root: Path,
    *,
    prefix: str = "usr/local",
    python: str = "3.13",
) -> InstallReport:
    """Install ``wheels`` under ``root`` for ``/<prefix>/bin/python<python>``; no bytecode.

    Wheels go in sorted by file name, so the result depends on the set, not the
    order given.  All checks come before the first write.

    Raises:
        WheelCorrupt: a wheel's bytes do not hash to its ``sha256`` (all are named).
        WheelConflict: two wheels, or a wheel and the root, claim one path.
        WheelInstallError: a wheel is malformed (zip, RECORD, dist-info, paths).
    """
    if not _PYTHON.match(python):
        raise ValueError(f"python {python!r} must be a version like '3.13'")
    layout = _Layout(_check_prefix(prefix), python)
    ordered = sorted(wheels, key=lambda w: w.filename)
    names = [w.filename for w in ordered]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise WheelInstallError(f"wheel given more than once: {', '.join(twice)}")

    with ExitStack() as stack:
        spooled = [(w, *_spool(w, stack)) for w in ordered]
        bad = [(w, actual) for w, _, actual in spooled if actual != w.sha256]
        if bad:
            (first, actual), others = bad[0], [w.filename for w, _ in bad[1:]]
            raise WheelCorrupt(first.filename, first.sha256, actual, others=others)
        sources = [(w, _open_wheel(w, data, stack)) for w, data, _ in spooled]

        claims = _Claims()
        for wheel, source in sources:
            plan = _StagingDestination(
                root, layout, source.distribution, wheel.filename, claims=claims
            )
            _run(source, plan, wheel.filename)
        if claims.clashes:
            raise WheelConflict(claims.clashes)

        root.mkdir(parents=True, exist_ok=True)
        installed = []
        for wheel, source in sources:
            dest = _StagingDestination(root, layout, source.distribution, wheel.filename)
            _run(source, dest, wheel.filename)
            name, version = _metadata(source)
            files = tuple(sorted(dest.written))
            installed.append(InstalledWheel(wheel.filename, name, version, wheel.sha256, files))
    return InstallReport(layout.site_packages, tuple(installed))


# -- bytecode, compiled in the sandbox by the target interpreter -----------------------------

COMPILE_SCRIPT = r'''
"""Byte-compile a site-packages tree for its final path: unchecked-hash pycs, -O0 only.

usage: python3.X -I -c "$COMPILE_SCRIPT" SITE_PACKAGES FINAL_PATH
Each .py under SITE_PACKAGES gets __pycache__/<name>.<tag>.pyc whose code objects
name FINAL_PATH/<relative path>.  A file that is not valid Python for this
interpreter (a template, a py2-only test fixture) is left without a .pyc and
listed on stderr, as pip does; any other failure (I/O, permissions) exits 1.
"""
import importlib.util
import os
import py_compile
import sys

MODE = py_compile.PycInvalidationMode.UNCHECKED_HASH


def main(argv):
    if len(argv) != 2:
        print("usage: -c COMPILE_SCRIPT SITE_PACKAGES FINAL_PATH", file=sys.stderr)
        return 2
    src, final = os.path.abspath(argv[0]), argv[1].rstrip("/")
    if not os.path.isdir(src):
        print(f"compile: {src} is not a directory", file=sys.stderr)
        return 2
    compiled = skipped = 0
    for top, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            path = os.path.join(top, name)
            if not name.endswith(".py") or os.path.islink(path):
                continue
            rel = os.path.relpath(path, src).replace(os.sep, "/")
            cfile = importlib.util.cache_from_source(path, optimization="")
            try:
                py_compile.compile(
                    path, cfile=cfile, dfile=f"{final}/{rel}", doraise=True,
                    optimize=0, invalidation_mode=MODE,
                )
            except py_compile.PyCompileError as err:
                skipped += 1
                print(f"compile: not valid Python, no .pyc: {rel} ({err.exc_type_name})",
                      file=sys.stderr)
                continue
            except OSError as err:
                print(f"compile: {rel}: {err}", file=sys.stderr)
                return 1
            os.chmod(os.path.dirname(cfile), 0o755)
            os.chmod(cfile, 0o644)
            compiled += 1
    print(f"compile: {compiled} files compiled, {skipped} skipped (not valid Python)")
    return 0


sys.exit(main(sys.argv[1:]))
'''
"""Run by the built interpreter as ``python3.X -I -c COMPILE_SCRIPT <dir> <final dir>``."""
