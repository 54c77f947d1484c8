"""put_hashed_file: a file hashed by its writer is renamed into the store, not copied."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from seal.store import Digest, Store, UnsupportedFile
from seal.store.errors import DigestMismatch
from seal.store.layout import OBJECT_MTIME

DATA = os.urandom(3 << 20) + b"tail"  # larger than one read: the copy path streams it


def _written(directory: Path, data: bytes = DATA) -> tuple[Path, Digest]:
    path = directory / "download"
    path.write_bytes(data)
    return path, Digest.from_hex(hashlib.sha256(data).hexdigest())


class TestSameFilesystem:
    def test_the_file_becomes_the_object(self, store: Store):
        path, digest = _written(store.scratch_dir("fetch-"))
        inode = path.stat().st_ino
        assert store.put_hashed_file(path, digest, len(DATA)) == digest
        assert not path.exists()
        obj = Path(store.layout.object_path(digest))
        st = obj.stat()
        assert st.st_ino == inode  # renamed, not copied
        assert stat.S_IMODE(st.st_mode) == 0o444
        assert st.st_mtime == OBJECT_MTIME
        assert store.stat(digest).size == len(DATA)
        assert store.get_bytes(digest) == DATA

    def test_an_object_already_there_is_kept_and_the_file_removed(self, store: Store):
        digest = store.put_bytes(b"same bytes")
        before = Path(store.layout.object_path(digest)).stat().st_ino
        path, again = _written(store.scratch_dir("fetch-"), b"same bytes")
        assert store.put_hashed_file(path, again, 10) == digest
        assert not path.exists()
        assert Path(store.layout.object_path(digest)).stat().st_ino == before

    def test_a_wrong_size_is_refused_and_nothing_recorded(self, store: Store):
        path, digest = _written(store.scratch_dir("fetch-"))
        with pytest.raises(UnsupportedFile, match="bytes, not"):
            store.put_hashed_file(path, digest, len(DATA) + 1)
        assert not store.has(digest)

    def test_a_directory_is_refused(self, store: Store):
        directory = store.scratch_dir("fetch-")
        with pytest.raises(UnsupportedFile):
            store.put_hashed_file(directory, Digest.of_bytes(b""), 0)


class TestOtherFilesystem:
    """Where rename cannot work (another filesystem), the bytes are copied and checked."""

    @pytest.fixture
    def elsewhere(self, store: Store, tmp_path: Path) -> Path:
        shm = Path("/dev/shm")
        objects = os.stat(store.layout.objects).st_dev
        for candidate in (shm, tmp_path):
            if candidate.is_dir() and os.stat(candidate).st_dev != objects:
                directory = candidate / f"seal-known-{os.getpid()}"
                directory.mkdir(exist_ok=True)
                yield directory
                for child in directory.iterdir():
                    child.unlink()
                directory.rmdir()
                return
        pytest.skip("no second filesystem here")

    def test_copied_and_checked(self, store: Store, elsewhere: Path):
        path, digest = _written(elsewhere)
        assert store.put_hashed_file(path, digest, len(DATA)) == digest
        assert not path.exists()
        assert store.get_bytes(digest) == DATA

    def test_a_false_digest_stores_nothing(self, store: Store, elsewhere: Path):
        path, _ = _written(elsewhere)
        claimed = Digest.of_bytes(b"something else")
        with pytest.raises(DigestMismatch):
            store.put_hashed_file(path, claimed, len(DATA))
        assert not store.has(claimed)
        assert not Path(store.layout.object_path(claimed)).exists()
