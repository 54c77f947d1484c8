"""Trees: the canonical REAPI ``Directory`` encoding, its decoder and its validation."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from hypothesis import given, settings
from hypothesis import strategies as st
from storekit import File, Link, model_digest, names, trees, utf8_links, utf8_names

from seal.store import (
    Digest,
    Directory,
    DirectoryNode,
    FileNode,
    InvalidName,
    MalformedTree,
    StoreError,
    SymlinkNode,
)
from seal.store.tree import encode_listing, parse_listing

# -- REAPI messages, built from a descriptor (no generated code needed) -------------------
_PKG = "build.bazel.remote.execution.v2"
_F = descriptor_pb2.FieldDescriptorProto


def _reapi_classes():
    fdp = descriptor_pb2.FileDescriptorProto(
        name="seal_test_reapi.proto", package=_PKG, syntax="proto3"
    )

    def message(name, *fields):
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = f".{_PKG}.{type_name}"

    opt, rep = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    message(
        "Digest",
        ("hash", 1, _F.TYPE_STRING, opt, None),
        ("size_bytes", 2, _F.TYPE_INT64, opt, None),
    )
    message(
        "FileNode",
        ("name", 1, _F.TYPE_STRING, opt, None),
        ("digest", 2, _F.TYPE_MESSAGE, opt, "Digest"),
        ("is_executable", 4, _F.TYPE_BOOL, opt, None),
    )
    message(
        "DirectoryNode",
        ("name", 1, _F.TYPE_STRING, opt, None),
        ("digest", 2, _F.TYPE_MESSAGE, opt, "Digest"),
    )
    message(
        "SymlinkNode",
        ("name", 1, _F.TYPE_STRING, opt, None),
        ("target", 2, _F.TYPE_STRING, opt, None),
    )
    message(
        "Directory",
        ("files", 1, _F.TYPE_MESSAGE, rep, "FileNode"),
        ("directories", 2, _F.TYPE_MESSAGE, rep, "DirectoryNode"),
        ("symlinks", 3, _F.TYPE_MESSAGE, rep, "SymlinkNode"),
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {
        n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PKG}.{n}"))
        for n in ("Digest", "FileNode", "DirectoryNode", "SymlinkNode", "Directory")
    }


PB = _reapi_classes()


def pb_digest(digest: Digest, size: int):
    return PB["Digest"](hash=digest.hex, size_bytes=size)


def pb_file(name: bytes, digest: Digest, size: int, exe: bool):
    return PB["FileNode"](name=name.decode(), digest=pb_digest(digest, size), is_executable=exe)


def pb_dir(name: bytes, digest: Digest, size: int):
    return PB["DirectoryNode"](name=name.decode(), digest=pb_digest(digest, size))


def pb_link(name: bytes, target: bytes):
    return PB["SymlinkNode"](name=name.decode(), target=target.decode())


def pb_directory(files=(), dirs=(), links=()) -> bytes:
    msg = PB["Directory"](files=list(files), directories=list(dirs), symlinks=list(links))
    return msg.SerializeToString(deterministic=True)


def reapi_encoding(spec) -> bytes:
    """Encode one level of a spec (UTF-8 names) with protobuf, entries sorted by name."""
    files, dirs, links = [], [], []
    for name in sorted(spec):
        node = spec[name]
        if isinstance(node, File):
            files.append(pb_file(name, Digest.of_bytes(node.data), len(node.data), node.exe))
        elif isinstance(node, Link):
            links.append(pb_link(name, node.target))
        else:
            dirs.append(pb_dir(name, *reapi_digest(node)))
    return pb_directory(files, dirs, links)


def reapi_digest(spec) -> tuple[Digest, int]:
    data = reapi_encoding(spec)
    return Digest.of_bytes(data), len(data)


D1 = Digest.of_bytes(b"one")
D2 = Digest.of_bytes(b"two")


class TestReapiCompatibility:
    @pytest.mark.parametrize(
        "directory",
        [
            Directory(),
            Directory(files=(FileNode(b"a", D1, 3, False),)),
            Directory(files=(FileNode(b"run", D1, 3, True),)),
            Directory(files=(FileNode(b"empty", Digest.of_bytes(b""), 0, False),)),
            Directory(files=(FileNode(b"big", D2, 5 * 2**32 + 7, True),)),  # multi-byte varint
            Directory(directories=(DirectoryNode(b"sub", D2, 0), DirectoryNode(b"t", D1, 300))),
            Directory(symlinks=(SymlinkNode(b"l", b"../x/y"), SymlinkNode(b"m", b"/etc/passwd"))),
            Directory(
                files=(FileNode("caf\u00e9".encode(), D1, 1, False),),
                directories=(DirectoryNode("\u2603".encode(), D2, 12),),
                symlinks=(SymlinkNode(b"z" * 200, "\u00fc".encode() * 100),),  # long lengths
            ),
        ],
        ids=["empty", "file", "exec", "empty-file", "huge-size", "dirs", "links", "unicode"],
    )
    def test_examples_match_protobuf(self, directory):
        expected = pb_directory(
            [pb_file(f.name, f.digest, f.size, f.executable) for f in directory.files],
            [pb_dir(d.name, d.digest, d.size) for d in directory.directories],
            [pb_link(s.name, s.target) for s in directory.symlinks],
        )
        assert directory.encode() == expected

    @settings(max_examples=150, deadline=None)
    @given(trees(utf8_names, max_leaves=20, link_strategy=utf8_links))
    def test_random_trees_match_protobuf(self, spec):
        # Both the top-level bytes and every subtree digest agree with REAPI.
        assert model_digest(spec) == reapi_digest(spec)

    def test_sorting_is_by_utf8_bytes(self):
        names = ["b", "B", "a", "\u00e9", "z", "\U0001f600", "a0", "\u4e00"]
        files = [FileNode(n.encode(), D1, 1, False) for n in names]
        expected = pb_directory(
            pb_file(n.encode(), D1, 1, False) for n in sorted(names, key=str.encode)
        )
        assert Directory.build(files=files).encode() == expected


class TestDecode:
    @settings(max_examples=150, deadline=None)
    @given(trees())
    def test_round_trip_any_names(self, spec):
        # encode -> decode -> encode is the identity, non-UTF-8 names included
        files, dirs, links = [], [], []
        for name, node in spec.items():
            if isinstance(node, File):
                files.append(FileNode(name, Digest.of_bytes(node.data), len(node.data), node.exe))
            elif isinstance(node, Link):
                links.append(SymlinkNode(name, node.target))
            else:
                dirs.append(DirectoryNode(name, *model_digest(node)))
        tree = Directory.build(files, dirs, links)
        data = tree.encode()
        assert Directory.decode(data) == tree
        assert Directory.decode(data).encode() == data

    def test_decodes_protobuf_output(self):
        data = pb_directory(
            [pb_file(b"a", D1, 3, True), pb_file(b"b", D2, 0, False)],
            [pb_dir(b"c", D2, 9)],
            [pb_link(b"d", b"a")],
        )
        assert Directory.decode(data) == Directory(
            files=(FileNode(b"a", D1, 3, True), FileNode(b"b", D2, 0, False)),
            directories=(DirectoryNode(b"c", D2, 9),),
            symlinks=(SymlinkNode(b"d", b"a"),),
        )


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _ld(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _raw_digest(digest: Digest, size: int, extra: bytes = b"") -> bytes:
    body = _ld(1, digest.hex.encode()) + (_varint(2 << 3) + _varint(size) if size else b"")
    return body + extra


def _raw_file(name: bytes, extra: bytes = b"", digest: bytes | None = None) -> bytes:
    return _ld(1, _ld(1, name) + _ld(2, digest or _raw_digest(D1, 3)) + extra)


_FBODY = _ld(1, b"a") + _ld(2, _raw_digest(D1, 3))
GOOD = pb_directory([pb_file(b"a", D1, 3, False)], [pb_dir(b"d", D2, 5)], [pb_link(b"l", b"t")])

NON_CANONICAL = {
    "files-unsorted": pb_directory([pb_file(b"b", D1, 3, False), pb_file(b"a", D1, 3, False)]),
    "dirs-unsorted": pb_directory(dirs=[pb_dir(b"b", D1, 3), pb_dir(b"a", D1, 3)]),
    "links-unsorted": pb_directory(links=[pb_link(b"b", b"t"), pb_link(b"a", b"t")]),
    "duplicate-file": pb_directory([pb_file(b"a", D1, 3, False), pb_file(b"a", D2, 3, False)]),
    "duplicate-dir": pb_directory(dirs=[pb_dir(b"a", D1, 3), pb_dir(b"a", D1, 3)]),
    "file-and-dir-same-name": pb_directory([pb_file(b"a", D1, 3, False)], [pb_dir(b"a", D2, 5)]),
    "dir-and-link-same-name": pb_directory(dirs=[pb_dir(b"a", D1, 3)], links=[pb_link(b"a", b"t")]),
    "unknown-directory-field": GOOD + _ld(5, b""),  # REAPI node_properties: not in our model
    "unknown-varint-field": GOOD + _varint(9 << 3) + b"\x01",
    "unknown-file-field": _raw_file(b"a", extra=_ld(6, b"")),
    "unknown-digest-field": _raw_file(b"a", digest=_raw_digest(D1, 3, _varint(3 << 3) + b"\x01")),
    "trailing-zero": GOOD + b"\x00",
    "trailing-garbage": GOOD + b"\xff\xff",
    "truncated": GOOD[:-1],
    "explicit-false-exec": _raw_file(b"a", extra=b"\x20\x00"),
    "exec-not-bool": _raw_file(b"a", extra=b"\x20\x02"),
    "explicit-zero-size": _raw_file(
        b"a", digest=_ld(1, D1.hex.encode()) + _varint(2 << 3) + b"\x00"
    ),
    "overlong-varint-length": b"\x0a" + bytes([len(_FBODY) | 0x80, 0]) + _FBODY,
    "uppercase-hash": _raw_file(b"a", digest=_ld(1, D1.hex.upper().encode())),
    "short-hash": _raw_file(b"a", digest=_ld(1, D1.hex[:-2].encode())),
    "no-digest": _ld(1, _ld(1, b"a")),
    "no-name": _ld(1, _ld(2, _raw_digest(D1, 3))),
    "name-twice": _ld(1, _ld(1, b"a") + _ld(1, b"b") + _ld(2, _raw_digest(D1, 3))),
    "name-as-varint": _ld(1, _varint(1 << 3) + b"\x05" + _ld(2, _raw_digest(D1, 3))),
    "size-as-bytes": _raw_file(b"a", digest=_ld(1, D1.hex.encode()) + _ld(2, b"\x03")),
    "hash-as-varint": _raw_file(b"a", digest=_varint(1 << 3) + b"\x07"),
    "exec-as-bytes": _raw_file(b"a", extra=_ld(4, b"\x01")),
    "target-as-varint": _ld(3, _ld(1, b"l") + _varint(2 << 3) + b"\x01"),
    "files-as-varint": _varint(1 << 3) + b"\x01",
    "fixed64-wire-type": _varint(1 << 3 | 1) + b"\x00" * 8,
    "empty-symlink-target": _ld(3, _ld(1, b"l") + _ld(2, b"")),
    "symlink-without-target": _ld(3, _ld(1, b"l")),
    "not-protobuf": b"hello, world",
}

BAD_NAMES = {
    "empty": b"",
    "dot": b".",
    "dotdot": b"..",
    "slash": b"a/b",
    "nul": b"a\0b",
}


class TestDecodeRejects:
    def test_good_fixture_decodes(self):
        # guards the fixtures below: they differ from a valid encoding in one respect only
        assert Directory.decode(GOOD).encode() == GOOD
        assert Directory.decode(_raw_file(b"a"))

    @pytest.mark.parametrize("data", NON_CANONICAL.values(), ids=NON_CANONICAL.keys())
    def test_non_canonical(self, data):
        with pytest.raises(MalformedTree) as info:
            Directory.decode(data)
        assert info.value.reason == "malformed-tree"
        assert isinstance(info.value, StoreError)

    @pytest.mark.parametrize(
        ("name", "where"),
        [(b"", "file"), (b".", "dir"), (b"..", "symlink"), (b"a/b", "file"), (b"a\0b", "dir")],
        ids=["empty", "dot", "dotdot", "slash", "nul"],
    )
    def test_invalid_names(self, name, where):
        # decode's contract: anything but a canonical, valid encoding is MalformedTree
        data = {
            "file": _raw_file(name),
            "dir": _ld(2, _ld(1, name) + _ld(2, _raw_digest(D1, 3))),
            "symlink": _ld(3, _ld(1, name) + _ld(2, b"t")),
        }[where]
        with pytest.raises(MalformedTree) as info:
            Directory.decode(data)
        assert info.value.reason == "malformed-tree"

    def test_symlink_target_with_nul(self):
        # no filesystem can hold it: checkout would fail with a bare ValueError
        with pytest.raises(MalformedTree):
            Directory.decode(_ld(3, _ld(1, b"l") + _ld(2, b"a\0b")))


class TestBuild:
    def test_sorts_each_group_by_bytes(self):
        tree = Directory.build(
            files=[FileNode(b"b", D1, 3, False), FileNode(b"\xff", D1, 3, False)]
            + [FileNode(b"B", D1, 3, False)],
            directories=[DirectoryNode(b"z", D2, 1), DirectoryNode(b"c", D2, 1)],
            symlinks=[SymlinkNode(b"y", b"t"), SymlinkNode(b"x", b"t")],
        )
        assert [f.name for f in tree.files] == [b"B", b"b", b"\xff"]
        assert [d.name for d in tree.directories] == [b"c", b"z"]
        assert [s.name for s in tree.symlinks] == [b"x", b"y"]

    def test_order_of_input_does_not_matter(self):
        nodes = [FileNode(bytes([c]), D1, 3, c % 2 == 0) for c in b"qwertyuiop"]
        assert Directory.build(nodes).encode() == Directory.build(nodes[::-1]).encode()

    @pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
    def test_rejects_bad_names(self, name):
        with pytest.raises(InvalidName) as info:
            Directory.build(files=[FileNode(name, D1, 3, False)])
        assert info.value.reason == "invalid-name"

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"files": [FileNode(b"a", D1, 3, False), FileNode(b"a", D2, 3, True)]},
            {"files": [FileNode(b"a", D1, 3, False)], "symlinks": [SymlinkNode(b"a", b"t")]},
            {"directories": [DirectoryNode(b"a", D1, 3)], "symlinks": [SymlinkNode(b"a", b"t")]},
        ],
        ids=["two-files", "file-and-link", "dir-and-link"],
    )
    def test_rejects_duplicates(self, kwargs):
        with pytest.raises(MalformedTree) as info:
            Directory.build(**kwargs)
        assert info.value.reason == "malformed-tree"

    def test_children_are_files_and_subtrees(self):
        tree = Directory.build(
            files=[FileNode(b"a", D1, 3, False)],
            directories=[DirectoryNode(b"d", D2, 1)],
            symlinks=[SymlinkNode(b"l", D1.hex.encode())],
        )
        assert sorted(tree.children()) == sorted([D1, D2])


class TestDigestSensitivity:
    """The encoding changes with every fact a tree holds (and only those)."""

    BASE = {b"a": File(b"data", False), b"d": {b"x": File(b"", True)}, b"l": Link(b"a")}

    @pytest.mark.parametrize(
        "changed",
        [
            {**BASE, b"a": File(b"dat\x61\x00", False)},
            {**BASE, b"a": File(b"data", True)},
            {**BASE, b"l": Link(b"b")},
            {b"A": File(b"data", False), b"d": BASE[b"d"], b"l": BASE[b"l"]},
            {**BASE, b"d": {b"x": File(b"", False)}},
            {**BASE, b"d": {b"x": File(b"", True), b"y": Link(b"x")}},
            {**BASE, b"d": {}},
            {**BASE, b"e": {}},
        ],
        ids=["content", "exec", "target", "name", "nested-exec", "nested-link", "emptied", "empty"],
    )
    def test_each_change_changes_the_digest(self, changed):
        assert model_digest(changed) != model_digest(self.BASE)


# -- the plain-tuple forms ingest and checkout use -------------------------------------------
_entry_names = st.lists(names, min_size=0, max_size=12, unique=True)


@st.composite
def directories(draw) -> Directory:
    """A valid Directory with a mix of files, subdirectories and symlinks."""
    pool = draw(_entry_names)
    kinds = draw(st.lists(st.sampled_from("fdl"), min_size=len(pool), max_size=len(pool)))
    digest = st.binary(min_size=32, max_size=32).map(Digest)
    size = st.one_of(st.just(0), st.integers(1, 127), st.integers(128, 2**63 - 1))
    files, dirs, links = [], [], []
    for name, kind in zip(pool, kinds, strict=True):
        if kind == "f":
            files.append(FileNode(name, draw(digest), draw(size), draw(st.booleans())))
        elif kind == "d":
            dirs.append(DirectoryNode(name, draw(digest), draw(size)))
        else:
            target = draw(st.binary(min_size=1, max_size=300).filter(lambda t: b"\0" not in t))
            links.append(SymlinkNode(name, target))
    return Directory.build(files, dirs, links)


def _mutate(data: bytes, draw) -> bytes:
    how = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]))
    at = draw(st.integers(0, max(len(data) - 1, 0)))
    if how == "flip" and data:
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    if how == "set" and data:
        return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    if how == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    if how == "delete" and data:
        return data[:at] + data[at + draw(st.integers(1, 4)) :]
    if how == "truncate":
        return data[:at]
    return data + draw(st.binary(min_size=1, max_size=4))


class TestPlainTupleForms:
    @settings(max_examples=300, deadline=None)
    @given(directories())
    def test_encode_listing_writes_what_build_encode_writes(self, tree):
        shuffled = (
            [(f.name, f.digest.raw, f.size, f.executable) for f in reversed(tree.files)],
            [(d.name, d.digest.raw, d.size) for d in reversed(tree.directories)],
            [(s.name, s.target) for s in reversed(tree.symlinks)],
        )
        assert encode_listing(*shuffled) == tree.encode()

    @settings(max_examples=300, deadline=None)
    @given(directories())
    def test_parse_listing_reads_what_encode_writes(self, tree):
        files, dirs, links = parse_listing(tree.encode())
        assert files == [(f.name, f.digest.hex.encode(), f.size, f.executable) for f in tree.files]
        assert dirs == [(d.name, d.digest.hex.encode(), d.size) for d in tree.directories]
        assert links == [(s.name, s.target) for s in tree.symlinks]
        assert Directory.decode(tree.encode()) == tree

    @settings(max_examples=800, deadline=None)
    @given(directories(), st.data())
    def test_only_canonical_encodings_decode(self, tree, data):
        # whatever a mutation makes, decoding either fails or gives back the same bytes
        mutated = _mutate(tree.encode(), data.draw)
        try:
            decoded = Directory.decode(mutated)
        except MalformedTree:
            return
        assert decoded.encode() == mutated

    @pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
    def test_encode_listing_rejects_bad_names(self, name):
        with pytest.raises(InvalidName):
            encode_listing([(name, D1.raw, 3, False)])

    @pytest.mark.parametrize(
        "args",
        [
            ([(b"a", D1.raw, 3, False), (b"a", D2.raw, 3, True)], [], []),
            ([(b"a", D1.raw, 3, False)], [], [(b"a", b"t")]),
            ([], [(b"a", D1.raw, 3)], [(b"a", b"t")]),
            ([], [], [(b"l", b"")]),
            ([], [], [(b"l", b"a\0b")]),
        ],
        ids=["two-files", "file-and-link", "dir-and-link", "empty-target", "nul-target"],
    )
    def test_encode_listing_rejects_what_build_rejects(self, args):
        with pytest.raises(MalformedTree):
            encode_listing(*args)
