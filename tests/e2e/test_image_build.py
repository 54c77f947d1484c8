"""`seal build examples/python-fastapi.yaml`, end to end: real PyPI and Debian, a CPython
compiled in the sandbox, an OCI archive checked by independent consumers.

Slow and network-bound: CI runs it.  The stores live under SEAL_CI_CACHE
(default /var/cache/seal-ci) so a second run is mostly cache hits; a cold run
builds CPython twice (two stores: root's, and an unprivileged user's).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from sealtest import as_unprivileged, blocking_ancestor, daemon_pids

from seal.daemon.image import imagecheck

pytestmark = [
    pytest.mark.network,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap"),
]

EXAMPLES = Path(__file__).parents[2] / "examples"
CONFIG = "python-fastapi.yaml"
SEAL = [sys.executable, "-m", "seal.client.cli"]
UID = 54321
BUILD_TIMEOUT = 3600


@dataclass(frozen=True)
class Built:
    work: Path
    store: Path
    image: Path
    digest: str
    stderr: str


def _cache(name: str, tmp: Path, owner: int | None = None) -> Path:
    """A store directory kept between runs when SEAL_CI_CACHE can be written, else a temp one."""
    cache = Path(os.environ.get("SEAL_CI_CACHE", "/var/cache/seal-ci"))
    try:
        cache.mkdir(parents=True, exist_ok=True)
        probe = cache / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
        path = cache / name
    except OSError:
        path = tmp / name
    path.mkdir(exist_ok=True)
    if owner is not None:
        os.chown(path, owner, owner)
    return path


def _examples(tmp: Path) -> Path:
    work = tmp / "examples"
    shutil.copytree(EXAMPLES, work)
    for lock in work.glob("*.lock"):  # locked here, against today's mirrors
        lock.unlink()
    return work


def _digest_of(stdout: str) -> str:
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("sha256:") and len(last) == 71, stdout
    return last


def _stop(store: Path) -> None:
    subprocess.run(
        [*SEAL, "--store", str(store), "daemon", "stop"], capture_output=True, timeout=60
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    tmp = tmp_path_factory.mktemp("image")
    work = _examples(tmp)
    store = _cache("network-store", tmp)  # shared with the lock tests: one fetch, one toolchain
    image = tmp / "python-fastapi.tar"
    try:
        proc = subprocess.run(
            [*SEAL, "--store", str(store), "build", str(work / CONFIG), "-o", str(image)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        yield Built(work, store, image, _digest_of(proc.stdout), proc.stderr)
    finally:
        _stop(store)


def test_seal_image_check_recomputes_every_digest(built):
    report = imagecheck.check_archive(built.image)
    assert report.ok and report.manifest_digest == built.digest
    assert report.layers == 4  # runtime, python, site-packages, app


def test_skopeo_reports_the_digest_seal_printed(built):
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed (apt-get install skopeo)")
    out = subprocess.run(
        ["skopeo", "inspect", f"oci-archive:{built.image}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    info = json.loads(out)
    assert info["Digest"] == built.digest
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"


@pytest.fixture(scope="module")
def rootfs(built, tmp_path_factory) -> Path:
    """The image unpacked by umoci (an independent OCI implementation)."""
    if shutil.which("umoci") is None:
        pytest.skip("umoci is not installed (apt-get install umoci)")
    tmp = tmp_path_factory.mktemp("umoci")
    layout = tmp / "layout"
    with tarfile.open(built.image) as archive:
        archive.extractall(layout, filter="tar")
    index = json.loads((layout / "index.json").read_text())
    tag = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
    subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:{tag}", str(tmp / "bundle")],
        check=True,
        capture_output=True,
    )
    return tmp / "bundle" / "rootfs"


def _in_rootfs(rootfs: Path, *args: str) -> subprocess.CompletedProcess:
    """Run a command inside the unpacked image, network off, as the image's user."""
    return subprocess.run(
        [
            "bwrap",
            "--bind",
            str(rootfs),
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--unshare-all",
            "--uid",
            "65532",
            "--gid",
            "65532",
            "--chdir",
            "/app",
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/local/bin:/usr/bin",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_umoci_rootfs_imports_fastapi_and_uvicorn(rootfs):
    proc = _in_rootfs(
        rootfs,
        "/usr/local/bin/python3.13",
        "-c",
        "import fastapi, uvicorn, ssl, sqlite3, zoneinfo; print(fastapi.__version__)",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0.104.1"


def test_the_image_is_minimal_and_non_root(rootfs, built):
    assert not (rootfs / "bin" / "sh").exists() and not (rootfs / "usr" / "bin" / "bash").exists()
    passwd = (rootfs / "etc" / "passwd").read_text()
    assert "nonroot:x:65532:65532:" in passwd
    assert (rootfs / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert (rootfs / "home" / "nonroot").stat().st_uid == 65532  # its home is its own
    config = _image_config(built.image)
    assert config["config"]["User"] == "65532:65532"
    # the app answers: import it and call its handler (no network needed)
    proc = _in_rootfs(
        rootfs,
        "/usr/local/bin/python3.13",
        "-c",
        "import fastapi_app.main as m; print(m.hello()['fastapi'])",
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "0.104.1", proc.stderr


def _image_config(image: Path) -> dict:
    with tarfile.open(image) as archive:
        index = json.load(archive.extractfile("index.json"))
        digest = index["manifests"][0]["digest"].split(":")[1]
        manifest = json.load(archive.extractfile(f"blobs/sha256/{digest}"))
        config = manifest["config"]["digest"].split(":")[1]
        return json.load(archive.extractfile(f"blobs/sha256/{config}"))


VERDICTS = {  # hardening-check's line -> seal's report field
    "Position Independent Executable": "pie",
    "Stack protected": "stack_protector",
    "Fortify Source functions": "fortify",
    "Read-only relocations": "relro",
    "Immediate binding": "bind_now",
}


def _hardening_check(paths: list[Path]) -> dict[str, dict[str, str]]:
    """hardening-check's verdict per file and fact: "yes", "no" or "unknown"/"n/a"."""
    out = subprocess.run(
        ["hardening-check", "--nocfprotection", *map(str, paths)], capture_output=True, text=True
    ).stdout
    verdicts: dict[str, dict[str, str]] = {}
    current = None
    for line in out.splitlines():
        if not line.startswith(" "):
            current = verdicts.setdefault(line.rstrip(":"), {})
            continue
        label, _, verdict = line.strip().partition(": ")
        if label in VERDICTS and current is not None:
            word = verdict.replace(",", " ").split()[0]
            current[VERDICTS[label]] = "n/a" if "ignored" in verdict else word
    return verdicts


def test_hardening_check_passes_for_the_python_binary(rootfs):
    """The interpreter passes every check of Debian's hardening-check (CET aside: Debian 12's
    GCC does not emit it and the brief does not ask for it)."""
    if shutil.which("hardening-check") is None:
        pytest.skip("hardening-check is not installed (apt-get install devscripts)")
    python = rootfs / "usr/local/bin/python3.13"
    proc = subprocess.run(
        ["hardening-check", "--nocfprotection", str(python)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout


def test_extension_modules_are_hardened_and_seal_reports_what_hardening_check_sees(rootfs, built):
    """Every extension module has RELRO and BIND_NOW; for the stack protector and FORTIFY,
    seal's per-file report gives the same verdict as hardening-check, file by file."""
    if shutil.which("hardening-check") is None:
        pytest.skip("hardening-check is not installed (apt-get install devscripts)")
    dynload = rootfs / "usr/local/lib/python3.13/lib-dynload"
    modules = sorted(dynload.glob("*.so"))
    assert len(modules) > 50
    theirs = _hardening_check(modules)
    report = json.loads(Path(str(built.image).removesuffix(".tar") + ".hardening.json").read_text())
    ours = {f["path"]: f for f in report["files"]}
    yes = {True: "yes", False: "no", None: "unknown"}
    for module in modules:
        facts = ours[f"usr/local/lib/python3.13/lib-dynload/{module.name}"]
        verdict = theirs[str(module)]
        assert verdict["relro"] == verdict["bind_now"] == "yes", (module.name, verdict)
        assert facts["relro"] and facts["bind_now"], module.name
        for fact in ("stack_protector", "fortify"):
            assert verdict[fact] == yes[facts[fact]], (module.name, fact, verdict, facts)
    protected = sum(ours[k]["stack_protector"] is True for k in ours if "lib-dynload" in k)
    assert protected > len(modules) * 0.9  # -fstack-protector-strong reached the modules


def _podman_works() -> str | None:
    if shutil.which("podman") is None:
        return "podman is not installed (apt-get install podman)"
    probe = subprocess.run(["podman", "--runtime", "runc", "info"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"podman cannot run here: {probe.stderr.strip().splitlines()[-1:]}"
    return None


def test_podman_loads_and_runs_the_image(built):
    why = _podman_works()
    if why:
        pytest.skip(why)
    podman = ["podman", "--runtime", "runc"]
    load = subprocess.run(
        [*podman, "load", "-i", str(built.image)], capture_output=True, text=True, timeout=300
    )
    assert load.returncode == 0, load.stderr
    ref = f"sha256:{_image_id(built.image)}"
    run = subprocess.run(
        [
            *podman,
            "run",
            "--rm",
            "--network=none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "--entrypoint",
            "/usr/local/bin/python3.13",
            ref,
            "-c",
            "import fastapi, os; print(fastapi.__version__, os.getuid())",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["0.104.1", "65532"]


def _image_id(image: Path) -> str:
    with tarfile.open(image) as archive:
        index = json.load(archive.extractfile("index.json"))
        digest = index["manifests"][0]["digest"].split(":")[1]
        manifest = json.load(archive.extractfile(f"blobs/sha256/{digest}"))
    return manifest["config"]["digest"].split(":")[1]


def test_an_unchanged_build_comes_from_the_cache(built, tmp_path):
    proc = subprocess.run(
        [
            *SEAL,
            "--store",
            str(built.store),
            "build",
            str(built.work / CONFIG),
            "-o",
            str(tmp_path / "again.tar"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert _digest_of(proc.stdout) == built.digest
    assert "all cached" in proc.stderr
    assert (tmp_path / "again.tar").read_bytes() == built.image.read_bytes()


@pytest.fixture
def shared_tmp():
    """A directory the unprivileged user can reach (pytest's own is 0700, and reset so)."""
    path = Path(tempfile.mkdtemp(prefix="seal-repro-", dir="/var/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_reproducible_from_another_store_user_and_environment(built, shared_tmp):
    """Another store at another path, another uid, TZ, LANG, umask, hostname and core
    count: the same image digest, or the first differing file is named."""
    tmp = shared_tmp
    work = _examples(tmp)
    shutil.chown(work, UID, UID)
    for path in work.rglob("*"):
        os.chown(path, UID, UID, follow_symlinks=False)
    store = _cache("image-store-unprivileged", tmp, owner=UID)
    image = work / "other.tar"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(work),
        "TZ": "Pacific/Chatham",
        "LANG": "de_DE.UTF-8",
        "SEAL_BUILD_CORES": str((os.cpu_count() or 1) + 1),  # root's build: cpu_count
    }
    cmd = [
        "env",
        "-i",
        *(f"{k}={v}" for k, v in env.items()),
        "sh",
        "-c",
        'umask 077; exec "$@"',
        "sh",
        *SEAL,
        "--store",
        str(store),
        "build",
        str(work / CONFIG),
        "-o",
        str(image),
    ]
    assert blocking_ancestor(str(store.parent)) is None, "the unprivileged user must reach it"
    hostname = ["unshare", "--uts", "--", "sh", "-c", 'hostname seal-elsewhere && exec "$@"', "sh"]
    try:
        proc = subprocess.run(
            [*hostname, *as_unprivileged(cmd, tmp, UID)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
    finally:
        _stop(store)  # root may stop another user's daemon
        for pid in daemon_pids(store):
            os.kill(pid, signal.SIGTERM)
    other = _digest_of(proc.stdout)
    if other != built.digest:
        pytest.fail(
            f"image digests differ: {built.digest} vs {other}; "
            f"first difference: {_first_difference(built.image, image)}"
        )


def _first_difference(a: Path, b: Path) -> str:
    """The first layer file whose bytes or metadata differ between two archives."""

    def layers(path: Path) -> list[dict[str, tuple]]:
        out = []
        with tarfile.open(path) as archive:
            index = json.load(archive.extractfile("index.json"))
            digest = index["manifests"][0]["digest"].split(":")[1]
            manifest = json.load(archive.extractfile(f"blobs/sha256/{digest}"))
            for layer in manifest["layers"]:
                blob = archive.extractfile(f"blobs/sha256/{layer['digest'].split(':')[1]}")
                with tarfile.open(fileobj=blob, mode="r:gz") as t:
                    files = {}
                    for m in t:
                        data = t.extractfile(m).read() if m.isfile() else m.linkname
                        files[m.name] = (m.mode, m.type, data)
                    out.append(files)
        return out

    for i, (x, y) in enumerate(zip(layers(a), layers(b), strict=False)):
        for name in sorted(set(x) | set(y)):
            if x.get(name) != y.get(name):
                return f"layer {i}: {name}"
    return "no file differs (the config or the compression does)"


NET_PROBE = """
import os, socket
results = []
for host, port in [("127.0.0.1", int(os.environ["PROBE_PORT"])), ("pypi.org", 443)]:
    try:
        socket.create_connection((host, port), timeout=5).close()
        results.append("connected")
    except OSError as exc:
        results.append(type(exc).__name__)
with open(os.path.join(os.environ["out"], "result"), "w") as f:
    f.write(" ".join(results))
"""


def test_a_build_step_cannot_reach_the_network(built, tmp_path):
    """A step shaped like the plan's site-packages step (the built CPython in the runtime
    root) tries the host's loopback and PyPI: both fail, while the host reaches its own
    listener."""
    seal = [*SEAL, "--store", str(built.store)]
    records = json.loads(
        subprocess.run([*seal, "--json", "builds", "-n", "500"],
                       capture_output=True, text=True, check=True).stdout
    )  # fmt: skip
    outputs = {b["name"]: b["outputs"]["out"] for b in records if b["status"] == "ok"}
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # the host can
        drv = {
            "name": "net-probe",
            "builder": {
                "sandbox": {
                    "args": ["/inputs/python/usr/local/bin/python3.13", "-E", "-c", NET_PROBE],
                    "env": {"PYTHONHOME": "/inputs/python/usr/local", "PROBE_PORT": str(port)},
                },
                "root": "runtime",
            },
            "inputs": {
                "runtime": {"object": outputs["runtime"]},
                "python": {"object": outputs["cpython-3.13.5"]},
            },
        }
        path = tmp_path / "probe.json"
        path.write_text(json.dumps(drv))
        proc = subprocess.run([*seal, "realize", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    tree = proc.stdout.strip().splitlines()[-1]
    listing = json.loads(
        subprocess.run([*seal, "--json", "store", "ls", tree],
                       capture_output=True, text=True, check=True).stdout
    )  # fmt: skip
    digest = next(e["digest"] for e in listing if e["path"] == "result")
    result = subprocess.run([*seal, "store", "cat", digest], capture_output=True, text=True)
    assert "connected" not in result.stdout
    assert result.stdout.split() == ["ConnectionRefusedError", "gaierror"]


def test_a_config_test_that_reaches_for_the_network_fails_the_build(built, tmp_path):
    """The config's tests run in the assembled image with the network off: one that
    connects to PyPI fails the build, and no image is written."""
    work = _examples(tmp_path)
    config = work / CONFIG
    probe = "import socket; socket.create_connection(('pypi.org', 443), timeout=5)"
    text = config.read_text().replace("tests:\n", f'tests:\n  - python3 -c "{probe}"\n')
    config.write_text(text)
    image = tmp_path / "never.tar"
    proc = subprocess.run(
        [*SEAL, "--store", str(built.store), "build", str(config), "-o", str(image)],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "gaierror" in proc.stderr and "test failed" in proc.stderr, proc.stderr[-3000:]
    assert not image.exists()


def test_build_check_rebuilds_every_step_and_compares(built, tmp_path):
    """`seal build --check`, like `seal check` for each step: every step but the downloads
    is built again from nothing and must give the same outputs."""
    proc = subprocess.run(
        [*SEAL, "--store", str(built.store), "--json", "build", "--check",
         str(built.work / CONFIG), "-o", str(tmp_path / "checked.tar")],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["manifest_digest"] == built.digest
    steps = {"toolchain", "runtime", "cpython-3.13.5", "wheels", "site-packages",
             "rootfs", "image-tests", "image"}  # fmt: skip
    assert len(result["checks"]) == len(steps)
    assert all(c["reproducible"] for c in result["checks"]), [
        (c["drv"], c["differing"][:5]) for c in result["checks"] if not c["reproducible"]
    ]
