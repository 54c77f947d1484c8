"""``seal build``: lock when there is no lock, fetch, build the image, write the archive.

The daemon plans and builds; the client sends the config's and lock's texts
and the config's ``app`` files (the daemon never opens a path the client
names), then copies the archive the daemon made out of the store.  The
archive and the hardening report are written beside, then renamed, so an
interrupted build leaves no half-written image.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from seal.proto.v1 import build_pb2 as pb
from seal.proto.v1 import build_pb2_grpc as pb_grpc

from . import exitcodes
from .builds import check_dict
from .errors import ClientError
from .files import read_limited, write_atomically
from .inputs import MAX_CONFIG, MAX_LOCK, InputsBackend, lock_path
from .rpc import RemoteBackend, translated


def default_output(config: Path) -> Path:
    """``python-fastapi.yaml`` -> ``python-fastapi.tar`` in the working directory."""
    return Path(config.name.split(".")[0] + ".tar")


def hardening_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".tar") + ".hardening.json")


class ImagesBackend:
    def __init__(self, connect: Callable[..., object], store: RemoteBackend):
        self._connect = connect
        self._store = store

    def build(
        self,
        config: str,
        *,
        out: str | None,
        check: bool,
        on_note: Callable[[str], None],
        on_fetch: Callable[[str, dict], None],
        on_event: Callable[[str, object], None],
    ) -> dict:
        path = Path(config)
        text = read_limited(path, "config", MAX_CONFIG)
        target = Path(out) if out else default_output(path)
        if not target.parent.is_dir():
            raise ClientError(
                f"-o {target}: {target.parent} is not a directory",
                reason="invalid-option",
                exit_code=exitcodes.BAD_INPUT,
            )
        inputs = InputsBackend(self._connect)
        lock = lock_path(path)
        if not lock.exists():
            on_note(f"{lock} does not exist: locking {config} first")
            inputs.lock(config, check=False, sources={})
        inputs.fetch(config, offline=False, on_event=on_fetch)
        app = self._upload_app(path, text)
        request = pb.ImageBuildRequest(
            config_file=config,
            config_text=text,
            lock_file=str(lock),
            lock_text=read_limited(lock, "lock file", MAX_LOCK),
            app_tree=app,
            check=check,
        )
        stub = pb_grpc.ImagesStub(self._connect(create_store=True).channel)
        built: pb.ImageBuilt | None = None
        with translated(" during the build"):
            stream = stub.BuildImage(request, timeout=None)
            try:
                for event in stream:
                    if event.WhichOneof("event") == "built":
                        built = event.built
                    else:
                        kind = event.build.WhichOneof("event")
                        on_event(kind, getattr(event.build, kind))
            except BaseException:
                stream.cancel()
                raise
        if built is None:
            raise ClientError(
                "the daemon ended the build stream without an image",
                reason="daemon-error",
                exit_code=exitcodes.INTERNAL,
            )
        report = hardening_path(target)
        write_atomically(target, self._store.cat(built.archive))
        write_atomically(report, self._store.cat(built.hardening))
        return {
            "config": config,
            "image": str(target),
            "manifest_digest": built.manifest_digest,
            "archive": built.archive,
            "archive_size": built.archive_size,
            "hardening": str(report),
            "root": built.root,
            "source_date_epoch": built.source_date_epoch,
            "cached": built.cached,
            "checks": [check_dict(c) | {"drv": c.drv} for c in built.checks],
        }

    def _upload_app(self, config: Path, text: bytes) -> str:
        """The config's ``app`` entries, copied at their relative paths into one uploaded tree.

        Only the ``app`` list is read here; the daemon checks the whole config.
        Entries must stay inside the config's folder.
        """
        entries = _app_entries(text)
        if not entries:
            return ""
        top = config.resolve().parent
        with tempfile.TemporaryDirectory(prefix="seal-app-") as tmp:
            stage = Path(tmp) / "app"
            stage.mkdir()
            for entry in entries:
                src = (top / entry).resolve()
                if src != top and top not in src.parents:
                    raise _bad_app(f"app path {entry!r} leads out of {top}")
                if not src.exists():
                    raise _bad_app(f"app path {entry!r} does not exist in {top}")
                dest = stage / src.relative_to(top)
                dest.parent.mkdir(parents=True, exist_ok=True)
                if src.is_dir():
                    shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
                else:
                    shutil.copy2(src, dest)
            return self._store.add(str(stage))["digest"]


def _app_entries(text: bytes) -> list[str]:
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return []  # the daemon reports the error with its line and column
    app = doc.get("app") if isinstance(doc, dict) else None
    if isinstance(app, str):
        return [app]
    return [a for a in app if isinstance(a, str)] if isinstance(app, list) else []


def _bad_app(message: str) -> ClientError:
    return ClientError(message, reason="config-invalid", exit_code=exitcodes.BAD_INPUT)
