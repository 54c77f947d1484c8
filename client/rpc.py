"""The client's gRPC layer: the store verbs over the daemon's API.

This is the only client module that imports the generated stubs or catches
``grpc.RpcError``: every failed call becomes a ``ClientError`` with an exit
code from one table (``exitcodes.EXIT_CODES``), keyed by the status code and the
daemon's ``seal-reason``.  Results are plain dicts shaped as the CLI's
``--json`` output (see ``RemoteBackend``).

>>> from seal.client.daemonproc import Supervisor
>>> with Supervisor(store_root) as daemon:                   # doctest: +SKIP
...     RemoteBackend(daemon.connect).add("some/dir")["digest"]
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence

import grpc

from seal.proto.v1 import store_pb2 as pb
from seal.proto.v1 import store_pb2_grpc as pb_grpc
from seal.store.digest import Digest
from seal.store.errors import StoreError

from . import exitcodes
from .errors import ClientError, corrupt_download
from .exitcodes import EXIT_CODES, exit_code  # noqa: F401 - EXIT_CODES: the table, here too

CHUNK = 1 << 20  # the API's cap on one message's bytes payload
MAX_DIGESTS = 10_000  # the API's cap on digests in one message
REASON_KEY = "seal-reason"
HINT_KEY = "seal-hint"
LOCAL = "INVALID_ARGUMENT"  # the status an error raised in this process counts as

_CHANNEL_OPTIONS = [
    ("grpc.enable_http_proxy", 0),
    # a daemon that is starting answers within milliseconds: retry connects quickly
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 250),
]


def from_rpc_error(exc: grpc.RpcError, where: str = "") -> ClientError:
    """A ClientError for a failed call: the daemon's message, reason and hint, or ours."""
    code = exc.code() if hasattr(exc, "code") else None
    name = code.name if code is not None else "UNKNOWN"
    meta = dict(exc.trailing_metadata() or ()) if hasattr(exc, "trailing_metadata") else {}
    reason, hint = meta.get(REASON_KEY), meta.get(HINT_KEY)
    details = (exc.details() if hasattr(exc, "details") else None) or name.lower()
    if reason is None:  # not the daemon's own refusal: the transport, or gRPC itself
        if name in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED"):
            reason = "daemon-unavailable"
            details = f"lost the connection to the seal daemon{where} ({_first_line(details)})"
            hint = "run the command again (seal restarts the daemon); see daemon.log in the store"
        elif name == "RESOURCE_EXHAUSTED":
            reason = "message-too-large"
        elif name == "UNIMPLEMENTED":
            reason = "daemon-incompatible"
            hint = "the daemon is another version of seal: 'seal daemon stop', then retry"
        else:
            reason = "daemon-error"
            hint = hint or "this is a bug in seal; see the daemon's log (daemon.log in the store)"
    return ClientError(
        " ".join(details.splitlines()), hint=hint, reason=reason, exit_code=exit_code(name, reason)
    )


def from_store_error(exc: StoreError) -> ClientError:
    """A ClientError for input refused in this process by the store's helpers."""
    return ClientError(
        exc.message, hint=exc.hint, reason=exc.reason, exit_code=exit_code(LOCAL, exc.reason)
    )


@contextlib.contextmanager
def translated(where: str = "") -> Iterator[None]:
    """Turn gRPC failures and locally refused input into ClientErrors."""
    try:
        yield
    except grpc.RpcError as exc:
        raise from_rpc_error(exc, where) from None
    except StoreError as exc:
        raise from_store_error(exc) from None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def parse_digest(text: str) -> Digest:
    with translated():
        return Digest.parse(text)


def digest_pb(digest: Digest, size: int = 0) -> pb.Digest:
    return pb.Digest(hash=digest.hex, size_bytes=size)


def digest_from_pb(msg: pb.Digest) -> Digest:
    with translated():
        return Digest.from_hex(msg.hash)


