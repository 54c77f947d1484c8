"""The planner: an image config and its lock become a graph of derivation documents.

::

    toolchain (deb-root) ──> cpython (sandbox: configure, make, install, trim, strip)
    runtime (deb-root) ─────────────┬──> site-packages (sandbox: byte-compile, network off)
    wheels (install-wheels) ────────┘
    runtime, cpython, site-packages, app ──> rootfs (merge-trees) ──> image-tests (sandbox)
    runtime, cpython, site-packages, app (+ image-tests) ──> image (oci-image)

(rootfs and image-tests only when the config has ``tests``.)

Every step is pure in its inputs: the same config and lock give the same
documents, so an unchanged build is all cache hits.  Nothing here runs
anything; the realizer does.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from datetime import UTC

from seal.daemon.image.wheels import COMPILE_SCRIPT
from seal.daemon.inputs.config import ImageConfig
from seal.daemon.inputs.lockfile import Artifact, Lock, LockError
from seal.store.digest import Digest

from .derivation import EPOCH_FLOOR

PREFIX = "/usr/local"
NONROOT = "65532:65532"
TARGET = "image"
# Hardening (DESIGN.md section 8). Not -pie in LDFLAGS: with GCC 12 it links the
# extension modules as executables; Debian's GCC makes PIE executables by default.
CFLAGS = "-O2 -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE"
LDFLAGS = "-Wl,-z,relro -Wl,-z,now"
# Parts of the standard library an image never needs.
TRIMMED = ("test", "idlelib", "tkinter", "turtledemo", "ensurepip", "__phello__", "turtle.py")

# Builds CPython from /inputs/src into $out/usr/local. The source is unpacked at a
# fixed path (/build/src), the only build path that could leak into the output;
# the files that record it are rewritten to the installed config directory and
# the check at the end fails the build if any file still names /build.
CPYTHON_SCRIPT = r"""
set -eu
mkdir /build/src
tar xf /inputs/src -C /build/src --strip-components=1
cd /build/src
log() {{ tail -n 60 "$1"; exit 1; }}
./configure --prefix={prefix} --without-ensurepip --disable-test-modules \
    CFLAGS="{cflags}" LDFLAGS="{ldflags}" > /build/configure.log 2>&1 || log /build/configure.log
