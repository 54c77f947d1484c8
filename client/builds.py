"""The build verbs over the daemon's Build and Query services.

The client only gathers what the daemon cannot read itself: a derivation
file's text and the text of derivation files it names (``{"drv":
"other.json"}``), and the contents of local paths it names (``{"path":
"src"}``, uploaded and replaced by ``{"object": DIGEST}``).  Validation,
digests and scheduling happen in the daemon.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from seal.proto.v1 import build_pb2 as pb
from seal.proto.v1 import build_pb2_grpc as pb_grpc

from . import exitcodes
from .errors import ClientError
from .rpc import RemoteBackend, translated

MAX_FILE = 1 << 20


def _bad(message: str, hint: str | None = None) -> ClientError:
    return ClientError(
        message, hint=hint, reason="invalid-derivation", exit_code=exitcodes.BAD_INPUT
    )


def is_digest(text: str) -> bool:
    return text.startswith("sha256:")


class Documents:
    """A derivation file and the files it names, as the documents a request carries."""

    def __init__(self, upload: Callable[[str], str]):
        self._upload = upload  # local path -> digest of what was stored
        self.documents: dict[str, bytes] = {}
        self._base: Path | None = None

    def load(self, path: str) -> str:
        """Read ``path`` (and what it names); returns its document name."""
        top = Path(path).resolve()
        self._base = top.parent
        return self._add(top, [])

    def _name(self, path: Path) -> str:
        assert self._base is not None
        return os.path.relpath(path, self._base)

    def _add(self, path: Path, stack: list[str]) -> str:
        name = self._name(path)
        if name in self.documents:
            return name
        if name in stack:
            chain = " -> ".join([*stack, name])
            raise _bad(f"derivation files name each other in a cycle: {chain}")
        try:
            if path.stat().st_size > MAX_FILE:
                raise _bad(f"{path}: larger than {MAX_FILE} bytes")
            text = path.read_bytes()
        except FileNotFoundError:
            raise ClientError(
                f"{path}: no such file", reason="not-found", exit_code=exitcodes.NOT_FOUND
            ) from None
        except OSError as exc:
            raise _bad(f"{path}: cannot read: {exc.strerror}") from None
        try:
            doc = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _bad(f"{path}: not JSON: {exc}") from None
        inputs = doc.get("inputs") if isinstance(doc, dict) else None
        changed = False
        if isinstance(inputs, dict):
            for key, value in inputs.items():
                if not isinstance(value, dict):
                    continue
                if isinstance(value.get("path"), str) and set(value) == {"path"}:
                    local = path.parent / value["path"]
                    inputs[key] = {"object": self._upload(str(local))}
                    changed = True
                elif isinstance(value.get("drv"), str) and not is_digest(value["drv"]):
                    ref = (path.parent / value["drv"]).resolve()
                    value["drv"] = self._add(ref, [*stack, name])
                    changed = True
        self.documents[name] = json.dumps(doc).encode() if changed else text
        return name


class BuildBackend:
    """Realize, check and query derivations; results are dicts shaped as ``--json`` output."""

    def __init__(self, connect, store: RemoteBackend):
        self._connect = connect
        self._store = store

    def _stubs(self):
        conn = self._connect(create_store=True)
        return pb_grpc.BuildStub(conn.channel), pb_grpc.QueryStub(conn.channel)

    def _target(self, ref: str) -> tuple[str, list[pb.DerivationDocument]]:
        if is_digest(ref):
            return ref, []
        docs = Documents(lambda p: self._store.add(p)["digest"])
        name = docs.load(ref)
        return name, [pb.DerivationDocument(name=k, json=v) for k, v in docs.documents.items()]

    def realize(
        self,
        ref: str,
        *,
        check: bool = False,
        root: str | None = None,
        timeout: float = 0.0,
        max_output: int = 0,
        max_processes: int = 0,
        on_event: Callable[[str, object], None] = lambda kind, ev: None,
    ) -> dict:
        target, documents = self._target(ref)
        build, _ = self._stubs()
        request = pb.RealizeRequest(
            documents=documents,
            target=target,
            root=root or "",
            limits=pb.BuildLimits(
                timeout_seconds=timeout, max_output_bytes=max_output, max_processes=max_processes
            ),
        )
        call = build.Check if check else build.Realize
        result: pb.Result | None = None
        with translated(" during the build"):
            stream = call(request)
            try:
                for event in stream:
                    kind = event.WhichOneof("event")
                    if kind == "result":
                        result = event.result
                    else:
                        on_event(kind, getattr(event, kind))
            except BaseException:
                stream.cancel()  # a Ctrl-C here cancels the build unless others wait for it
                raise
        if result is None:
            raise ClientError(
                "the daemon ended the build stream without a result",
                reason="daemon-error",
                exit_code=exitcodes.INTERNAL,
            )
        out = {
            "drv": result.drv,
            "outputs": dict(sorted(result.outputs.items())),
            "log": result.log,
            "cached": result.cached,
        }
        if result.HasField("check"):
            out["check"] = check_dict(result.check)
        return out

    def show(self, ref: str) -> dict:
        target, documents = self._target(ref)
        _, query = self._stubs()
        with translated():
            info = query.GetDerivation(pb.DerivationRef(drv=target, documents=documents))
        out = {
            "drv": info.drv,
            "derivation": json.loads(info.json),
            "realisation": None,
            "checks": [check_dict(c) for c in info.checks],
        }
        if info.HasField("realisation"):
            r = info.realisation
            out["realisation"] = {
                "outputs": dict(sorted(r.outputs.items())),
                "log": r.log,
                "build_id": r.build_id,
                "started": r.started,
                "duration_seconds": r.duration_seconds,
            }
        return out

    def log(self, ref: str) -> Iterator[bytes]:
        target, documents = self._target(ref)
        _, query = self._stubs()
        with translated():
            for chunk in query.GetLog(pb.DerivationRef(drv=target, documents=documents)):
                yield chunk.data

    def builds(self, drv: str = "", limit: int = 0) -> list[dict]:
        _, query = self._stubs()
        with translated():
            r = query.ListBuilds(pb.ListBuildsRequest(drv=drv, limit=limit))
        return [
            {
                "id": b.id,
                "drv": b.drv,
                "name": b.name,
                "started": b.started,
                "duration_seconds": b.duration_seconds,
                "status": b.status,
                "reason": b.reason,
                "outputs": dict(sorted(b.outputs.items())),
                "log": b.log,
                "check": b.check,
            }
            for b in r.builds
        ]


def check_dict(c: pb.CheckResult) -> dict:
    return {
        "reproducible": c.reproducible,
        "expected": dict(sorted(c.expected.items())),
        "actual": dict(sorted(c.actual.items())),
        "differing": list(c.differing),
        "diffoscope": c.diffoscope,
        "time": c.time,
        "log": c.log,
        "build_id": c.build_id,
    }
