"""gRPC servicers of the daemon: convert, delegate, convert back; errors map in ``status``.

>>> from seal.daemon.services import InFlight, StoreServicer       # doctest: +SKIP
>>> servicer = StoreServicer(store, uploads, InFlight())           # doctest: +SKIP
"""

from .build import BuildServicer, QueryServicer
from .daemon import DaemonServicer, Identity
from .images import ImagesServicer
from .inputs import InputsServicer
from .status import HINT_KEY, REASON_KEY, InFlight, code_for, mapped
from .store import StoreServicer

__all__ = [
    "BuildServicer",
    "QueryServicer",
    "DaemonServicer",
    "HINT_KEY",
    "Identity",
    "ImagesServicer",
    "InFlight",
    "InputsServicer",
    "REASON_KEY",
    "StoreServicer",
    "code_for",
    "mapped",
]
