"""The seal.v1.Daemon servicer: who is serving (Status) and stopping it (Shutdown)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from seal.proto.v1 import store_pb2 as pb
from seal.proto.v1 import store_pb2_grpc as pb_grpc

from .status import InFlight, mapped


@dataclass(frozen=True)
class Identity:
    """What Status reports; fixed when the daemon starts."""

    store_path: str
    address: str  # e.g. unix:///home/u/.local/share/seal/daemon.sock
    version: str
    store_format: int
    started: float  # time.monotonic() at start
    handoff_address: str = ""  # the abstract socket for AddHandoff, or "" for none


class DaemonServicer(pb_grpc.DaemonServicer):
    def __init__(
        self,
        identity: Identity,
        request_stop: Callable[[float | None], None],
        in_flight: InFlight,
    ):
        self._identity = identity
        self._request_stop = request_stop
        self.in_flight = in_flight

    @mapped
    def Status(self, request, context):
        ident = self._identity
        return pb.StatusResponse(
            pid=os.getpid(),
            store_path=ident.store_path,
            socket=ident.address,
            uptime_seconds=time.monotonic() - ident.started,
            version=ident.version,
            store_format=ident.store_format,
            handoff_address=ident.handoff_address,
        )

    @mapped
    def Shutdown(self, request, context):
        grace = request.grace_seconds if request.grace_seconds > 0 else None
        # The stop runs in the server's main thread once this response is on its way.
        self._request_stop(grace)
        return pb.ShutdownResponse()
