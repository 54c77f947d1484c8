"""fetch: which files the signature check reads (it starts as soon as they are in)."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

from seal.daemon.inputs.fetch import signed_inputs
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