class Connection:
    """A channel to one daemon with its stubs; cheap to make, thread-safe to use."""

    def __init__(self, address: str):
        self.address = address
        self.channel = grpc.insecure_channel(address, options=_CHANNEL_OPTIONS)
        self.store = pb_grpc.StoreStub(self.channel)
        self.daemon = pb_grpc.DaemonStub(self.channel)
        self.info: dict | None = None  # the last Status, kept by status()

    def handoff_address(self) -> str:
        """The daemon's descriptor handoff socket ("" for none), from its Status."""
        info = self.info if self.info is not None else self.status()
        return info["handoff"]

    def close(self) -> None:
        self.channel.close()

    def status(self, timeout: float = 5.0) -> dict:
        """The daemon's Status as a dict (raises ClientError)."""
        with translated():
            r = self.daemon.Status(pb.StatusRequest(), timeout=timeout)
        self.info = {
            "pid": r.pid,
            "store": r.store_path,
            "socket": r.socket,
            "uptime": r.uptime_seconds,
            "version": r.version,
            "store_format": r.store_format,
            "handoff": r.handoff_address,
        }
        return self.info

    def status_or_none(self, timeout: float = 5.0) -> dict | None:
        """Status, or None when nothing answers (any other failure raises ClientError)."""
        try:
            return self.status(timeout)
        except ClientError as exc:
            if exc.reason == "daemon-unavailable":
                return None
            raise

    def serving(self, timeout: float) -> bool:
        """Whether grpc.health.v1 says SERVING for the whole server ("")."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self.channel)
        try:
            r = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return False  # not up yet: the caller polls under its own deadline
        return r.status == health_pb2.HealthCheckResponse.SERVING

    def shutdown(self, grace: float = 0.0, timeout: float = 5.0) -> bool:
        """Ask the daemon to stop; False if it was already unreachable."""
        try:
            self.daemon.Shutdown(pb.ShutdownRequest(grace_seconds=grace), timeout=timeout)
        except grpc.RpcError as exc:
            err = from_rpc_error(exc)
            if err.reason == "daemon-unavailable":
                return False
            raise err from None
        return True


class StoreCalls:
    """The calls an upload makes (``upload.Transport``), over one connection."""

    def __init__(self, conn: Connection):
        self._stub = conn.store

    def find_missing(self, digests: Sequence[Digest]) -> list[Digest]:
        missing: list[Digest] = []
        for start in range(0, len(digests), MAX_DIGESTS):
            batch = [digest_pb(d) for d in digests[start : start + MAX_DIGESTS]]
            with translated():
                r = self._stub.FindMissing(pb.FindMissingRequest(digests=batch))
            missing.extend(digest_from_pb(m) for m in r.missing)
        return missing

    def put_tree(
        self, root: Digest, root_size: int, directories: Sequence[bytes]
    ) -> tuple[str, list[Digest]]:
        lease, missing = "", []
        requests = _Feed(_tree_requests(root, root_size, directories))
        with requests.translated():
            for r in self._stub.PutTree(requests):
                if r.HasField("lease"):
                    lease = r.lease.lease_id
                missing.extend(digest_from_pb(m) for m in r.missing)
        if not lease:
            raise ClientError(
                "the daemon answered PutTree without a lease",
                reason="protocol-error",
                exit_code=exitcodes.INTERNAL,
            )
        return lease, missing

    def put_blob(
        self,
        digest: Digest,
        size: int,
        chunks: Iterable[bytes],
        *,
        lease_id: str | None = None,
        root_name: str | None = None,
    ) -> None:
        header = pb.PutHeader(
            digest=digest_pb(digest, size), lease_id=lease_id or "", root_name=root_name or ""
        )
        requests = _Feed(_put_requests(header, chunks))
        with requests.translated():
            self._stub.Put(requests)

    def put_blobs(self, blobs: Sequence[tuple[Digest, bytes]], *, lease_id: str) -> None:
        request = pb.BatchPutRequest(
            blobs=[
                pb.BatchPutRequest.Blob(digest=digest_pb(d, len(data)), data=data)
                for d, data in blobs
            ],
            lease_id=lease_id,
        )
        with translated():
            self._stub.BatchPut(request)

    def commit_tree(self, lease_id: str, root_name: str | None) -> Digest:
        with translated():
            r = self._stub.CommitTree(
                pb.CommitTreeRequest(lease_id=lease_id, root_name=root_name or "")
            )
        return digest_from_pb(r.root_digest)

    def cancel_tree(self, lease_id: str) -> None:
        with translated():
            self._stub.CancelTree(pb.CancelTreeRequest(lease_id=lease_id), timeout=10)

    def add_handoff(
        self, token: str, root_name: str | None, display_path: str
    ) -> tuple[Digest, str, int]:
        """Add what the descriptor handed over under ``token`` names: (digest, kind, size)."""
        request = pb.AddHandoffRequest(
            token=token, root_name=root_name or "", display_path=display_path
        )
        with translated():
            r = self._stub.AddHandoff(request)
        return digest_from_pb(r.digest), _KINDS.get(r.kind, "blob"), r.digest.size_bytes

    def add_root(self, name: str, digest: Digest) -> None:
        with translated():
            self._stub.AddRoot(pb.AddRootRequest(root=pb.Root(name=name, digest=digest_pb(digest))))


class _Feed:
    """A request iterator that keeps an exception raised while producing requests.

    gRPC swallows such an exception and cancels the call; ``translated`` then
    re-raises the original (e.g. "file vanished") instead of "cancelled".
    """

    def __init__(self, requests: Iterator):
        self._requests = requests
        self.error: BaseException | None = None

    def __iter__(self) -> _Feed:
        return self

    def __next__(self):
        try:
            return next(self._requests)
        except StopIteration:
            raise
        except BaseException as exc:
            self.error = exc
            raise

    @contextlib.contextmanager
    def translated(self) -> Iterator[None]:
        try:
            with translated():
                yield
        except ClientError:
            if self.error is not None:
                if isinstance(self.error, StoreError):
                    raise from_store_error(self.error) from None
                raise self.error from None
            raise


def _put_requests(header: pb.PutHeader, chunks: Iterable[bytes]) -> Iterator[pb.PutRequest]:
    first = True
    for chunk in chunks:
        if first:
            yield pb.PutRequest(header=header, data=chunk)
            first = False
        else:
            yield pb.PutRequest(data=chunk)
    if first:
        yield pb.PutRequest(header=header)  # the empty blob


def _tree_requests(
    root: Digest, root_size: int, directories: Sequence[bytes]
) -> Iterator[pb.PutTreeRequest]:
    header: pb.PutTreeHeader | None = pb.PutTreeHeader(root_digest=digest_pb(root, root_size))
    batch: list[bytes] = []
    total = 0
    for data in directories:
        if batch and total + len(data) > CHUNK:
            yield pb.PutTreeRequest(header=header, directories=batch)
            header, batch, total = None, [], 0
        batch.append(data)
        total += len(data)
    yield pb.PutTreeRequest(header=header, directories=batch)


_KINDS = {pb.OBJECT_KIND_BLOB: "blob", pb.OBJECT_KIND_TREE: "tree"}
_PROBLEMS = pb.VerifyProblem.Kind


class RemoteBackend:
    """The store verbs, run by the daemon; the same methods and results as the CLI renders.

    ``connect(create_store)`` returns a ``Connection`` to a compatible daemon
    (``daemonproc.Supervisor.connect``, which starts one if needed); verbs
    that only read pass ``create_store=False`` so a missing store is
    reported rather than created.
    """

    def __init__(self, connect: Callable[..., Connection]):
        self._connect = connect

    def _store(self, *, create_store: bool = False) -> pb_grpc.StoreStub:
        return self._connect(create_store=create_store).store

    # -- writing ------------------------------------------------------------------------
    def add(self, path: str, root: str | None = None) -> dict:
        """Add a file or directory; {"digest", "kind", "size", "root"}."""
        if root == "":  # the wire's "no root": an empty name cannot travel, so refuse it here
            raise ClientError(
                "invalid root name '': use 1-255 printable characters",
                reason="invalid-root-name",
                exit_code=exit_code(LOCAL, "invalid-root-name"),
            )
        from . import handoff, upload  # imported by the verbs that need them: start-up stays fast

        with translated():
            upload.check_top(path)  # bad input is refused before a daemon starts
            conn = self._connect(create_store=True)
            calls = StoreCalls(conn)
            token = handoff.hand_over(conn.handoff_address(), path) if handoff.enabled() else None
            if token is not None:  # the daemon reads through a descriptor opened here
                shown = os.fsdecode(path).encode("utf-8", "backslashreplace").decode()
                digest, kind, size = calls.add_handoff(token, root, shown)
                return {"digest": str(digest), "kind": kind, "size": size, "root": root}
            return upload.send(calls, upload.prepare(path), root)

    def root_add(self, name: str, digest: str) -> dict:
        d = parse_digest(digest)
        StoreCalls(self._connect(create_store=True)).add_root(name, d)
        return {"name": name, "digest": str(d)}

    def root_rm(self, name: str) -> dict:
        stub = self._store(create_store=True)
        with translated():
            stub.RemoveRoot(pb.RemoveRootRequest(name=name))
        return {"name": name}

    def gc(self, dry_run: bool) -> dict:
        stub = self._store(create_store=True)
        objects: list[str] = []
        orphans: list[str] = []
        trees: list[str] = []
        report = None
        with translated():
            for event in stub.GC(pb.GCRequest(dry_run=dry_run)):
                if event.HasField("removed"):
                    objects.extend(str(digest_from_pb(d)) for d in event.removed.objects)
                    orphans.extend(event.removed.orphans)
                    trees.extend(str(digest_from_pb(d)) for d in event.removed.trees)
                elif event.HasField("report"):
                    report = event.report
        if report is None:
            raise _protocol("the GC stream ended without a report")
        return {
            "dry_run": report.dry_run,
            "live": report.live,
            "objects": objects,
            "orphans": orphans,
            "trees": trees,
            "bytes_freed": report.bytes_freed,
        }

    # -- reading ------------------------------------------------------------------------
    def cat(self, digest: str) -> Iterator[bytes]:
        """An object's bytes in chunks; the content is re-hashed against the digest."""
        d = parse_digest(digest)
        stub = self._store()
        h = hashlib.sha256()
        with translated():
            for r in stub.Get(pb.GetRequest(digest=digest_pb(d))):
                h.update(r.data)
                yield r.data
        if h.digest() != d.raw:
            raise corrupt_download(
                f"the daemon sent bytes for {d} that hash to sha256:{h.hexdigest()}"
            )

    def stat(self, digest: str) -> dict:
        d = parse_digest(digest)
        stub = self._store()
        with translated():
            r = stub.Stat(pb.StatRequest(digest=digest_pb(d)))
        return {
            "digest": str(digest_from_pb(r.digest)),
            "kind": _KINDS.get(r.kind, "blob"),
            "size": r.digest.size_bytes,
            "executable_copy": r.executable_copy,
            "roots": sorted(r.roots),
        }

    def ls(self, digest: str) -> list[dict]:
        d = parse_digest(digest)
        entries = []
        for item in self._checkout_items(d, entries_only=True):
            kind, path = item[0], os.fsdecode(item[1])
            if kind == "dir":
                entries.append(_entry(path, "dir", "040000", item[3], str(item[2]), None))
            elif kind == "symlink":
                target = os.fsdecode(item[2])
                entries.append(_entry(path, "symlink", "120000", len(item[2]), None, target))
            elif kind == "file":
                mode = "100755" if item[4] else "100644"
                entries.append(_entry(path, "file", mode, item[3], str(item[2]), None))
        return entries

    def checkout(self, digest: str, dest: str) -> dict:
        from . import checkout as _checkout

        d = parse_digest(digest)
        _checkout.prepare(dest)  # refuse an existing destination before any call
        count = _checkout.write(self._checkout_items(d, entries_only=False), dest)
        return {"digest": str(d), "path": os.path.abspath(dest), "entries": count}

    def _checkout_items(self, d: Digest, *, entries_only: bool) -> Iterator[tuple]:
        stub = self._store()
        request = pb.CheckoutRequest(digest=digest_pb(d), entries_only=entries_only)
        with translated():
            for r in stub.Checkout(request):
                for item in r.items:
                    which = item.WhichOneof("item")
                    if which == "data":
                        yield ("data", item.data)
                    elif which == "file":
                        f = item.file
                        yield (
                            "file",
                            f.path,
                            digest_from_pb(f.digest),
                            f.digest.size_bytes,
                            f.is_executable,
                        )
                    elif which == "directory":
                        sub = item.directory
                        yield ("dir", sub.path, digest_from_pb(sub.digest), sub.digest.size_bytes)
                    elif which == "symlink":
                        yield ("symlink", item.symlink.path, item.symlink.target)

    def verify(self) -> dict:
        stub = self._store()
        missing: list[str] = []
        corrupt: list[str] = []
        dangling: list[dict] = []
        orphaned: list[str] = []
        report = None
        with translated():
            for event in stub.Verify(pb.VerifyRequest()):
                if event.HasField("problem"):
                    p = event.problem
                    if p.kind == _PROBLEMS.KIND_MISSING:
                        missing.append(str(digest_from_pb(p.digest)))
                    elif p.kind == _PROBLEMS.KIND_CORRUPT:
                        corrupt.append(str(digest_from_pb(p.digest)))
                    elif p.kind == _PROBLEMS.KIND_DANGLING:
                        dangling.append(
                            {
                                "tree": str(digest_from_pb(p.tree)),
                                "child": str(digest_from_pb(p.digest)),
                            }
                        )
                    elif p.kind == _PROBLEMS.KIND_ORPHANED:
                        orphaned.append(p.path)
                elif event.HasField("report"):
                    report = event.report
        if report is None:
            raise _protocol("the Verify stream ended without a report")
        return {
            "ok": report.ok,
            "checked": report.checked,
            "bytes_checked": report.bytes_checked,
            "missing": missing,
            "corrupt": corrupt,
            "dangling": dangling,
            "orphaned": orphaned,
        }

    def roots(self) -> dict[str, str]:
        try:
            stub = self._store()
        except ClientError as exc:
            if exc.reason == "store-missing":
                return {}
            raise
        with translated():
            r = stub.ListRoots(pb.ListRootsRequest())
        return {root.name: str(digest_from_pb(root.digest)) for root in r.roots}


def _entry(path, kind, mode, size, digest, target) -> dict:
    return {
        "path": path,
        "kind": kind,
        "mode": mode,
        "size": size,
        "digest": digest,
        "target": target,
    }


def _protocol(what: str) -> ClientError:
    return ClientError(
        f"the daemon broke the protocol: {what}",
        hint="report this with the daemon's log",
        reason="protocol-error",
        exit_code=exitcodes.INTERNAL,
    )
