"""The builtins that turn fetched inputs into image parts (unpacked roots, site-packages, OCI).

Each wraps pure functions of ``seal.daemon.image``: read inputs from the store,
write into the builtin's scratch directory, put the result back as a tree.
Every input blob is hashed again before use, so a byte flipped in the store
fails the step with a data-loss error naming the file instead of building from it.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from seal.daemon.errors import InvalidDerivation
from seal.store import Digest

from .builtins import BuiltinContext
from .derivation import Derivation

IMAGE_TAR = "image.tar"
IMAGE_JSON = "image.json"
HARDENING_JSON = "hardening.json"
ROLES = ("toolchain", "runtime")
CHUNK = 1 << 20


def _params(ctx: BuiltinContext) -> Mapping[str, Any]:
    return ctx.drv.builder.params  # type: ignore[union-attr]


def verified_blob(ctx: BuiltinContext, name: str) -> Callable:
    """An opener for input ``name`` once the stored bytes are checked to still hash to it."""
    digest = ctx.inputs[name]
    ctx.store.check_blob(digest, f"{name} ({digest})")  # data loss: the store's copy changed
    return lambda: ctx.store.open_blob(digest)


# -- deb-root v1 ---------------------------------------------------------------------------
def _deb_root_v1(ctx: BuiltinContext) -> dict[str, Digest]:
    from seal.daemon.image import deb, rootfs

    params = _params(ctx)
    debs = [(name, verified_blob(ctx, name)) for name in params["packages"]]
    root = ctx.scratch / "root"
    root.mkdir()
    report = deb.unpack_debs(debs, root)
    ctx.log(f"unpacked {len(debs)} packages\n".encode())
    for line in _report_lines(report):
        ctx.log(line.encode())
    if params["role"] == "toolchain":
        rootfs.finish_toolchain(root)
    else:
        rootfs.finish_runtime(root, shell=bool(params.get("shell", False)))
    return {"out": ctx.store.put_tree(root)}


def _report_lines(report: object) -> list[str]:
    lines = []
    for field in ("conflicts", "dropped_modes", "skipped"):
        for item in getattr(report, field, ()) or ():
            lines.append(f"{field}: {item}\n")
    return lines


def _check_deb_root_v1(params: Mapping[str, Any], drv: Derivation, where: str) -> None:
    packages = params.get("packages")
    if (
        not set(params) <= {"role", "packages", "shell"}
        or params.get("role") not in ROLES
        or not isinstance(packages, list)
        or not packages
    ):
        raise InvalidDerivation(
            'params is {"role": "toolchain"|"runtime", "packages": [<input names>], "shell": bool}',
            where=where,
        )
    _inputs_named(packages, drv, where)


# -- install-wheels v1 ---------------------------------------------------------------------
def _install_wheels_v1(ctx: BuiltinContext) -> dict[str, Digest]:
    from seal.daemon.image import wheels

    params = _params(ctx)
    inputs = [
        wheels.WheelInput(
            filename=w["filename"],
            sha256=w["sha256"],
            # install_wheels hashes each wheel against its pin before it unpacks any
            open=functools.partial(ctx.store.open_blob, ctx.inputs[w["filename"]]),
        )
        for w in params["wheels"]
    ]
    root = ctx.scratch / "root"
    root.mkdir()
    wheels.install_wheels(inputs, root, prefix=params["prefix"], python=params["python"])
    ctx.log(f"installed {len(inputs)} wheels\n".encode())
    return {"out": ctx.store.put_tree(root)}


def _check_install_wheels_v1(params: Mapping[str, Any], drv: Derivation, where: str) -> None:
    listed = params.get("wheels")
    if (
        set(params) != {"prefix", "python", "wheels"}
        or not isinstance(listed, list)
        or not all(isinstance(w, dict) and set(w) == {"filename", "sha256"} for w in listed)
    ):
        raise InvalidDerivation(
            'params is {"prefix": ..., "python": "X.Y", '
            '"wheels": [{"filename": ..., "sha256": ...}]}',
            where=where,
        )
    _inputs_named([w["filename"] for w in listed], drv, where)


# -- oci-image v1 --------------------------------------------------------------------------
def _oci_image_v1(ctx: BuiltinContext) -> dict[str, Digest]:
    from seal.daemon.image import hardening, oci, rootfs, tar

    params = _params(ctx)
    prefixes = params.get("prefixes", {})
    layers = []
    for name in params["layers"]:
        entries = tar.entries_from_store(
            ctx.store,
            ctx.inputs[name],
            prefix=prefixes.get(name, ""),
            modes=rootfs.RUNTIME_MODES,
            owners=rootfs.RUNTIME_OWNERS,
        )
        layers.append((entries, f"seal: {name} layer"))
    c = params["config"]
    config = oci.ImageConfig(
        entrypoint=c["entrypoint"],
        cmd=c["cmd"],
        env=c["env"],
        user=c["user"],
        workdir=c["workdir"],
        labels={},
    )
    out = ctx.scratch / "out"
    out.mkdir()
    result = oci.write_archive(
        layers,
        config,
        created=params["created"],
        ref_name=f"{params['name']}:{params['tag']}",
        out_path=out / IMAGE_TAR,
        scratch=ctx.scratch,
    )
    facts = _elf_facts(ctx, [n for n in params["layers"] if n != "runtime"], hardening)
    (out / HARDENING_JSON).write_bytes(hardening.report_json(facts))
    summary = {
        "manifest": result.manifest_digest,
        "config": result.config_digest,
        "index": result.index_digest,
        "compressor": result.compressor,
        "layers": [
            {
                "digest": la.digest,
                "diff_id": la.diff_id,
                "size": la.size,
                "created_by": la.created_by,
            }
            for la in result.layers
        ],
    }
    (out / IMAGE_JSON).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    ctx.log(f"image {result.manifest_digest}\n".encode())
    return {"out": ctx.store.put_tree(out)}


def _elf_facts(ctx: BuiltinContext, names: list[str], hardening) -> list:
    """Hardening facts of every ELF file in the named layers, read from the store's objects."""
    facts = []
    for name in names:
        for entry in ctx.store.walk(ctx.inputs[name]):
            if entry.kind != "file" or entry.size < 4:
                continue
            with ctx.store.open_blob(entry.digest) as f:
                if f.read(4) != b"\x7fELF":
                    continue
            path = Path(ctx.store.layout.object_path(entry.digest, entry.executable))
            if not path.exists():
                path = Path(ctx.store.layout.object_path(entry.digest, not entry.executable))
            name = entry.path.decode("utf-8", "surrogateescape")
            try:
                fact = hardening.elf_facts(path, name)
            except hardening.ElfUnreadable as exc:  # recorded as failing, not a crash
                fact = hardening.ElfFacts.unreadable(name, exc.problem)
            if fact is not None:
                facts.append(fact)
    return sorted(facts, key=lambda f: f.path)


