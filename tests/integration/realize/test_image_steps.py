"""The image builtins through a real daemon: deb-root, install-wheels and oci-image on
small packages made here, ending in an archive that seal's image check (and skopeo,
when installed) accepts.  The full example image is tests/e2e's."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from clientkit import seal_cmd
from pypifixture import build_wheel

from seal.daemon.image import imagecheck
from seal.store.digest import Digest

EPOCH = 1_700_000_000


def make_deb(tmp: Path, name: str, files: dict[str, bytes]) -> Path:
    root = tmp / f"{name}-pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 1.0\nArchitecture: amd64\n"
        "Maintainer: seal tests <t@seal.invalid>\nDescription: test\n"
    )
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if path.startswith(("bin/", "usr/bin/")):
            target.chmod(0o755)
    out = tmp / f"{name}_1.0_amd64.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(out)],
                   check=True, capture_output=True)  # fmt: skip
    return out


def write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


def realize(builder, path: Path) -> str:
    return builder.seal("realize", str(path)).stdout.strip().splitlines()[-1]


def cat_bytes(builder, digest: str) -> bytes:
    cmd = seal_cmd(builder.store, "store", "cat", digest)
    return subprocess.run(cmd, capture_output=True, check=True).stdout


def listing(builder, tree: str) -> dict[str, dict]:
    return {e["path"]: e for e in json.loads(builder.seal("--json", "store", "ls", tree).stdout)}


@pytest.fixture(scope="module")
def steps(builder, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("steps")
    debs = [
        make_deb(tmp, "tool", {"bin/tool": b"#!/bin/false\n", "etc/tool.conf": b"x=1\n"}),
        make_deb(tmp, "docs", {"usr/share/doc/docs/copyright": b"(c)\n",
                               "usr/share/doc/docs/README": b"long\n"}),
    ]  # fmt: skip
    deb_inputs = {d.name: {"object": builder.add(d)} for d in debs}
    runtime = write(tmp / "runtime.json", {
        "name": "runtime", "source_date_epoch": EPOCH,
        "builder": {"builtin": "deb-root", "version": 1,
                    "params": {"role": "runtime", "packages": sorted(deb_inputs)}},
        "inputs": deb_inputs,
    })  # fmt: skip
    dist = build_wheel("hello-app", "1.0")
    wheel = tmp / dist.filename
    wheel.write_bytes(dist.data)
    wheel_digest = builder.add(wheel)
    wheels = write(tmp / "wheels.json", {
        "name": "wheels", "source_date_epoch": EPOCH,
        "builder": {"builtin": "install-wheels", "version": 1,
                    "params": {"prefix": "usr/local", "python": "3.13",
                               "wheels": [{"filename": dist.filename,
                                           "sha256": Digest.parse(wheel_digest).raw.hex()}]}},
        "inputs": {dist.filename: {"object": wheel_digest}},
    })  # fmt: skip
    image = write(tmp / "image.json", {
        "name": "image", "source_date_epoch": EPOCH,
        "builder": {"builtin": "oci-image", "version": 1, "params": {
            "name": "steps-test", "tag": "v1", "created": EPOCH,
            "layers": ["runtime", "site-packages"],
            "config": {"entrypoint": ["/bin/tool"], "cmd": [], "env": ["A=b"],
                       "user": "65532:65532", "workdir": "/"}}},
        "inputs": {"runtime": {"drv": "runtime.json"}, "site-packages": {"drv": "wheels.json"}},
    })  # fmt: skip
    return tmp, runtime, wheels, image


def test_deb_root_unpacks_merged_usr_and_finishes_the_runtime(builder, steps):
    _, runtime, _, _ = steps
    files = listing(builder, realize(builder, runtime))
    assert files["bin"]["target"] == "usr/bin"  # merged /usr
    assert files["usr/bin/tool"]["mode"] == "100755"
    assert "usr/share/doc/docs/copyright" in files and "usr/share/doc/docs/README" not in files
    passwd = builder.seal("store", "cat", files["etc/passwd"]["digest"]).stdout
    assert "nonroot:x:65532:65532:" in passwd
    assert "tmp" in files


def test_install_wheels_lays_out_site_packages(builder, steps):
    _, _, wheels, _ = steps
    files = listing(builder, realize(builder, wheels))
    site = "usr/local/lib/python3.13/site-packages"
    assert any(p.startswith(f"{site}/hello_app-1.0.dist-info/") for p in files)
    installer = files[f"{site}/hello_app-1.0.dist-info/INSTALLER"]["digest"]
    assert builder.seal("store", "cat", installer).stdout == "seal\n"


def test_oci_image_writes_a_checked_archive(builder, steps):
    tmp, _, _, image = steps
    files = listing(builder, realize(builder, image))
    assert {"image.tar", "image.json", "hardening.json"} <= set(files)
    archive = tmp / "image.tar"
    archive.write_bytes(cat_bytes(builder, files["image.tar"]["digest"]))
    summary = json.loads(builder.seal("store", "cat", files["image.json"]["digest"]).stdout)
    report = imagecheck.check_archive(archive)
    assert report.manifest_digest == summary["manifest"] and report.layers == 2
    with tarfile.open(archive) as t:
        names = set(t.getnames())
        index = json.load(t.extractfile("index.json"))
    assert {"oci-layout", "index.json", "manifest.json"} <= names
    annotations = index["manifests"][0]["annotations"]
    assert annotations["org.opencontainers.image.ref.name"] == "v1"
    assert annotations["io.containerd.image.name"].endswith("steps-test:v1")
    if shutil.which("skopeo"):
        out = subprocess.run(["skopeo", "inspect", f"oci-archive:{archive}"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert json.loads(out)["Digest"] == summary["manifest"]


def test_the_same_steps_give_the_same_image(builder, steps):
    """Cached or rebuilt with `seal check`, the image step's output is the same tree."""
    _, _, _, image = steps
    first = realize(builder, image)
    proc = builder.seal("check", str(image))
    assert "reproducible" in proc.stdout and "NOT" not in proc.stdout
    assert realize(builder, image) == first


def test_merge_trees_stacks_layers_like_an_image(builder, steps, tmp_path):
    """Later layers win at the same path; a prefix places a tree (the app) under a folder."""
    _, runtime, wheels, _ = steps
    top = tmp_path / "top"
    (top / "etc").mkdir(parents=True)
    (top / "etc" / "tool.conf").write_text("x=2\n")  # replaces the runtime's
    (top / "main.py").write_text("print('app')\n")
    app = builder.add(top)
    merged = write(tmp_path / "merged.json", {
        "name": "rootfs", "source_date_epoch": EPOCH,
        "builder": {"builtin": "merge-trees", "version": 1,
                    "params": {"layers": ["runtime", "site-packages", "app", "over"],
                               "prefixes": {"app": "app"}}},
        "inputs": {"runtime": {"drv": str(runtime)}, "site-packages": {"drv": str(wheels)},
                   "app": {"object": app}, "over": {"object": app}},
    })  # fmt: skip
    files = listing(builder, realize(builder, merged))
    assert files["bin"]["target"] == "usr/bin" and "usr/bin/tool" in files
    assert any(p.startswith("usr/local/lib/python3.13/site-packages/") for p in files)
    assert "app/main.py" in files and "main.py" in files
    conf = builder.seal("store", "cat", files["etc/tool.conf"]["digest"]).stdout
    assert conf == "x=2\n"
