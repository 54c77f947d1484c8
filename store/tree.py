"""Trees: the canonical directory listing, in the REAPI ``Directory`` wire model.

A tree is stored as a blob and named by the digest of its encoding.  It holds
only what matters for reproducibility: entry names (bytes-exact), file content
digests and sizes, the executable bit, symlink targets.  No mtimes, owners,
other mode bits, xattrs or hardlink identity.

The encoding is the protobuf wire form of REAPI's ``Directory`` written by hand
(fields in number order, defaults omitted, entries sorted by name), so a tree
whose names are UTF-8 has the same digest as the REAPI message for it.  Names
and targets that are not UTF-8 are written as the raw bytes in the same
fields; a REAPI bridge must refuse those.

>>> leaf = Directory(files=(FileNode(b"a", Digest.of_bytes(b"x"), 1, False),))
>>> Directory.decode(leaf.encode()) == leaf
True
"""

from __future__ import annotations

from binascii import hexlify, unhexlify
from dataclasses import dataclass, field

from .digest import Digest
from .errors import InvalidName, StoreError


class MalformedTree(StoreError):
    """Bytes that claim to be a tree are not a canonical Directory encoding."""

    reason = "malformed-tree"


def check_name(name: bytes) -> bytes:
    """Return ``name`` if it is a valid entry name, else raise InvalidName."""
    if not name or name in (b".", b"..") or b"/" in name or b"\0" in name:
        raise InvalidName(
            f"invalid entry name {name!r}: names may not be empty, '.', '..' or contain '/' or NUL"
        )
    return name


@dataclass(frozen=True, slots=True)
class FileNode:
    name: bytes
    digest: Digest
    size: int
    executable: bool


@dataclass(frozen=True, slots=True)
class DirectoryNode:
    name: bytes
    digest: Digest
    size: int  # size of the child's encoded Directory


@dataclass(frozen=True, slots=True)
class SymlinkNode:
    name: bytes
    target: bytes


@dataclass(frozen=True, slots=True)
class Directory:
    """One directory level; children are referenced by digest."""

    files: tuple[FileNode, ...] = ()
    directories: tuple[DirectoryNode, ...] = ()
    symlinks: tuple[SymlinkNode, ...] = field(default=())

    @classmethod
    def build(cls, files=(), directories=(), symlinks=()) -> Directory:
        """Sort entries canonically and check names; raise on duplicates."""
        d = cls(
            tuple(sorted(files, key=_by_name)),
            tuple(sorted(directories, key=_by_name)),
            tuple(sorted(symlinks, key=_by_name)),
        )
        d.validate()
        return d

    def validate(self) -> None:
        seen: set[bytes] = set()
        for group in (self.files, self.directories, self.symlinks):
            previous = None
            for node in group:
                check_name(node.name)
                if previous is not None and node.name <= previous:
                    raise MalformedTree("tree entries are not sorted by name")
                if node.name in seen:
                    raise MalformedTree(f"duplicate tree entry {node.name!r}")
                seen.add(node.name)
                previous = node.name
        for link in self.symlinks:
            if not link.target or b"\0" in link.target:
                raise MalformedTree(f"symlink {link.name!r} has an empty target or one with NUL")

    def children(self) -> list[Digest]:
        """Digests this tree references directly (file blobs and subtrees)."""
        return [f.digest for f in self.files] + [d.digest for d in self.directories]

    def encode(self) -> bytes:
        out = [_file_entry(f.name, f.digest.raw, f.size, f.executable) for f in self.files]
        out += [_dir_entry(d.name, d.digest.raw, d.size) for d in self.directories]
        out += [_link_entry(s.name, s.target) for s in self.symlinks]
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes) -> Directory:
        """Parse a canonical encoding; anything else raises MalformedTree.

        The parser accepts exactly what ``encode`` writes (field order, minimal
        varints, defaults omitted), so no re-encoding is needed to prove the
        input canonical.
        """
        files, dirs, links = parse_listing(data)  # checks names and order too
        return cls(
            tuple(FileNode(n, Digest(unhexlify(h)), size, exe) for n, h, size, exe in files),
            tuple(DirectoryNode(n, Digest(unhexlify(h)), size) for n, h, size in dirs),
            tuple(SymlinkNode(n, t) for n, t in links),
        )


