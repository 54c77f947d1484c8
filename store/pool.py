"""Worker processes for the per-file work of big tree ingests (see ingest_worker.py).

One pool per process, started on first use and reused.  Workers are fresh
interpreters started with fork+exec (``subprocess``), never bare forks: the
daemon runs gRPC threads, and a forked copy of a threaded process may hold
locks no thread will release.  They read only the standard library, so they
start in ~20 ms (each says "ready" first: workers that cannot start make the
ingest run in-process, and no new start is tried for START_RETRY seconds),
and they exit when their stdin closes or their parent dies.

One caller at a time uses the pool (``session``); a second concurrent caller
is told to work in-process instead of waiting.  Any failure inside a session
(a worker that died, an error raised by the caller while jobs are in flight)
kills the workers, so no stale reply can reach a later session; the next
session starts new ones.

``SEAL_INGEST_WORKERS`` sets the number of workers (0 turns the pool off);
the default is the number of CPUs this process may run on, at most 8.  A
machine with one CPU gets no pool: the workers would only take turns with
their parent.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import itertools
import marshal
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator

from . import ingest_worker
from .errors import StoreError

MAX_WORKERS = 8
START_TIMEOUT = 30.0  # seconds for a worker to start (a loaded machine is slow)
IN_FLIGHT = 2  # jobs queued per worker, so none idles while its reply is handled
_WORKER_FILE = ingest_worker.__file__

_lock = threading.Lock()
_pool: Pool | None = None
_sessions = itertools.count(1)
_retry_after = 0.0  # after a failed start, no new attempt before this (time.monotonic)
START_RETRY = 60.0


class WorkerDied(StoreError):
    """An ingest worker process ended in the middle of a job."""

    reason = "worker-died"


def worker_count() -> int:
    """How many workers a pool has here (0: no pool)."""
    setting = os.environ.get("SEAL_INGEST_WORKERS", "").strip()
    if setting:
        try:
            return max(0, int(setting))
        except ValueError:
            raise StoreError(
                f"SEAL_INGEST_WORKERS={setting!r} is not a number",
                hint="set it to a worker count, or 0 to ingest in-process",
            ) from None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(cpus or 1, MAX_WORKERS) if (cpus or 1) > 1 else 0


@contextlib.contextmanager
def session() -> Iterator[Pool | None]:
    """The process's pool for one ingest, or None: no pool here, or another ingest has it."""
    global _pool, _retry_after
    if not sys.executable or worker_count() == 0 or not _lock.acquire(blocking=False):
        yield None  # (an embedding interpreter may have no executable to start)
        return
    try:
        pool = _pool
        if pool is None or pool.pid != os.getpid() or not pool.alive():
            if pool is not None and pool.pid == os.getpid():
                pool.kill()  # (after a fork, the parent's workers are not ours to stop)
            if time.monotonic() < _retry_after:
                yield None
                return
            try:
                pool = _pool = Pool(worker_count())
            except OSError:
                _pool = None
                _retry_after = time.monotonic() + START_RETRY  # work in-process meanwhile
                yield None
                return
        pool.session = next(_sessions)
        try:
            yield pool
        except BaseException:
            pool.kill()  # jobs may be in flight: their replies must never reach a later session
            _pool = None
            raise
        if pool.busy():
            pool.kill()
            _pool = None
    finally:
        _lock.release()


class _Worker:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", _WORKER_FILE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
            start_new_session=True,  # a Ctrl-C at the terminal is the parent's to handle
        )
        self.wfd = self.proc.stdin.fileno()
        self.rfd = self.proc.stdout.fileno()
        os.set_blocking(self.wfd, False)
        os.set_blocking(self.rfd, False)
        self.out = bytearray()  # frames not yet written to the worker
        self.inbuf = bytearray()  # reply bytes not yet parsed
        self.tokens: collections.deque = collections.deque()  # jobs sent, oldest first


