"""A Debian mirror's CPython source packages, generated for tests.

    with release_manager() as rm:
        root = make_mirror(tmp_path, [python313(rm)])   # bookworm (3.11.2, unsigned), trixie

Sources indexes, Releases clearsigned with debfixture's archive key, and a
pool with a tiny "upstream" tarball signed by a throwaway release manager
whose public key sits in the debian.tar.xz as ``debian/upstream/signing-key.asc``.
``write_suite`` adds a source suite to any mirror root (e.g. one made by
``debfixture.make_repo``).
"""

from __future__ import annotations

import hashlib
import io
import lzma
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from debfixture import clearsign, signing_keys


# -- a release manager's key --------------------------------------------------------------------
@dataclass(frozen=True)
class ReleaseManager:
    home: Path
    fingerprint: str
    other: str  # a second key in the same home (a "wrong" signer)

    def gpg(self, *args: str, at: int | None = None, data: bytes | None = None) -> bytes:
        cmd = ["gpg", "--homedir", str(self.home), "--batch", "--no-tty", "--passphrase", ""]
        cmd += ["--pinentry-mode", "loopback"]
        if at is not None:
            cmd += ["--faked-system-time", f"{at}!"]
        proc = subprocess.run([*cmd, *args], input=data, capture_output=True, timeout=30)
        assert proc.returncode == 0, proc.stderr.decode()
        return proc.stdout

    def sign(self, data: bytes, key: str | None = None, at: int | None = None) -> bytes:
        who = f"{key or self.fingerprint}!"
        return self.gpg("--local-user", who, "--armor", "--detach-sign", at=at, data=data)

    def public(self, key: str | None = None) -> bytes:
        return self.gpg("--armor", "--export", key or self.fingerprint)


def new_key(home: Path, uid: str, expire: str = "never", at: int | None = None) -> str:
    rm = ReleaseManager(home, "", "")
    rm.gpg("--quick-gen-key", uid, "ed25519", "sign", expire, at=at)
    listing = rm.gpg("--with-colons", "--list-keys", f"={uid}").decode()
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


@contextmanager
def release_manager() -> Iterator[ReleaseManager]:
    """A throwaway gpg home with a release manager's key and a second ("wrong") key."""
    home = Path(tempfile.mkdtemp(prefix="seal-rm-"))
    try:
        good = new_key(home, "Release Manager <rm@python.invalid>")
        other = new_key(home, "Somebody Else <else@python.invalid>")
        yield ReleaseManager(home, good, other)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


# -- the mirror ---------------------------------------------------------------------------------
def tar_xz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with lzma.open(buf, "wb") as xz, tarfile.open(fileobj=xz, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class SourcePkg:
    name: str
    version: str  # Debian version
    files: dict[str, bytes]  # pool file name -> bytes (as listed in the index)
    served: dict[str, bytes] | None = None  # what the pool holds instead, when tampered

    def stanza(self) -> str:
        lines = [f"Package: {self.name}", f"Version: {self.version}", "Files:"]
        lines += [f" {hashlib.md5(d).hexdigest()} {len(d)} {n}" for n, d in self.files.items()]
        lines.append("Checksums-Sha256:")
        lines += [f" {hashlib.sha256(d).hexdigest()} {len(d)} {n}" for n, d in self.files.items()]
        lines.append(f"Directory: pool/main/p/{self.name}")
        return "\n".join(lines) + "\n"


def python313(rm: ReleaseManager, *, version: str = "3.13.5", **switches) -> SourcePkg:
    """A python3.13 source package; switches: key=, sig_key=, sig_at=, no_key=, tamper=."""
    return python_source(rm, version=version, **switches)


def python_source(rm: ReleaseManager, *, version: str, **switches) -> SourcePkg:
    """A ``pythonX.Y`` source package of upstream ``version`` (switches: see python313)."""
    upstream = version.split("-")[0]
    name = "python" + ".".join(upstream.split(".")[:2])
    tarball = tar_xz({f"Python-{upstream}/README.rst": f"This is Python {upstream}\n".encode()})
    asc = rm.sign(tarball, switches.get("sig_key"), switches.get("sig_at"))
    key = rm.public(switches.get("key"))
    debian = {"debian/changelog": f"{name} ({version}-2) unstable\n".encode()}
    if not switches.get("no_key"):
        debian["debian/upstream/signing-key.asc"] = key
    files = {
        f"{name}_{version}.dsc": b"Format: 3.0 (quilt)\n",
        f"{name}_{upstream}.orig.tar.xz": tarball,
        f"{name}_{upstream}.orig.tar.xz.asc": asc,
        f"{name}_{version}-2.debian.tar.xz": tar_xz(debian),
    }
    pkg = SourcePkg(name, f"{version}-2", files)
    tamper = switches.get("tamper")
    if tamper == "pool":  # the pool serves other bytes than the index lists
        pkg.served = {f"{name}_{upstream}.orig.tar.xz": tarball.replace(b"\xfd7zXZ", b"\xfd7zXY")}
    elif tamper == "index":  # index and pool agree on bytes the signature does not cover
        evil = tar_xz({f"Python-{upstream}/README.rst": b"evil\n"})
        pkg.files[f"{name}_{upstream}.orig.tar.xz"] = evil
    return pkg


def python311() -> SourcePkg:
    """bookworm's shape: an .orig.tar.gz and no .asc, no signing key."""
    return SourcePkg(
        "python3.11",
        "3.11.2-6+deb12u8",
        {
            "python3.11_3.11.2.orig.tar.gz": b"not really a tarball",
            "python3.11_3.11.2-6+deb12u8.debian.tar.xz": tar_xz({"debian/rules": b""}),
        },
    )


def write_suite(root: Path, suite: str, pkgs: list[SourcePkg], *, sign: str = "good", corrupt=""):
    keys = signing_keys()
    sources = "\n".join(p.stanza() for p in pkgs).encode()
    forms = {"main/source/Sources": sources, "main/source/Sources.xz": lzma.compress(sources)}
    dists = root / "dists" / suite
    for path, data in forms.items():
        (dists / path).parent.mkdir(parents=True, exist_ok=True)
        (dists / path).write_bytes(data)
    lines = [
        "Origin: Debian",
        f"Suite: {suite}",
        f"Codename: {suite}",
        f"Date: {format_datetime(datetime.now(UTC), usegmt=True)}",
        "Architectures: amd64",
        "Components: main",
        "SHA256:",
    ]
    lines += [f" {hashlib.sha256(d).hexdigest()} {len(d)} {p}" for p, d in sorted(forms.items())]
    release = ("\n".join(lines) + "\n").encode()
    signer = keys.untrusted if sign == "untrusted" else keys.trusted
    (dists / "InRelease").write_bytes(clearsign(release, keys.home, signer))
    if corrupt:  # same size, one byte flipped: the Release no longer matches
        xz = bytearray((dists / "main/source/Sources.xz").read_bytes())
        xz[len(xz) // 2] ^= 0xFF
        (dists / "main/source/Sources.xz").write_bytes(bytes(xz))
    for pkg in pkgs:
        pool = root / "pool/main/p" / pkg.name
        pool.mkdir(parents=True, exist_ok=True)
        for name, data in {**pkg.files, **(pkg.served or {})}.items():
            (pool / name).write_bytes(data)


def make_mirror(tmp: Path, trixie: list[SourcePkg], **switches) -> Path:
    root = tmp / "mirror"
    write_suite(root, "bookworm", [python311()])
    write_suite(root, "trixie", trixie, **switches)
    return root
