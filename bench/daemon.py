"""Benchmark the daemon: Stat latency and rate, upload throughput, CLI start-up cost.

Each figure is a ratio against an anchor measured in the same run, or a
percentile of many calls, because the machines are shared and noisy:

- Stat over gRPC on the Unix socket: p50/p99 latency with 1 client and with 16
  concurrent client processes, and the total Stat calls per second.
  Targets: p99 <= 5 ms at 16 clients; >= 2,000 Stat/s on 2 cores.
- Upload: ``seal store add`` through a running daemon (the client library
  called in this process, so Python start-up is left to the CLI figure) vs
  ``Store.put_path`` in-process on the same data (throughput ratio), for a tree
  of small files and for one large file, both ways a client uploads: the
  default (the client hands the daemon an open descriptor) and
  ``SEAL_UPLOAD=stream`` (bytes over gRPC, what a client of another user or
  host does). Target: >= 0.7 for the default.
- CLI: a ``seal store stat`` process against a running daemon vs
  ``python -c pass``. Target: <= 2.5x.

Two anchors show what grpcio itself costs here: the 16-client Stat load
against a bare grpcio server whose Stat returns an empty answer, and a process
that only imports grpc and the stubs.

Run by hand: ``python3 bench/daemon.py [--quick]``.  Store data goes to
/dev/shm (software cost, not the disk's).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing as mp
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from seal.client.cli import main as cli_main
from seal.store import Digest, Store
from seal.store.layout import socket_path

MiB = 1 << 20


# -- daemon process --------------------------------------------------------------------
class Daemon:
    """A daemon subprocess on a fresh store; stopped on exit."""

    def __init__(self, root: Path):
        self.root = root
        self.socket = socket_path(root)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "seal.daemon", "--store", str(root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while not _serving(self.socket):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daemon on {root} did not start")
            time.sleep(0.02)

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _serving(sock: str) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    if not os.path.exists(sock):
        return False
    with grpc.insecure_channel(f"unix:{sock}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1
            )
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


# -- a bare grpcio server: what grpcio alone costs ------------------------------------
_BARE_SERVER = """
import sys
from concurrent.futures import ThreadPoolExecutor
import grpc
from seal.proto.v1 import store_pb2 as pb, store_pb2_grpc as pb_grpc

class Bare(pb_grpc.StoreServicer):
    def Stat(self, request, context):
        return pb.StatResponse()

server = grpc.server(ThreadPoolExecutor(max_workers=32))
pb_grpc.add_StoreServicer_to_server(Bare(), server)
server.add_insecure_port("unix:" + sys.argv[1])
server.start()
print("ready", flush=True)
server.wait_for_termination()
"""


@contextlib.contextmanager
def bare_server(sock: Path):
    """A grpcio server on ``sock`` whose Stat returns an empty answer: no store, no seal."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _BARE_SERVER, str(sock)], stdout=subprocess.PIPE, text=True
    )
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the bare grpcio server did not start")
        yield str(sock)
    finally:
        proc.kill()
        proc.wait()


# -- Stat latency ----------------------------------------------------------------------
def _stat_worker(
    sock: str, hexdigest: str, size: int, calls: int, start_at: float, out: mp.Queue
) -> None:
    import grpc

    from seal.proto.v1 import store_pb2 as pb
    from seal.proto.v1 import store_pb2_grpc as pb_grpc

    channel = grpc.insecure_channel(f"unix:{sock}")
    stub = pb_grpc.StoreStub(channel)
    request = pb.StatRequest(digest=pb.Digest(hash=hexdigest, size_bytes=size))
    for _ in range(20):  # warm the channel
        stub.Stat(request)
    while time.time() < start_at:
        time.sleep(0.001)
    latencies = []
    begin = time.perf_counter()
    for _ in range(calls):
        t = time.perf_counter()
        stub.Stat(request)
        latencies.append(time.perf_counter() - t)
    out.put((latencies, begin, time.perf_counter()))
    channel.close()


