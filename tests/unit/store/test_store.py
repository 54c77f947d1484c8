"""The Store: opening, the writer lock, put/get/has/stat, walk, closure and roots."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from storekit import File, Link, object_files, read_spec, write_spec

from seal.store import (
    Digest,
    Entry,
    Kind,
    ObjectNotFound,
    Store,
    StoreError,
    StoreLocked,
    StoreMissing,
    StoreVersionError,
    default_root,
)

MiB = 1 << 20


def run_python(code: str, *args, timeout: float = 120) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


TRY_OPEN = """
    import json, sys
    from seal.store import Store, StoreError
    try:
        with Store.open(sys.argv[1], readonly=sys.argv[2] == "ro") as s:
            out = {"ok": True, "count": s.db.count()}
    except StoreError as e:
        out = {"ok": False, "cls": type(e).__name__, "reason": e.reason,
               "pid": getattr(e, "pid", None), "temporary": e.temporary}
    print(json.dumps(out))
"""


class TestOpen:
    def test_creates_the_layout(self, store_path):
        with Store.open(store_path) as store:
            assert store.writable
            assert store.root == store_path
        assert (store_path / "VERSION").read_text() == "1\n"
        for d in ("db", "tmp", "trees", "keys", "objects/sha256/00", "objects/sha256/ff"):
            assert (store_path / d).is_dir(), d
        assert stat.S_IMODE(os.stat(store_path / "keys").st_mode) == 0o700

    def test_reopen_keeps_everything(self, store_path):
        with Store.open(store_path) as store:
            d = store.put_bytes(b"persist me")
            store.add_root("keep", d)
        with Store.open(store_path) as store:
            assert store.get_bytes(d) == b"persist me"
            assert store.roots() == {"keep": d}
        with Store.open(store_path, readonly=True) as ro:
            assert not ro.writable
            assert ro.get_bytes(d) == b"persist me"

    @pytest.mark.parametrize("readonly", [False, True], ids=["rw", "ro"])
    @pytest.mark.parametrize("text", ["99\n", "2", "0\n", "one\n", ""])
    def test_version_file_refused(self, store_path, text, readonly):
        Store.open(store_path).close()
        (store_path / "VERSION").write_text(text)
        before = sorted(p.name for p in store_path.iterdir())
        with pytest.raises(StoreVersionError) as info:
            Store.open(store_path, readonly=readonly)
        assert info.value.reason == "store-version"
        assert sorted(p.name for p in store_path.iterdir()) == before
        # and it took no lock: a writer can still come (after fixing VERSION)
        (store_path / "VERSION").write_text("1\n")
        Store.open(store_path).close()

    def test_readonly_open_of_nothing(self, tmp_path):
        with pytest.raises(StoreMissing) as info:
            Store.open(tmp_path / "none", readonly=True)
        assert info.value.reason == "store-missing"
        assert not (tmp_path / "none").exists()

    def test_refuses_a_foreign_directory_and_leaves_it_alone(self, tmp_path):
        (tmp_path / "project").mkdir()
        (tmp_path / "project" / "main.c").write_text("int main;")
        with pytest.raises(StoreError) as info:
            Store.open(tmp_path / "project")
        assert info.value.reason == "store-error"
        assert sorted(p.name for p in (tmp_path / "project").iterdir()) == ["main.c"]

    def test_refuses_a_file(self, tmp_path):
        (tmp_path / "f").write_bytes(b"x")
        with pytest.raises(StoreError):
            Store.open(tmp_path / "f")

    def test_default_root(self, monkeypatch, tmp_path):
        monkeypatch.delenv("SEAL_STORE", raising=False)
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
        assert default_root() == tmp_path / "xdg" / "seal"
        monkeypatch.delenv("XDG_DATA_HOME")
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        assert default_root() == tmp_path / "home" / ".local" / "share" / "seal"
        monkeypatch.setenv("SEAL_STORE", str(tmp_path / "explicit"))
        assert default_root() == tmp_path / "explicit"
        with Store.open() as store:
            assert store.root == tmp_path / "explicit"


class TestWriterLock:
    def test_second_writer_in_another_process(self, store, store_path):
        out = run_python(TRY_OPEN, store_path, "rw")
        assert out == {
            "ok": False,
            "cls": "StoreLocked",
            "reason": "store-locked",
            "pid": os.getpid(),
            "temporary": True,
        }

    def test_second_writer_in_this_process(self, store, store_path):
        with pytest.raises(StoreLocked) as info:
            Store.open(store_path)
        assert info.value.pid == os.getpid()
        assert info.value.reason == "store-locked"

    def test_readers_open_while_a_writer_holds_the_lock(self, store, store_path):
        store.put_bytes(b"visible")
        out = run_python(TRY_OPEN, store_path, "ro")
        assert out == {"ok": True, "count": 1}

    def test_released_on_close(self, store_path):
        Store.open(store_path).close()
        assert run_python(TRY_OPEN, store_path, "rw")["ok"] is True

    def test_released_when_the_holder_is_killed(self, store_path):
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys, time; from seal.store import Store; "
                "s = Store.open(sys.argv[1]); print('ready', flush=True); time.sleep(600)",
                str(store_path),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout.readline().strip() == "ready"
            with pytest.raises(StoreLocked) as info:
                Store.open(store_path)
            assert info.value.pid == holder.pid
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait()
        Store.open(store_path).close()


SIZES = [0, 1, 4096, MiB - 1, MiB, MiB + 1, 3 * MiB + 5]


class TestPutGet:
    @pytest.mark.parametrize("size", SIZES)
    def test_bytes(self, store, size):
        data = os.urandom(size)
        d = store.put_bytes(data)
        assert d == Digest.of_bytes(data)
        assert store.has(d)
        assert store.get_bytes(d) == data
        with store.open_blob(d) as f:
            assert f.read() == data
        info = store.stat(d)
        assert (info.digest, info.size, info.kind, info.executable_copy) == (
            d,
            size,
            Kind.BLOB,
            False,
        )
        path = store.layout.object_path(d)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o444
        assert Path(path).read_bytes() == data

    @pytest.mark.parametrize("size", SIZES)
    @pytest.mark.parametrize("exe", [False, True], ids=["plain", "exec"])
    def test_file(self, store, tmp_path, size, exe):
        data = os.urandom(size)
        src = tmp_path / "f"
        src.write_bytes(data)
        os.chmod(src, 0o755 if exe else 0o644)
        d = store.put_file(src)
        assert d == store.put_path(src) == Digest.of_bytes(data)
        assert store.get_bytes(d) == data
        assert store.stat(d).size == size
        assert store.stat(d).executable_copy is exe
        assert stat.S_IMODE(os.stat(store.layout.object_path(d)).st_mode) == 0o444
        if exe:
            xpath = store.layout.object_path(d, True)
            assert stat.S_IMODE(os.stat(xpath).st_mode) == 0o555
            assert Path(xpath).read_bytes() == data
            assert os.stat(xpath).st_ino != os.stat(store.layout.object_path(d)).st_ino
        assert store.db.count() == 1

    @pytest.mark.parametrize("size", SIZES)
    @pytest.mark.parametrize("kind", ["bytesio", "raw", "file"])
    def test_stream(self, store, tmp_path, size, kind):
        data = os.urandom(size)
        if kind == "bytesio":
            stream = io.BytesIO(data)
        elif kind == "raw":
            stream = ChunkStream([data[i : i + 7777] for i in range(0, size, 7777)])
        else:
            (tmp_path / "f").write_bytes(data)
            stream = open(tmp_path / "f", "rb")  # noqa: SIM115 - closed below
        with stream:
            d = store.put_stream(stream)
        assert d == Digest.of_bytes(data)
        assert store.get_bytes(d) == data
        assert store.stat(d).size == size

    def test_same_content_one_object(self, store, tmp_path):
        (tmp_path / "f").write_bytes(b"same")
        digests = {
            store.put_bytes(b"same"),
            store.put_file(tmp_path / "f"),
            store.put_stream(io.BytesIO(b"same")),
        }
        assert digests == {Digest.of_bytes(b"same")}
        assert store.db.count() == 1
        assert len(object_files(store)) == 1

    def test_exec_use_of_a_known_blob_adds_the_exec_copy(self, store, tmp_path):
        d = store.put_bytes(b"#!/bin/sh\n")
        assert store.stat(d).executable_copy is False
        (tmp_path / "run").write_bytes(b"#!/bin/sh\n")
        os.chmod(tmp_path / "run", 0o755)
        assert store.put_file(tmp_path / "run") == d
        assert store.stat(d).executable_copy is True
        assert len(object_files(store)) == 2
        assert store.db.count() == 1

    @pytest.mark.parametrize("umask", [0o000, 0o022, 0o277, 0o777])
    def test_object_modes_ignore_the_umask(self, store_path, tmp_path, umask):
        (tmp_path / "run").write_bytes(b"run")
        os.chmod(tmp_path / "run", 0o755)
        old = os.umask(umask)
        try:
            with Store.open(store_path) as store:
                small, big = store.put_bytes(b"a"), store.put_stream(io.BytesIO(b"b" * 3 * MiB))
                exe = store.put_file(tmp_path / "run")
                modes = {
                    stat.S_IMODE(os.stat(store.layout.object_path(d)).st_mode)
                    for d in (small, big, exe)
                }
                xmode = stat.S_IMODE(os.stat(store.layout.object_path(exe, True)).st_mode)
        finally:
            os.umask(old)
        assert modes == {0o444}
        assert xmode == 0o555

    def test_no_staging_left_in_tmp(self, store, tmp_path):
        (tmp_path / "big").write_bytes(os.urandom(3 * MiB))
        store.put_file(tmp_path / "big")
        store.put_stream(io.BytesIO(os.urandom(2 * MiB)))
        store.put_stream(io.BytesIO(os.urandom(2 * MiB)))
        leftovers = [p for p in store.layout.tmp.rglob("*") if p.is_file()]
        assert leftovers == []

    @pytest.mark.parametrize("method", ["get_bytes", "stat", "open_blob", "read_tree", "record"])
    def test_unknown_digest(self, store, method):
        unknown = Digest.of_bytes(b"absent")
        assert not store.has(unknown)
        with pytest.raises(ObjectNotFound) as info:
            getattr(store, method)(unknown)
        assert info.value.reason == "object-not-found"
        assert info.value.digest == unknown

    def test_readonly_store_refuses_writes(self, store_path, tmp_path):
        with Store.open(store_path) as store:
            d = store.put_bytes(b"x")
        (tmp_path / "f").write_bytes(b"y")
        with Store.open(store_path, readonly=True) as ro:
            for call in (
                lambda: ro.put_bytes(b"y"),
                lambda: ro.put_file(tmp_path / "f"),
                lambda: ro.put_path(tmp_path / "f"),
                lambda: ro.put_stream(io.BytesIO(b"y")),
                lambda: ro.add_root("r", d),
                lambda: ro.remove_root("r"),
                ro.gc,
            ):
                with pytest.raises(StoreError) as info:
                    call()
                assert info.value.reason == "store-error"
            assert ro.get_bytes(d) == b"x"
            assert ro.verify().ok
        with Store.open(store_path) as store:
            assert store.db.count() == 1


class ChunkStream(io.RawIOBase):
    """A raw stream fed by an iterable of byte chunks (short reads included)."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        n = min(len(buf), len(self._pending))
        buf[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


STREAM_MEMORY = """
    import hashlib, io, json, os, sys
    from seal.store import Store

    def peak():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024

    def chunks(n_mib, seed):
        block = bytearray(seed * ((1 << 20) // len(seed)))
        for i in range(n_mib):
            block[:8] = i.to_bytes(8, "little")
            yield bytes(block)

    class Gen(io.RawIOBase):
        def __init__(self, it):
            self.it, self.pending = it, memoryview(b"")
        def readable(self):
            return True
        def readinto(self, buf):
            while not self.pending:
                try:
                    self.pending = memoryview(next(self.it))
                except StopIteration:
                    return 0
            n = min(len(buf), len(self.pending))
            buf[:n] = self.pending[:n]
            self.pending = self.pending[n:]
            return n

    n_mib, seed = int(sys.argv[2]), os.urandom(16)
    with Store.open(sys.argv[1]) as store:
        base = peak()
        digest = store.put_stream(Gen(chunks(n_mib, seed)))
        growth = peak() - base
        size = store.stat(digest).size
        file_size = os.stat(store.layout.object_path(digest)).st_size
    h = hashlib.sha256()
    for c in chunks(n_mib, seed):
        h.update(c)
    print(json.dumps({"growth": growth, "size": size, "file_size": file_size,
                      "ok": h.hexdigest() == digest.hex}))
"""


class TestBigData:
    @pytest.mark.parametrize(
        "mib",
        [pytest.param(192, id="192MiB"), pytest.param(1024, id="1GiB", marks=pytest.mark.slow)],
    )
    def test_put_stream_in_constant_memory(self, store_path, mib):
        out = run_python(STREAM_MEMORY, store_path, mib, timeout=600)
        assert out["ok"]
        assert out["size"] == out["file_size"] == mib * MiB
        assert out["growth"] < 64 * MiB, f"peak RSS grew by {out['growth'] / MiB:.0f} MiB"

    @pytest.mark.slow
    def test_file_over_4_gib(self):
        shm = Path("/dev/shm")
        size = 4 * 2**30 + 4099
        if not shm.is_dir():
            pytest.skip("no /dev/shm to hold a sparse file over 4 GiB")
        free = shutil.disk_usage(shm).free
        if free < 5 * 2**30:
            pytest.skip(f"/dev/shm has {free / 2**30:.1f} GiB free; the stored copy needs >5 GiB")
        work = Path(os.path.join(shm, f"seal-big-{os.getpid()}"))
        work.mkdir()
        try:
            src = work / "src"
            src.mkdir()
            with open(src / "huge", "wb") as f:  # sparse: zeros, then a tail
                f.truncate(size)
                f.seek(size - 5)
                f.write(b"tail!")
            (src / "small").write_bytes(b"small")
            with Store.open(work / "store") as store:
                tree = store.put_tree(src)
                (node,) = [f for f in store.read_tree(tree).files if f.name == b"huge"]
                assert node.size == size
                assert store.stat(node.digest).size == size
                assert os.stat(store.layout.object_path(node.digest)).st_size == size
                assert node.digest == _hash_sparse(size, b"tail!")
                store.checkout(tree, work / "out")
                assert os.stat(work / "out" / "huge").st_size == size
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _hash_sparse(size: int, tail: bytes) -> Digest:
    import hashlib

    h = hashlib.sha256()
    zeros = bytes(MiB)
    left = size - len(tail)
    while left:
        n = min(left, MiB)
        h.update(zeros[:n])
        left -= n
    h.update(tail)
    return Digest(h.digest())


WALK_SPEC = {
    b"b": {b"x": File(b"x", True), b"y": {}},
    b"a": File(b"aa"),
    b"c": Link(b"a"),
    b"\xff": File(b"not utf-8"),
}


class TestWalk:
    def test_entries_in_name_order_depth_first(self, store, tmp_path):
        write_spec(tmp_path / "src", WALK_SPEC)
        tree = store.put_tree(tmp_path / "src")
        entries = list(store.walk(tree))
        assert [(e.path, e.kind) for e in entries] == [
            (b"a", "file"),
            (b"b", "dir"),
            (b"b/x", "file"),
            (b"b/y", "dir"),
            (b"c", "symlink"),
            (b"\xff", "file"),
        ]
        by_path = {e.path: e for e in entries}
        assert by_path[b"a"] == Entry(b"a", "file", Digest.of_bytes(b"aa"), 2, False)
        assert by_path[b"b/x"].executable is True
        assert by_path[b"c"].target == b"a" and by_path[b"c"].digest is None
        assert list(store.walk(tree, prefix=b"root/"))[0].path == b"root/a"

    def test_walk_of_a_blob(self, store):
        from seal.store import NotATree

        with pytest.raises(NotATree):
            list(store.walk(store.put_bytes(b"x")))


class TestClosure:
    def test_everything_reachable(self, store, tmp_path):
        write_spec(tmp_path / "src", WALK_SPEC)
        tree = store.put_tree(tmp_path / "src")
        sub = next(e.digest for e in store.walk(tree) if e.path == b"b")
        empty_dir = next(e.digest for e in store.walk(tree) if e.path == b"b/y")
        expected = {
            tree,
            sub,
            empty_dir,
            Digest.of_bytes(b"x"),
            Digest.of_bytes(b"aa"),
            Digest.of_bytes(b"not utf-8"),
        }
        assert store.closure(tree) == expected
        assert store.closure(sub) == {sub, empty_dir, Digest.of_bytes(b"x")}
        unrelated = store.put_bytes(b"unrelated")
        assert store.closure(tree, unrelated) == expected | {unrelated}
        assert store.closure() == set()

    def test_unknown(self, store):
        unknown = Digest.of_bytes(b"?")
        with pytest.raises(ObjectNotFound):
            store.closure(unknown)
        assert store.closure(unknown, missing_ok=True) == {unknown}


class TestRoots:
    def test_add_list_remove(self, store):
        a, b = store.put_bytes(b"a"), store.put_bytes(b"b")
        assert store.roots() == {}
        store.add_root("first", a)
        store.add_root("second/with slash", b)
        store.add_root("ünïcode", a)
        assert store.roots() == {"first": a, "second/with slash": b, "ünïcode": a}
        store.add_root("first", b)  # re-pointing a name
        assert store.roots()["first"] == b
        store.remove_root("first")
        assert "first" not in store.roots()

    def test_put_path_roots_in_the_same_batch(self, store, tmp_path):
        write_spec(tmp_path / "src", WALK_SPEC)
        tree = store.put_path(tmp_path / "src", root="src")
        (tmp_path / "f").write_bytes(b"file")
        blob = store.put_path(tmp_path / "f", root="file")
        assert store.roots() == {"src": tree, "file": blob}

    def test_add_root_of_unknown(self, store):
        with pytest.raises(ObjectNotFound):
            store.add_root("r", Digest.of_bytes(b"?"))
        assert store.roots() == {}

    def test_remove_unknown(self, store):
        with pytest.raises(StoreError) as info:
            store.remove_root("nope")
        assert info.value.reason == "store-error"

    @pytest.mark.parametrize("name", ["", "tab\there", "new\nline", "x" * 256, "\x00"])
    def test_invalid_names(self, store, tmp_path, name):
        d = store.put_bytes(b"a")
        with pytest.raises(StoreError):
            store.add_root(name, d)
        (tmp_path / "f").write_bytes(b"f")
        before = store.db.count()
        with pytest.raises(StoreError):
            store.put_path(tmp_path / "f", root=name)
        assert store.roots() == {}
        assert store.db.count() == before

    def test_roots_survive_reopen(self, store_path, tmp_path):
        write_spec(tmp_path / "src", WALK_SPEC)
        with Store.open(store_path) as store:
            tree = store.put_path(tmp_path / "src", root="src")
        with Store.open(store_path) as store:
            assert store.roots() == {"src": tree}
            store.checkout(tree, tmp_path / "out")
        assert read_spec(tmp_path / "out") == WALK_SPEC
