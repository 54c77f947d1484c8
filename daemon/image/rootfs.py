"""Finish an unpacked root: what maintainer scripts and the image would otherwise provide.

    report = unpack_debs(runtime_debs, root)
    finish_runtime(root)                # users, CA bundle, UTC, no shell, no docs
    finish_toolchain(toolchain_root)    # /bin/sh, awk, cc, c89, c99, /lib/cpp

Everything written is a function of the root alone. No ``ld.so.cache`` is made:
Debian's loader searches ``/lib/<multiarch>`` and ``/usr/lib/<multiarch>`` by
default (its built-in system search path), which is where Debian's libraries
are; only directories named in ``/etc/ld.so.conf.d`` beyond those would need
the cache. Directory modes are not part of a store tree: the image writer
applies ``RUNTIME_MODES`` (and ``RUNTIME_OWNERS``) to the runtime's paths.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from seal.daemon.errors import DaemonError

from .deb import MERGED_DIRS

NONROOT_UID = 65532
NONROOT_HOME = "home/nonroot"
NOLOGIN = "/usr/sbin/nologin"
TIMEZONE = "Etc/UTC"

# paths of the runtime root whose mode is not 0o755 (the image writer applies these)
RUNTIME_MODES: dict[str, int] = {"tmp": 0o1777, "root": 0o700, NONROOT_HOME: 0o700}
# paths of the runtime root not owned by root (uid, gid)
RUNTIME_OWNERS: dict[str, tuple[int, int]] = {NONROOT_HOME: (NONROOT_UID, NONROOT_UID)}

# what removing "the shell" removes: every POSIX-ish shell Debian ships under /usr/bin
SHELLS = ("sh", "dash", "bash", "rbash", "ksh", "ksh93", "mksh", "zsh", "csh", "tcsh", "busybox")
# trimmed whole from the runtime (usr/share/doc keeps each package's copyright)
TRIMMED = ("usr/share/man", "usr/share/info", "usr/share/lintian", "usr/share/locale")

NSSWITCH = """\
passwd:         files
group:          files
shadow:         files
hosts:          files dns
networks:       files
protocols:      files
services:       files
ethers:         files
rpc:            files
"""


class RootfsError(DaemonError):
    """A root cannot be finished: a path the finish writes is taken by something else."""

    reason = "rootfs-error"


@dataclass(frozen=True)
class Trimmed:
    """What one trim removed."""

    path: str  # e.g. "usr/share/man", or "usr/share/doc" for all but copyright files
    files: int
    bytes: int


@dataclass(frozen=True)
class RuntimeReport:
    """What ``finish_runtime`` did."""

    written: tuple[str, ...]  # files and links it created or replaced, sorted
    removed_shells: tuple[str, ...]
    trimmed: tuple[Trimmed, ...]
    ca_certificates: int  # certificates in etc/ssl/certs/ca-certificates.crt (0: none)

    @property
    def trimmed_bytes(self) -> int:
        return sum(t.bytes for t in self.trimmed)


# ---- helpers --------------------------------------------------------------------------------


def _lexists(path: Path) -> bool:
    return os.path.lexists(path)


def _mkdirs(root: Path, rel: str) -> Path:
    """The real directory ``root/rel``, made where missing.

    Only the top-level merged-/usr links are followed; any other symlink or
    non-directory on the way is refused, so nothing is written through a link.
    """
    path = root
    for part in rel.split("/") if rel else ():
        path = path / part
        if path.parent == root and part in MERGED_DIRS and path.is_symlink():
            path = _mkdirs(root, f"usr/{part}")
        elif path.is_symlink() or (_lexists(path) and not path.is_dir()):
            raise RootfsError(f"{rel}: {path.relative_to(root)} is not a directory")
        elif not _lexists(path):
            path.mkdir()
            path.chmod(0o755)
    return path


def _free(root: Path, rel: str) -> Path:
    """``root/rel`` with its parent made; refuses when ``rel`` is a directory."""
    parent, _, name = rel.rpartition("/")
    path = _mkdirs(root, parent) / name
    if path.is_dir() and not path.is_symlink():
        raise RootfsError(f"{rel} is a directory, not a file or symlink")
    return path


def _write(root: Path, rel: str, data: bytes, written: list[str]) -> None:
    path = _free(root, rel)
    if _lexists(path):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        os.fchmod(f.fileno(), 0o644)
    written.append(rel)


def _link(root: Path, rel: str, target: str, written: list[str], *, replace: bool = True) -> None:
    path = _free(root, rel)
    if _lexists(path):
        if not replace or (path.is_symlink() and os.readlink(path) == target):
            return
        path.unlink()
    path.symlink_to(target)
    written.append(rel)


def _merged_links(root: Path, written: list[str]) -> None:
    """bin, sbin, lib -> usr/... always; the other merged dirs where usr/ has them."""
    for top in MERGED_DIRS:
        if top in ("bin", "sbin", "lib") or (root / "usr" / top).is_dir():
            _mkdirs(root, f"usr/{top}")
            path = root / top
            if not _lexists(path):
                path.symlink_to(f"usr/{top}")
                written.append(top)
            elif not (path.is_symlink() and os.readlink(path) == f"usr/{top}"):
                raise RootfsError(f"{top} is not the merged-/usr link to usr/{top}")


def _is_file(root: Path, rel: str) -> bool:
    path = root / rel
    return path.is_file() or path.is_symlink()


# ---- toolchain ------------------------------------------------------------------------------


def finish_toolchain(root: Path) -> None:
    """Make an unpacked toolchain usable by configure and make in the sandbox.

    The links dpkg's maintainer scripts and update-alternatives would make:
    merged-/usr links, ``/bin/sh`` (dash, else bash), ``awk`` and ``nawk``
    (gawk, else mawk, else original-awk), ``cc``/``c89``/``c99`` when gcc is
    there, ``c++`` when g++ is, ``/lib/cpp`` when cpp is; and ``tmp/``. A tool
    whose package is missing gets no link.
    """
    written: list[str] = []
    _merged_links(root, written)
    _mkdirs(root, "tmp")
    _mkdirs(root, "etc")
    bin_ = "usr/bin"
    shell = next((s for s in ("dash", "bash") if _is_file(root, f"{bin_}/{s}")), None)
    if shell is not None:
        _link(root, f"{bin_}/sh", shell, written, replace=False)
    awk = next((a for a in ("gawk", "mawk", "original-awk") if _is_file(root, f"{bin_}/{a}")), None)
    if awk is not None:
        _link(root, f"{bin_}/awk", awk, written, replace=False)
        _link(root, f"{bin_}/nawk", awk, written, replace=False)
    alternatives = {
        "cc": "gcc",
        "c89": "c89-gcc",
        "c99": "c99-gcc",
        "c++": "g++",
    }
    for name, target in alternatives.items():
        if _is_file(root, f"{bin_}/{target}"):
            _link(root, f"{bin_}/{name}", target, written, replace=False)
    if _is_file(root, f"{bin_}/cpp"):
        _link(root, "usr/lib/cpp", "/usr/bin/cpp", written, replace=False)


# ---- runtime --------------------------------------------------------------------------------


def finish_runtime(root: Path, *, shell: bool = False) -> RuntimeReport:
    """Turn an unpacked runtime into a minimal image root.

    Users root and nonroot (65532) in etc/passwd and etc/group (replaced),
    etc/nsswitch.conf (when absent), home/nonroot, root and tmp, the CA bundle
    as update-ca-certificates makes it, UTC as the time zone (when tzdata is
    there), no shell unless ``shell``, and no documentation beyond each
    package's copyright file.

    Raises:
        RootfsError: a path it must write is a directory, or lies behind a symlink.
    """
    written: list[str] = []
    _merged_links(root, written)
    for rel in ("tmp", "root", NONROOT_HOME):
        _mkdirs(root, rel)
    removed = [] if shell else _remove_shells(root)
    login = "/bin/sh" if shell and _is_file(root, "usr/bin/sh") else NOLOGIN
    _write(root, "etc/passwd", _passwd(login).encode(), written)
    _write(root, "etc/group", _group().encode(), written)
    if not _lexists(root / "etc/nsswitch.conf"):
        _write(root, "etc/nsswitch.conf", NSSWITCH.encode(), written)
    count = _ca_bundle(root, written)
    if (root / "usr/share/zoneinfo" / TIMEZONE).is_file():
        _link(root, "etc/localtime", f"/usr/share/zoneinfo/{TIMEZONE}", written)
        _write(root, "etc/timezone", f"{TIMEZONE}\n".encode(), written)
    trimmed = [_trim_docs(root), *(_trim(root, rel) for rel in TRIMMED)]
    return RuntimeReport(
        written=tuple(sorted(written)),
        removed_shells=tuple(removed),
        trimmed=tuple(t for t in trimmed if t.files),
        ca_certificates=count,
    )


def _passwd(login: str) -> str:
    return (
        f"root:x:0:0:root:/root:{login}\n"
        f"nonroot:x:{NONROOT_UID}:{NONROOT_UID}:nonroot:/{NONROOT_HOME}:{NOLOGIN}\n"
    )


def _group() -> str:
    return f"root:x:0:\nnonroot:x:{NONROOT_UID}:\n"


def _remove_shells(root: Path) -> list[str]:
    removed = []
    for directory in ("usr/bin", "usr/sbin"):
        for name in SHELLS:
            path = root / directory / name
            if _lexists(path) and not (path.is_dir() and not path.is_symlink()):
                path.unlink()
                removed.append(f"{directory}/{name}")
    return removed


def _cert_pem_name(crt: str) -> str:
    """The name update-ca-certificates gives a certificate's link in /etc/ssl/certs."""
    base = crt.rpartition("/")[2].removesuffix(".crt")
    for old, new in ((" ", "_"), ("(", "="), (")", "="), (",", "_")):
        base = base.replace(old, new)
    return base + ".pem"


