"""Human and ``--json`` output for the CLI's results (plain dicts)."""

from __future__ import annotations

import json
import sys
from typing import TextIO


class Renderer:
    """Writes results to stdout and notes to stderr, honouring --json and -q."""

    def __init__(
        self, *, as_json: bool, quiet: bool, out: TextIO | None = None, err: TextIO | None = None
    ):
        self.as_json = as_json
        self.quiet = quiet
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def json(self, value: object) -> None:
        self.out.write(json.dumps(value, indent=2, sort_keys=True) + "\n")

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def note(self, text: str) -> None:
        if not self.quiet:
            self.err.write(text + "\n")

    def error(self, message: str, hint: str | None, reason: str = "error") -> None:
        if self.as_json:
            body = {"reason": reason, "message": message, "hint": hint}
            self.err.write(json.dumps({"error": body}, sort_keys=True) + "\n")
            return
        self.err.write(f"seal: error: {message}\n")
        if hint:
            self.err.write(f"  hint: {hint}\n")

    # -- per verb -----------------------------------------------------------------------
    def added(self, r: dict) -> None:
        if self.as_json:
            return self.json(r)
        rooted = f" as root {r['root']!r}" if r["root"] else ""
        self.note(f"added {r['kind']} ({_size(r['size'])}){rooted}")
        self.line(r["digest"])

    def listing(self, entries: list[dict]) -> None:
        if self.as_json:
            return self.json(entries)
        width = max((len(str(e["size"])) for e in entries), default=1)
        for e in entries:
            size = "-" if e["kind"] == "dir" else str(e["size"])
            digest = e["digest"] or "-"
            path = e["path"] + ("/" if e["kind"] == "dir" else "")
            if e["target"] is not None:
                path += f" -> {e['target']}"
            self.line(f"{e['mode']} {size:>{width}} {digest:71} {path}")

    def checked_out(self, r: dict) -> None:
        if self.as_json:
            return self.json(r)
        self.line(f"checked out {r['entries']} entries of {r['digest']} to {r['path']}")

    def stat(self, r: dict) -> None:
        if self.as_json:
            return self.json(r)
        self.line(f"digest: {r['digest']}")
        self.line(f"kind:   {r['kind']}")
        self.line(f"size:   {r['size']}")
        if r["roots"]:
            self.line(f"roots:  {', '.join(r['roots'])}")

    def verified(self, r: dict) -> None:
        if self.as_json:
            return self.json(r)
        for d in r["missing"]:
            self.line(f"missing  {d}")
        for d in r["corrupt"]:
            self.line(f"corrupt  {d}")
        for d in r["dangling"]:
            self.line(f"dangling {d['child']} (referenced by tree {d['tree']})")
        for p in r["orphaned"]:
            self.line(f"orphaned {p}")
        verdict = "ok" if r["ok"] else "DAMAGED"
        self.line(
            f"{verdict}: checked {r['checked']} objects ({_size(r['bytes_checked'])}); "
            f"{len(r['missing'])} missing, {len(r['corrupt'])} corrupt, "
            f"{len(r['dangling'])} dangling, {len(r['orphaned'])} orphaned"
            + (" (gc removes orphans)" if r["orphaned"] else "")
        )

    def collected(self, r: dict) -> None:
        if self.as_json:
            return self.json(r)
        verb = "would remove" if r["dry_run"] else "removed"
        if r["dry_run"]:
            for d in r["objects"]:
                self.line(f"unreachable {d}")
            for p in r["orphans"]:
                self.line(f"orphan      {p}")
            for d in r["trees"]:
                self.line(f"checkout    {d}")
        self.line(
            f"{verb} {len(r['objects'])} objects, {len(r['orphans'])} orphan files and "
            f"{len(r['trees'])} materialized trees ({_size(r['bytes_freed'])}); "
            f"{r['live']} objects are reachable from roots"
        )

    def roots(self, roots: dict[str, str]) -> None:
        if self.as_json:
            return self.json(roots)
        for name, digest in roots.items():
            self.line(f"{digest} {name}")

    def daemon_status(self, info: dict | None) -> None:
        if self.as_json:
            return self.json({"running": info is not None, **(info or {})})
        if info is None:
            self.line("not running")
            return
        self.line(f"pid:     {info['pid']}")
        self.line(f"store:   {info['store']}")
        self.line(f"socket:  {info['socket']}")
        self.line(f"uptime:  {_duration(info['uptime'])}")
        self.line(f"version: {info['version']} (store format {info['store_format']})")

    def daemon_started(self, info: dict, started: bool) -> None:
        if self.as_json:
            return self.json({"started": started, **info})
        verb = "started" if started else "already running:"
        self.note(f"daemon {verb} pid {info['pid']} on {info['socket']}")

    def daemon_stopped(self, info: dict | None) -> None:
        if self.as_json:
            return self.json({"stopped": info is not None, **(info or {})})
        self.note(f"stopped daemon pid {info['pid']}" if info else "no daemon was running")

    def done(self, r: dict, text: str) -> None:
        if self.as_json:
            return self.json(r)
        self.note(text)

    # -- builds -------------------------------------------------------------------------
    def build_event(self, kind: str, ev) -> None:
        """Live progress on stderr: the plan, each build's start and end, the log as it comes."""
        if self.quiet or self.as_json:
            return
        if kind == "plan":
            todo = len(ev.to_build)
            self.note(f"{todo} to build, {len(ev.cached)} cached" if todo else "all cached")
        elif kind == "started":
            what = "checking" if ev.check else "building"
            self.note(f"{what} {ev.name} ({ev.drv})")
        elif kind == "log":
            if hasattr(self.err, "buffer"):
                self.err.buffer.write(ev.data)
            else:
                self.err.write(ev.data.decode(errors="replace"))
            self.err.flush()
        elif kind == "finished" and not ev.ok:
            self.note(f"failed: {ev.reason}")

    def realized(self, r: dict) -> None:
        if self.as_json:
            return self.json(r)
        self.note(f"{'cached' if r['cached'] else 'built'} {r['drv']}")
        outputs = r["outputs"]
        if list(outputs) == ["out"]:
            self.line(outputs["out"])
        else:
            for name, digest in outputs.items():
                self.line(f"{name} {digest}")

    def checked(self, r: dict) -> None:
        if self.as_json:
            return self.json(r)
        c = r["check"]
        if c["reproducible"]:
            self.line(f"reproducible: {r['drv']} rebuilt to the same outputs")
            return
        self.line(f"NOT reproducible: {r['drv']}")
        for name in c["expected"]:
            self.line(f"  {name}: {c['expected'][name]} then {c['actual'].get(name, '-')}")
        for path in c["differing"]:
            self.line(f"  differs: {path}")
        if c["diffoscope"]:
            self.line("diffoscope:")
            self.line(c["diffoscope"].rstrip())

    def derivation(self, r: dict) -> None:
        if self.as_json:
            return self.json(r)
        self.line(f"derivation {r['drv']}")
        self.line(json.dumps(r["derivation"], indent=2, sort_keys=True))
        real = r["realisation"]
        if real is None:
            self.line("realisation: none (never built here)")
        else:
            took = _duration(real["duration_seconds"])
            self.line(f"realisation: build {real['build_id']}, {took}")
            for name, digest in real["outputs"].items():
                self.line(f"  {name} {digest}")
            self.line(f"  log {real['log']}")
        for c in r["checks"]:
            verdict = "reproducible" if c["reproducible"] else "NOT reproducible"
            extra = f" ({', '.join(c['differing'][:5])})" if c["differing"] else ""
            self.line(f"check (build {c['build_id']}): {verdict}{extra}")

    def locked(self, r: dict) -> None:
        if self.as_json:
            return self.json(r)
        counts = ", ".join(f"{n} {kind}" for kind, n in r["counts"].items())
        self.note(f"locked {r['config']}: {counts or 'nothing'}")
        self.line(r["lock"])
        self.line(r["pylock"])

    def lock_checked(self, r: dict) -> None:
        if self.as_json:
            return self.json(r)
        if not r["stale"]:
            self.note(f"{r['lock']} matches {r['config']}")
            return
        self.line(f"{r['lock']} is stale for {r['config']}:")
        for why in r["stale"]:
            self.line(f"  {why}")

    def fetch_event(self, kind: str, ev: dict) -> None:
        """A progress line on stderr (rewritten in place on a terminal)."""
        if self.as_json or self.quiet:
            return
        if kind == "plan":
            self._fetch = {"files": 0, "bytes": 0, "plan": ev}
            return
        state = getattr(self, "_fetch", None)
        if state is None:
            return
        state["files"] += 1
        state["bytes"] += ev["size"]
        plan = state["plan"]
        text = (
            f"fetch: {state['files']}/{plan['artifacts']} files, "
            f"{_size(state['bytes'])} of {_size(plan['bytes'])}"
        )
        if self.err.isatty():
            self.err.write("\r" + text)
            if state["files"] == plan["artifacts"]:
                self.err.write("\n")
        elif state["files"] == plan["artifacts"]:
            self.err.write(text + "\n")

    def fetched(self, r: dict) -> None:
        if self.as_json:
            return self.json(r)
        if r["missing"]:
            self.line(f"the store lacks {len(r['missing'])} artifacts of {r['lock']}:")
            for a in r["missing"]:
                self.line(f"  {a['kind']:14} {a['filename']}  {a['digest']}")
            return
        if "tree" not in r:  # offline, and nothing is missing
            self.note(f"the store has every artifact of {r['lock']}")
            return
        self.note(
            f"fetched {r.get('fetched', 0)} artifacts ({_size(r.get('fetched_bytes', 0))}); "
            f"{r.get('present', 0)} were in the store already; all of them: root {r['root']!r}"
        )
        self.line(r["tree"])

    def image_built(self, r: dict) -> None:
        if self.as_json:
            return self.json(r)
        for c in r["checks"]:
            if not c["reproducible"]:
                self.line(f"NOT reproducible: {c['drv']}")
                for path in c["differing"][:20]:
                    self.line(f"  differs: {path}")
        if r["checks"]:
            same = sum(c["reproducible"] for c in r["checks"])
            self.note(f"check: {same} of {len(r['checks'])} steps rebuilt to the same outputs")
        how = "from the cache" if r["cached"] else "built"
        self.note(
            f"image {how}: {r['image']} ({_size(r['archive_size'])}), "
            f"hardening report {r['hardening']}, root {r['root']!r}"
        )
        self.line(r["manifest_digest"])

    def builds(self, items: list[dict]) -> None:
        if self.as_json:
            return self.json(items)
        for b in items:
            kind = "check" if b["check"] else "build"
            reason = f" ({b['reason']})" if b["reason"] else ""
            self.line(
                f"{b['id']:>6} {b['status']:9} {kind:5} {_duration(b['duration_seconds']):>8} "
                f"{b['name']} {b['drv']}{reason}"
            )


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f} s"
    h, rem = divmod(s, 3600)
    return f"{h}h{rem // 60:02d}m{rem % 60:02d}s" if h else f"{rem // 60}m{rem % 60:02d}s"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover
