"""Digest: ``sha256:<64 lowercase hex>`` of an object's exact bytes."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seal.store import Digest, InvalidDigest, StoreError

EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ABC = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
HEX = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


class TestOfBytes:
    @pytest.mark.parametrize(("data", "text"), [(b"", EMPTY), (b"abc", ABC)])
    def test_known_vectors(self, data, text):
        assert str(Digest.of_bytes(data)) == text

    @pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
    def test_accepts_buffers(self, kind):
        assert Digest.of_bytes(kind(b"abc")) == Digest.parse(ABC)

    @given(st.binary(max_size=4096))
    def test_matches_hashlib_and_round_trips(self, data):
        d = Digest.of_bytes(data)
        assert d.raw == hashlib.sha256(data).digest()
        assert d.hex == hashlib.sha256(data).hexdigest()
        assert Digest.parse(str(d)) == d
        assert Digest.from_hex(d.hex) == d


class TestParse:
    def test_round_trip(self):
        d = Digest.parse(ABC)
        assert str(d) == ABC
        assert d.hex == HEX
        assert len(d.raw) == 32
        assert repr(d) == f"Digest({ABC!r})"

    def test_from_hex_is_the_reapi_form(self):
        assert Digest.from_hex(HEX) == Digest.parse(ABC)

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "sha256:",
            "sha256",
            HEX,  # no algorithm prefix
            "sha256:" + HEX[:-1],  # 63 digits
            "sha256:" + HEX + "0",  # 65 digits
            "sha256:" + HEX.upper(),  # uppercase is not canonical
            "sha256:" + HEX[:-1] + "g",  # not hex
            "sha256:" + HEX[:-1] + "٣",  # a non-ASCII digit
            "SHA256:" + HEX,
            "sha512:" + HEX,
            "sha1:" + HEX[:40],
            "sha256 :" + HEX,
            " sha256:" + HEX,
            "sha256:" + HEX + "\n",
            "sha256:" + HEX[:32] + " " + HEX[33:],
            "sha256:-" + HEX[1:],
        ],
        ids=repr,
    )
    def test_malformed_strings(self, text):
        with pytest.raises(InvalidDigest) as info:
            Digest.parse(text)
        assert info.value.reason == "invalid-digest"
        assert isinstance(info.value, StoreError)
        assert isinstance(info.value, ValueError)

    @pytest.mark.parametrize("value", [None, 42, ABC.encode(), ["sha256:"]], ids=repr)
    def test_non_strings(self, value):
        with pytest.raises(InvalidDigest) as info:
            Digest.parse(value)
        assert info.value.reason == "invalid-digest"

    @pytest.mark.parametrize("hexpart", ["", HEX.upper(), HEX[:10], "z" * 64])
    def test_from_hex_malformed(self, hexpart):
        with pytest.raises(InvalidDigest):
            Digest.from_hex(hexpart)


class TestValue:
    def test_equality_and_hash(self):
        a, b = Digest.parse(ABC), Digest.of_bytes(b"abc")
        assert a == b and hash(a) == hash(b)
        assert a != Digest.parse(EMPTY)
        assert len({a, b, Digest.parse(EMPTY)}) == 2

    def test_frozen(self):
        d = Digest.parse(ABC)
        with pytest.raises(dataclasses.FrozenInstanceError):
            d.raw = b"\0" * 32

    def test_ordering_follows_bytes(self):
        ds = [Digest.of_bytes(bytes([i])) for i in range(20)]
        assert [d.raw for d in sorted(ds)] == sorted(d.raw for d in ds)