make -j"$SEAL_BUILD_CORES" > /build/make.log 2>&1 || log /build/make.log
tail -n 5 /build/make.log
make install DESTDIR="$out" > /build/install.log 2>&1 || log /build/install.log
root="$out{prefix}"
lib="$root/lib/python{series}"
config="$(cd "$lib" && echo config-{series}-*)"
cd "$lib"
rm -rf {trimmed}
find . -depth -type d -name __pycache__ -exec rm -rf {{}} +
rm -rf "$root/include" "$root/share" "$root/lib/pkgconfig" "$root/lib/libpython{series}.a" \
    "$config"/*.a "$config"/*.o "$config"/config.c* "$config"/python.o "$config"/Setup* \
    "$config"/install-sh "$config"/makesetup
strip --strip-unneeded lib-dynload/*.so
strip "$root/bin/python{series}"
# the build directory, as sysconfig recorded it, becomes the installed config directory
# (text files only: a binary's strings cannot change length)
grep -rlIF /build/src . "$root/bin" | while read -r f; do
    sed -i "s#/build/src#{prefix}/lib/python{series}/$config#g" "$f"
done
rm -f "$root/bin/idle{series}" "$root/bin/idle3" "$root/bin/pydoc{series}" "$root/bin/pydoc3"
# a fixed hash seed: frozenset constants are marshalled in iteration order; no pycs
# from compileall's own imports (timestamp pycs, which -f then replaces anyway)
PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 PYTHONHOME="$root" \
    "$root/bin/python{series}" -m compileall -f -q -j1 \
    --invalidation-mode unchecked-hash -d {prefix}/lib/python{series} -x '/lib-dynload/' . \
    > /build/compile.log 2>&1 || log /build/compile.log
PYTHONHOME="$root" "$root/bin/python{series}" -c 'import os, sys
bad = [os.path.join(d, f) for d, _, fs in os.walk(sys.argv[1]) for f in fs
       if f.endswith(".pyc") and open(os.path.join(d, f), "rb").read(8)[4:] != b"\x01\0\0\0"]
sys.exit("not unchecked-hash pycs: " + " ".join(bad[:5]) if bad else 0)' "$out"
if grep -rlF /build/src "$out" > /build/leaks; then
    echo "the build path leaked into:"; head -n 20 /build/leaks; exit 1
fi
"""

# Runs inside the runtime root with the built interpreter (no shell there): copy
# the installed wheels to $out, then byte-compile them for their final paths.
SITE_PACKAGES_SCRIPT = """
import os, shutil, sys
shutil.copytree("/inputs/wheels", os.environ["out"], symlinks=True, dirs_exist_ok=True)
sys.argv = ["compile", os.environ["out"] + sys.argv[1], sys.argv[1]]
"""


# Runs the config's `tests` inside the assembled image (no shell there: each command is
# split like a shell would split it, without expansions), stops at the first failure.
TESTS_SCRIPT = """
import os, shlex, subprocess, sys
results = []
for command in sys.argv[1:]:
    print("test:", command, flush=True)
    code = subprocess.run(shlex.split(command), cwd=os.environ["SEAL_TEST_CWD"]).returncode
    results.append(f"{code} {command}")
    if code != 0:
        sys.exit(f"test failed with exit status {code}: {command}")
with open(os.path.join(os.environ["out"], "results"), "w") as f:
    f.write("".join(r + "\\n" for r in results))
"""


class PlanError(LockError):
    """The lock cannot be built as it is (a part the plan needs is missing)."""


@dataclass(frozen=True)
class Plan:
    documents: dict[str, bytes]  # document name -> derivation JSON
    target: str  # the image's document name
    source_date_epoch: int


def source_date_epoch(config: ImageConfig, lock: Lock) -> int:
    """The config's value, else the newest Debian release date the lock was made from.

    Never the clock: the same lock gives the same epoch.  At least 1980-01-01.
    """
    if config.source_date_epoch is not None:
        return max(config.source_date_epoch, EPOCH_FLOOR)
    dates = [int(src.date.astimezone(UTC).timestamp()) for src in lock.sources.debian]
    return max([EPOCH_FLOOR, *dates])


def plan(config: ImageConfig, lock: Lock, *, app: Digest | None = None) -> Plan:
    """The derivation documents that build ``config``'s image from ``lock``'s artifacts."""
    epoch = source_date_epoch(config, lock)
    series = ".".join(lock.python_version.split(".")[:2])
    docs: dict[str, dict] = {}

    def add(name: str, doc: dict) -> str:
        docs[name] = {"name": name, "source_date_epoch": epoch, **doc}
        return name

    toolchain = add("toolchain", _deb_root(_debs(lock, "toolchain"), "toolchain"))
    runtime = add("runtime", _deb_root(_debs(lock, "runtime"), "runtime"))
    cpython = add(f"cpython-{lock.python_version}", _cpython(lock, toolchain, series))
    wheels = lock.select(kind="wheel")
    installed = add("wheels", _install_wheels(wheels, series))
    site = add("site-packages", _site_packages(runtime, cpython, installed, series))
    layers = [("runtime", runtime), ("python", cpython), ("site-packages", site)]
    inputs = {name: {"drv": ref, "output": "out"} for name, ref in layers}
    if app is not None:
        inputs["app"] = {"object": str(app)}
        layers.append(("app", "app"))
    if config.tests:  # the image is made only once its tests pass (network off, as every step)
        rootfs = add("rootfs", _merge(inputs, [name for name, _ in layers]))
        tested = add("image-tests", _tests(rootfs, config.tests, series, app is not None))
        inputs["tests"] = {"drv": tested, "output": "out"}
    params = {
        "name": config.name,
        "tag": "latest",
        "created": epoch,
        "layers": [name for name, _ in layers],
        "config": _image_config(config, series, app is not None),
        "prefixes": {"app": "app"},
    }
    add(
        TARGET,
        {"builder": {"builtin": "oci-image", "version": 1, "params": params}, "inputs": inputs},
    )
    documents = {name: json.dumps(doc, sort_keys=True).encode() for name, doc in docs.items()}
    return Plan(documents, TARGET, epoch)


def _debs(lock: Lock, role: str) -> list[Artifact]:
    debs = sorted(lock.select(kind="deb", role=role), key=lambda a: a.filename)
    if not debs:
        raise PlanError(f"the lock has no {role} Debian packages", hint="run 'seal lock' again")
    return debs


def _deb_root(debs: list[Artifact], role: str) -> dict:
    return {
        "builder": {
            "builtin": "deb-root",
            "version": 1,
            "params": {"role": role, "packages": [d.filename for d in debs]},
        },
        "inputs": {d.filename: {"object": f"sha256:{d.sha256}"} for d in debs},
    }


def _cpython(lock: Lock, toolchain: str, series: str) -> dict:
    sources = lock.select(kind="cpython-source")
    if len(sources) != 1:
        raise PlanError(f"the lock pins {len(sources)} CPython sources, not one")
    script = CPYTHON_SCRIPT.format(
        prefix=PREFIX,
        cflags=CFLAGS,
        ldflags=LDFLAGS,
        series=series,
        trimmed=" ".join(shlex.quote(t) for t in TRIMMED),
    )
    return {
        "builder": {
            "sandbox": {"args": ["/bin/sh", "-c", script], "env": {"PATH": "/usr/bin:/bin"}},
            "root": "toolchain",
        },
        "inputs": {
            "toolchain": {"drv": toolchain, "output": "out"},
            "src": {"object": f"sha256:{sources[0].sha256}"},
        },
    }


def _install_wheels(wheels: tuple[Artifact, ...], series: str) -> dict:
    ordered = sorted(wheels, key=lambda w: w.filename)
    return {
        "builder": {
            "builtin": "install-wheels",
            "version": 1,
            "params": {
                "prefix": PREFIX.lstrip("/"),
                "python": series,
                "wheels": [{"filename": w.filename, "sha256": w.sha256} for w in ordered],
            },
        },
        "inputs": {w.filename: {"object": f"sha256:{w.sha256}"} for w in ordered},
    }


def _site_packages(runtime: str, cpython: str, wheels: str, series: str) -> dict:
    python = f"/inputs/python{PREFIX}/bin/python{series}"
    final = f"{PREFIX}/lib/python{series}/site-packages"
    return {
        "builder": {
            "sandbox": {
                # not -E: the hash seed below must apply (the environment is the sandbox's)
                "args": [python, "-B", "-c", SITE_PACKAGES_SCRIPT + COMPILE_SCRIPT, final],
                # a fixed hash seed: frozenset constants are marshalled in iteration order
                "env": {"PYTHONHOME": f"/inputs/python{PREFIX}", "PYTHONHASHSEED": "0"},
            },
            "root": "runtime",
        },
        "inputs": {
            "runtime": {"drv": runtime, "output": "out"},
            "python": {"drv": cpython, "output": "out"},
            "wheels": {"drv": wheels, "output": "out"},
        },
    }


def _merge(inputs: dict, layers: list[str]) -> dict:
    return {
        "builder": {
            "builtin": "merge-trees",
            "version": 1,
            "params": {"layers": layers, "prefixes": {"app": "app"}},
        },
        "inputs": {name: inputs[name] for name in layers},
    }


def _tests(rootfs: str, tests: tuple[str, ...], series: str, has_app: bool) -> dict:
    return {
        "builder": {
            "sandbox": {
                "args": [f"{PREFIX}/bin/python{series}", "-I", "-c", TESTS_SCRIPT, *tests],
                "env": {
                    "PATH": f"{PREFIX}/bin:/usr/bin:/bin",
                    "PYTHONDONTWRITEBYTECODE": "1",
                    "SEAL_TEST_CWD": "/app" if has_app else "/",
                },
            },
            "root": "rootfs",
        },
        "inputs": {"rootfs": {"drv": rootfs, "output": "out"}},
    }


def _image_config(config: ImageConfig, series: str, has_app: bool) -> dict:
    env = {
        "PATH": f"{PREFIX}/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        **dict(config.env),
    }
    entrypoint = list(config.entrypoint) if config.entrypoint is not None else None
    cmd = list(config.cmd) if config.cmd is not None else None
    if entrypoint is None and cmd is None:
        entrypoint = [f"{PREFIX}/bin/python{series}"]
    return {
        "entrypoint": entrypoint or [],
        "cmd": cmd or [],
        "env": [f"{k}={v}" for k, v in env.items()],
        "user": NONROOT,
        "workdir": "/app" if has_app else "/",
    }
