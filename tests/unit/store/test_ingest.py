"""Ingest: a directory on disk becomes a tree; only names, content, exec bits and symlink
targets count, and anything a tree cannot hold is refused before one object is written."""

from __future__ import annotations

import os
import random
import socket
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from storekit import (
    File,
    Link,
    fs,
    iter_paths,
    model_digest,
    object_files,
    store_state,
    trees,
    write_spec,
)

from seal.store import Digest, Kind, Store, StoreError, UnsupportedFile

UMASKS = [0o000, 0o002, 0o022, 0o027, 0o077, 0o066]
PROPERTY = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)
FIXED = {
    b"run": File(b"#!/bin/sh\n", True),
    b"data": File(b"\0\1\2"),
    b"d": {b"tool": File(b"elf", True), b"empty": File(b""), b"l": Link(b"../run")},
}


def _ingest(workdir: str, name: str, spec, *, umask: int, **write) -> Digest:
    """Write ``spec`` in ``workdir/name``, ingest it into a new store opened under ``umask``."""
    src = os.path.join(workdir, name)
    write_spec(src, spec, umask=umask, **write)
    old = os.umask(umask)
    try:
        with Store.open(os.path.join(workdir, name + ".store")) as store:
            return store.put_tree(src)
    finally:
        os.umask(old)


class TestDigestDependsOnlyOnContent:
    """Must-show 1: the same tree made differently, in another store, has the same digest."""

    @PROPERTY
    @given(
        spec=trees(),
        seeds=st.tuples(st.integers(0, 2**32), st.integers(0, 2**32)),
        umasks=st.tuples(st.sampled_from(UMASKS), st.sampled_from(UMASKS)),
        owners=st.tuples(st.integers(1, 65000), st.integers(1, 65000)),
        mtimes=st.tuples(st.integers(0, 2**40), st.integers(0, 2**40)),
    )
    def test_same_tree_same_digest(self, fast_tmp, spec, seeds, umasks, owners, mtimes):
        with tempfile.TemporaryDirectory(dir=fast_tmp) as work:
            first = _ingest(
                work,
                "one",
                spec,
                umask=umasks[0],
                rng=random.Random(seeds[0]),
                mtime_ns=mtimes[0] * 1000,
            )
            second = _ingest(
                work,
                "two",
                spec,
                umask=umasks[1],
                rng=random.Random(seeds[1]),
                uid=owners[0],
                gid=owners[1],
                mtime_ns=mtimes[1] * 1000,
            )
        assert first == second
        assert first == model_digest(spec)[0]  # and nothing but the modelled facts count

    @pytest.mark.parametrize("umask", UMASKS, ids=oct)
    def test_umask_does_not_matter(self, fast_tmp, umask):
        # files made with 0o777 / 0o666 under each umask: only the owner x bit may count
        assert _ingest(str(fast_tmp), "t", FIXED, umask=umask) == model_digest(FIXED)[0]

    def test_owner_and_times_do_not_matter(self, fast_tmp):
        plain = _ingest(str(fast_tmp), "plain", FIXED, umask=0o022)
        other = _ingest(
            str(fast_tmp), "other", FIXED, umask=0o022, uid=12345, gid=54321, mtime_ns=10**18
        )
        assert plain == other == model_digest(FIXED)[0]

    @PROPERTY
    @given(spec=trees().filter(lambda s: any(isinstance(n, File) for _, n in iter_paths(s))))
    def test_different_owner_and_mode_bits_in_place(self, fast_tmp, spec):
        # chmod non-x bits and chown an existing tree: its digest does not move
        with tempfile.TemporaryDirectory(dir=fast_tmp) as work, Store.open(work + "/s") as store:
            src = work + "/src"
            write_spec(src, spec)
            before = store.put_tree(src)
            for rel, node in iter_paths(spec):
                path = fs(src) + b"/" + rel
                os.lchown(path, 4242, 4343)
                if isinstance(node, File):
                    os.chmod(path, 0o700 if node.exe else 0o600)  # other bits differ
            assert store.put_tree(src) == before

    @PROPERTY
    @given(spec=trees(), data=st.data())
    def test_one_change_gives_another_digest(self, fast_tmp, spec, data):
        entries = list(iter_paths(spec))
        files = [(p, n) for p, n in entries if isinstance(n, File)]
        links = [(p, n) for p, n in entries if isinstance(n, Link)]
        choices = []
        if any(n.data for _, n in files):
            choices.append("flip-byte")
        if files:
            choices.append("flip-exec")
        if links:
            choices.append("retarget")
        if not choices:
            return  # nothing to change in an empty / dirs-only tree
        change = data.draw(st.sampled_from(choices), label="change")
        with tempfile.TemporaryDirectory(dir=fast_tmp) as work, Store.open(work + "/s") as store:
            src = fs(work + "/src")
            write_spec(src, spec)
            before = store.put_tree(src)
            if change == "flip-byte":
                rel, node = data.draw(st.sampled_from([(p, n) for p, n in files if n.data]))
                offset = data.draw(st.integers(0, len(node.data) - 1), label="offset")
                path = src + b"/" + rel
                with open(path, "r+b") as f:
                    f.seek(offset)
                    f.write(bytes([node.data[offset] ^ 1]))
            elif change == "flip-exec":
                rel, node = data.draw(st.sampled_from(files))
                os.chmod(src + b"/" + rel, 0o644 if node.exe else 0o755)
            else:
                rel, node = data.draw(st.sampled_from(links))
                os.unlink(src + b"/" + rel)
                os.symlink(node.target + b"x", src + b"/" + rel)
            assert store.put_tree(src) != before


