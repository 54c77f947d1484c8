"""The deterministic tar writer: pinned bytes, order, PAX only when needed, refusals."""

from __future__ import annotations

import hashlib
import io
import os
import random
import subprocess
import tarfile
from pathlib import Path

import pytest

from seal.daemon.image.tar import (
    LayerEntry,
    LayerEntryError,
    entries_from_directory,
    entries_from_store,
    write_tar,
)
from seal.store import Store

MTIME = 1700000000
LONG_DIR = "d" * 60 + "/" + "e" * 60  # 121 bytes: fits only with a ustar prefix split


def make_tree(root: Path) -> Path:
    """A small tree with every kind of entry the layers carry."""
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/lib/x").mkdir(parents=True)
    (root / "tmp").mkdir()
    (root / "usr/bin/tool").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "usr/bin/tool").chmod(0o700)
    (root / "usr/lib/x/data.txt").write_bytes(b"x" * 1000)
    (root / "usr/lib/x/empty").write_bytes(b"")
    (root / "usr/lib/x/secret").write_bytes(b"s")
    (root / "usr/lib/x/secret").chmod(0o600)
    (root / "usr/bin/link").symlink_to("tool")
    (root / LONG_DIR).mkdir(parents=True)
    (root / LONG_DIR / "file").write_bytes(b"long")
    return root


def tar_bytes(entries, mtime: int = MTIME) -> bytes:
    out = io.BytesIO()
    n = write_tar(entries, out, mtime=mtime)
    assert n == len(out.getvalue())
    return out.getvalue()


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        return tf.getmembers()


def data_entry(path: str, content: bytes, mode: int = 0o644) -> LayerEntry:
    return LayerEntry(path, "file", mode, len(content), open=lambda: io.BytesIO(content))


def typeflags(data: bytes) -> list[bytes]:
    """The typeflag of every header block, walking the archive by sizes."""
    flags, pos = [], 0
    while data[pos : pos + 512] != bytes(512):
        block = data[pos : pos + 512]
        flags.append(block[156:157])
        size = int(block[124:135], 8)
        pos += 512 + (size + 511) // 512 * 512
    return flags


