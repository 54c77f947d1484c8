"""Benchmark ``seal build`` of the example image, end to end (issue 6).

Run by hand (not in CI), as root (the host compile uses ``chroot``)::

    python3 bench/build.py                    # everything, a fresh store on disk
    python3 bench/build.py --tmpfs            # the fresh store in /dev/shm instead
    python3 bench/build.py --store S          # reuse store S: no cold build
    python3 bench/build.py --rounds 2         # host, sandbox, host, sandbox

What it prints, each against an anchor from the same run (shared, noisy machines):

1. Cold build of ``examples/python-fastapi.yaml`` (copied with its app into a
   temp dir) on an empty store: ``seal lock``, ``seal fetch`` and ``seal build``
   as three timed CLI calls (what one ``seal build`` does in that order, so
   their sum is the cold build, downloads and lock included; the daemon is
   started by the first).  Per step, the build records' durations (toolchain,
   runtime, wheels, cpython, site-packages, image); the steps overlap, so also
   the longest dependency chain and the records' span.  Target: < 240 s.
2. CPython's configure+make+install script in the sandbox vs on the host:
   ``seal check CPYTHON_DRV`` (a forced rebuild; the figure is its build
   record's duration: materializing inputs, bwrap, the script, storing the
   output) against the same script under ``chroot --userspec=1000:1000`` into
   a checkout of the same toolchain output, the sandbox's own environment
   (``sandbox.environment``), the same ``/inputs/src``, ``/build``, ``/out``,
   on the store's filesystem, no bwrap (a private mount namespace only, for
   ``/dev``, ``/proc`` and a tmpfs ``/tmp``).  Alternated host, sandbox, ...
   ``--rounds`` times; medians.  The host run's stages come from its logs'
   mtimes.  Target: sandbox / host <= 1.05.
3. Warm no-op rebuild: ``seal build`` again, nothing changed; the CLI call's
   wall time, median of ``--warm`` runs.  Target: <= 1 s.  Then the same call
   in-process with timers on the fetch presence check, the app upload and the
   archive write (the rest is the BuildImage call: plan and cache look-ups).
4. Image size: the archive file, the layer blobs (compressed) and the layers
   decompressed.  Target: <= 40 MB compressed (the layer blobs; 1 MB = 10^6 B).
5. Layer assembly: ``bench/assembly.py``'s ``measure`` on the python layer's
   tree and on the unpacked image rootfs, both in /dev/shm.  Target: >= 0.8.

Temporary data (stores, checkouts, build trees) is removed at the end; the
daemon of a store this bench created is stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from assembly import measure  # noqa: E402

EXAMPLES = HERE.parent / "examples"
CONFIG = "python-fastapi.yaml"
APP = "fastapi_app"
SHM = Path("/dev/shm")
STEPS = (
    *("toolchain", "runtime", "wheels", "cpython", "site-packages"),
    *("rootfs", "image-tests", "image"),
)
# who waits for whom (planner.py; rootfs and image-tests exist when the config has tests)
DEPS = {
    "cpython": ("toolchain",),
    "site-packages": ("runtime", "cpython", "wheels"),
    "rootfs": ("runtime", "cpython", "site-packages"),
    "image-tests": ("rootfs",),
    "image": ("runtime", "cpython", "site-packages", "image-tests"),
}
TARGETS = {"cold": 240.0, "ratio": 1.05, "warm": 1.0, "size": 40e6, "assembly": 0.8}
MB = 1e6
MIB = 1 << 20
BUILDER = "1000:1000"  # the sandbox's builder uid:gid


class BenchError(Exception):
    """A command the bench needs failed; the message says which and how."""


# -- running seal --------------------------------------------------------------------------
def seal_cli(*args: str) -> list[str]:
    """This Python's console script (not a version manager's shim on PATH)."""
    exe = Path(sys.executable).with_name("seal")
    if exe.exists():
        return [str(exe), *args]
    return [sys.executable, "-m", "seal.client.cli", *args]


def seal(store: Path, *args: str, cwd: Path | None = None) -> tuple[str, float]:
    """Run ``seal --store STORE ARGS``; (stdout, wall seconds), BenchError on failure."""
    cmd = seal_cli("--store", str(store), *args)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BenchError(f"seal {' '.join(args)} exited {proc.returncode}:\n{tail}")
    return proc.stdout, elapsed


def seal_json(store: Path, *args: str, cwd: Path | None = None) -> object:
    out, _ = seal(store, "--json", *args, cwd=cwd)
    return json.loads(out)


def step_of(name: str) -> str | None:
    """A build record's name -> the phase it belongs to (``cpython-3.13.5`` -> cpython)."""
    if name.startswith("cpython-"):
        return "cpython"
    return name if name in STEPS else None


