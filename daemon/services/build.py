"""The seal.v1.Build and seal.v1.Query servicers: convert, delegate to the realizer, convert back.

A Realize or Check stream is one realizer session; when the client goes away
(cancel, disconnect) the session is cancelled, and with it every build that
no other client still waits for.
"""

from __future__ import annotations

from collections.abc import Mapping

from seal.daemon.build.realizer import (
    FinishedEvent,
    LogEvent,
    PlanEvent,
    Realizer,
    ResultEvent,
    StartedEvent,
)
from seal.daemon.build.records import BuildRecord, CheckResult, Realisation
from seal.daemon.build.sandbox import Limits
from seal.daemon.errors import InvalidRequest, TooLarge
from seal.proto.v1 import build_pb2 as pb
from seal.proto.v1 import build_pb2_grpc as pb_grpc
from seal.store import Digest, ObjectNotFound

from .status import InFlight, mapped

CHUNK = 1 << 20
MAX_DOCUMENTS = 1000


def _documents(docs) -> dict[str, bytes]:
    if len(docs) > MAX_DOCUMENTS:
        raise TooLarge(f"{len(docs)} derivation documents in one request (at most {MAX_DOCUMENTS})")
    out: dict[str, bytes] = {}
    for doc in docs:
        if not doc.name or doc.name in out:
            raise InvalidRequest(f"derivation document name {doc.name!r} is empty or repeated")
        out[doc.name] = doc.json
    return out


def _limits(req: pb.BuildLimits, maxima: Limits) -> Limits:
    def pick(asked, most, what: str, unit: str):
        if not asked:
            return most
        if asked < 0 or asked > most:
            raise InvalidRequest(f"{what} {asked} {unit} is above the daemon's maximum {most}")
        return asked

    return Limits(
        timeout=pick(req.timeout_seconds, maxima.timeout, "timeout", "s"),
        max_output_bytes=pick(req.max_output_bytes, maxima.max_output_bytes, "output limit", "B"),
        max_processes=pick(req.max_processes, maxima.max_processes, "process limit", ""),
    )


def _map(outputs: Mapping) -> dict[str, str]:
    return {k: str(v) for k, v in outputs.items()}


def realisation_pb(real: Realisation) -> pb.Realisation:
    return pb.Realisation(
        drv=real.drv,
        outputs=real.outputs,
        log=real.log,
        build_id=real.build_id,
        started=real.started,
        duration_seconds=real.duration,
    )


def check_pb(c: CheckResult) -> pb.CheckResult:
    return pb.CheckResult(
        drv=c.drv,
        reproducible=c.reproducible,
        expected=c.expected,
        actual=c.actual,
        differing=c.differing,
        diffoscope=c.diffoscope,
        time=c.time,
        log=c.log,
        build_id=c.build_id,
    )


def build_pb(b: BuildRecord) -> pb.BuildRecord:
    return pb.BuildRecord(
        id=b.id,
        drv=b.drv,
        name=b.name,
        started=b.started,
        duration_seconds=b.duration,
        status=b.status,
        reason=b.reason,
        outputs=b.outputs,
        log=b.log,
        check=b.check,
    )


def event_pb(event) -> pb.BuildEvent:
    if isinstance(event, LogEvent):
        return pb.BuildEvent(log=pb.LogChunk(drv=str(event.drv), data=event.data))
    if isinstance(event, PlanEvent):
        return pb.BuildEvent(
            plan=pb.Plan(
                target=str(event.target),
                to_build=[str(d) for d in event.to_build],
                cached=[str(d) for d in event.cached],
            )
        )
    if isinstance(event, StartedEvent):
        return pb.BuildEvent(
            started=pb.BuildStarted(
                drv=str(event.drv), name=event.name, build_id=event.build_id, check=event.check
            )
        )
    if isinstance(event, FinishedEvent):
        return pb.BuildEvent(
            finished=pb.BuildFinished(
                drv=str(event.drv),
                build_id=event.build_id,
                ok=event.ok,
                reason=event.reason,
                outputs=_map(event.outputs),
                log=str(event.log) if event.log else "",
                duration_seconds=event.duration,
            )
        )
    assert isinstance(event, ResultEvent)
    result = pb.Result(
        drv=str(event.drv),
        outputs=_map(event.outputs),
        log=str(event.log) if event.log else "",
        cached=event.cached,
    )
    if event.check is not None:
        result.check.CopyFrom(check_pb(event.check))
    return pb.BuildEvent(result=result)


class BuildServicer(pb_grpc.BuildServicer):
    def __init__(self, realizer: Realizer, in_flight: InFlight):
        self._realizer = realizer
        self.in_flight = in_flight

    def _session(self, request, context, *, check: bool):
        target = self._realizer.resolve_target(request.target, _documents(request.documents))
        limits = _limits(request.limits, self._realizer.config.limits)
        session = self._realizer.session(
            target, check=check, root=request.root or None, limits=limits
        )
        context.add_callback(session.cancel)  # runs when the call ends, cancelled or not
        return session

    @mapped
    def Realize(self, request, context):
        for event in self._session(request, context, check=False):
            yield event_pb(event)

    @mapped
    def Check(self, request, context):
        for event in self._session(request, context, check=True):
            yield event_pb(event)


class QueryServicer(pb_grpc.QueryServicer):
    def __init__(self, realizer: Realizer, in_flight: InFlight):
        self._realizer = realizer
        self._records = realizer.records
        self.in_flight = in_flight

    def _drv(self, request) -> Digest:
        return self._realizer.resolve_target(request.drv, _documents(request.documents))

    @mapped
    def GetDerivation(self, request, context):
        digest = self._drv(request)
        drv = self._realizer.load(digest)
        info = pb.DerivationInfo(drv=str(digest), json=drv.canonical)
        real = self._records.realisation(digest)
        if real is not None:
            info.realisation.CopyFrom(realisation_pb(real))
        info.checks.extend(check_pb(c) for c in self._records.checks(digest))
        return info

    @mapped
    def GetLog(self, request, context):
        digest = self._drv(request)
        builds = [b for b in self._records.builds(digest, limit=1) if b.log]
        if not builds:
            raise ObjectNotFound(
                f"derivation {digest}", hint="it was never built here: seal realize FILE"
            )
        with self._realizer.store.open_blob(Digest.parse(builds[0].log)) as f:
            while chunk := f.read(CHUNK):
                yield pb.LogChunk(drv=str(digest), data=chunk)

    @mapped
    def ListBuilds(self, request, context):
        drv = Digest.parse(request.drv) if request.drv else None
        limit = request.limit or 100
        builds = self._records.builds(drv, limit=min(limit, 10_000))
        return pb.ListBuildsResponse(builds=[build_pb(b) for b in builds])