class Pool:
    """Worker processes that run jobs and return replies (see ingest_worker's format)."""

    def __init__(self, count: int):
        self.pid = os.getpid()
        self.session = 0
        self.workers: list[_Worker] = []
        try:
            for _ in range(count):
                self.workers.append(_Worker())
            for w in self.workers:
                _await_ready(w)
        except BaseException:
            self.kill()
            raise

    def alive(self) -> bool:
        return all(w.proc.poll() is None for w in self.workers)

    def busy(self) -> bool:
        return any(w.tokens for w in self.workers)

    def run(self, jobs: Iterable[tuple[object, object]]) -> Iterator[tuple[object, object]]:
        """Send ``(token, job)`` pairs to the workers; yield ``(token, reply)`` as replies come.

        Each worker has up to IN_FLIGHT jobs queued; the next job goes to whichever
        worker frees a slot first, so fast and slow jobs balance themselves.
        """
        pending = iter(jobs)
        exhausted = False
        poller = select.poll()
        by_fd = {}
        for w in self.workers:
            by_fd[w.rfd] = w
            by_fd[w.wfd] = w

        def feed(w: _Worker) -> None:
            nonlocal exhausted
            while not exhausted and len(w.tokens) < IN_FLIGHT:
                item = next(pending, None)
                if item is None:
                    exhausted = True
                    return
                token, job = item
                w.tokens.append(token)
                w.out += _frame(job)

        def watch(w: _Worker) -> None:
            poller.register(w.rfd, select.POLLIN)
            if w.out:
                poller.register(w.wfd, select.POLLOUT)
            else:
                with contextlib.suppress(KeyError):
                    poller.unregister(w.wfd)

        for w in self.workers:
            feed(w)
            _flush(w)
            watch(w)
        while any(w.tokens for w in self.workers):
            for fd, _events in poller.poll():
                w = by_fd[fd]
                if fd == w.wfd:
                    _flush(w)
                    watch(w)
                    continue
                if not _fill(w):
                    code = w.proc.poll()
                    raise WorkerDied(
                        f"an ingest worker (pid {w.proc.pid}) ended mid-job"
                        + (f" with status {code}" if code is not None else ""),
                        hint="see the daemon's log for its error; retry the operation",
                    )
                while (reply := _take_frame(w.inbuf)) is not None:
                    token = w.tokens.popleft()
                    feed(w)
                    _flush(w)
                    watch(w)
                    yield token, reply

    def kill(self) -> None:
        """Stop every worker now (a job in flight is cut short)."""
        for w in self.workers:
            with contextlib.suppress(OSError):
                w.proc.kill()
        for w in self.workers:
            _reap(w)
        self.workers = []

    def close(self) -> None:
        """Let the workers finish and exit (their stdin closes)."""
        if self.pid != os.getpid():
            return  # a forked child: these are the parent's workers
        for w in self.workers:
            with contextlib.suppress(OSError):
                w.proc.stdin.close()
        for w in self.workers:
            try:
                w.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                w.proc.kill()
            _reap(w)
        self.workers = []


@atexit.register
def _close_at_exit() -> None:
    if _pool is not None:
        _pool.close()


def _await_ready(w: _Worker) -> None:
    """Wait for a new worker's first frame: one that cannot start fails here, once."""
    poller = select.poll()
    poller.register(w.rfd, select.POLLIN)
    deadline = time.monotonic() + START_TIMEOUT
    while (reply := _take_frame(w.inbuf)) is None:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000) or not _fill(w):
            raise OSError(f"ingest worker {w.proc.pid} did not start")
    if reply != ("ready", w.proc.pid):
        raise OSError(f"ingest worker {w.proc.pid} said {reply!r} instead of ready")


def _frame(job) -> bytes:
    body = marshal.dumps(job)
    return len(body).to_bytes(4, "little") + body


def _flush(w: _Worker) -> None:
    """Write what the worker's pipe takes now; the rest waits for POLLOUT."""
    while w.out:
        try:
            n = os.write(w.wfd, w.out)
        except BlockingIOError:
            return
        except BrokenPipeError:
            w.out.clear()  # the read side reports the death
            return
        del w.out[:n]


def _fill(w: _Worker) -> bool:
    """Read what the worker has written; False at end of stream."""
    while True:
        try:
            chunk = os.read(w.rfd, 1 << 16)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        w.inbuf += chunk


def _take_frame(buf: bytearray):
    if len(buf) < 4:
        return None
    size = int.from_bytes(buf[:4], "little")
    if len(buf) < 4 + size:
        return None
    value = marshal.loads(bytes(buf[4 : 4 + size]))
    del buf[: 4 + size]
    return value


def _reap(w: _Worker) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        w.proc.wait(timeout=5)
    for f in (w.proc.stdin, w.proc.stdout):
        with contextlib.suppress(OSError):
            f.close()
