"""``seal store add`` on the client side: walk and hash, then send only what the daemon lacks.

The walk reuses the store's own rules and encodings (``seal.store.ingest.scan``
and ``check_mode``, ``seal.store.tree``), so a tree hashed here has exactly the
digest the store gives it, and a FIFO, socket, device or setuid/setgid/sticky
file is refused with the same one-line error, before anything is sent.

Then, for a directory:

1. ``find_missing([tree])``: a tree the store holds is complete, so nothing is sent;
2. ``put_tree``: the listing (every directory's encoding) opens a lease and
   returns the file blobs the store lacks;
3. those blobs, in parallel, under the lease: small ones packed into
   ``put_blobs`` calls, large ones streamed by ``put_blob``;
4. ``commit_tree``: records the tree (and the optional root name) atomically.

A single file is one ``put_blob`` that carries the root name.  The wire is
the ``Transport``'s business (``seal.client.rpc``); this module knows no gRPC.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol

from seal.store.digest import Digest
from seal.store.errors import UnsupportedFile
from seal.store.ingest import check_mode, scan
from seal.store.tree import Directory, DirectoryNode, FileNode, SymlinkNode

from . import exitcodes
from .errors import ClientError

CHUNK = 1 << 20  # the API's limit for one message's bytes
UPLOAD_THREADS = 4  # parallel calls; the daemon hashes and writes them concurrently
BATCH_BLOB = 256 << 10  # blobs up to this size travel in BatchPut calls
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class Transport(Protocol):
    """The store calls an upload needs (implemented over gRPC by ``rpc.StoreCalls``).

    Every method raises ClientError on failure.
    """

    def find_missing(self, digests: Sequence[Digest]) -> list[Digest]:
        """The digests the store lacks (a present tree is complete)."""

    def put_tree(
        self, root: Digest, root_size: int, directories: Sequence[bytes]
    ) -> tuple[str, list[Digest]]:
        """Send a tree listing; return a lease id and the file blobs the store lacks."""

    def put_blob(
        self,
        digest: Digest,
        size: int,
        chunks: Iterable[bytes],
        *,
        lease_id: str | None = None,
        root_name: str | None = None,
    ) -> None:
        """Upload one blob (chunks of at most ``CHUNK`` bytes)."""

    def put_blobs(self, blobs: Sequence[tuple[Digest, bytes]], *, lease_id: str) -> None:
        """Upload several small blobs (together at most ``CHUNK`` bytes) in one call."""

    def commit_tree(self, lease_id: str, root_name: str | None) -> Digest:
        """Record the leased tree, optionally rooting it."""

    def cancel_tree(self, lease_id: str) -> None:
        """Abandon the lease."""

    def add_root(self, name: str, digest: Digest) -> None:
        """Name a stored object as a root."""


@dataclass(frozen=True, slots=True)
class Blob:
    """A file to send: one path per distinct content."""

    digest: Digest
    size: int
    path: bytes


@dataclass
class Listing:
    """A hashed directory: its tree digest, every directory encoding, its file blobs."""

    root: Digest
    root_size: int
    directories: list[bytes] = field(default_factory=list)
    blobs: dict[Digest, Blob] = field(default_factory=dict)


def add(transport: Transport, path: str | os.PathLike, root_name: str | None = None) -> dict:
    """Add a file or directory through ``transport``; return the ``seal store add`` result.

    Raises:
        UnsupportedFile (a store error) for a path that cannot be added;
        ClientError for everything the daemon refuses.
    """
    return send(transport, prepare(path), root_name)


def prepare(path: str | os.PathLike) -> Listing | Blob:
    """Walk and hash ``path`` (a directory or a regular file, not a symlink); send nothing.

    Raises UnsupportedFile naming the first path a tree cannot hold.
    """
    p = os.fsencode(path)
    mode = check_top(p)
    if stat.S_ISDIR(mode):
        return scan_tree(p)
    digest, size, _ = hash_file(p)
    return Blob(digest, size, p)


def check_top(path: str | os.PathLike | bytes) -> int:
    """The mode of ``path`` if it can be added (a directory or a regular file), else raise.

    Raises UnsupportedFile: missing, a symlink, or a kind or mode a tree cannot hold.
    """
    p = os.fsencode(path)
    try:
        mode = os.lstat(p).st_mode
    except FileNotFoundError:
        raise UnsupportedFile(os.fsdecode(p), "no such file or directory") from None
    except OSError as exc:
        raise UnsupportedFile(os.fsdecode(p), exc.strerror or str(exc)) from None
    if stat.S_ISLNK(mode):
        raise UnsupportedFile(
            os.fsdecode(p), "is a symlink; add its target or the directory that holds it"
        )
    check_mode(p, mode)
    return mode


def send(transport: Transport, item: Listing | Blob, root_name: str | None = None) -> dict:
    """Upload what ``prepare`` made; return {"digest", "kind", "size", "root"}."""
    if isinstance(item, Listing):
        upload_tree(transport, item, root_name)
        return {"digest": str(item.root), "kind": "tree", "size": item.root_size, "root": root_name}
    _put(transport, item, root_name=root_name)
    return {"digest": str(item.digest), "kind": "blob", "size": item.size, "root": root_name}


def scan_tree(root: bytes) -> Listing:
    """Walk ``root`` (never following symlinks) and hash it as the store would."""
    plans = scan(root)
    done: list[tuple[Digest, int] | None] = [None] * len(plans)
    encodings: dict[Digest, bytes] = {}
    blobs: dict[Digest, Blob] = {}
    for index in range(len(plans) - 1, -1, -1):
        plan = plans[index]
        files = []
        for name, path, exe in plan.files:
            digest, size, _ = hash_file(path)
            files.append(FileNode(name, digest, size, exe))
            blobs.setdefault(digest, Blob(digest, size, path))
        dirs = [DirectoryNode(name, *done[child]) for name, child in plan.subdirs]
        links = [SymlinkNode(name, target) for name, target in plan.symlinks]
        data = Directory.build(files, dirs, links).encode()
        digest = Digest.of_bytes(data)
        encodings.setdefault(digest, data)
        done[index] = (digest, len(data))
        for _, child in plan.subdirs:
            done[child] = None
    root_digest, root_size = done[0]
    return Listing(root_digest, root_size, list(encodings.values()), blobs)


def upload_tree(transport: Transport, listing: Listing, root_name: str | None) -> None:
    """Send what the store lacks of ``listing`` and commit it (rooted as ``root_name``)."""
    if not transport.find_missing([listing.root]):
        if root_name is not None:
            transport.add_root(root_name, listing.root)
        return
    lease, missing = transport.put_tree(listing.root, listing.root_size, listing.directories)
    try:
        blobs = []
        for digest in missing:
            blob = listing.blobs.get(digest)
            if blob is None:
                raise ClientError(
                    f"the daemon asked for {digest}, which is not a file of this tree",
                    reason="protocol-error",
                    exit_code=exitcodes.INTERNAL,
                )
            blobs.append(blob)
        _put_all(transport, blobs, lease)
        transport.commit_tree(lease, root_name)
    except BaseException:
        with contextlib.suppress(ClientError):  # the lease lapses anyway; report the first error
            transport.cancel_tree(lease)
        raise


def _put_all(transport: Transport, blobs: list[Blob], lease: str) -> None:
    """Send every blob, a few calls at a time; stop at the first failure.

    Small blobs travel together in BatchPut calls of at most ``CHUNK`` bytes
    (one call per thousand small files, not one stream each); larger ones are
    streamed with Put, biggest first.
    """
    if not blobs:
        return
    blobs = sorted(blobs, key=lambda b: b.size, reverse=True)
    large = [b for b in blobs if b.size > BATCH_BLOB]
    jobs = [lambda b=b: _put(transport, b, lease_id=lease) for b in large]
    group: list[Blob] = []
    room = CHUNK
    for blob in (b for b in blobs if b.size <= BATCH_BLOB):
        if blob.size > room:
            jobs.append(lambda g=group: _put_batch(transport, g, lease))
            group, room = [], CHUNK
        group.append(blob)
        room -= blob.size
    if group:
        jobs.append(lambda g=group: _put_batch(transport, g, lease))
    if len(jobs) == 1:
        jobs[0]()
        return
    with ThreadPoolExecutor(min(UPLOAD_THREADS, len(jobs)), "seal-upload") as pool:
        futures = [pool.submit(job) for job in jobs]
        finished, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        for f in futures:
            if f.done() and not f.cancelled() and f.exception() is not None:
                raise f.exception()


def _put_batch(transport: Transport, group: list[Blob], lease: str) -> None:
    """Read a group of small files, check each against its listed digest, send them."""
    payload = []
    for blob in group:
        fd = _open_regular(blob.path)
        try:
            data = os.read(fd, blob.size + 1)
        finally:
            os.close(fd)
        if len(data) != blob.size or Digest.of_bytes(data) != blob.digest:
            raise _changed(blob.path, "digest-mismatch", exitcodes.DATA_LOSS)
        payload.append((blob.digest, data))
    transport.put_blobs(payload, lease_id=lease)


def _changed(path: bytes, reason: str, code: int) -> ClientError:
    return ClientError(
        f"{os.fsdecode(path)} changed while being added; nothing was stored for it",
        hint="add it again once it stops changing",
        reason=reason,
        exit_code=code,
    )


def _put(
    transport: Transport, blob: Blob, *, lease_id: str | None = None, root_name: str | None = None
) -> None:
    try:
        transport.put_blob(
            blob.digest,
            blob.size,
            read_chunks(blob.path),
            lease_id=lease_id,
            root_name=root_name,
        )
    except ClientError as exc:
        if exc.reason == "digest-mismatch":
            raise _changed(blob.path, exc.reason, exc.exit_code) from exc
        raise


def hash_file(path: bytes) -> tuple[Digest, int, bool]:
    """Digest, size and executable bit of a regular file (not following a symlink)."""
    fd = _open_regular(path)
    with os.fdopen(fd, "rb", buffering=0) as f:
        exe = bool(os.fstat(fd).st_mode & stat.S_IXUSR)
        h = hashlib.file_digest(f, "sha256")
        size = f.tell()
    return Digest(h.digest()), size, exe


def read_chunks(path: bytes) -> Iterator[bytes]:
    """The file's bytes in chunks of at most ``CHUNK`` (empty file: no chunks)."""
    fd = _open_regular(path)
    try:
        while chunk := os.read(fd, CHUNK):
            yield chunk
    finally:
        os.close(fd)


def _open_regular(path: bytes) -> int:
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise UnsupportedFile(os.fsdecode(path), "no such file or directory") from None
    except PermissionError:
        raise UnsupportedFile(os.fsdecode(path), "permission denied") from None
    except OSError as exc:
        raise UnsupportedFile(os.fsdecode(path), exc.strerror or str(exc)) from None
    try:
        mode = os.fstat(fd).st_mode
        check_mode(path, mode)
        if not stat.S_ISREG(mode):
            raise UnsupportedFile(
                os.fsdecode(path), "changed into a non-regular file while being added"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd
