"""Layer assembly throughput: seal's tar+gzip against ``tar c | gzip -6`` of the same tree.

Run by hand (not in CI)::

    python3 bench/assembly.py              # a copy of /usr/lib/python3.11 in /dev/shm
    python3 bench/assembly.py DIR -n 5     # any tree, 5 rounds

seal: ``entries_from_directory(tree)`` -> ``build_layer`` (tar writer, sha256 of
the tar, gzip level 6 in a worker thread, sha256 of the gzip, blob written to
/dev/shm).  Anchor: ``tar -C DIR -c --sort=name . | gzip -6 > out`` (two
processes, so it also uses both cores).  Both read a tree hot in the page
cache and write to tmpfs; contenders alternate per round and the best round of
each is reported.  MiB/s is of uncompressed input: the tree's file bytes.
Target: seal/tar >= 0.8.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from seal.daemon.image.oci import COMPRESSOR, build_layer
from seal.daemon.image.tar import entries_from_directory

DEFAULT_SOURCE = Path("/usr/lib/python3.11")
SHM = Path("/dev/shm")
MIB = 1 << 20


def tree_bytes(root: Path) -> tuple[int, int]:
    """(file bytes, entries) of a tree, symlinks not followed."""
    total = count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        count += len(dirnames) + len(filenames)
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if not os.path.islink(os.path.join(dirpath, name)):
                total += st.st_size
    return total, count


def _time_seal(tree: Path, work: Path) -> float:
    blobs = Path(tempfile.mkdtemp(prefix="seal-", dir=work))
    start = time.perf_counter()
    build_layer(entries_from_directory(tree), blobs, mtime=1700000000, created_by="bench")
    elapsed = time.perf_counter() - start
    shutil.rmtree(blobs)
    return elapsed


def _time_tar(tree: Path, work: Path) -> float:
    out = work / "tar.tar.gz"
    cmd = f"tar -C {_quote(tree)} -c --sort=name . | gzip -6 > {_quote(out)}"
    start = time.perf_counter()
    subprocess.run(["sh", "-c", cmd], check=True)
    elapsed = time.perf_counter() - start
    out.unlink()
    return elapsed


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "'\\''") + "'"


def measure(tree_dir: Path, repeats: int = 3) -> dict:
    """Time both contenders ``repeats`` times (after one warm-up each); best run of each."""
    size, entries = tree_bytes(tree_dir)
    work = Path(tempfile.mkdtemp(prefix="seal-assembly-", dir=SHM if SHM.is_dir() else None))
    try:
        _time_seal(tree_dir, work), _time_tar(tree_dir, work)  # warm the page cache and code
        seal_runs, tar_runs = [], []
        for _ in range(repeats):
            seal_runs.append(_time_seal(tree_dir, work))
            tar_runs.append(_time_tar(tree_dir, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seal_best, tar_best = min(seal_runs), min(tar_runs)
    return {
        "tree": str(tree_dir),
        "bytes": size,
        "entries": entries,
        "seal_s": seal_best,
        "tar_gzip_s": tar_best,
        "seal_mib_s": size / MIB / seal_best,
        "tar_gzip_mib_s": size / MIB / tar_best,
        "ratio": tar_best / seal_best,  # seal throughput / tar throughput
        "seal_runs": sorted(seal_runs),
        "tar_gzip_runs": sorted(tar_runs),
        "compressor": COMPRESSOR,
    }


def _default_tree() -> Path:
    dest = SHM / "seal-bench-python3.11"
    if not dest.exists():
        shutil.copytree(DEFAULT_SOURCE, dest, symlinks=True)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", nargs="?", type=Path, help=f"default: a copy of {DEFAULT_SOURCE}")
    parser.add_argument("-n", "--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    made = args.tree is None and not (SHM / "seal-bench-python3.11").exists()
    tree = args.tree or _default_tree()
    try:
        r = measure(tree, args.repeats)
    finally:
        if made:  # leave /dev/shm as we found it: other benchmarks need its memory
            shutil.rmtree(tree, ignore_errors=True)
    gzip_version = subprocess.run(["gzip", "--version"], capture_output=True, text=True)
    print(f"tree: {r['tree']} ({r['entries']:,} entries, {r['bytes'] / MIB:.1f} MiB of files)")
    print(
        f"seal build_layer: {r['seal_s']:.3f} s = {r['seal_mib_s']:.1f} MiB/s  ({r['compressor']})"
    )
    print(
        f"tar | gzip -6:    {r['tar_gzip_s']:.3f} s = {r['tar_gzip_mib_s']:.1f} MiB/s  "
        f"({gzip_version.stdout.splitlines()[0]})"
    )
    print(f"ratio seal/tar: {r['ratio']:.2f} (target >= 0.8)")
    print("runs (s): seal", " ".join(f"{t:.3f}" for t in r["seal_runs"]))
    print("          tar|gzip", " ".join(f"{t:.3f}" for t in r["tar_gzip_runs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
