"""The image config: a small YAML file, checked strictly, every error located at file:line:column.

>>> cfg = parse_config(Path("image.yaml").read_text(), "image.yaml")   # doctest: +SKIP
>>> cfg.python_version, [(p.name, p.version) for p in cfg.packages]      # doctest: +SKIP
('3.13.5', [('fastapi', '0.104.1'), ('uvicorn', '0.24.0')])

The brief's form parses as written::

    name: python-fastapi
    python_version: 3.13.5
    packages:
      fastapi: 0.104.1
      uvicorn: 0.24.0
    build_type: hermetic

The YAML is composed, not loaded: each value is checked on its node, so an error
names the line and column it comes from, a duplicate key is caught (a YAML
loader silently keeps the last one), and a version is taken from the text the
user wrote.  ``python_version: 3.10`` is the float 3.1 to YAML and is rejected;
``numpy: 2.0`` is accepted as the version "2.0" because the text is exact.

Every problem is collected before raising: the ``ConfigError`` raised is the
first one in the file, and its ``problems`` lists them all in file order.
"""

from __future__ import annotations

import difflib
import posixpath
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from seal.daemon.errors import InvalidDocument

SUPPORTED_PLATFORMS = ("linux/amd64",)
KNOWN_PLATFORMS = frozenset(
    {"linux/amd64", "linux/arm64", "linux/arm/v7", "linux/386", "linux/ppc64le", "linux/s390x"}
)
REQUIRED = ("name", "python_version", "packages", "build_type")
OPTIONAL = ("platforms", "entrypoint", "cmd", "env", "app", "tests", "base", "source_date_epoch")
EPOCH_FLOOR = 315532800  # 1980-01-01: zip-based formats (wheels) hold nothing earlier

_TAG = "tag:yaml.org,2002:"
_STR, _NULL, _INT, _FLOAT, _MERGE = (_TAG + t for t in ("str", "null", "int", "float", "merge"))
_NAMES = {
    _TAG + "str": "a string",
    _TAG + "int": "an integer",
    _TAG + "float": "a number",
    _TAG + "bool": "a boolean",
    _TAG + "null": "empty",
    _TAG + "timestamp": "a date",
    _TAG + "binary": "binary data",
    _TAG + "seq": "a list",
    _TAG + "map": "a mapping",
    _TAG + "set": "a set",
    _TAG + "omap": "an ordered mapping",
}
# PEP 508 names, with optional extras: uvicorn[standard]
_PACKAGE = re.compile(
    r"(?P<name>[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])"
    r"(?:\[(?P<extras>[^\]]*)\])?"
)
_EXTRA = re.compile(r"[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]")
# An OCI repository name (distribution spec), which the image is tagged with.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_IMAGE_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
PYTHON_VERSION_RE = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
_DEBIAN_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RANGE = re.compile(r"^\s*(===|==|~=|!=|>=|<=|>|<|\^|~)|[*,]|(^|\.)x$|^latest$", re.IGNORECASE)


