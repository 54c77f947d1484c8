"""The brief's config locked and fetched against the real PyPI and Debian mirror (network).

fastapi 0.104.1 + uvicorn 0.24.0 for CPython 3.13.5: the wheels pinned with
the SHA-256 PyPI lists, the whole closure present, the CPython source's
signature verified; the toolchain closure, unpacked with ``dpkg-deb -x``,
compiles and runs a C program in the sandbox; the runtime closure carries
every shared library CPython's extension modules link against.
"""

from __future__ import annotations

import json
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


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    """The example locked and fetched into a fresh store: (config, lock, store)."""
    tmp = tmp_path_factory.mktemp("brief")
    config = tmp / EXAMPLE.name
    shutil.copy(EXAMPLE, config)
    store = tmp / "store"
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


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="the sandbox needs bubblewrap")
def test_the_toolchain_closure_compiles_a_c_program_in_the_sandbox(fetched, tmp_path):
    _, lock, store = fetched
    root = unpack(lock, store, "toolchain", tmp_path / "toolchain")
    # what dpkg's triggers would do on a real system: the loader's cache
    subprocess.run([shutil.which("ldconfig") or "/sbin/ldconfig", "-r", str(root)], check=True)
    aux = root / "var" / "cache" / "ldconfig" / "aux-cache"
    aux.unlink(missing_ok=True)  # ldconfig's own 0600 file: not part of the tree
    digest = seal(store, "-q", "store", "add", str(root)).stdout.strip().splitlines()[-1]
    script = (
        "printf '#include <stdio.h>\\nint main(void){puts(\"hello from seal\");return 0;}\\n'"
        " > /tmp/h.c && gcc -O2 -o $out/hello /tmp/h.c && $out/hello > $out/said"
    )
    drv = {
        "name": "hello",
        "builder": {
            "sandbox": {"args": ["/bin/sh", "-c", script], "env": {"PATH": "/usr/bin:/bin"}},
            "root": "root",
        },
        "inputs": {"root": {"object": digest}},
    }
    path = tmp_path / "hello.json"
    path.write_text(json.dumps(drv))
    out = seal(store, "realize", str(path)).stdout.strip().splitlines()[-1]
    listing = json.loads(seal(store, "--json", "store", "ls", out).stdout)
    said = next(e for e in listing if e["path"] == "said")
    assert seal(store, "store", "cat", said["digest"]).stdout == "hello from seal\n"


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
