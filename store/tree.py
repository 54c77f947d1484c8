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
        out = bytearray()
        for f in self.files:
            body = _ld(1, f.name) + _ld(2, _digest_msg(f.digest, f.size))
            if f.executable:
                body += b"\x20\x01"  # field 4, varint, true
            out += _ld(1, body)
        for d in self.directories:
            out += _ld(2, _ld(1, d.name) + _ld(2, _digest_msg(d.digest, d.size)))
        for s in self.symlinks:
            out += _ld(3, _ld(1, s.name) + _ld(2, s.target))
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> Directory:
        """Parse a canonical encoding; anything else raises MalformedTree."""
        files, dirs, links = [], [], []
        try:
            for num, value in _fields(data):
                sub = dict(_unique_fields(_bytes(value)))
                if num == 1:
                    _only(sub, {1, 2, 4})
                    digest, size = _parse_digest(sub[2])
                    exe = sub.get(4, 0)
                    if not isinstance(exe, int) or exe not in (0, 1):
                        raise MalformedTree("is_executable is not a bool")
                    files.append(FileNode(_bytes(sub[1]), digest, size, bool(exe)))
                elif num == 2:
                    _only(sub, {1, 2})
                    digest, size = _parse_digest(sub[2])
                    dirs.append(DirectoryNode(_bytes(sub[1]), digest, size))
                elif num == 3:
                    _only(sub, {1, 2})
                    links.append(SymlinkNode(_bytes(sub[1]), _bytes(sub[2])))
                else:
                    raise MalformedTree(f"unknown Directory field {num}")
            tree = cls(tuple(files), tuple(dirs), tuple(links))
            tree.validate()
        except (KeyError, IndexError, TypeError, ValueError) as exc:  # InvalidName too
            raise MalformedTree(f"not a tree encoding: {exc}") from None
        if tree.encode() != data:
            raise MalformedTree("tree encoding is not canonical")
        return tree


def _by_name(node) -> bytes:
    return node.name


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _ld(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _digest_msg(digest: Digest, size: int) -> bytes:
    body = _ld(1, digest.hex.encode())
    if size:
        body += _varint(2 << 3) + _varint(size)
    return body


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(data: bytes):
    """Yield (field number, value) pairs; value is bytes (LD) or int (varint)."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated field")
            value = data[pos : pos + length]
            pos += length
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield num, value


def _unique_fields(data: bytes):
    seen = set()
    for num, value in _fields(data):
        if num in seen:
            raise ValueError(f"repeated field {num}")
        seen.add(num)
        yield num, value


def _only(fields: dict, allowed: set[int]) -> None:
    extra = set(fields) - allowed
    if extra:
        raise MalformedTree(f"unknown node fields {sorted(extra)}")


def _parse_digest(data: bytes) -> tuple[Digest, int]:
    sub = dict(_unique_fields(_bytes(data)))
    _only(sub, {1, 2})
    size = sub.get(2, 0)
    if not isinstance(size, int):
        raise MalformedTree("digest size is not a varint")
    return Digest.from_hex(_bytes(sub[1]).decode("ascii")), size


def _bytes(value: bytes | int) -> bytes:
    if not isinstance(value, bytes):
        raise MalformedTree("a length-delimited field was encoded as a varint")
    return value
