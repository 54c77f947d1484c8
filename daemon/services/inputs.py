"""The seal.v1.Inputs servicer: lock a config, fetch a lock's artifacts into the store.

Locking is ``seal.daemon.inputs.locker``'s; fetching hands one fixed-output
derivation per artifact (``seal.daemon.inputs.fetch``) to the realizer, so a
download two clients ask for runs once, and a pinned artifact's SHA-256 is
its store digest: what the store holds is already fetched.
"""

from __future__ import annotations

import queue
import shutil
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from seal.daemon.build.derivation import parse
from seal.daemon.build.realizer import Realizer, ResultEvent
from seal.proto.v1 import inputs_pb2 as pb
from seal.proto.v1 import inputs_pb2_grpc as pb_grpc
from seal.store import Digest

from .status import InFlight, mapped

if TYPE_CHECKING:
    from seal.daemon.inputs import locker, lockfile

# The resolvers, index parsers and lock-file code are imported by the calls that use them,
# not at start-up: a daemon a client starts to answer one call answers it sooner.

# Sessions at once: twice the realizer's fetch slots (max_fetches), so that the next
# files' sessions are planned and waiting while the slots download.
FETCH_THREADS = 16
FETCH_RECORDS = "fetches"  # URL -> the digest (and size) it gave, JSON
VERIFIED = "verified-signatures"  # cache: one empty file per signature check passed


def _sources(msg: pb.Sources) -> locker.Sources:
    from seal.daemon.inputs import locker

    defaults = locker.Sources()
    return locker.Sources(
        pypi_index=msg.pypi_index or defaults.pypi_index,
        debian_mirror=msg.debian_mirror or defaults.debian_mirror,
        debian_suite=msg.debian_suite or defaults.debian_suite,
        debian_keyring=bytes(msg.debian_keyring) or None,
        cpython_suites=tuple(msg.cpython_suites) or defaults.cpython_suites,
        cpython_signers=tuple(sorted(msg.cpython_signers.items())),
    )


def _artifact_pb(pin: lockfile.Artifact, url: str = "") -> pb.FetchArtifact:
    return pb.FetchArtifact(
        kind=pin.kind,
        name=pin.name,
        version=pin.version,
        filename=pin.filename,
        digest=f"sha256:{pin.sha256}",
        size=pin.size,
        url=url,
    )


