"""The ``seal`` command: parse arguments, call the daemon, render the result.

No business logic lives here: ``seal store ...`` verbs go to the store's
daemon over gRPC (``rpc.RemoteBackend``), which is started in the background
when none answers (``daemonproc.Supervisor``); ``seal daemon ...`` manages it.
Errors are printed as one line (plus a hint) and turned into an exit code in
``main``; ``--debug`` shows tracebacks.  gRPC and the generated stubs are
imported inside the verbs, so ``seal --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import exitcodes
from .errors import ClientError
from .render import Renderer


def _global_options(suppress: bool) -> argparse.ArgumentParser:
    """Options accepted before or after the verb (``seal --json store ls`` or ``... ls --json``)."""
    default = argparse.SUPPRESS if suppress else None
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--store",
        metavar="DIR",
        default=default,
        help="store directory (default: $SEAL_STORE or $XDG_DATA_HOME/seal)",
    )
    p.add_argument(
        "--socket",
        metavar="PATH",
        default=default,
        help="the daemon's Unix socket (default: $SEAL_SOCKET or <store>/daemon.sock)",
    )
    p.add_argument(
        "--json", action="store_true", default=default or False, help="machine-readable output"
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", default=default or False, help="print only results"
    )
    p.add_argument(
        "--debug", action="store_true", default=default or False, help="show tracebacks on errors"
    )
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _global_options(suppress=True)
    parser = argparse.ArgumentParser(
        prog="seal",
        description="Hermetic, reproducible builds on a content-addressed store.",
        parents=[_global_options(suppress=False)],
        epilog=exitcodes.HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    store = verbs.add_parser("store", help="add, read and maintain store objects", parents=[common])
    sv = store.add_subparsers(dest="store_verb", metavar="STORE_VERB", required=True)

    p = sv.add_parser("add", parents=[common], help="add a file or directory; print its digest")
    p.add_argument("path")
    p.add_argument("--root", metavar="NAME", help="also name it as a root (kept by gc)")

    p = sv.add_parser("cat", parents=[common], help="write an object's bytes to stdout")
    p.add_argument("digest")

    p = sv.add_parser(
        "ls", parents=[common], help="list a tree: mode, size, digest, path per entry"
    )
    p.add_argument("digest")

    p = sv.add_parser(
        "checkout", parents=[common], help="write a tree into a new directory (read-only files)"
    )
    p.add_argument("digest")
    p.add_argument("dir")

    p = sv.add_parser("stat", parents=[common], help="show an object's kind and size")
    p.add_argument("digest")

    sv.add_parser(
        "verify",
        parents=[common],
        help="re-hash every object and cross-check records and files (exit 1 on damage)",
    )

    p = sv.add_parser("gc", parents=[common], help="delete what no root reaches")
    p.add_argument("--dry-run", action="store_true", help="report only; delete nothing")

    p = sv.add_parser("roots", parents=[common], help="list, add or remove named roots")
    rv = p.add_subparsers(dest="roots_verb", metavar="ACTION")
    a = rv.add_parser("add", parents=[common], help="name a digest as a root")
    a.add_argument("name")
    a.add_argument("digest")
    r = rv.add_parser("rm", parents=[common], help="remove a root (gc may then free its objects)")
    r.add_argument("name")

    p = verbs.add_parser(
        "realize",
        parents=[common],
        help="build a derivation (and what it needs); print its output digest(s) last",
    )
    _build_options(p)
    p.add_argument("--root", metavar="NAME", help="also root the outputs under NAME")

    p = verbs.add_parser(
        "check",
        parents=[common],
        help="rebuild ignoring the cache and compare outputs (exit 1 if they differ)",
    )
    _build_options(p)

    p = verbs.add_parser("drv", parents=[common], help="inspect derivations")
    drv = p.add_subparsers(dest="drv_verb", metavar="DRV_VERB", required=True)
    s = drv.add_parser(
        "show", parents=[common], help="the derivation, its realisation and its check results"
    )
    s.add_argument("drv", metavar="DRV", help="a derivation digest or JSON file")

    p = verbs.add_parser("log", parents=[common], help="print the log of a derivation's last build")
    p.add_argument("drv", metavar="DRV", help="a derivation digest or JSON file")

    p = verbs.add_parser("builds", parents=[common], help="list the daemon's builds, newest first")
    p.add_argument("drv", metavar="DRV", nargs="?", default="", help="only this derivation")
    p.add_argument("-n", "--limit", type=int, default=20, help="how many (default 20)")

    p = verbs.add_parser(
        "lock",
        parents=[common],
        help="pin every input of an image config: writes CONFIG.lock and pylock.NAME.toml",
    )
    p.add_argument("config", metavar="CONFIG", help="the image YAML")
    p.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the lock is stale"
    )
    p.add_argument("--index-url", metavar="URL", help="PEP 691 simple index (default: PyPI)")
    p.add_argument("--debian-mirror", metavar="URL", help="default https://deb.debian.org/debian")
    p.add_argument("--debian-suite", metavar="SUITE", help="default bookworm")
    p.add_argument(
        "--keyring", metavar="FILE", help="check InRelease files against this gpgv keyring"
    )
    p.add_argument(
        "--cpython-suite",
        dest="cpython_suites",
        action="append",
        metavar="SUITE",
        help="Debian suites to find the CPython source in (repeatable)",
    )
    p.add_argument(
        "--cpython-signer",
        dest="cpython_signers",
        action="append",
        metavar="X.Y=FINGERPRINT",
        help="pin the OpenPGP key that signs CPython X.Y's sources (repeatable)",
    )

    p = verbs.add_parser(
        "build",
        parents=[common],
        help="build CONFIG's OCI image (locks and fetches first); print its digest last",
    )
    p.add_argument("config", metavar="CONFIG", help="the image YAML")
    p.add_argument(
        "-o", "--output", metavar="OUT.tar", help="the oci-archive to write (default: NAME.tar)"
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="also rebuild every step ignoring the cache and compare (exit 1 if one differs)",
    )

    p = verbs.add_parser(
        "fetch", parents=[common], help="bring everything CONFIG.lock pins into the store"
    )
    p.add_argument("config", metavar="CONFIG", help="the image YAML (its .lock is read)")
    p.add_argument(
        "--offline", action="store_true", help="download nothing; list what the store lacks"
    )
    p.add_argument(
        "--pylock",
        metavar="FILE",
        help="also write a pylock.toml (PEP 751) whose wheels are the store's files",
    )

    daemon = verbs.add_parser(
        "daemon", help="run, start, stop or inspect the store's daemon", parents=[common]
    )
    dv = daemon.add_subparsers(dest="daemon_verb", metavar="DAEMON_VERB", required=True)
    p = dv.add_parser("run", parents=[common], help="serve the store in the foreground")
    p.add_argument(
        "--socket-group",
        metavar="GROUP",
        help="let this group use the socket too (default: only its owner)",
    )
    p.add_argument(
        "--max-jobs", type=int, metavar="N", help="builds that may run at once (default: 2)"
    )
    dv.add_parser(
        "start",
        parents=[common],
        help="start the daemon in the background (client verbs do this by themselves)",
    )
    dv.add_parser("stop", parents=[common], help="stop the daemon")
    dv.add_parser(
        "status",
        parents=[common],
        help="show pid, store, socket, uptime, version (exit 1 if not running)",
    )
    return parser


def _build_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("drv", metavar="DRV", help="a derivation JSON file, or a stored one's digest")
    p.add_argument("--timeout", type=float, default=0.0, metavar="SECONDS", help="wall clock")
    p.add_argument(
        "--max-output", type=int, default=0, metavar="BYTES", help="size limit of the outputs"
    )
    p.add_argument("--max-processes", type=int, default=0, metavar="N", help="process limit")


class _VersionAction(argparse.Action):
    """``--version``, resolved only when asked for (reading metadata costs startup time)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(
            option_strings,
            dest,
            nargs=0,
            default=argparse.SUPPRESS,
            help="show seal's version and exit",
        )

    def __call__(self, parser, namespace, values, option_string=None):
        parser.exit(message=f"seal {_version()}\n")


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("seal")
    except metadata.PackageNotFoundError:
        return "unknown"


