"""Helpers for the daemon's integration tests: a real daemon process and calls made with
the generated stubs (no client library, no mocks).

A tree *spec* is ``dict[bytes, File | Link | dict]``; a ``dict`` value is a subdirectory.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import zstandard
from grpc_health.v1 import health_pb2, health_pb2_grpc

from seal.proto.v1 import store_pb2 as pb
from seal.proto.v1 import store_pb2_grpc as pb_grpc
from seal.store import Digest, Directory, DirectoryNode, FileNode, SymlinkNode
from seal.store.layout import socket_path

CHUNK = 1 << 20
NONE, ZSTD = pb.COMPRESSION_NONE, pb.COMPRESSION_ZSTD
START_TIMEOUT = 20.0


# -- the daemon process ---------------------------------------------------------------------
@dataclass
class Stubs:
    channel: grpc.Channel
    store: pb_grpc.StoreStub
    daemon: pb_grpc.DaemonStub
    health: health_pb2_grpc.HealthStub

    def close(self) -> None:
        self.channel.close()


def connect(address: str) -> Stubs:
    channel = grpc.insecure_channel(address)
    return Stubs(
        channel,
        pb_grpc.StoreStub(channel),
        pb_grpc.DaemonStub(channel),
        health_pb2_grpc.HealthStub(channel),
    )


@dataclass
class DaemonProcess:
    """``python -m seal.daemon`` on a store, its output in a log file beside the store."""

    store: Path
    args: list[str] = field(default_factory=list)
    socket: str | None = None
    proc: subprocess.Popen | None = None
    log: Path | None = None

    def __post_init__(self) -> None:
        if self.socket is None:
            self.socket = socket_path(self.store)
        self.log = self.store.parent / f"{self.store.name}-daemon-{id(self)}.log"

    @property
    def address(self) -> str:
        return f"unix:{self.socket}"

    def start(self, *, wait: bool = True) -> DaemonProcess:
        cmd = [sys.executable, "-m", "seal.daemon", "--store", str(self.store), *self.args]
        if self.socket != socket_path(self.store):
            cmd += ["--socket", self.socket]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        if wait:
            self.wait_serving()
        return self

    def wait_serving(self, timeout: float = START_TIMEOUT) -> None:
        """Poll grpc.health.v1 until SERVING; fail with the log if the process exits."""
        deadline = time.monotonic() + timeout
        stubs = connect(self.address)
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(
                        f"daemon exited {self.proc.returncode} at start:\n{self.log_text()}"
                    )
                try:
                    r = stubs.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if r.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.05)
        finally:
            stubs.close()
        raise AssertionError(f"daemon not SERVING after {timeout} s:\n{self.log_text()}")

    def run_to_exit(self, timeout: float = START_TIMEOUT) -> int:
        """Start and wait for the process to end by itself (for refusals at start)."""
        self.start(wait=False)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()  # it should have refused to start: leave no daemon behind
            raise AssertionError(
                f"daemon still running after {timeout} s:\n{self.log_text()}"
            ) from None

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait; SIGKILL if it hangs (and fail then). Returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    f"daemon ignored SIGTERM for {timeout} s:\n{self.log_text()}"
                ) from None
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else "(no log)"


# -- errors ---------------------------------------------------------------------------------
@dataclass
class Failure:
    code: grpc.StatusCode
    details: str
    reason: str | None
    hint: str | None


def failure(exc: grpc.RpcError) -> Failure:
    meta = dict(exc.trailing_metadata() or ())
    return Failure(exc.code(), exc.details(), meta.get("seal-reason"), meta.get("seal-hint"))


def fails(call, *args, **kwargs) -> Failure:
    """Run a call that must fail; return its status (iterates streaming responses)."""
    try:
        result = call(*args, **kwargs)
        if hasattr(result, "__iter__") and not isinstance(result, bytes):
            list(result)
    except grpc.RpcError as exc:
        return failure(exc)
    raise AssertionError(f"{call} succeeded; it should have failed")


# -- blobs ----------------------------------------------------------------------------------
def dpb(digest: Digest, size: int = 0) -> pb.Digest:
    return pb.Digest(hash=digest.hex, size_bytes=size)


def put_requests(
    data: bytes,
    *,
    digest: Digest | None = None,
    size: int | None = None,
    compression: int = NONE,
    lease_id: str = "",
    root_name: str = "",
    chunk: int = CHUNK,
):
    """The messages of a Put: header (with the claimed digest/size) and data chunks."""
    digest = Digest.of_bytes(data) if digest is None else digest
    size = len(data) if size is None else size
    payload = zstandard.ZstdCompressor().compress(data) if compression == ZSTD else data
    header = pb.PutHeader(
        digest=dpb(digest, size), compression=compression, lease_id=lease_id, root_name=root_name
    )
    pieces = [payload[i : i + chunk] for i in range(0, len(payload), chunk)] or [b""]
    yield pb.PutRequest(header=header, data=pieces[0])
    for piece in pieces[1:]:
        yield pb.PutRequest(data=piece)


def put(stub: pb_grpc.StoreStub, data: bytes, **kwargs) -> pb.PutResponse:
    return stub.Put(put_requests(data, **kwargs), timeout=60)


def get(
    stub: pb_grpc.StoreStub,
    digest: Digest,
    size: int = 0,
    *,
    compression: int = NONE,
    offset: int = 0,
    limit: int = 0,
) -> bytes:
    chunks = []
    for r in stub.Get(
        pb.GetRequest(
            digest=dpb(digest, size), compression=compression, offset=offset, limit=limit
        ),
        timeout=60,
    ):
        assert len(r.data) <= CHUNK
        chunks.append(r.data)
    data = b"".join(chunks)
    if compression == ZSTD:
        return zstandard.ZstdDecompressor().decompressobj(read_across_frames=True).decompress(data)
    return data


# -- trees ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class File:
    data: bytes
    exe: bool = False


@dataclass(frozen=True)
class Link:
    target: bytes


@dataclass
class Tree:
    root: Digest
    size: int
    encodings: list[bytes]  # every directory, root first
    blobs: dict[Digest, bytes]  # every distinct file content


def build_tree(spec: dict) -> Tree:
    """The listing a client sends for ``spec`` (computed in memory)."""
    encodings: list[bytes] = []
    blobs: dict[Digest, bytes] = {}

    def level(node: dict) -> tuple[Digest, int]:
        files, dirs, links = [], [], []
        for name, child in node.items():
            name = name.encode() if isinstance(name, str) else name
            if isinstance(child, File):
                d = Digest.of_bytes(child.data)
                blobs[d] = child.data
                files.append(FileNode(name, d, len(child.data), child.exe))
            elif isinstance(child, Link):
                links.append(SymlinkNode(name, child.target))
            else:
                sub, size = level(child)
                dirs.append(DirectoryNode(name, sub, size))
        data = Directory.build(files, dirs, links).encode()
        encodings.append(data)
        return Digest.of_bytes(data), len(data)

    root, size = level(spec)
    encodings.reverse()  # root first, as a client would naturally send it
    return Tree(root, size, encodings, blobs)


def put_tree(stub: pb_grpc.StoreStub, tree: Tree, encodings: list[bytes] | None = None):
    """PutTree: returns (TreeLease, [(Digest, size)] missing)."""
    encodings = tree.encodings if encodings is None else encodings

    def requests():
        yield pb.PutTreeRequest(header=pb.PutTreeHeader(root_digest=dpb(tree.root, tree.size)))
        batch, size = [], 0
        for data in encodings:
            if batch and size + len(data) > CHUNK:
                yield pb.PutTreeRequest(directories=batch)
                batch, size = [], 0
            batch.append(data)
            size += len(data)
        if batch:
            yield pb.PutTreeRequest(directories=batch)

    lease, missing = None, []
    for r in stub.PutTree(requests(), timeout=60):
        if r.HasField("lease"):
            assert lease is None
            lease = r.lease
        missing += [(Digest.from_hex(d.hash), d.size_bytes) for d in r.missing]
    assert lease is not None
    return lease, missing


def upload_tree(stub: pb_grpc.StoreStub, tree: Tree, root_name: str = "") -> Digest:
    """The whole dedupe upload: PutTree, Put what is missing under the lease, CommitTree."""
    lease, missing = put_tree(stub, tree)
    for digest, _size in missing:
        put(stub, tree.blobs[digest], lease_id=lease.lease_id)
    r = stub.CommitTree(pb.CommitTreeRequest(lease_id=lease.lease_id, root_name=root_name))
    return Digest.from_hex(r.root_digest.hash)


def checkout(
    stub: pb_grpc.StoreStub, digest: Digest, *, compression: int = NONE, entries_only=False
) -> tuple[pb.CheckoutSummary, dict]:
    """Read a Checkout stream back into {path: File | Link | "dir"} (and its summary)."""
    out: dict[bytes, object] = {}
    summary = None
    current: tuple[bytes, bool, int] | None = None  # path, exe, size of the file being read
    parts: list[bytes] = []

    def finish():
        nonlocal current, parts
        path, exe, size = current
        data = b"".join(parts)
        if compression == ZSTD and data:
            data = (
                zstandard.ZstdDecompressor().decompressobj(read_across_frames=True).decompress(data)
            )
        assert entries_only or len(data) == size, (path, len(data), size)
        out[path] = File(data, exe)
        current, parts = None, []

    for i, message in enumerate(
        stub.Checkout(
            pb.CheckoutRequest(
                digest=dpb(digest), compression=compression, entries_only=entries_only
            ),
            timeout=60,
        )
    ):
        assert message.HasField("summary") == (i == 0)
        assert message.ByteSize() <= CHUNK + 1024
        if i == 0:
            summary = message.summary
        for item in message.items:
            kind = item.WhichOneof("item")
            if kind == "data":
                assert current is not None
                parts.append(item.data)
                continue
            if current is not None:
                finish()
            if kind == "file":
                current = (item.file.path, item.file.is_executable, item.file.digest.size_bytes)
            elif kind == "directory":
                out[item.directory.path] = "dir"
            else:
                out[item.symlink.path] = Link(item.symlink.target)
    if current is not None:
        finish()
    return summary, out


def flatten(spec: dict, prefix: bytes = b"") -> dict:
    """The {path: File | Link | "dir"} a checkout of ``spec`` yields."""
    out: dict[bytes, object] = {}
    for name, child in sorted(
        ((n.encode() if isinstance(n, str) else n, c) for n, c in spec.items())
    ):
        path = prefix + name
        if isinstance(child, File | Link):
            out[path] = child
        else:
            out[path] = "dir"
            out.update(flatten(child, path + b"/"))
    return out


def object_files(store: Path) -> set[str]:
    return {str(p.relative_to(store)) for p in (store / "objects").rglob("*") if p.is_file()}


def store_tmp_files(store: Path) -> list[str]:
    return [str(p) for p in (store / "tmp").rglob("*") if p.is_file()]
