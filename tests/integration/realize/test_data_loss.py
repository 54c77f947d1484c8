"""A byte flipped in a stored input fails the build as data loss, naming the input;
nothing is built from it and nothing new is rooted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from buildkit import shell_drv
from pypifixture import build_wheel

from seal.client import exitcodes
from seal.store.digest import Digest
from seal.store.layout import Layout


def _flip(store: Path, digest: str) -> None:
    """Change one byte of a stored object in place, as a failing disk would."""
    path = Path(Layout(store).object_path(Digest.parse(digest)))
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def wheel(tmp_path) -> Path:
    dist = build_wheel("flipme", "1.0")
    path = tmp_path / dist.filename
    path.write_bytes(dist.data)
    return path


def test_a_flipped_wheel_fails_install_wheels_as_data_loss(builder, wheel, tmp_path):
    digest = builder.add(wheel)
    sha = Digest.parse(digest).raw.hex()
    _flip(builder.store, digest)
    drv = tmp_path / "wheels.json"
    drv.write_text(
        json.dumps(
            {
                "name": "wheels",
                "builder": {
                    "builtin": "install-wheels",
                    "version": 1,
                    "params": {
                        "prefix": "usr/local",
                        "python": "3.13",
                        "wheels": [{"filename": wheel.name, "sha256": sha}],
                    },
                },
                "inputs": {wheel.name: {"object": digest}},
            }
        )
    )
    roots = builder.seal("--json", "store", "roots").stdout
    proc = builder.seal("realize", "--root", "flipped", str(drv), ok=False)
    assert proc.returncode == exitcodes.DATA_LOSS, proc.stderr
    assert wheel.name in proc.stderr and sha in proc.stderr, proc.stderr
    assert builder.seal("--json", "store", "roots").stdout == roots  # nothing new rooted


def test_a_flipped_source_never_reaches_a_sandbox_build(builder, tmp_path):
    src = tmp_path / "src.tar"
    src.write_bytes(b"pretend tarball " * 4096)
    digest = builder.add(src)
    _flip(builder.store, digest)
    drv = shell_drv(
        tmp_path / "use.json",
        builder.shell_root,
        "cat /inputs/src > $out/copy",
        name="uses-src",
        inputs={"src": {"object": digest}},
    )
    proc = builder.seal("realize", "--root", "flipped-src", str(drv), ok=False)
    assert proc.returncode == exitcodes.DATA_LOSS, proc.stderr
    assert "'src'" in proc.stderr and digest in proc.stderr
    assert "flipped-src" not in builder.seal("--json", "store", "roots").stdout
