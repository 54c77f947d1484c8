"""A small signed Debian repository, generated for tests.

    keys = signing_keys()                       # once per session (ed25519, ~50 ms)
    repo = make_repo(tmp_path, [Deb("a", depends="b"), Deb("b")], keys)
    release = fetch_release(FileGetter(), repo.url, "bookworm", [repo.keyring])

Real .deb files (``dpkg-deb --build``), a Packages index (plain, .gz, .xz), a
Release with correct SHA-256 sums clearsigned into InRelease with a throwaway
key, and that key's public keyring for gpgv. Switches break one thing each:
``sign`` ("good", "tampered", "garbled", "untrusted", "sha1", "none"), ``corrupt_xz``
("hash": same size, other bytes; "size"), ``omit`` (index forms to leave out).
"""

from __future__ import annotations

import atexit
import functools
import gzip
import hashlib
import http.server
import lzma
import shutil
import subprocess
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

SUITE = "bookworm"
ARCH = "amd64"


@dataclass(frozen=True)
class Deb:
    """A tiny binary package to build."""

    name: str
    version: str = "1.0-1"
    arch: str = ARCH
    depends: str = ""
    pre_depends: str = ""
    provides: str = ""
    essential: bool = False
    priority: str = "optional"
    multi_arch: str = ""

    def control(self) -> str:
        """The DEBIAN/control text."""
        lines = [
            f"Package: {self.name}",
            f"Version: {self.version}",
            f"Architecture: {self.arch}",
            "Maintainer: seal tests <tests@seal.invalid>",
            f"Priority: {self.priority}",
        ]
        for field, value in (
            ("Essential", "yes" if self.essential else ""),
            ("Multi-Arch", self.multi_arch),
            ("Pre-Depends", self.pre_depends),
            ("Depends", self.depends),
            ("Provides", self.provides),
        ):
            if value:
                lines.append(f"{field}: {value}")
        lines.append(f"Description: test package {self.name}")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SigningKeys:
    """Two throwaway signing keys in one GNUPGHOME, and a keyring holding only the first."""

    home: Path
    trusted: str  # fingerprint
    untrusted: str
    keyring: Path


@dataclass(frozen=True)
class Repo:
    """A generated repository: ``url`` is a file:// mirror URL over ``root``."""

    root: Path
    keyring: Path
    suite: str

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def dists(self, path: str) -> Path:
        return self.root / "dists" / self.suite / path


def _gpg(home: Path, *args: str) -> bytes:
    cmd = ["gpg", "--homedir", str(home), "--batch", "--quiet", "--yes", *args]
    return subprocess.run(cmd, check=True, capture_output=True).stdout


def _new_key(home: Path, uid: str) -> str:
    _gpg(home, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
    listing = _gpg(home, "--with-colons", "--list-keys", uid).decode()
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


@functools.cache
def signing_keys() -> SigningKeys:
    """Generate the session's keys once; the directory and gpg-agent go at exit."""
    home = Path(tempfile.mkdtemp(prefix="seal-gpg-"))
    atexit.register(_remove_home, home)
    trusted = _new_key(home, "seal test archive <archive@seal.invalid>")
    untrusted = _new_key(home, "seal stranger <stranger@seal.invalid>")
    keyring = home / "trusted.gpg"
    keyring.write_bytes(_gpg(home, "--export", trusted))
    return SigningKeys(home=home, trusted=trusted, untrusted=untrusted, keyring=keyring)


def _remove_home(home: Path) -> None:
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)
    shutil.rmtree(home, ignore_errors=True)


def clearsign(text: bytes, home: Path, fingerprint: str, digest: str = "SHA256") -> bytes:
    """``text`` clearsigned by the key ``fingerprint`` of GNUPGHOME ``home``."""
    cmd = ["gpg", "--homedir", str(home), "--batch", "--quiet", "--yes"]
    cmd += ["--digest-algo", digest, "--local-user", fingerprint, "--clearsign"]
    return subprocess.run(cmd, input=text, check=True, capture_output=True).stdout


@functools.cache
def _built(deb: Deb) -> tuple[bytes, str]:
    """The .deb bytes of ``deb`` (built once per session) and its control text."""
    with tempfile.TemporaryDirectory(prefix="seal-deb-") as tmp:
        tree = Path(tmp, "root")
        (tree / "DEBIAN").mkdir(parents=True)
        (tree / "DEBIAN" / "control").write_text(deb.control())
        doc = tree / "usr" / "share" / "doc" / deb.name
        doc.mkdir(parents=True)
        (doc / "README").write_text(f"{deb.name} {deb.version}\n")
        out = Path(tmp, "out.deb")
        cmd = ["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", str(tree), str(out)]
        subprocess.run(cmd, check=True, capture_output=True)
        return out.read_bytes(), deb.control()


