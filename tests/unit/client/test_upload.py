"""Client-side walking and hashing (identical to the store's digests) and the upload plan."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from seal.client import exitcodes, upload
from seal.client.errors import ClientError
from seal.store import Digest, Directory, Store, UnsupportedFile


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    d = tmp_path / "tree"
    (d / "a" / "b").mkdir(parents=True)
    (d / "empty").mkdir()
    (d / "a" / "same1").write_bytes(b"same content")
    (d / "a" / "b" / "same2").write_bytes(b"same content")
    (d / "a" / "b" / "zero").write_bytes(b"")
    (d / "big").write_bytes(os.urandom(3 * upload.CHUNK + 5))
    tool = d / "tool"
    tool.write_bytes(b"#!/bin/sh\n")
    tool.chmod(0o755)
    (d / "link").symlink_to("a/b/../same1")
    (d / "dangling").symlink_to("/nowhere/at/all")
    (d / os.fsdecode(b"not-utf8-\xff")).write_bytes(b"a name that is not UTF-8")
    return d


class FakeTransport:
    """An in-memory store behind the upload.Transport calls (no gRPC)."""

    def __init__(self, present: set[Digest] = frozenset(), fail_on: Digest | None = None):
        self.blobs: dict[Digest, bytes] = {}
        self.present = set(present)
        self.fail_on = fail_on
        self.calls: list[str] = []
        self.lock = threading.Lock()
        self.leases: dict[str, tuple[Digest, list[bytes]]] = {}
        self.roots: dict[str, Digest] = {}

    def _log(self, name):
        with self.lock:
            self.calls.append(name)

    def find_missing(self, digests):
        self._log("find_missing")
        return [d for d in digests if d not in self.present]

    def put_tree(self, root, root_size, directories):
        self._log("put_tree")
        for data in directories:
            assert len(data) <= upload.CHUNK
        self.leases["L1"] = (root, list(directories))
        wanted = set()
        for data in directories:
            wanted.update(f.digest for f in Directory.decode(data).files)
        return "L1", sorted(d for d in wanted if d not in self.present)

    def put_blobs(self, blobs, *, lease_id):
        self._log("put_blobs")
        assert sum(len(data) for _, data in blobs) <= upload.CHUNK
        for digest, data in blobs:
            if digest == self.fail_on or Digest.of_bytes(data) != digest:
                raise ClientError(
                    "mismatch", reason="digest-mismatch", exit_code=exitcodes.DATA_LOSS
                )
        with self.lock:
            for digest, data in blobs:
                self.blobs[digest] = data
                self.present.add(digest)

    def put_blob(self, digest, size, chunks, *, lease_id=None, root_name=None):
        self._log("put_blob")
        data = b"".join(chunks)
        if digest == self.fail_on or Digest.of_bytes(data) != digest or len(data) != size:
            raise ClientError("mismatch", reason="digest-mismatch", exit_code=exitcodes.DATA_LOSS)
        with self.lock:
            self.blobs[digest] = data
            self.present.add(digest)
        if root_name:
            self.roots[root_name] = digest

    def commit_tree(self, lease_id, root_name):
        self._log("commit_tree")
        root, _ = self.leases.pop(lease_id)
        self.present.add(root)
        if root_name:
            self.roots[root_name] = root
        return root

    def cancel_tree(self, lease_id):
        self._log("cancel_tree")
        self.leases.pop(lease_id, None)

    def add_root(self, name, digest):
        self._log("add_root")
        self.roots[name] = digest


class TestDigests:
    def test_tree_digest_equals_the_stores(self, tree, tmp_path):
        listing = upload.scan_tree(os.fsencode(tree))
        with Store.open(tmp_path / "store") as store:
            expected = store.put_tree(tree)
            assert listing.root == expected
            assert listing.root_size == store.stat(expected).size
            stored_trees = {e.digest for e in store.walk(expected) if e.kind == "dir"}
        encoded = {Digest.of_bytes(d) for d in listing.directories}
        assert encoded == stored_trees | {expected}

    def test_each_content_is_listed_once(self, tree):
        listing = upload.scan_tree(os.fsencode(tree))
        assert Digest.of_bytes(b"same content") in listing.blobs
        contents = {p.read_bytes() for p in tree.rglob("*") if p.is_file() and not p.is_symlink()}
        assert set(listing.blobs) == {Digest.of_bytes(c) for c in contents}

    def test_file_digest_and_size(self, tree):
        blob = upload.prepare(tree / "big")
        data = (tree / "big").read_bytes()
        assert blob.digest == Digest.of_bytes(data) and blob.size == len(data)


class TestRefused:
    @pytest.mark.parametrize("kind", ["fifo", "setuid", "setgid", "sticky"])
    def test_special_file_is_named(self, tree, kind):
        bad = tree / "a" / "b" / f"bad-{kind}"
        if kind == "fifo":
            os.mkfifo(bad)
        else:
            bad.write_text("x")
            bit = {"setuid": stat.S_ISUID, "setgid": stat.S_ISGID, "sticky": stat.S_ISVTX}[kind]
            os.chmod(bad, 0o755 | bit)
            if not os.stat(bad).st_mode & bit:
                pytest.skip(f"this filesystem does not keep the {kind} bit")
        with pytest.raises(UnsupportedFile) as info:
            upload.prepare(tree)
        assert str(bad) in info.value.message

    def test_symlink_argument_is_refused(self, tree):
        with pytest.raises(UnsupportedFile, match="is a symlink"):
            upload.prepare(tree / "link")

    def test_missing_path(self, tmp_path):
        with pytest.raises(UnsupportedFile, match="no such file"):
            upload.prepare(tmp_path / "nope")


class TestPlan:
    def test_only_missing_blobs_are_sent(self, tree):
        listing = upload.scan_tree(os.fsencode(tree))
        have = Digest.of_bytes(b"same content")
        t = FakeTransport(present={have})
        result = upload.send(t, listing, "r")
        assert result == {
            "digest": str(listing.root),
            "kind": "tree",
            "size": listing.root_size,
            "root": "r",
        }
        assert have not in t.blobs
        assert set(t.blobs) == set(listing.blobs) - {have}
        big = [b for b in listing.blobs.values() if b.size > upload.BATCH_BLOB]
        assert t.calls.count("put_blob") == len(big) == 1  # small blobs travel batched
        assert t.calls.count("put_blobs") == 1
        assert t.calls[-1] == "commit_tree" and t.roots == {"r": listing.root}

    def test_a_stored_tree_is_not_sent_again(self, tree):
        listing = upload.scan_tree(os.fsencode(tree))
        t = FakeTransport(present={listing.root})
        upload.send(t, listing, "again")
        assert t.calls == ["find_missing", "add_root"] and t.roots == {"again": listing.root}

    def test_failed_put_cancels_the_lease_and_names_the_file(self, tree):
        listing = upload.scan_tree(os.fsencode(tree))
        victim = Digest.of_bytes((tree / "big").read_bytes())
        t = FakeTransport(fail_on=victim)
        with pytest.raises(ClientError) as info:
            upload.send(t, listing)
        assert str(tree / "big") in info.value.message
        assert info.value.exit_code == exitcodes.DATA_LOSS
        assert "cancel_tree" in t.calls and "commit_tree" not in t.calls and not t.leases

    def test_a_small_file_changed_after_hashing_is_named(self, tree):
        listing = upload.scan_tree(os.fsencode(tree))
        os.chmod(tree / "tool", 0o755)
        (tree / "tool").write_bytes(b"#!/bin/XX\n")  # same size, other bytes
        t = FakeTransport()
        with pytest.raises(ClientError) as info:
            upload.send(t, listing)
        assert str(tree / "tool") in info.value.message
        assert info.value.exit_code == exitcodes.DATA_LOSS
        assert "cancel_tree" in t.calls and "commit_tree" not in t.calls and not t.leases

    def test_single_file_carries_the_root_name(self, tree):
        t = FakeTransport()
        r = upload.send(t, upload.prepare(tree / "tool"), "tool")
        assert r["kind"] == "blob" and t.roots == {"tool": Digest.parse(r["digest"])}
        assert t.calls == ["put_blob"]

    def test_chunks_are_at_most_one_mib(self, tree):
        chunks = list(upload.read_chunks(os.fsencode(tree / "big")))
        assert len(chunks) == 4 and max(map(len, chunks)) == upload.CHUNK
        assert list(upload.read_chunks(os.fsencode(tree / "a" / "b" / "zero"))) == []
