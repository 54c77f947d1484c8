"""Writing the few TOML values seal's lock files hold, in one canonical layout.

    key_value("urls", ("https://a", "https://b"))   # 'urls = [\n    "https://a",\n ...]\n'

Both ``lockfile`` and ``pylock`` write fixed schemas, so this covers text,
integers, UTC date-times and arrays of those; an array of two or more elements
gets one element a line, which keeps diffs of a re-lock small.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def key_value(key: str, value: Any) -> str:
    """``key = value`` and a newline; ``key`` must be a bare key."""
    return f"{key} = {toml_value(value)}\n"


def toml_value(value: Any) -> str:
    """A TOML value: text, integer, date-time (UTC, ``Z``) or array (one element a line if 2+)."""
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, tuple | list):
        if len(value) < 2:
            return "[" + "".join(toml_value(v) for v in value) + "]"
        return "[\n" + "".join(f"    {toml_value(v)},\n" for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def toml_string(text: str) -> str:
    """A TOML basic string: quote, backslash and control characters escaped."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
