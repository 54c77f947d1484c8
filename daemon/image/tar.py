"""Deterministic layer tars, written byte by byte in one pinned format.

Python's tarfile, GNU tar and Go's archive/tar each give different bytes for the
same files, so seal writes its tars itself.  The format, fixed here:

- POSIX ustar headers; uid/gid 0, empty uname/gname, devmajor/devminor zero,
  mtime the caller's integer (never a float, never a PAX record);
- directory names end in ``/``, as GNU tar, Go and tarfile write them;
- a PAX extended header (typeflag ``x``, named ``././@PaxHeader``) only when a
  path or link target does not fit ustar: longer than 100 bytes after the
  longest prefix split that fits 155 bytes, or not ASCII; or a file over 8 GiB
  (``size``).  Records come in keyword order;
- entries sorted by the path's ``/``-separated components compared as bytes, so
  every directory comes right before its contents (``a``, ``a/b``, ``a-b``: the
  store's walk order); missing parent directories are added with mode 0755;
- the archive ends with two 512-byte zero blocks and is not padded to a
  10240-byte record: the padding carries no information, every reader accepts
  its absence, and a layer is hashed and compressed as it is.

Example::

    entries = entries_from_directory(Path("rootfs"), modes={"tmp": 0o1777})
    with open("layer.tar", "wb") as f:
        write_tar(entries, f, mtime=1700000000)
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from seal.daemon.errors import DaemonError
from seal.store.digest import Digest
from seal.store.store import Store

BLOCK = 512
CHUNK = 1 << 20  # the writer yields about this much at a time
_MAX_OCTAL_11 = 0o77777777777  # size and mtime fields: 11 octal digits
_PAX_NAME = b"././@PaxHeader"
_KINDS = {"file": b"0", "dir": b"5", "symlink": b"2"}
_DEFAULT_MODES = {"dir": 0o755, "symlink": 0o777}


class LayerEntryError(DaemonError, ValueError):
    """A layer entry cannot go into a tar: a bad path, a duplicate, a size that does not match."""

    reason = "invalid-layer-entry"

    def __init__(self, path: str, problem: str):
        super().__init__(f"layer entry {path!r}: {problem}")
        self.path = path


@dataclass(frozen=True)
class LayerEntry:
    """One file, directory or symlink of a layer.

    ``path`` is relative POSIX (``usr/bin/python3``): no leading ``/`` or ``./``,
    no trailing slash.  ``open`` returns the file's content, read once.
    """

    path: str
    kind: str
    mode: int
    size: int = 0
    target: str = ""
    open: Callable[[], BinaryIO] | None = None
    owner: tuple[int, int] = (0, 0)  # uid, gid (names stay empty)


def _encode(text: str) -> bytes:
    # Store names are bytes; they reach us decoded with surrogateescape.
    return text.encode("utf-8", "surrogateescape")


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _default_mode(kind: str, executable: bool) -> int:
    if kind == "file":
        return 0o755 if executable else 0o644
    return _DEFAULT_MODES[kind]


def entries_from_store(
    store: Store,
    tree: Digest,
    *,
    prefix: str = "",
    modes: Mapping[str, int] = {},
    owners: Mapping[str, tuple[int, int]] = {},
) -> Iterator[LayerEntry]:
    """The entries of a stored tree, optionally placed under ``prefix`` (e.g. ``usr/local``).

    Modes are normalized (dirs 0755, files 0755 or 0644 by the executable bit,
    symlinks 0777); ``modes`` overrides them by final path.  The prefix's own
    directories are emitted too.  ``owners`` gives (uid, gid) by final path; others are 0.
    """
    prefix = prefix.strip("/")
    if prefix:
        parts = prefix.split("/")
        for i in range(1, len(parts) + 1):
            path = "/".join(parts[:i])
            yield LayerEntry(path, "dir", modes.get(path, 0o755))
    lead = prefix + "/" if prefix else ""
    for e in store.walk(tree):
        path = lead + _decode(e.path)
        mode = modes.get(path, _default_mode(e.kind, e.executable))
        if e.kind == "file":
            assert e.digest is not None
            opener = functools.partial(store.open_blob, e.digest)
            yield LayerEntry(path, "file", mode, e.size, open=opener)
        elif e.kind == "symlink":
            yield LayerEntry(path, "symlink", mode, target=_decode(e.target or b""))
        else:
            yield LayerEntry(path, "dir", mode, owner=owners.get(path, (0, 0)))


def entries_from_directory(root: Path, *, modes: Mapping[str, int] = {}) -> Iterator[LayerEntry]:
    """The entries under ``root`` on disk, normalized as :func:`entries_from_store` does.

    Only the owner's executable bit is taken from disk; other file types
    (devices, FIFOs, sockets) raise LayerEntryError.
    """
    root_b = os.fsencode(root)

    def walk(rel: bytes) -> Iterator[LayerEntry]:
        here = os.path.join(root_b, rel) if rel else root_b
        for name in sorted(os.listdir(here)):
            rel_name = rel + b"/" + name if rel else name
            full = os.path.join(root_b, rel_name)
            st = os.lstat(full)
            path = os.fsdecode(rel_name)
            if stat.S_ISDIR(st.st_mode):
                yield LayerEntry(path, "dir", modes.get(path, 0o755))
                yield from walk(rel_name)
            elif stat.S_ISREG(st.st_mode):
                mode = modes.get(path, _default_mode("file", bool(st.st_mode & stat.S_IXUSR)))
                opener = functools.partial(open, full, "rb")
                yield LayerEntry(path, "file", mode, st.st_size, open=opener)  # type: ignore[arg-type]
            elif stat.S_ISLNK(st.st_mode):
                target = os.fsdecode(os.readlink(full))
                yield LayerEntry(path, "symlink", modes.get(path, 0o777), target=target)
            else:
                raise LayerEntryError(path, "is not a file, directory or symlink")

    yield from walk(b"")


def write_tar(entries: Iterable[LayerEntry], out: BinaryIO, *, mtime: int) -> int:
    """Write ``entries`` as a tar in seal's pinned format; return the bytes written."""
    written = 0
    for chunk in iter_tar(entries, mtime=mtime):
        out.write(chunk)
        written += len(chunk)
    return written