def _ca_bundle(root: Path, written: list[str]) -> int:
    """etc/ssl/certs/ca-certificates.crt as ``update-ca-certificates`` writes it; the count.

    Debian's postinst enables every certificate under /usr/share/ca-certificates,
    listed in C-locale order in /etc/ca-certificates.conf; the bundle is each
    one in that order, a newline added to any that lacks one. The per-cert links
    and the conf are written too; OpenSSL's hash links are not (the bundle is
    what OpenSSL, Go and Python load).
    """
    source = root / "usr/share/ca-certificates"
    if not source.is_dir():
        return 0
    certs = sorted(
        (p.relative_to(source).as_posix() for p in source.rglob("*.crt") if p.is_file()),
        key=os.fsencode,
    )
    if not certs:
        return 0
    chunks = []
    for rel in certs:
        data = (source / rel).read_bytes()
        chunks.append(data if data.endswith(b"\n") or not data else data + b"\n")
    bundle = b"".join(chunks)
    _write(root, "etc/ssl/certs/ca-certificates.crt", bundle, written)
    for rel in certs:
        name = _cert_pem_name(rel)
        _link(root, f"etc/ssl/certs/{name}", f"/usr/share/ca-certificates/{rel}", written)
    conf = "".join(f"{rel}\n" for rel in certs)
    _write(root, "etc/ca-certificates.conf", conf.encode(), written)
    # OpenSSL's default paths (OPENSSLDIR /usr/lib/ssl): package openssl ships these links,
    # libssl3 alone does not
    _link(
        root, "usr/lib/ssl/cert.pem", "/etc/ssl/certs/ca-certificates.crt", written, replace=False
    )
    _link(root, "usr/lib/ssl/certs", "/etc/ssl/certs", written, replace=False)
    return bundle.count(b"-----BEGIN CERTIFICATE-----")