def plan_records(store: Path, since: float = 0.0) -> dict[str, dict]:
    """The newest ok, non-check build record of each plan step started at or after ``since``."""
    found: dict[str, dict] = {}
    for rec in seal_json(store, "builds", "-n", "2000"):
        step = step_of(rec["name"])
        if (
            step
            and step not in found
            and rec["status"] == "ok"
            and not rec["check"]
            and rec["started"] >= since
        ):
            found[step] = rec
    return found


# -- 1. cold build ---------------------------------------------------------------------------
def cold_build(store: Path, src: Path, out: Path) -> dict:
    config = src / CONFIG
    wall_start = time.time()
    _, t_lock = seal(store, "lock", str(config), cwd=src)
    _, t_fetch = seal(store, "fetch", str(config), cwd=src)
    built, t_build = seal(store, "--json", "build", str(config), "-o", str(out), cwd=src)
    records = plan_records(store, since=wall_start)
    fetches = [
        r
        for r in seal_json(store, "builds", "-n", "2000")
        if step_of(r["name"]) is None and r["started"] >= wall_start and not r["check"]
    ]
    return {
        "lock_s": t_lock,
        "fetch_s": t_fetch,
        "build_s": t_build,
        "total_s": t_lock + t_fetch + t_build,
        "records": records,
        "fetch_builds": len(fetches),
        "result": json.loads(built),
    }


def critical_path(records: dict[str, dict]) -> tuple[list[str], float, float]:
    """(longest dependency chain to the image, its summed durations, the records' span)."""
    best: dict[str, tuple[float, list[str]]] = {}

    def longest(step: str) -> tuple[float, list[str]]:
        if step not in best:
            before = [longest(d) for d in DEPS.get(step, ()) if d in records]
            t, chain = max(before, default=(0.0, []))
            best[step] = (t + records[step]["duration_seconds"], [*chain, step])
        return best[step]

    total, chain = max(longest(step) for step in records)
    recs = list(records.values())
    span = max(r["started"] + r["duration_seconds"] for r in recs) - min(r["started"] for r in recs)
    return chain, total, span


# -- 2. CPython: sandbox vs host -------------------------------------------------------------
def cpython_drv(store: Path, records: dict[str, dict]) -> tuple[str, dict]:
    if "cpython" not in records:
        raise BenchError("no build record of the cpython step: build the image first")
    drv = records["cpython"]["drv"]
    return drv, seal_json(store, "drv", "show", drv)["derivation"]


def output_of(store: Path, ref: dict) -> str:
    """The ``out`` output digest of a derivation input ``{"drv": D, "output": "out"}``."""
    shown = seal_json(store, "drv", "show", ref["drv"])
    if not shown.get("realisation"):
        raise BenchError(f"{ref['drv']} has no realisation")
    return shown["realisation"]["outputs"][ref.get("output", "out")]


