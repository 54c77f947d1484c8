"""The seal.v1.Store servicer: convert each request, call the store, convert back.

Errors are raised, never aborted on here: ``status.mapped`` turns them into
gRPC statuses with ``seal-reason``/``seal-hint``.  The daemon never opens a
path a client names: bytes stream in (Put, PutTree) and out (Get, Checkout),
or a local client hands over a descriptor it opened itself (AddHandoff).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import threading
from collections.abc import Iterator

import zstandard

from seal.daemon.errors import HandoffUnknown, InvalidRequest, OutOfRange, RootNotFound, TooLarge
from seal.daemon.handoff import HandoffServer
from seal.daemon.leases import Uploads
from seal.proto.v1 import store_pb2 as pb
from seal.proto.v1 import store_pb2_grpc as pb_grpc
from seal.store import (
    CorruptObject,
    Digest,
    DigestMismatch,
    Kind,
    NotATree,
    ObjectInfo,
    ObjectNotFound,
    Store,
)

from . import convert
from .status import InFlight, mapped

CHUNK = 1 << 20  # the API's payload limit: every data chunk, every listing message
SMALL_BLOB = 1 << 20  # checked in memory; larger blobs stream through the store's tmp/
MAX_LISTING_BYTES = 256 << 20  # one PutTree's directories, held in memory until commit
_ZSTD_LEVEL = 3

log = logging.getLogger("seal.daemon")


class StoreServicer(pb_grpc.StoreServicer):
    """Serves one open, writable Store."""

    def __init__(
        self,
        store: Store,
        uploads: Uploads,
        in_flight: InFlight,
        handoff: HandoffServer | None = None,
    ):
        self._store = store
        self._uploads = uploads
        self.in_flight = in_flight
        self._handoff = handoff

    # -- queries ------------------------------------------------------------------------
    @mapped
    def FindMissing(self, request, context):
        wanted = convert.digests_from_pb(request.digests)
        absent = set(self._store.find_missing(d for d, _ in wanted))
        missing, seen = [], set()
        for digest, size in wanted:
            if digest in seen:
                continue
            seen.add(digest)
            # a nonzero size that differs from the stored one names another object
            if digest in absent or (size and self._stat_or_none(digest, size) is None):
                missing.append(convert.digest_to_pb(digest, size))
        return pb.FindMissingResponse(missing=missing)

    @mapped
    def Stat(self, request, context):
        info = self._stat(request.digest)
        roots = sorted(n for n, d in self._store.roots().items() if d == info.digest)
        return convert.stat_to_pb(info, roots)

    # -- a descriptor handed over -------------------------------------------------------
    @mapped
    def AddHandoff(self, request, context):
        if self._handoff is None:
            raise HandoffUnknown(0)
        root_name = convert.optional_root_name(request.root_name)
        fd = self._handoff.take(request.token)
        log.info("adding a handed-over descriptor for %s", request.display_path or "a client")
        try:
            digest, kind = self._store.put_open(fd, root=root_name, name=request.display_path)
            size = self._store.stat(digest).size
        finally:
            os.close(fd)
        return pb.AddHandoffResponse(
            digest=convert.digest_to_pb(digest, size), kind=convert.kind_to_pb(kind)
        )

    # -- blobs --------------------------------------------------------------------------
    @mapped
    def Put(self, request_iterator, context):
        first = next(request_iterator, None)
        if first is None or not first.HasField("header"):
            raise InvalidRequest(
                "a Put stream must start with a PutHeader", reason="put-header-missing"
            )
        header = first.header
        digest, size = convert.digest_from_pb(header.digest)
        compression = convert.compression_from_pb(header.compression)
        root_name = convert.optional_root_name(header.root_name)
        _check_chunk(first.data)
        with self._lease(header.lease_id) as lease, self._store.batch(lease) as batch:
            batch.hold_existing([digest])  # held before looking: present now means kept
            present = self._stat_or_none(digest, 0)
            if present is not None and present.size == size:
                if root_name is not None:
                    batch.set_root(root_name, digest)
                return pb.PutResponse(digest=convert.digest_to_pb(digest, size), created=False)
            stream = _PutStream(request_iterator, first.data, compression, size)
            try:
                if size <= SMALL_BLOB:
                    _add_small(batch, stream, digest, size)
                else:
                    batch.add_stream(stream, expected=digest, expected_size=size)
            except DigestMismatch:
                if stream.error is not None:
                    raise stream.error from None
                raise
            if stream.error is not None:
                raise stream.error
            if root_name is not None:
                batch.set_root(root_name, digest)
        return pb.PutResponse(digest=convert.digest_to_pb(digest, size), created=True)

    @mapped
    def BatchPut(self, request, context):
        """Many small blobs in one call: all are checked before any is stored."""
        blobs, total = [], 0
        for blob in request.blobs:
            digest, size = convert.digest_from_pb(blob.digest)
            total += len(blob.data)
            if total > CHUNK:
                raise TooLarge(
                    f"a BatchPut carries more than {CHUNK:,} bytes of data; "
                    "send large blobs with Put",
                    reason="batch-too-large",
                )
            actual = Digest.of_bytes(blob.data)
            if actual != digest or len(blob.data) != size:
                raise DigestMismatch(digest, f"{actual} ({len(blob.data)} bytes)")
            blobs.append(blob.data)
        with self._lease(request.lease_id) as lease, self._store.batch(lease) as batch:
            created = len(self._store.find_missing(Digest.of_bytes(b) for b in blobs))
            for data in blobs:
                batch.add_bytes(data)
        return pb.BatchPutResponse(created=created)

    @mapped
    def Get(self, request, context):
        info = self._stat(request.digest)
        compression = convert.compression_from_pb(request.compression)
        if request.offset < 0 or request.limit < 0:
            raise InvalidRequest("offset and limit must not be negative")
        if request.offset > info.size:
            raise OutOfRange(
                f"offset {request.offset} is past the end of {info.digest} ({info.size} bytes)"
            )
        end = info.size if not request.limit else min(info.size, request.offset + request.limit)
        pieces = _read_range(self._store, info, request.offset, end)
        if compression == pb.COMPRESSION_ZSTD:
            pieces = _zstd_pieces(pieces)
        for piece in pieces:
            yield pb.GetResponse(data=piece)

    # -- trees --------------------------------------------------------------------------
    @mapped
    def PutTree(self, request_iterator, context):
        root, root_size, encodings = _read_listing(request_iterator)
        upload, missing = self._uploads.open(root, root_size, encodings)
        lease = pb.TreeLease(
            lease_id=upload.lease_id,
            ttl_seconds=math.ceil(upload.ttl),
            blobs=upload.blob_count,
            missing_blobs=len(missing),
            missing_bytes=sum(size for _, size in missing),
        )
        for start in range(0, max(len(missing), 1), convert.MAX_DIGESTS):
            batch = missing[start : start + convert.MAX_DIGESTS]
            yield pb.PutTreeResponse(
                lease=lease if start == 0 else None,
                missing=[convert.digest_to_pb(d, s) for d, s in batch],
            )

    @mapped
    def CommitTree(self, request, context):
        root_name = convert.optional_root_name(request.root_name)
        digest, size = self._uploads.commit(request.lease_id, root_name)
        return pb.CommitTreeResponse(root_digest=convert.digest_to_pb(digest, size))

    @mapped
    def CancelTree(self, request, context):
        self._uploads.cancel(request.lease_id)
        return pb.CancelTreeResponse()

    @mapped
    def Checkout(self, request, context):
        info = self._stat(request.digest)
        if Kind.TREE not in info.kind:
            raise NotATree(f"{info.digest} is a blob, not a tree")
        compression = convert.compression_from_pb(request.compression)
        store = self._store
        with store.lease() as lease:
            lease.hold(store.closure(info.digest, missing_ok=True))
            store.closure(info.digest)  # raises if a gc freed part of it before the hold
            entries = list(store.walk(info.digest))
            content = (
                0 if request.entries_only else sum(e.size for e in entries if e.kind == "file")
            )
            summary = pb.CheckoutSummary(entries=len(entries), content_bytes=content)
            yield from _checkout_messages(
                store, entries, summary, compression, request.entries_only
            )

    # -- roots, gc, verify --------------------------------------------------------------
    @mapped
    def ListRoots(self, request, context):
        roots = []
        for name, digest in sorted(self._store.roots().items()):
            info = self._stat_or_none(digest, 0)
            roots.append(
                pb.Root(name=name, digest=convert.digest_to_pb(digest, info.size if info else 0))
            )
        return pb.ListRootsResponse(roots=roots)

    @mapped
    def AddRoot(self, request, context):
        name = convert.root_name_from_pb(request.root.name)
        info = self._stat(request.root.digest)
        self._store.add_root(name, info.digest)
        return pb.AddRootResponse()

    @mapped
    def RemoveRoot(self, request, context):
        name = request.name
        digest = self._store.roots().get(name)
        if digest is None:
            raise RootNotFound(name)
        self._store.remove_root(name)
        info = self._stat_or_none(digest, 0)
        return pb.RemoveRootResponse(digest=convert.digest_to_pb(digest, info.size if info else 0))

    @mapped
    def GC(self, request, context):
        report = self._store.gc(dry_run=request.dry_run)
        for removed in convert.gc_removed_batches(report, self._store.root):
            yield pb.GCResponse(removed=removed)
        yield pb.GCResponse(report=convert.gc_report_to_pb(report))

    @mapped
    def Verify(self, request, context):
        for event in _run_verify(self._store, context):
            if isinstance(event, tuple):
                checked, total = event
                yield pb.VerifyResponse(
                    progress=pb.VerifyProgress(checked=checked, total_objects=total)
                )
            else:
                for problem in convert.verify_problems_to_pb(event, self._store.root):
                    yield pb.VerifyResponse(problem=problem)
                yield pb.VerifyResponse(report=convert.verify_report_to_pb(event))

    # -- helpers ------------------------------------------------------------------------
    def _stat(self, msg: pb.Digest) -> ObjectInfo:
        """The object a request names; a nonzero size must match (else NOT_FOUND)."""
        digest, size = convert.digest_from_pb(msg)
        info = self._store.stat(digest)
        if size and size != info.size:
            raise ObjectNotFound(
                f"{digest} ({size} bytes)",
                hint=f"the store has {digest} with {info.size} bytes; check the size you sent",
            )
        return info

    def _stat_or_none(self, digest: Digest, size: int) -> ObjectInfo | None:
        try:
            info = self._store.stat(digest)
        except ObjectNotFound:
            return None
        return info if not size or size == info.size else None

    def _lease(self, lease_id: str):
        """The store lease of an open tree upload, in use for the block (or None)."""
        if not lease_id:
            return contextlib.nullcontext(None)
        return _upload_lease(self._uploads, lease_id)


@contextlib.contextmanager
def _upload_lease(uploads: Uploads, lease_id: str):
    with uploads.use(lease_id) as upload:
        yield upload.lease


def _check_chunk(data: bytes) -> None:
    if len(data) > CHUNK:
        raise TooLarge(
            f"a data chunk of {len(data):,} bytes exceeds the limit of {CHUNK:,} bytes",
            reason="chunk-too-large",
            hint="send data in chunks of at most 1 MiB",
        )


class _Chunks:
    """The data chunks of a Put stream, readable as a file (``read``/``readinto``)."""

    def __init__(self, requests: Iterator[pb.PutRequest], first: bytes):
        self._requests = requests
        self._view = memoryview(first)

    def _next(self) -> bool:
        while not self._view:
            request = next(self._requests, None)
            if request is None:
                return False
            if request.HasField("header"):
                raise InvalidRequest(
                    "a Put stream carries one PutHeader, in its first message",
                    reason="put-header-repeated",
                )
            _check_chunk(request.data)
            self._view = memoryview(request.data)
        return True

    def read(self, size: int = -1) -> bytes:
        if not self._next():
            return b""
        n = len(self._view) if size < 0 else min(size, len(self._view))
        data, self._view = self._view[:n], self._view[n:]
        return bytes(data)

    def readinto(self, buf) -> int:
        if not self._next():
            return 0
        n = min(len(buf), len(self._view))
        buf[:n] = self._view[:n]
        self._view = self._view[n:]
        return n


class _PutStream:
    """A Put's bytes (decompressed) as the stream ``Batch.add_stream`` reads.

    Never yields more than the claimed size plus one byte, so a lying client
    or a zstd bomb costs at most that much disk.  A failure while reading
    (the client left, an oversized chunk, bad zstd data) ends the stream and
    is kept in ``error``: the store then finds the bytes short, stores
    nothing and removes its staging file, and the servicer raises ``error``.
    """

    def __init__(self, requests, first: bytes, compression: int, claimed_size: int):
        chunks = _Chunks(requests, first)
        if compression == pb.COMPRESSION_ZSTD:
            self._source = zstandard.ZstdDecompressor().stream_reader(
                chunks, read_across_frames=True, closefd=False
            )
        else:
            self._source = chunks
        self._room = claimed_size + 1
        self.error: Exception | None = None

    def readinto(self, buf) -> int:
        if self.error is not None or self._room <= 0:
            return 0
        view = memoryview(buf)[: self._room]
        try:
            n = self._source.readinto(view)
        except zstandard.ZstdError as exc:
            self.error = InvalidRequest(
                f"the zstd-compressed data is damaged: {exc}", reason="bad-compression"
            )
            return 0
        except Exception as exc:  # noqa: BLE001 - kept and re-raised by the servicer
            self.error = exc
            return 0
        self._room -= n
        return n


def _add_small(batch, stream: _PutStream, digest: Digest, size: int) -> None:
    """A small blob is checked in memory and written in place: no staging file, no rename
    (``add_stream`` stages every blob, which costs more than the write for small ones)."""
    buf = bytearray(size + 1)
    view, got = memoryview(buf), 0
    while n := stream.readinto(view[got:]):
        got += n
    data = view[:got]
    actual = Digest.of_bytes(data)
    if actual != digest or got != size:
        raise DigestMismatch(digest, f"{actual} ({got} bytes)")
    batch.add_bytes(data)


def _read_listing(requests) -> tuple[Digest, int, list[bytes]]:
    """Collect a PutTree stream: (root digest, its size or 0, the directory encodings)."""
    root: tuple[Digest, int] | None = None
    encodings: list[bytes] = []
    total = 0
    for index, request in enumerate(requests):
        if request.HasField("header") != (index == 0):
            raise InvalidRequest(
                "a PutTree stream carries one PutTreeHeader, in its first message",
                reason="put-tree-header",
            )
        if index == 0:
            root = convert.digest_from_pb(request.header.root_digest)
        size = sum(len(d) for d in request.directories)
        if size > CHUNK and len(request.directories) > 1:
            raise TooLarge(
                f"a PutTree message packs {size:,} bytes of directories; at most {CHUNK:,} "
                "bytes per message (a larger directory travels alone)",
                hint="split the listing into more messages",
            )
        total += size
        if total > MAX_LISTING_BYTES:
            raise TooLarge(
                f"the tree listing exceeds {MAX_LISTING_BYTES >> 20} MiB",
                reason="listing-too-large",
                hint="upload large trees as several subtrees, then the tree that joins them",
            )
        encodings.extend(request.directories)
    if root is None:
        raise InvalidRequest(
            "an empty PutTree stream: send a PutTreeHeader first", reason="put-tree-header"
        )
    return root[0], root[1], encodings


def _read_range(store: Store, info: ObjectInfo, start: int, end: int) -> Iterator[bytes]:
    """The object's bytes [start, end) in pieces of at most CHUNK."""
    if start >= end:
        return
    with store.open_blob(info.digest) as f:
        f.seek(start)
        remaining = end - start
        while remaining:
            data = f.read(min(CHUNK, remaining))
            if not data:
                raise CorruptObject(
                    info.digest, f"a file shorter than its recorded {info.size} bytes"
                )
            remaining -= len(data)
            yield data


