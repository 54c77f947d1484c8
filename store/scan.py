"""Enumerate what is on disk under objects/ and trees/ (for gc and verify)."""

from __future__ import annotations

import os
from collections.abc import Iterator

from .digest import Digest
from .layout import EXEC_SUFFIX, Layout


def object_files(layout: Layout) -> Iterator[tuple[str, Digest | None, bool]]:
    """Yield (path, digest or None when the name is not an object name, executable)."""
    for fan in os.scandir(layout.objects):
        if not fan.is_dir(follow_symlinks=False):
            yield fan.path, None, False
            continue
        for entry in os.scandir(fan.path):
            name = entry.name
            exe = name.endswith(EXEC_SUFFIX)
            hexpart = name[: -len(EXEC_SUFFIX)] if exe else name
            try:
                digest = Digest.from_hex(hexpart)
            except ValueError:
                yield entry.path, None, exe
                continue
            if hexpart[:2] != fan.name:
                digest = None
            yield entry.path, digest, exe


def materialized_trees(layout: Layout) -> Iterator[tuple[str, Digest | None]]:
    if not layout.trees.is_dir():
        return
    for entry in os.scandir(layout.trees):
        try:
            yield entry.path, Digest.from_hex(entry.name)
        except ValueError:
            yield entry.path, None
