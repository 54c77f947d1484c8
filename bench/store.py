"""Benchmark the store against plain-copy anchors measured in the same run.

Run by hand (not in CI)::

    python3 bench/store.py                   # full run: tmpfs and disk, side by side
    python3 bench/store.py --quick           # smoke run: 2,000 entries, 128 MiB
    python3 bench/store.py --only tmpfs      # one filesystem
    python3 bench/store.py --profile ingest  # cProfile one tree ingest on tmpfs

What is measured, on tmpfs (/dev/shm) and on the root disk (/var/tmp):

* **tree ingest**: ``Store.put_tree(corpus)`` into a fresh store (its per-file
  work runs in worker processes, started in the first run and reused), against
  ``cp -a corpus dest`` and ``nix-store --store <tmp> --add corpus`` (Debian's
  ``nix-bin``, local store, no daemon).  Store creation is excluded for both
  stores (each is created, and the nix one initialised with a tiny path,
  before the clock starts).  ``put_tree`` ends with one ``syncfs``; on disk,
  ``cp -a`` and ``nix-store --add`` are therefore also reported followed by
  ``sync -f`` (copy time + sync time).
* **big-file ingest**: ``Store.put_file(big)`` of a 1 GiB file against reading
  it in 1 MiB chunks into ``hashlib.sha256``, as MB/s (10^6 bytes/s).  On disk
  put_file also writes the object and syncs it, while hashlib only reads.
* **checkout**: ``Store.checkout(tree, dest)`` (hardlinks) against ``cp -a``
  of the same corpus.  Checkout does not sync, so its anchor is ``cp -a``.

The corpus is a generated site-packages-like tree: nested package dirs with
``__init__.py`` files, ``*.dist-info`` dirs, ~5 KiB modules, ~5% executables
(extension modules) and ~2% relative symlinks.  It is generated once per
filesystem, so it is hot in the page cache for every contender alike.  Each
measurement is repeated (fresh destination each time, contenders interleaved
per round) and the median is reported.  Between runs the filesystem is
synced, so no contender pays for another's dirty pages, and outputs are left
in place until the filesystem's benchmarks end, so none pays for another's
deletes either (ext4 without a journal skips recently freed inodes, which
makes creating 20,000 files right after deleting 20,000 several times slower).
Ratios are medians over medians of the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime
import hashlib
import os
import platform
import pstats
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from seal.store import Digest, Store

MiB = 1 << 20
GiB = 1 << 30
MB = 1_000_000
CHUNK = MiB
SEED = 2024


# -- configuration --------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    entries: int  # regular files + symlinks in the corpus
    big_size: int  # bytes of the big file
    repeat: int
    keep: bool


@dataclass(frozen=True)
class Filesystem:
    label: str  # "tmpfs" or "disk"
    base: Path  # where the workspace directory is created


# -- workspaces and cleanup -----------------------------------------------------------------
_WORKSPACES: list[Workspace] = []


class Workspace:
    """A temporary directory on one filesystem; everything a run creates lives in it.

    Outputs are not deleted between runs, only with the workspace: on ext4
    without a journal (as on some VM root disks), inode allocation skips
    inodes freed in the last minutes (the kernel's ``recently_deleted``), so
    whoever ran right after a 20,000-file delete would pay seconds for it.
    """

    def __init__(self, fs: Filesystem):
        self.fs = fs
        self.root = Path(tempfile.mkdtemp(prefix="seal-bench-", dir=fs.base))
        self._counter = 0
        _WORKSPACES.append(self)

    @property
    def on_disk(self) -> bool:
        return self.fs.label == "disk"

    def fresh(self, stem: str) -> Path:
        """A path under the workspace that does not exist yet."""
        self._counter += 1
        return self.root / f"{stem}-{self._counter}"

    def settle(self) -> None:
        """Flush this filesystem so the next timed run starts with no dirty pages."""
        subprocess.run(["sync", "-f", str(self.root)], check=True)

    def discard(self, path: Path) -> None:
        """Remove ``path`` now (for the big-file stores: one large inode) and flush."""
        remove_tree(path)
        self.settle()


def remove_tree(path: Path) -> None:
    """rmtree that also copes with read-only directories (nix store paths are 0555)."""

    def make_writable(func: Callable[[str], object], failed: str, _exc: object) -> None:
        os.chmod(os.path.dirname(failed), 0o755)
        func(failed)

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=make_writable)


def cleanup_all(keep: bool) -> None:
    """Remove every workspace (or say where they are); Ctrl-C cannot interrupt it."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for ws in _WORKSPACES:
            if keep:
                log(f"kept {ws.root}")
            else:
                remove_tree(ws.root)
        _WORKSPACES.clear()
    finally:
        signal.signal(signal.SIGINT, previous)


def _sigterm_to_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def mount_of(path: Path) -> tuple[str, str]:
    """(device, type) of the filesystem mounted at or above ``path``, e.g. ("tmpfs", "tmpfs")."""
    best, found = "", ("?", "?")
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            device, mountpoint, fstype, *_ = line.split()
            inside = str(path) == mountpoint or str(path).startswith(mountpoint.rstrip("/") + "/")
            if inside and len(mountpoint) >= len(best):
                best, found = mountpoint, (device, fstype)
    return found


def fs_type(path: Path) -> str:
    return mount_of(path)[1]


def fs_caveat(path: Path) -> str | None:
    """A warning when the filesystem is known to distort file-creation timings."""
    device, fstype = mount_of(path)
    journal = Path("/sys/fs/ext4") / os.path.basename(device) / "journal_task"
    with contextlib.suppress(OSError):
        if fstype == "ext4" and journal.read_text().strip() == "<none>":
            return (
                "ext4 without a journal: creating an inode skips inodes any process freed in "
                "the last 1-6 minutes (kernel recently_deleted()), so file-creation times here "
                "depend on other processes' deletes"
            )
    return None


# -- corpus ---------------------------------------------------------------------------------
@dataclass
class Corpus:
    tree: Path
    big: Path
    files: int = 0
    executables: int = 0
    symlinks: int = 0
    dirs: int = 0
    file_bytes: int = 0
    big_size: int = 0

    def describe(self) -> str:
        return (
            f"{self.files + self.symlinks:,} entries ({self.files:,} files, "
            f"{self.file_bytes / MiB:.0f} MiB, {self.executables:,} executable; "
            f"{self.symlinks:,} symlinks; {self.dirs:,} dirs) + one {self.big_size / MiB:,.0f} MiB"
            " file"
        )


def package_dirs(rng: random.Random, name: str) -> list[Path]:
    """A package and a few nested subpackages, at most 5 levels deep."""
    dirs = [Path(name)]
    for i in range(rng.randint(3, 15)):
        parent = rng.choice(dirs)
        if len(parent.parts) >= 5:
            parent = dirs[0]
        dirs.append(parent / f"sub{i}")
    return dirs


def plan_corpus(rng: random.Random, entries: int) -> tuple[list[Path], list[tuple[Path, int]]]:
    """Directories and (file path, size) pairs; sizes average ~5 KiB."""
    n_files = entries - round(entries * 0.02)
    dirs: list[Path] = []
    files: list[tuple[Path, int]] = []
    packages: list[list[Path]] = []
    for p in range(max(1, n_files // 100)):
        pkg = package_dirs(rng, f"pkg{p:04d}")
        info = Path(f"pkg{p:04d}-1.{p % 10}.0.dist-info")
        dirs += [*pkg, info]
        packages.append(pkg)
        files += [(d / "__init__.py", rng.choice([0, rng.randint(100, 3000)])) for d in pkg]
        files += [(info / "INSTALLER", 4), (info / "WHEEL", 100)]
        files += [(info / n, rng.randint(1024, 9216)) for n in ("METADATA", "RECORD")]
    while len(files) < n_files:
        pkg = rng.choice(packages)
        files.append((rng.choice(pkg) / f"mod{len(files)}.py", rng.randint(1024, 9216)))
    return dirs, files[:n_files]


def write_file(path: Path, data: bytes, executable: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755 if executable else 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def file_content(rng: random.Random, rel: Path, size: int) -> bytes:
    return b"pip\n" if rel.name == "INSTALLER" else rng.randbytes(size)


def generate_tree(root: Path, entries: int, corpus: Corpus) -> None:
    """Write the site-packages-like tree (deterministic: same digest on every filesystem)."""
    rng = random.Random(SEED)
    dirs, files = plan_corpus(rng, entries)
    root.mkdir()
    for d in dirs:
        (root / d).mkdir()
    exec_indexes = set(rng.sample(range(len(files)), round(entries * 0.05)))
    written: list[Path] = []
    for i, (rel, size) in enumerate(files):
        executable = i in exec_indexes
        if executable:  # an extension module
            rel = rel.with_name(f"_ext{i}.cpython-311-x86_64-linux-gnu.so")
        data = file_content(rng, rel, size)
        write_file(root / rel, data, executable)
        written.append(root / rel)
        corpus.files += 1
        corpus.executables += executable
        corpus.file_bytes += len(data)
    for i in range(entries - len(files)):
        link_dir = root / rng.choice(dirs)
        target = rng.choice(written)
        os.symlink(os.path.relpath(target, link_dir), link_dir / f"alias{i}.py")
        corpus.symlinks += 1
    corpus.dirs = len(dirs) + 1


def generate_big_file(path: Path, size: int) -> None:
    """``size`` bytes that do not repeat per MiB (a random block, stamped with its index)."""
    block = bytearray(os.urandom(CHUNK))
    with open(path, "wb", buffering=0) as f:
        for i in range(size // CHUNK):
            block[:8] = i.to_bytes(8, "little")
            f.write(block)


def make_corpus(ws: Workspace, cfg: Config) -> Corpus:
    corpus = Corpus(tree=ws.root / "site-packages", big=ws.root / "big.bin", big_size=cfg.big_size)
    generate_tree(corpus.tree, cfg.entries, corpus)
    generate_big_file(corpus.big, cfg.big_size)
    ws.settle()
    return corpus


# -- timing ---------------------------------------------------------------------------------
def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


class CommandFailed(Exception):
    pass


def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    """Run a command quietly; raise CommandFailed with its stderr when it fails."""
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise CommandFailed(
            f"{' '.join(argv[:2])}... exited {done.returncode}: {' / '.join(message[-3:])}"
        )


def time_cp(ws: Workspace, src: Path, samples: Samples) -> None:
    """``cp -a`` into a fresh destination; on disk also the ``sync -f`` after it."""
    dest = ws.fresh("cp")
    copy = timed(lambda: run(["cp", "-a", str(src), str(dest)]))
    samples["cp"].append(copy)
    if ws.on_disk:
        samples["cp+sync"].append(copy + timed(lambda: run(["sync", "-f", str(dest)])))
    ws.settle()


@dataclass
class Samples:
    """Timings in seconds by contender, plus notes printed with the results."""

    times: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> list[float]:
        return self.times.setdefault(key, [])

    def median(self, key: str) -> float | None:
        values = self.times.get(key)
        return statistics.median(values) if values else None


def report_round(label: str, i: int, repeat: int, samples: Samples) -> None:
    parts = [f"{k} {v[-1]:.3f}s" for k, v in samples.times.items() if len(v) == i + 1]
    log(f"  {label} {i + 1}/{repeat}: " + ", ".join(parts))


# -- nix ------------------------------------------------------------------------------------
def nix_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NIX_REMOTE", None)  # never talk to a daemon
    return env


def nix_store(ws: Workspace, probe: Path) -> Path:
    """A fresh local nix store, initialised (DB created) by adding a tiny path."""
    store = ws.fresh("nixstore")
    run(["nix-store", "--store", str(store), "--add", str(probe)], env=nix_env())
    return store


def nix_problem(ws: Workspace) -> str | None:
    """Why ``nix-store --add`` cannot run here, or None when it can."""
    if shutil.which("nix-store") is None:
        return "nix-store not found (apt-get install -y nix-bin)"
    probe = ws.root / "nix-probe"
    probe.write_text("probe\n")
    try:
        nix_store(ws, probe)
    except CommandFailed as exc:
        return str(exc)
    return None


def nix_version() -> str:
    if shutil.which("nix-store") is None:
        return "absent"
    out = subprocess.run(["nix-store", "--version"], capture_output=True, text=True)
    return out.stdout.strip()


# -- the three benchmarks -------------------------------------------------------------------
def bench_tree_ingest(ws: Workspace, corpus: Corpus, repeat: int) -> Samples:
    samples = Samples()
    problem = nix_problem(ws)
    if problem:
        samples.notes.append(f"nix-store --add skipped: {problem}")
        log(f"  {samples.notes[-1]}")
    digests: set[Digest] = set()
    for i in range(repeat):
        time_cp(ws, corpus.tree, samples)
        if not problem:
            time_nix_add(ws, corpus, samples)
        digests.add(time_put_tree(ws, corpus, samples))
        report_round("tree ingest", i, repeat, samples)
    if len(digests) != 1:
        raise RuntimeError(f"put_tree gave different digests across runs: {digests}")
    samples.notes.append(f"tree digest {digests.pop()}")
    return samples


def time_nix_add(ws: Workspace, corpus: Corpus, samples: Samples) -> None:
    store = nix_store(ws, ws.root / "nix-probe")
    ws.settle()
    argv = ["nix-store", "--store", str(store), "--add", str(corpus.tree)]
    add = timed(lambda: run(argv, env=nix_env()))
    samples["nix"].append(add)
    if ws.on_disk:
        samples["nix+sync"].append(add + timed(lambda: run(["sync", "-f", str(store)])))
    ws.settle()


def time_put_tree(ws: Workspace, corpus: Corpus, samples: Samples) -> Digest:
    path = ws.fresh("store")
    with Store.open(path) as store:
        ws.settle()
        start = time.perf_counter()
        digest = store.put_tree(corpus.tree)
        samples["seal"].append(time.perf_counter() - start)
    ws.settle()
    return digest


def hash_file(path: Path) -> bytes:
    """The hashlib anchor: 1 MiB reads into one buffer, each hashed."""
    hasher = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            hasher.update(view[:n])
    return hasher.digest()


def bench_big_file(ws: Workspace, corpus: Corpus, repeat: int) -> Samples:
    samples = Samples()
    for i in range(repeat):
        expected = time_hashlib(corpus, samples)
        got = time_put_file(ws, corpus, samples)
        if got.raw != expected:
            raise RuntimeError(f"put_file digest {got} differs from hashlib's")
        report_round("big-file ingest", i, repeat, samples)
    return samples


def time_hashlib(corpus: Corpus, samples: Samples) -> bytes:
    start = time.perf_counter()
    digest = hash_file(corpus.big)
    samples["hashlib"].append(time.perf_counter() - start)
    return digest


def time_put_file(ws: Workspace, corpus: Corpus, samples: Samples) -> Digest:
    path = ws.fresh("store")
    with Store.open(path) as store:
        ws.settle()
        start = time.perf_counter()
        digest = store.put_file(corpus.big)
        samples["seal"].append(time.perf_counter() - start)
    ws.discard(path)
    return digest


def bench_checkout(ws: Workspace, corpus: Corpus, repeat: int) -> Samples:
    samples = Samples()
    with Store.open(ws.fresh("store")) as store:
        tree = store.put_tree(corpus.tree)
        check_store(store)
        ws.settle()
        for i in range(repeat):
            time_cp(ws, corpus.tree, samples)
            time_checkout(ws, store, tree, samples, check=i == 0)
            report_round("checkout", i, repeat, samples)
    return samples


def time_checkout(ws: Workspace, store: Store, tree: Digest, samples: Samples, check: bool) -> None:
    """One checkout into a fresh destination; with ``check``, re-ingest it to compare digests."""
    dest = ws.fresh("checkout")
    samples["seal"].append(timed(lambda: store.checkout(tree, dest)))
    if check and store.put_tree(dest) != tree:
        raise RuntimeError("a checkout does not re-ingest to the same tree")
    ws.settle()


def check_store(store: Store) -> None:
    report = store.verify()
    if not report.ok:
        raise RuntimeError(f"store verify failed: {report}")


# -- one filesystem -------------------------------------------------------------------------
@dataclass
class FsResult:
    fs: Filesystem
    fstype: str
    corpus: Corpus
    tree: Samples
    big: Samples
    checkout: Samples
    caveat: str | None


def bench_filesystem(fs: Filesystem, cfg: Config) -> FsResult:
    ws = Workspace(fs)
    fstype = fs_type(ws.root)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    log(f"== {fs.label}: {ws.root} ({fstype}), load average {load}")
    if fs.label == "tmpfs" and fstype != "tmpfs":
        log(f"  warning: {fs.base} is {fstype}, not tmpfs")
    if fs.label == "disk" and fstype == "tmpfs":
        log(f"  warning: {fs.base} is tmpfs, not a disk; pass --disk-dir")
    check_space(ws, cfg)
    caveat = fs_caveat(ws.root)
    if caveat:
        log(f"  note: {caveat}")
    log("  generating corpus ...")
    corpus = make_corpus(ws, cfg)
    log(f"  corpus: {corpus.describe()}")
    tree = bench_tree_ingest(ws, corpus, cfg.repeat)
    big = bench_big_file(ws, corpus, cfg.repeat)
    checkout = bench_checkout(ws, corpus, cfg.repeat)
    if not cfg.keep:
        remove_tree(ws.root)
        _WORKSPACES.remove(ws)
    return FsResult(fs, fstype, corpus, tree, big, checkout, caveat)


def check_space(ws: Workspace, cfg: Config) -> None:
    """Refuse to start when the outputs kept until the end would not fit."""
    corpus = cfg.entries * 8 * 1024  # ~5 KiB files in 4 KiB blocks, plus dirs
    need = (4 * cfg.repeat + 3) * corpus + 3 * cfg.big_size
    free = shutil.disk_usage(ws.root).free
    if free < need:
        raise SystemExit(f"{ws.root}: {free / GiB:.1f} GiB free, need ~{need / GiB:.1f} GiB")


# -- report ---------------------------------------------------------------------------------
LABEL_WIDTH = 34
COLUMN_WIDTH = 22


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def ratio(num: float | None, den: float | None, target: float | None = None) -> str:
    if num is None or den is None:
        return "-"
    text = f"{num / den:.2f}x"
    if target is not None:
        text += f" ({'ok' if num / den <= target else 'MISS'} <={target}x)"
    return text


def throughput(size: int, secs: float | None) -> str:
    return "-" if secs is None else f"{size / secs / MB:,.0f} MB/s"


def share(seal: float | None, anchor: float | None, target: float | None) -> str:
    """seal's throughput as a share of the anchor's (time ratio inverted)."""
    if seal is None or anchor is None:
        return "-"
    value = anchor / seal
    text = f"{value:.0%}"
    if target is not None:
        text += f" ({'ok' if value >= target else 'MISS'} >={target:.0%})"
    return text


Row = tuple[str, Callable[[FsResult], str]]


def tree_rows() -> list[Row]:
    def target(r: FsResult, value: float) -> float | None:
        return value if r.fs.label == "tmpfs" else None

    return [
        ("tree ingest", lambda r: ""),
        ("  cp -a", lambda r: seconds(r.tree.median("cp"))),
        ("  cp -a + sync -f", lambda r: seconds(r.tree.median("cp+sync"))),
        ("  nix-store --add", lambda r: seconds(r.tree.median("nix"))),
        ("  nix-store --add + sync -f", lambda r: seconds(r.tree.median("nix+sync"))),
        ("  seal put_tree", lambda r: seconds(r.tree.median("seal"))),
        (
            "  put_tree / cp -a",
            lambda r: ratio(r.tree.median("seal"), r.tree.median("cp"), target(r, 1.2)),
        ),
        (
            "  put_tree / (cp -a + sync)",
            lambda r: ratio(r.tree.median("seal"), r.tree.median("cp+sync")),
        ),
        ("  nix-store --add / cp -a", lambda r: ratio(r.tree.median("nix"), r.tree.median("cp"))),
        (
            "  nix + sync / (cp -a + sync)",
            lambda r: ratio(r.tree.median("nix+sync"), r.tree.median("cp+sync")),
        ),
        (
            "  put_tree / nix-store --add",
            lambda r: ratio(r.tree.median("seal"), r.tree.median("nix")),
        ),
    ]


def big_rows(size: int) -> list[Row]:
    def target(r: FsResult) -> float | None:
        return 0.75 if r.fs.label == "tmpfs" else None

    name = "1 GiB" if size == GiB else f"{size // MiB} MiB"
    return [
        (f"{name} ingest", lambda r: ""),
        ("  hashlib.sha256 (1 MiB reads)", lambda r: throughput(size, r.big.median("hashlib"))),
        ("  seal put_file", lambda r: throughput(size, r.big.median("seal"))),
        (
            "  put_file / hashlib",
            lambda r: share(r.big.median("seal"), r.big.median("hashlib"), target(r)),
        ),
    ]


def checkout_rows() -> list[Row]:
    def target(r: FsResult) -> float | None:
        return 0.3 if r.fs.label == "tmpfs" else None

    return [
        ("checkout", lambda r: ""),
        ("  cp -a", lambda r: seconds(r.checkout.median("cp"))),
        ("  cp -a + sync -f", lambda r: seconds(r.checkout.median("cp+sync"))),
        ("  seal checkout", lambda r: seconds(r.checkout.median("seal"))),
        (
            "  checkout / cp -a",
            lambda r: ratio(r.checkout.median("seal"), r.checkout.median("cp"), target(r)),
        ),
        (
            "  checkout / (cp -a + sync)",
            lambda r: ratio(r.checkout.median("seal"), r.checkout.median("cp+sync")),
        ),
    ]


def print_runs(r: FsResult) -> None:
    """Every run's time (sorted), so the spread behind each median is on record."""
    sections = (("tree ingest", r.tree), ("big file", r.big), ("checkout", r.checkout))
    for section, samples in sections:
        for key, values in samples.times.items():
            runs = " ".join(f"{v:.3f}" for v in sorted(values))
            print(f"{r.fs.label} {section} {key} runs (s): {runs}")


def print_report(results: list[FsResult], cfg: Config) -> None:
    first = results[0]
    print()
    print(f"seal store benchmark, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"host: {platform.node()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
        f"Python {platform.python_version()}, {nix_version()}"
    )
    print("load average at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"corpus: {first.corpus.describe()}")
    print(f"each figure: median of {cfg.repeat} runs, fresh destination per run")
    print()
    header = "".ljust(LABEL_WIDTH) + "".join(
        f"{r.fs.label} ({r.fstype})".ljust(COLUMN_WIDTH) for r in results
    )
    print(header.rstrip())
    for label, cell in tree_rows() + big_rows(first.corpus.big_size) + checkout_rows():
        print(
            (
                label.ljust(LABEL_WIDTH) + "".join(cell(r).ljust(COLUMN_WIDTH) for r in results)
            ).rstrip()
        )
    print()
    for r in results:
        print_runs(r)
    print()
    for r in results:
        for note in r.tree.notes + r.big.notes + r.checkout.notes + [r.caveat or ""]:
            if note:
                print(f"{r.fs.label}: {note}")
    print(
        "Ratios are against anchors measured in the same run; targets apply to tmpfs.\n"
        "On disk, put_tree and put_file end with one syncfs, so their fair anchor is\n"
        "'cp -a + sync -f' (nix-store does not fsync store paths; '+ sync -f' adds it);\n"
        "checkout does not sync, so its anchor is 'cp -a'. Both ratios are printed.\n"
        "On disk, put_file writes and syncs the big file while hashlib only reads it."
    )


# -- profile mode ---------------------------------------------------------------------------
def profile_ingest(fs: Filesystem, cfg: Config) -> None:
    ws = Workspace(fs)
    log(f"profiling one put_tree in {ws.root} ({fs_type(ws.root)})")
    corpus = Corpus(tree=ws.root / "site-packages", big=ws.root / "unused")
    generate_tree(corpus.tree, cfg.entries, corpus)
    log(f"corpus: {corpus.describe().rsplit(' + ', 1)[0]}")
    with Store.open(ws.fresh("store")) as store:
        ws.settle()
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.runcall(store.put_tree, corpus.tree)
        wall = time.perf_counter() - start
    print(f"put_tree under cProfile: {wall:.3f} s wall (profiling overhead included)")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)


# -- main -----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 entries and 128 MiB")
    parser.add_argument("--only", choices=["tmpfs", "disk"], help="bench one filesystem")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data")
    parser.add_argument("--repeat", type=int, help="runs per figure (default 5, 3 with --quick)")
    parser.add_argument("--profile", choices=["ingest"], help="cProfile one tree ingest on tmpfs")
    parser.add_argument("--tmpfs-dir", type=Path, default=Path("/dev/shm"))
    parser.add_argument("--disk-dir", type=Path, default=Path("/var/tmp"))
    return parser.parse_args(argv)


def config(args: argparse.Namespace) -> Config:
    repeat = args.repeat or (3 if args.quick else 5)
    if args.quick:
        return Config(entries=2_000, big_size=128 * MiB, repeat=repeat, keep=args.keep)
    return Config(entries=20_000, big_size=GiB, repeat=repeat, keep=args.keep)


@contextlib.contextmanager
def cleaned_up(keep: bool) -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    try:
        yield
    finally:
        cleanup_all(keep)
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = config(args)
    filesystems = [Filesystem("tmpfs", args.tmpfs_dir), Filesystem("disk", args.disk_dir)]
    try:
        with cleaned_up(cfg.keep):
            if args.profile:
                profile_ingest(filesystems[0], cfg)
                return 0
            chosen = [fs for fs in filesystems if args.only in (None, fs.label)]
            results = [bench_filesystem(fs, cfg) for fs in chosen]
            print_report(results, cfg)
    except KeyboardInterrupt:
        log("interrupted; temporary data removed" if not cfg.keep else "interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
