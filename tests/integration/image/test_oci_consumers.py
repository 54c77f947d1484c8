"""Independent consumers (skopeo, umoci) accept seal's oci-archive as written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from seal.daemon.image.imagecheck import check_archive
from seal.daemon.image.oci import ImageConfig, ImageResult, write_archive
from seal.daemon.image.tar import entries_from_directory

CREATED = 1700000000
LONG = "deep/" + "/".join(["component-of-a-long-path"] * 5) + "/file.txt"  # > 100 bytes
UNICODE = "caf\u00e9/\u00fcber.txt"


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (apt-get install {tool})")
    return path


def run(*args: str | Path) -> str:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{args[0]} failed: {proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> tuple[ImageResult, Path]:
    work = tmp_path_factory.mktemp("oci")
    root = work / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "tmp").mkdir()
    (root / "etc").mkdir()
    (root / "etc/hello.txt").write_text("hello from seal\n")
    (root / "usr/bin/greet").write_text("#!/bin/sh\necho hi\n")
    (root / "usr/bin/greet").chmod(0o755)
    (root / "bin").symlink_to("usr/bin")
    (root / LONG).parent.mkdir(parents=True)
    (root / LONG).write_text("long path content\n")
    (root / UNICODE).parent.mkdir()
    (root / UNICODE).write_text("accents\n")
    app = work / "app"
    (app / "app").mkdir(parents=True)
    (app / "app/main.py").write_text("print('app')\n")
    result = write_archive(
        [
            (entries_from_directory(root, modes={"tmp": 0o1777}), "seal: runtime"),
            (entries_from_directory(app), "seal: app"),
        ],
        ImageConfig(entrypoint=["/usr/bin/greet"], env=["PATH=/usr/bin"], workdir="/app"),
        created=CREATED,
        ref_name="seal-test:v1",
        out_path=work / "out.tar",
        scratch=work / "scratch",
    )
    return result, work / "out.tar"


def test_seal_check_accepts_it(image):
    result, path = image
    assert check_archive(path).manifest_digest == result.manifest_digest


def test_skopeo_inspect_reports_our_digest_and_layers(image):
    skopeo = need("skopeo")
    result, path = image
    info = json.loads(run(skopeo, "inspect", f"oci-archive:{path}"))
    assert info["Digest"] == result.manifest_digest
    assert info["Layers"] == [layer.digest for layer in result.layers]
    assert info["Created"] == "2023-11-14T22:13:20Z"
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")
    config = json.loads(run(skopeo, "inspect", "--config", f"oci-archive:{path}"))
    assert config["rootfs"]["diff_ids"] == [layer.diff_id for layer in result.layers]


def test_skopeo_copy_to_an_oci_layout(image, tmp_path: Path):
    skopeo = need("skopeo")
    result, path = image
    dest = tmp_path / "layout"
    run(skopeo, "copy", f"oci-archive:{path}", f"oci:{dest}:copied")
    index = json.loads((dest / "index.json").read_text())
    (desc,) = index["manifests"]
    assert desc["digest"] == result.manifest_digest  # nothing recompressed or rewritten
    assert desc["annotations"]["org.opencontainers.image.ref.name"] == "copied"


def test_umoci_unpacks_the_rootfs(image, tmp_path: Path):
    umoci = need("umoci")
    _, path = image
    layout = tmp_path / "layout"
    with tarfile.open(path) as tf:
        tf.extractall(layout, filter="data")
    bundle = tmp_path / "bundle"
    rootless = [] if os.geteuid() == 0 else ["--rootless"]
    run(umoci, "unpack", *rootless, "--image", f"{layout}:v1", bundle)
    rootfs = bundle / "rootfs"
    assert (rootfs / "etc/hello.txt").read_text() == "hello from seal\n"
    assert (rootfs / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert (rootfs / "usr/bin/greet").stat().st_mode & 0o7777 == 0o755
    assert (rootfs / "etc/hello.txt").stat().st_mode & 0o7777 == 0o644
    assert os.readlink(rootfs / "bin") == "usr/bin"
    assert (rootfs / LONG).read_text() == "long path content\n"
    assert (rootfs / UNICODE).read_text() == "accents\n"
    assert (rootfs / "app/main.py").read_text() == "print('app')\n"
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["args"] == ["/usr/bin/greet"]
    assert config["process"]["cwd"] == "/app"