class TestFormat:
    def test_reads_back_with_normalized_metadata(self, tmp_path: Path):
        root = make_tree(tmp_path / "root")
        data = tar_bytes(entries_from_directory(root, modes={"tmp": 0o1777}))
        got = {m.name: m for m in members(data)}
        assert got["usr/bin/tool"].mode == 0o755
        assert got["usr/lib/x/secret"].mode == 0o644
        assert got["tmp"].mode == 0o1777 and got["tmp"].isdir()
        assert got["usr/bin/link"].issym() and got["usr/bin/link"].linkname == "tool"
        assert got[LONG_DIR + "/file"].size == 4
        for m in got.values():
            assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", MTIME)
            assert m.pax_headers == {}
            assert (m.devmajor, m.devminor) == (0, 0)
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            assert tf.extractfile("usr/lib/x/data.txt").read() == b"x" * 1000

    def test_raw_header_fields(self):
        data = tar_bytes([LayerEntry("a", "dir", 0o755), data_entry("a/f", b"hello")])
        first, second = data[:512], data[512:1024]
        assert first[:2] == b"a/"  # directories end with a slash
        assert first[257:265] == b"ustar\x0000"
        assert first[100:108] == b"0000755\0"
        assert first[108:124] == b"0000000\0" * 2  # uid, gid
        assert first[265:329] == bytes(64)  # empty uname, gname
        assert first[329:345] == b"0000000\0" * 2  # devmajor, devminor
        assert first[136:148] == b"%011o\0" % MTIME
        blank = first[:148] + b" " * 8 + first[156:]
        assert int(first[148:154], 8) == sum(blank) and first[154:156] == b"\0 "
        assert second[124:136] == b"00000000005\0"
        assert data[1024:1029] == b"hello" and data[1029:1536] == bytes(507)

    def test_ends_with_two_zero_blocks_and_no_record_padding(self):
        data = tar_bytes([data_entry("f", b"abc")])
        assert len(data) == 512 + 512 + 1024  # header, one content block, end marker
        assert data[-1024:] == bytes(1024)

    def test_gnu_tar_extracts_modes_and_links(self, tmp_path: Path):
        root = make_tree(tmp_path / "root")
        archive = tmp_path / "t.tar"
        archive.write_bytes(tar_bytes(entries_from_directory(root, modes={"tmp": 0o1777})))
        out = tmp_path / "out"
        out.mkdir()
        subprocess.run(["tar", "-xpf", archive, "-C", out], check=True)
        assert (out / "tmp").stat().st_mode & 0o7777 == 0o1777
        assert (out / "usr/bin/tool").stat().st_mode & 0o777 == 0o755
        assert os.readlink(out / "usr/bin/link") == "tool"
        assert (out / LONG_DIR / "file").read_bytes() == b"long"

    def test_identical_to_gnu_tar_ustar(self, tmp_path: Path):
        """Where both can express a tree, GNU tar's ustar output is byte-identical to ours.

        (GNU tar pads to a 10240-byte record; we stop after the two zero blocks.)
        """
        root = make_tree(tmp_path / "root")
        (root / "usr/lib/x/secret").chmod(0o644)  # GNU tar keeps disk modes: normalize them
        (root / "usr/bin/tool").chmod(0o755)
        (root / "tmp").chmod(0o1777)
        for d in [p for p in root.rglob("*") if p.is_dir() and p.name != "tmp"]:
            d.chmod(0o755)
        gnu = subprocess.run(
            [
                "tar",
                "--format=ustar",
                "--sort=name",
                "--owner=0",
                "--group=0",
                "--numeric-owner",
                f"--mtime=@{MTIME}",
                "-C",
                root,
                "-cf",
                "-",
                *sorted(os.listdir(root)),
            ],
            check=True,
            capture_output=True,
        ).stdout
        ours = tar_bytes(entries_from_directory(root, modes={"tmp": 0o1777}))
        assert len(gnu) % 10240 == 0 and gnu[len(ours) :] == bytes(len(gnu) - len(ours))
        assert gnu[: len(ours)] == ours

    def test_same_entries_same_bytes_and_pinned_format(self):
        def entries():
            return [
                LayerEntry("etc", "dir", 0o755),
                data_entry("etc/passwd", b"root:x:0:0::/root:/sbin/nologin\n"),
                LayerEntry("tmp", "dir", 0o1777),
                LayerEntry("bin", "symlink", 0o777, target="usr/bin"),
                data_entry("usr/bin/py", b"\x7fELF" + bytes(600), 0o755),
                data_entry("x" * 120, b"pax"),
            ]

        first = tar_bytes(entries())
        assert first == tar_bytes(entries())
        assert first != tar_bytes(entries(), mtime=MTIME + 1)
        # The pinned format itself: a change to any header byte changes this digest.
        assert (
            hashlib.sha256(first).hexdigest()
            == "0cfc1c2bccde5a8648ea0ea96cb5171c8fdf685c22c1168f651bd351d3ba0a17"
        )


class TestPax:
    def test_prefix_split_avoids_pax(self):
        data = tar_bytes([data_entry(LONG_DIR + "/file", b"x")])
        assert b"x" not in typeflags(data)
        assert [m.name for m in members(data)][-1] == LONG_DIR + "/file"

    @pytest.mark.parametrize(
        "path",
        ["n" * 101, "a/" + "n" * 101, "p" * 160 + "/f", "caf\u00e9", "d/\u00fcber/f"],
        ids=["long-name", "long-last-component", "long-prefix", "non-ascii", "non-ascii-dir"],
    )
    def test_path_that_does_not_fit_gets_pax_path_only(self, path: str):
        data = tar_bytes([data_entry(path, b"x")])
        got = members(data)[-1]
        assert got.name == path
        assert set(got.pax_headers) == {"path"}  # never mtime, never anything else
        assert typeflags(data)[-2:] == [b"x", b"0"]  # the file's own PAX header, then ustar

    def test_long_symlink_target_gets_pax_linkpath(self):
        target = "/".join(["t" * 30] * 5)
        data = tar_bytes([LayerEntry("l", "symlink", 0o777, target=target)])
        got = members(data)[-1]
        assert got.linkname == target and set(got.pax_headers) == {"linkpath"}

    def test_non_utf8_name_round_trips_as_binary(self):
        path = b"bad\xffname".decode("utf-8", "surrogateescape")
        data = tar_bytes([data_entry(path, b"x")])
        assert b"hdrcharset=BINARY" in data
        assert os.fsencode(members(data)[-1].name) == b"bad\xffname"


