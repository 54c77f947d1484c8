"""Object identity: ``sha256:<64 lowercase hex>`` of an object's exact bytes.

This is the one module of the store that the client imports too.

>>> d = Digest.of_bytes(b"")
>>> str(d)
'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
>>> Digest.parse(str(d)) == d
True
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass

from .errors import InvalidDigest

ALGORITHM = "sha256"
PREFIX = ALGORITHM + ":"
HEX_LENGTH = 64
_HEX = frozenset(string.hexdigits.lower())


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    """A SHA-256 content digest; the raw constructor trusts its input (32 bytes)."""

    raw: bytes

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``sha256:<hex>``; raise InvalidDigest naming what is wrong."""
        if not isinstance(text, str) or not text.startswith(PREFIX):
            raise InvalidDigest(
                f"malformed digest {text!r}: expected 'sha256:' followed by 64 hex digits"
            )
        hexpart = text[len(PREFIX) :]
        if len(hexpart) != HEX_LENGTH or not _HEX.issuperset(hexpart):
            raise InvalidDigest(
                f"malformed digest {text!r}: expected 64 lowercase hex digits after 'sha256:'"
            )
        return cls(bytes.fromhex(hexpart))

    @classmethod
    def from_hex(cls, hexpart: str) -> Digest:
        """Digest from bare lowercase hex (the REAPI ``Digest.hash`` form)."""
        return cls.parse(PREFIX + hexpart)

    @classmethod
    def of_bytes(cls, data: bytes | bytearray | memoryview) -> Digest:
        return cls(hashlib.sha256(data).digest())

    # Digests are dict keys on every hot path: hash and compare the raw bytes directly
    # rather than the tuples the dataclass would build.
    def __hash__(self) -> int:
        return hash(self.raw)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is Digest:
            return self.raw == other.raw
        return NotImplemented

    @property
    def hex(self) -> str:
        return self.raw.hex()

    def __str__(self) -> str:
        return PREFIX + self.raw.hex()

    def __repr__(self) -> str:
        return f"Digest({str(self)!r})"
