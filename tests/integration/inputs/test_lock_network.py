"""The brief's config locked and fetched against the real PyPI and Debian mirror (network).

fastapi 0.104.1 + uvicorn 0.24.0 for CPython 3.13.5: the wheels pinned with
the SHA-256 PyPI lists, the whole closure present, the CPython source's
signature verified; the toolchain closure, unpacked with ``dpkg-deb -x``,
compiles and runs a C program in the sandbox; the runtime closure carries
every shared library CPython's extension modules link against.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from seal.daemon.inputs import fetch as fetching
from seal.daemon.inputs import lockfile
from seal.daemon.inputs.http import HttpClient
from seal.daemon.inputs.pypi import SimpleIndex
from seal.store import Digest
from seal.store.layout import Layout

pytestmark = pytest.mark.network

EXAMPLE = Path(__file__).parents[3] / "examples" / "python-fastapi.yaml"
CLOSURE = {
    "fastapi",
    "uvicorn",
    "starlette",
    "pydantic",
    "pydantic-core",
    "anyio",
    "sniffio",
    "idna",
    "typing-extensions",
    "annotated-types",
    "click",
    "h11",
}
# what a CPython build links its extension modules against (issue 6 builds CPython
# itself; until then the host's Debian CPython's modules of the same names stand in)
MODULES = (
    "_ssl",
    "_hashlib",
    "_ctypes",
    "_bz2",
    "_lzma",
    "_sqlite3",
    "_curses",
    "_uuid",
    "readline",
    "_gdbm",
    "pyexpat",
)
SEAL = [sys.executable, "-m", "seal.client.cli"]


def seal(store: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [*SEAL, "--store", str(store), *args], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def _store_dir(tmp: Path) -> Path:
    """A store kept between runs under SEAL_CI_CACHE (default /var/cache/seal-ci), so the
    CPython build is done once per toolchain; a temporary one if that cannot be made."""
    cache = Path(os.environ.get("SEAL_CI_CACHE", "/var/cache/seal-ci"))
    try:
        cache.mkdir(parents=True, exist_ok=True)
        probe = cache / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError:
        return tmp / "store"
    return cache / "network-store"


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    """The example locked (into a temporary directory) and fetched: (config, lock, store)."""
    tmp = tmp_path_factory.mktemp("brief")
    config = tmp / EXAMPLE.name
    shutil.copy(EXAMPLE, config)
    store = _store_dir(tmp)
    try:
        seal(store, "lock", str(config))
        seal(store, "fetch", str(config))
        lock_text = config.with_name(config.name + ".lock").read_text()
        yield config, lockfile.loads(lock_text, str(config) + ".lock"), store
    finally:
        subprocess.run([*SEAL, "--store", str(store), "daemon", "stop"], capture_output=True)


def object_path(store: Path, sha256: str) -> str:
    return Layout(store).object_path(Digest.from_hex(sha256))


def test_wheels_pinned_with_the_hashes_pypi_lists(fetched):
    _, lock, _ = fetched
    wheels = {a.name: a for a in lock.select(kind="wheel")}
    assert set(wheels) >= CLOSURE, CLOSURE - set(wheels)
    assert wheels["fastapi"].version == "0.104.1" and wheels["uvicorn"].version == "0.24.0"
    with HttpClient() as http:
        index = SimpleIndex("https://pypi.org/simple/", http=http)
        for name in ("fastapi", "uvicorn", "pydantic-core"):
            listed = {f.filename: f.sha256 for f in index.project_files(name)}
            assert listed[wheels[name].filename] == wheels[name].sha256
    assert "cp313" in wheels["pydantic-core"].filename


def test_the_cpython_source_signature_verifies(fetched, tmp_path):
    _, lock, store = fetched
    (source,) = lock.select(kind="cpython-source")
    assert source.version == "3.13.5" and source.signer
    results = fetching.verify_signed(lock, lambda sha: object_path(store, sha), tmp_path)
    assert [(a.filename, r.primary_fingerprint) for a, r in results] == [
        (source.filename, source.signer)
    ]


def unpack(lock: lockfile.Lock, store: Path, role: str, dest: Path) -> Path:
    dest.mkdir()
    for deb in lock.select(kind="deb", role=role):
        subprocess.run(
            ["dpkg-deb", "-x", object_path(store, deb.sha256), str(dest)],
            check=True,
            capture_output=True,
        )
    # a store tree holds no setuid, setgid or sticky bits (/tmp, su, mount ship them)
    special = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX
    for path in [dest, *dest.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and mode & special:
            path.chmod(stat.S_IMODE(mode) & ~special)
    return dest


def add_root(store: Path, root: Path) -> str:
    """Add an unpacked root to the store; its tree digest."""
    return seal(store, "-q", "store", "add", str(root)).stdout.strip().splitlines()[-1]


def realize(store: Path, tmp: Path, drv: dict, timeout: int = 600) -> str:
    path = tmp / f"{drv['name']}.json"
    path.write_text(json.dumps(drv))
    out = seal(store, "realize", "--timeout", str(timeout), str(path))
    return out.stdout.strip().splitlines()[-1]


def read_output(store: Path, tree: str, name: str) -> str:
    listing = json.loads(seal(store, "--json", "store", "ls", tree).stdout)
    entry = next(e for e in listing if e["path"] == name)
    return seal(store, "store", "cat", entry["digest"]).stdout


@pytest.fixture(scope="module")
def toolchain(fetched, tmp_path_factory):
    """The toolchain closure unpacked with dpkg-deb -x, as a store tree."""
    _, lock, store = fetched
    root = unpack(lock, store, "toolchain", tmp_path_factory.mktemp("toolchain") / "root")
    # what the packages' maintainer scripts would do on a real system: awk's
    # alternative (configure needs it) and the loader's cache
    (root / "usr" / "bin" / "awk").symlink_to("mawk")
    subprocess.run([shutil.which("ldconfig") or "/sbin/ldconfig", "-r", str(root)], check=True)
    aux = root / "var" / "cache" / "ldconfig" / "aux-cache"
    aux.unlink(missing_ok=True)  # ldconfig's own 0600 file: not part of the tree
    return add_root(store, root)


def sandboxed(name: str, root: str, args: list[str], env: dict | None = None, **inputs) -> dict:
    return {
        "name": name,
        "builder": {
            "sandbox": {"args": args, "env": {"PATH": "/usr/bin:/bin", **(env or {})}},
            "root": "root",
        },
        "inputs": {"root": {"object": root}, **{k: {"object": v} for k, v in inputs.items()}},
    }


needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")


@needs_bwrap
def test_the_toolchain_closure_compiles_a_c_program_in_the_sandbox(fetched, toolchain, tmp_path):
    _, _, store = fetched
    script = (
        "printf '#include <stdio.h>\\nint main(void){puts(\"hello from seal\");return 0;}\\n'"
        " > /tmp/h.c && gcc -O2 -o $out/hello /tmp/h.c && $out/hello > $out/said"
    )
    out = realize(store, tmp_path, sandboxed("hello", toolchain, ["/bin/sh", "-c", script]))
    assert read_output(store, out, "said") == "hello from seal\n"


# run inside the runtime root (no shell there): import every extension module built
IMPORT_ALL = r"""
import importlib, os, sys
dynload = os.path.join(sys.prefix, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}",
                       "lib-dynload")