def _store_root(args: argparse.Namespace) -> Path:
    from seal.store.layout import default_root

    return Path(args.store) if args.store else default_root()


def _socket(args: argparse.Namespace) -> str | None:
    return args.socket or os.environ.get("SEAL_SOCKET") or None


def _supervisor(args: argparse.Namespace):
    from .daemonproc import Supervisor

    socket = _socket(args)
    # naming only a socket means "that daemon, whatever its store"
    explicit_store = bool(args.store or os.environ.get("SEAL_STORE"))
    return Supervisor(_store_root(args), socket, check_store=explicit_store or socket is None)


def run(args: argparse.Namespace, out: Renderer) -> int:
    if args.verb == "daemon":
        return run_daemon(args, out)
    supervisor = _supervisor(args)
    if args.verb in ("lock", "fetch", "build") and os.path.isfile(args.config):
        supervisor.prestart()  # the daemon starts while this process loads gRPC
    from .rpc import RemoteBackend

    with supervisor:
        backend = RemoteBackend(supervisor.connect)
        if args.verb == "store":
            return run_store(backend, args, out)
        if args.verb in ("lock", "fetch"):
            return run_inputs(supervisor.connect, args, out)
        if args.verb == "build":
            return run_image(supervisor.connect, backend, args, out)
        from .builds import BuildBackend

        return run_build(BuildBackend(supervisor.connect, backend), args, out)


def run_build(backend, args: argparse.Namespace, out: Renderer) -> int:
    verb = args.verb
    if verb in ("realize", "check"):
        check = verb == "check"
        r = backend.realize(
            args.drv,
            check=check,
            root=getattr(args, "root", None),
            timeout=args.timeout,
            max_output=args.max_output,
            max_processes=args.max_processes,
            on_event=out.build_event,
        )
        if not check:
            out.realized(r)
            return exitcodes.OK
        out.checked(r)
        return exitcodes.OK if r["check"]["reproducible"] else exitcodes.FAILED
    if verb == "drv":
        out.derivation(backend.show(args.drv))
    elif verb == "log":
        stream = sys.stdout.buffer
        for chunk in backend.log(args.drv):
            stream.write(chunk)
        stream.flush()
    elif verb == "builds":
        out.builds(backend.builds(args.drv, args.limit))
    return exitcodes.OK