def iter_tar(entries: Iterable[LayerEntry], *, mtime: int) -> Iterator[bytes]:
    """The tar of :func:`write_tar` as chunks of about 1 MiB (the last one shorter)."""
    if not isinstance(mtime, int) or not 0 <= mtime <= _MAX_OCTAL_11:
        raise ValueError(f"tar mtime must be an integer in 0..{_MAX_OCTAL_11}, got {mtime!r}")
    buf = bytearray()
    for entry in _ordered(entries):
        raw = _encode(entry.path)
        name = raw + b"/" if entry.kind == "dir" else raw
        size = entry.size if entry.kind == "file" else 0
        buf += _header(name, entry, size, mtime)
        if entry.kind == "file" and size:
            yield from _content(entry, buf)
        if len(buf) >= CHUNK:
            yield bytes(buf)
            buf.clear()
    buf += bytes(2 * BLOCK)
    yield bytes(buf)


def _content(entry: LayerEntry, buf: bytearray) -> Iterator[bytes]:
    """Append the file's content (padded to a block) to ``buf``, yielding full chunks."""
    assert entry.open is not None
    remaining = entry.size
    with entry.open() as f:
        while remaining:
            data = f.read(min(remaining, CHUNK))
            if not data:
                raise LayerEntryError(
                    entry.path, f"content is {entry.size - remaining} bytes, expected {entry.size}"
                )
            remaining -= len(data)
            buf += data
            if len(buf) >= CHUNK:
                yield bytes(buf)
                buf.clear()
        if f.read(1):
            raise LayerEntryError(entry.path, f"content is longer than {entry.size} bytes")
    pad = -entry.size % BLOCK
    if pad:
        buf += bytes(pad)


def _ordered(entries: Iterable[LayerEntry]) -> list[LayerEntry]:
    """Validate, add missing parent directories, and sort by path components."""
    by_path: dict[str, LayerEntry] = {}
    for entry in entries:
        _validate(entry)
        if entry.path in by_path:
            raise LayerEntryError(entry.path, "appears twice")
        by_path[entry.path] = entry
    for path in list(by_path):
        parent = path.rpartition("/")[0]
        while parent:
            existing = by_path.get(parent)
            if existing is None:
                by_path[parent] = LayerEntry(parent, "dir", 0o755)
            elif existing.kind != "dir":
                raise LayerEntryError(path, f"its parent {parent!r} is a {existing.kind}")
            else:
                break  # an existing directory: its own parents were or will be handled
            parent = parent.rpartition("/")[0]
    return sorted(by_path.values(), key=lambda e: _encode(e.path).split(b"/"))