def _size(path: Path) -> tuple[int, int]:
    """Regular files under (or at) ``path`` and their bytes; symlinks are not followed."""
    st = path.lstat()
    if stat.S_ISREG(st.st_mode):
        return 1, st.st_size
    if not stat.S_ISDIR(st.st_mode):
        return 0, 0
    files = size = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode):
                files += 1
                size += st.st_size
    return files, size


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _trim(root: Path, rel: str) -> Trimmed:
    path = root / rel
    if not _lexists(path):
        return Trimmed(rel, 0, 0)
    files, size = _size(path)
    _delete(path)
    return Trimmed(rel, files, size)


def _trim_docs(root: Path) -> Trimmed:
    """usr/share/doc less everything but each package's copyright file (and doc-dir links)."""
    docs = root / "usr/share/doc"
    files = size = 0
    if not docs.is_dir():
        return Trimmed("usr/share/doc", 0, 0)
    for package in sorted(docs.iterdir()):
        if package.is_symlink() or not package.is_dir():
            continue  # a link to another package's doc dir: tiny, and its copyright resolves
        for entry in sorted(package.iterdir()):
            if entry.name == "copyright":
                continue
            n, b = _size(entry)
            files, size = files + n, size + b
            _delete(entry)
    return Trimmed("usr/share/doc", files, size)
