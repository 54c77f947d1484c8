"""seal's own check of an oci-archive: every digest, size and diff_id recomputed.

podman and oci-image-tool trust a layer's diff_id; this check does not.  It
reads the archive (index.json -> manifest -> config and layers), hashes every
blob it reaches, decompresses every layer to recompute its diff_id against the
config's ``rootfs.diff_ids``, and checks docker's ``manifest.json`` names the
same config and layers.  Every problem found is collected into one
ImageCheckFailed.

Example::

    report = check_archive(Path("out.tar"))
    print(report.manifest_digest, report.layers)
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from seal.daemon.errors import DaemonError

from .oci import MEDIA_CONFIG, MEDIA_LAYER, MEDIA_MANIFEST

_CHUNK = 1 << 20


class ImageCheckFailed(DaemonError):
    """An image archive does not match its own digests, sizes or diff_ids."""

    reason = "image-check-failed"

    def __init__(self, path: Path, problems: list[str]):
        super().__init__(f"image {path} failed its check: " + "; ".join(problems))
        self.path = path
        self.problems = problems


@dataclass(frozen=True)
class CheckReport:
    manifest_digest: str
    layers: int  # layers whose digest, size and diff_id were recomputed
    ok: bool


class _Archive:
    def __init__(self, tf: tarfile.TarFile):
        self._tf = tf
        self._members = {m.name.rstrip("/"): m for m in tf.getmembers()}
        self.problems: list[str] = []

    def fail(self, message: str) -> None:
        self.problems.append(message)

    def open(self, name: str) -> IO[bytes] | None:
        member = self._members.get(name)
        if member is None or not member.isfile():
            return None
        return self._tf.extractfile(member)

    def json(self, name: str, what: str) -> Any:
        f = self.open(name)
        if f is None:
            self.fail(f"{what} {name} is missing")
            return None
        try:
            return json.loads(f.read())
        except ValueError as exc:
            self.fail(f"{what} {name} is not JSON: {exc}")
            return None

    def blob(self, desc: Any, what: str, media_type: str) -> bytes | None:
        """Read a small blob (manifest, config) named by a descriptor and check it."""
        name = self._blob_name(desc, what, media_type)
        if name is None:
            return None
        f = self.open(name)
        if f is None:
            self.fail(f"{what} blob {desc['digest']} is missing")
            return None
        data = f.read()
        self._compare(what, desc, "sha256:" + hashlib.sha256(data).hexdigest(), len(data))
        return data

    def layer(self, desc: Any, what: str, diff_id: str | None) -> bool:
        """Hash a layer blob and its decompressed tar; True when it could be read."""
        name = self._blob_name(desc, what, MEDIA_LAYER)
        if name is None:
            return False
        f = self.open(name)
        if f is None:
            self.fail(f"{what} blob {desc['digest']} is missing")
            return False
        blob_sha, tar_sha = hashlib.sha256(), hashlib.sha256()
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip wrapper
        size = 0
        try:
            while chunk := f.read(_CHUNK):
                size += len(chunk)
                blob_sha.update(chunk)
                tar_sha.update(inflate.decompress(chunk))
            tar_sha.update(inflate.flush())
            if not inflate.eof:
                raise zlib.error("truncated gzip stream")
        except zlib.error as exc:
            self.fail(f"{what} {desc['digest']} does not decompress: {exc}")
            return False
        self._compare(what, desc, "sha256:" + blob_sha.hexdigest(), size)
        actual_diff = "sha256:" + tar_sha.hexdigest()
        if diff_id is not None and actual_diff != diff_id:
            self.fail(
                f"{what} {desc['digest']}: diff_id in config is {diff_id}, "
                f"the decompressed layer hashes to {actual_diff}"
            )
        return True

    def _blob_name(self, desc: Any, what: str, media_type: str) -> str | None:
        if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
            self.fail(f"{what} descriptor is malformed: {desc!r}")
            return None
        if desc.get("mediaType") != media_type:
            self.fail(f"{what} mediaType is {desc.get('mediaType')!r}, expected {media_type!r}")
        digest = desc["digest"]
        hexpart = digest.removeprefix("sha256:")
        if not digest.startswith("sha256:") or len(hexpart) != 64:
            self.fail(f"{what} digest {digest!r} is not sha256:<64 hex>")
            return None
        return "blobs/sha256/" + str(hexpart)

    def _compare(self, what: str, desc: dict[str, Any], digest: str, size: int) -> None:
        if digest != desc["digest"]:
            self.fail(
                f"{what} blob blobs/sha256/{desc['digest'].removeprefix('sha256:')}: "
                f"expected {desc['digest']}, its bytes hash to {digest}"
            )
        if size != desc.get("size"):
            self.fail(
                f"{what} {desc['digest']}: descriptor size {desc.get('size')}, blob is {size} bytes"
            )


def check_archive(path: Path) -> CheckReport:
    """Check an oci-archive; raise ImageCheckFailed listing every difference found."""
    try:
        tf = tarfile.open(path, "r:")  # noqa: SIM115 -- closed by the with below
    except (OSError, tarfile.TarError) as exc:
        raise ImageCheckFailed(path, [f"cannot read the archive: {exc}"]) from None
    with tf:
        archive = _Archive(tf)
        manifest_digest, layers = _check(archive)
    if archive.problems:
        raise ImageCheckFailed(path, archive.problems)
    return CheckReport(manifest_digest, layers, True)


def _check(a: _Archive) -> tuple[str, int]:
    layout = a.json("oci-layout", "layout file")
    if layout is not None and layout.get("imageLayoutVersion") != "1.0.0":
        a.fail(f"oci-layout has imageLayoutVersion {layout.get('imageLayoutVersion')!r}")
    index = a.json("index.json", "index")
    if index is None:
        return "", 0
    manifests = index.get("manifests")
    if not isinstance(manifests, list) or len(manifests) != 1:
        a.fail("index.json must list exactly one manifest")
        return "", 0
    desc = manifests[0]
    data = a.blob(desc, "manifest", MEDIA_MANIFEST)
    if data is None:
        return "", 0
    manifest = _loads(a, data, "manifest")
    config_desc = manifest.get("config")
    config_data = a.blob(config_desc, "config", MEDIA_CONFIG)
    config = _loads(a, config_data, "config") if config_data is not None else {}
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids", []) if isinstance(rootfs, dict) else []
    layer_descs = manifest.get("layers") or []
    if config_data is not None and len(diff_ids) != len(layer_descs):
        a.fail(f"config lists {len(diff_ids)} diff_ids, the manifest {len(layer_descs)} layers")
    checked = 0
    for i, layer_desc in enumerate(layer_descs):
        diff_id = diff_ids[i] if i < len(diff_ids) else None
        checked += a.layer(layer_desc, f"layer {i}", diff_id)
    _check_docker_manifest(a, config_desc, layer_descs)
    return desc["digest"], checked


def _loads(a: _Archive, data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        a.fail(f"{what} is not JSON: {exc}")
        return {}
    if not isinstance(doc, dict):
        a.fail(f"{what} is not a JSON object")
        return {}
    return doc


def _check_docker_manifest(a: _Archive, config_desc: Any, layer_descs: list[Any]) -> None:
    docker = a.json("manifest.json", "docker manifest")
    if docker is None:
        return
    if not isinstance(docker, list) or len(docker) != 1 or not isinstance(docker[0], dict):
        a.fail("manifest.json must list exactly one image")
        return

    def path(d: Any) -> str:
        return "blobs/sha256/" + str(d.get("digest", "")).removeprefix("sha256:")

    expected_config = path(config_desc) if isinstance(config_desc, dict) else None
    if docker[0].get("Config") != expected_config:
        a.fail(f"manifest.json Config is {docker[0].get('Config')!r}, expected {expected_config!r}")
    expected_layers = [path(d) for d in layer_descs if isinstance(d, dict)]
    if docker[0].get("Layers") != expected_layers:
        actual = docker[0].get("Layers")
        a.fail(f"manifest.json Layers are {actual!r}, expected {expected_layers!r}")