def _write_pool(root: Path, debs: Sequence[Deb]) -> str:
    """Write the .debs under pool/ and return the Packages text describing them."""
    stanzas = []
    for deb in debs:
        data, control = _built(deb)
        version = deb.version.split(":", 1)[-1]
        filename = f"pool/main/{deb.name[0]}/{deb.name}/{deb.name}_{version}_{deb.arch}.deb"
        path = root / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        stanzas.append(
            control
            + f"Filename: {filename}\nSize: {len(data)}\n"
            + f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
        )
    return "\n".join(stanzas)


def _release_text(
    suite: str, files: dict[str, bytes], date: datetime, valid_until: datetime | None
) -> bytes:
    lines = [
        "Origin: seal-test",
        "Label: seal-test",
        "Suite: stable",
        f"Codename: {suite}",
        f"Date: {format_datetime(date, usegmt=True)}",
    ]
    if valid_until is not None:
        lines.append(f"Valid-Until: {format_datetime(valid_until, usegmt=True)}")
    lines += [
        f"Architectures: {ARCH} all",
        "Components: main",
        "Description: seal tests",
        "SHA256:",
    ]
    for path, data in sorted(files.items()):
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data):>8} {path}")
    return ("\n".join(lines) + "\n").encode()


def make_repo(
    tmp: Path,
    debs: Sequence[Deb],
    keys: SigningKeys,
    *,
    suite: str = SUITE,
    sign: str = "good",
    corrupt_xz: str = "",
    omit: Sequence[str] = (),
    date: datetime | None = None,
    valid_until: datetime | None = None,
) -> Repo:
    """Generate a signed repository under ``tmp`` (see the module docstring for switches)."""
    root = tmp / "mirror"
    packages = _write_pool(root, debs).encode()
    index = f"main/binary-{ARCH}/Packages"
    forms = {
        index: packages,
        index + ".gz": gzip.compress(packages, mtime=0),
        index + ".xz": lzma.compress(packages),
    }
    forms = {path: data for path, data in forms.items() if path.rpartition(".")[2] not in omit}
    for path, data in forms.items():
        target = root / "dists" / suite / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    release = _release_text(suite, forms, date or datetime.now(UTC), valid_until)
    dists = root / "dists" / suite
    (dists / "Release").write_bytes(release)
    (dists / "InRelease").write_bytes(_signed(release, keys, sign))
    if corrupt_xz:
        _corrupt(dists / (index + ".xz"), corrupt_xz)
    return Repo(root=root, keyring=keys.keyring, suite=suite)


def _signed(release: bytes, keys: SigningKeys, sign: str) -> bytes:
    if sign not in ("good", "tampered", "garbled", "untrusted", "sha1", "none"):
        raise ValueError(f"unknown sign mode {sign!r}")
    if sign == "none":
        return release
    signer = keys.untrusted if sign == "untrusted" else keys.trusted
    signed = clearsign(release, keys.home, signer, "SHA1" if sign == "sha1" else "SHA256")
    if sign == "tampered":  # the signature is intact, the text it covers is not
        return signed.replace(b"Origin: seal-test", b"Origin: seal-evil", 1)
    if sign == "garbled":  # the signature block itself is damaged
        head, _, rest = signed.partition(b"-----BEGIN PGP SIGNATURE-----\n\n")
        return head + b"-----BEGIN PGP SIGNATURE-----\n\n" + rest[:10] + b"AAAA" + rest[14:]
    return signed


def _corrupt(path: Path, how: str) -> None:
    """Replace ``path`` by another valid xz stream: same size ("hash") or not ("size")."""
    original = path.read_bytes()
    if how == "size":
        path.write_bytes(lzma.compress(b"Package: evil\nVersion: 1\n"))
    elif how == "hash":
        data = bytearray(original)
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        raise ValueError(f"unknown corruption {how!r}")


class FileGetter:
    """A Getter over file:// URLs; raises FileNotFoundError as a server answers 404."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def get(self, url: str) -> bytes:
        self.urls.append(url)
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme != "file":
            raise ValueError(f"FileGetter reads file:// URLs only, not {url}")
        return Path(urllib.parse.unquote(parsed.path)).read_bytes()


class UrlGetter:
    """A Getter over urllib (HTTP(S) and file://); raises urllib.error.HTTPError on 404."""

    def __init__(self, timeout: float = 60) -> None:
        self.timeout = timeout

    def get(self, url: str) -> bytes:
        request = urllib.request.Request(url, headers={"User-Agent": "seal-tests"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return response.read()


@contextmanager
def serve(root: Path) -> Iterator[str]:
    """Serve ``root`` over HTTP on 127.0.0.1 (an ephemeral port); yield the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


__all__ = [
    "Deb",
    "FileGetter",
    "Repo",
    "SigningKeys",
    "UrlGetter",
    "clearsign",
    "make_repo",
    "serve",
    "signing_keys",
]
