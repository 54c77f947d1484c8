"""Ingest a finished build's outputs (``workdir/out/<name>``) into the store.

>>> outputs = collect(store, workdir, ["out", "dev"])      # doctest: +SKIP
>>> outputs["out"]                                        # doctest: +SKIP
Digest('sha256:...')

Each output is a directory (stored as a tree) or a regular file (a blob).
Anything else at the top, an entry under ``/out`` that is not a declared
output, or a forbidden file anywhere (setuid/setgid/sticky bits, devices,
FIFOs, sockets) fails the build with BuildFailed naming the path as the build
saw it (``/out/out/sub/file: ...``).  Every output is checked before any is
ingested, so a failed build records nothing as an output.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from seal.daemon.errors import BuildFailed
from seal.store.digest import Digest
from seal.store.errors import UnsupportedFile
from seal.store.ingest import check_mode
from seal.store.store import Store

_FREE_ACCESS = stat.S_IRUSR | stat.S_IWUSR | stat.S_IXUSR


def collect(store: Store, workdir: Path, outputs: Sequence[str]) -> dict[str, Digest]:
    """Store each ``workdir/out/<name>``; return output name -> digest.

    Raises BuildFailed for a missing, extra or unsupported output, or a
    forbidden file in one; nothing is recorded as an output then.
    """
    out = Path(workdir) / "out"
    declared = set(outputs)
    try:
        present = sorted(os.listdir(out))
    except OSError as exc:
        raise BuildFailed(f"/out cannot be read: {exc.strerror}") from None
    extra = [name for name in present if name not in declared]
    if extra:
        raise BuildFailed(
            f"/out/{extra[0]}: not a declared output (declared: {', '.join(outputs)})",
            hint="write outputs only to the directories named by the output variables",
        )
    kinds: dict[str, str] = {}
    for name in outputs:
        kinds[name] = _check_output(out, name)
    result: dict[str, Digest] = {}
    for name in outputs:
        path = out / name
        try:
            if kinds[name] == "dir":
                result[name] = store.put_tree(path)
            else:
                result[name] = store.put_file(path)
        except UnsupportedFile as exc:  # changed since the check: the build is dead, so rare
            raise _as_build_failure(exc, out) from None
    return result


def _check_output(out: Path, name: str) -> str:
    """Check one output and everything under it; return "dir" or "file"."""
    path = out / name
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise BuildFailed(f"/out/{name}: the output is missing (the build removed it)") from None
    if stat.S_ISLNK(st.st_mode):
        raise BuildFailed(f"/out/{name}: is a symlink; an output is a directory or a regular file")
    try:
        check_mode(os.fspath(path), st.st_mode)
        if stat.S_ISREG(st.st_mode):
            _give_access(os.fspath(path), st.st_mode, stat.S_IRUSR)
            return "file"
        if not stat.S_ISDIR(st.st_mode):  # pragma: no cover - check_mode refuses the rest
            raise BuildFailed(f"/out/{name}: an output is a directory or a regular file")
        _check_tree(os.fspath(path))
    except UnsupportedFile as exc:
        raise _as_build_failure(exc, out) from None
    except OSError as exc:
        where = _as_seen(os.fsdecode(exc.filename or path), out)
        raise BuildFailed(f"{where}: cannot be read: {exc.strerror}") from None
    return "dir"


def _check_tree(root: str) -> None:
    """Refuse forbidden files under ``root``; make what the build left unreadable readable.

    The builder may leave a directory mode 000; the store (which may run as
    the same unprivileged user) must still be able to read it.  Only the
    owner's bits change, and permissions other than the executable bit are not
    part of a tree anyway.
    """
    stack = [root]
    while stack:
        path = stack.pop()
        _give_access(path, os.lstat(path).st_mode, _FREE_ACCESS)
        with os.scandir(path) as it:
            for entry in it:
                mode = entry.stat(follow_symlinks=False).st_mode
                check_mode(entry.path, mode)
                if stat.S_ISDIR(mode):
                    stack.append(entry.path)
                elif stat.S_ISREG(mode):
                    _give_access(entry.path, mode, stat.S_IRUSR)


def _give_access(path: str, mode: int, bits: int) -> None:
    if mode & bits != bits:
        os.chmod(path, stat.S_IMODE(mode) | bits)


def _as_build_failure(exc: UnsupportedFile, out: Path) -> BuildFailed:
    return BuildFailed(f"{_as_seen(os.fsdecode(exc.path), out)}: {exc.why}")


def _as_seen(host: str, out: Path) -> str:
    """A host path under ``workdir/out`` as the build saw it (under ``/out``)."""
    prefix = os.fspath(out)
    return "/out" + host[len(prefix) :] if host.startswith(prefix + "/") else host
