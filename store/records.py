"""Named record tables beside the object metadata, in the same LMDB environment.

The store knows nothing of what the records mean: the daemon keeps its
realisations, reproducibility checks and build history here (DESIGN.md §3).
Records do not keep objects alive; whoever reads one checks that the objects
it names are still present.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import lmdb

from .db import MetaDB

TABLES = frozenset({b"realisations", b"checks", b"builds", b"sources", b"fetches"})


class RecordTable:
    """One LMDB sub-database of byte keys and byte values; thread-safe."""

    def __init__(self, db: MetaDB, name: str):
        raw = name.encode()
        if raw not in TABLES:
            raise ValueError(f"unknown record table {name!r}")
        self.env = db.env
        self.name = name
        try:
            self._db = self.env.open_db(raw, create=not db.readonly)
        except lmdb.NotFoundError:
            self._db = None  # a read-only view of a store that never wrote one

    def get(self, key: bytes) -> bytes | None:
        if self._db is None:
            return None
        with self.env.begin(db=self._db) as txn:
            value = txn.get(key)
        return None if value is None else bytes(value)

    def put(self, key: bytes, value: bytes) -> None:
        with self.env.begin(write=True, db=self._db) as txn:
            txn.put(key, value)

    def put_many(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Store every (key, value) in one transaction (one sync, not one per record)."""
        with self.env.begin(write=True, db=self._db) as txn:
            for key, value in items:
                txn.put(key, value)

    def append(self, make: Callable[[int], bytes]) -> int:
        """Store ``make(n)`` under the next integer key ``n`` (8 bytes, big-endian); return ``n``.

        The value is made inside the write transaction, so it may hold its own number.
        """
        with self.env.begin(write=True, db=self._db) as txn:
            cursor = txn.cursor()
            number = (int.from_bytes(cursor.key(), "big") if cursor.last() else 0) + 1
            txn.put(number.to_bytes(8, "big"), make(number))
        return number

    def replace(self, number: int, value: bytes) -> None:
        self.put(number.to_bytes(8, "big"), value)

    def delete(self, key: bytes) -> bool:
        with self.env.begin(write=True, db=self._db) as txn:
            return txn.delete(key)

    def items(self, *, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        if self._db is None:
            return
        with self.env.begin(db=self._db) as txn:
            cursor = txn.cursor()
            if reverse:
                if not cursor.last():
                    return
                while True:
                    yield bytes(cursor.key()), bytes(cursor.value())
                    if not cursor.prev():
                        return
            else:
                for key, value in cursor:
                    yield bytes(key), bytes(value)
