"""Plain converters between seal.v1 messages and the store's value types.

``x_from_pb`` validates what a client sent and raises the store's or the
daemon's errors (mapped to INVALID_ARGUMENT); ``x_to_pb`` trusts its input.
"""

from __future__ import annotations

import os

from seal.daemon.errors import InvalidRequest, InvalidRootName, TooLarge
from seal.proto.v1 import store_pb2 as pb
from seal.store import Digest, Entry, GcReport, InvalidDigest, Kind, ObjectInfo, VerifyReport

MAX_DIGESTS = 10_000  # digests in one message (the proto's limit)


def digest_from_pb(msg: pb.Digest) -> tuple[Digest, int]:
    """(digest, size) from a wire Digest; size 0 may mean "unknown" where the proto says so."""
    if msg.size_bytes < 0:
        raise InvalidDigest(f"digest {msg.hash!r} has a negative size ({msg.size_bytes})")
    return Digest.from_hex(msg.hash), msg.size_bytes


def digests_from_pb(msgs) -> list[tuple[Digest, int]]:
    if len(msgs) > MAX_DIGESTS:
        raise TooLarge(
            f"{len(msgs)} digests in one message; the limit is {MAX_DIGESTS:,}",
            reason="too-many-digests",
            hint="send the digests in batches",
        )
    return [digest_from_pb(m) for m in msgs]


def digest_to_pb(digest: Digest, size: int) -> pb.Digest:
    return pb.Digest(hash=digest.hex, size_bytes=size)


def root_name_from_pb(name: str) -> str:
    """A root name as the store accepts it: 1-255 printable characters."""
    if not name or not name.isprintable() or len(name.encode()) > 255:
        raise InvalidRootName(name)
    return name


def optional_root_name(name: str) -> str | None:
    """Empty (the proto3 default) means "no root"."""
    return root_name_from_pb(name) if name else None


def kind_to_pb(kind: Kind) -> int:
    return pb.OBJECT_KIND_TREE if Kind.TREE in kind else pb.OBJECT_KIND_BLOB


def stat_to_pb(info: ObjectInfo, roots: list[str]) -> pb.StatResponse:
    return pb.StatResponse(
        digest=digest_to_pb(info.digest, info.size),
        kind=kind_to_pb(info.kind),
        executable_copy=info.executable_copy,
        roots=roots,
    )


def compression_from_pb(value: int) -> int:
    if value not in (pb.COMPRESSION_NONE, pb.COMPRESSION_ZSTD):
        raise InvalidRequest(
            f"unknown compression {value}; this daemon knows NONE (0) and ZSTD (1)",
            reason="unknown-compression",
        )
    return value


def checkout_item_to_pb(entry: Entry) -> pb.CheckoutItem:
    if entry.kind == "file":
        return pb.CheckoutItem(
            file=pb.CheckoutFile(
                path=entry.path,
                digest=digest_to_pb(entry.digest, entry.size),
                is_executable=entry.executable,
            )
        )
    if entry.kind == "dir":
        return pb.CheckoutItem(
            directory=pb.CheckoutDirectory(
                path=entry.path, digest=digest_to_pb(entry.digest, entry.size)
            )
        )
    return pb.CheckoutItem(symlink=pb.CheckoutSymlink(path=entry.path, target=entry.target))


def gc_removed_batches(report: GcReport, store_root: os.PathLike | str, limit: int = MAX_DIGESTS):
    """GCRemoved messages of at most ``limit`` entries in all (orphans relative to the store)."""
    root = os.fspath(store_root)
    items: list[tuple[str, object]] = [("objects", d) for d in report.objects]
    items += [("orphans", os.path.relpath(p, root)) for p in report.orphans]
    items += [("trees", d) for d in report.trees]
    for start in range(0, len(items), limit):
        batch = pb.GCRemoved()
        for field, value in items[start : start + limit]:
            if field == "orphans":
                batch.orphans.append(value)
            else:
                getattr(batch, field).append(pb.Digest(hash=value.hex))
        yield batch


def gc_report_to_pb(report: GcReport) -> pb.GCReport:
    return pb.GCReport(
        dry_run=report.dry_run,
        live=report.live,
        objects=len(report.objects),
        orphans=len(report.orphans),
        trees=len(report.trees),
        bytes_freed=report.bytes_freed,
    )


def verify_problems_to_pb(report: VerifyReport, store_root: os.PathLike | str):
    root = os.fspath(store_root)
    Kind_ = pb.VerifyProblem
    for d in report.missing:
        yield pb.VerifyProblem(kind=Kind_.KIND_MISSING, digest=pb.Digest(hash=d.hex))
    for d in report.corrupt:
        yield pb.VerifyProblem(kind=Kind_.KIND_CORRUPT, digest=pb.Digest(hash=d.hex))
    for tree, child in report.dangling:
        yield pb.VerifyProblem(
            kind=Kind_.KIND_DANGLING,
            digest=pb.Digest(hash=child.hex),
            tree=pb.Digest(hash=tree.hex),
        )
    for path in report.orphaned:
        yield pb.VerifyProblem(kind=Kind_.KIND_ORPHANED, path=os.path.relpath(path, root))


def verify_report_to_pb(report: VerifyReport) -> pb.VerifyReport:
    return pb.VerifyReport(
        ok=report.ok,
        checked=report.checked,
        bytes_checked=report.bytes_checked,
        missing=len(report.missing),
        corrupt=len(report.corrupt),
        dangling=len(report.dangling),
        orphaned=len(report.orphaned),
    )
