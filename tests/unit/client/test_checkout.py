"""Writing a streamed tree: complete or untouched, never outside the destination, re-hashed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seal.client import checkout, exitcodes
from seal.client.errors import ClientError
from seal.store import Digest


def file_items(path: bytes, data: bytes, exe: bool = False, pieces: int = 1) -> list[tuple]:
    items = [("file", path, Digest.of_bytes(data), len(data), exe)]
    step = max(1, -(-len(data) // pieces))
    items += [("data", data[i : i + step]) for i in range(0, len(data), step)]
    return items


def good_stream() -> list[tuple]:
    return [
        ("dir", b"d", Digest.of_bytes(b""), 0),
        *file_items(b"d/f", b"hello", pieces=3),
        *file_items(b"d/empty", b""),
        ("symlink", b"d/l", b"f"),
        *file_items(b"tool", b"#!/bin/sh\n", exe=True),
    ]


class TestWrite:
    def test_writes_files_links_and_modes(self, tmp_path: Path):
        dest = tmp_path / "out"
        assert checkout.write(good_stream(), dest) == 5
        assert (dest / "d" / "f").read_bytes() == b"hello"
        assert (dest / "d" / "empty").read_bytes() == b""
        assert os.readlink(dest / "d" / "l") == "f"
        assert os.stat(dest / "tool").st_mode & 0o777 == 0o555
        assert os.stat(dest / "d" / "f").st_mode & 0o777 == 0o444
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging left

    def test_existing_empty_directory_is_used(self, tmp_path: Path):
        dest = tmp_path / "out"
        dest.mkdir()
        checkout.write(good_stream(), dest)
        assert (dest / "tool").exists()

    def test_non_empty_destination_is_refused(self, tmp_path: Path):
        dest = tmp_path / "out"
        dest.mkdir()
        (dest / "x").write_text("mine")
        with pytest.raises(ClientError) as info:
            checkout.write(good_stream(), dest)
        assert info.value.reason == "destination-exists"
        assert [p.name for p in dest.iterdir()] == ["x"]


class TestBadStreams:
    """A broken or hostile stream leaves nothing behind and writes nothing outside dest."""

    @pytest.mark.parametrize(
        "path", [b"../escape", b"/abs", b"d/../../escape", b"d//x", b"./x", b"", b"d/."]
    )
    def test_unsafe_paths(self, tmp_path: Path, path: bytes):
        dest = tmp_path / "sub" / "out"
        dest.parent.mkdir()
        stream = [("dir", b"d", Digest.of_bytes(b""), 0), *file_items(path, b"x")]
        with pytest.raises(ClientError) as info:
            checkout.write(stream, dest)
        assert info.value.reason == "protocol-error"
        assert list(tmp_path.rglob("*")) == [dest.parent]

    def test_content_that_does_not_hash_to_its_digest(self, tmp_path: Path):
        stream = good_stream()
        stream[2] = ("data", b"HEL")  # first piece of d/f, altered
        with pytest.raises(ClientError) as info:
            checkout.write(stream, tmp_path / "out")
        assert info.value.exit_code == exitcodes.DATA_LOSS
        assert list(tmp_path.iterdir()) == []

    @pytest.mark.parametrize("cut", ["short", "long", "orphan-data"])
    def test_content_of_the_wrong_length(self, tmp_path: Path, cut: str):
        items = file_items(b"f", b"abcdef")
        if cut == "short":
            stream = items[:1] + [("data", b"abc")]
        elif cut == "long":
            stream = items + [("data", b"more")]
        else:
            stream = [("data", b"abc")]
        with pytest.raises(ClientError):
            checkout.write(stream, tmp_path / "out")
        assert list(tmp_path.iterdir()) == []