def _check_oci_image_v1(params: Mapping[str, Any], drv: Derivation, where: str) -> None:
    need = {"name", "tag", "created", "layers", "config"}
    layers = params.get("layers")
    if not need <= set(params) <= need | {"prefixes"} or not isinstance(layers, list):
        raise InvalidDerivation(
            'params is {"name", "tag", "created", "layers": [<input names>], "config": {...}}',
            where=where,
        )
    _inputs_named(layers, drv, where)


# -- merge-trees v1 ------------------------------------------------------------------------
def _merge_trees_v1(ctx: BuiltinContext) -> dict[str, Digest]:
    """The named trees laid over each other in order, as image layers stack: a later
    entry replaces an earlier one at the same path (a directory merges into a directory)."""
    params = _params(ctx)
    prefixes = params.get("prefixes", {})
    root = ctx.scratch / "root"
    root.mkdir()
    for name in params["layers"]:
        base = root / prefixes.get(name, "")
        base.mkdir(parents=True, exist_ok=True)
        for entry in ctx.store.walk(ctx.inputs[name]):
            target = base / entry.path.decode("utf-8", "surrogateescape")
            if entry.kind == "dir":
                if target.is_symlink() or (target.exists() and not target.is_dir()):
                    target.unlink()
                target.mkdir(exist_ok=True)
                continue
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.is_dir():
                shutil.rmtree(target)
            if entry.kind == "symlink":
                target.symlink_to(os.fsdecode(entry.target or b""))
                continue
            with ctx.store.open_blob(entry.digest) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
            target.chmod(0o755 if entry.executable else 0o644)
    return {"out": ctx.store.put_tree(root)}


def _check_merge_trees_v1(params: Mapping[str, Any], drv: Derivation, where: str) -> None:
    layers = params.get("layers")
    if not set(params) <= {"layers", "prefixes"} or not isinstance(layers, list) or not layers:
        raise InvalidDerivation('params is {"layers": [<input names>], "prefixes": {...}}', where)
    _inputs_named(layers, drv, where)


def _inputs_named(names: list, drv: Derivation, where: str) -> None:
    missing = [n for n in names if n not in drv.inputs]
    if missing:
        raise InvalidDerivation(f"{missing[0]!r} is not one of the inputs", where=where)


IMAGE_BUILTINS: dict[tuple[str, int], tuple[Callable, Callable[..., None]]] = {
    ("deb-root", 1): (_deb_root_v1, _check_deb_root_v1),
    ("install-wheels", 1): (_install_wheels_v1, _check_install_wheels_v1),
    ("oci-image", 1): (_oci_image_v1, _check_oci_image_v1),
    ("merge-trees", 1): (_merge_trees_v1, _check_merge_trees_v1),
}
