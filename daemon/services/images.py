"""The seal.v1.Images servicer: config + lock -> plan -> realize -> the image's store objects.

The plan is ``seal.daemon.build.planner``'s; realizing is one realizer session,
whose events pass through as they come.  The image step's output tree holds
the archive and its reports; the session roots it as ``image/<name>`` only
when every step succeeded, so a failed build roots nothing new.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from seal.daemon.build.realizer import Realizer, ResultEvent
from seal.daemon.errors import BuildFailed
from seal.proto.v1 import build_pb2 as pb
from seal.proto.v1 import build_pb2_grpc as pb_grpc
from seal.store import Digest

from .build import _limits, check_pb, event_pb
from .status import InFlight, mapped

if TYPE_CHECKING:
    from seal.daemon.build import planner


class ImagesServicer(pb_grpc.ImagesServicer):
    def __init__(self, realizer: Realizer, in_flight: InFlight):
        self._realizer = realizer
        self._store = realizer.store
        self.in_flight = in_flight

    def _plan(self, request) -> tuple[planner.Plan, str]:
        # imported here, not at start-up (see services.inputs)
        from seal.daemon.build import planner
        from seal.daemon.inputs import lockfile
        from seal.daemon.inputs.config import parse_config
        from seal.daemon.inputs.lockfile import LockError

        config = parse_config(request.config_text.decode("utf-8", "replace"), request.config_file)
        lock = lockfile.loads(request.lock_text.decode("utf-8", "replace"), request.lock_file)
        stale = lockfile.check(lock, config)
        if stale:
            raise LockError(
                f"{request.lock_file} no longer matches {request.config_file}: {stale[0]}",
                hint=f"run 'seal lock {request.config_file}' again",
            )
        app = Digest.parse(request.app_tree) if request.app_tree else None
        return planner.plan(config, lock, app=app), f"image/{config.name}"

    @mapped
    def BuildImage(self, request, context):
        plan, root = self._plan(request)
        target = self._realizer.add_documents(plan.documents, plan.target)
        limits = _limits(request.limits, self._realizer.config.limits)
        session = self._realizer.session(target, root=root, limits=limits)
        context.add_callback(session.cancel)
        result: ResultEvent | None = None
        for event in session:
            if isinstance(event, ResultEvent):
                result = event
            else:
                yield pb.ImageBuildEvent(build=event_pb(event))
        assert result is not None
        built = self._built(result.outputs["out"], root, plan, result.cached)
        if request.check:  # the first build is the reference each rebuild is compared with
            checks = yield from self._check_all(target, limits, context)
            built.checks.extend(checks)
        yield pb.ImageBuildEvent(built=built)

    def _check_all(self, target: Digest, limits, context):
        """Rebuild each step that is not a download, dependencies first, and compare."""
        results = []
        for digest, drv in self._realizer.plan(target):
            if drv.is_fixed:
                continue
            session = self._realizer.session(digest, check=True, limits=limits)
            context.add_callback(session.cancel)
            for event in session:
                if isinstance(event, ResultEvent):
                    results.append(check_pb(event.check))
                else:
                    yield pb.ImageBuildEvent(build=event_pb(event))
        return results

    def _built(self, out: Digest, root: str, plan: planner.Plan, cached: bool) -> pb.ImageBuilt:
        from seal.daemon.build.image_builtins import HARDENING_JSON, IMAGE_JSON, IMAGE_TAR

        files = {e.path.decode(): e for e in self._store.walk(out) if e.kind == "file"}
        missing = {IMAGE_TAR, IMAGE_JSON, HARDENING_JSON} - set(files)
        if missing:
            raise BuildFailed(f"the image step's output lacks {', '.join(sorted(missing))}")
        summary = json.loads(self._store.get_bytes(files[IMAGE_JSON].digest))
        archive = files[IMAGE_TAR]
        return pb.ImageBuilt(
            manifest_digest=summary["manifest"],
            archive=str(archive.digest),
            archive_size=archive.size,
            hardening=str(files[HARDENING_JSON].digest),
            summary=str(files[IMAGE_JSON].digest),
            output=str(out),
            root=root,
            source_date_epoch=plan.source_date_epoch,
            cached=cached,
        )
