"""The realizer: runs a derivation graph in dependency order, once per derivation.

Each derivation that is not realised yet becomes a *job* with its own thread;
at most ``max_jobs`` jobs build at a time (a semaphore), the others wait for
their inputs or a slot.  A client's request is a *session*: it wants every job
of its plan, receives their events (a late joiner gets the log replayed from
the start), and holds a lease on every output it has seen, so gc cannot free
an input between the build that made it and the build that reads it.  Two
sessions wanting the same derivation share its job; a job nobody wants any
more is cancelled, which kills its sandbox.

A job ends with a realisation record (or, for ``check``, a check result), the
log stored as a blob, and a build record; records never keep objects alive.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import subprocess
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from seal.daemon.errors import (
    BuildCancelled,
    BuildFailed,
    DaemonError,
    InputCorrupt,
    InvalidDerivation,
    MissingInput,
)
from seal.store import Store
from seal.store.db import Kind
from seal.store.digest import Digest
from seal.store.errors import CorruptObject, ObjectNotFound, StoreError

from . import builtins, outputs, sandbox
from .derivation import (
    Derivation,
    DrvInput,
    ObjectInput,
    SandboxBuilder,
    parse,
    resolve_documents,
    topological,
)
from .records import BuildRecords, CheckResult, Realisation
from .sandbox import Limits

log = logging.getLogger("seal.daemon.build")

DIFFOSCOPE_TIMEOUT = 120
DIFFOSCOPE_MAX = 20_000  # characters of diffoscope's report kept in a check result
MAX_DIFFERING = 200
PARSED_DERIVATIONS = 4096  # parsed derivations kept in memory, most recently used


# -- events a session yields ------------------------------------------------------------------
@dataclass(frozen=True)
class PlanEvent:
    target: Digest
    to_build: list[Digest]
    cached: list[Digest]


@dataclass(frozen=True)
class StartedEvent:
    drv: Digest
    name: str
    build_id: int
    check: bool


@dataclass(frozen=True)
class LogEvent:
    drv: Digest
    data: bytes


@dataclass(frozen=True)
class FinishedEvent:
    drv: Digest
    build_id: int
    ok: bool
    reason: str
    outputs: Mapping[str, Digest]
    log: Digest | None
    duration: float
    check: bool = False


@dataclass(frozen=True)
class ResultEvent:
    drv: Digest
    outputs: Mapping[str, Digest]
    log: Digest | None
    cached: bool
    check: CheckResult | None = None


Event = PlanEvent | StartedEvent | LogEvent | FinishedEvent | ResultEvent
_CANCELLED = object()


# -- jobs and sessions ------------------------------------------------------------------------
class _Job:
    def __init__(self, digest: Digest, drv: Derivation, *, check: bool, limits: Limits):
        self.digest = digest
        self.drv = drv
        self.check = check
        self.limits = limits
        self.lock = threading.Lock()
        self.events: list[Event] = []
        self.sessions: list[Session] = []
        self.waiters = 0
        self.cancel = threading.Event()
        self.done = threading.Event()
        self.outputs: dict[str, Digest] = {}
        self.failure: str | None = None
        self.data_loss = False  # it failed because an input's stored bytes changed
        self.check_result: CheckResult | None = None
        self.thread: threading.Thread | None = None

    @property
    def key(self) -> tuple[Digest, bool]:
        return (self.digest, self.check)

    def publish(self, event: Event) -> None:
        with self.lock:
            self.events.append(event)
            for session in self.sessions:
                session._deliver(event)

    def subscribe(self, session: Session) -> None:
        with self.lock:
            for event in self.events:
                session._deliver(event)
            self.sessions.append(session)

    def unsubscribe(self, session: Session) -> None:
        with self.lock, contextlib.suppress(ValueError):
            self.sessions.remove(session)


class Session:
    """One client's request: iterate it for events; ``cancel`` when the client goes away."""

    def __init__(
        self, realizer: Realizer, target: Digest, *, check: bool, root: str | None, limits: Limits
    ):
        self._realizer = realizer
        self.limits = limits
        self._store = realizer.store
        self.target = target
        self.check = check
        self.root = root
        self._queue: queue.Queue = queue.Queue()
        self._lease = self._store.lease()
        self._jobs: list[_Job] = []
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()
        self._queue.put(_CANCELLED)

    def _deliver(self, event: Event) -> None:
        # Runs in the publishing job's thread, before it lets go of its outputs.
        if isinstance(event, FinishedEvent) and event.ok and event.outputs:
            self._lease.hold(event.outputs.values())  # a temp root keeps all it reaches
        self._queue.put(event)

    def __iter__(self) -> Iterator[Event]:
        try:
            yield from self._run()
        finally:
            self._close()

    def _run(self) -> Iterator[Event]:
        order = self._realizer.plan(self.target)
        plan, final = self._realizer._attach(self, order)
        yield plan
        if final is None:  # everything was realised already
            real = self._realizer.records.valid_realisation(self.target)
            assert real is not None
            outs = {k: Digest.parse(v) for k, v in real.outputs.items()}
            self._apply_root(outs)
            yield ResultEvent(self.target, outs, Digest.parse(real.log), cached=True)
            return
        while True:
            event = self._queue.get()
            if event is _CANCELLED or self._cancelled.is_set():
                raise BuildCancelled("the build was cancelled")
            yield event
            if isinstance(event, FinishedEvent) and (event.drv, event.check) == final.key:
                break
            if isinstance(event, FinishedEvent) and not event.ok:
                self._fail_fast(event)
        if final.failure is not None:
            raise _failure(final, final.failure)
        if self.check:
            result = final.check_result
            assert result is not None
            outs = {k: Digest.parse(v) for k, v in result.expected.items()}
            yield ResultEvent(self.target, outs, Digest.parse(result.log), False, result)
            return
        self._apply_root(final.outputs)
        built_target = any(j.key == (self.target, False) for j in self._jobs)
        real = self._realizer.records.realisation(self.target)
        log_digest = Digest.parse(real.log) if real else None
        yield ResultEvent(self.target, dict(final.outputs), log_digest, cached=not built_target)

    def _fail_fast(self, event: FinishedEvent) -> None:
        """A step failed: the target cannot be built, so stop now (as nix does without
        --keep-going) instead of waiting for the other steps; builds that no other
        session waits for are cancelled when the session closes."""
        job = next(j for j in self._jobs if j.key == (event.drv, event.check))
        raise _failure(job, f"{job.drv.name} failed: {event.reason}")

    def _apply_root(self, outs: Mapping[str, Digest]) -> None:
        if not self.root:
            return
        for name, digest in outs.items():
            self._store.add_root(self.root if name == "out" else f"{self.root}.{name}", digest)

    def _close(self) -> None:
        for job in self._jobs:
            job.unsubscribe(self)
        self._realizer._detach(self)
        self._lease.release()