def _good_tree(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    for i in range(20):
        (root / f"f{i}").write_bytes(os.urandom(100 + i))
        (root / "a" / "b" / f"g{i}").write_bytes(os.urandom(3000))
    (root / "big").write_bytes(os.urandom(3 << 20))  # the streamed path too


def _make_fifo(path: Path) -> None:
    os.mkfifo(path)


def _make_chardev(path: Path) -> None:
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod of a character device is not permitted here (needs CAP_MKNOD)")


def _make_socket(path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    cwd = os.getcwd()
    os.chdir(path.parent)  # AF_UNIX paths are limited to 107 bytes: bind a relative name
    try:
        sock.bind(path.name)
    finally:
        os.chdir(cwd)
        sock.close()


def _file_with_mode(mode: int):
    def make(path: Path) -> None:
        path.write_bytes(b"#!/bin/sh\n")
        os.chmod(path, mode)

    return make


def _dir_with_mode(mode: int):
    def make(path: Path) -> None:
        path.mkdir()
        (path / "inner").write_bytes(b"x")
        os.chmod(path, mode)

    return make


BAD = {
    "fifo": _make_fifo,
    "char-device": _make_chardev,
    "socket": _make_socket,
    "setuid-file": _file_with_mode(0o4755),
    "setgid-file": _file_with_mode(0o2755),
    "sticky-file": _file_with_mode(0o1644),
    "setgid-dir": _dir_with_mode(0o2755),
    "sticky-dir": _dir_with_mode(0o1777),
}


class TestRefusesWhatTreesCannotHold:
    """Must-show 5: UnsupportedFile naming the path; no record and no object file written."""

    @pytest.mark.parametrize("make", BAD.values(), ids=BAD.keys())
    @pytest.mark.parametrize("depth", ["top", "nested"])
    def test_in_a_tree(self, store, tmp_path, make, depth):
        src = tmp_path / "src"
        _good_tree(src)
        store.put_bytes(b"already here")
        before = store_state(store)
        bad = (src / "bad") if depth == "top" else (src / "a" / "b" / "bad")
        make(bad)
        for put in (store.put_tree, store.put_path):
            with pytest.raises(UnsupportedFile) as info:
                put(src)
            assert info.value.reason == "unsupported-file"
            assert info.value.path == str(bad)
            assert str(bad) in str(info.value)
            assert store_state(store) == before
        with pytest.raises(UnsupportedFile):
            store.put_path(src, root="never")
        assert store_state(store) == before

    @pytest.mark.parametrize("make", BAD.values(), ids=BAD.keys())
    def test_given_directly(self, store, tmp_path, make):
        bad = tmp_path / "bad"
        make(bad)
        before = store_state(store)
        with pytest.raises(UnsupportedFile) as info:
            store.put_path(bad)
        assert info.value.reason == "unsupported-file"
        assert info.value.path == str(bad)
        assert store_state(store) == before

    @pytest.mark.parametrize("make", [v for k, v in BAD.items() if "dir" not in k])
    def test_put_file(self, store, tmp_path, make):
        bad = tmp_path / "bad"
        make(bad)
        before = store_state(store)
        with pytest.raises(UnsupportedFile) as info:
            store.put_file(bad)
        assert info.value.path == str(bad)
        assert store_state(store) == before

    @pytest.mark.parametrize("method", ["put_path", "put_tree", "put_file"])
    def test_missing_path(self, store, tmp_path, method):
        before = store_state(store)
        with pytest.raises(UnsupportedFile) as info:
            getattr(store, method)(tmp_path / "nope")
        assert info.value.reason == "unsupported-file"
        assert info.value.path == str(tmp_path / "nope")
        assert store_state(store) == before

    def test_put_path_refuses_a_symlink(self, store, tmp_path):
        (tmp_path / "real").mkdir()
        (tmp_path / "link").symlink_to("real")
        with pytest.raises(UnsupportedFile) as info:
            store.put_path(tmp_path / "link")
        assert info.value.path == str(tmp_path / "link")

    def test_put_file_does_not_follow_a_symlink(self, store, tmp_path):
        (tmp_path / "real").write_bytes(b"secret")
        (tmp_path / "link").symlink_to("real")
        with pytest.raises(UnsupportedFile):
            store.put_file(tmp_path / "link")
        assert not store.has(Digest.of_bytes(b"secret"))


class TestWhatATreeHolds:
    def test_symlinks_are_stored_not_followed(self, store, tmp_path):
        src = tmp_path / "src"
        src.mkdir()
        (src / "passwd").symlink_to("/etc/passwd")
        (src / "etc").symlink_to("/etc")
        (src / "dangling").symlink_to("no/such/thing")
        tree = store.read_tree(store.put_tree(src))
        assert {s.name: s.target for s in tree.symlinks} == {
            b"passwd": b"/etc/passwd",
            b"etc": b"/etc",
            b"dangling": b"no/such/thing",
        }
        assert tree.files == () and tree.directories == ()
        assert not store.has(Digest.of_bytes(Path("/etc/passwd").read_bytes()))
        assert store.db.count() == 1  # the tree itself, nothing reached through the links

    @pytest.mark.parametrize(
        ("mode", "exe"),
        [(0o644, False), (0o755, True), (0o700, True), (0o744, True), (0o655, False)],
        ids=oct,
    )
    def test_executable_is_the_owner_x_bit(self, store, tmp_path, mode, exe):
        src = tmp_path / "src"
        src.mkdir()
        (src / "f").write_bytes(b"x")
        os.chmod(src / "f", mode)
        (node,) = store.read_tree(store.put_tree(src)).files
        assert node.executable is exe

    def test_empty_files_and_directories(self, store, tmp_path):
        src = tmp_path / "src"
        (src / "empty-dir").mkdir(parents=True)
        (src / "d" / "e").mkdir(parents=True)
        (src / "empty-file").write_bytes(b"")
        digest = store.put_tree(src)
        tree = store.read_tree(digest)
        assert [(f.name, f.size) for f in tree.files] == [(b"empty-file", 0)]
        assert [d.name for d in tree.directories] == [b"d", b"empty-dir"]
        assert (
            digest
            == model_digest({b"empty-dir": {}, b"d": {b"e": {}}, b"empty-file": File(b"")})[0]
        )

    def test_names_are_bytes_exact(self, store, tmp_path):
        src = fs(tmp_path / "src")
        names = [b"\xff\xfe", b"caf\xc3\xa9", b"cafe\xcc\x81", b"A", b"a", b"\n"]
        os.mkdir(src)
        for n in names:
            with open(src + b"/" + n, "wb") as f:
                f.write(n)
        tree = store.read_tree(store.put_tree(src))
        assert [f.name for f in tree.files] == sorted(names)
        for f in tree.files:
            assert store.get_bytes(f.digest) == f.name

    def test_tree_objects_are_recorded_with_kind_and_refs(self, store, tmp_path):
        src = tmp_path / "src"
        (src / "sub").mkdir(parents=True)
        (src / "sub" / "x").write_bytes(b"x")
        (src / "y").write_bytes(b"y")
        top = store.put_tree(src)
        tree = store.read_tree(top)
        (sub,) = tree.directories
        assert store.stat(top).kind is Kind.TREE
        assert store.stat(sub.digest).kind is Kind.TREE
        assert store.stat(Digest.of_bytes(b"y")).kind is Kind.BLOB
        assert sorted(store.db.refs_of(top)) == sorted([sub.digest, Digest.of_bytes(b"y")])
        assert store.db.refs_of(sub.digest) == [Digest.of_bytes(b"x")]

    def test_identical_content_is_stored_once(self, store, tmp_path):
        src = tmp_path / "src"
        (src / "a").mkdir(parents=True)
        (src / "b").mkdir()
        for d in ("a", "b"):
            (src / d / "same").write_bytes(b"same bytes")
        store.put_tree(src)
        # two identical subtrees, one blob: top tree, one subtree, one blob
        assert store.db.count() == 3
        assert len(object_files(store)) == 3

    def test_put_tree_of_a_file_is_refused(self, store, tmp_path):
        (tmp_path / "f").write_bytes(b"x")
        with pytest.raises(StoreError):
            store.put_tree(tmp_path / "f")