class TestOrder:
    def test_sorted_by_components_whatever_the_input_order(self):
        paths = ["a-b", "a/b", "a/b/c", "a", "a.b", "b", "a/ba", "a/b-c"]
        dirs = ("a", "a/b")
        entries = [
            LayerEntry(p, "dir", 0o755) if p in dirs else LayerEntry(p, "file", 0o644)
            for p in paths
        ]
        results = set()
        for seed in range(5):
            random.Random(seed).shuffle(entries)
            data = tar_bytes(entries)
            results.add(data)
        assert len(results) == 1
        names = [m.name for m in members(results.pop())]
        assert names == ["a", "a/b", "a/b/c", "a/b-c", "a/ba", "a-b", "a.b", "b"]

    def test_missing_parents_are_added_before_children(self):
        got = members(tar_bytes([data_entry("x/y/z/f", b"1"), LayerEntry("x", "dir", 0o700)]))
        assert [(m.name, m.mode, m.isdir()) for m in got] == [
            ("x", 0o700, True),
            ("x/y", 0o755, True),
            ("x/y/z", 0o755, True),
            ("x/y/z/f", 0o644, False),
        ]


class TestRefusals:
    @pytest.mark.parametrize(
        "path", ["../x", "a/../b", "a/..", "/abs", "./a", "a/", "", "a//b", "a/./b", "a\0b"]
    )
    def test_bad_paths(self, path: str):
        with pytest.raises(LayerEntryError):
            tar_bytes([data_entry(path, b"")])

    def test_duplicate(self):
        with pytest.raises(LayerEntryError, match="twice"):
            tar_bytes([data_entry("a", b"1"), LayerEntry("a", "dir", 0o755)])

    def test_child_of_a_file(self):
        with pytest.raises(LayerEntryError, match="parent"):
            tar_bytes([data_entry("a", b"1"), data_entry("a/b", b"2")])

    @pytest.mark.parametrize("declared", [3, 5])
    def test_content_size_mismatch(self, declared: int):
        entry = LayerEntry("f", "file", 0o644, declared, open=lambda: io.BytesIO(b"four"))
        with pytest.raises(LayerEntryError, match="'f'"):
            tar_bytes([entry])

    @pytest.mark.parametrize("mtime", [1.5, -1])
    def test_bad_mtime(self, mtime):
        with pytest.raises(ValueError):
            tar_bytes([data_entry("f", b"")], mtime=mtime)

    def test_special_file_on_disk(self, tmp_path: Path):
        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(LayerEntryError, match="fifo"):
            list(entries_from_directory(tmp_path))


class TestSources:
    def test_store_and_directory_give_the_same_tar(self, tmp_path: Path):
        root = make_tree(tmp_path / "root")
        with Store.open(tmp_path / "store") as store:
            tree = store.put_tree(root)
            from_store = tar_bytes(entries_from_store(store, tree, modes={"tmp": 0o1777}))
        assert from_store == tar_bytes(entries_from_directory(root, modes={"tmp": 0o1777}))

    def test_store_prefix(self, tmp_path: Path):
        root = make_tree(tmp_path / "root")
        with Store.open(tmp_path / "store") as store:
            tree = store.put_tree(root)
            entries = list(
                entries_from_store(
                    store, tree, prefix="opt/app", modes={"opt/app/usr/lib/x/data.txt": 0o600}
                )
            )
            got = {m.name: m for m in members(tar_bytes(entries))}
        assert [e.path for e in entries[:2]] == ["opt", "opt/app"]
        assert got["opt/app/usr/bin/tool"].mode == 0o755
        assert got["opt/app/usr/lib/x/data.txt"].mode == 0o600
        assert got["opt/app/usr/bin/link"].linkname == "tool"

    def test_store_owners_by_path(self, tmp_path: Path):
        """A directory the image's user must write (its home) keeps the owner given for it."""
        root = make_tree(tmp_path / "root")
        with Store.open(tmp_path / "store") as store:
            tree = store.put_tree(root)
            owners = {"tmp": (65532, 65532)}
            got = {
                m.name: m
                for m in members(tar_bytes(entries_from_store(store, tree, owners=owners)))
            }
        assert (got["tmp"].uid, got["tmp"].gid) == (65532, 65532)
        assert got["tmp"].uname == "" and got["tmp"].gname == ""
        assert all((m.uid, m.gid) == (0, 0) for name, m in got.items() if name != "tmp")
