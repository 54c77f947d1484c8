"""fetch: which files the signature check reads (it starts as soon as they are in), and
the name under which a passed check is remembered."""

from __future__ import annotations

import dataclasses
import hashlib
from types import SimpleNamespace

from seal.daemon.inputs.fetch import signed_inputs, verification_key
from seal.daemon.inputs.lockfile import Artifact


def art(kind: str, filename: str, role: str, **kwargs) -> Artifact:
    sha = hashlib.sha256(filename.encode()).hexdigest()
    return Artifact(kind, "x", "1", filename, (f"https://m/{filename}",), sha, 1, role, **kwargs)


def test_signed_inputs_are_the_source_its_signature_and_its_roles_key():
    tarball = art("cpython-source", "py.tar.xz", "cpython", signer="F" * 40, signature="py.asc")
    signature = art("signature", "py.asc", "cpython")
    key = art("signing-key", "py.debian.tar.xz", "cpython")
    others = [
        art("signing-key", "other.debian.tar.xz", "elsewhere"),  # another role's key
        art("wheel", "a-1-py3-none-any.whl", "python"),
        art("deb", "libc6.deb", "runtime"),
    ]
    lock = SimpleNamespace(artifacts=[*others, tarball, signature, key])
    assert signed_inputs(lock) == {tarball.sha256, signature.sha256, key.sha256}
    assert signed_inputs(SimpleNamespace(artifacts=others)) == set()


def _signed_lock(**changes) -> SimpleNamespace:
    tarball = art("cpython-source", "py.tar.xz", "cpython", signer="F" * 40, signature="py.asc")
    signature = art("signature", "py.asc", "cpython")
    key = art("signing-key", "py.debian.tar.xz", "cpython", details={"key_sha256": "a" * 64})
    wheel = art("wheel", "a-1-py3-none-any.whl", "python")
    parts = {"tarball": tarball, "signature": signature, "key": key, "wheel": wheel}
    for name, fields in changes.items():
        parts[name] = dataclasses.replace(parts[name], **fields)
    return SimpleNamespace(artifacts=list(parts.values()))


def test_a_verification_is_named_by_every_byte_and_fingerprint_it_decides_on():
    base = verification_key(_signed_lock())
    assert base == verification_key(_signed_lock())
    assert len(base) == 64
    # what the check reads or expects: each change names another check
    for changes in (
        {"tarball": {"signer": "E" * 40}},
        {"tarball": {"sha256": "b" * 64}},
        {"signature": {"sha256": "c" * 64}},
        {"key": {"sha256": "d" * 64}},
        {"key": {"details": {"key_sha256": "e" * 64}}},
    ):
        assert verification_key(_signed_lock(**changes)) != base, changes
    # what it does not read: the same check
    assert verification_key(_signed_lock(wheel={"sha256": "f" * 64})) == base
