"""The Store: one object a process opens to read or write a store directory.

>>> import tempfile
>>> with Store.open(tempfile.mkdtemp()) as store:
...     d = store.put_bytes(b"hello")
...     store.get_bytes(d)
b'hello'
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import shutil
import stat
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from . import checkout as _checkout
from . import gc as _gc
from . import ingest
from . import verify as _verify
from .batch import Batch
from .db import Kind, MetaDB, ObjectRecord
from .digest import Digest
from .errors import (
    CorruptObject,
    IncompleteTree,
    ListingIncomplete,
    NotATree,
    ObjectNotFound,
    StoreError,
    StoreMissing,
    StoreVersionError,
    UnsupportedFile,
)
from .layout import FORMAT_VERSION, Layout, current_umask, default_root
from .listing import Listing, check_blob_sizes, check_listing
from .lock import WriterLock
from .records import TABLES as RECORD_TABLES
from .records import RecordTable
from .tree import Directory


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    digest: Digest
    size: int
    kind: Kind
    executable_copy: bool


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of a tree walk; ``path`` is relative, bytes-exact."""

    path: bytes
    kind: str  # "file", "dir" or "symlink"
    digest: Digest | None
    size: int
    executable: bool = False
    target: bytes | None = None


class Store:
    """A content-addressed store on disk.

    A writable store holds the writer lock for its whole life; a read-only one
    takes no lock and may be opened while a writer runs.
    """

    def __init__(self, layout: Layout, db: MetaDB, lock: WriterLock | None):
        self.layout = layout
        self.db = db
        self._lock = lock
        self._guard = threading.Lock()
        self._held: Counter[Digest] = Counter()
        self._gc_protect: set[Digest] | None = None
        self._gc_mutex = threading.Lock()
        self._tmp_counter = itertools.count()
        self._tmp_dir = ""
        self._umask = current_umask()
        # Every record table is opened here, before other threads use the store: py-lmdb's
        # open_db can wait for LMDB's writer lock holding the GIL, so opening one while
        # another thread writes deadlocks (two first Fetch calls at once did).
        self._tables = {
            name.decode(): RecordTable(db, name.decode()) for name in sorted(RECORD_TABLES)
        }
        if lock is not None:
            self._tmp_dir = str(layout.tmp / f"w{os.getpid()}")
            shutil.rmtree(layout.tmp, ignore_errors=True)  # leftovers of dead writers
            os.makedirs(self._tmp_dir)

    # -- opening ------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | os.PathLike | None = None, *, readonly: bool = False) -> Store:
        """Open (and, when writable, create) the store at ``root``.

        Raises StoreLocked when another process writes, StoreVersionError when
        the format is newer than this seal, StoreMissing for a read-only open of
        a store that does not exist.
        """
        layout = Layout(root if root is not None else default_root())
        if readonly:
            if not layout.version_file.exists():
                raise StoreMissing(
                    f"no store at {layout.root}", hint="add something to it first, or pass --store"
                )
            _check_version(layout)
            return cls(layout, MetaDB(layout.db, readonly=True), None)
        try:
            layout.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create store at {layout.root}: {exc.strerror}") from None
        if layout.root.exists() and not layout.root.is_dir():
            raise StoreError(f"{layout.root} is not a directory")
        if layout.version_file.exists():
            _check_version(layout)
        else:
            _check_empty(layout)  # before the lock file is made: leave foreign dirs alone
        lock = WriterLock(layout.lock, layout.root)
        lock.acquire()
        try:
            if not layout.version_file.exists():
                _check_empty(layout)
                # VERSION first: a creation cut short is completed by the next open
                tmp = layout.root / "VERSION.tmp"
                tmp.write_text(f"{FORMAT_VERSION}\n")
                os.replace(tmp, layout.version_file)
            _check_version(layout)
            layout.create()
            return cls(layout, MetaDB(layout.db, readonly=False), lock)
        except BaseException:
            lock.release()
            raise

    def close(self) -> None:
        self.db.close()
        if self._lock is not None:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
            self._lock.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def root(self) -> Path:
        return self.layout.root

    @property
    def writable(self) -> bool:
        return self._lock is not None

    # -- writing ------------------------------------------------------------------------
    @contextlib.contextmanager
    def batch(self, lease: Lease | None = None) -> Iterator[Batch]:
        """A write batch committed (one syncfs, one transaction) when the block ends.

        With ``lease``, what the batch touched stays held by the lease afterwards.
        """
        self._require_writable()
        batch = Batch(self, lease)
        try:
            yield batch
        except BaseException:
            batch.release()
            raise
        batch.commit()

    def put_bytes(self, data: bytes) -> Digest:
        with self.batch() as b:
            return b.add_bytes(data)

    def put_stream(self, stream: BinaryIO) -> Digest:
        with self.batch() as b:
            return b.add_stream(stream)[0]

    def put_file(self, path: str | os.PathLike) -> Digest:
        with self.batch() as b:
            return ingest.ingest_file(b, os.fsencode(path))[0]

    def put_hashed_file(self, path: str | os.PathLike, digest: Digest, size: int) -> Digest:
        """Add a file whose digest the caller computed while writing it: renamed, not copied.

        See ``ingest.ingest_hashed_file``; the file is gone afterwards.
        """
        with self.batch() as b:
            return ingest.ingest_hashed_file(b, os.fsencode(path), digest, size)

    def put_tree(self, path: str | os.PathLike) -> Digest:
        with self.batch() as b:
            return ingest.ingest_tree(b, os.fsencode(path))[0]

    def put_path(self, path: str | os.PathLike, *, root: str | None = None) -> Digest:
        """Add a file or a directory (never following a symlink); optionally root it."""
        self._require_writable()
        p = os.fsencode(path)
        try:
            mode = os.lstat(p).st_mode
        except FileNotFoundError:
            raise UnsupportedFile(os.fsdecode(p), "no such file or directory") from None
        if stat.S_ISLNK(mode):
            raise UnsupportedFile(
                os.fsdecode(p), "is a symlink; add its target or the directory that holds it"
            )
        if root is not None:
            _check_root_name(root)
        with self.batch() as b:
            if stat.S_ISDIR(mode):
                digest = ingest.ingest_tree(b, p)[0]
            else:
                digest = ingest.ingest_file(b, p)[0]
            if root is not None:
                b.set_root(root, digest)  # recorded in the batch's own transaction
        return digest

    def put_open(self, fd: int, *, root: str | None = None, name: str = "") -> tuple[Digest, Kind]:
        """Add the regular file or directory open as ``fd`` (a descriptor a client handed over).

        A directory is walked through ``/proc/<this pid>/fd/<fd>/``, a name the
        ingest workers (children of this process, same user) can open too;
        errors name files under ``name`` instead.  The descriptor stays open.
        """
        self._require_writable()
        mode = os.fstat(fd).st_mode
        if root is not None:
            _check_root_name(root)
        base = f"/proc/{os.getpid()}/fd/{fd}"
        try:
            with self.batch() as b:
                if stat.S_ISDIR(mode):
                    digest, kind = ingest.ingest_tree(b, os.fsencode(base + "/"))[0], Kind.TREE
                else:
                    os.lseek(fd, 0, os.SEEK_SET)
                    digest, kind = ingest.ingest_open_file(b, fd, name or base)[0], Kind.BLOB
                if root is not None:
                    b.set_root(root, digest)
        except UnsupportedFile as exc:
            raise _renamed(exc, base, name) from None
        return digest, kind

    def put_directories(
        self,
        encodings: Iterable[bytes],
        root: Digest,
        *,
        root_name: str | None = None,
        lease: Lease | None = None,
    ) -> Digest:
        """Record a tree sent as its directories' encodings (see ``put_listing``)."""
        return self.put_listing(
            check_listing(self, root, 0, encodings), root_name=root_name, lease=lease
        )

    def put_listing(
        self, listing: Listing, *, root_name: str | None = None, lease: Lease | None = None
    ) -> Digest:
        """Record a checked tree listing (the daemon's CommitTree).

        Every directory under the root must be in the listing or already
        recorded as a tree, and every file blob must be recorded with the size
        the tree gives it; otherwise IncompleteTree (or ListingIncomplete, for
        directories) lists what is missing and nothing is recorded.  Blobs used
        as executables get their 0555 inode.  With ``root_name`` the tree is
        rooted in the same transaction.
        """
        self._require_writable()
        if root_name is not None:
            _check_root_name(root_name)
        with self.batch(lease) as b:
            missing = self.hold_listing(listing, b.hold_existing)
            if missing:
                raise IncompleteTree(sorted(missing))
            for digest in sorted(listing.executables):
                b.add_exec_copy(digest)
            for digest, data in listing.encodings.items():
                b.add_bytes(data, kind=Kind.TREE, refs=listing.directories[digest].children())
            if root_name is not None:
                b.set_root(root_name, listing.root)
        return listing.root

    def hold_listing(self, listing: Listing, hold: Callable[[list[Digest]], None]) -> list[Digest]:
        """Hold (with ``hold``) what a listing builds on; return the blobs the store lacks.

        Held before looking, so whatever is present afterwards stays present.
        Raises ListingIncomplete if a gc freed a stored subtree first, and
        MalformedTree if a stored blob's size is not the one the tree gives.
        """
        hold(list(listing.blobs))
        for subtree in listing.stored_subtrees:
            closure = self.closure(subtree, missing_ok=True)
            hold(list(closure))
            if self.find_missing(closure):
                raise ListingIncomplete([subtree])
        check_blob_sizes(self, listing.blobs)  # absent blobs are skipped
        return self.find_missing(listing.blobs)

    def find_missing(self, digests: Iterable[Digest]) -> list[Digest]:
        """The digests not recorded in the store, each once, in the order given."""
        out, seen = [], set()
        for d in digests:
            if d not in seen:
                seen.add(d)
                if self.db.get(d) is None:
                    out.append(d)
        return out

    def lease(self) -> Lease:
        """Temp roots for a client's multi-call upload: gc keeps what the lease holds."""
        return Lease(self)

    # -- reading ------------------------------------------------------------------------
    def record(self, digest: Digest) -> ObjectRecord:
        rec = self.db.get(digest)
        if rec is None:
            raise ObjectNotFound(digest)
        return rec

    def has(self, digest: Digest) -> bool:
        return self.db.get(digest) is not None

    def stat(self, digest: Digest) -> ObjectInfo:
        rec = self.record(digest)
        return ObjectInfo(rec.digest, rec.size, rec.kind, rec.has_exec)

    def open_blob(self, digest: Digest) -> BinaryIO:
        self.record(digest)
        return self._open_recorded(digest)

    def check_blob(self, digest: Digest, label: str = "") -> None:
        """Hash a stored blob again; ``CorruptObject`` (named ``label``) if its bytes changed.

        For a reader about to trust the bytes (a build input): the store itself
        checks only at ingest and in ``verify``.
        """
        h = hashlib.sha256()
        with self.open_blob(digest) as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        if h.digest() != digest.raw:
            raise CorruptObject(label or str(digest), f"sha256:{h.hexdigest()}")

    def get_bytes(self, digest: Digest) -> bytes:
        with self.open_blob(digest) as f:
            return f.read()

    def _open_recorded(self, digest: Digest) -> BinaryIO:
        """Open the file of a digest whose record the caller has already looked up."""
        try:
            return open(self.layout.object_path(digest), "rb")
        except FileNotFoundError:
            raise StoreError(
                f"{digest} is recorded but its file is missing", hint="run 'seal store verify'"
            ) from None

    def read_tree(self, digest: Digest) -> Directory:
        rec = self.record(digest)
        if Kind.TREE not in rec.kind:
            raise NotATree(f"{digest} is a {rec.kind.label}, not a tree")
        with self._open_recorded(digest) as f:  # one record lookup, not two
            return Directory.decode(f.read())

    def walk(self, tree: Digest, prefix: bytes = b"") -> Iterator[Entry]:
        """Every entry under ``tree``, depth first, in name order; paths start with ``prefix``."""
        directory = self.read_tree(tree)
        entries: list[tuple[bytes, Entry]] = []
        for f in directory.files:
            entries.append((f.name, Entry(prefix + f.name, "file", f.digest, f.size, f.executable)))
        for s in directory.symlinks:
            entries.append(
                (s.name, Entry(prefix + s.name, "symlink", None, len(s.target), target=s.target))
            )
        for d in directory.directories:
            entries.append((d.name, Entry(prefix + d.name, "dir", d.digest, d.size)))
        for _name, entry in sorted(entries, key=lambda e: e[0]):
            yield entry
            if entry.kind == "dir":
                yield from self.walk(entry.digest, entry.path + b"/")

    def closure(self, *digests: Digest, missing_ok: bool = False) -> set[Digest]:
        """Every object reachable from ``digests`` (themselves included)."""
        seen, missing = self.db.closure(digests)
        if missing and not missing_ok:
            raise ObjectNotFound(missing[0])
        return seen

    # -- materializing ------------------------------------------------------------------
    def checkout(self, tree: Digest, dest: str | os.PathLike) -> int:
        """Write ``tree`` at ``dest`` as hardlinks to store objects; returns entry count."""
        return _checkout.checkout(self, tree, dest)

    def materialize(self, tree: Digest) -> Path:
        """The tree as ``trees/<hex>/`` inside the store (made once, then reused).

        Hold ``tree`` (a lease) while using the directory: gc removes materialized
        trees that nothing holds or roots.
        """
        self._require_writable()
        target = self.layout.tree_path(tree)
        if target.is_dir():  # made before; a caller that uses it holds its closure
            return target
        closure = self.closure(tree)
        self._hold(closure)  # the links must not lose their objects to a gc
        try:
            self.closure(tree)  # a gc before the hold shows here as a missing object
            if not target.exists():
                staging = os.fsencode(self._tmp_name())
                self.read_tree(tree)
                os.mkdir(staging)
                _checkout.write_tree(self, tree, staging)
                os.rename(staging, target)
            return target
        finally:
            self._unhold(closure)

    def scratch_dir(self, prefix: str) -> Path:
        """A fresh private directory on the store's filesystem, removed at the next open."""
        self._require_writable()
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self._tmp_dir))

    def cache_dir(self, name: str) -> Path:
        """``cache/<name>/`` (made if missing): derived data, safe to delete at any time."""
        self._require_writable()
        path = self.layout.cache / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def records(self, table: str) -> RecordTable:
        """A named record table (realisations, checks, builds, sources) in the store's LMDB."""
        try:
            return self._tables[table]
        except KeyError:
            raise ValueError(f"unknown record table {table!r}") from None

    # -- roots, gc, verify --------------------------------------------------------------
    def roots(self) -> dict[str, Digest]:
        return self.db.roots_map()

    def add_root(self, name: str, digest: Digest) -> None:
        """Name ``digest`` so gc keeps it and everything it references."""
        self._require_writable()
        _check_root_name(name)
        closure = self.closure(digest)
        self._hold(closure)
        try:
            # a gc that swept before the hold took effect shows here as a missing object
            self.closure(digest)
            self.db.set_root(name, digest)
        finally:
            self._unhold(closure)

    def remove_root(self, name: str) -> None:
        self._require_writable()
        if not self.db.remove_root(name):
            raise StoreError(f"no root named {name!r}", hint="'seal store roots' lists them")

    def gc(self, *, dry_run: bool = False) -> _gc.GcReport:
        self._require_writable()
        return _gc.collect(self, dry_run=dry_run)

    def verify(self, on_progress: Callable[[int, int], None] | None = None) -> _verify.VerifyReport:
        """Re-hash every object; ``on_progress(checked, total)`` is called as it goes."""
        return _verify.verify(self, on_progress=on_progress)

    # -- temp roots (package-private) ---------------------------------------------------
    def _hold(self, digests) -> None:
        with self._guard:
            self._held.update(digests)
            if self._gc_protect is not None:
                self._gc_protect.update(digests)

    def _unhold(self, digests) -> None:
        with self._guard:
            self._held.subtract(digests)
            for d in digests:
                if self._held[d] <= 0:
                    del self._held[d]

    @contextlib.contextmanager
    def _gc_session(self) -> Iterator[Callable[[], set[Digest]]]:
        with self._gc_mutex:
            with self._guard:
                self._gc_protect = set(self._held)
            try:
                yield lambda: set(self._gc_protect) | set(self._held)
            finally:
                with self._guard:
                    self._gc_protect = None

    @contextlib.contextmanager
    def _sweep_guard(self) -> Iterator[None]:
        with self._guard:
            yield

    def _tmp_name(self) -> str:
        return f"{self._tmp_dir}/{next(self._tmp_counter)}"

    def _fix_mode(self, fd: int, mode: int) -> None:
        if mode & self._umask:
            os.fchmod(fd, mode)

    def _require_writable(self) -> None:
        if self._lock is None:
            raise StoreError("this store was opened read-only")


