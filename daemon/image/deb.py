"""Debian binary packages (.deb): read the archive, unpack a set of them into a root.

    report = unpack_debs([("libc6_2.36.deb", lambda: open(path, "rb")), ...], Path("root"))
    report.conflicts, report.dropped_modes, report.skipped   # what dpkg would have done otherwise

No maintainer script runs and nothing is read from the host. The root follows
Debian 12's merged /usr: top-level ``bin``, ``sbin``, ``lib``, ``lib32``,
``lib64`` and ``libx32`` are symlinks to ``usr/<same>`` and what a package
ships under them lands under ``usr/``. The tree holds only what a seal store
tree can: directories (0755), regular files (0755 or 0644, from the member's
exec bits) and symlinks; hardlinks become copies, setuid/setgid/sticky bits are
dropped and device nodes and FIFOs skipped (all three reported). The result
depends on the packages and their order only (not on umask or the clock).

Symlinks inside the root are followed the way dpkg follows them on the target
system: an absolute target starts at the root, never at the host's ``/``; a
relative one that climbs above the root is refused.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import posixpath
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import zstandard

from seal.daemon.errors import DaemonError

MERGED_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_AR_MAGIC = b"!<arch>\n"
_AR_HEADER = 60
_CHUNK = 1 << 20
_MAX_LINK_HOPS = 40
_COMPRESSIONS = ("", ".gz", ".xz", ".zst", ".bz2", ".lzma")


class DebError(DaemonError):
    """A .deb is malformed or cannot be unpacked; names the package and, when known, the member."""

    reason = "bad-deb"

    def __init__(self, package: str, message: str, *, member: str = "", hint: str | None = None):
        where = f"{package}: {member}" if member else package
        super().__init__(f"{where}: {message}", hint=hint)
        self.package = package
        self.member = member


class UnsafeDebMember(DebError):
    """A member would land outside the root: '..', an absolute name, a symlink climbing out."""

    reason = "unsafe-deb-member"


@dataclass(frozen=True)
class DebContents:
    """One .deb, parsed: its control fields and its (still compressed) data.tar."""

    name: str
    control: dict[str, str]
    data_member: str  # e.g. "data.tar.xz"
    data: bytes = field(repr=False)

    @property
    def package(self) -> str:
        return self.control.get("Package", "")

    @property
    def version(self) -> str:
        return self.control.get("Version", "")

    @property
    def architecture(self) -> str:
        return self.control.get("Architecture", "")

    @contextmanager
    def data_tar(self) -> Iterator[tarfile.TarFile]:
        """The data.tar, opened as a stream (members must be read in order)."""
        raw = _decompressed(io.BytesIO(self.data), self.data_member, self.name)
        try:
            with tarfile.open(fileobj=raw, mode="r|") as tar:
                yield tar
            # read past tar's end marker to the end of the stream, so that the
            # decompressor checks its checksum (gzip's CRC, xz's check)
            while raw.read(_CHUNK):
                pass
        finally:
            raw.close()


def read_deb(fileobj: BinaryIO, name: str) -> DebContents:
    """Parse the ar archive of a .deb (format 2.x); ``name`` is for error messages.

    Raises:
        DebError: not an ar archive, wrong member order, unknown format or
            compression, a control.tar without ``control``.
    """
    members = _ar_members(fileobj, name)
    members = [(n, d) for n, d in members if not n.startswith("_")]  # dpkg ignores these
    if len(members) < 3 or members[0][0] != "debian-binary":
        found = ", ".join(n for n, _ in members) or "no members"
        raise DebError(name, f"not a .deb: expected debian-binary, control.tar, data.tar ({found})")
    version = members[0][1].decode("ascii", "replace").strip()
    if version.split(".")[0] != "2":
        raise DebError(name, f"unsupported .deb format {version!r} (only 2.x)")
    control_name, control_data = members[1]
    data_name, data = members[2]
    for member, prefix in ((control_name, "control.tar"), (data_name, "data.tar")):
        if not member.startswith(prefix) or member[len(prefix) :] not in _COMPRESSIONS:
            raise DebError(name, f"unexpected member {member!r} where {prefix}[.ext] belongs")
    if len(members) > 3:
        raise DebError(name, f"unexpected member {members[3][0]!r} after {data_name}")
    control = _read_control(control_data, control_name, name)
    return DebContents(name=name, control=control, data_member=data_name, data=data)


def _ar_members(fileobj: BinaryIO, name: str) -> list[tuple[str, bytes]]:
    if fileobj.read(len(_AR_MAGIC)) != _AR_MAGIC:
        raise DebError(name, "not an ar archive (no !<arch> magic)")
    members = []
    while True:
        header = fileobj.read(_AR_HEADER)
        if not header:
            return members
        if len(header) != _AR_HEADER or header[58:60] != b"`\n":
            raise DebError(name, "truncated or corrupt ar member header")
        member = header[:16].decode("ascii", "replace").rstrip(" ").removesuffix("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise DebError(name, f"bad size in ar header of {member!r}") from None
        data = fileobj.read(size)
        if len(data) != size:
            raise DebError(name, f"ar member {member!r} is truncated")
        if size % 2:
            fileobj.read(1)  # members are padded to an even offset
        members.append((member, data))


def _decompressed(raw: BinaryIO, member: str, name: str) -> BinaryIO:
    ext = member.rpartition(".")[2] if member.count(".") > 1 else ""
    if ext == "":
        return raw
    if ext == "gz":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if ext == "xz":
        return lzma.LZMAFile(raw, format=lzma.FORMAT_XZ)
    if ext == "lzma":
        return lzma.LZMAFile(raw, format=lzma.FORMAT_ALONE)
    if ext == "bz2":
        return bz2.BZ2File(raw)
    if ext == "zst":
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        return reader  # type: ignore[return-value]
    raise DebError(name, f"unknown compression of {member!r}")


_READ_ERRORS = (tarfile.TarError, lzma.LZMAError, zlib.error, EOFError, OSError)
_READ_ERRORS += (zstandard.ZstdError,)


def _read_control(data: bytes, member: str, name: str) -> dict[str, str]:
    try:
        raw = _decompressed(io.BytesIO(data), member, name)
        with tarfile.open(fileobj=raw, mode="r|") as tar:
            for info in tar:
                if info.isfile() and info.name.lstrip("./") == "control":
                    handle = tar.extractfile(info)
                    assert handle is not None
                    return parse_control(handle.read().decode("utf-8", "replace"))
    except _READ_ERRORS as exc:
        raise DebError(name, f"cannot read {member}: {exc}") from None
    raise DebError(name, f"{member} has no control file")


def parse_control(text: str) -> dict[str, str]:
    """The fields of the first paragraph of a Debian control text (continuations joined by \\n)."""
    fields: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        if line[0] in " \t" and last:
            fields[last] += "\n" + line.strip()
        elif ":" in line:
            last, _, value = line.partition(":")
            last = last.strip()
            fields[last] = value.strip()
    return fields


# ---- unpacking ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackageFiles:
    """What one package put in the root: its regular files and symlinks (paths in the root)."""

    name: str  # as the caller named it
    package: str
    version: str
    architecture: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class Conflict:
    """Two packages ship one path with different content or type; ``winner`` is what the root has.

    dpkg would refuse to install the second package (unless it declares Replaces).
    """

    path: str
    previous: str
    winner: str
    detail: str


@dataclass(frozen=True)
class DroppedMode:
    """A setuid, setgid or sticky bit that the root does not keep."""

    package: str
    path: str
    mode: int  # the member's full permission bits, e.g. 0o4755


@dataclass(frozen=True)
class Skipped:
    """A member not unpacked: a device node or FIFO."""

    package: str
    path: str
    kind: str  # "character device", "block device", "fifo"


@dataclass(frozen=True)
class UnpackReport:
    """The outcome of ``unpack_debs``: packages and conflicts in unpack order, the rest sorted."""

    packages: tuple[PackageFiles, ...]
    conflicts: tuple[Conflict, ...]
    dropped_modes: tuple[DroppedMode, ...]
    skipped: tuple[Skipped, ...]
    merged_links: tuple[str, ...]  # the top-level links made, e.g. ("bin", "lib", "lib64")


@dataclass
class _Node:
    kind: str  # "dir", "file", "link"
    target: str = ""  # a link's target
    digest: str = ""  # a file's sha256
    executable: bool = False
    owners: set[int] = field(default_factory=set)  # indexes of the packages holding it


def unpack_debs(debs: Sequence[tuple[str, Callable[[], BinaryIO]]], dest: Path) -> UnpackReport:
    """Unpack the data.tar of each .deb into ``dest``, in order (a later package wins a conflict).

    ``dest`` must not exist or be an empty directory. Each entry of ``debs`` is
    a name (for messages and the report) and a function opening the .deb.

    Raises:
        DebError: a malformed .deb, or a member that cannot be placed (a file
            where a directory is needed, a hardlink to nothing earlier).
        UnsafeDebMember: a member or symlink that leads outside ``dest``.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise DebError(str(dest), "the unpack destination must be empty")
    os.chmod(dest, 0o755)
    unpacker = _Unpacker(dest)
    contents = []
    for index, (name, opener) in enumerate(debs):
        with opener() as fileobj:
            deb = read_deb(fileobj, name)
        contents.append(deb)
        unpacker.names.append(name)
        try:
            with deb.data_tar() as tar:
                for info in tar:
                    unpacker.member(index, name, tar, info)
        except _READ_ERRORS as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise  # the disk, not the archive
            raise DebError(name, f"cannot read {deb.data_member}: {exc}") from None
    return unpacker.report(contents)


