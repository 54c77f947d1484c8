"""Shared helpers for the store tests: a tiny in-memory model of a tree, writing it to disk,
reading a directory back into the model, and Hypothesis strategies for random trees.

A *spec* is ``dict[bytes, File | Link | dict]``: names are raw bytes (any byte but ``/``
and NUL), a ``dict`` value is a subdirectory.
"""

from __future__ import annotations

import os
import random
import stat
from dataclasses import dataclass

from hypothesis import strategies as st

from seal.store import Digest, Directory, DirectoryNode, FileNode, Store, SymlinkNode


@dataclass(frozen=True)
class File:
    data: bytes
    exe: bool = False


@dataclass(frozen=True)
class Link:
    target: bytes


Spec = dict  # dict[bytes, File | Link | Spec]


# -- model --------------------------------------------------------------------------------
def model_digest(spec: Spec) -> tuple[Digest, int]:
    """The tree digest (and encoded size) the spec must get, computed without the filesystem."""
    files, dirs, links = [], [], []
    for name, node in spec.items():
        if isinstance(node, File):
            files.append(FileNode(name, Digest.of_bytes(node.data), len(node.data), node.exe))
        elif isinstance(node, Link):
            links.append(SymlinkNode(name, node.target))
        else:
            digest, size = model_digest(node)
            dirs.append(DirectoryNode(name, digest, size))
    encoded = Directory.build(files, dirs, links).encode()
    return Digest.of_bytes(encoded), len(encoded)


def iter_paths(spec: Spec, prefix: bytes = b""):
    """Yield (relative path, node) for every entry, parents before children."""
    for name, node in spec.items():
        path = prefix + name
        yield path, node
        if isinstance(node, dict):
            yield from iter_paths(node, path + b"/")


# -- disk -----------------------------------------------------------------------------------
def fs(path) -> bytes:
    return os.fsencode(path)


def write_spec(
    dest,
    spec: Spec,
    *,
    rng: random.Random | None = None,
    umask: int = 0o022,
    uid: int | None = None,
    gid: int | None = None,
    mtime_ns: int | None = None,
) -> None:
    """Create ``spec`` under the new directory ``dest``.

    ``rng`` shuffles the creation order; ``umask`` applies while creating (files are made
    with 0o777 / 0o666 so the umask shapes their other bits); ``uid``/``gid`` chown every
    entry; ``mtime_ns`` (plus a per-entry random offset when ``rng`` is given) sets times.
    """
    dest = fs(dest)
    old = os.umask(umask)
    try:
        os.mkdir(dest, 0o777)
        _write_level(dest, spec, rng)
    finally:
        os.umask(old)
    if uid is not None or mtime_ns is not None:
        entries = [dest] + [dest + b"/" + p for p, _ in iter_paths(spec)]
        for path in reversed(entries):  # children first: touching them changes dir mtimes
            if uid is not None:
                os.lchown(path, uid, gid if gid is not None else uid)
            if mtime_ns is not None:
                t = mtime_ns + (rng.randrange(10**12) if rng else 0)
                os.utime(path, ns=(t, t), follow_symlinks=False)


def _write_level(path: bytes, spec: Spec, rng: random.Random | None) -> None:
    items = list(spec.items())
    if rng is not None:
        rng.shuffle(items)
    for name, node in items:
        p = path + b"/" + name
        if isinstance(node, File):
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o777 if node.exe else 0o666)
            try:
                os.write(fd, node.data)
            finally:
                os.close(fd)
        elif isinstance(node, Link):
            os.symlink(node.target, p)
        else:
            os.mkdir(p, 0o777)
            _write_level(p, node, rng)


def read_spec(path) -> Spec:
    """Read a directory back into a spec (exec = the owner's x bit); fail on other types."""
    out: Spec = {}
    for entry in os.scandir(fs(path)):
        st_ = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(st_.st_mode):
            out[entry.name] = Link(os.readlink(entry.path))
        elif stat.S_ISDIR(st_.st_mode):
            out[entry.name] = read_spec(entry.path)
        elif stat.S_ISREG(st_.st_mode):
            with open(entry.path, "rb") as f:
                out[entry.name] = File(f.read(), bool(st_.st_mode & stat.S_IXUSR))
        else:
            raise AssertionError(f"unexpected file type at {entry.path!r}")
    return out


def object_files(store: Store) -> set[str]:
    """Every file under objects/ (plain and executable copies)."""
    found = set()
    for dirpath, _dirs, files in os.walk(store.layout.objects):
        found.update(os.path.join(dirpath, f) for f in files)
    return found


def store_state(store: Store) -> tuple[int, frozenset[str], dict]:
    """What a failed operation must leave unchanged: record count, object files, roots."""
    return store.db.count(), frozenset(object_files(store)), store.roots()


def make_writable(path) -> None:
    """Object files are 0444: let the test (root, but be explicit) modify one."""
    os.chmod(path, 0o644)


def flip_byte(path, offset: int = 0) -> None:
    make_writable(path)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))


# -- hypothesis strategies ----------------------------------------------------------------
SPECIAL_NAMES = [
    b"\xff\xfe",  # not UTF-8
    b"\x80",
    b"caf\xc3\xa9",  # UTF-8, non-ASCII
    b"\xe2\x98\x83",
    b"a b",
    b"-n",
    b"\n",
    b".hidden",
    b"..x",
    b"x" * 255,  # longest name ext4 allows
]


def valid_name(name: bytes) -> bool:
    return bool(name) and name not in (b".", b"..") and b"/" not in name and b"\0" not in name


names = st.one_of(
    st.sampled_from(SPECIAL_NAMES),
    st.binary(min_size=1, max_size=12).filter(valid_name),
)
utf8_names = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"),
        min_size=1,
        max_size=10,
    )
    .filter(lambda s: s not in (".", ".."))
    .map(lambda s: s.encode())
)

files = st.builds(File, st.binary(max_size=200), st.booleans())
links = st.builds(Link, st.binary(min_size=1, max_size=40).filter(lambda t: b"\0" not in t))


utf8_links = st.builds(
    Link, st.text(min_size=1, max_size=30).filter(lambda t: "\0" not in t).map(str.encode)
)


def trees(name_strategy=names, max_leaves: int = 14, link_strategy=links):
    leaf = files | link_strategy
    return st.recursive(
        st.dictionaries(name_strategy, leaf, max_size=4),
        lambda children: st.dictionaries(name_strategy, leaf | children, max_size=4),
        max_leaves=max_leaves,
    )