def encode_listing(files=(), directories=(), symlinks=()) -> bytes:
    """The canonical encoding of one directory given as plain tuples: files
    ``(name, raw digest, size, executable)``, directories ``(name, raw digest, size)``,
    symlinks ``(name, target)``, in any order.

    The same bytes as ``Directory.build(...).encode()`` with the same checks
    (valid, unique names; usable symlink targets), without building node objects:
    ingest calls this once per directory of every tree it adds.
    """
    files = sorted(files)
    directories = sorted(directories)
    symlinks = sorted(symlinks)
    names = [f[0] for f in files] + [d[0] for d in directories] + [s[0] for s in symlinks]
    for name in names:
        if not name or b"/" in name or b"\0" in name or name in (b".", b".."):
            check_name(name)  # raises InvalidName
    if len(set(names)) != len(names):
        seen: set[bytes] = set()
        for name in names:
            if name in seen:
                raise MalformedTree(f"duplicate tree entry {name!r}")
            seen.add(name)
    for name, target in symlinks:
        if not target or b"\0" in target:
            raise MalformedTree(f"symlink {name!r} has an empty target or one with NUL")
    out = [_file_entry(*f) for f in files]
    out += [_dir_entry(*d) for d in directories]
    out += [_link_entry(*s) for s in symlinks]
    return b"".join(out)


# Tags (field number << 3 | wire type) of the fields a canonical tree holds.
_FILES, _DIRS, _LINKS = 0x0A, 0x12, 0x1A  # Directory.files/directories/symlinks (LD)
_NAME, _DIGEST, _TARGET = 0x0A, 0x12, 0x12  # node.name (1), node.digest/target (2)
_HASH, _SIZE = 0x0A, 0x10  # Digest.hash (1, LD), Digest.size_bytes (2, varint)
_EXEC_TRUE = b"\x20\x01"  # FileNode.is_executable (4, varint) = true
_HEX_FIELD = bytes([_HASH, 64])
_LOWER_HEX_DIGITS = b"0123456789abcdef"
_ONE_BYTE_VARINTS = [bytes([n]) for n in range(0x80)]


def _by_name(node) -> bytes:
    return node.name


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _ONE_BYTE_VARINTS[n]
    if n < 0x4000:
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + _varint(len(payload)) + payload


def _digest_msg(raw: bytes, size: int) -> bytes:
    """An REAPI Digest message: 64 hex digits, then the size unless zero (< 128 bytes)."""
    body = _HEX_FIELD + hexlify(raw)
    return body + b"\x10" + _varint(size) if size else body


# One function per entry kind, written out: they run once per entry of every tree encoded.
def _file_entry(name: bytes, raw: bytes, size: int, executable: bool) -> bytes:
    digest = _digest_msg(raw, size)
    body = b"\x0a" + _varint(len(name)) + name + b"\x12" + _ONE_BYTE_VARINTS[len(digest)] + digest
    if executable:
        body += _EXEC_TRUE
    return b"\x0a" + _varint(len(body)) + body


def _dir_entry(name: bytes, raw: bytes, size: int) -> bytes:
    digest = _digest_msg(raw, size)
    body = b"\x0a" + _varint(len(name)) + name + b"\x12" + _ONE_BYTE_VARINTS[len(digest)] + digest
    return b"\x12" + _varint(len(body)) + body


def _link_entry(name: bytes, target: bytes) -> bytes:
    return _field(_LINKS, _field(_NAME, name) + _field(_TARGET, target))


def parse_listing(data: bytes) -> tuple[list, list, list]:
    """Parse a canonical encoding into plain tuples: files ``(name, hex digest, size,
    executable)``, directories ``(name, hex digest, size)``, symlinks ``(name, target)``
    (hex digests as 64 ASCII bytes).  Raises MalformedTree for anything ``encode`` would
    not have written (bad names included).

    Written flat, without a reader object: checkout parses every tree it writes.
    """
    try:
        files, dirs, links = _parse(data)
        _check_names(files, dirs, links)
    except (IndexError, ValueError) as exc:  # InvalidName is a ValueError too
        raise MalformedTree(f"not a canonical tree encoding: {exc}") from None
    return files, dirs, links


