"""What fetching a lock means, as data: one fixed-output derivation per artifact.

A pinned artifact's SHA-256 is also its store digest (the store names a blob
by the SHA-256 of its bytes), so "is it fetched?" is "does the store hold that
digest?", and ``--offline`` needs no network and no records.  Each download
is a ``fetch-url`` v2 derivation (every URL of the artifact, mirrors after the
first; the pinned size and hash), which the realizer runs at most once at a
time however many clients ask.  This module only writes the documents; the
services hand them to the realizer.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from seal.store import Digest, Directory, FileNode

from .cpython import CPythonSourceError, locked_keyring, signing_keyring
from .lockfile import Artifact, Lock
from .signature import SignatureResult, verify_detached

_UNSAFE = re.compile(r"[^A-Za-z0-9+_.@-]")
_NAME_MAX = 128


def derivation_name(pin: Artifact) -> str:
    """``fetch-<filename>``, reduced to the characters a derivation name may hold."""
    name = "fetch-" + _UNSAFE.sub("_", pin.filename or f"{pin.name}-{pin.version}")
    return name[:_NAME_MAX]


def derivation_document(pin: Artifact) -> bytes:
    """The fetch-url v2 derivation (JSON) that downloads ``pin`` and checks it."""
    doc = {
        "name": derivation_name(pin),
        "builder": {
            "builtin": "fetch-url",
            "version": 2,
            "params": {"urls": list(pin.urls), "size": pin.size},
        },
        "fixed": {"sha256": pin.sha256},
    }
    return json.dumps(doc, sort_keys=True).encode()


def distinct(pins: Iterable[Artifact]) -> list[Artifact]:
    """One pin per SHA-256 (the same file locked twice is fetched once), in lock order."""
    seen: set[str] = set()
    out = []
    for pin in pins:
        if pin.sha256 not in seen:
            seen.add(pin.sha256)
            out.append(pin)
    return out


def tree(pins: Iterable[Artifact]) -> tuple[list[bytes], Digest]:
    """The artifacts as one directory (file name -> blob): its encoding and digest."""
    files: dict[bytes, FileNode] = {}
    for pin in pins:
        name = pin.filename.encode()
        files.setdefault(name, FileNode(name, Digest.from_hex(pin.sha256), pin.size, False))
    data = Directory.build(files=list(files.values())).encode()
    return [data], Digest.of_bytes(data)


def url_records(pins: Iterable[Artifact]) -> list[tuple[bytes, bytes]]:
    """(URL, record) pairs for fetched pins: which digest a URL gave (its first URL)."""
    out = []
    for pin in pins:
        record = {"digest": f"sha256:{pin.sha256}", "size": pin.size, "filename": pin.filename}
        out.append((pin.urls[0].encode(), json.dumps(record, sort_keys=True).encode()))
    return out


def _signed(lock: Lock) -> Iterator[tuple[Artifact, Artifact | None, list[Artifact]]]:
    """Each signed artifact of ``lock``, its signature's artifact (the lock loader refuses
    a lock without it) and the signing keys of its role."""
    by_filename = {a.filename: a for a in lock.artifacts}
    keys = [a for a in lock.artifacts if a.kind == "signing-key"]
    for artifact in lock.artifacts:
        if artifact.signer is None or artifact.signature is None:
            continue
        role_keys = [k for k in keys if k.role == artifact.role]
        yield artifact, by_filename.get(artifact.signature), role_keys


def signed_inputs(lock: Lock) -> set[str]:
    """The SHA-256s ``verify_signed`` reads: signed artifacts, their signatures, their keys."""
    needed: set[str] = set()
    for artifact, signature, keys in _signed(lock):
        needed.add(artifact.sha256)
        if signature is not None:
            needed.add(signature.sha256)
        needed.update(k.sha256 for k in keys)
    return needed


def verification_key(lock: Lock) -> str:
    """A name for everything ``verify_signed`` decides on: each signed artifact's, its
    signature's and its signing key's SHA-256, the key the lock expects, the signer.

    The same name means the same bytes checked against the same fingerprint, so a
    fetch may skip a check made before (the store's objects are immutable).
    """
    checks = [
        [
            artifact.sha256,
            signature.sha256 if signature else "",
            sorted((k.sha256, str(k.details.get("key_sha256", ""))) for k in keys),
            artifact.signer,
        ]
        for artifact, signature, keys in _signed(lock)
    ]
    text = json.dumps(sorted(checks), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def verify_signed(
    lock: Lock, path_of: Callable[[str], str], scratch: Path
) -> list[tuple[Artifact, SignatureResult]]:
    """Check every signed artifact of ``lock`` (fetched: ``path_of(sha256)`` is its file).

    The signer's key comes from the lock's signing-key artifact (a debian.tar.xz
    holding upstream's key), which must hold the key the lock recorded; the
    signature must be by the pinned fingerprint.  Raises CPythonSourceError or
    signature.SignatureError.
    """
    results = []
    for artifact, signature, keys in _signed(lock):
        assert signature is not None  # lockfile.loads refuses a signature not in the lock
        keyring = _keyring(keys, artifact, path_of, scratch)
        result = verify_detached(
            path_of(artifact.sha256),
            path_of(signature.sha256),
            keyring,
            artifact.signer,
            name=f"{signature.filename} (the signature of {artifact.filename})",
        )
        results.append((artifact, result))
    return results


def _keyring(
    keys: list[Artifact], artifact: Artifact, path_of: Callable[[str], str], scratch: Path
) -> Path:
    """A keyring of the first of ``keys`` (the artifact's role's) holding the expected key."""
    if not keys:
        raise CPythonSourceError(
            f"the lock has no signing key for {artifact.label}",
            reason="cpython-signing-key-missing",
        )
    key = keys[0]
    keyring = scratch / f"{key.sha256}.gpg"
    if not keyring.exists():
        with open(path_of(key.sha256), "rb") as f:
            data = f.read()
        want = key.details.get("key_sha256")
        if want:
            locked_keyring(data, keyring, str(want), name=key.filename)
        else:
            signing_keyring(data, keyring, name=key.filename)
    return keyring
