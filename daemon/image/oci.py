"""OCI image output: gzip layers, image config, manifest, index, as an oci-archive tar.

Everything here is a function of its inputs: same entries, config, ``created``
and reference give the same archive bytes, provided the zlib build is the same
(``ImageResult.compressor`` names it; the provenance records it).

The gzip member is written by hand: header ``1f 8b 08 00``, MTIME 0, XFL 0
(RFC 1952 sets 2 or 4 only for the slowest/fastest levels; level 6 is neither),
OS 255 ("unknown": the bytes do not depend on the building system, the same
choice as Go's compress/gzip and Python's ``gzip.compress``), then raw deflate
at level 6 and the CRC32/ISIZE trailer.

Image reference mapping (docker's normalization): ``python-fastapi`` becomes
``docker.io/library/python-fastapi`` with tag ``latest``; ``ghcr.io/o/app:1.2``
keeps its registry.  ``org.opencontainers.image.ref.name`` on the index
descriptor is the tag alone (so ``oci:DIR:latest`` and umoci's ``DIR:latest``
find it), ``io.containerd.image.name`` the full name with tag, and docker's
``manifest.json`` lists the familiar form (``python-fastapi:latest``) as
``docker save`` does.

Example::

    result = write_archive(
        [(entries_from_store(store, runtime), "seal: runtime")],
        ImageConfig(entrypoint=["/usr/local/bin/python3"]),
        created=1700000000, ref_name="python-fastapi", out_path=Path("out.tar"), scratch=tmp,
    )
    print(result.manifest_digest)
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import queue
import re
import shutil
import tempfile
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seal.daemon.errors import DaemonError

from .tar import LayerEntry, entries_from_directory, iter_tar, write_tar

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
GZIP_LEVEL = 6
GZIP_HEADER = bytes([0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xFF])
COMPRESSOR = f"zlib {zlib.ZLIB_RUNTIME_VERSION} level {GZIP_LEVEL} (python zlib)"

_NAME_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_TAG = re.compile(r"[\w][\w.-]{0,127}\Z")
_DOMAIN = re.compile(r"(?:[a-zA-Z0-9-]+\.)*[a-zA-Z0-9-]+(?::[0-9]+)?\Z")


class InvalidImageReference(DaemonError, ValueError):
    """An image name is not a valid docker/OCI reference."""

    reason = "invalid-image-reference"


@dataclass(frozen=True)
class Layer:
    digest: str  # sha256 of the compressed blob
    diff_id: str  # sha256 of the uncompressed tar
    size: int  # compressed size
    created_by: str


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    user: str = ""
    workdir: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    os: str = "linux"
    architecture: str = "amd64"


@dataclass(frozen=True)
class ImageResult:
    manifest_digest: str
    config_digest: str
    index_digest: str
    layers: tuple[Layer, ...]
    compressor: str


@dataclass(frozen=True)
class ImageName:
    """A parsed reference: ``full`` = docker.io/library/x, ``familiar`` = x, plus the tag."""

    full: str
    familiar: str
    tag: str


def parse_reference(ref: str) -> ImageName:
    """Normalize ``name[:tag]`` as docker does; digests (``@sha256:``) are refused."""
    if "@" in ref:
        raise InvalidImageReference(f"image name {ref!r}: a digest reference cannot name an output")
    name, tag = ref, "latest"
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = ref.rsplit(":", 1)
    if not _TAG.match(tag):
        raise InvalidImageReference(f"image name {ref!r}: invalid tag {tag!r}")
    parts = name.split("/")
    domain = ""
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        domain = parts.pop(0)
        if not _DOMAIN.match(domain):
            raise InvalidImageReference(f"image name {ref!r}: invalid registry {domain!r}")
    for part in parts:
        if not _NAME_COMPONENT.match(part):
            raise InvalidImageReference(
                f"image name {ref!r}: invalid component {part!r}",
                hint="use lowercase letters, digits and separators . _ -",
            )
    path = "/".join(parts)
    if not domain or domain in ("docker.io", "index.docker.io"):
        if len(parts) == 1:
            path = "library/" + path
        full = "docker.io/" + path
        familiar = path.removeprefix("library/")
    else:
        full = familiar = domain + "/" + path
    return ImageName(full, familiar, tag)


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace: the one JSON form seal writes into images."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def rfc3339(epoch: int) -> str:
    """``2023-11-14T22:13:20Z`` for an integer epoch."""
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class _GzipSink:
    """Gzip and hash chunks in a worker thread (zlib and hashlib release the GIL).

    The caller produces the tar while the worker compresses the previous chunks.
    """

    def __init__(self, path: Path):
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._file = open(path, "wb")  # noqa: SIM115 -- closed by the worker thread's end
        self._error: BaseException | None = None
        self.digest = ""
        self.size = 0
        self._thread = threading.Thread(target=self._run, name="seal-gzip", daemon=True)
        self._thread.start()

    def write(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def finish(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        sha = hashlib.sha256()
        comp = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        crc = isize = size = 0

        def emit(data: bytes) -> None:
            nonlocal size
            if data:
                sha.update(data)
                self._file.write(data)
                size += len(data)

        try:
            emit(GZIP_HEADER)
        except BaseException as exc:  # handed to the producer thread
            self._error = exc
        # Always consume up to the end marker, so the producer never blocks on a full queue.
        while (chunk := self._queue.get()) is not None:
            if self._error is not None:
                continue
            try:
                crc = zlib.crc32(chunk, crc)
                isize += len(chunk)
                emit(comp.compress(chunk))
            except BaseException as exc:
                self._error = exc
        try:
            if self._error is None:
                emit(comp.flush())
                emit(crc.to_bytes(4, "little") + (isize & 0xFFFFFFFF).to_bytes(4, "little"))
                self._file.flush()
                os.fsync(self._file.fileno())
        except BaseException as exc:
            self._error = exc
        finally:
            self._file.close()
        self.digest = "sha256:" + sha.hexdigest()
        self.size = size


def build_layer(
    entries: Iterable[LayerEntry], blobs_dir: Path, *, mtime: int, created_by: str
) -> Layer:
    """Tar ``entries``, gzip the tar and store it as ``blobs_dir/sha256/<hex>``.

    One streaming pass: the tar's sha256 is the diff_id, the gzip's the digest.
    """
    dest = blobs_dir / "sha256"
    dest.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".layer-", dir=dest)
    os.close(fd)
    tmp = Path(tmp_name)
    diff = hashlib.sha256()
    sink = _GzipSink(tmp)
    try:
        for chunk in iter_tar(entries, mtime=mtime):
            diff.update(chunk)
            sink.write(chunk)
        sink.finish()
    except BaseException:
        sink.abort()
        tmp.unlink(missing_ok=True)
        raise
    os.chmod(tmp, 0o644)
    os.replace(tmp, dest / sink.digest.removeprefix("sha256:"))
    return Layer(sink.digest, "sha256:" + diff.hexdigest(), sink.size, created_by)


def _put_blob(blobs_dir: Path, data: bytes) -> dict[str, Any]:
    """Store ``data`` as a blob; return its descriptor without mediaType."""
    hexd = hashlib.sha256(data).hexdigest()
    path = blobs_dir / "sha256" / hexd
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": "sha256:" + hexd, "size": len(data)}


def image_config_json(config: ImageConfig, layers: Sequence[Layer], created: int) -> bytes:
    """The image config blob; empty config fields are left out."""
    inner: dict[str, Any] = {}
    for key, value in (
        ("Entrypoint", config.entrypoint),
        ("Cmd", config.cmd),
        ("Env", config.env),
        ("User", config.user),
        ("WorkingDir", config.workdir),
        ("Labels", config.labels),
    ):
        if value:
            inner[key] = value
    stamp = rfc3339(created)
    doc = {
        "architecture": config.architecture,
        "config": inner,
        "created": stamp,
        "history": [{"created": stamp, "created_by": layer.created_by} for layer in layers],
        "os": config.os,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
    }
    return canonical_json(doc)


def write_archive(
    layers_entries: Sequence[tuple[Iterable[LayerEntry], str]],
    config: ImageConfig,
    *,
    created: int,
    ref_name: str,
    out_path: Path,
    scratch: Path,
) -> ImageResult:
    """Build every layer and write the OCI layout as a tar at ``out_path`` (atomically).

    ``layers_entries`` is ``[(entries, created_by), ...]`` from the bottom layer up.
    """
    name = parse_reference(ref_name)
    scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="oci-", dir=scratch))
    try:
        blobs = work / "blobs"
        layers = tuple(
            build_layer(entries, blobs, mtime=created, created_by=created_by)
            for entries, created_by in layers_entries
        )
        config_bytes = image_config_json(config, layers, created)
        config_desc = {"mediaType": MEDIA_CONFIG, **_put_blob(blobs, config_bytes)}
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": config_desc,
            "layers": [
                {"mediaType": MEDIA_LAYER, "digest": layer.digest, "size": layer.size}
                for layer in layers
            ],
        }
        manifest_desc = {"mediaType": MEDIA_MANIFEST, **_put_blob(blobs, canonical_json(manifest))}
        index = {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [
                {
                    **manifest_desc,
                    "platform": {"architecture": config.architecture, "os": config.os},
                    "annotations": {
                        "io.containerd.image.name": f"{name.full}:{name.tag}",
                        "org.opencontainers.image.ref.name": name.tag,
                    },
                }
            ],
        }
        index_bytes = canonical_json(index)
        docker = [
            {
                "Config": _blob_path(config_desc["digest"]),
                "RepoTags": [f"{name.familiar}:{name.tag}"],
                "Layers": [_blob_path(layer.digest) for layer in layers],
            }
        ]
        files = {
            "oci-layout": canonical_json({"imageLayoutVersion": "1.0.0"}),
            "index.json": index_bytes,
            "manifest.json": canonical_json(docker),
        }
        for path, data in files.items():
            (work / path).write_bytes(data)
        _write_atomically(_archive_entries(work), out_path, mtime=created)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ImageResult(
        manifest_digest=manifest_desc["digest"],
        config_digest=config_desc["digest"],
        index_digest="sha256:" + hashlib.sha256(index_bytes).hexdigest(),
        layers=layers,
        compressor=COMPRESSOR,
    )


def _blob_path(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def _archive_entries(work: Path) -> Iterator[LayerEntry]:
    """The layout's files with fixed modes (0755 dirs, 0644 files), whatever the umask was."""
    for entry in entries_from_directory(work):
        mode = 0o755 if entry.kind == "dir" else 0o644
        yield LayerEntry(entry.path, entry.kind, mode, entry.size, entry.target, entry.open)


def _write_atomically(entries: Iterable[LayerEntry], out_path: Path, *, mtime: int) -> None:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", dir=out_path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write_tar(entries, f, mtime=mtime)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, out_path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
