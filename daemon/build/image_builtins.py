"""The builtins that turn fetched inputs into image parts (unpacked roots, site-packages, OCI).

Each wraps a pure function of ``seal.daemon.image``: read inputs from the store,
write into the builtin's scratch directory, put the result back as a tree.
"""

from __future__ import annotations

from collections.abc import Callable

IMAGE_BUILTINS: dict[tuple[str, int], tuple[Callable, Callable[..., None]]] = {}