def run_image(connect, store, args: argparse.Namespace, out: Renderer) -> int:
    from .images import ImagesBackend

    r = ImagesBackend(connect, store).build(
        args.config,
        out=args.output,
        check=args.check,
        on_note=out.note,
        on_fetch=out.fetch_event,
        on_event=out.build_event,
    )
    out.image_built(r)
    return exitcodes.FAILED if any(not c["reproducible"] for c in r["checks"]) else exitcodes.OK


def run_inputs(connect, args: argparse.Namespace, out: Renderer) -> int:
    from .inputs import InputsBackend

    backend = InputsBackend(connect)
    if args.verb == "fetch":
        r = backend.fetch(
            args.config, offline=args.offline, on_event=out.fetch_event, pylock=args.pylock
        )
        out.fetched(r)
        return exitcodes.FAILED if r["missing"] else exitcodes.OK
    sources = {
        "index_url": args.index_url,
        "debian_mirror": args.debian_mirror,
        "debian_suite": args.debian_suite,
        "keyring": args.keyring,
        "cpython_suites": args.cpython_suites,
        "cpython_signers": args.cpython_signers,
    }
    r = backend.lock(args.config, check=args.check, sources=sources)
    if args.check:
        out.lock_checked(r)
        return exitcodes.FAILED if r["stale"] else exitcodes.OK
    out.locked(r)
    return exitcodes.OK


def run_store(backend, args: argparse.Namespace, out: Renderer) -> int:
    verb = args.store_verb
    if verb == "add":
        out.added(backend.add(args.path, args.root))
    elif verb == "cat":
        stream = sys.stdout.buffer
        for chunk in backend.cat(args.digest):
            stream.write(chunk)
        stream.flush()
    elif verb == "ls":
        out.listing(backend.ls(args.digest))
    elif verb == "checkout":
        out.checked_out(backend.checkout(args.digest, args.dir))
    elif verb == "stat":
        out.stat(backend.stat(args.digest))
    elif verb == "verify":
        result = backend.verify()
        out.verified(result)
        return exitcodes.OK if result["ok"] else exitcodes.FAILED
    elif verb == "gc":
        out.collected(backend.gc(args.dry_run))
    elif verb == "roots":
        if args.roots_verb == "add":
            r = backend.root_add(args.name, args.digest)
            out.done(r, f"root {r['name']!r} -> {r['digest']}")
        elif args.roots_verb == "rm":
            r = backend.root_rm(args.name)
            out.done(r, f"removed root {r['name']!r}")
        else:
            out.roots(backend.roots())
    return exitcodes.OK


def run_daemon(args: argparse.Namespace, out: Renderer) -> int:
    verb = args.daemon_verb
    if verb == "run":
        from seal.daemon.server import run as serve  # the one daemon import of the client

        if args.max_jobs is not None and args.max_jobs < 1:
            raise ClientError(
                "--max-jobs must be at least 1", reason="usage", exit_code=exitcodes.USAGE
            )
        return serve(
            _store_root(args),
            socket=_socket(args),
            socket_group=args.socket_group,
            max_jobs=args.max_jobs,
        )
    with _supervisor(args) as supervisor:
        if verb == "status":
            info = supervisor.running()
            out.daemon_status(info)
            return exitcodes.OK if info is not None else exitcodes.FAILED
        if verb == "start":
            info, started = supervisor.start()
            out.daemon_started(info, started)
        elif verb == "stop":
            out.daemon_stopped(supervisor.stop())
    return exitcodes.OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    out = Renderer(as_json=args.json, quiet=args.quiet)
    try:
        return run(args, out)
    except ClientError as exc:
        if args.debug:
            raise
        out.error(exc.message, exc.hint, exc.reason)
        return exc.exit_code
    except KeyboardInterrupt:
        if args.debug:
            raise
        out.error("interrupted", None, "interrupted")
        return exitcodes.INTERRUPTED
    except BrokenPipeError:
        # the reader went away (e.g. `seal store cat ... | head`): not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return exitcodes.OK
    except Exception as exc:  # a bug: one line unless --debug
        if args.debug:
            raise
        out.error(
            f"internal error: {type(exc).__name__}: {exc}",
            "rerun with --debug and report the traceback",
            "internal-error",
        )
        return exitcodes.INTERNAL


def console() -> None:
    """The ``seal`` program: ``main``, then exit without the interpreter's teardown.

    Tearing down gRPC's runtime and every module costs ~30 ms per call, a
    seventh of a ``seal store stat``; the work is done and the output flushed
    by then, and the daemon is not our child to wait for.  (``main`` itself
    returns normally, for callers in-process.)
    """
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    console()