def _parse(data: bytes) -> tuple[list, list, list]:
    files: list = []
    dirs: list = []
    links: list = []
    pos, end = 0, len(data)
    group = files
    while pos < end:
        tag = data[pos]
        # the entry's length (canonically one or two varint bytes: inline), then its name
        n = data[pos + 1]
        if n < 0x80:
            pos += 2
        elif 0 < data[pos + 2] < 0x80:
            n = (n & 0x7F) | data[pos + 2] << 7
            pos += 3
        else:
            n, pos = _varint_at(data, pos + 1)
        stop = pos + n
        if stop > end:
            raise ValueError("entry runs past the tree")
        if data[pos] != _NAME:
            raise ValueError(f"expected a name at offset {pos}")
        n = data[pos + 1]
        if n < 0x80:
            pos += 2
        else:
            n, pos = _varint_at(data, pos + 1)
        name = data[pos : pos + n]
        pos += n
        if pos >= stop:
            raise ValueError(f"entry {name!r} ends after its name")
        if tag == _LINKS:
            group = links
            if data[pos] != _TARGET:
                raise ValueError(f"expected a symlink target at offset {pos}")
            n = data[pos + 1]
            if n < 0x80:
                pos += 2
            else:
                n, pos = _varint_at(data, pos + 1)
            target = data[pos : pos + n]
            pos += n
            if pos != stop:
                raise ValueError(f"unexpected field at offset {pos}")
            links.append((name, target))
            continue
        if tag == _FILES:
            if group is not files:
                raise ValueError(f"a file entry after directories or symlinks at offset {pos}")
        elif tag == _DIRS:
            if group is files:
                group = dirs
            elif group is not dirs:
                raise ValueError(f"a directory entry after symlinks at offset {pos}")
        else:
            raise ValueError(f"unexpected field tag {tag:#x}")
        # the Digest message (under 128 bytes): 0x0A 0x40 <64 lowercase hex> [0x10 <size>]
        after = pos + 2 + data[pos + 1]
        if data[pos] != _DIGEST or data[pos + 2] != _HASH or data[pos + 3] != 64:
            raise ValueError(f"expected a digest at offset {pos}")
        hexpart = data[pos + 4 : pos + 68]
        if hexpart.translate(None, _LOWER_HEX_DIGITS):
            raise ValueError("digest hash is not 64 lowercase hex digits")
        pos += 68
        size = 0
        if pos < after:
            if data[pos] != _SIZE:
                raise ValueError(f"expected a size at offset {pos}")
            size = data[pos + 1]
            if size < 0x80:
                pos += 2
            else:
                size, pos = _varint_at(data, pos + 1)
            if size == 0:
                raise ValueError("a zero size must be omitted")
        if pos != after or after > stop:
            raise ValueError(f"malformed digest before offset {after}")
        if tag == _DIRS:
            if pos != stop:
                raise ValueError(f"unexpected field at offset {pos}")
            dirs.append((name, hexpart, size))
        elif pos == stop:
            files.append((name, hexpart, size, False))
        elif pos + 2 == stop and data[pos : pos + 2] == _EXEC_TRUE:
            files.append((name, hexpart, size, True))
            pos = stop
        else:
            raise ValueError(f"unexpected field at offset {pos} (is_executable must be true)")
    return files, dirs, links


def _varint_at(data: bytes, pos: int) -> tuple[int, int]:
    """The minimal varint at ``pos`` and the offset after it."""
    result = shift = 0
    byte = data[pos]
    while byte & 0x80:
        result |= (byte & 0x7F) << shift
        shift += 7
        pos += 1
        if shift > 63:
            raise ValueError("varint too long")
        byte = data[pos]
    if byte == 0:
        raise ValueError("varint not minimal")
    return result | byte << shift, pos + 1


def _check_names(files: list, dirs: list, links: list) -> None:
    """Names valid, each group sorted, no name twice; symlink targets usable.

    Whole-list operations (C loops), not a Python loop per name: checkout parses
    every tree it writes.
    """
    names: list[bytes] = []
    for group in (files, dirs, links):
        group_names = [entry[0] for entry in group]
        if group_names != sorted(group_names):
            raise MalformedTree("tree entries are not sorted by name")
        names += group_names
    unique = set(names)
    if len(unique) != len(names):
        raise MalformedTree("duplicate tree entry")
    joined = b"\0".join(names)
    if (
        b"/" in joined
        or joined.count(b"\0") != max(len(names) - 1, 0)
        or b"" in unique
        or b"." in unique
        or b".." in unique
    ):
        for name in names:
            check_name(name)  # raises for the first bad one
    for name, target in links:
        if not target or b"\0" in target:
            raise MalformedTree(f"symlink {name!r} has an empty target or one with NUL")