def _zstd_pieces(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Compress a stream of pieces as one zstd frame, re-cut to pieces of at most CHUNK."""
    compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compressobj()
    pending = bytearray()
    for piece in pieces:
        pending += compressor.compress(piece)
        while len(pending) >= CHUNK:
            yield bytes(pending[:CHUNK])
            del pending[:CHUNK]
    pending += compressor.flush()
    for start in range(0, len(pending), CHUNK):
        yield bytes(pending[start : start + CHUNK])


def _checkout_messages(store, entries, summary, compression, entries_only):
    """Pack entry and data items into messages of about CHUNK bytes; the first has the summary."""
    message = pb.CheckoutResponse(summary=summary)
    size = summary.ByteSize()
    sent = False

    def ship():
        nonlocal message, size, sent
        out, message, size, sent = message, pb.CheckoutResponse(), 0, True
        return out

    for entry in entries:
        item = convert.checkout_item_to_pb(entry)
        item_size = item.ByteSize() + 4
        if size and size + item_size > CHUNK:
            yield ship()
        message.items.append(item)
        size += item_size
        if entry.kind != "file" or entries_only or entry.size == 0:
            continue
        info = ObjectInfo(entry.digest, entry.size, Kind.BLOB, False)
        pieces = _read_range(store, info, 0, entry.size)
        if compression == pb.COMPRESSION_ZSTD:
            pieces = _zstd_pieces(pieces)
        for piece in pieces:
            if size and size + len(piece) + 6 > CHUNK:
                yield ship()
            message.items.add(data=piece)
            size += len(piece) + 6
    if size or not sent:
        yield ship()


class _Abandoned(Exception):
    """The Verify call ended (client gone or daemon stopping): stop re-hashing."""


def _run_verify(store: Store, context) -> Iterator[tuple[int, int] | object]:
    """Run store.verify in a thread; yield (checked, total) progress, then the report."""
    events: queue.Queue = queue.Queue()
    stop = threading.Event()

    def on_progress(checked: int, total: int) -> None:
        if stop.is_set() or not context.is_active():
            raise _Abandoned(f"{checked} of {total} objects")
        events.put((checked, total))

    def work() -> None:
        try:
            events.put(("done", store.verify(on_progress=on_progress)))
        except _Abandoned as exc:
            log.info("Verify stopped after %s: its call ended", exc)
            events.put(("error", exc))
        except BaseException as exc:  # noqa: BLE001 - handed to the RPC thread
            events.put(("error", exc))

    worker = threading.Thread(target=work, name="seal-verify", daemon=True)
    worker.start()
    try:
        while True:
            event = events.get()
            if event[0] == "done":
                yield event[1]
                return
            if event[0] == "error":
                if isinstance(event[1], _Abandoned):
                    return
                raise event[1]
            yield event
    finally:
        stop.set()
        worker.join()
