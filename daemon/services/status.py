"""Errors -> gRPC status, in one table and one decorator that every servicer method wears.

A failed call ends with a status code, a one-line message a person can act
on, and trailing metadata ``seal-reason`` (the error's stable kebab-case
reason) and, when there is one, ``seal-hint``.  Clients branch on the code
and the reason, never on the message.  An unexpected exception becomes
INTERNAL: its traceback goes to the daemon's log, one line to the client.
No bad request ends the daemon.

>>> class Servicer:
...     in_flight = InFlight()
...     @mapped
...     def Stat(self, request, context): ...
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading

import grpc

from seal.daemon import errors as daemon_errors
from seal.store import errors as store_errors
from seal.store.tree import MalformedTree

log = logging.getLogger("seal.daemon")

REASON_KEY = "seal-reason"
HINT_KEY = "seal-hint"

_C = grpc.StatusCode
# First match wins: subclasses before their bases.
_CODES: list[tuple[type[Exception], grpc.StatusCode]] = [
    (store_errors.InvalidDigest, _C.INVALID_ARGUMENT),
    (store_errors.InvalidName, _C.INVALID_ARGUMENT),
    (MalformedTree, _C.INVALID_ARGUMENT),
    (store_errors.UnsupportedFile, _C.INVALID_ARGUMENT),
    (store_errors.NotATree, _C.INVALID_ARGUMENT),
    (store_errors.ObjectNotFound, _C.NOT_FOUND),
    (store_errors.DigestMismatch, _C.DATA_LOSS),
    (store_errors.CorruptObject, _C.DATA_LOSS),
    (daemon_errors.InputCorrupt, _C.DATA_LOSS),
    (store_errors.IncompleteTree, _C.FAILED_PRECONDITION),
    (store_errors.StoreLocked, _C.UNAVAILABLE),
    (store_errors.StoreVersionError, _C.FAILED_PRECONDITION),
    (store_errors.StoreMissing, _C.NOT_FOUND),
    # the store raises its base class for a few refusals (read-only, a recorded
    # object whose file is gone, ...): the store's state, not the request, is at fault
    (store_errors.StoreError, _C.FAILED_PRECONDITION),
    (daemon_errors.InvalidDocument, _C.INVALID_ARGUMENT),
    (daemon_errors.InvalidRequest, _C.INVALID_ARGUMENT),
    (daemon_errors.InvalidRootName, _C.INVALID_ARGUMENT),
    (daemon_errors.TooLarge, _C.RESOURCE_EXHAUSTED),
    (daemon_errors.OutOfRange, _C.OUT_OF_RANGE),
    (daemon_errors.LeaseNotFound, _C.NOT_FOUND),
    (daemon_errors.RootNotFound, _C.NOT_FOUND),
    (daemon_errors.HandoffUnknown, _C.NOT_FOUND),
    (daemon_errors.SocketInUse, _C.UNAVAILABLE),
    (daemon_errors.MissingInput, _C.NOT_FOUND),
    (daemon_errors.BuildCancelled, _C.CANCELLED),
    (daemon_errors.DaemonError, _C.FAILED_PRECONDITION),
]


def code_for(exc: BaseException) -> grpc.StatusCode | None:
    """The status code for a known error, or None for an unexpected exception."""
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return None


def _abort(context: grpc.ServicerContext, exc: Exception, method: str) -> None:
    """End the call with the status ``exc`` maps to (raises, as ``context.abort`` does)."""
    code = code_for(exc)
    if code is None:
        log.exception("%s failed unexpectedly", method)
        reason, hint = "internal", "this is a bug in seal; the daemon's log has the traceback"
        message = f"internal error in the seal daemon: {type(exc).__name__}: {exc}"
        code = _C.INTERNAL
    else:
        reason, hint, message = exc.reason, exc.hint, exc.message  # type: ignore[attr-defined]
        if isinstance(exc, daemon_errors.InvalidDocument):  # str() says which file and line
            message = str(exc)
        log.info("%s: %s (%s)", method, message, reason)
    metadata = [(REASON_KEY, reason)]
    if hint:
        metadata.append((HINT_KEY, hint))
    context.set_trailing_metadata(tuple(metadata))
    context.abort(code, " ".join(message.splitlines()) or reason)


class InFlight:
    """Counts calls in progress so shutdown can wait until none touches the store."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    def __enter__(self) -> None:
        with self._idle:
            self._count += 1

    def __exit__(self, *exc) -> None:
        with self._idle:
            self._count -= 1
            if self._count == 0:
                self._idle.notify_all()

    @property
    def count(self) -> int:
        return self._count

    def wait_idle(self, timeout: float) -> bool:
        """True once no call runs; False if some still do after ``timeout`` seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout)


def _client_gone(exc: Exception) -> bool:
    # Reading the request stream of a cancelled call raises a bare grpc.RpcError.
    return isinstance(exc, grpc.RpcError)


def mapped(method):
    """Wrap a servicer method (plain or generator) so errors end the call with a mapped status.

    The servicer must have an ``in_flight`` attribute (an InFlight).
    """
    name = method.__name__
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def stream_wrapper(self, request, context):
            with self.in_flight:
                try:
                    yield from method(self, request, context)
                except Exception as exc:
                    if _client_gone(exc):
                        return
                    _abort(context, exc, name)

        return stream_wrapper

    @functools.wraps(method)
    def wrapper(self, request, context):
        with self.in_flight:
            try:
                return method(self, request, context)
            except Exception as exc:
                if _client_gone(exc):
                    context.abort(_C.CANCELLED, "the client cancelled the call")
                _abort(context, exc, name)

    return wrapper