names = sorted(n.split(".")[0] for n in os.listdir(dynload) if n.endswith(".so"))
failed = []
for n in names:
    try:
        importlib.import_module(n)
    except ImportError as e:
        failed.append(f"{n}: {e}")
with open(os.path.join(os.environ["out"], "report"), "w") as f:
    f.write(f"{len(names)} modules\n" + "".join(x + "\n" for x in failed))
"""


def built_outputs(store: Path, config: Path) -> dict[str, str]:
    """`seal build` of the config (cached when tests/e2e built it first, as CI orders them):
    each step's name -> its output tree."""
    shutil.copytree(EXAMPLE.parent / "fastapi_app", config.parent / "fastapi_app",
                    dirs_exist_ok=True)  # fmt: skip
    seal(store, "build", str(config), "-o", str(config.parent / "image.tar"))
    records = json.loads(seal(store, "--json", "builds", "-n", "500").stdout)
    return {b["name"]: b["outputs"]["out"] for b in records if b["status"] == "ok"}


@pytest.mark.slow
@needs_bwrap
def test_the_runtime_closure_runs_a_cpython_built_with_the_toolchain(fetched, tmp_path):
    """The CPython the image build compiles with the locked toolchain imports every
    extension module it built inside the runtime closure alone."""
    config, lock, store = fetched
    (source,) = lock.select(kind="cpython-source")
    series = ".".join(source.version.split(".")[:2])
    outputs = built_outputs(store, config)
    runtime = add_root(store, unpack(lock, store, "runtime", tmp_path / "runtime"))
    # no shell, no ldd: the loader of the runtime's libc runs the interpreter directly
    args = ["/lib64/ld-linux-x86-64.so.2", f"/inputs/py/usr/local/bin/python{series}"]
    env = {"PYTHONHOME": "/inputs/py/usr/local"}
    drv = sandboxed(
        "cpython-imports",
        runtime,
        [*args, "-c", IMPORT_ALL],
        env,
        py=outputs[f"cpython-{source.version}"],
    )
    report = read_output(store, realize(store, tmp_path, drv), "report").splitlines()
    count = int(report[0].split()[0])
    assert count > 50 and report[1:] == [], report


def _needed(path: Path) -> set[str]:
    out = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True).stdout
    return {line.split("[")[1].split("]")[0] for line in out.splitlines() if "(NEEDED)" in line}


def test_the_runtime_closure_has_the_libraries_cpython_links(fetched, tmp_path):
    _, lock, store = fetched
    root = unpack(lock, store, "runtime", tmp_path / "runtime")
    names = {a.name for a in lock.select(kind="deb", role="runtime")}
    assert {"ca-certificates", "tzdata", "netbase"} <= names
    assert "dash" not in names and "bash" not in names  # no shell in the runtime
    dynload = Path(f"/usr/lib/python3.{sys.version_info[1]}/lib-dynload")
    modules = [p for m in MODULES for p in dynload.glob(f"{m}.cpython-*.so")]
    if not modules:
        pytest.skip(f"no Debian CPython extension modules in {dynload} to read NEEDED from")
    needed = set().union(*map(_needed, modules)) | {"libc.so.6", "libm.so.6"}
    present = {
        p.name
        for lib in ("lib", "usr/lib")
        if (root / lib).exists()
        for p in (root / lib).rglob("*.so*")
    }
    assert needed <= present, sorted(needed - present)
    pem = root / "usr" / "share" / "ca-certificates"
    assert any(pem.rglob("*.crt"))
    assert (root / "usr" / "share" / "zoneinfo" / "UTC").exists()
    assert (root / "etc" / "services").exists()
    assert tomllib.loads(Path(f"{fetched[0]}.lock").read_text())["lock_version"] == 1
