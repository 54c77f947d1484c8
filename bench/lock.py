"""Benchmark locking and fetching: ``seal lock`` / ``seal fetch`` vs pip, uv and curl.

For the brief's config (``examples/python-fastapi.yaml``: CPython 3.13, fastapi
and uvicorn pinned), each figure against anchors timed in the same run
(shared, noisy machines; medians of ``--repeat`` runs, interleaved):

- cold lock: ``seal --store S lock CONFIG`` on a fresh store (and a fresh
  ``XDG_CACHE_HOME``), the whole CLI call with no daemon running, so the CLI
  starts one; and again with a daemon already started (``seal daemon start``)
  so its start-up is left out.  Anchor: ``pip install --dry-run --report``
  for the same target (cp313, manylinux x86_64 up to glibc 2.36, wheels
  only) with a fresh ``--cache-dir``.  Target: seal / pip < 1 (whole CLI).
- warm lock: the same lock again (a fresh copy of the config, so no lock file
  is there to reuse) against the same daemon, its caches warm.  Anchor:
  ``uv pip compile --generate-hashes`` for the same target with the cache dir
  of its cold run (``UV_PYTHON_DOWNLOADS=never``).  Target: seal / uv <= 2.
- fetch: ``seal fetch CONFIG`` into a fresh store (daemon started first, fresh
  ``XDG_CACHE_HOME``) vs ``curl --parallel --parallel-max 8`` downloading the
  same files (every artifact of ``CONFIG.lock``, first URL each).  Ratio of
  throughputs (bytes/s).  Target: >= 0.8.

pip and uv come from PyPI into a venv under ``--tools-dir`` (created on first
use with the newest of each; ``--upgrade-tools`` refreshes it), run with their
configuration and environment variables ignored and PyPI as the only index.
The bench checks pip and uv resolve the same packages and compares seal's
``pylock.<stem>.toml`` (PEP 751) with them.  Until ``seal lock`` works, its
rows print "not available" with the error and the curl anchor downloads the
wheels of pip's report, so the harness still runs.  "Cold" is cold for the
tool's caches only: DNS, the TLS-intercepting proxy and the index's CDN stay
as they are.

Run by hand: ``python3 bench/lock.py [--quick] [--repeat N] [--skip-seal]``.
Temporary data goes to /dev/shm (stores, caches, downloads) and is removed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "examples" / "python-fastapi.yaml"
PYPI = "https://pypi.org/simple/"
GLIBC = (2, 36)  # Debian 12's, the base image's
CURL_PARALLEL = 8
TIMEOUT = 300.0  # seconds, any one command
MiB = 1 << 20


class Unavailable(Exception):
    """A command the bench needs failed; the message is the first line of its error."""


@dataclass(frozen=True)
class Target:
    python: str  # "3.13"
    packages: dict[str, str]  # name -> pinned version

    @property
    def requirements(self) -> list[str]:
        return [f"{name}=={version}" for name, version in sorted(self.packages.items())]


@dataclass(frozen=True)
class Download:
    url: str
    filename: str
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Tools:
    pip: Path
    uv: Path


# -- commands --------------------------------------------------------------------------
def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no output")


def run(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run ``cmd``; its stdout, or Unavailable with the first line of its error."""
    try:
        proc = subprocess.run(
            cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{Path(cmd[0]).name} timed out after {TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        raise Unavailable(f"exit {proc.returncode}: {first_line(proc.stderr or proc.stdout)}")
    return proc.stdout


def timed(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    start = time.perf_counter()
    run(cmd, env=env, cwd=cwd)
    return time.perf_counter() - start


def clean_env(drop_prefixes: tuple[str, ...], **extra: str) -> dict[str, str]:
    """This process's environment without variables starting with ``drop_prefixes``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes)}
    env.update(extra)
    return env


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


# -- the config ------------------------------------------------------------------------
def read_target(config: Path) -> Target:
    doc = yaml.safe_load(config.read_text())
    major_minor = ".".join(str(doc["python_version"]).split(".")[:2])
    return Target(major_minor, {str(k): str(v) for k, v in doc["packages"].items()})


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# -- pip and uv ------------------------------------------------------------------------
def ensure_tools(tools_dir: Path, upgrade: bool) -> Tools:
    """A venv with the newest pip and uv from PyPI, created on first use."""
    venv = tools_dir / "venv"
    tools = Tools(pip=venv / "bin" / "pip", uv=venv / "bin" / "uv")
    if upgrade or not (tools.pip.exists() and tools.uv.exists()):
        tools_dir.mkdir(parents=True, exist_ok=True)
        if not (venv / "bin" / "python").exists():
            run([sys.executable, "-m", "venv", str(venv)])
        run(
            [str(tools.pip), "install", "-q", "--upgrade", "--index-url", PYPI, "pip", "uv"],
            env=pip_env(),
        )
    return tools


def tool_version(cmd: list[str]) -> str:
    """The first line a ``--version`` call prints, on stdout or stderr."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except OSError as e:
        return f"unknown ({e})"
    return first_line(proc.stdout + proc.stderr)


def pip_env() -> dict[str, str]:
    """No pip configuration file and no PIP_* variables: PyPI only, as given on the line."""
    return clean_env(("PIP_",), PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")


def uv_env() -> dict[str, str]:
    return clean_env(("UV_", "VIRTUAL_ENV"), UV_PYTHON_DOWNLOADS="never")


def pip_platforms(glibc: tuple[int, int] = GLIBC) -> list[str]:
    """pip takes exactly the platforms named (no older manylinux), so name them all."""
    major, minor = glibc
    tags = [f"manylinux_{major}_{m}_x86_64" for m in range(minor, 4, -1)]
    return [*tags, "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def pip_command(tools: Tools, target: Target, report: Path, cache: Path) -> list[str]:
    cmd = [str(tools.pip), "install", "-q", "--dry-run", "--report", str(report)]
    cmd += ["--ignore-installed", "--only-binary=:all:", "--index-url", PYPI]
    cmd += ["--python-version", target.python, "--implementation", "cp"]
    cmd += ["--abi", "cp" + target.python.replace(".", "")]
    for platform in pip_platforms():
        cmd += ["--platform", platform]
    return [*cmd, "--cache-dir", str(cache), *target.requirements]


def uv_command(
    tools: Tools, target: Target, requirements: Path, out: Path, cache: Path
) -> list[str]:
    cmd = [str(tools.uv), "pip", "compile", "--quiet", "--no-config", "--generate-hashes"]
    cmd += ["--only-binary", ":all:", "--index-url", PYPI]
    cmd += ["--python-version", target.python]
    cmd += ["--python-platform", f"x86_64-manylinux_{GLIBC[0]}_{GLIBC[1]}"]
    return [*cmd, "--cache-dir", str(cache), "-o", str(out), str(requirements)]


def bench_pip(tools: Tools, target: Target, work: Path) -> tuple[float, float, Path]:
    """Seconds (cold, warm) of one pip dry run pair; the report's path."""
    work.mkdir(parents=True)
    cache, report = work / "pip-cache", work / "pip-report.json"
    cold = timed(pip_command(tools, target, report, cache), env=pip_env(), cwd=work)
    warm = timed(pip_command(tools, target, report, cache), env=pip_env(), cwd=work)
    return cold, warm, report


def bench_uv(tools: Tools, target: Target, work: Path) -> tuple[float, float, Path]:
    """Seconds (cold, warm) of one uv compile pair; the output's path."""
    work.mkdir(parents=True)
    cache, out, reqs = work / "uv-cache", work / "requirements.txt", work / "requirements.in"
    reqs.write_text("".join(r + "\n" for r in target.requirements))
    cmd = uv_command(tools, target, reqs, out, cache)
    cold = timed(cmd, env=uv_env(), cwd=work)
    warm = timed(cmd, env=uv_env(), cwd=work)
    return cold, warm, out


# -- what each tool pinned -------------------------------------------------------------
def pip_report(path: Path) -> list[dict]:
    return json.loads(path.read_text())["install"]


def pip_pins(report: Path) -> dict[str, str]:
    return {
        normalize(item["metadata"]["name"]): item["metadata"]["version"]
        for item in pip_report(report)
    }


def pip_downloads(report: Path) -> list[Download]:
    """The wheels of pip's report: URL and SHA-256 (the report has no sizes)."""
    out = []
    for item in pip_report(report):
        info = item["download_info"]
        sha = info.get("archive_info", {}).get("hashes", {}).get("sha256")
        out.append(Download(info["url"], info["url"].rsplit("/", 1)[-1], sha))
    return out


def uv_pins(requirements_txt: Path) -> dict[str, str]:
    pins = {}
    for line in requirements_txt.read_text().splitlines():
        m = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
        if m:
            pins[normalize(m.group(1))] = m.group(2)
    return pins


def pylock_path(config: Path) -> Path:
    """seal's PEP 751 export beside ``config``: pylock.<stem>.toml, else any pylock.*.toml."""
    path = config.with_name(f"pylock.{config.name.split('.')[0]}.toml")
    if path.exists():
        return path
    return next(iter(sorted(config.parent.glob("pylock.*.toml"))), path)


def pylock_pins(path: Path) -> dict[str, str]:
    with path.open("rb") as f:
        doc = tomllib.load(f)
    return {normalize(p["name"]): str(p.get("version", "?")) for p in doc.get("packages", [])}


def compare_pins(label_a: str, a: dict[str, str], label_b: str, b: dict[str, str]) -> str:
    """'agree' or the differences, name by name."""
    if a == b:
        return f"{label_a} and {label_b} agree ({len(a)} packages)"
    lines = [f"{label_a} and {label_b} differ:"]
    for name in sorted(a.keys() | b.keys()):
        if a.get(name) != b.get(name):
            lines.append(f"    {name}: {label_a} {a.get(name, '-')}, {label_b} {b.get(name, '-')}")
    return "\n".join(lines)


def lock_file(config: Path) -> Path:
    """``CONFIG.lock`` (seal writes <config name>.lock); <stem>.lock as a fallback."""
    path = config.with_name(config.name + ".lock")
    return path if path.exists() else config.with_suffix(".lock")


def lock_downloads(path: Path) -> list[Download]:
    """Each distinct file of seal's lock (a .deb in both the toolchain and the runtime is
    one file, and seal downloads it once): first URL, SHA-256, size, filename."""
    with path.open("rb") as f:
        doc = tomllib.load(f)
    out, seen = [], set()
    for art in doc.get("artifact", doc.get("artifacts", [])):
        urls = art.get("urls") or [art["url"]]
        name = art.get("filename") or urls[0].rsplit("/", 1)[-1]
        if art.get("sha256") in seen:
            continue
        seen.add(art.get("sha256"))
        out.append(Download(urls[0], name, art.get("sha256"), art.get("size")))
    if not out:
        raise Unavailable(f"{path.name} lists no [[artifact]] with a URL")
    return out


# -- curl ------------------------------------------------------------------------------
def curl_parallel() -> bool:
    return "--parallel-max" in run(["curl", "--help", "all"])


def curl_fetch(downloads: list[Download], dest: Path, parallel: bool) -> tuple[float, int]:
    """Seconds to download every file into ``dest`` with one curl; total bytes."""
    dest.mkdir(parents=True)
    config = dest / "curl.cfg"
    lines = []
    for i, d in enumerate(downloads):
        lines += [f'url = "{d.url}"', f'output = "{dest / f"{i:04d}-{d.filename}"}"']
    config.write_text("\n".join(lines) + "\n")
    cmd = ["curl", "-sS", "--fail", "--retry", "3", "-K", str(config)]
    if parallel:
        cmd[1:1] = ["--parallel", "--parallel-max", str(CURL_PARALLEL)]
    seconds = timed(cmd)
    total = 0
    for i, d in enumerate(downloads):
        path = dest / f"{i:04d}-{d.filename}"
        total += path.stat().st_size
        if d.sha256 and hashlib.sha256(path.read_bytes()).hexdigest() != d.sha256:
            raise Unavailable(f"curl: {d.filename} does not match its SHA-256")
    return seconds, total


# -- seal ------------------------------------------------------------------------------
def compile_seal() -> None:
    """Byte-compile seal's modules, as ``pip install`` does: a checkout run from source
    (an editable install with PYTHONDONTWRITEBYTECODE set) would otherwise compile every
    module again in each CLI call and daemon start."""
    import importlib

    roots = [
        str(Path(importlib.import_module(f"seal.{part}").__file__).parent)
        for part in ("client", "daemon", "store", "proto")
    ]
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *roots],
        check=False,
        capture_output=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""},
    )


def seal_cli() -> list[str]:
    """The installed console script of this Python (not a version manager's shim on PATH)."""
    exe = Path(sys.executable).with_name("seal")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "seal.client.cli"]


class SealStore:
    """A fresh store with its own cache directory; its daemon stopped on close."""

    def __init__(self, root: Path):
        self.root = root
        (root.parent / f"{root.name}-cache").mkdir(parents=True)
        self.env = clean_env(("SEAL_",), XDG_CACHE_HOME=str(root.parent / f"{root.name}-cache"))

    def seal(self, *args: str) -> list[str]:
        return [*seal_cli(), "--store", str(self.root), "-q", *args]

    def start_daemon(self) -> None:
        run(self.seal("daemon", "start"), env=self.env)

    def lock(self, config: Path) -> float:
        return timed(self.seal("lock", str(config)), env=self.env)

    def fetch(self, config: Path) -> float:
        seconds = timed(self.seal("fetch", str(config)), env=self.env)
        missing = subprocess.run(
            self.seal("fetch", "--offline", str(config)), env=self.env, capture_output=True
        )
        if missing.returncode != 0:
            raise Unavailable("seal fetch --offline: the store still lacks files after a fetch")
        return seconds

    def close(self) -> None:
        subprocess.run(
            self.seal("daemon", "stop"), env=self.env, capture_output=True, timeout=60, check=False
        )
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.root.parent / f"{self.root.name}-cache", ignore_errors=True)


