"""Tree uploads in progress (PutTree -> Put... -> CommitTree), each held by a lease with a TTL.

A ``TreeUpload`` keeps the client's checked tree listing in memory and a
store ``Lease`` that holds, as temporary GC roots, everything of the tree the
store already has plus every blob later Put under the lease id.  Nothing is
recorded until CommitTree, which records all directories (and an optional
root) in one transaction.  A lease lapses after ``ttl`` seconds in which no
call named it; a background reaper ends lapsed leases.  A lease in use by a
running call never lapses, and one that is cancelled while calls still use it
is released when the last of them ends (so no hold outlives its lease).

>>> uploads = Uploads(store, ttl=600)                     # doctest: +SKIP
>>> upload, missing = uploads.open(root, encodings)      # doctest: +SKIP
>>> uploads.commit(upload.lease_id, root_name="app")     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from seal.daemon.errors import LeaseNotFound
from seal.store import Digest, Lease, Store
from seal.store.listing import Listing, check_listing

log = logging.getLogger("seal.daemon")

DEFAULT_TTL = 600.0  # seconds without a call naming the lease


@dataclass(eq=False)
class TreeUpload:
    """One tree upload between PutTree and CommitTree/CancelTree."""

    lease_id: str
    listing: Listing
    lease: Lease
    ttl: float
    last_used: float
    missing: dict[Digest, int]  # blobs absent when the upload opened -> size
    active: int = 0  # calls using the lease right now
    closed: bool = False  # committed, cancelled or lapsed: release once inactive
    commit_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def blob_count(self) -> int:
        return len(self.listing.blobs)


class Uploads:
    """The open tree uploads of one daemon, by lease id; thread-safe."""

    def __init__(
        self, store: Store, *, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic
    ):
        self._store = store
        self.ttl = ttl
        self._clock = clock
        self._open: dict[str, TreeUpload] = {}
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    # -- the three steps ----------------------------------------------------------------
    def open(
        self, root: Digest, root_size: int, encodings: Iterable[bytes]
    ) -> tuple[TreeUpload, list[tuple[Digest, int]]]:
        """Check a listing, hold what the store has of it, and return the missing blobs."""
        store = self._store
        listing = check_listing(store, root, root_size, encodings)
        lease = store.lease()
        try:
            # Hold first, then look: whatever is present after the hold stays present.
            lease.hold(listing.encodings)
            absent = store.hold_listing(listing, lease.hold)
        except BaseException:
            lease.release()
            raise
        missing = [(d, listing.blobs[d]) for d in absent]
        upload = TreeUpload(
            lease_id=secrets.token_urlsafe(18),
            listing=listing,
            lease=lease,
            ttl=self.ttl,
            last_used=self._clock(),
            missing=dict(missing),
        )
        with self._mutex:
            self._open[upload.lease_id] = upload
        log.info(
            "tree upload %s opened for %s: %d blobs, %d missing",
            upload.lease_id,
            root,
            upload.blob_count,
            len(missing),
        )
        return upload, missing

    @contextlib.contextmanager
    def use(self, lease_id: str) -> Iterator[TreeUpload]:
        """Mark the upload in use (it cannot lapse meanwhile) and renew its TTL."""
        with self._mutex:
            upload = self._open.get(lease_id)
            if upload is None:
                raise LeaseNotFound(lease_id)
            upload.active += 1
            upload.last_used = self._clock()
        try:
            yield upload
        finally:
            with self._mutex:
                upload.active -= 1
                upload.last_used = self._clock()
                release = upload.closed and upload.active == 0
            if release:
                upload.lease.release()

    def commit(self, lease_id: str, root_name: str | None = None) -> tuple[Digest, int]:
        """Record the tree (and root it) in one transaction; end the lease on success.

        Returns the tree's digest and the size of its root encoding.

        On IncompleteTree the lease stays open so the client can Put and commit again.
        """
        with self.use(lease_id) as upload, upload.commit_lock:
            if upload.closed:
                raise LeaseNotFound(lease_id)
            listing = upload.listing
            digest = self._store.put_listing(listing, root_name=root_name, lease=upload.lease)
            self._close(upload)
            log.info("tree upload %s committed %s", lease_id, digest)
            return digest, listing.root_size

    def cancel(self, lease_id: str) -> None:
        with self.use(lease_id) as upload:
            self._close(upload)
            log.info("tree upload %s cancelled", lease_id)

    # -- expiry -------------------------------------------------------------------------
    def expire(self) -> list[str]:
        """End every lease unused for longer than its TTL; return their ids."""
        now = self._clock()
        lapsed = []
        with self._mutex:
            for upload in list(self._open.values()):
                if upload.active == 0 and now - upload.last_used > upload.ttl:
                    del self._open[upload.lease_id]
                    upload.closed = True
                    lapsed.append(upload)
        for upload in lapsed:
            upload.lease.release()
            log.info("tree upload %s lapsed after %.0f s unused", upload.lease_id, upload.ttl)
        return [u.lease_id for u in lapsed]

    def start_reaper(self, interval: float | None = None) -> None:
        """Expire lapsed leases in a background thread until ``close``."""
        if interval is None:
            interval = max(0.05, min(self.ttl / 4, 10.0))

        def reap() -> None:
            while not self._stop.wait(interval):
                try:
                    self.expire()
                except Exception:  # never let the reaper die silently
                    log.exception("lease reaper failed")

        self._reaper = threading.Thread(target=reap, name="seal-lease-reaper", daemon=True)
        self._reaper.start()

    def close(self) -> None:
        """Stop the reaper and release every lease (the daemon is stopping)."""
        self._stop.set()
        if self._reaper is not None:
            self._reaper.join()
        with self._mutex:
            uploads, self._open = list(self._open.values()), {}
            for upload in uploads:
                upload.closed = True
        for upload in uploads:
            if upload.active == 0:
                upload.lease.release()

    def __len__(self) -> int:
        with self._mutex:
            return len(self._open)

    def _close(self, upload: TreeUpload) -> None:
        """Take the upload out of the table; ``use`` releases its lease when inactive."""
        with self._mutex:
            self._open.pop(upload.lease_id, None)
            upload.closed = True
