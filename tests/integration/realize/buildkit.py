"""Helpers for build tests: a daemon process, the CLI against it, derivation files."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from clientkit import check_output, seal_cmd
from sealtest import UNPRIVILEGED_UID, as_unprivileged

from seal.proto.v1 import build_pb2 as bpb
from seal.proto.v1 import build_pb2_grpc as bpb_grpc
from seal.store.layout import socket_path


@dataclass
class BuildDaemon:
    store: Path
    env: dict = field(default_factory=dict)
    umask: int = 0o022
    unprivileged: bool = False  # run the daemon as sealtest.UNPRIVILEGED_UID
    args: list = field(default_factory=list)  # more `seal daemon run` options
    proc: subprocess.Popen | None = None

    def start(self) -> BuildDaemon:
        self.store.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = self.store.parent / f"{self.store.name}-daemon.log"
        env = {**os.environ, **self.env}
        cmd = seal_cmd(self.store, "daemon", "run", *self.args)
        if self.unprivileged:
            os.chown(self.store.parent, UNPRIVILEGED_UID, UNPRIVILEGED_UID)
            cmd = as_unprivileged(cmd, self.store.parent.parent)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
                preexec_fn=lambda: os.umask(self.umask),
            )
        channel = grpc.insecure_channel(f"unix:{socket_path(self.store)}")
        grpc.channel_ready_future(channel).result(timeout=30)
        self.channel = channel
        self.build = bpb_grpc.BuildStub(channel)
        self.query = bpb_grpc.QueryStub(channel)
        return self

    def close(self) -> None:
        self.channel.close()
        self.proc.terminate()
        code = self.proc.wait(timeout=60)
        log = self.log_path.read_text(errors="replace")
        assert code == 0, f"daemon exited {code}:\n{log}"
        assert "Traceback" not in log, f"the daemon hit an unexpected error:\n{log}"

    def seal(
        self, *args: str, ok: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            seal_cmd(self.store, *args), capture_output=True, text=True, timeout=timeout
        )
        if "-q" in args or proc.returncode == 0:
            check_output(proc, proc.stderr)
        else:
            assert "Traceback" not in proc.stderr, proc.stderr
        if ok:
            assert proc.returncode == 0, (
                f"seal {' '.join(args)} -> {proc.returncode}:\n{proc.stderr}"
            )
        return proc

    def add(self, path: Path) -> str:
        return self.seal("store", "add", str(path)).stdout.strip().splitlines()[-1]

    def builds(self, drv: str = "") -> list:
        return list(self.query.ListBuilds(bpb.ListBuildsRequest(drv=drv)).builds)

    def realize_stream(self, drv_file: Path, **kwargs):
        """A raw Realize call with the file's JSON as the one document."""
        request = bpb.RealizeRequest(
            documents=[bpb.DerivationDocument(name="main", json=drv_file.read_bytes())],
            target="main",
            **kwargs,
        )
        return self.build.Realize(request)


def shell_drv(path: Path, root: str, script: str, *, name: str = "test", **extra) -> Path:
    """Write a derivation that runs ``sh -c script`` in ``root``; returns the file."""
    doc = {
        "name": name,
        "builder": {
            "sandbox": {"args": ["/bin/sh", "-c", script], "env": {"PATH": "/usr/bin:/bin"}},
            "root": "root",
        },
        "inputs": {"root": {"object": root}},
    }
    for key, value in extra.items():
        if key == "env":
            doc["builder"]["sandbox"]["env"].update(value)
        elif key == "inputs":
            doc["inputs"].update(value)
        else:
            doc[key] = value
    path.write_text(json.dumps(doc, indent=2))
    return path


def events(stream) -> tuple[list, object]:
    """Drain a Realize/Check stream: (events other than the result, the result)."""
    seen, result = [], None
    for ev in stream:
        kind = ev.WhichOneof("event")
        if kind == "result":
            result = ev.result
        else:
            seen.append((kind, getattr(ev, kind)))
    return seen, result


def log_of(seen: list) -> bytes:
    return b"".join(ev.data for kind, ev in seen if kind == "log")
