"""Tree listings: a tree sent as its directories' encodings, checked before it is recorded.

The daemon's PutTree checks a listing when the upload opens (to tell the
client which blobs to send) and ``Store.put_listing`` records it at commit;
both use ``check_listing`` so the rules live in one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .db import Kind
from .digest import Digest
from .errors import ListingIncomplete
from .tree import Directory, MalformedTree

if TYPE_CHECKING:
    from .store import Store


@dataclass
class Listing:
    """A checked tree listing: its directories and the file blobs they name."""

    root: Digest
    root_size: int  # the length of the root's encoding
    encodings: dict[Digest, bytes]  # the directories sent (under the root), by digest
    directories: dict[Digest, Directory]  # the same, decoded
    blobs: dict[Digest, int]  # every file blob of the listed directories -> size
    stored_subtrees: list[Digest]  # referenced directories the store already holds
    executables: set[Digest] = field(default_factory=set)  # blobs used as executables


def check_listing(
    store: Store, root: Digest, root_size: int, encodings: Iterable[bytes]
) -> Listing:
    """Decode and cross-check a listing; record nothing.

    ``root_size`` is the size the sender claims for the root's encoding (0:
    unknown).  Raises MalformedTree (a bad encoding, or sizes that disagree)
    and ListingIncomplete (a referenced directory neither sent nor stored as
    a tree).
    """
    listing: dict[Digest, bytes] = {}
    decoded: dict[Digest, Directory] = {}
    for data in encodings:
        digest = Digest.of_bytes(data)
        if digest in decoded:
            continue
        try:
            decoded[digest] = Directory.decode(data)
        except MalformedTree as exc:
            raise MalformedTree(f"directory {digest}: {exc.message}") from None
        listing[digest] = bytes(data)
    blobs: dict[Digest, int] = {}
    executables: set[Digest] = set()
    stored: list[Digest] = []
    absent: list[Digest] = []
    sizes = {root: root_size} if root_size else {}
    root_actual = 0
    todo, seen = [root], set()
    while todo:
        digest = todo.pop()
        if digest in seen:
            continue
        seen.add(digest)
        expected = sizes.get(digest)
        if digest in decoded:
            actual = len(listing[digest])
        else:
            record = store.db.get(digest)
            if record is None or Kind.TREE not in record.kind:
                absent.append(digest)
                continue
            stored.append(digest)
            actual = record.size
        if digest == root:
            root_actual = actual
        if expected is not None and expected != actual:
            raise MalformedTree(
                f"directory {digest} is listed with size {expected} but its encoding has "
                f"{actual} bytes"
            )
        if digest not in decoded:
            continue
        directory = decoded[digest]
        for f in directory.files:
            if blobs.setdefault(f.digest, f.size) != f.size:
                raise MalformedTree(
                    f"blob {f.digest} is listed with sizes {blobs[f.digest]} and {f.size}"
                )
            if f.executable:
                executables.add(f.digest)
        for d in directory.directories:
            if sizes.setdefault(d.digest, d.size) != d.size:
                raise MalformedTree(
                    f"directory {d.digest} is listed with sizes {sizes[d.digest]} and {d.size}"
                )
            todo.append(d.digest)
    if absent:
        raise ListingIncomplete(sorted(absent))
    kept = [d for d in seen if d in listing]
    return Listing(
        root,
        root_actual,
        {d: listing[d] for d in kept},
        {d: decoded[d] for d in kept},
        blobs,
        stored,
        executables,
    )


def check_blob_sizes(store: Store, blobs: dict[Digest, int]) -> None:
    """Raise MalformedTree if a recorded blob's size differs from what the tree says."""
    for digest, size in blobs.items():
        record = store.db.get(digest)
        if record is not None and record.size != size:
            raise MalformedTree(
                f"the tree lists blob {digest} with size {size}, but it has {record.size} bytes"
            )
