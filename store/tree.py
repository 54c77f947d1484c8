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
        out = []
        for f in self.files:
            body = _field(_NAME, f.name) + _field(_DIGEST, _digest_msg(f.digest, f.size))
            if f.executable:
                body += _EXEC_TRUE
            out.append(_field(_FILES, body))
        for d in self.directories:
            body = _field(_NAME, d.name) + _field(_DIGEST, _digest_msg(d.digest, d.size))
            out.append(_field(_DIRS, body))
        for s in self.symlinks:
            out.append(_field(_LINKS, _field(_NAME, s.name) + _field(_TARGET, s.target)))
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes) -> Directory:
        """Parse a canonical encoding; anything else raises MalformedTree.

        The parser accepts exactly what ``encode`` writes (field order, minimal
        varints, defaults omitted), so no re-encoding is needed to prove the
        input canonical.
        """
        try:
            tree = _decode(data)
            tree.validate()
        except (IndexError, ValueError) as exc:  # InvalidName is a ValueError too
            raise MalformedTree(f"not a canonical tree encoding: {exc}") from None
        return tree


# Tags (field number << 3 | wire type) of the fields a canonical tree holds.
_FILES, _DIRS, _LINKS = 0x0A, 0x12, 0x1A  # Directory.files/directories/symlinks (LD)
_NAME, _DIGEST, _TARGET = 0x0A, 0x12, 0x12  # node.name (1), node.digest/target (2)
_HASH, _SIZE = 0x0A, 0x10  # Digest.hash (1, LD), Digest.size_bytes (2, varint)
_EXEC_TRUE = b"\x20\x01"  # FileNode.is_executable (4, varint) = true
_HEX_FIELD = bytes([_HASH, 64])
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


def _digest_msg(digest: Digest, size: int) -> bytes:
    body = _HEX_FIELD + digest.raw.hex().encode()
    return body + b"\x10" + _varint(size) if size else body


class _Reader:
    """A cursor over one message's bytes that accepts only canonical forms."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None):
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def more(self) -> bool:
        return self.pos < self.end

    def peek(self) -> int:
        return self.data[self.pos]

    def varint(self) -> int:
        data, pos = self.data, self.pos
        byte = data[pos]
        if byte < 0x80:
            self.pos = pos + 1
            return byte
        result = shift = 0
        while byte & 0x80:
            result |= (byte & 0x7F) << shift
            shift += 7
            pos += 1
            if shift > 63:
                raise ValueError("varint too long")
            byte = data[pos]
        if byte == 0:
            raise ValueError("varint not minimal")
        self.pos = pos + 1
        return result | byte << shift

    def expect(self, tag: int) -> None:
        if self.pos >= self.end or self.data[self.pos] != tag:
            raise ValueError(f"expected field tag {tag:#x} at offset {self.pos}")
        self.pos += 1

    def _span(self, tag: int) -> tuple[int, int]:
        """Step over a length-delimited field with ``tag``; return where its payload lies."""
        self.expect(tag)
        length = self.varint()
        start, self.pos = self.pos, self.pos + length
        if self.pos > self.end:
            raise ValueError("field runs past its message")
        return start, self.pos

    def chunk(self, tag: int) -> bytes:
        """The payload of a length-delimited field with ``tag``."""
        start, end = self._span(tag)
        return self.data[start:end]

    def sub(self, tag: int) -> _Reader:
        """A reader over the embedded message in field ``tag``."""
        return _Reader(self.data, *self._span(tag))

    def done(self) -> None:
        if self.pos != self.end:
            raise ValueError(f"unexpected field at offset {self.pos}")


def _read_digest(r: _Reader) -> tuple[Digest, int]:
    d = r.sub(_DIGEST)
    hexpart = d.chunk(_HASH)
    raw = bytes.fromhex(hexpart.decode("ascii"))
    if len(raw) != 32 or raw.hex().encode() != hexpart:
        raise ValueError("digest hash is not 64 lowercase hex digits")
    size = 0
    if d.more():
        d.expect(_SIZE)
        size = d.varint()
        if size == 0:
            raise ValueError("a zero size must be omitted")
    d.done()
    return Digest(raw), size


def _decode(data: bytes) -> Directory:
    r = _Reader(data)
    files, dirs, links = [], [], []
    while r.more() and r.peek() == _FILES:
        f = r.sub(_FILES)
        name = f.chunk(_NAME)
        digest, size = _read_digest(f)
        exe = False
        if f.more():
            f.expect(0x20)
            if f.varint() != 1:
                raise ValueError("is_executable must be omitted or true")
            exe = True
        f.done()
        files.append(FileNode(name, digest, size, exe))
    while r.more() and r.peek() == _DIRS:
        d = r.sub(_DIRS)
        name = d.chunk(_NAME)
        digest, size = _read_digest(d)
        d.done()
        dirs.append(DirectoryNode(name, digest, size))
    while r.more() and r.peek() == _LINKS:
        s = r.sub(_LINKS)
        name = s.chunk(_NAME)
        target = s.chunk(_TARGET)
        s.done()
        links.append(SymlinkNode(name, target))
    r.done()
    return Directory(tuple(files), tuple(dirs), tuple(links))
