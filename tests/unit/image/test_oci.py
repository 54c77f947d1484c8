"""OCI output: gzip layers, the archive's documents, determinism, and seal's image check."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import zlib
from pathlib import Path

import pytest

from seal.daemon.image.imagecheck import ImageCheckFailed, check_archive
from seal.daemon.image.oci import (
    GZIP_HEADER,
    ImageConfig,
    InvalidImageReference,
    build_layer,
    parse_reference,
    write_archive,
)
from seal.daemon.image.tar import LayerEntry, LayerEntryError, entries_from_directory, write_tar

CREATED = 1700000000


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_trees(root: Path) -> tuple[Path, Path]:
    base, app = root / "base", root / "app"
    (base / "etc").mkdir(parents=True)
    (base / "tmp").mkdir()
    (base / "etc/passwd").write_text("root:x:0:0::/root:/sbin/nologin\n")
    (base / "bin").symlink_to("usr/bin")
    (app / "app").mkdir(parents=True)
    (app / "app/main.py").write_text("print('hi')\n" * 200)
    (app / "app/run").write_text("#!/bin/sh\n")
    (app / "app/run").chmod(0o755)
    return base, app


def build(tmp_path: Path, *, created: int = CREATED, out: str = "out.tar", **kw):
    if not (tmp_path / "src").exists():
        make_trees(tmp_path / "src")
    base, app = tmp_path / "src/base", tmp_path / "src/app"
    config = kw.pop("config", ImageConfig(entrypoint=["/app/run"], env=["A=1"], user="65532"))
    result = write_archive(
        [
            (entries_from_directory(base, modes={"tmp": 0o1777}), "seal: runtime"),
            (entries_from_directory(app), "seal: app"),
        ],
        config,
        created=created,
        ref_name=kw.pop("ref_name", "python-fastapi"),
        out_path=tmp_path / out,
        scratch=tmp_path / "scratch",
    )
    return result, tmp_path / out


def read_archive(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}


def bpath(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def blob(files: dict[str, bytes], digest: str) -> bytes:
    return files["blobs/sha256/" + digest.removeprefix("sha256:")]


class TestLayer:
    def test_gzip_of_the_tar_with_a_fixed_header(self, tmp_path: Path):
        base, _ = make_trees(tmp_path / "src")
        blobs = tmp_path / "blobs"
        layer = build_layer(entries_from_directory(base), blobs, mtime=1, created_by="x")
        tar = io.BytesIO()
        write_tar(entries_from_directory(base), tar, mtime=1)
        data = (tmp_path / "blobs/sha256" / layer.digest.removeprefix("sha256:")).read_bytes()
        assert data[:10] == GZIP_HEADER == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
        assert (layer.digest, layer.size, layer.created_by) == (sha(data), len(data), "x")
        assert layer.diff_id == sha(tar.getvalue())
        assert gzip.decompress(data) == tar.getvalue()
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        raw = comp.compress(tar.getvalue()) + comp.flush()  # one shot: same bytes as streamed
        assert data[10:-8] == raw
        gunzip = subprocess.run(["gzip", "-dc"], input=data, capture_output=True, check=True)
        assert gunzip.stdout == tar.getvalue()
        assert os.listdir(tmp_path / "blobs/sha256") == [layer.digest.removeprefix("sha256:")]

    def test_large_layer_streams_in_chunks(self, tmp_path: Path):
        big = os.urandom(3 << 20) + bytes(2 << 20)
        entry = LayerEntry("big", "file", 0o644, len(big), open=lambda: io.BytesIO(big))
        layer = build_layer([entry], tmp_path / "blobs", mtime=1, created_by="x")
        data = (tmp_path / "blobs/sha256" / layer.digest.removeprefix("sha256:")).read_bytes()
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tf:
            assert tf.extractfile("big").read() == big

    def test_failure_leaves_no_blob(self, tmp_path: Path):
        bad = LayerEntry("f", "file", 0o644, 10, open=lambda: io.BytesIO(b"short"))
        with pytest.raises(LayerEntryError):
            build_layer([bad], tmp_path / "blobs", mtime=1, created_by="x")
        assert os.listdir(tmp_path / "blobs/sha256") == []


class TestArchive:
    def test_same_inputs_same_bytes(self, tmp_path: Path):
        first, a = build(tmp_path, out="a.tar")
        second, b = build(tmp_path, out="b.tar")
        assert a.read_bytes() == b.read_bytes() and first == second
        third, c = build(tmp_path, created=CREATED + 1, out="c.tar")
        assert c.read_bytes() != a.read_bytes()
        assert third.manifest_digest != first.manifest_digest
        (tmp_path / "src/app/app/main.py").write_text("print('changed')\n")
        fourth, _ = build(tmp_path, out="d.tar")
        assert fourth.layers[0] == first.layers[0] and fourth.layers[1] != first.layers[1]
        left = sorted(os.listdir(tmp_path))  # no temporary archives
        assert left == ["a.tar", "b.tar", "c.tar", "d.tar", "scratch", "src"]
        assert os.listdir(tmp_path / "scratch") == []

    def test_documents(self, tmp_path: Path):
        result, path = build(tmp_path)
        files = read_archive(path)
        with tarfile.open(path) as tf:
            for m in tf.getmembers():
                assert (m.mtime, m.uid, m.gid, m.uname) == (CREATED, 0, 0, "")
                assert m.mode == (0o755 if m.isdir() else 0o644)
        assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
        index = json.loads(files["index.json"])
        assert result.index_digest == sha(files["index.json"])
        (desc,) = index["manifests"]
        assert desc["digest"] == result.manifest_digest
        assert desc["annotations"] == {
            "io.containerd.image.name": "docker.io/library/python-fastapi:latest",
            "org.opencontainers.image.ref.name": "latest",
        }
        manifest_bytes = blob(files, result.manifest_digest)
        assert desc["size"] == len(manifest_bytes)
        manifest = json.loads(manifest_bytes)
        canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        assert manifest_bytes == canonical
        assert manifest["schemaVersion"] == 2
        assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        assert manifest["config"]["digest"] == result.config_digest
        assert [ly["digest"] for ly in manifest["layers"]] == [ly.digest for ly in result.layers]
        assert {ly["mediaType"] for ly in manifest["layers"]} == {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        }
        config = json.loads(blob(files, result.config_digest))
        assert config["created"] == "2023-11-14T22:13:20Z"
        assert config["config"] == {"Entrypoint": ["/app/run"], "Env": ["A=1"], "User": "65532"}
        diff_ids = [ly.diff_id for ly in result.layers]
        assert config["rootfs"] == {"type": "layers", "diff_ids": diff_ids}
        assert config["history"] == [
            {"created": "2023-11-14T22:13:20Z", "created_by": "seal: runtime"},
            {"created": "2023-11-14T22:13:20Z", "created_by": "seal: app"},
        ]
        assert (config["os"], config["architecture"]) == ("linux", "amd64")
        assert json.loads(files["manifest.json"]) == [
            {
                "Config": bpath(result.config_digest),
                "RepoTags": ["python-fastapi:latest"],
                "Layers": [bpath(ly.digest) for ly in result.layers],
            }
        ]
        assert result.compressor.startswith(f"zlib {zlib.ZLIB_RUNTIME_VERSION} level 6")

    @pytest.mark.parametrize(
        ("ref", "full", "familiar", "tag"),
        [
            ("python-fastapi", "docker.io/library/python-fastapi", "python-fastapi", "latest"),
            ("app:1.0", "docker.io/library/app", "app", "1.0"),
            ("me/app", "docker.io/me/app", "me/app", "latest"),
            ("docker.io/library/app:v2", "docker.io/library/app", "app", "v2"),
            ("ghcr.io/o/app:1.2", "ghcr.io/o/app", "ghcr.io/o/app", "1.2"),
            ("localhost:5000/app", "localhost:5000/app", "localhost:5000/app", "latest"),
        ],
    )
    def test_reference_mapping(self, ref: str, full: str, familiar: str, tag: str):
        name = parse_reference(ref)
        assert (name.full, name.familiar, name.tag) == (full, familiar, tag)

    @pytest.mark.parametrize("ref", ["App", "app@sha256:" + "0" * 64, "app:", "a//b", "app:-x"])
    def test_bad_reference(self, ref: str):
        with pytest.raises(InvalidImageReference):
            parse_reference(ref)


class Tamper:
    """An extracted archive whose documents a test rewrites, keeping digests consistent."""

    def __init__(self, archive: Path, work: Path):
        self.dir = work
        with tarfile.open(archive) as tf:
            tf.extractall(work, filter="data")
        index = self.load("index.json")
        self.manifest_digest = index["manifests"][0]["digest"]
        self.manifest = json.loads(self.blob(self.manifest_digest))

    def load(self, name: str):
        return json.loads((self.dir / name).read_bytes())

    def blob(self, digest: str) -> bytes:
        return (self.dir / "blobs/sha256" / digest.removeprefix("sha256:")).read_bytes()

    def put(self, data: bytes) -> str:
        (self.dir / "blobs/sha256" / hashlib.sha256(data).hexdigest()).write_bytes(data)
        return sha(data)

    def save(self, out: Path, *, fix_docker: bool = True) -> Path:
        data = json.dumps(self.manifest).encode()
        digest = self.put(data)
        index = self.load("index.json")
        index["manifests"][0].update(digest=digest, size=len(data))
        (self.dir / "index.json").write_text(json.dumps(index))
        if fix_docker:
            docker = self.load("manifest.json")
            docker[0]["Layers"] = [bpath(d["digest"]) for d in self.manifest["layers"]]
            (self.dir / "manifest.json").write_text(json.dumps(docker))
        with open(out, "wb") as f:
            write_tar(entries_from_directory(self.dir), f, mtime=0)
        return out


class TestImageCheck:
    def test_good_archive_passes(self, tmp_path: Path):
        result, path = build(tmp_path)
        report = check_archive(path)
        assert report.manifest_digest == result.manifest_digest
        assert (report.layers, report.ok) == (2, True)

    def test_repacked_unchanged_passes(self, tmp_path: Path):
        _, path = build(tmp_path)
        t = Tamper(path, tmp_path / "x")
        check_archive(t.save(tmp_path / "same.tar"))  # the helper itself breaks nothing

    def test_wrong_diff_id_names_the_layer(self, tmp_path: Path):
        result, path = build(tmp_path)
        t = Tamper(path, tmp_path / "x")
        old = t.manifest["layers"][1]
        tar = bytearray(gzip.decompress(t.blob(old["digest"])))
        at = tar.index(b"print('hi')")
        tar[at] ^= 0x01  # one byte of a file's content: the tar is still valid
        data = gzip.compress(bytes(tar), mtime=0)
        t.manifest["layers"][1] = {**old, "digest": t.put(data), "size": len(data)}
        with pytest.raises(ImageCheckFailed) as err:
            check_archive(t.save(tmp_path / "bad.tar"))
        assert len(err.value.problems) == 1
        message = err.value.problems[0]
        assert "layer 1" in message and result.layers[1].diff_id in message
        assert sha(bytes(tar)) in message

    def test_wrong_layer_size(self, tmp_path: Path):
        _, path = build(tmp_path)
        t = Tamper(path, tmp_path / "x")
        t.manifest["layers"][0]["size"] += 1
        with pytest.raises(ImageCheckFailed, match="layer 0 .*descriptor size"):
            check_archive(t.save(tmp_path / "bad.tar"))

    def test_config_bytes_do_not_match_their_digest(self, tmp_path: Path):
        result, path = build(tmp_path)
        t = Tamper(path, tmp_path / "x")
        config_path = t.dir / "blobs/sha256" / result.config_digest.removeprefix("sha256:")
        config_path.write_bytes(config_path.read_bytes().replace(b"65532", b"0\0\0\0\0"))
        expected = f"config blob .*expected {result.config_digest}"
        with pytest.raises(ImageCheckFailed, match=expected):
            check_archive(t.save(tmp_path / "bad.tar"))

    def test_wrong_config_digest_in_manifest(self, tmp_path: Path):
        _, path = build(tmp_path)
        t = Tamper(path, tmp_path / "x")
        t.manifest["config"]["digest"] = "sha256:" + "0" * 64
        with pytest.raises(ImageCheckFailed, match="config blob sha256:0{64} is missing"):
            check_archive(t.save(tmp_path / "bad.tar"))

    def test_docker_manifest_must_agree(self, tmp_path: Path):
        _, path = build(tmp_path)
        t = Tamper(path, tmp_path / "x")
        t.manifest["layers"].reverse()  # diff_ids now disagree too; docker's list does not follow
        with pytest.raises(ImageCheckFailed, match="manifest.json Layers"):
            check_archive(t.save(tmp_path / "bad.tar", fix_docker=False))

    def test_not_an_archive(self, tmp_path: Path):
        (tmp_path / "x.tar").write_bytes(b"junk" * 300)
        with pytest.raises(ImageCheckFailed, match="cannot read"):
            check_archive(tmp_path / "x.tar")
