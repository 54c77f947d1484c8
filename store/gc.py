"""Garbage collection: keep what roots and temp roots reach, sweep the rest.

A temp root protects everything it reaches, as a root does: holding a tree's
digest keeps the whole tree.

Mark runs without blocking writers; every digest a writer holds from the
moment gc starts stays protected until gc ends, so an object that is rooted
during the mark cannot be swept.  The sweep itself runs under the store's
hold guard: a writer holding a digest either got it before the sweep (and
the sweep skips it) or after (and writes it anew).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .digest import Digest
from .scan import materialized_trees, object_files

if TYPE_CHECKING:
    from .store import Store


@dataclass
class GcReport:
    """What gc removed (or would remove, with ``dry_run``)."""

    dry_run: bool
    live: int = 0
    objects: list[Digest] = field(default_factory=list)  # recorded, unreachable
    orphans: list[str] = field(default_factory=list)  # files with no record
    trees: list[Digest] = field(default_factory=list)  # materialized trees removed
    bytes_freed: int = 0


def live_set(store: Store) -> set[Digest]:
    """Everything reachable from the named roots."""
    return store.closure(*store.roots().values(), missing_ok=True)


def collect(store: Store, *, dry_run: bool = False) -> GcReport:
    report = GcReport(dry_run=dry_run)
    with store._gc_session() as protected:
        live = live_set(store)
        report.live = len(live)
        dead: dict[Digest, int] = {}
        recorded: set[Digest] = set()
        exec_copies: set[Digest] = set()  # recorded as having a 0555 inode
        for rec in store.db.iter_objects():
            recorded.add(rec.digest)
            if rec.has_exec:
                exec_copies.add(rec.digest)
            if rec.digest not in live:
                dead[rec.digest] = rec.size
        with store._sweep_guard():
            held = store.closure(*protected(), missing_ok=True)
            keep = live | held
            doomed = {d: s for d, s in dead.items() if d not in keep}
            orphan_files = []
            for path, digest, exe in object_files(store.layout):
                # recorded after the snapshot implies held since gc began, so in keep
                if digest is None or (
                    digest not in held
                    and digest not in doomed
                    and (digest not in recorded or (exe and digest not in exec_copies))
                ):
                    orphan_files.append(path)
            trees = [
                (p, d) for p, d in materialized_trees(store.layout) if d is None or d not in keep
            ]
            report.objects = sorted(doomed)
            report.orphans = sorted(orphan_files)
            report.trees = sorted(d for _, d in trees if d is not None)
            report.bytes_freed = sum(doomed.values())
            for path in orphan_files:
                with contextlib.suppress(FileNotFoundError):
                    report.bytes_freed += os.lstat(path).st_size
            if not dry_run:
                _sweep(store, doomed, orphan_files, trees)
    return report


def _sweep(store: Store, doomed, orphan_files, trees) -> None:
    # Records go first: a crash part-way leaves unrecorded files (orphans), never
    # records of deleted files.
    store.db.forget(doomed)
    for path, _digest in trees:
        shutil.rmtree(path, ignore_errors=True)
    layout = store.layout
    for digest in doomed:
        for exe in (False, True):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(layout.object_path(digest, exe))
    for path in orphan_files:
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except FileNotFoundError:
            pass
