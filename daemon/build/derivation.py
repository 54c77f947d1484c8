"""Derivations: build recipes as canonical JSON (RFC 8785), named by the digest of that JSON.

A derivation says what to build and from what, never how fast or where::

    {"name": "hello", "system": "x86_64-linux",
     "builder": {"sandbox": {"args": ["/bin/sh", "-c", "..."], "env": {"K": "V"}},
                 "root": "rootfs"},
     "inputs": {"rootfs": {"object": "sha256:..."},
                "zlib": {"drv": "sha256:...", "output": "out"}},
     "outputs": ["out"],
     "source_date_epoch": 315532800}

or, for a builtin (a versioned, deterministic function inside seal)::

    {"name": "src.tar.gz", "builder": {"builtin": "fetch-url", "version": 1,
     "params": {"url": "https://..."}}, "fixed": {"sha256": "<hex>"}}

``parse`` validates a document and fills the defaults, so two spellings of one
recipe (with and without ``"outputs": ["out"]``) get one digest.  Timeouts,
job counts and cores are the realizer's business and not part of the digest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import rfc8785

from seal.daemon.errors import InvalidDerivation
from seal.store.digest import Digest
from seal.store.errors import InvalidDigest

SYSTEM = "x86_64-linux"
EPOCH_FLOOR = 315532800  # 1980-01-01: zip-based formats (wheels) hold nothing earlier
MAX_DOCUMENT = 1 << 20

_NAME = re.compile(r"[A-Za-z0-9+_][A-Za-z0-9+_.@~-]{0,127}")  # ~: Debian versions
_OUTPUT = re.compile(r"[a-z][a-z0-9_]{0,31}")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEX = re.compile(r"[0-9a-f]{64}")
# Set by the sandbox itself; a derivation may not override them.
RESERVED_ENV = frozenset(
    {"HOME", "TZ", "LC_ALL", "SOURCE_DATE_EPOCH", "SEAL_BUILD_CORES", "PWD", "TMPDIR"}
)


@dataclass(frozen=True)
class ObjectInput:
    """A store object (a blob or a tree) used as it is."""

    digest: Digest

    def to_json(self) -> dict[str, str]:
        return {"object": str(self.digest)}


@dataclass(frozen=True)
class DrvInput:
    """One named output of another derivation."""

    drv: Digest
    output: str = "out"

    def to_json(self) -> dict[str, str]:
        return {"drv": str(self.drv), "output": self.output}


Input = ObjectInput | DrvInput


@dataclass(frozen=True)
class SandboxBuilder:
    """Run ``args`` in a bubblewrap sandbox whose ``/`` is the input named ``root``."""

    args: tuple[str, ...]
    root: str
    env: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"sandbox": {"args": list(self.args), "env": dict(self.env)}, "root": self.root}


@dataclass(frozen=True)
class BuiltinBuilder:
    """A function inside seal; its ``version`` is bumped whenever its output could change."""

    builtin: str
    version: int
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"builtin": self.builtin, "version": self.version, "params": dict(self.params)}


Builder = SandboxBuilder | BuiltinBuilder


@dataclass(frozen=True)
class Derivation:
    name: str
    builder: Builder
    inputs: Mapping[str, Input]
    outputs: tuple[str, ...] = ("out",)
    system: str = SYSTEM
    fixed_sha256: str | None = None  # hex; only builtins that fetch may declare it
    source_date_epoch: int = EPOCH_FLOOR

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "system": self.system,
            "builder": self.builder.to_json(),
            "inputs": {k: v.to_json() for k, v in self.inputs.items()},
            "outputs": list(self.outputs),
            "source_date_epoch": self.source_date_epoch,
        }
        if self.fixed_sha256 is not None:
            doc["fixed"] = {"sha256": self.fixed_sha256}
        return doc

    @cached_property
    def canonical(self) -> bytes:
        """The RFC 8785 bytes this derivation is stored and named by."""
        return rfc8785.dumps(self.to_json())

    @cached_property
    def digest(self) -> Digest:
        return Digest.of_bytes(self.canonical)

    @property
    def input_drvs(self) -> set[Digest]:
        return {i.drv for i in self.inputs.values() if isinstance(i, DrvInput)}

    @property
    def input_objects(self) -> set[Digest]:
        return {i.digest for i in self.inputs.values() if isinstance(i, ObjectInput)}

    @property
    def is_fixed(self) -> bool:
        return self.fixed_sha256 is not None


# -- parsing ---------------------------------------------------------------------------------
def loads(data: bytes | str, *, where: str = "derivation") -> Any:
    """JSON text -> object, with a located one-line error (no duplicate keys, no NaN)."""
    if len(data) > MAX_DOCUMENT:
        raise InvalidDerivation(f"larger than {MAX_DOCUMENT} bytes", where=where)
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise InvalidDerivation(f"not UTF-8 ({exc.reason})", where=where) from None
    except json.JSONDecodeError as exc:
        raise InvalidDerivation(
            f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", where=where
        ) from None


def parse(
    data: bytes | str | Mapping[str, Any],
    *,
    where: str = "derivation",
    resolve: Callable[[str, str], Digest] | None = None,
) -> Derivation:
    """Validate a derivation document and return it with its defaults filled in.

    ``resolve(reference, where)`` turns a ``{"drv": ...}`` reference that is not a
    digest into one (the client may name other documents sent alongside).
    """
    doc = loads(data, where=where) if isinstance(data, bytes | str) else data
    top = _Obj(doc, where)
    top.only({"name", "system", "builder", "inputs", "outputs", "fixed", "source_date_epoch"})
    name = top.str("name", pattern=_NAME, what="a name of 1-128 letters, digits and +_.@~-")
    system = top.str("system", default=SYSTEM)
    if system != SYSTEM:
        raise InvalidDerivation(
            f"system {system!r} is not supported (only {SYSTEM!r})", where=f"{where}.system"
        )
    inputs = {
        key: _parse_input(value, f"{where}.inputs.{key}", resolve)
        for key, value in top.mapping("inputs", default={}).items()
    }
    for key in inputs:
        _check_name(key, f"{where}.inputs", "input name")
    outputs = top.list("outputs", default=["out"])
    if not outputs:
        raise InvalidDerivation("at least one output is needed", where=f"{where}.outputs")
    for i, out in enumerate(outputs):
        if not isinstance(out, str) or not _OUTPUT.fullmatch(out):
            raise InvalidDerivation(
                f"{out!r} is not an output name (lowercase letters, digits, _)",
                where=f"{where}.outputs[{i}]",
            )
    if len(set(outputs)) != len(outputs):
        raise InvalidDerivation("an output is named twice", where=f"{where}.outputs")
    epoch = top.int("source_date_epoch", default=EPOCH_FLOOR)
    if epoch < EPOCH_FLOOR:
        raise InvalidDerivation(
            f"{epoch} is before 1980-01-01 ({EPOCH_FLOOR}); zip-based formats cannot hold it",
            where=f"{where}.source_date_epoch",
        )
    builder = _parse_builder(top.get("builder"), f"{where}.builder", inputs)
    fixed = None
    if "fixed" in doc:
        f = _Obj(doc["fixed"], f"{where}.fixed")
        f.only({"sha256"})
        fixed = f.str("sha256", pattern=_HEX, what="64 lowercase hex digits")
        if not isinstance(builder, BuiltinBuilder):
            raise InvalidDerivation(
                "only builtins fetch: a sandboxed build never has the network",
                where=f"{where}.fixed",
            )
        if outputs != ["out"]:
            raise InvalidDerivation(
                "a fixed-output derivation has exactly one output, 'out'", where=f"{where}.outputs"
            )
    return Derivation(
        name=name,
        builder=builder,
        inputs=dict(sorted(inputs.items())),
        outputs=tuple(outputs),
        system=system,
        fixed_sha256=fixed,
        source_date_epoch=epoch,
    )


def resolve_documents(documents: Mapping[str, bytes | str], target: str) -> list[Derivation]:
    """Parse documents that name each other (``{"drv": "<document name>"}``), deps first.

    The last item is ``target``'s derivation.  A reference to a name that is
    neither a document here nor a digest is an error, and so is a cycle.
    """
    if target not in documents:
        raise InvalidDerivation(f"no document named {target!r} was sent")
    parsed: dict[str, Derivation] = {}
    order: list[Derivation] = []
    visiting: list[str] = []

    def visit(name: str) -> Digest:
        if name in parsed:
            return parsed[name].digest
        if name in visiting:
            chain = " -> ".join([*visiting[visiting.index(name) :], name])
            raise InvalidDerivation(f"derivations form a cycle: {chain}")
        visiting.append(name)

        def resolve(ref: str, where: str) -> Digest:
            if ref not in documents:
                raise InvalidDerivation(
                    f"{ref!r} is neither a digest nor a derivation sent with this one",
                    where=where,
                )
            return visit(ref)

        drv = parse(documents[name], where=name, resolve=resolve)
        visiting.pop()
        parsed[name] = drv
        order.append(drv)
        return drv.digest

    visit(target)
    return order


def topological(
    target: Digest, load: Callable[[Digest], Derivation]
) -> list[tuple[Digest, Derivation]]:
    """``target`` and every derivation it needs, each after all of its inputs."""
    done: dict[Digest, Derivation] = {}
    order: list[tuple[Digest, Derivation]] = []
    stack: list[tuple[Digest, Iterable[Digest] | None]] = [(target, None)]
    while stack:
        digest, pending = stack.pop()
        if digest in done:
            continue
        if pending is None:
            drv = load(digest)
            stack.append((digest, iter(sorted(drv.input_drvs, key=str))))
            continue
        nxt = next(iter(pending), None)  # type: ignore[call-overload]
        if nxt is None:
            drv = load(digest)
            done[digest] = drv
            order.append((digest, drv))
            continue
        stack.append((digest, pending))
        if nxt not in done:
            stack.append((nxt, None))
    return order


def _parse_input(value: Any, where: str, resolve: Callable[[str, str], Digest] | None) -> Input:
    obj = _Obj(value, where)
    if "object" in value:
        obj.only({"object"})
        return ObjectInput(_digest(obj.str("object"), f"{where}.object"))
    if "drv" in value:
        obj.only({"drv", "output"})
        ref = obj.str("drv")
        output = obj.str("output", default="out")
        if not _OUTPUT.fullmatch(output):
            raise InvalidDerivation(f"{output!r} is not an output name", where=f"{where}.output")
        if ref.startswith("sha256:") or resolve is None:
            return DrvInput(_digest(ref, f"{where}.drv"), output)
        return DrvInput(resolve(ref, f"{where}.drv"), output)
    raise InvalidDerivation('an input is {"object": DIGEST} or {"drv": DIGEST}', where=where)


def _parse_builder(value: Any, where: str, inputs: Mapping[str, Input]) -> Builder:
    obj = _Obj(value, where)
    if "sandbox" in value:
        obj.only({"sandbox", "root"})
        root = obj.str("root")
        if root not in inputs:
            raise InvalidDerivation(
                f"the root {root!r} is not one of the inputs "
                f"({', '.join(sorted(inputs)) or 'none'})",
                where=f"{where}.root",
            )
        sb = _Obj(value["sandbox"], f"{where}.sandbox")
        sb.only({"args", "env"})
        args = sb.list("args")
        if not args or not all(isinstance(a, str) for a in args):
            raise InvalidDerivation(
                "args is a non-empty list of strings", where=f"{where}.sandbox.args"
            )
        if not args[0].startswith("/"):
            raise InvalidDerivation(
                f"args[0] {args[0]!r} must be an absolute path inside the root",
                where=f"{where}.sandbox.args",
            )
        env = sb.mapping("env", default={})
        for key, val in env.items():
            if not _ENV_KEY.fullmatch(key) or not isinstance(val, str):
                raise InvalidDerivation(
                    f"{key!r}: environment names are identifiers, values strings",
                    where=f"{where}.sandbox.env",
                )
            if key in RESERVED_ENV:
                raise InvalidDerivation(
                    f"{key} is set by the sandbox and cannot be overridden",
                    where=f"{where}.sandbox.env",
                )
        return SandboxBuilder(tuple(args), root, dict(sorted(env.items())))
    if "builtin" in value:
        obj.only({"builtin", "version", "params"})
        return BuiltinBuilder(
            obj.str("builtin"), obj.int("version"), dict(obj.mapping("params", default={}))
        )
    raise InvalidDerivation(
        'a builder is {"sandbox": ..., "root": ...} or {"builtin": ...}', where=where
    )


def _digest(text: str, where: str) -> Digest:
    try:
        return Digest.parse(text)
    except InvalidDigest:
        raise InvalidDerivation(
            f"{text!r} is not a digest (sha256:<64 hex>)", where=where
        ) from None


def _check_name(name: str, where: str, what: str) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidDerivation(f"{name!r} is not a valid {what}", where=where)


class _Obj:
    """Typed access to one JSON object, with errors located by a dotted path."""

    _MISSING = object()

    def __init__(self, value: Any, where: str):
        if not isinstance(value, dict):
            raise InvalidDerivation(f"expected an object, got {_type(value)}", where=where)
        self.value = value
        self.where = where

    def only(self, allowed: set[str]) -> None:
        unknown = sorted(set(self.value) - allowed)
        if unknown:
            raise InvalidDerivation(
                f"unknown field {unknown[0]!r} (known: {', '.join(sorted(allowed))})",
                where=self.where,
            )

    def get(self, key: str, default: Any = _MISSING) -> Any:
        if key in self.value:
            return self.value[key]
        if default is self._MISSING:
            raise InvalidDerivation(f"missing field {key!r}", where=self.where)
        return default

    def _typed(self, key: str, kind: type | tuple[type, ...], label: str, default: Any) -> Any:
        value = self.get(key, default)
        if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
            raise InvalidDerivation(
                f"expected {label}, got {_type(value)}", where=f"{self.where}.{key}"
            )
        return value

    def str(self, key: str, default: Any = _MISSING, *, pattern=None, what: str = "") -> str:
        value = self._typed(key, str, "a string", default)
        if pattern is not None and not pattern.fullmatch(value):
            raise InvalidDerivation(f"{value!r} is not {what}", where=f"{self.where}.{key}")
        return value

    def int(self, key: str, default: Any = _MISSING) -> int:
        return self._typed(key, int, "an integer", default)

    def list(self, key: str, default: Any = _MISSING) -> list:
        return self._typed(key, list, "a list", default)

    def mapping(self, key: str, default: Any = _MISSING) -> dict:
        return self._typed(key, dict, "an object", default)


def _type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidDerivation(f"field {key!r} appears twice")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise InvalidDerivation(f"{name} is not allowed in a derivation")