class _Unpacker:
    """The root as unpacked so far: a model of every path, kept in step with the disk."""

    def __init__(self, dest: Path):
        self.dest = dest
        self.nodes: dict[str, _Node] = {"": _Node("dir")}
        self.conflicts: list[Conflict] = []
        self.dropped: list[DroppedMode] = []
        self.skipped: list[Skipped] = []
        self.names: list[str] = []

    # -- entry point

    def member(self, index: int, name: str, tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        parts = _member_parts(name, info.name)
        if not parts:
            return  # "./": the root itself
        parent = self._resolve(parts[:-1], name, info.name)
        base = parts[-1]
        if not parent and base in MERGED_DIRS:
            if not info.isdir():
                raise DebError(
                    name, "a non-directory where merged /usr has a link", member=info.name
                )
            parent = ["usr"]
            self._merged_link(base)
        path = "/".join([*parent, base])
        if info.mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX) and not info.issym():
            self.dropped.append(DroppedMode(name, path, stat.S_IMODE(info.mode)))
        if info.isdir():
            self._dir(index, name, info.name, path)
        elif info.isreg():
            handle = tar.extractfile(info)
            assert handle is not None
            self._file(index, name, path, handle, bool(info.mode & 0o111))
        elif info.issym():
            if not info.linkname or "\0" in info.linkname:
                raise DebError(name, "a symlink with an empty target", member=info.name)
            self._link(index, name, path, info.linkname)
        elif info.islnk():
            self._hardlink(index, name, info, path)
        else:
            kind = {tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device"}
            self.skipped.append(Skipped(name, path, kind.get(info.type, "fifo")))

    # -- paths

    def _resolve(self, parts: list[str], name: str, member: str) -> list[str]:
        """The real directory (no symlink in it) that ``parts`` names, made where missing."""
        out: list[str] = []
        todo = list(parts)
        hops = 0
        while todo:
            part = todo.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if not out:
                    raise UnsafeDebMember(
                        name, "a symlink on its path leads out of the root", member=member
                    )
                out.pop()
                continue
            if not out and part in MERGED_DIRS:
                self._merged_link(part)
                out = ["usr"]
            path = "/".join([*out, part])
            node = self.nodes.get(path)
            if node is None:
                self._mkdir(path)
            elif node.kind == "link":
                hops += 1
                if hops > _MAX_LINK_HOPS:
                    raise DebError(name, "too many levels of symlinks on its path", member=member)
                if node.target.startswith("/"):
                    out = []
                todo[:0] = node.target.split("/")
                continue
            elif node.kind != "dir":
                raise DebError(name, f"{path} is a file, not a directory", member=member)
            out.append(part)
        return out

    def _merged_link(self, top: str) -> None:
        if top in self.nodes:
            return
        self._resolve(["usr", top], "", "")
        os.symlink(f"usr/{top}", self.dest / top)
        self.nodes[top] = _Node("link", target=f"usr/{top}")

    def _mkdir(self, path: str) -> None:
        where = self.dest / path
        os.mkdir(where)
        os.chmod(where, 0o755)
        self.nodes[path] = _Node("dir")

    def _children(self, path: str) -> bool:
        prefix = path + "/"
        return any(p.startswith(prefix) for p in self.nodes)

    def _remove(self, path: str) -> None:
        node = self.nodes.pop(path)
        if node.kind == "dir":
            os.rmdir(self.dest / path)
        else:
            os.unlink(self.dest / path)

    # -- entries

    def _dir(self, index: int, name: str, member: str, path: str) -> None:
        node = self.nodes.get(path)
        if node is None:
            self._mkdir(path)
        elif node.kind == "link":
            # dpkg keeps a symlink to a directory where a package has the directory
            parts = path.split("/")
            resolved = self._resolve([*parts[:-1], parts[-1]], name, member)
            if self.nodes["/".join(resolved)].kind != "dir":  # pragma: no cover - _resolve raises
                raise DebError(name, f"{path} is not a directory", member=member)
        elif node.kind == "file":
            raise DebError(name, f"a directory where {self._owner(node)} has a file", member=member)

    def _replaceable(self, name: str, path: str, what: str) -> _Node | None:
        """The node now at ``path`` (None if free); refuses to replace a directory with content."""
        node = self.nodes.get(path)
        if node is not None and node.kind == "dir":
            if self._children(path):
                raise DebError(name, f"{what} where other packages have a directory: {path}")
            self._remove(path)
            return None
        return node

    def _claim(
        self, index: int, name: str, path: str, old: _Node | None, new: _Node, same: bool
    ) -> None:
        if old is not None and same:
            new.owners = old.owners | {index}
        else:
            new.owners = {index}
            if old is not None and old.owners - {index}:
                self.conflicts.append(Conflict(path, self._owner(old), name, _difference(old, new)))
        self.nodes[path] = new

    def _file(self, index: int, name: str, path: str, handle: BinaryIO, executable: bool) -> None:
        old = self._replaceable(name, path, "a file")
        if old is not None:
            os.unlink(self.dest / path)
        digest = hashlib.sha256()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        fd = os.open(self.dest / path, flags, 0o600)
        with os.fdopen(fd, "wb") as out:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
            os.fchmod(out.fileno(), 0o755 if executable else 0o644)
        new = _Node("file", digest=digest.hexdigest(), executable=executable)
        same = (
            old is not None
            and old.kind == "file"
            and (old.digest, old.executable)
            == (
                new.digest,
                new.executable,
            )
        )
        self._claim(index, name, path, old, new, same)

    def _link(self, index: int, name: str, path: str, target: str) -> None:
        old = self._replaceable(name, path, "a symlink")
        if old is not None:
            os.unlink(self.dest / path)
        os.symlink(target, self.dest / path)
        new = _Node("link", target=target)
        same = old is not None and old.kind == "link" and old.target == target
        self._claim(index, name, path, old, new, same)

    def _hardlink(self, index: int, name: str, info: tarfile.TarInfo, path: str) -> None:
        parts = _member_parts(name, info.linkname)
        if not parts:
            raise DebError(name, "a hardlink to the root", member=info.name)
        parent = self._resolve(parts[:-1], name, info.name)
        if not parent and parts[-1] in MERGED_DIRS:
            parent = ["usr"]
        source = "/".join([*parent, parts[-1]])
        node = self.nodes.get(source)
        if node is None or node.kind != "file" or index not in node.owners:
            raise DebError(
                name,
                f"a hardlink to {info.linkname}, not a file earlier in the package",
                member=info.name,
            )
        with open(self.dest / source, "rb") as handle:
            self._file(index, name, path, handle, node.executable)

    # -- report

    def _owner(self, node: _Node) -> str:
        return ", ".join(self.names[i] for i in sorted(node.owners))

    def report(self, contents: Sequence[DebContents]) -> UnpackReport:
        files: list[list[str]] = [[] for _ in contents]
        for path, node in self.nodes.items():
            if node.kind != "dir":
                for owner in node.owners:
                    files[owner].append(path)
        packages = tuple(
            PackageFiles(
                name=deb.name,
                package=deb.package,
                version=deb.version,
                architecture=deb.architecture,
                files=tuple(sorted(owned)),
            )
            for deb, owned in zip(contents, files, strict=True)
        )
        merged = tuple(sorted(top for top in MERGED_DIRS if top in self.nodes))
        return UnpackReport(
            packages=packages,
            conflicts=tuple(self.conflicts),
            dropped_modes=tuple(sorted(self.dropped, key=lambda d: (d.path, d.package))),
            skipped=tuple(sorted(self.skipped, key=lambda s: (s.path, s.package))),
            merged_links=merged,
        )


def _difference(old: _Node, new: _Node) -> str:
    if old.kind != new.kind:
        return f"a {old.kind} replaced by a {new.kind}"
    if old.kind == "link":
        return f"symlink target {old.target!r} replaced by {new.target!r}"
    if old.digest != new.digest:
        return "different content"
    return "different executable bit"


def _member_parts(name: str, member: str) -> list[str]:
    """The path components of a tar member name ("./usr/bin/x" -> [usr, bin, x])."""
    if member.startswith("/"):
        raise UnsafeDebMember(name, "an absolute member name", member=member)
    normal = posixpath.normpath(member)
    parts = [p for p in normal.split("/") if p not in ("", ".")]
    if ".." in member.split("/") or ".." in parts:
        raise UnsafeDebMember(name, "a member name with '..'", member=member)
    return parts