def _validate(entry: LayerEntry) -> None:
    path = entry.path
    if entry.kind not in _KINDS:
        raise LayerEntryError(path, f"unknown kind {entry.kind!r}")
    if not path or path.startswith("/") or path.endswith("/"):
        raise LayerEntryError(path, "path must be relative, without a leading or trailing '/'")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts) or "\0" in path:
        raise LayerEntryError(path, "path has an empty, '.' or '..' component or a NUL")
    if not 0 <= entry.mode <= 0o7777:
        raise LayerEntryError(path, f"mode {entry.mode:#o} is not a permission mode")
    if entry.kind == "file":
        if entry.size < 0:
            raise LayerEntryError(path, f"negative size {entry.size}")
        if entry.size and entry.open is None:
            raise LayerEntryError(path, "a file with content needs an opener")
    elif entry.kind == "symlink" and (not entry.target or "\0" in entry.target):
        raise LayerEntryError(path, "a symlink needs a target without NUL")


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    """(prefix, name) for ustar, taking the longest prefix that fits; None if nothing fits."""
    if len(name) <= 100:
        return b"", name
    cut = name.rfind(b"/", 0, min(len(name) - 1, 156))
    while cut > 0:
        if cut <= 155 and len(name) - cut - 1 <= 100:
            return name[:cut], name[cut + 1 :]
        cut = name.rfind(b"/", 0, cut)
    return None


def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n = len(str(n).encode()) + len(body)
    return str(n).encode() + body


def _header(name: bytes, entry: LayerEntry, size: int, mtime: int) -> bytes:
    """The header block(s) of one entry: an optional PAX header, then ustar."""
    link = _encode(entry.target) if entry.kind == "symlink" else b""
    pax: dict[bytes, bytes] = {}
    split = _split_ustar(name) if name.isascii() else None
    if split is None:
        pax[b"path"] = name
        split = b"", _fallback(name)
    if len(link) > 100 or not link.isascii():
        pax[b"linkpath"] = link
        link = _fallback(link)
    if size > _MAX_OCTAL_11:
        pax[b"size"] = str(size).encode()
    out = b""
    if pax:
        if any(not _is_utf8(v) for v in pax.values()):
            pax[b"hdrcharset"] = b"BINARY"
        records = b"".join(_pax_record(k, pax[k]) for k in sorted(pax))
        out += _ustar(b"", _PAX_NAME, b"x", 0o644, len(records), mtime, b"")
        out += records + bytes(-len(records) % BLOCK)
    prefix, short = split
    ustar_size = 0 if size > _MAX_OCTAL_11 else size
    kind = _KINDS[entry.kind]
    return out + _ustar(prefix, short, kind, entry.mode, ustar_size, mtime, link, entry.owner)


def _fallback(raw: bytes) -> bytes:
    """What the ustar field holds when PAX carries the real value: ASCII, at most 100 bytes."""
    return bytes(c if 0x20 <= c < 0x7F else 0x5F for c in raw[:100])


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _ustar(
    prefix: bytes,
    name: bytes,
    typeflag: bytes,
    mode: int,
    size: int,
    mtime: int,
    link: bytes,
    owner: tuple[int, int] = (0, 0),
) -> bytes:
    zero8 = b"0000000\0"
    block = b"".join(
        (
            name.ljust(100, b"\0"),
            b"%07o\0" % mode,
            b"%07o\0" % owner[0],  # uid
            b"%07o\0" % owner[1],  # gid
            b"%011o\0" % size,
            b"%011o\0" % mtime,
            b" " * 8,  # checksum placeholder
            typeflag,
            link.ljust(100, b"\0"),
            b"ustar\x0000",
            bytes(32),  # uname
            bytes(32),  # gname
            zero8,  # devmajor
            zero8,  # devminor
            prefix.ljust(155, b"\0"),
            bytes(12),
        )
    )
    checksum = b"%06o\0 " % sum(block)
    return block[:148] + checksum + block[156:]
