"""The Python part of a lock as a PEP 751 ``pylock.toml``, which uv (and pip >= 26.1) install.

    text = export(lock)                                   # URLs as locked (PyPI)
    text = export(lock, paths=local_paths(lock, wheel_dir, Path("out")))   # files on disk
    Path("out/pylock.toml").write_text(text)
    # UV_PYTHON_DOWNLOADS=never uv pip install --offline --python PY -r out/pylock.toml

Each wheel becomes one ``[[packages]]`` entry with its name, version and a
``wheels`` array holding its filename, URL or path, size and SHA-256; uv checks
both size and hash and refuses a mismatch.  ``requires-python`` pins the exact
interpreter the lock was made for and ``environments`` the target platform, so
an installer refuses the wrong interpreter instead of installing wheels built
for another.  Paths are written as given: the spec reads a relative path from
the lock file's directory, and a path need not end in the wheel's filename
(a store object named by its digest works, because ``name`` carries it).

The output is deterministic: packages sorted by name, wheels by filename,
keys in the spec's order, no timestamps.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .lockfile import Artifact, Lock, LockError
from .tomlwrite import toml_string

PYLOCK_VERSION = "1.0"
# The markers of each supported image platform (PEP 508 environment markers).
_ENVIRONMENTS = {
    "linux/amd64": 'sys_platform == "linux" and platform_machine == "x86_64"',
    "linux/arm64": 'sys_platform == "linux" and platform_machine == "aarch64"',
}


def export(lock: Lock, *, paths: Mapping[str, str] | None = None, created_by: str = "seal") -> str:
    """The ``pylock.toml`` text of ``lock``'s wheels.

    Args:
        lock: the lock to export.
        paths: wheel filename -> path to write instead of its URL (relative to the
            pylock.toml's directory, or absolute); every wheel must have one.
        created_by: the ``created-by`` value (the tool's name).

    Raises:
        LockError: two versions of one project, or a wheel with no entry in ``paths``.
    """
    wheels = lock.select(kind="wheel")
    environment = _environment(lock)
    out = [
        f"lock-version = {toml_string(PYLOCK_VERSION)}\n",
        f"environments = [{toml_string(environment)}]\n" if environment else "",
        f"requires-python = {toml_string('==' + lock.python_version)}\n",
        f"created-by = {toml_string(created_by)}\n",
    ]
    for name, group in _by_project(wheels).items():
        out += ["\n[[packages]]\n", f"name = {toml_string(name)}\n"]
        out.append(f"version = {toml_string(group[0].version)}\n")
        if paths is None and lock.sources.pypi:
            out.append(f"index = {toml_string(lock.sources.pypi)}\n")
        out.append(_wheels([_wheel(w, paths) for w in group]))
    return "".join(out)


def local_paths(lock: Lock, directory: Path, pylock_dir: Path) -> dict[str, str]:
    """``paths`` for wheels stored as ``directory/<filename>``, relative to ``pylock_dir``."""
    rel = Path(os.path.relpath(directory.resolve(), pylock_dir.resolve()))
    return {w.filename: (rel / w.filename).as_posix() for w in lock.select(kind="wheel")}


def _environment(lock: Lock) -> str:
    return _ENVIRONMENTS.get(lock.target.get("platform", ""), "")


def _by_project(wheels: tuple[Artifact, ...]) -> dict[str, list[Artifact]]:
    """Wheels by project name (sorted), each project with one version."""
    groups: dict[str, list[Artifact]] = {}
    for wheel in sorted(wheels, key=lambda w: (w.name, w.filename)):
        group = groups.setdefault(wheel.name, [])
        if group and group[0].version != wheel.version:
            raise LockError(
                f"cannot export {wheel.name}: the lock has versions {group[0].version} and "
                f"{wheel.version}, and pylock.toml holds one per project",
                hint=None,
            )
        group.append(wheel)
    return groups


def _wheel(wheel: Artifact, paths: Mapping[str, str] | None) -> str:
    """One inline table of ``packages.wheels``, keys in the spec's order."""
    if paths is None:
        where = f"url = {toml_string(wheel.urls[0])}"
    elif wheel.filename in paths:
        where = f"path = {toml_string(paths[wheel.filename])}"
    else:
        raise LockError(f"no local path given for {wheel.filename}", hint="fetch it first")
    return (
        f"{{ name = {toml_string(wheel.filename)}, {where}, size = {wheel.size}, "
        f"hashes = {{ sha256 = {toml_string(wheel.sha256)} }} }}"
    )


def _wheels(tables: list[str]) -> str:
    if len(tables) == 1:
        return f"wheels = [{tables[0]}]\n"
    return "wheels = [\n" + "".join(f"    {t},\n" for t in tables) + "]\n"
