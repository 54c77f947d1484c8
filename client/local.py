"""The in-process backend: runs store verbs against ``seal.store`` directly.

The daemon issue puts a gRPC backend with the same methods in front of this;
the CLI and its outputs stay the same.  Results are plain dicts shaped as the
``--json`` output.  Store errors become ClientErrors here, in one table.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from seal.store import Digest, Store, errors

from . import exitcodes
from .errors import ClientError

_CHUNK = 1 << 20

# One table: store error class -> exit code.  Order matters (first match wins).
_EXIT_CODES: list[tuple[type[errors.StoreError], int]] = [
    (errors.InvalidDigest, exitcodes.BAD_INPUT),
    (errors.InvalidName, exitcodes.BAD_INPUT),
    (errors.UnsupportedFile, exitcodes.BAD_INPUT),
    (errors.NotATree, exitcodes.BAD_INPUT),
    (errors.ObjectNotFound, exitcodes.NOT_FOUND),
    (errors.StoreMissing, exitcodes.NOT_FOUND),
    (errors.CorruptObject, exitcodes.DATA_LOSS),
    (errors.StoreLocked, exitcodes.BUSY),
    (errors.StoreVersionError, exitcodes.INCOMPATIBLE),
    (errors.StoreError, exitcodes.BAD_INPUT),
]


def exit_code_for(exc: errors.StoreError) -> int:
    for cls, code in _EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return exitcodes.FAILED


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Turn store and OS errors into ClientErrors."""
    try:
        yield
    except errors.StoreError as exc:
        raise ClientError(exc.message, hint=exc.hint, reason=exc.reason,
                          exit_code=exit_code_for(exc)) from exc
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise ClientError(f"{where}{exc.strerror or exc}", reason="os-error",
                          exit_code=exitcodes.BAD_INPUT) from exc


def parse_digest(text: str) -> Digest:
    with translated():
        return Digest.parse(text)


class LocalBackend:
    """Store verbs run in this process; opens the store per call (read-only for reads)."""

    def __init__(self, root: Path):
        self.root = root

    @contextlib.contextmanager
    def _open(self, *, readonly: bool) -> Iterator[Store]:
        with translated(), Store.open(self.root, readonly=readonly) as store:
            yield store

    def add(self, path: str, root: str | None = None) -> dict:
        with self._open(readonly=False) as store:
            digest = store.put_path(path, root=root)
            info = store.stat(digest)
        return {"digest": str(digest), "kind": info.kind.label, "size": info.size,
                "root": root}

    def cat(self, digest: str) -> Iterator[bytes]:
        d = parse_digest(digest)
        with self._open(readonly=True) as store, store.open_blob(d) as f:
            while chunk := f.read(_CHUNK):
                yield chunk

    def ls(self, digest: str) -> list[dict]:
        d = parse_digest(digest)
        with self._open(readonly=True) as store:
            return [
                {
                    "path": os.fsdecode(e.path),
                    "kind": e.kind,
                    "mode": _mode(e.kind, e.executable),
                    "size": e.size,
                    "digest": str(e.digest) if e.digest else None,
                    "target": os.fsdecode(e.target) if e.target is not None else None,
                }
                for e in store.walk(d)
            ]

    def checkout(self, digest: str, dest: str) -> dict:
        d = parse_digest(digest)
        with self._open(readonly=True) as store:
            count = store.checkout(d, dest)
        return {"digest": str(d), "path": os.path.abspath(dest), "entries": count}

    def stat(self, digest: str) -> dict:
        d = parse_digest(digest)
        with self._open(readonly=True) as store:
            info = store.stat(d)
            roots = sorted(n for n, r in store.roots().items() if r == d)
        return {"digest": str(info.digest), "kind": info.kind.label, "size": info.size,
                "executable_copy": info.executable_copy, "roots": roots}

    def verify(self) -> dict:
        with self._open(readonly=True) as store:
            r = store.verify()
        return {
            "ok": r.ok,
            "checked": r.checked,
            "bytes_checked": r.bytes_checked,
            "missing": [str(d) for d in r.missing],
            "corrupt": [str(d) for d in r.corrupt],
            "dangling": [{"tree": str(t), "child": str(c)} for t, c in r.dangling],
            "orphaned": r.orphaned,
        }

    def gc(self, dry_run: bool) -> dict:
        with self._open(readonly=False) as store:
            r = store.gc(dry_run=dry_run)
        return {
            "dry_run": r.dry_run,
            "live": r.live,
            "objects": [str(d) for d in r.objects],
            "orphans": r.orphans,
            "trees": [str(d) for d in r.trees],
            "bytes_freed": r.bytes_freed,
        }

    def roots(self) -> dict[str, str]:
        try:
            with self._open(readonly=True) as store:
                return {name: str(d) for name, d in sorted(store.roots().items())}
        except ClientError as exc:
            if exc.reason == "store-missing":
                return {}
            raise

    def root_add(self, name: str, digest: str) -> dict:
        d = parse_digest(digest)
        with self._open(readonly=False) as store:
            store.add_root(name, d)
        return {"name": name, "digest": str(d)}

    def root_rm(self, name: str) -> dict:
        with self._open(readonly=False) as store:
            store.remove_root(name)
        return {"name": name}


def _mode(kind: str, executable: bool) -> str:
    if kind == "dir":
        return "040000"
    if kind == "symlink":
        return "120000"
    return "100755" if executable else "100644"