class InputsServicer(pb_grpc.InputsServicer):
    def __init__(self, realizer: Realizer, in_flight: InFlight):
        self._realizer = realizer
        self._store = realizer.store
        self.in_flight = in_flight

    @mapped
    def Lock(self, request, context):
        from seal.daemon.inputs import locker

        config = request.config_text.decode("utf-8", "replace")
        sources = _sources(request.sources)
        if request.check:
            lock_text = request.current_lock.decode("utf-8", "replace")
            lock_file = request.config_file + ".lock"
            stale = locker.check(config, request.config_file, lock_text, lock_file)
            return pb.LockResponse(stale=stale)
        scratch = self._store.scratch_dir("lock-")
        cache = self._store.cache_dir("pypi-metadata")
        try:
            result = locker.lock(config, request.config_file, sources, scratch, cache)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return pb.LockResponse(
            lock_text=result.lock_text.encode(),
            pylock_text=result.pylock_text.encode(),
            counts=result.counts,
        )

    @mapped
    def Fetch(self, request, context):
        from seal.daemon.inputs import fetch as fetching
        from seal.daemon.inputs import lockfile

        lock = lockfile.loads(request.lock_text.decode("utf-8", "replace"), request.lock_file)
        pins = fetching.distinct(lock.artifacts)
        digests = {p.sha256: Digest.from_hex(p.sha256) for p in pins}
        with self._store.lease() as lease:  # what is here or arrives stays until rooted
            lease.hold(list(digests.values()))
            have = {sha for sha, digest in digests.items() if self._store.has(digest)}
            todo = [p for p in pins if p.sha256 not in have]
            yield pb.FetchEvent(
                plan=pb.FetchPlan(
                    artifacts=len(pins),
                    bytes=sum(p.size for p in pins),
                    present=len(have),
                    present_bytes=sum(p.size for p in pins if p.sha256 in have),
                )
            )
            if request.offline:
                missing = [_artifact_pb(p) for p in todo]
                report = pb.FetchReport(present=len(have), missing=missing)
                if request.pylock_store_paths and not missing:
                    report.pylock_text = self._pylock(lock)
                yield pb.FetchEvent(report=report)
                return
            for pin in pins:
                if pin.sha256 in have:
                    yield pb.FetchEvent(done=_artifact_pb(pin))
            # signatures are checked whoever downloaded the files (once for the same bytes
            # and signer), as soon as what they read is here (while the rest downloads)
            fetched = yield from self._download(
                todo, context, fetching.signed_inputs(lock), lambda: self._verify(lock)
            )
            if todo:
                self._store.records(FETCH_RECORDS).put_many(fetching.url_records(todo))
            root = f"lock/{lock.config_name}"
            tree = self._store.put_directories(*fetching.tree(pins), root_name=root, lease=lease)
        report = pb.FetchReport(
            fetched=len(todo), fetched_bytes=fetched, present=len(have), tree=str(tree), root=root
        )
        if request.pylock_store_paths:
            report.pylock_text = self._pylock(lock)
        yield pb.FetchEvent(report=report)

    def _download(
        self,
        todo: list[lockfile.Artifact],
        context,
        needs: set[str],
        then: Callable[[], None],
    ):
        """Realize each artifact's fetch derivation, a few at a time; events as they end.

        ``then`` runs beside the downloads once every SHA-256 in ``needs`` is in
        the store; the call returns when both are done, and the first failure of
        either ends it.  The derivations are stored in one batch first; the files
        ``then`` needs start first, then the largest (so the last ones to finish
        are small).  Returns (as a generator's value) the bytes downloaded.
        """
        fetched = 0
        sessions: list = []
        context.add_callback(lambda: [s.cancel() for s in list(sessions)])
        targets = self._add_derivations(todo)
        order = sorted(todo, key=lambda pin: (pin.sha256 not in needs, -pin.size))
        waiting = {pin.sha256 for pin in todo} & needs
        ended: queue.SimpleQueue[tuple[Future, lockfile.Artifact | None]] = queue.SimpleQueue()

        def submit(pool: ThreadPoolExecutor, pin: lockfile.Artifact | None, fn, *args) -> Future:
            future = pool.submit(fn, *args)
            future.add_done_callback(lambda f: ended.put((f, pin)))
            return future

        with (
            ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="seal-fetch") as pool,
            ThreadPoolExecutor(1, thread_name_prefix="seal-fetch-then") as after,
        ):
            pending = {
                submit(pool, pin, self._fetch_one, targets[pin.sha256], sessions) for pin in order
            }
            if not waiting:
                pending.add(submit(after, None, then))
            try:
                while pending:
                    future, pin = ended.get()
                    pending.discard(future)
                    future.result()  # the first failure ends the call
                    if pin is None:  # ``then``
                        continue
                    fetched += pin.size
                    yield pb.FetchEvent(done=_artifact_pb(pin, pin.urls[0]))
                    if pin.sha256 in waiting:
                        waiting.discard(pin.sha256)
                        if not waiting:
                            pending.add(submit(after, None, then))
            except BaseException:
                for future in pending:
                    future.cancel()
                for session in list(sessions):  # downloads nobody else waits for stop
                    session.cancel()
                raise
        return fetched

    def _verify(self, lock: lockfile.Lock) -> None:
        """Signatures: checked on every fetch, whoever downloaded the files, unless the
        same bytes passed the same check before (a marker in the store's cache)."""
        from seal.daemon.inputs import fetch as fetching

        marker = self._store.cache_dir(VERIFIED) / fetching.verification_key(lock)
        if marker.exists():
            return
        scratch = self._store.scratch_dir("verify-")
        try:
            fetching.verify_signed(lock, self._object_path, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        marker.touch()

    def _pylock(self, lock: lockfile.Lock) -> bytes:
        from seal.daemon.inputs import pylock

        paths = {w.filename: self._object_path(w.sha256) for w in lock.select(kind="wheel")}
        return pylock.export(lock, paths=paths).encode()

    def _object_path(self, sha256: str) -> str:
        return self._store.layout.object_path(Digest.from_hex(sha256))

    def _add_derivations(self, pins: list[lockfile.Artifact]) -> dict[str, Digest]:
        """Store every pin's fetch derivation in one batch; returns sha256 -> digest."""
        from seal.daemon.inputs import fetch as fetching

        drvs = {
            pin.sha256: parse(
                fetching.derivation_document(pin), where=fetching.derivation_name(pin)
            )
            for pin in pins
        }
        self._realizer.add_derivations(list(drvs.values()))
        return {sha: drv.digest for sha, drv in drvs.items()}

    def _fetch_one(self, target: Digest, sessions: list) -> Digest:
        session = self._realizer.session(target)
        sessions.append(session)
        for event in session:
            if isinstance(event, ResultEvent):
                return event.outputs["out"]
        raise AssertionError("a realize session ended without a result")  # pragma: no cover