def config_copy(config: Path, directory: Path) -> Path:
    """The config alone in a new directory: no lock file beside it yet."""
    directory.mkdir(parents=True)
    return Path(shutil.copy2(config, directory / config.name))


@dataclass
class SealLock:
    cold_cli: list[float] = field(default_factory=list)  # fresh store, the CLI starts a daemon
    cold: list[float] = field(default_factory=list)  # fresh store, daemon started first
    warm: list[float] = field(default_factory=list)  # the same daemon again
    locked: Path | None = None  # a config with its lock beside it


def seal_lock_round(config: Path, work: Path, out: SealLock) -> None:
    """One cold (CLI), cold (daemon running) and warm ``seal lock``; Unavailable on failure."""
    work.mkdir(parents=True)
    store = SealStore(work / "store-cli")
    try:
        out.cold_cli.append(store.lock(config_copy(config, work / "cfg-cli")))
    finally:
        store.close()
    store = SealStore(work / "store")
    try:
        store.start_daemon()
        out.cold.append(store.lock(config_copy(config, work / "cfg-cold")))
        out.locked = config_copy(config, work / "cfg-warm")
        out.warm.append(store.lock(out.locked))
    finally:
        store.close()


def seal_fetch_once(config: Path, work: Path) -> float:
    """Seconds of ``seal fetch`` into a fresh store (daemon started first)."""
    store = SealStore(work)
    try:
        store.start_daemon()
        return store.fetch(config)
    finally:
        store.close()