class HostRoot:
    """The toolchain output checked out once, with the sandbox's /etc files and mount points."""

    def __init__(self, store: Path, drv: dict, base: Path):
        from seal.daemon.build.sandbox import GROUP, HOSTS, PASSWD

        self.drv = drv
        self.root = base / "host-root"
        inputs = drv["inputs"]
        seal(store, "store", "checkout", output_of(store, inputs["toolchain"]), str(self.root))
        os.chmod(self.root, 0o755)
        etc = self.root / "etc"
        etc.mkdir(exist_ok=True)
        os.chmod(etc, 0o755)
        for name, text in (("passwd", PASSWD), ("group", GROUP), ("hosts", HOSTS)):
            path = etc / name
            path.unlink(missing_ok=True)  # never write through a checkout's file (a store link)
            path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
        for name in ("dev", "proc", "tmp", "inputs"):
            (self.root / name).mkdir(exist_ok=True)
        src = self.root / "inputs" / "src"
        with src.open("wb") as f:
            subprocess.run(
                seal_cli("--store", str(store), "store", "cat", inputs["src"]["object"]),
                stdout=f,
                check=True,
            )

    def run(self, cores: int) -> dict:
        """One host run of the CPython script; wall seconds and its stages from log mtimes."""
        from seal.daemon.build.sandbox import SandboxSpec, environment

        builder = self.drv["builder"]["sandbox"]
        spec = SandboxSpec(
            root=self.root,
            inputs={},
            args=builder["args"],
            env=builder.get("env", {}),
            outputs=["out"],
            source_date_epoch=self.drv["source_date_epoch"],
            cores=cores,
        )
        env = environment(spec)
        for d in (self.root / "build", self.root / "out"):
            shutil.rmtree(d, ignore_errors=True)
        (self.root / "build").mkdir()
        (self.root / "out" / "out").mkdir(parents=True)
        for d in (self.root / "build", self.root / "out", self.root / "out" / "out"):
            os.chown(d, 1000, 1000)
        setup = (
            'mount --rbind /dev "$0/dev" && mount -t proc proc "$0/proc" && '
            'mount -t tmpfs -o mode=1777 tmpfs "$0/tmp" && '
            f"exec env -i {shutil.which('chroot') or '/usr/sbin/chroot'} --userspec={BUILDER} "
            '"$0" /bin/sh -c \'cd /build && exec "$@"\' sh "$@"'
        )
        assigns = [f"{k}={v}" for k, v in env.items()]
        cmd = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            setup,
            str(self.root),
            "/usr/bin/env",
            "-i",
            *assigns,
            *spec.args,
        ]
        start_wall = time.time()
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise BenchError(f"host CPython build exited {proc.returncode}:\n{tail}")
        # each log's mtime is when its stage ended; compile.log's (written only on
        # error) is when the byte-compile started, after the trim and strip
        stages, last = {}, start_wall
        marks = (("configure", "configure"), ("make", "make"), ("install", "install"))
        for stage, log in (*marks, ("trim+strip", "compile")):
            path = self.root / "build" / f"{log}.log"
            if path.exists():
                end = path.stat().st_mtime
                stages[stage] = end - last
                last = end
        stages["compileall+checks"] = start_wall + elapsed - last
        shutil.rmtree(self.root / "build", ignore_errors=True)
        shutil.rmtree(self.root / "out", ignore_errors=True)
        return {"seconds": elapsed, "stages": stages, "output": proc.stdout}


def sandbox_run(store: Path, drv: str) -> dict:
    """``seal check DRV``: a forced rebuild; its record's duration and the CLI's wall time.

    ``seal check`` exits 1 when the rebuild differs; that is a finding, not a failure here.
    """
    cmd = seal_cli("--store", str(store), "--json", "check", drv)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    try:
        check = json.loads(proc.stdout)["check"]
    except (json.JSONDecodeError, KeyError):
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BenchError(f"seal check {drv} exited {proc.returncode}:\n{tail}") from None
    for rec in seal_json(store, "builds", drv, "-n", "20"):
        if rec["check"] and rec["status"] == "ok":
            return {
                "seconds": rec["duration_seconds"],
                "wall": wall,
                "reproducible": check["reproducible"],
                "differing": len(check.get("differing", [])),
            }
    raise BenchError(f"no check record of {drv} after seal check")


