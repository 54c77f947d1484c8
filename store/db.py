"""LMDB metadata: which objects exist, what they reference, and the named roots.

Sub-databases (keys are raw 32-byte digests unless said otherwise):

- ``objects``: digest -> size (u64), kinds (u8 bit mask), flags (u8; bit 0 = an executable
  inode exists beside the plain one)
- ``refs``: digest -> the concatenated raw digests it references (trees only)
- ``roots``: UTF-8 name -> digest

A batch of many objects is recorded in one write transaction.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import lmdb

from .digest import Digest

_RECORD = struct.Struct("<QBB")
FLAG_EXEC = 1
MAP_SIZE = 1 << 40  # address space only; the file grows as needed
_DB_NAMES = (b"objects", b"refs", b"roots")


class Kind(enum.IntFlag):
    """How an object is used; one digest can be both (the empty file and the empty
    tree share ``sha256:e3b0...``, and any file may hold a valid tree encoding)."""

    BLOB = 1
    TREE = 2

    @property
    def label(self) -> str:
        return "tree" if Kind.TREE in self else "blob"


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    digest: Digest
    size: int
    kind: Kind
    flags: int = 0

    @property
    def has_exec(self) -> bool:
        return bool(self.flags & FLAG_EXEC)

    def pack(self) -> bytes:
        return _RECORD.pack(self.size, self.kind, self.flags)

    @classmethod
    def unpack(cls, raw: bytes, value: bytes) -> ObjectRecord:
        size, kind, flags = _RECORD.unpack(value)
        return cls(Digest(bytes(raw)), size, Kind(kind), flags)


class MetaDB:
    """The store's LMDB environment; thread-safe (LMDB serializes writers)."""

    def __init__(self, path: Path, *, readonly: bool):
        self.readonly = readonly
        self.env = lmdb.open(
            str(path),
            map_size=MAP_SIZE,
            max_dbs=16,
            max_readers=512,
            readonly=readonly,
            readahead=False,
            lock=True,
        )
        self._dbs = {}
        for name in _DB_NAMES:
            try:
                self._dbs[name] = self.env.open_db(name, create=not readonly)
            except lmdb.NotFoundError:
                self._dbs[name] = None  # an empty store opened read-only
        self.objects = self._dbs[b"objects"]
        self.refs = self._dbs[b"refs"]
        self.roots = self._dbs[b"roots"]

    def close(self) -> None:
        self.env.close()

    # -- reads --------------------------------------------------------------------------
    def get(self, digest: Digest) -> ObjectRecord | None:
        if self.objects is None:
            return None
        with self.env.begin(db=self.objects) as txn:
            value = txn.get(digest.raw)
        return None if value is None else ObjectRecord.unpack(digest.raw, value)

    def refs_of(self, digest: Digest) -> list[Digest]:
        if self.refs is None:
            return []
        with self.env.begin(db=self.refs) as txn:
            value = txn.get(digest.raw)
        return _split(value) if value else []

    def closure(self, digests: Iterable[Digest]) -> tuple[set[Digest], list[Digest]]:
        """Everything reachable from ``digests`` and, of that, what has no record; one read."""
        seen: set[Digest] = set()
        missing: list[Digest] = []
        todo = list(digests)
        if self.objects is None:
            return set(todo), todo
        with self.env.begin() as txn:
            objects, refs = txn.cursor(db=self.objects), txn.cursor(db=self.refs)
            while todo:
                d = todo.pop()
                if d in seen:
                    continue
                seen.add(d)
                if objects.get(d.raw) is None:
                    missing.append(d)
                    continue
                value = refs.get(d.raw)
                if value:
                    todo.extend(_split(value))
        return seen, missing

    def iter_objects(self) -> Iterator[ObjectRecord]:
        if self.objects is None:
            return
        with self.env.begin(db=self.objects) as txn:
            for raw, value in txn.cursor():
                yield ObjectRecord.unpack(raw, value)

    def iter_refs(self) -> Iterator[tuple[Digest, list[Digest]]]:
        if self.refs is None:
            return
        with self.env.begin(db=self.refs) as txn:
            for raw, value in txn.cursor():
                yield Digest(bytes(raw)), _split(value)

    def roots_map(self) -> dict[str, Digest]:
        if self.roots is None:
            return {}
        with self.env.begin(db=self.roots) as txn:
            return {k.decode(): Digest(bytes(v)) for k, v in txn.cursor()}

    def count(self) -> int:
        if self.objects is None:
            return 0
        with self.env.begin(db=self.objects) as txn:
            return txn.stat(self.objects)["entries"]

    # -- writes -------------------------------------------------------------------------
    def record(
        self,
        records: Iterable[ObjectRecord],
        refs: dict[Digest, list[Digest]],
        roots: dict[str, Digest] | None = None,
    ) -> None:
        """Record a batch of objects, what its trees reference and new roots in one transaction."""
        with self.env.begin(write=True) as txn:
            for rec in records:
                txn.put(rec.digest.raw, rec.pack(), db=self.objects)
            for digest, children in refs.items():
                txn.put(digest.raw, b"".join(c.raw for c in children), db=self.refs)
            for name, digest in (roots or {}).items():
                txn.put(name.encode(), digest.raw, db=self.roots)

    def forget(self, digests: Iterable[Digest]) -> None:
        """Delete object and refs records in one transaction."""
        with self.env.begin(write=True) as txn:
            for d in digests:
                txn.delete(d.raw, db=self.objects)
                txn.delete(d.raw, db=self.refs)

    def set_root(self, name: str, digest: Digest) -> None:
        with self.env.begin(write=True, db=self.roots) as txn:
            txn.put(name.encode(), digest.raw)

    def remove_root(self, name: str) -> bool:
        with self.env.begin(write=True, db=self.roots) as txn:
            return txn.delete(name.encode())


def _split(value: bytes) -> list[Digest]:
    return [Digest(bytes(value[i : i + 32])) for i in range(0, len(value), 32)]
