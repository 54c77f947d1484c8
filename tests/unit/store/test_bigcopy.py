"""Large files: copied in the kernel while the copy is hashed; the digest is always of the
bytes stored, whichever copy mechanism the filesystems allow."""

from __future__ import annotations

import errno
import hashlib
import os

import pytest

import seal.store.bigcopy as bigcopy
from seal.store import Digest
from seal.store.batch import SMALL_FILE

MiB = 1 << 20


@pytest.fixture
def big(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(os.urandom(5 * MiB + 12345))  # several copy steps and a ragged end
    return path


def _check_stored(store, digest: Digest, data: bytes) -> None:
    with store.open_blob(digest) as f:
        assert f.read() == data
    st = os.stat(store.layout.object_path(digest))
    assert st.st_mode & 0o7777 == 0o444
    assert store.stat(digest).size == len(data)
    assert os.listdir(store._tmp_dir) == []  # nothing staged is left behind


def test_put_file_of_a_large_file(store, big):
    data = big.read_bytes()
    assert len(data) > SMALL_FILE
    digest = store.put_file(big)
    assert digest == Digest.of_bytes(data)
    _check_stored(store, digest, data)


@pytest.mark.parametrize("refused", [["copy_file_range"], ["copy_file_range", "sendfile"]])
def test_falls_back_when_the_kernel_copy_is_refused(store, big, monkeypatch, refused):
    calls = {"copy_file_range": 0, "sendfile": 0}

    def refuse(name):
        def call(*args):
            calls[name] += 1
            raise OSError(errno.EXDEV, "cross-device")

        return call

    for name in refused:
        monkeypatch.setattr(os, name, refuse(name))
    data = big.read_bytes()
    digest = store.put_file(big)
    assert digest == Digest.of_bytes(data)
    _check_stored(store, digest, data)
    assert all(calls[name] == 1 for name in refused)  # tried once, then the next way


def test_a_failing_copy_fails_the_put_and_leaves_nothing(store, big, monkeypatch):
    steps = []

    def fail_later(src, dst):
        steps.append(1)
        if len(steps) == 2:
            raise OSError(errno.EIO, "input/output error")
        return os.copy_file_range(src, dst, bigcopy.COPY_CHUNK)

    monkeypatch.setattr(bigcopy, "_copy_file_range", fail_later)
    with pytest.raises(OSError) as info:
        store.put_file(big)
    assert info.value.errno == errno.EIO
    assert store.db.count() == 0
    assert os.listdir(store._tmp_dir) == []


def test_the_digest_is_of_the_copy_when_the_source_changes(store, big, monkeypatch):
    # The source is rewritten after the first copy step: whatever mix of old and new bytes
    # the copy holds, the object is named by the hash of exactly those bytes.
    steps = []

    def change_source_after_first_step(src, dst):
        n = os.copy_file_range(src, dst, bigcopy.COPY_CHUNK)
        if not steps:
            with open(big, "r+b") as f:
                f.write(b"\xff" * (4 * MiB))
            with open(big, "ab") as f:
                f.write(b"appended")
        steps.append(n)
        return n

    monkeypatch.setattr(bigcopy, "_copy_file_range", change_source_after_first_step)
    monkeypatch.setattr(bigcopy, "COPY_CHUNK", 1 * MiB)
    digest = store.put_file(big)
    with store.open_blob(digest) as f:
        stored = f.read()
    assert hashlib.sha256(stored).digest() == digest.raw
    assert stored.endswith(b"appended")  # copied up to the end as it is when reached
    assert store.verify().ok


def test_hashing_without_mmap(store, big, monkeypatch):
    def no_mmap(*args, **kwargs):
        raise OSError(errno.ENODEV, "no mmap here")

    monkeypatch.setattr(bigcopy.mmap, "mmap", no_mmap)
    data = big.read_bytes()
    assert store.put_file(big) == Digest.of_bytes(data)