def compile_compare(store: Path, records: dict[str, dict], base: Path, rounds: int) -> dict:
    drv, doc = cpython_drv(store, records)
    cores = int(os.environ.get("SEAL_BUILD_CORES") or os.cpu_count() or 1)
    host = HostRoot(store, doc, base)
    hosts, sandboxes = [], []
    try:
        for i in range(rounds):
            hosts.append(host.run(cores))
            print(f"  round {i + 1}: host {hosts[-1]['seconds']:.1f} s", flush=True)
            sandboxes.append(sandbox_run(store, drv))
            print(f"  round {i + 1}: sandbox {sandboxes[-1]['seconds']:.1f} s", flush=True)
    finally:
        shutil.rmtree(host.root, ignore_errors=True)
    h = statistics.median(r["seconds"] for r in hosts)
    s = statistics.median(r["seconds"] for r in sandboxes)
    return {"drv": drv, "cores": cores, "host": hosts, "sandbox": sandboxes, "ratio": s / h}


# -- 3. warm no-op ---------------------------------------------------------------------------
def warm_cli(store: Path, src: Path, out: Path, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        printed, t = seal(store, "build", str(src / CONFIG), "-o", str(out), cwd=src)
        times.append(t)
    return sorted(times)


def warm_in_process(store: Path, src: Path, out: Path, repeats: int) -> dict[str, float]:
    """Medians of the in-process ``seal build`` and its parts (timers on three calls)."""
    from seal.client import images, inputs
    from seal.client.cli import main as cli_main

    spans: dict[str, float] = {}

    def timer(fn: Callable, key: str) -> Callable:
        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spans[key] = spans.get(key, 0.0) + time.perf_counter() - t

        return timed

    saved = (inputs.InputsBackend.fetch, images.ImagesBackend._upload_app, images._write_atomically)
    inputs.InputsBackend.fetch = timer(saved[0], "fetch check")
    images.ImagesBackend._upload_app = timer(saved[1], "app upload")
    images._write_atomically = timer(saved[2], "write archive + report")
    runs: list[dict[str, float]] = []
    cwd = os.getcwd()
    try:
        os.chdir(src)
        argv = ["--store", str(store), "-q", "build", str(src / CONFIG), "-o", str(out)]
        for _ in range(repeats):
            spans.clear()
            t = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                code = cli_main(argv)
            total = time.perf_counter() - t
            if code != 0:
                raise BenchError(f"in-process seal build exited {code}")
            parts = dict(spans)
            parts["BuildImage call + connect"] = total - sum(parts.values())
            parts["total"] = total
            runs.append(parts)
    finally:
        os.chdir(cwd)
        inputs.InputsBackend.fetch, images.ImagesBackend._upload_app = saved[:2]
        images._write_atomically = saved[2]
    return {k: statistics.median(r.get(k, 0.0) for r in runs) for k in runs[0]}


# -- 4. image size ---------------------------------------------------------------------------
def image_size(archive: Path) -> dict:
    with tarfile.open(archive) as tar:

        def blob(digest: str) -> bytes:
            return tar.extractfile(f"blobs/sha256/{digest.split(':', 1)[1]}").read()

        index = json.loads(tar.extractfile("index.json").read())
        manifest = json.loads(blob(index["manifests"][0]["digest"]))
        config = json.loads(blob(manifest["config"]["digest"]))
        history = [h for h in config.get("history", []) if not h.get("empty_layer")]
        names = [h.get("created_by", "") for h in history]
        layers = []
        for i, desc in enumerate(manifest["layers"]):
            data = blob(desc["digest"])
            layers.append(
                {
                    "name": names[i] if i < len(names) else f"layer {i}",
                    "compressed": desc["size"],
                    "uncompressed": len(gzip.decompress(data)),
                }
            )
    return {
        "archive": archive.stat().st_size,
        "compressed": sum(layer["compressed"] for layer in layers),
        "uncompressed": sum(layer["uncompressed"] for layer in layers),
        "layers": layers,
    }


def unpack_rootfs(archive: Path, dest: Path) -> None:
    """Apply the image's layers in order (seal's layers hold no whiteouts)."""
    with tarfile.open(archive) as tar:
        index = json.loads(tar.extractfile("index.json").read())
        hexd = index["manifests"][0]["digest"].split(":", 1)[1]
        manifest = json.loads(tar.extractfile(f"blobs/sha256/{hexd}").read())
        for desc in manifest["layers"]:
            data = tar.extractfile(f"blobs/sha256/{desc['digest'].split(':', 1)[1]}").read()
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as layer:
                layer.extractall(dest, filter="tar")


# -- 5. layer assembly -----------------------------------------------------------------------
def assembly(store: Path, records: dict[str, dict], archive: Path) -> dict[str, dict]:
    results = {}
    work = Path(tempfile.mkdtemp(prefix="seal-bench-build-", dir=SHM))
    try:
        python = work / "python"
        seal(store, "store", "checkout", records["cpython"]["outputs"]["out"], str(python))
        results["python layer"] = measure(python)
        shutil.rmtree(python)
        rootfs = work / "rootfs"
        rootfs.mkdir()
        unpack_rootfs(archive, rootfs)
        results["image rootfs"] = measure(rootfs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


# -- report ----------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def report_cold(c: dict) -> None:
    recs = c["records"]
    print(f"\ncold build (lock {c['lock_s']:.1f} s + fetch {c['fetch_s']:.1f} s + build "
          f"{c['build_s']:.1f} s, three CLI calls)")  # fmt: skip
    print(f"   total, lock and downloads included: {c['total_s']:.1f} s "
          f"(target < {TARGETS['cold']:.0f} s: {verdict(c['total_s'] < TARGETS['cold'])}); "
          f"without the lock {c['total_s'] - c['lock_s']:.1f} s")  # fmt: skip
    print(f"   fetch: {c['fetch_builds']} download builds")
    for step in STEPS:
        if step in recs:
            r = recs[step]
            print(f"   {step:14} {r['duration_seconds']:7.1f} s   ({r['name']})")
        else:
            print(f"   {step:14}       - (no record: cached)")
    if recs:
        chain, chain_s, span = critical_path(recs)
        print(f"   longest chain {' -> '.join(chain)}: {chain_s:.1f} s; records span {span:.1f} s "
              f"of the build call's {c['build_s']:.1f} s")  # fmt: skip
    r = c["result"]
    print(f"   image {r['manifest_digest']}  cached={r['cached']}")


def report_compile(cc: dict) -> None:
    print(f"\nCPython configure+make+install, SEAL_BUILD_CORES={cc['cores']} ({cc['drv']})")
    for i, (h, s) in enumerate(zip(cc["host"], cc["sandbox"], strict=True)):
        stages = ", ".join(f"{k} {v:.1f}" for k, v in h["stages"].items())
        print(f"   round {i + 1}: host (chroot) {h['seconds']:.1f} s [{stages}]; "
              f"sandbox {s['seconds']:.1f} s (seal check wall {s['wall']:.1f} s, "
              f"reproducible={s['reproducible']}, {s['differing']} paths differ)")  # fmt: skip
    ok = cc["ratio"] <= TARGETS["ratio"]
    print(f"   sandbox / host = {cc['ratio']:.3f} (target <= {TARGETS['ratio']}: {verdict(ok)})")


def report_warm(times: list[float], parts: dict[str, float]) -> None:
    med = statistics.median(times)
    print(f"\nwarm no-op seal build (CLI): median {med:.3f} s "
          f"(target <= {TARGETS['warm']} s: {verdict(med <= TARGETS['warm'])}); "
          f"runs {' '.join(f'{t:.3f}' for t in times)}")  # fmt: skip
    print(
        f"   in-process, median: total {parts['total']:.3f} s = "
        + ", ".join(f"{k} {v:.3f}" for k, v in parts.items() if k != "total")
    )
    print(f"   so process start-up and imports ~{med - parts['total']:.3f} s")


def report_size(s: dict) -> None:
    ok = s["compressed"] <= TARGETS["size"]
    print(f"\nimage size: layers {s['compressed'] / MB:.1f} MB compressed "
          f"(target <= {TARGETS['size'] / MB:.0f} MB: {verdict(ok)}), "
          f"{s['uncompressed'] / MB:.1f} MB uncompressed; archive file "
          f"{s['archive'] / MB:.1f} MB")  # fmt: skip
    for layer in s["layers"]:
        print(f"   {layer['compressed'] / MB:7.1f} MB / {layer['uncompressed'] / MB:7.1f} MB  "
              f"{layer['name']}")  # fmt: skip


def report_assembly(results: dict[str, dict]) -> None:
    print("\nlayer assembly vs tar c | gzip -6 (best of 3 each, /dev/shm)")
    for name, r in results.items():
        ok = r["ratio"] >= TARGETS["assembly"]
        print(f"   {name}: {r['entries']:,} entries, {r['bytes'] / MIB:.1f} MiB; seal "
              f"{r['seal_s']:.3f} s = {r['seal_mib_s']:.1f} MiB/s, "
              f"tar|gzip {r['tar_gzip_s']:.3f} s = {r['tar_gzip_mib_s']:.1f} MiB/s; "
              f"ratio {r['ratio']:.2f} "
              f"(target >= {TARGETS['assembly']}: {verdict(ok)})")  # fmt: skip


# -- main ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="reuse this store (implies --skip-cold)")
    parser.add_argument("--skip-cold", action="store_true", help="no cold build")
    parser.add_argument("--tmpfs", action="store_true", help="new store in /dev/shm")
    parser.add_argument("--rounds", type=int, default=1, help="host/sandbox compile pairs")
    parser.add_argument("--warm", type=int, default=5, help="warm rebuilds (median)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir and its store")
    parser.add_argument("--skip-compile", action="store_true", help="no host/sandbox compile")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 and not args.skip_compile:
        parser.error("the host compile needs root (chroot, mounts); or pass --skip-compile")
    base = Path(tempfile.mkdtemp(prefix="seal-bench-build-", dir=SHM if args.tmpfs else "/var/tmp"))
    src = base / "src"
    src.mkdir()
    shutil.copy2(EXAMPLES / CONFIG, src / CONFIG)
    shutil.copytree(EXAMPLES / APP, src / APP)
    store = args.store or base / "store"
    out = base / "image.tar"
    print(f"bench/build.py: store {store}, work {base}, load {load()}, "
          f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}", flush=True)  # fmt: skip
    try:
        if args.store or args.skip_cold:
            print("(no cold build: building or reusing the image first)", flush=True)
            seal(store, "build", str(src / CONFIG), "-o", str(out), cwd=src)
            records = plan_records(store)
        else:
            cold = cold_build(store, src, out)
            records = cold["records"]
            report_cold(cold)
        size = image_size(out)
        report_size(size)
        times = warm_cli(store, src, out, args.warm)
        parts = warm_in_process(store, src, out, args.warm)
        report_warm(times, parts)
        report_assembly(assembly(store, records, out))
        if not args.skip_compile:
            print("\n(running the CPython compile: host, then sandbox, per round)", flush=True)
            report_compile(compile_compare(store, records, base, args.rounds))
    except BenchError as exc:
        print(f"bench/build.py: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.store:
            with contextlib.suppress(BenchError):
                seal(store, "daemon", "stop")
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
        print(f"\nload {load()} at {time.strftime('%H:%M:%S UTC', time.gmtime())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