class Lease:
    """Digests held as temp roots until ``release`` (or the end of a with block)."""

    def __init__(self, store: Store):
        self._store = store
        self._held: list[Digest] = []
        self._mutex = threading.Lock()

    def hold(self, digests: Iterable[Digest]) -> None:
        digests = list(digests)
        self._store._hold(digests)
        with self._mutex:
            self._held.extend(digests)

    def release(self) -> None:
        with self._mutex:
            held, self._held = self._held, []
        self._store._unhold(held)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _check_version(layout: Layout) -> None:
    try:
        text = layout.version_file.read_text().strip()
        version = int(text)
    except (OSError, ValueError):
        raise StoreVersionError(f"{layout.version_file} is unreadable or not a number") from None
    if version > FORMAT_VERSION:
        raise StoreVersionError(
            f"store {layout.root} has format {version}, newer than this seal supports "
            f"({FORMAT_VERSION})",
            hint="upgrade seal to use this store",
        )
    if version < FORMAT_VERSION:
        raise StoreVersionError(f"store {layout.root} has old format {version}")


def _check_empty(layout: Layout) -> None:
    """Refuse to turn a directory holding other things into a store."""
    # the daemon's own files may come first: its client logs a start before the store exists
    allowed = {"lock", "VERSION.tmp", "daemon.log", "daemon.log.1", "daemon.sock"}
    extra = [p.name for p in layout.root.iterdir() if p.name not in allowed]
    if extra:
        raise StoreError(
            f"{layout.root} is not a seal store and is not empty",
            hint="choose an empty or new directory for --store",
        )


def _renamed(exc: UnsupportedFile, base: str, name: str) -> UnsupportedFile:
    """The error with a path under ``base`` (a /proc descriptor path) named under ``name``."""
    path = os.fsdecode(exc.path) if isinstance(exc.path, bytes) else str(exc.path)
    if not name or not path.startswith(base):
        return exc
    rest = path[len(base) :].lstrip("/")
    return UnsupportedFile(os.path.join(name, rest) if rest else name, exc.why)


def _check_root_name(name: str) -> None:
    if not name or not name.isprintable() or len(name.encode()) > 255:
        raise StoreError(f"invalid root name {name!r}: use 1-255 printable characters")