class ConfigError(InvalidDocument):
    """The image config is not valid YAML or breaks a rule; ``str()`` is ``file:line:col: message``.

    ``kind`` says which rule (``unknown-key``, ``unpinned-version``, ...);
    ``problems`` holds every problem found, this one first.
    """

    reason = "config-invalid"

    def __init__(
        self,
        message: str,
        *,
        file: str,
        line: int,
        column: int,
        kind: str = "invalid",
        hint: str | None = None,
    ):
        # ``message`` (what clients see) carries the location; ``detail`` is the bare text
        super().__init__(f"{file}:{line}:{column}: {message}", hint=hint)
        self.detail = message
        self.file = file
        self.line = line
        self.column = column
        self.kind = kind
        self.problems: tuple[ConfigError, ...] = (self,)

    def __str__(self) -> str:
        return self.message

    def render(self) -> str:
        """Every problem, one per line, each followed by its hint when it has one."""
        lines = []
        for p in self.problems:
            lines.append(str(p))
            if p.hint:
                lines.append(f"  hint: {p.hint}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Mark:
    """Where a value starts in the config (1-based line and column)."""

    line: int
    column: int


@dataclass(frozen=True)
class PackagePin:
    """One ``name: version`` entry of ``packages``; ``name`` is PEP 503-normalized."""

    name: str
    version: str
    extras: tuple[str, ...] = ()
    spelling: str = field(default="", compare=False)  # the key as written


@dataclass(frozen=True)
class ImageConfig:
    """A checked image config.  ``marks`` locates values for later errors (see ``error_at``).

    Keys of ``marks``: a top-level key (``"python_version"``), ``"packages.<name>"``
    with the normalized name, ``"app[<i>]"``, ``"base[<i>]"``, ``"tests[<i>]"``, ``"env.<NAME>"``.
    """

    file: str
    name: str
    python_version: str
    packages: tuple[PackagePin, ...]
    build_type: str = "hermetic"
    platforms: tuple[str, ...] = SUPPORTED_PLATFORMS
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[tuple[str, str], ...] = ()
    app: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()
    base: tuple[str, ...] = ()
    source_date_epoch: int | None = None
    marks: Mapping[str, Mark] = field(default_factory=dict, compare=False, repr=False)

    def error_at(
        self, key: str, message: str, *, kind: str = "invalid", hint: str | None = None
    ) -> ConfigError:
        """A ConfigError located at ``key`` (a ``marks`` key), for errors found after parsing.

        An unknown key falls back to line 1, column 1.
        """
        mark = self.marks.get(key, Mark(1, 1))
        return ConfigError(
            message, file=self.file, line=mark.line, column=mark.column, kind=kind, hint=hint
        )


def parse_config(text: str | bytes, file: str) -> ImageConfig:
    """Check an image config and return it.

    Args:
        text: the YAML document.
        file: the name errors give for it (the path as the user wrote it).

    Raises:
        ConfigError: the first problem in file order; ``problems`` has them all.
    """
    root = _compose(text, file)
    checker = _Checker(file)
    config = checker.document(root)
    if checker.problems:
        problems = sorted(checker.problems, key=lambda p: (p.line, p.column))
        first = problems[0]
        first.problems = tuple(problems)
        raise first
    assert config is not None
    return config


def resolve_app_paths(config: ImageConfig, directory: Path) -> tuple[Path, ...]:
    """The ``app`` entries as paths under ``directory`` (the config's folder), checked on disk.

    Parsing only checks the text; this also catches an entry that does not
    exist or that a symlink leads out of ``directory``.
    """
    top = directory.resolve()
    paths = []
    for i, entry in enumerate(config.app):
        real = (top / entry).resolve()
        if real != top and top not in real.parents:
            raise config.error_at(
                f"app[{i}]",
                f"app path {entry!r} leads out of the config's directory (to {real})",
                kind="app-path-escapes",
                hint="copy the files next to the config instead of linking to them",
            )
        if not real.exists():
            raise config.error_at(
                f"app[{i}]", f"app path {entry!r} does not exist in {top}", kind="app-path-missing"
            )
        paths.append(real)
    return tuple(paths)


# -- YAML -----------------------------------------------------------------------------------
def _compose(text: str | bytes, file: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "invalid YAML"
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ConfigError(
            f"YAML syntax error: {what}", file=file, line=line, column=column, kind="yaml-syntax"
        ) from None
    except yaml.reader.ReaderError as exc:  # bad encoding or a control character
        line, column = _position(text, exc.position)
        raise ConfigError(
            f"not readable as YAML: {exc.reason}",
            file=file,
            line=line,
            column=column,
            kind="yaml-syntax",
        ) from None


def _position(text: str | bytes, offset: int) -> tuple[int, int]:
    """1-based line and column of a character (or, in undecodable bytes, byte) offset."""
    before = text[:offset]
    newline = "\n" if isinstance(before, str) else b"\n"
    return before.count(newline) + 1, offset - (before.rfind(newline) + 1) + 1


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _type_name(node: yaml.Node) -> str:
    return _NAMES.get(node.tag, f"a value tagged {node.tag}")


def _is_str(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _STR


class _Checker:
    """Walks the composed document; records problems and keeps going where it can."""

    def __init__(self, file: str):
        self.file = file
        self.problems: list[ConfigError] = []
        self.marks: dict[str, Mark] = {}

    def fail(self, node: yaml.Node, message: str, kind: str, hint: str | None = None) -> None:
        m = _mark(node)
        self.problems.append(
            ConfigError(message, file=self.file, line=m.line, column=m.column, kind=kind, hint=hint)
        )

    # -- structure -------------------------------------------------------------------------
    def document(self, root: yaml.Node | None) -> ImageConfig | None:
        if root is None:
            self.problems.append(
                ConfigError(
                    "the config is empty",
                    file=self.file,
                    line=1,
                    column=1,
                    kind="missing-key",
                    hint=f"it needs {', '.join(REQUIRED)}; see examples/python-fastapi.yaml",
                )
            )
            return None
        if not isinstance(root, yaml.MappingNode):
            self.fail(root, f"the config must be a mapping of keys, not {_type_name(root)}", "type")
            return None
        entries = self.mapping_entries(root, "key")
        known = REQUIRED + OPTIONAL
        for key, (key_node, _) in entries.items():
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                self.fail(
                    key_node,
                    f"unknown key {key!r}",
                    "unknown-key",
                    hint=f"did you mean {close[0]!r}?"
                    if close
                    else f"known keys: {', '.join(known)}",
                )
        for key in REQUIRED:
            if key not in entries:
                self.fail(
                    root,
                    f"missing required key {key!r}",
                    "missing-key",
                    hint="the config needs name, python_version, packages and build_type",
                )
        for key, (key_node, _) in entries.items():
            self.marks[key] = _mark(key_node)
        values = {}
        for key, check in self._fields().items():
            if key in entries:
                values[key] = check(entries[key][1])
        if self.problems:
            return None
        return ImageConfig(file=self.file, marks=dict(self.marks), **values)

    def _fields(self) -> dict[str, Callable[[yaml.Node], Any]]:
        return {
            "name": self.image_name,
            "python_version": self.python_version,
            "packages": self.packages,
            "build_type": self.build_type,
            "platforms": self.platforms,
            "entrypoint": lambda n: self.argv(n, "entrypoint"),
            "cmd": lambda n: self.argv(n, "cmd"),
            "env": self.env,
            "app": self.app,
            "tests": self.tests,
            "base": self.base,
            "source_date_epoch": self.source_date_epoch,
        }

    def mapping_entries(
        self, node: yaml.MappingNode, what: str
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """The string keys of a mapping with their nodes; duplicates and odd keys are problems."""
        entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                self.fail(key_node, "YAML merge keys (<<) are not supported", "type")
                continue
            if not _is_str(key_node):
                self.fail(
                    key_node, f"a {what} must be a string, not {_type_name(key_node)}", "type"
                )
                continue
            key = key_node.value
            if key in entries:
                first = _mark(entries[key][0])
                self.fail(
                    key_node,
                    f"duplicate {what} {key!r} (first at line {first.line})",
                    "duplicate-key",
                    hint="YAML would silently keep the last one; keep one of them",
                )
                continue
            entries[key] = (key_node, value_node)
        return entries

    def string(self, node: yaml.Node, what: str, hint: str | None = None) -> str | None:
        if _is_str(node):
            return node.value
        if isinstance(node, yaml.ScalarNode) and hint is None and node.tag != _NULL:
            hint = f'quote it if you mean the text: "{node.value}"'
        self.fail(node, f"{what} must be a string, not {_type_name(node)}", "type", hint)
        return None

    def seq(self, node: yaml.Node, what: str) -> list[yaml.Node] | None:
        if isinstance(node, yaml.SequenceNode):
            return node.value
        self.fail(node, f"{what} must be a list, not {_type_name(node)}", "type")
        return None

    def string_list(
        self, node: yaml.Node, key: str, check: Callable[[yaml.Node, str], str | None]
    ) -> tuple[str, ...] | None:
        """A list of strings, each passed through ``check``; repeated items are problems."""
        items = self.seq(node, key)
        if items is None:
            return None
        out: list[str] = []
        seen: dict[str, Mark] = {}
        before = len(self.problems)
        for item in items:
            value = self.string(item, f"each entry of {key}")
            if value is None:
                continue
            value = check(item, value)
            if value is None:
                continue
            if value in seen:
                self.fail(
                    item,
                    f"{value!r} is listed twice in {key} (first at line {seen[value].line})",
                    "duplicate-entry",
                )
                continue
            seen[value] = _mark(item)
            self.marks[f"{key}[{len(out)}]"] = _mark(item)
            out.append(value)
        return tuple(out) if len(self.problems) == before else None

    # -- fields ----------------------------------------------------------------------------
    def image_name(self, node: yaml.Node) -> str | None:
        value = self.string(node, "name")
        if value is None:
            return None
        if len(value) > 255 or not _IMAGE_NAME.fullmatch(value):
            self.fail(
                node,
                f"invalid image name {value!r}",
                "invalid-name",
                hint="use lowercase letters and digits separated by '.', '_', '-' or '/' "
                "(an OCI repository name), e.g. python-fastapi",
            )
            return None
        return value

    def python_version(self, node: yaml.Node) -> str | None:
        if isinstance(node, yaml.ScalarNode) and node.tag in (_FLOAT, _INT):
            self.fail(
                node,
                f"python_version {node.value} is read by YAML as the number "
                f"{yaml.safe_load(node.value)!r}, not a version",
                "python-version",
                hint=f"write the exact release X.Y.Z, e.g. {node.value}.1; quoting "
                f'versions avoids this trap: "{node.value}.1"'
                if node.tag == _FLOAT
                else "write the exact release X.Y.Z, e.g. 3.13.5",
            )
            return None
        value = self.string(node, "python_version")
        if value is None:
            return None
        if not PYTHON_VERSION_RE.fullmatch(value):
            self.fail(
                node,
                f"python_version must be an exact release X.Y.Z, not {value!r}",
                "python-version",
                hint="e.g. python_version: 3.13.5 (no ranges, no pre-releases)",
            )
            return None
        return value

    def build_type(self, node: yaml.Node) -> str | None:
        value = self.string(node, "build_type")
        if value is not None and value != "hermetic":
            self.fail(
                node,
                f"build_type must be 'hermetic', not {value!r}",
                "build-type",
                hint="seal only builds hermetically: build_type: hermetic",
            )
            return None
        return value

    def packages(self, node: yaml.Node) -> tuple[PackagePin, ...] | None:
        if not isinstance(node, yaml.MappingNode):
            self.fail(
                node,
                f"packages must be a mapping of name: version, not {_type_name(node)}",
                "type",
                hint="packages:\n    fastapi: 0.104.1",
            )
            return None
        pins: list[PackagePin] = []
        firsts: dict[str, tuple[str, yaml.Node]] = {}  # normalized name -> spelling, key node
        for spelling, (key_node, value_node) in self.mapping_entries(node, "package").items():
            m = _PACKAGE.fullmatch(spelling)
            if m is None:
                self.fail(
                    key_node,
                    f"invalid package name {spelling!r}",
                    "invalid-name",
                    hint="a PyPI name: letters, digits, '.', '_', '-', starting and ending with "
                    "a letter or digit; extras go in brackets: uvicorn[standard]",
                )
                continue
            name = canonicalize_name(m.group("name"))
            if name in firsts:
                first, first_node = firsts[name]
                self.fail(
                    key_node,
                    f"package {spelling!r} is the same as {first!r} (both normalize to "
                    f"{name!r}, PEP 503; first at line {_mark(first_node).line})",
                    "duplicate-key",
                    hint="keep one entry per package",
                )
                continue
            firsts[name] = (spelling, key_node)
            extras = self.extras(key_node, m.group("extras"))
            version = self.version(value_node, spelling, m.group("name"))
            if extras is not None and version is not None:
                pins.append(PackagePin(name, version, extras, spelling))
                self.marks[f"packages.{name}"] = _mark(key_node)
        return tuple(pins)

    def extras(self, node: yaml.Node, text: str | None) -> tuple[str, ...] | None:
        if text is None:
            return ()
        names = [e.strip() for e in text.split(",")]
        bad = [e for e in names if not _EXTRA.fullmatch(e)]
        if bad:
            self.fail(
                node, f"invalid extra {bad[0]!r}", "invalid-name", hint="e.g. uvicorn[standard]"
            )
            return None
        return tuple(sorted({canonicalize_name(e) for e in names}))

    def version(self, node: yaml.Node, spelling: str, name: str) -> str | None:
        """An exact version.  Numbers are read from their text: ``2.0`` stays "2.0"."""
        text = node.value.strip() if isinstance(node, yaml.ScalarNode) else None
        if text is None or node.tag == _NULL or not text or _RANGE.search(text):
            if isinstance(node, yaml.MappingNode):
                self.fail(node, f"version of {spelling!r} must be a string, not a mapping", "type")
                return None
            shown = (
                "a list" if isinstance(node, yaml.SequenceNode) else repr(text) if text else None
            )
            self.fail(
                node,
                f"package {spelling!r} is not pinned ({shown or 'no version'}): "
                "the policy is no unpinned versions",
                "unpinned-version",
                hint=f"pin one exact version: {name}: X.Y.Z",
            )
            return None
        if node.tag not in (_STR, _INT, _FLOAT):
            self.fail(
                node, f"version of {spelling!r} must be a string, not {_type_name(node)}", "type"
            )
            return None
        try:
            parsed = Version(text)
        except InvalidVersion:
            self.fail(
                node,
                f"invalid version {text!r} for {spelling!r}",
                "invalid-version",
                hint=f"a PEP 440 version, e.g. {name}: 1.2.3",
            )
            return None
        if parsed.local is not None:
            self.fail(
                node,
                f"local version {text!r} for {spelling!r}: PyPI has no local versions",
                "invalid-version",
                hint=f"drop the '+{parsed.local}' part",
            )
            return None
        return text

    def platforms(self, node: yaml.Node) -> tuple[str, ...] | None:
        def check(item: yaml.Node, value: str) -> str | None:
            if value in SUPPORTED_PLATFORMS:
                return value
            if value in KNOWN_PLATFORMS:
                self.fail(
                    item,
                    f"platform {value!r} is not supported yet",
                    "platform-unsupported",
                    hint=f"seal builds {', '.join(SUPPORTED_PLATFORMS)} for now",
                )
            else:
                self.fail(
                    item,
                    f"invalid platform {value!r}",
                    "invalid-platform",
                    hint="write os/architecture, e.g. linux/amd64",
                )
            return None

        value = self.string_list(node, "platforms", check)
        if value == ():
            self.fail(node, "platforms is empty", "type", hint="omit it to build linux/amd64")
            return None
        return value

    def argv(self, node: yaml.Node, key: str) -> tuple[str, ...] | None:
        """A command as a list of arguments, or a string split as a shell would (none runs)."""
        if _is_str(node):
            try:
                args = shlex.split(node.value)
            except ValueError as exc:
                self.fail(node, f"{key} cannot be split into arguments: {exc}", "type")
                return None
        else:
            items = self.seq(node, key)
            if items is None:
                return None
            strings = [self.string(item, f"each argument of {key}") for item in items]
            if any(s is None for s in strings):
                return None
            args = [s for s in strings if s is not None]
        if not args:
            self.fail(node, f"{key} is empty", "type", hint=f"omit {key} or give a command")
            return None
        if any("\0" in a for a in args):
            self.fail(node, f"{key} contains a NUL character", "type")
            return None
        return tuple(args)

    def env(self, node: yaml.Node) -> tuple[tuple[str, str], ...] | None:
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, f"env must be a mapping of NAME: value, not {_type_name(node)}", "type")
            return None
        out = []
        for key, (key_node, value_node) in self.mapping_entries(node, "variable").items():
            if not _ENV_NAME.fullmatch(key):
                self.fail(
                    key_node,
                    f"invalid environment variable name {key!r}",
                    "invalid-name",
                    hint="letters, digits and _, not starting with a digit",
                )
                continue
            value = self.string(value_node, f"env {key}")
            if value is None:
                continue
            if "\0" in value:
                self.fail(value_node, f"env {key} contains a NUL character", "type")
                continue
            self.marks[f"env.{key}"] = _mark(key_node)
            out.append((key, value))
        return tuple(out)

    def app(self, node: yaml.Node) -> tuple[str, ...] | None:
        def check(item: yaml.Node, value: str) -> str | None:
            problem = _app_path_problem(value)
            if problem is not None:
                self.fail(
                    item,
                    f"app path {value!r} {problem}",
                    "app-path-escapes",
                    hint="app files are given relative to the config's directory and stay in it",
                )
                return None
            return posixpath.normpath(value)

        return self.string_list(node, "app", check)

    def tests(self, node: yaml.Node) -> tuple[str, ...] | None:
        def check(item: yaml.Node, value: str) -> str | None:
            if not value.strip():
                self.fail(item, "a test command is empty", "type")
                return None
            return value

        return self.string_list(node, "tests", check)

    def base(self, node: yaml.Node) -> tuple[str, ...] | None:
        def check(item: yaml.Node, value: str) -> str | None:
            if not _DEBIAN_PACKAGE.fullmatch(value):
                self.fail(
                    item,
                    f"invalid Debian package name {value!r}",
                    "invalid-name",
                    hint="lowercase letters, digits, '+', '-', '.'; at least two characters, "
                    "starting with a letter or digit; no version (the lock pins it)",
                )
                return None
            return value

        return self.string_list(node, "base", check)

    def source_date_epoch(self, node: yaml.Node) -> int | None:
        if not (isinstance(node, yaml.ScalarNode) and node.tag == _INT):
            self.fail(
                node,
                f"source_date_epoch must be an integer (seconds since 1970), "
                f"not {_type_name(node)}",
                "type",
            )
            return None
        value = yaml.safe_load(node.value)
        if value < EPOCH_FLOOR:
            self.fail(
                node,
                f"source_date_epoch {value} is before 1980-01-01 ({EPOCH_FLOOR}); "
                "zip-based formats (wheels) cannot hold it",
                "invalid-epoch",
                hint=f"use {EPOCH_FLOOR} or later",
            )
            return None
        return value


def _app_path_problem(path: str) -> str | None:
    """Why ``path`` may leave the config's directory, or None when it stays inside."""
    if not path:
        return "is empty"
    if "\0" in path:
        return "contains a NUL character"
    if path.startswith("/") or re.match(r"[A-Za-z]:[\\/]", path) or path.startswith("\\"):
        return "is absolute"
    if "\\" in path:
        return "contains a backslash (write paths with '/')"
    normal = posixpath.normpath(path)
    if normal == ".." or normal.startswith("../"):
        return "leads out of the config's directory ('..')"
    return None
