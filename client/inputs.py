"""``seal lock`` and ``seal fetch`` over the daemon's Inputs service.

The client reads the config (and a keyring, when one is named) and sends
their bytes; the daemon parses, resolves and answers with the lock's text,
which the client writes next to the config: ``<config>.lock`` and the PEP 751
``pylock.<config stem>.toml``.  Both files are replaced atomically (written
beside, then renamed), so an interrupted lock leaves the old ones whole.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from seal.proto.v1 import inputs_pb2 as pb
from seal.proto.v1 import inputs_pb2_grpc as pb_grpc

from . import exitcodes
from .errors import ClientError
from .files import read_limited, write_atomically
from .rpc import translated

MAX_CONFIG = 1 << 20
MAX_LOCK = 64 << 20


def lock_path(config: Path) -> Path:
    return config.with_name(config.name + ".lock")


def pylock_path(config: Path) -> Path:
    stem = config.name.split(".")[0] or "image"
    return config.with_name(f"pylock.{stem}.toml")


class InputsBackend:
    def __init__(self, connect: Callable[..., object]):
        self._connect = connect

    def _stub(self) -> pb_grpc.InputsStub:
        conn = self._connect(create_store=True)
        return pb_grpc.InputsStub(conn.channel)

    def lock(self, config: str, *, check: bool, sources: dict) -> dict:
        """Lock ``config`` (write the lock files), or with ``check`` compare the lock with it."""
        path = Path(config)
        text = read_limited(path, "config", MAX_CONFIG)
        request = pb.LockRequest(config_file=config, config_text=text, check=check)
        request.sources.CopyFrom(_sources_pb(sources))
        if check:
            lock = lock_path(path)
            if not lock.exists():
                return {"config": config, "lock": str(lock), "stale": [f"{lock} does not exist"]}
            request.current_lock = read_limited(lock, "lock file", MAX_LOCK)
        with translated():
            r = self._stub().Lock(request, timeout=None)
        if check:
            return {"config": config, "lock": str(lock_path(path)), "stale": list(r.stale)}
        write_atomically(lock_path(path), r.lock_text)
        write_atomically(pylock_path(path), r.pylock_text)
        return {
            "config": config,
            "lock": str(lock_path(path)),
            "pylock": str(pylock_path(path)),
            "counts": dict(sorted(r.counts.items())),
        }

    def fetch(
        self,
        config: str,
        *,
        offline: bool,
        on_event: Callable[[str, dict], None],
        pylock: str | None = None,
    ) -> dict:
        """Fetch what ``<config>.lock`` names into the store; the report as a dict.

        With ``pylock``, also write there a pylock.toml whose wheels are the store's files.
        """
        if pylock is not None:
            _check_pylock_name(Path(pylock))
        lock = lock_path(Path(config))
        if not lock.exists():
            raise ClientError(
                f"{lock} does not exist",
                hint=f"run 'seal lock {config}' first",
                reason="lock-missing",
                exit_code=exitcodes.NOT_FOUND,
            )
        request = pb.FetchRequest(
            lock_file=str(lock),
            lock_text=read_limited(lock, "lock file", MAX_LOCK),
            offline=offline,
            pylock_store_paths=pylock is not None,
        )
        report: dict = {"lock": str(lock), "missing": []}
        with translated():
            for event in self._stub().Fetch(request, timeout=None):
                which = event.WhichOneof("event")
                if which == "plan":
                    p = event.plan
                    plan = {
                        "artifacts": p.artifacts,
                        "bytes": p.bytes,
                        "present": p.present,
                        "present_bytes": p.present_bytes,
                    }
                    report["plan"] = plan
                    on_event("plan", plan)
                elif which == "done":
                    on_event("done", _artifact(event.done))
                elif which == "report":
                    r = event.report
                    report.update(
                        fetched=r.fetched,
                        fetched_bytes=r.fetched_bytes,
                        present=r.present,
                        missing=[_artifact(a) for a in r.missing],
                    )
                    if r.tree:
                        report.update(tree=r.tree, root=r.root)
                    if r.pylock_text:
                        write_atomically(Path(pylock), r.pylock_text)
                        report["pylock"] = pylock
        return report


def _check_pylock_name(path: Path) -> None:
    """PEP 751: ``pylock.toml`` or ``pylock.<name>.toml`` (installers refuse other names)."""
    parts = path.name.split(".")
    if parts[0] != "pylock" or parts[-1] != "toml" or len(parts) not in (2, 3) or "" in parts:
        raise ClientError(
            f"--pylock {path}: PEP 751 names the file pylock.toml or pylock.NAME.toml",
            reason="invalid-option",
            exit_code=exitcodes.BAD_INPUT,
        )


def _artifact(a: pb.FetchArtifact) -> dict:
    return {
        "kind": a.kind,
        "name": a.name,
        "version": a.version,
        "filename": a.filename,
        "digest": a.digest,
        "size": a.size,
        "url": a.url,
    }


def _sources_pb(sources: dict) -> pb.Sources:
    msg = pb.Sources(
        pypi_index=sources.get("index_url") or "",
        debian_mirror=sources.get("debian_mirror") or "",
        debian_suite=sources.get("debian_suite") or "",
        cpython_suites=sources.get("cpython_suites") or [],
    )
    for pin in sources.get("cpython_signers") or []:
        series, sep, fingerprint = pin.partition("=")
        if not sep or not series or not fingerprint:
            raise ClientError(
                f"--cpython-signer {pin!r}: write it as X.Y=FINGERPRINT",
                reason="invalid-option",
                exit_code=exitcodes.BAD_INPUT,
            )
        msg.cpython_signers[series] = fingerprint.replace(" ", "").upper()
    keyring = sources.get("keyring")
    if keyring:
        msg.debian_keyring = read_limited(Path(keyring), "keyring", MAX_CONFIG)
    return msg
