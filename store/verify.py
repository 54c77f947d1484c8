"""Check the store both ways: every record has a complete, correct file; every file a record."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .db import ObjectRecord
from .digest import Digest
from .scan import materialized_trees, object_files

if TYPE_CHECKING:
    from .store import Store

_CHUNK = 1 << 20


@dataclass
class VerifyReport:
    checked: int = 0
    bytes_checked: int = 0
    missing: list[Digest] = field(default_factory=list)  # record, no (complete) file
    corrupt: list[Digest] = field(default_factory=list)  # file does not hash to its name
    dangling: list[tuple[Digest, Digest]] = field(default_factory=list)  # (tree, child absent)
    orphaned: list[str] = field(default_factory=list)  # files with no record (gc removes)

    @property
    def ok(self) -> bool:
        """True when nothing is missing or corrupt (orphans are harmless leftovers)."""
        return not (self.missing or self.corrupt or self.dangling)


def _hash_file(path: str) -> tuple[bytes, int] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        h = hashlib.sha256()
        size = 0
        buf = bytearray(_CHUNK)
        while n := os.readv(fd, [buf]):
            h.update(memoryview(buf)[:n])
            size += n
        return h.digest(), size
    finally:
        os.close(fd)


def _check(layout, rec: ObjectRecord) -> tuple[ObjectRecord, str | None]:
    """Return (record, problem) with problem in {None, 'missing', 'corrupt'}."""
    for exe in (False, True) if rec.has_exec else (False,):
        result = _hash_file(layout.object_path(rec.digest, exe))
        if result is None:
            return rec, "missing"
        digest, size = result
        if digest != rec.digest.raw or size != rec.size:
            return rec, "corrupt"
    return rec, None


def verify(store: Store, *, jobs: int = 4, on_progress=None) -> VerifyReport:
    report = VerifyReport()
    layout = store.layout
    records = list(store.db.iter_objects())
    recorded = {rec.digest for rec in records}
    exec_copies = {rec.digest for rec in records if rec.has_exec}
    with ThreadPoolExecutor(max_workers=jobs) as pool:  # hashlib releases the GIL
        for rec, problem in pool.map(lambda r: _check(layout, r), records, chunksize=64):
            report.checked += 1
            report.bytes_checked += rec.size
            if on_progress is not None and (
                report.checked % 256 == 0 or report.checked == len(records)
            ):
                on_progress(report.checked, len(records))
            if problem == "missing":
                report.missing.append(rec.digest)
            elif problem == "corrupt":
                report.corrupt.append(rec.digest)
    for tree, children in store.db.iter_refs():
        report.dangling.extend((tree, c) for c in children if c not in recorded)
    for path, digest, exe in object_files(layout):
        if digest is None or digest not in (exec_copies if exe else recorded):
            report.orphaned.append(path)
    for path, digest in materialized_trees(layout):
        if digest is None or digest not in recorded:
            report.orphaned.append(path)
    report.missing.sort()
    report.corrupt.sort()
    report.dangling.sort()
    report.orphaned.sort()
    return report
