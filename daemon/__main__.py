"""``python -m seal.daemon --store DIR [--socket PATH] [--socket-group GROUP]``: serve in the
foreground, logging to stderr, until SIGTERM/SIGINT or a Shutdown call."""

from __future__ import annotations

import argparse
import sys

from seal.daemon.leases import DEFAULT_TTL
from seal.daemon.server import run
from seal.store import default_root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m seal.daemon",
        description="Serve a seal store over gRPC on a Unix socket (foreground; logs to stderr).",
    )
    parser.add_argument(
        "--store",
        metavar="DIR",
        help="store directory (default: $SEAL_STORE or ~/.local/share/seal)",
    )
    parser.add_argument(
        "--socket", metavar="PATH", help="listen here (default: <store>/daemon.sock)"
    )
    parser.add_argument(
        "--socket-group",
        metavar="GROUP",
        help="let this group connect too (socket 0660 in a 0750 directory)",
    )
    parser.add_argument(
        "--lease-ttl",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_TTL,
        help=f"tree uploads lapse after this long unused (default: {DEFAULT_TTL:.0f})",
    )
    parser.add_argument(
        "--max-jobs",
        metavar="N",
        type=int,
        default=None,
        help="builds that may run at once (default: 2)",
    )
    args = parser.parse_args(argv)
    if args.lease_ttl <= 0:
        parser.error("--lease-ttl must be positive")
    if args.max_jobs is not None and args.max_jobs < 1:
        parser.error("--max-jobs must be at least 1")
    store = args.store if args.store else default_root()
    return run(
        store, args.socket, args.socket_group, lease_ttl=args.lease_ttl, max_jobs=args.max_jobs
    )


if __name__ == "__main__":
    sys.exit(main())
