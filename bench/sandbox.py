"""Benchmark builds: sandbox overhead, cache-hit latency, compiling inside vs outside.

Every figure is against an anchor measured in the same run (shared, noisy machines):

- no-op build: ``/bin/true`` as a derivation realized through a running daemon
  (fresh derivation each time, so it really runs: materialize, bwrap, collect
  the empty output, store the log and records) and ``sandbox.run`` alone, vs
  starting ``/bin/true`` directly; the difference is the overhead.
  Target: <= 50 ms.
- cache hit: Realize of an already realised derivation, by digest, from a
  client in this process (gRPC over the Unix socket), p50/p99.  Target: <= 10 ms.
- compile: the same C project (``--files`` files, -O2, make -j cores) built by
  a derivation in the sandbox vs by make on the host in a temporary directory;
  both sides copy the sources and run make; the sandbox side also pays for
  the realize (drv upload, materialize, collect the output, records), a fixed
  ~40 ms, so the ratio falls as the project grows.  Target: ratio <= 1.05.

The root tree is staged from the host's installed Debian packages (the test kit
tests/hostroot.py).  Run by hand: ``python bench/sandbox.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

from seal.daemon.build import sandbox
from seal.proto.v1 import build_pb2 as bpb
from seal.proto.v1 import build_pb2_grpc as bpb_grpc
from seal.store import Store
from seal.store.layout import socket_path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from hostroot import TOOLCHAIN_PACKAGES, stage_host_root  # noqa: E402

SEAL = [sys.executable, "-m", "seal.client.cli"]


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def p99_ms(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


class Daemon:
    def __init__(self, store: Path):
        self.store = store
        self.proc = subprocess.Popen(
            [*SEAL, "--store", str(store), "daemon", "run"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.channel = grpc.insecure_channel(f"unix:{socket_path(store)}")
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.build = bpb_grpc.BuildStub(self.channel)

    def seal(self, *args: str) -> str:
        return subprocess.run(
            [*SEAL, "--store", str(self.store), *args], capture_output=True, text=True, check=True
        ).stdout

    def realize(self, doc: dict | None = None, target: str = "main") -> bpb.Result:
        docs = [bpb.DerivationDocument(name="main", json=json.dumps(doc).encode())] if doc else []
        result = None
        for ev in self.build.Realize(bpb.RealizeRequest(documents=docs, target=target)):
            if ev.WhichOneof("event") == "result":
                result = ev.result
        return result

    def close(self) -> None:
        self.channel.close()
        self.proc.terminate()
        self.proc.wait(timeout=60)


def drv(root: str, script: str, *, name: str, env: dict | None = None, inputs=None) -> dict:
    return {
        "name": name,
        "builder": {"sandbox": {"args": ["/bin/sh", "-c", script], "env": env or {}}, "root": "r"},
        "inputs": {"r": {"object": root}, **(inputs or {})},
    }


def bench_noop(daemon: Daemon, root: str, root_dir: Path, runs: int) -> None:
    direct, sandboxed, realized = [], [], []
    for _ in range(3):  # warm the page cache and the materialized root
        subprocess.run(["/bin/true"], check=True)
    spec_root = None
    with Store.open(Path(tempfile.mkdtemp(dir="/dev/shm")) / "s") as store:
        spec_root = store.materialize(store.put_tree(root_dir))
        for i in range(runs):
            t = time.perf_counter()
            subprocess.run(["/bin/true"], check=True)
            direct.append(time.perf_counter() - t)
            work = Path(tempfile.mkdtemp(dir="/dev/shm"))
            spec = sandbox.SandboxSpec(
                root=spec_root,
                inputs={},
                args=["/bin/true"],
                env={},
                outputs=["out"],
                source_date_epoch=315532800,
            )
            t = time.perf_counter()
            result = sandbox.run(spec, work, lambda b: None)
            sandboxed.append(time.perf_counter() - t)
            assert result.ok, result.reason
            shutil.rmtree(work)
            doc = drv(root, "true", name=f"noop-{i}-{time.time_ns()}")
            t = time.perf_counter()
            r = daemon.realize(doc)
            realized.append(time.perf_counter() - t)
            assert r is not None and r.outputs["out"]
    d = median_ms(direct)
    print(f"no-op: /bin/true directly          median {d:7.1f} ms")
    print(
        f"no-op: sandbox.run(/bin/true)      median {median_ms(sandboxed):7.1f} ms"
        f"  overhead {median_ms(sandboxed) - d:6.1f} ms"
    )
    print(
        f"no-op: realize via the daemon      median {median_ms(realized):7.1f} ms"
        f"  overhead {median_ms(realized) - d:6.1f} ms   (target <= 50 ms)"
    )


def bench_cache_hit(daemon: Daemon, root: str, runs: int) -> None:
    r = daemon.realize(drv(root, "echo cached > $out/f", name="cache-hit"))
    target = r.drv
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        hit = daemon.realize(target=target)
        samples.append(time.perf_counter() - t)
        assert hit.cached
    print(
        f"cache hit: Realize by digest        p50 {median_ms(samples):6.2f} ms"
        f"  p99 {p99_ms(samples):6.2f} ms   (target <= 10 ms)"
    )
    cli = []
    for _ in range(max(3, runs // 20)):
        t = time.perf_counter()
        daemon.seal("realize", "-q", target)
        cli.append(time.perf_counter() - t)
    print(f"cache hit: `seal realize DIGEST`    median {median_ms(cli):6.1f} ms (CLI process)")


def c_project(dest: Path, files: int) -> None:
    dest.mkdir(parents=True)
    objs = []
    for i in range(files):
        body = "\n".join(
            f"static double f{i}_{j}(double x) {{ double s = 0; for (int k = 0; k < {50 + j}; k++)"
            f" s += x * k / (k + 1.0); return s; }}"
            for j in range(60)
        )
        calls = " + ".join(f"f{i}_{j}(x)" for j in range(60))
        (dest / f"m{i}.c").write_text(f"{body}\ndouble mod{i}(double x) {{ return {calls}; }}\n")
        objs.append(f"m{i}.o")
    decls = "".join(f"double mod{i}(double);\n" for i in range(files))
    total = " + ".join(f"mod{i}(1.5)" for i in range(files))
    (dest / "main.c").write_text(
        f'#include <stdio.h>\n{decls}int main(void) {{ printf("%f\\n", {total}); return 0; }}\n'
    )
    (dest / "Makefile").write_text(
        "CFLAGS = -O2\n"
        f"prog: main.o {' '.join(objs)}\n\t$(CC) -o $@ $^\n"
        "%.o: %.c\n\t$(CC) $(CFLAGS) -c $<\n"
    )


def bench_compile(daemon: Daemon, root: str, work: Path, files: int, runs: int) -> None:
    src = work / "project"
    c_project(src, files)
    src_digest = daemon.seal("store", "add", str(src)).strip().splitlines()[-1]
    jobs = os.cpu_count() or 1
    outside, inside = [], []
    for i in range(runs):
        tmp = work / f"host-{i}"
        tmp.mkdir()
        t = time.perf_counter()  # the same steps as inside: copy the sources, make
        subprocess.run(["cp", "-r", f"{src}/.", "."], cwd=tmp, check=True)
        subprocess.run(["make", "-s", f"-j{jobs}", "CC=gcc"], cwd=tmp, check=True)
        outside.append(time.perf_counter() - t)
        shutil.rmtree(tmp)
        doc = drv(
            root,
            f"cp -r /inputs/src/. . && make -s -j$SEAL_BUILD_CORES CC=gcc && cp prog $out/ # {i}"
            f" {time.time_ns()}",
            name="compile",
            env={"PATH": "/usr/bin:/bin"},
            inputs={"src": {"object": src_digest}},
        )
        t = time.perf_counter()
        r = daemon.realize(doc)
        inside.append(time.perf_counter() - t)
        assert r is not None and r.outputs["out"]
    o, s = statistics.median(outside), statistics.median(inside)
    print(f"compile: make on the host          median {o:6.2f} s  ({files} files, -j{jobs})")
    print(f"compile: make in the sandbox       median {s:6.2f} s")
    print(f"compile: sandbox / host            {s / o:6.3f}x   (target <= 1.05)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="few runs, small project (smoke test)")
    ap.add_argument(
        "--files", type=int, default=48, help="C files in the compile project (default 48)"
    )
    ap.add_argument("--only", choices=("noop", "cache", "compile"), help="run one part")
    args = ap.parse_args()
    runs = 5 if args.quick else 30
    print(f"load average: {Path('/proc/loadavg').read_text().split()[:3]}")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        work = Path(tmp)
        root_dir = stage_host_root(work / "root", TOOLCHAIN_PACKAGES)
        daemon = Daemon(work / "store")
        try:
            root = daemon.seal("store", "add", str(root_dir)).strip().splitlines()[-1]
            if args.only in (None, "noop"):
                bench_noop(daemon, root, root_dir, runs)
            if args.only in (None, "cache"):
                bench_cache_hit(daemon, root, runs * 10)
            if args.only in (None, "compile"):
                files = 4 if args.quick else args.files
                bench_compile(daemon, root, work, files, 2 if args.quick else 5)
        finally:
            daemon.close()
    print(f"load average: {Path('/proc/loadavg').read_text().split()[:3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