def bench_stat(sock: str, digest: Digest, size: int, clients: int, calls: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    start_at = time.time() + 2.0 + 0.1 * clients  # all start together after spawning
    procs = [
        ctx.Process(target=_stat_worker, args=(sock, digest.hex, size, calls, start_at, queue))
        for _ in range(clients)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
    latencies = sorted(x for lat, _, _ in results for x in lat)
    wall = max(end for _, _, end in results) - min(begin for _, begin, _ in results)
    return {
        "clients": clients,
        "calls": len(latencies),
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "rate": len(latencies) / wall,
    }


# -- uploads ---------------------------------------------------------------------------
def make_tree(root: Path, files: int, rng: random.Random) -> None:
    for i in range(files):
        d = root / f"pkg{i % 25}" / f"mod{(i // 25) % 20}"
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"f{i}.py"
        p.write_bytes(rng.randbytes(rng.randint(1024, 9 * 1024)))
        if i % 20 == 0:
            p.chmod(0o755)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def seal_cli(*args: str) -> list[str]:
    """The installed console script of this Python (not a version manager's shim on PATH)."""
    exe = Path(sys.executable).with_name("seal")
    if exe.exists():
        return [str(exe), *args]
    return [sys.executable, "-m", "seal.client.cli", *args]


def bench_upload(base: Path, source: Path, repeat: int, mode: str) -> tuple[float, float]:
    """Median seconds: (in-process put, seal store add through a daemon).

    ``mode`` is SEAL_UPLOAD's value: "" (the default: a descriptor handed over
    when the daemon offers it) or "stream" (bytes over gRPC).
    """
    os.environ["SEAL_UPLOAD"] = mode
    warm = base / "warm-up"  # a tree big enough to start the store's ingest workers
    if not warm.exists():
        make_tree(warm, 1000, random.Random(3))
    local, remote = [], []
    for i in range(repeat):
        store_dir = base / f"local-{i}"
        with Store.open(store_dir) as store:
            store.put_path(warm)
            local.append(timed(lambda s=store: s.put_path(source)))
        shutil.rmtree(store_dir)
        store_dir = base / f"remote-{i}"
        # a running daemon, warmed up like the in-process store: then the timed add,
        # the client library in this process (process start-up is the CLI figure's)
        with Daemon(store_dir), contextlib.redirect_stdout(io.StringIO()):
            _check(cli_main(["--store", str(store_dir), "-q", "store", "add", str(warm)]))
            args = ["--store", str(store_dir), "-q", "store", "add", str(source)]
            remote.append(timed(lambda a=args: _check(cli_main(a))))
        shutil.rmtree(store_dir)
    return statistics.median(local), statistics.median(remote)


def _check(code: int) -> None:
    if code != 0:
        raise RuntimeError(f"seal store add exited {code}")


def bench_cli(store_dir: Path, digest: Digest, repeat: int) -> tuple[float, float]:
    """Median seconds: (python -c pass, seal store stat against a running daemon)."""
    base, cli = [], []
    stat = seal_cli("--store", str(store_dir), "store", "stat", str(digest))
    subprocess.run(stat, check=True, stdout=subprocess.DEVNULL)  # warm caches
    for _ in range(repeat):
        base.append(timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True)))
        cli.append(timed(lambda: subprocess.run(stat, check=True, stdout=subprocess.DEVNULL)))
    return statistics.median(base), statistics.median(cli)


def bench_import(repeat: int) -> float:
    """Median seconds of a process that only imports grpc and seal's store stubs."""
    cmd = [sys.executable, "-c", "import grpc, seal.proto.v1.store_pb2_grpc"]
    return statistics.median(timed(lambda: subprocess.run(cmd, check=True)) for _ in range(repeat))


# -- report ----------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and smaller data")
    args = parser.parse_args(argv)
    calls = 300 if args.quick else 2000
    files = 1000 if args.quick else 5000
    big = (32 if args.quick else 256) * MiB
    repeat = 3 if args.quick else 5

    base = Path(tempfile.mkdtemp(prefix="seal-bench-daemon-", dir="/dev/shm"))
    try:
        print(f"seal daemon benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        print(
            f"host: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        rng = random.Random(7)
        tree = base / "tree"
        make_tree(tree, files, rng)
        bigfile = base / "big.bin"
        with bigfile.open("wb") as f:
            for _ in range(big // MiB):
                f.write(rng.randbytes(MiB))

        store_dir = base / "stat-store"
        with Daemon(store_dir):
            subprocess.run(
                seal_cli("--store", str(store_dir), "-q", "store", "add", str(tree / "pkg0")),
                check=True,
                stdout=subprocess.PIPE,
            )
            with Store.open(store_dir, readonly=True) as s:
                blob = next(r for r in s.db.iter_objects())
            print("\nStat over gRPC (Unix socket)")
            for clients in (1, 16):
                r = bench_stat(
                    socket_path(store_dir),
                    blob.digest,
                    blob.size,
                    clients,
                    calls if clients == 1 else calls // 4,
                )
                target = ""
                if clients == 16:
                    target = (
                        f"  [p99 {verdict(r['p99_ms'] <= 5)} <=5 ms, "
                        f"rate {verdict(r['rate'] >= 2000)} >=2,000/s]"
                    )
                print(
                    f"  {clients:2d} client(s): {r['calls']:6d} calls  "
                    f"p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  "
                    f"{r['rate']:,.0f} Stat/s{target}"
                )
            with bare_server(base / "bare.sock") as sock:
                r = bench_stat(sock, blob.digest, blob.size, 16, calls // 4)
            print(
                f"  anchor, a bare grpcio server (empty Stat, no store), 16 clients: "
                f"p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  {r['rate']:,.0f} Stat/s"
            )
            base_t, cli_t = bench_cli(store_dir, blob.digest, repeat * 2)
            grpc_t = bench_import(repeat * 2)
            print("\nCLI start-up")
            print(
                f"  python -c pass {1000 * base_t:.0f} ms; seal store stat {1000 * cli_t:.0f} "
                f"ms; ratio {cli_t / base_t:.2f}x [{verdict(cli_t / base_t <= 2.5)} <=2.5x]"
            )
            print(
                f"  anchor, python -c 'import grpc' and the stubs: {1000 * grpc_t:.0f} ms; "
                f"ratio {grpc_t / base_t:.2f}x"
            )

        print("\nUpload through the daemon vs in-process put (throughput ratio)")
        tree_bytes = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
        for mode, how in (("", "descriptor handoff (default)"), ("stream", "bytes over gRPC")):
            print(f"  {how}:")
            for label, source, size in (("tree", tree, tree_bytes), ("file", bigfile, big)):
                local, remote = bench_upload(base, source, repeat, mode)
                ratio = local / remote
                target = f" [{verdict(ratio >= 0.7)} >=0.7]" if not mode else ""
                print(
                    f"    {label}: {size / MiB:.0f} MiB; in-process {size / MiB / local:.0f} "
                    f"MiB/s, daemon {size / MiB / remote:.0f} MiB/s; ratio {ratio:.2f}{target}"
                )
        print(
            "\nUploads run the client library in this process (walk, hash, gRPC);"
            " the CLI's process start-up is the figure above."
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