class _Slot:
    """A build slot (one of a semaphore's), given back once, when the builder is done."""

    def __init__(self, semaphore: threading.Semaphore):
        self._semaphore = semaphore
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._semaphore.release()


def _failure(job: _Job, message: str) -> BuildFailed:
    """The error a failed job's waiters see: data loss when an input's bytes changed."""
    return (InputCorrupt if job.data_loss else BuildFailed)(message, drv=str(job.digest))


def _env_cores() -> int:
    text = os.environ.get("SEAL_BUILD_CORES", "")
    return int(text) if text.isdigit() and int(text) > 0 else 0


# -- the realizer -----------------------------------------------------------------------------
@dataclass
class RealizerConfig:
    max_jobs: int = 2
    # downloads (fixed-output builtins) wait on the network, not the CPU: their own slots
    max_fetches: int = 8
    # cores each build may use ($SEAL_BUILD_CORES inside); the daemon's environment may set it
    cores: int = field(default_factory=lambda: _env_cores() or os.cpu_count() or 1)
    limits: Limits = field(default_factory=Limits)  # defaults, also the maxima a request may ask


class Realizer:
    def __init__(self, store: Store, config: RealizerConfig | None = None):
        self.store = store
        self.config = config or RealizerConfig()
        self.records = BuildRecords(store)
        self._lock = threading.Lock()
        self._jobs: dict[tuple[Digest, bool], _Job] = {}
        self._slots = threading.Semaphore(self.config.max_jobs)
        self._fetch_slots = threading.Semaphore(self.config.max_fetches)
        self._stopping = threading.Event()
        # parsing a stored derivation again (and re-serializing it to check its name) costs
        # more than the bookkeeping of a download: a plan reads each one twice
        self._parsed: OrderedDict[Digest, Derivation] = OrderedDict()
        self._parsed_lock = threading.Lock()
        interrupted = self.records.interrupted()
        if interrupted:
            log.info("%d builds were interrupted by the last daemon's end", interrupted)

    # -- derivations -------------------------------------------------------------------------
    def add_documents(self, documents: Mapping[str, bytes], target: str) -> Digest:
        """Parse and store derivations sent by a client; returns the target's digest."""
        drvs = resolve_documents(documents, target)
        sent = {d.digest for d in drvs}
        for drv in drvs:
            self._check_inputs(drv, sent)
        self.add_derivations(drvs)
        return drvs[-1].digest

    def add_derivations(self, drvs: Sequence[Derivation]) -> None:
        """Check each builtin's parameters, then store them all in one batch (one sync,
        one transaction); they are kept parsed for the sessions that follow."""
        for drv in drvs:
            builtins.validate(drv, drv.name)
        with self.store.batch() as batch:
            for drv in drvs:
                batch.add_bytes(drv.canonical)
        for drv in drvs:
            self._remember(drv)

    def _remember(self, drv: Derivation) -> None:
        with self._parsed_lock:
            self._parsed[drv.digest] = drv
            self._parsed.move_to_end(drv.digest)
            while len(self._parsed) > PARSED_DERIVATIONS:
                self._parsed.popitem(last=False)

    def resolve_target(self, target: str, documents: Mapping[str, bytes]) -> Digest:
        """A digest of a stored derivation, or the name of a document sent with the request."""
        if documents:
            return self.add_documents(documents, target)
        if target.startswith("sha256:"):
            digest = Digest.parse(target)
            self.load(digest)
            return digest
        raise InvalidDerivation(f"{target!r} is neither a derivation digest nor a document sent")

    def load(self, digest: Digest) -> Derivation:
        """The stored derivation, parsed and checked (kept parsed: it is immutable)."""
        drv = self._parsed.get(digest)
        if drv is not None and self.store.has(digest):
            return drv
        try:
            data = self.store.get_bytes(digest)
        except ObjectNotFound:
            raise MissingInput(
                f"derivation {digest} is not in the store",
                hint="send the derivation's JSON with the request (seal realize FILE)",
            ) from None
        drv = parse(data, where=str(digest))
        if drv.digest != digest:
            raise InvalidDerivation(
                "not in canonical form (RFC 8785 with defaults filled)", where=str(digest)
            )
        builtins.validate(drv, str(digest))
        self._remember(drv)
        return drv

    def _check_inputs(self, drv: Derivation, sent: set[Digest]) -> None:
        for name, inp in drv.inputs.items():
            if isinstance(inp, ObjectInput) and not self.store.has(inp.digest):
                raise MissingInput(
                    f"{drv.name}: input {name!r}: {inp.digest} is not in the store",
                    hint="add it first: seal store add PATH",
                )
            if isinstance(inp, DrvInput) and inp.drv not in sent:
                self.load(inp.drv)

    def plan(self, target: Digest) -> list[tuple[Digest, Derivation]]:
        order = topological(target, self.load)
        by_digest = dict(order)
        for digest, drv in order:
            for name, inp in drv.inputs.items():
                if isinstance(inp, DrvInput):
                    dep = by_digest[inp.drv]
                    if inp.output not in dep.outputs:
                        raise InvalidDerivation(
                            f"input {name!r} wants output {inp.output!r} of {dep.name}, "
                            f"which has only {', '.join(dep.outputs)}",
                            where=str(digest),
                        )
        return order

    # -- sessions ----------------------------------------------------------------------------
    def session(
        self,
        target: Digest,
        *,
        check: bool = False,
        root: str | None = None,
        limits: Limits | None = None,
    ) -> Session:
        if self._stopping.is_set():
            raise BuildCancelled("the daemon is stopping")
        return Session(self, target, check=check, root=root, limits=limits or self.config.limits)

    def _attach(
        self, session: Session, order: list[tuple[Digest, Derivation]]
    ) -> tuple[PlanEvent, _Job | None]:
        to_build: list[Digest] = []
        cached: list[Digest] = []
        final: _Job | None = None
        limits = session.limits
        with self._lock:
            for digest, drv in order:
                job = self._jobs.get((digest, False))
                if job is None:
                    real = self.records.valid_realisation(digest)
                    if real is not None and self._hold_realised(session, real):
                        cached.append(digest)
                        continue
                    job = self._new_job(digest, drv, check=False, limits=limits)
                job.waiters += 1
                session._jobs.append(job)
                job.subscribe(session)  # before it can publish anything this session misses
                to_build.append(digest)
                final = job if digest == session.target else final
            if session.check:
                digest, drv = order[-1]
                job = self._jobs.get((digest, True)) or self._new_job(
                    digest, drv, check=True, limits=limits
                )
                job.waiters += 1
                session._jobs.append(job)
                job.subscribe(session)
                to_build.append(digest)
                final = job
        return PlanEvent(session.target, to_build, cached), final

    def _hold_realised(self, session: Session, real: Realisation) -> bool:
        outs = [Digest.parse(d) for d in real.outputs.values()]
        session._lease.hold(outs)
        return all(self.store.has(d) for d in outs)  # a gc that swept before the hold

    def _new_job(self, digest: Digest, drv: Derivation, *, check: bool, limits: Limits) -> _Job:
        job = _Job(digest, drv, check=check, limits=limits)
        self._jobs[job.key] = job
        job.thread = threading.Thread(
            target=self._run_job, args=(job,), name=f"build-{drv.name}", daemon=True
        )
        job.thread.start()
        return job

    def _detach(self, session: Session) -> None:
        with self._lock:
            for job in session._jobs:
                job.waiters -= 1
                if job.waiters <= 0 and not job.done.is_set():
                    job.cancel.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel every build and wait (up to ``timeout``) for their sandboxes to go."""
        self._stopping.set()
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel.set()
        deadline = time.monotonic() + timeout
        for job in jobs:
            if job.thread is not None:
                job.thread.join(max(0.0, deadline - time.monotonic()))

    # -- running a job -----------------------------------------------------------------------
    def _run_job(self, job: _Job) -> None:
        try:
            inputs = self._wait_inputs(job)
            slots = self._fetch_slots if job.drv.is_fixed else self._slots
            while not slots.acquire(timeout=0.2):
                if job.cancel.is_set():
                    raise BuildCancelled("cancelled before it started")
            slot = _Slot(slots)
            try:
                self._build(job, inputs, slot)
            finally:
                slot.release()
        except (BuildFailed, BuildCancelled, InvalidDerivation, MissingInput) as exc:
            job.data_loss = job.data_loss or isinstance(exc, InputCorrupt)
            self._finish_unbuilt(job, exc.message)
        except Exception as exc:  # a bug: fail this build, keep the daemon
            log.exception("build of %s failed unexpectedly", job.digest)
            self._finish_unbuilt(job, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                if self._jobs.get(job.key) is job:
                    del self._jobs[job.key]

    def _finish_unbuilt(self, job: _Job, reason: str) -> None:
        if job.done.is_set():
            return
        job.failure = reason
        job.done.set()
        job.publish(FinishedEvent(job.digest, 0, False, reason, {}, None, 0.0, job.check))

    def _wait_inputs(self, job: _Job) -> dict[str, Digest]:
        """Wait for the derivations this one needs; map every input name to an object."""
        needed = set(job.drv.input_drvs)
        if job.check:
            needed.add(job.digest)  # the rebuild compares against the first build
        for dep in sorted(needed, key=str):
            with self._lock:
                dep_job = self._jobs.get((dep, False))
            if dep_job is not None:
                while not dep_job.done.wait(0.2):
                    if job.cancel.is_set():
                        raise BuildCancelled("cancelled while waiting for its inputs")
                if dep_job.failure is not None:
                    name = dep_job.drv.name
                    raise _failure(dep_job, f"dependency {name} ({dep}) failed: {dep_job.failure}")
        inputs: dict[str, Digest] = {}
        for name, inp in job.drv.inputs.items():
            if isinstance(inp, ObjectInput):
                inputs[name] = inp.digest
                continue
            real = self.records.valid_realisation(inp.drv)
            if real is None:
                raise BuildFailed(f"input {name!r}: derivation {inp.drv} has no realisation")
            inputs[name] = Digest.parse(real.outputs[inp.output])
        return inputs

    def _build(self, job: _Job, inputs: dict[str, Digest], slot: _Slot) -> None:
        """Run the builder holding ``slot``, then record what it made (a download lets its
        slot go first; a sandbox build keeps it while its output is stored)."""
        drv = job.drv
        rec = self.records.start_build(job.digest, drv.name, check=job.check)
        job.publish(StartedEvent(job.digest, drv.name, rec.id, job.check))
        logbuf = bytearray()

        def emit(chunk: bytes) -> None:
            logbuf.extend(chunk)
            job.publish(LogEvent(job.digest, bytes(chunk)))

        lease = self.store.lease()
        scratch = self.store.scratch_dir("build-")
        outs: dict[str, Digest] = {}
        failure: str | None = None
        try:
            lease.hold(inputs.values())  # a temp root keeps all it reaches
            gone = [str(d) for d in inputs.values() if not self.store.has(d)]
            if gone:
                raise BuildFailed(f"an input is gone from the store: {', '.join(gone)}")
            if isinstance(drv.builder, SandboxBuilder):
                self._verify_blob_inputs(drv, inputs)
                outs = self._run_sandbox(job, inputs, scratch, emit)
            else:
                outs = builtins.run(
                    builtins.BuiltinContext(
                        self.store, drv, inputs, scratch, emit, job.cancel.is_set
                    )
                )
                if job.cancel.is_set():
                    raise BuildCancelled("cancelled")
            lease.hold(outs.values())
        except (DaemonError, StoreError) as exc:  # a builtin's own errors say what went wrong
            failure = exc.message
            job.data_loss = isinstance(exc, CorruptObject | InputCorrupt)
        except Exception as exc:
            log.exception("build of %s failed unexpectedly", job.digest)
            failure = f"internal error: {type(exc).__name__}: {exc}"
        if drv.is_fixed:  # a download is done: the next may start while this one is recorded
            slot.release()
        if failure is not None:
            outs = {}
            emit(f"[seal] build of {drv.name} failed: {failure}\n".encode())
        log_digest = self.store.put_bytes(bytes(logbuf))
        rec.log = str(log_digest)
        rec.outputs = {k: str(v) for k, v in outs.items()}
        cancelled = job.cancel.is_set() and failure is not None
        rec.status = "ok" if failure is None else ("cancelled" if cancelled else "failed")
        rec.reason = failure or ""
        self.records.end_build(rec)
        try:
            if failure is None and job.check:
                job.check_result = self._compare(job, rec.id, outs, log_digest, scratch)
                self.records.add_check(job.check_result)
            elif failure is None:
                self.records.put_realisation(
                    Realisation(
                        str(job.digest),
                        rec.outputs,
                        str(log_digest),
                        rec.id,
                        rec.started,
                        rec.duration,
                    )
                )
            job.outputs = outs
            job.failure = failure
            job.done.set()
            job.publish(
                FinishedEvent(
                    job.digest,
                    rec.id,
                    failure is None,
                    failure or "",
                    outs,
                    log_digest,
                    rec.duration,
                    job.check,
                )
            )
        finally:
            lease.release()
            _remove_tree(scratch)

    def _verify_blob_inputs(self, drv: Derivation, inputs: dict[str, Digest]) -> None:
        """Hash each file input again: a byte flipped in the store must not reach a build."""
        for name, inp in drv.inputs.items():
            if isinstance(inp, ObjectInput) and Kind.TREE not in self.store.stat(inp.digest).kind:
                self.store.check_blob(inputs[name], f"input {name!r} ({inp.digest})")

    def _run_sandbox(self, job: _Job, inputs: dict[str, Digest], scratch: Path, emit) -> dict:
        drv = job.drv
        builder = drv.builder
        assert isinstance(builder, SandboxBuilder)
        paths: dict[str, Path] = {}
        for name, digest in inputs.items():
            kind = self.store.record(digest).kind
            if name == builder.root and Kind.TREE not in kind:
                raise BuildFailed(f"the root input {builder.root!r} is a file, not a tree")
            if Kind.TREE in kind and (name == builder.root or Kind.BLOB not in kind):
                paths[name] = self.store.materialize(digest)
            else:
                paths[name] = Path(self.store.layout.object_path(digest))
        spec = sandbox.SandboxSpec(
            root=paths[builder.root],
            inputs={k: v for k, v in paths.items() if k != builder.root},
            args=builder.args,
            env=builder.env,
            outputs=drv.outputs,
            source_date_epoch=drv.source_date_epoch,
            cores=self.config.cores,
            limits=job.limits,
        )
        workdir = scratch / "sandbox"
        workdir.mkdir()
        result = sandbox.run(spec, workdir, emit, job.cancel)
        if job.cancel.is_set() and not result.ok:
            raise BuildCancelled("cancelled")
        if not result.ok:
            raise BuildFailed(result.reason, drv=str(job.digest))
        return outputs.collect(self.store, workdir, drv.outputs)

    # -- checks ------------------------------------------------------------------------------
    def _compare(
        self, job: _Job, build_id: int, actual: dict[str, Digest], log_digest: Digest, scratch
    ) -> CheckResult:
        real = self.records.realisation(job.digest)
        if real is None:
            raise BuildFailed("the derivation lost its realisation during the check")
        expected = {k: Digest.parse(v) for k, v in real.outputs.items()}
        differing: list[str] = []
        report = ""
        for name in sorted(expected):
            if expected[name] != actual.get(name):
                differing.extend(
                    f"{name}/{p}" if p else name
                    for p in diff_paths(self.store, expected[name], actual.get(name))
                )
        if differing:
            report = self._diffoscope(expected, actual, scratch)
        return CheckResult(
            drv=str(job.digest),
            reproducible=not differing and expected == actual,
            expected={k: str(v) for k, v in expected.items()},
            actual={k: str(v) for k, v in actual.items()},
            differing=differing[:MAX_DIFFERING],
            diffoscope=report,
            time=time.time(),
            log=str(log_digest),
            build_id=build_id,
        )

    def _diffoscope(self, expected: dict, actual: dict, scratch: Path) -> str:
        tool = shutil.which("diffoscope")
        if tool is None:
            return ""
        reports = []
        for name in sorted(expected):
            if name not in actual or expected[name] == actual[name]:
                continue
            a, b = scratch / "expected" / name, scratch / "actual" / name
            for digest, dest in ((expected[name], a), (actual[name], b)):
                _export(self.store, digest, dest)
            try:
                proc = subprocess.run(
                    [tool, "--no-progress", "--text", "-", str(a), str(b)],
                    capture_output=True,
                    text=True,
                    errors="replace",
                    timeout=DIFFOSCOPE_TIMEOUT,
                    cwd=scratch,
                )
                text = proc.stdout.replace(str(scratch), "")
            except subprocess.TimeoutExpired:
                text = f"diffoscope took longer than {DIFFOSCOPE_TIMEOUT} s\n"
            reports.append(text)
        return "".join(reports)[:DIFFOSCOPE_MAX]


def diff_paths(store: Store, a: Digest, b: Digest | None) -> list[str]:
    """Relative paths whose entry differs between two outputs ("" = the output itself)."""
    if b is None:
        return [""]
    ka, kb = store.record(a).kind, store.record(b).kind
    if Kind.TREE not in ka or Kind.TREE not in kb:
        return [""]
    left = {e.path: e for e in store.walk(a)}
    right = {e.path: e for e in store.walk(b)}
    out = []
    for path in sorted(left.keys() | right.keys()):
        x, y = left.get(path), right.get(path)
        if x is None or y is None or _identity(x) != _identity(y):
            if x is not None and y is not None and x.kind == y.kind == "dir":
                continue  # a directory differs only through its entries
            out.append(os.fsdecode(path))
    return out


def _identity(entry) -> tuple:
    return (entry.kind, entry.digest, entry.executable, entry.target)


def _export(store: Store, digest: Digest, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if Kind.TREE in store.record(digest).kind:
        store.checkout(digest, dest)
    else:
        shutil.copyfile(store.layout.object_path(digest), dest)


def _remove_tree(path: Path) -> None:
    """Remove a build's scratch directory, including directories the builder made read-only."""

    def retry(func, p, _exc):
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            func(p)

    shutil.rmtree(path, onerror=retry)
