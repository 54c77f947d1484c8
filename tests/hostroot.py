"""Stage a root tree for sandbox tests from the Debian packages installed on this host.

>>> root = stage_host_root(tmp / "root", SHELL_PACKAGES)     # doctest: +SKIP
>>> digest = store.put_tree(root)                            # doctest: +SKIP

The tree holds every file ``dpkg -L`` lists for the packages and their
dependency closure among installed packages, in a usr-merged layout
(``bin``, ``sbin``, ``lib*`` are symlinks into ``usr/``), without
documentation, manuals, translations or info pages.  Files are copied (never
hardlinked: the store may chmod what it ingests), and every mode is reduced
to 0644 or 0755, so no setuid/setgid bit reaches the store and the tree is
readable by any user (the unprivileged-daemon tests need that).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

SHELL_PACKAGES: tuple[str, ...] = (
    "dash",
    "bash",
    "coreutils",
    "grep",
    "sed",
    "findutils",
    "libc-bin",  # getent
    "hostname",
)
TOOLCHAIN_PACKAGES: tuple[str, ...] = (
    *SHELL_PACKAGES,
    "gcc",
    "make",
    "libc6-dev",
    "binutils",
)

_MERGED = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_SKIPPED = ("/usr/share/doc/", "/usr/share/man/", "/usr/share/locale/", "/usr/share/info/")
_DEP_NAME = re.compile(r"^\s*([^\s:(]+)")


def stage_host_root(dest: Path, packages: Sequence[str]) -> Path:
    """Copy ``packages`` and what they depend on from this host into ``dest``; return ``dest``.

    ``dest`` must not exist; it is built beside itself and renamed into place,
    so an interrupted staging leaves nothing that looks finished.
    """
    dest = Path(dest)
    closure = package_closure(packages)
    staging = dest.with_name(f".{dest.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True, mode=0o755)
    os.chmod(staging, 0o755)
    (staging / "usr").mkdir(mode=0o755)
    for path in _listed_paths(closure):
        _copy_entry(path, staging)
    _add_alternatives(staging)
    for name in _MERGED:
        if (staging / "usr" / name).is_dir():
            os.symlink(f"usr/{name}", staging / name)
    sh = staging / "usr" / "bin" / "sh"
    if not os.path.lexists(sh):
        os.symlink("dash", sh)
    _index_libraries(staging)
    os.rename(staging, dest)
    return dest


def _index_libraries(root: Path) -> None:
    """Write the root's own ``/etc/ld.so.cache`` (what a Debian system's ldconfig trigger
    makes; no package ships it): without it every program start searches for its
    libraries directory by directory."""
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    if (root / "etc" / "ld.so.conf").exists() and os.path.exists(ldconfig):
        subprocess.run([ldconfig, "-r", str(root)], check=True, capture_output=True)
        aux = root / "var" / "cache" / "ldconfig" / "aux-cache"  # ldconfig's own, 0600
        if aux.exists():
            aux.unlink()
        os.chmod(root / "etc" / "ld.so.cache", 0o644)


def package_closure(packages: Iterable[str]) -> list[str]:
    """``packages`` and, transitively, the installed packages their (Pre-)Depends name.

    Of alternatives (``a | b``) the first installed one is taken; a virtual
    package resolves to its first installed provider.  Raises LookupError for a
    requested package that is not installed.
    """
    installed, provides = _installed_packages()
    todo = []
    for name in packages:
        found = _resolve(name, installed, provides)
        if found is None:
            raise LookupError(f"package {name!r} is not installed on this host")
        todo.append(found)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for group in installed[name]:
            for alternative in group:
                found = _resolve(alternative, installed, provides)
                if found is not None:
                    todo.append(found)
                    break
    return sorted(seen)


def _installed_packages() -> tuple[dict[str, list[list[str]]], dict[str, list[str]]]:
    """name -> dependency groups (each a list of alternatives), and virtual name -> providers."""
    out = subprocess.run(
        [
            "dpkg-query",
            "-W",
            "-f=${Package}\t${db:Status-Abbrev}\t${Provides}\t${Pre-Depends}\t${Depends}\n",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    installed: dict[str, list[list[str]]] = {}
    provides: dict[str, list[str]] = {}
    for line in out.splitlines():
        name, status, provided, pre, deps = (line.split("\t") + [""] * 5)[:5]
        if len(status) < 2 or status[1] != "i":
            continue
        groups = []
        for field in (pre, deps):
            for group in filter(None, (g.strip() for g in field.split(","))):
                groups.append([_dep_name(alt) for alt in group.split("|")])
        installed.setdefault(name, []).extend(groups)
        for virtual in filter(None, (p.strip() for p in provided.split(","))):
            provides.setdefault(_dep_name(virtual), []).append(name)
    return installed, provides


def _dep_name(text: str) -> str:
    match = _DEP_NAME.match(text)
    return match.group(1) if match else text.strip()


def _resolve(
    name: str, installed: dict[str, list[list[str]]], provides: dict[str, list[str]]
) -> str | None:
    if name in installed:
        return name
    return next(iter(provides.get(name, ())), None)


def _listed_paths(packages: Sequence[str]) -> list[str]:
    """Every path ``dpkg -L`` lists for the packages, sorted (a parent before its children)."""
    out = subprocess.run(
        ["dpkg-query", "-L", *packages], check=True, capture_output=True, text=True
    ).stdout
    paths = {line for line in out.splitlines() if line.startswith("/") and line != "/."}
    return sorted(p for p in paths if not p.startswith(_SKIPPED) and p + "/" not in _SKIPPED)


def _target(path: str) -> str:
    """The tree-relative path a host path is staged at (usr-merged)."""
    rel = path.lstrip("/")
    top = rel.split("/", 1)[0]
    return f"usr/{rel}" if top in _MERGED else rel


def _add_alternatives(staging: Path) -> None:
    """Recreate the host's alternatives (``/usr/bin/cc -> /etc/alternatives/cc -> gcc``)
    whose chosen target was staged: their links are made by maintainer scripts, so
    ``dpkg -L`` does not list them.
    """
    admin = Path("/var/lib/dpkg/alternatives")
    if not admin.is_dir():
        return
    for group in sorted(admin.iterdir()):
        lines = group.read_text(errors="replace").splitlines()
        if len(lines) < 2:
            continue
        links = [(group.name, lines[1])]
        i = 2
        while i + 1 < len(lines) and lines[i]:
            links.append((lines[i], lines[i + 1]))  # slave name, slave link
            i += 2
        for name, link in links:
            try:
                chosen = os.readlink(f"/etc/alternatives/{name}")
            except OSError:
                continue
            if not os.path.lexists(staging / _target(chosen)):
                continue
            for dest, target in (
                (staging / "etc" / "alternatives" / name, chosen),
                (staging / _target(link), f"/etc/alternatives/{name}"),
            ):
                if not os.path.lexists(dest):
                    dest.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                    os.symlink(target, dest)


def _copy_entry(path: str, staging: Path) -> None:
    rel = _target(path)
    if rel in {f"usr/{m}" for m in _MERGED} and path.lstrip("/") in _MERGED:
        (staging / rel).mkdir(mode=0o755, exist_ok=True)  # /bin itself: a symlink on the host
        return
    try:
        st = os.lstat(path)
    except OSError:
        return  # listed but not on disk (docs excluded by dpkg's path-exclude, ...)
    dest = staging / rel
    if os.path.lexists(dest) and not stat.S_ISDIR(st.st_mode):
        return  # two listed paths (/bin/x, /usr/bin/x) name one staged file
    dest.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    if stat.S_ISDIR(st.st_mode):
        dest.mkdir(mode=0o755, exist_ok=True)
        os.chmod(dest, 0o755)
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(path), dest)
    elif stat.S_ISREG(st.st_mode):
        shutil.copyfile(path, dest, follow_symlinks=False)
        os.chmod(dest, 0o755 if st.st_mode & 0o111 else 0o644)
    # devices, FIFOs and sockets are never staged
