"""Reading the user's input files with a size limit, and writing results atomically."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from . import exitcodes
from .errors import ClientError


def read_limited(path: Path, what: str, limit: int) -> bytes:
    """``path``'s bytes; a clear error when it cannot be read or is over ``limit`` bytes."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise ClientError(
            f"cannot read the {what} {path}: {exc.strerror or exc}",
            reason="unreadable-input",
            exit_code=exitcodes.BAD_INPUT,
        ) from None
    if len(data) > limit:
        raise ClientError(
            f"the {what} {path} is larger than {limit >> 20} MiB",
            reason="input-too-large",
            exit_code=exitcodes.BAD_INPUT,
        )
    return data


def write_atomically(path: Path, data: bytes | Iterable[bytes]) -> None:
    """Write beside ``path``, sync, then rename over it: readers see the old file or the new."""
    chunks = [data] if isinstance(data, bytes) else data
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ClientError(
                f"cannot write {path}: {exc.strerror or exc}",
                reason="unwritable-output",
                exit_code=exitcodes.BAD_INPUT,
            ) from None
        raise
