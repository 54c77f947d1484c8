"""The ``seal`` command: parse arguments, call a backend, render the result.

No business logic lives here; errors are printed as one line (plus a hint)
and turned into an exit code in ``main``; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata
from pathlib import Path

from . import exitcodes
from .errors import ClientError
from .render import Renderer


def _global_options(suppress: bool) -> argparse.ArgumentParser:
    """Options accepted before or after the verb (``seal --json store ls`` or ``... ls --json``)."""
    default = argparse.SUPPRESS if suppress else None
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--store", metavar="DIR", default=default,
                   help="store directory (default: $SEAL_STORE or $XDG_DATA_HOME/seal)")
    p.add_argument("--json", action="store_true", default=default or False,
                   help="machine-readable output")
    p.add_argument("-q", "--quiet", action="store_true", default=default or False,
                   help="print only results")
    p.add_argument("--debug", action="store_true", default=default or False,
                   help="show tracebacks on errors")
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
    parser.add_argument("--version", action="version", version=f"seal {_version()}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    store = verbs.add_parser("store", help="add, read and maintain store objects",
                             parents=[common])
    sv = store.add_subparsers(dest="store_verb", metavar="STORE_VERB", required=True)

    p = sv.add_parser("add", parents=[common], help="add a file or directory; print its digest")
    p.add_argument("path")
    p.add_argument("--root", metavar="NAME", help="also name it as a root (kept by gc)")

    p = sv.add_parser("cat", parents=[common], help="write an object's bytes to stdout")
    p.add_argument("digest")

    p = sv.add_parser("ls", parents=[common],
                      help="list a tree: mode, size, digest, path per entry")
    p.add_argument("digest")

    p = sv.add_parser("checkout", parents=[common],
                      help="materialize a tree in a new directory (hardlinks, read-only files)")
    p.add_argument("digest")
    p.add_argument("dir")

    p = sv.add_parser("stat", parents=[common], help="show an object's kind and size")
    p.add_argument("digest")

    sv.add_parser("verify", parents=[common],
                  help="re-hash every object and cross-check records and files (exit 1 on damage)")

    p = sv.add_parser("gc", parents=[common], help="delete what no root reaches")
    p.add_argument("--dry-run", action="store_true", help="report only; delete nothing")

    p = sv.add_parser("roots", parents=[common], help="list, add or remove named roots")
    rv = p.add_subparsers(dest="roots_verb", metavar="ACTION")
    a = rv.add_parser("add", parents=[common], help="name a digest as a root")
    a.add_argument("name")
    a.add_argument("digest")
    r = rv.add_parser("rm", parents=[common], help="remove a root (gc may then free its objects)")
    r.add_argument("name")
    return parser


def _version() -> str:
    try:
        return metadata.version("seal")
    except metadata.PackageNotFoundError:
        return "unknown"


def _store_root(args: argparse.Namespace) -> Path:
    from seal.store.store import default_root

    return Path(args.store) if args.store else default_root()


def run(args: argparse.Namespace, out: Renderer) -> int:
    from .local import LocalBackend

    backend = LocalBackend(_store_root(args))
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
        out.error(f"internal error: {type(exc).__name__}: {exc}",
                  "rerun with --debug and report the traceback", "internal-error")
        return exitcodes.INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