@dataclass
class Fetch:
    curl: list[tuple[float, int]] = field(default_factory=list)  # seconds, bytes
    seal: list[float] = field(default_factory=list)
    seal_error: str | None = None


def bench_fetch(downloads: list[Download], locked: Path | None, work: Path, repeat: int) -> Fetch:
    """curl and (given a locked config) ``seal fetch`` of the same files, interleaved."""
    out, parallel = Fetch(), curl_parallel()
    if not parallel:
        print("  (this curl lacks --parallel: its downloads are sequential)")
    for i in range(repeat):
        out.curl.append(curl_fetch(downloads, work / f"curl-{i}", parallel))
        shutil.rmtree(work / f"curl-{i}")
        if locked is not None and out.seal_error is None:
            try:
                out.seal.append(seal_fetch_once(locked, work / f"store-{i}"))
            except Unavailable as e:
                out.seal_error = str(e)
    return out


# -- report ----------------------------------------------------------------------------
def header(tools: Tools) -> None:
    print(f"seal lock/fetch benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(
        f"host: {os.uname().nodename}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"pip: {tool_version([str(tools.pip), '--version']).split(' from ')[0]}")
    print(f"uv: {tool_version([str(tools.uv), '--version'])}")
    print(f"curl: {' '.join(tool_version(['curl', '--version']).split()[:2])}")
    print(f"seal: {tool_version([*seal_cli(), '--version'])}")


def row(label: str, samples: list[float]) -> str:
    spread = " ".join(f"{s:.2f}" for s in sorted(samples))
    return f"  {label:<46} {median(samples):6.2f} s   (runs: {spread})"


def report_anchors(pip: list[tuple[float, float]], uv: list[tuple[float, float]]) -> None:
    print("\nLock anchors (the same target: cp313, manylinux x86_64 <= glibc 2.36, wheels only)")
    print(row("pip install --dry-run --report, cold cache", [c for c, _ in pip]))
    print(row("pip install --dry-run --report, warm cache", [w for _, w in pip]))
    print(row("uv pip compile --generate-hashes, cold cache", [c for c, _ in uv]))
    print(row("uv pip compile --generate-hashes, warm cache", [w for _, w in uv]))


def report_seal_lock(result: SealLock, pip_cold: float, uv_warm: float) -> None:
    cli, cold, warm = median(result.cold_cli), median(result.cold), median(result.warm)
    print("\nseal lock")
    print(row("cold, whole CLI call (starts the daemon)", result.cold_cli))
    print(row("cold, daemon already running", result.cold))
    print(row("warm, same daemon again", result.warm))
    print(
        f"  cold / pip cold: {cli / pip_cold:.2f}x whole CLI [{verdict(cli / pip_cold < 1)} <1x]"
        f", {cold / pip_cold:.2f}x daemon running"
    )
    print(f"  warm / uv warm: {warm / uv_warm:.2f}x [{verdict(warm / uv_warm <= 2)} <=2x]")


def report_fetch(label: str, fetch: Fetch) -> None:
    size = fetch.curl[0][1]
    curl = [s for s, _ in fetch.curl]
    print(f"\nFetch: {label}, {size / MiB:.1f} MiB")
    print(row(f"curl --parallel-max {CURL_PARALLEL}, {size / MiB / median(curl):.1f} MiB/s", curl))
    if fetch.seal_error:
        print(f"  seal fetch: not available ({fetch.seal_error})")
    elif fetch.seal:
        seal = median(fetch.seal)
        ratio = median(curl) / seal
        print(row(f"seal fetch, fresh store, {size / MiB / seal:.1f} MiB/s", fetch.seal))
        print(f"  throughput seal / curl: {ratio:.2f} [{verdict(ratio >= 0.8)} >=0.8]")


def bench_locks(
    tools: Tools, target: Target, config: Path | None, base: Path, repeat: int
) -> tuple[list[tuple[float, float]], list[tuple[float, float]], SealLock, str | None, Path, Path]:
    """Rounds of pip, uv and (unless ``config`` is None) seal lock, interleaved."""
    pip, uv, seal, error = [], [], SealLock(), None
    for i in range(repeat):
        cold, warm, report = bench_pip(tools, target, base / f"pip-{i}")
        pip.append((cold, warm))
        cold, warm, compiled = bench_uv(tools, target, base / f"uv-{i}")
        uv.append((cold, warm))
        if config is not None and error is None:
            try:
                seal_lock_round(config, base / f"seal-{i}", seal)
            except Unavailable as e:
                error = str(e)
    return pip, uv, seal, error, report, compiled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run of each (smoke test)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (default 3; medians)")
    parser.add_argument("--skip-seal", action="store_true", help="the anchors only")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the image YAML")
    parser.add_argument("--tools-dir", type=Path, default=Path("/var/cache/seal-bench"))
    parser.add_argument("--upgrade-tools", action="store_true", help="newest pip and uv again")
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else max(1, args.repeat)
    config = args.config.resolve()
    target = read_target(config)
    try:
        tools = ensure_tools(args.tools_dir, args.upgrade_tools)
    except Unavailable as e:
        print(f"cannot install pip and uv into {args.tools_dir}: {e}", file=sys.stderr)
        return 1
    started = time.monotonic()
    header(tools)
    print(f"config: {config.name}: Python {target.python}, {', '.join(target.requirements)}")

    if not args.skip_seal:
        compile_seal()
    base = Path(tempfile.mkdtemp(prefix="seal-bench-lock-", dir="/dev/shm"))
    try:
        seal_config = None if args.skip_seal else config
        pip, uv, seal, error, report, compiled = bench_locks(
            tools, target, seal_config, base, repeat
        )
        report_anchors(pip, uv)
        pins = pip_pins(report)
        print("  " + compare_pins("pip", pins, "uv", uv_pins(compiled)))
        print("  pinned: " + ", ".join(f"{n} {v}" for n, v in sorted(pins.items())))

        downloads, what = pip_downloads(report), "the wheels of pip's report"
        if error:
            print(f"\nseal lock: not available ({error})")
        elif seal.locked is not None:
            report_seal_lock(seal, median([c for c, _ in pip]), median([w for _, w in uv]))
            print("  " + compare_pins("seal", pylock_pins(pylock_path(seal.locked)), "pip", pins))
            downloads = lock_downloads(lock_file(seal.locked))
            what = f"every artifact of {lock_file(seal.locked).name}"
        locked = None if error else seal.locked
        fetch = bench_fetch(downloads, locked, base / "fetch", repeat)
        report_fetch(f"{len(downloads)} files, {what}", fetch)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"\ntotal {time.monotonic() - started:.0f} s; load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
