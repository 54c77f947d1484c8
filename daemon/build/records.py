"""What the daemon remembers about builds, kept in the store's record tables as JSON.

- ``realisations``: derivation digest -> Realisation (its outputs, log, timings);
- ``checks``: derivation digest -> a JSON list of CheckResult, oldest first;
- ``builds``: build number -> BuildRecord (every build that started, with its end).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

from seal.store import Store
from seal.store.digest import Digest


@dataclass
class Realisation:
    drv: str
    outputs: dict[str, str]
    log: str
    build_id: int
    started: float
    duration: float


@dataclass
class CheckResult:
    drv: str
    reproducible: bool
    expected: dict[str, str]
    actual: dict[str, str]
    differing: list[str] = field(default_factory=list)
    diffoscope: str = ""
    time: float = 0.0
    log: str = ""
    build_id: int = 0


@dataclass
class BuildRecord:
    id: int
    drv: str
    name: str
    started: float
    duration: float = 0.0
    status: str = "running"  # running, ok, failed, cancelled
    reason: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    log: str = ""
    check: bool = False


def _dump(obj: object) -> bytes:
    # the records' fields are JSON values already: no need for asdict's deep copy
    return json.dumps(vars(obj), sort_keys=True, separators=(",", ":")).encode()


class BuildRecords:
    """Typed access to the three tables."""

    def __init__(self, store: Store):
        self.store = store
        self._realisations = store.records("realisations")
        self._checks = store.records("checks")
        self._builds = store.records("builds")

    # -- realisations --------------------------------------------------------------------
    def realisation(self, drv: Digest) -> Realisation | None:
        raw = self._realisations.get(drv.raw)
        return None if raw is None else Realisation(**json.loads(raw))

    def valid_realisation(self, drv: Digest) -> Realisation | None:
        """The realisation, if every object it names is still in the store (gc may free them)."""
        real = self.realisation(drv)
        if real is None:
            return None
        # gc keeps or frees a tree with everything it references, so a present output
        # is a whole one (verify finds the damage otherwise)
        digests = [Digest.parse(d) for d in real.outputs.values()]
        return real if all(self.store.has(d) for d in digests) else None

    def put_realisation(self, real: Realisation) -> None:
        self._realisations.put(Digest.parse(real.drv).raw, _dump(real))

    # -- checks --------------------------------------------------------------------------
    def checks(self, drv: Digest) -> list[CheckResult]:
        raw = self._checks.get(drv.raw)
        return [] if raw is None else [CheckResult(**c) for c in json.loads(raw)]

    def add_check(self, result: CheckResult) -> None:
        drv = Digest.parse(result.drv)
        items = [asdict(c) for c in self.checks(drv)] + [asdict(result)]
        self._checks.put(drv.raw, json.dumps(items, sort_keys=True).encode())

    # -- builds --------------------------------------------------------------------------
    def start_build(self, drv: Digest, name: str, *, check: bool) -> BuildRecord:
        rec = BuildRecord(id=0, drv=str(drv), name=name, started=time.time(), check=check)

        def numbered(number: int) -> bytes:
            rec.id = number
            return _dump(rec)

        self._builds.append(numbered)
        return rec

    def end_build(self, rec: BuildRecord) -> None:
        rec.duration = time.time() - rec.started
        self._builds.replace(rec.id, _dump(rec))

    def builds(self, drv: Digest | None = None, limit: int = 100) -> list[BuildRecord]:
        out: list[BuildRecord] = []
        want = None if drv is None else str(drv)
        for _key, raw in self._builds.items(reverse=True):
            rec = BuildRecord(**json.loads(raw))
            if want is None or rec.drv == want:
                out.append(rec)
                if len(out) >= limit:
                    break
        return out

    def interrupted(self) -> int:
        """Mark builds left 'running' by a daemon that died as failed; returns how many."""
        count = 0
        for _key, raw in list(self._builds.items()):
            rec = BuildRecord(**json.loads(raw))
            if rec.status == "running":
                rec.status, rec.reason = "failed", "the daemon stopped during the build"
                self._builds.replace(rec.id, _dump(rec))
                count += 1
        return count
