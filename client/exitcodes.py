"""Exit codes of the ``seal`` command (listed in ``seal --help``)."""

OK = 0
FAILED = 1  # the command found a problem (verify: damage; check: not reproducible; ...)
USAGE = 2  # the command line is wrong
BAD_INPUT = 3  # an argument names something unusable: bad digest, FIFO in a tree, ...
NOT_FOUND = 4  # no such object, root or store
DATA_LOSS = 5  # stored or sent bytes do not match their digest
BUSY = 6  # the store is locked by another writer
INCOMPATIBLE = 7  # the store's format (or the daemon) is newer than this seal
UNAVAILABLE = 8  # the daemon could not be reached or started, or went away mid-call
PRECONDITION = 9  # the daemon refused: the store is not in the state the call needs
LIMIT = 10  # a size or resource limit was hit (message too large, disk full, ...)
PERMISSION = 11  # not allowed: e.g. the daemon's socket belongs to another user
BUILD_FAILED = 12  # a build ran and failed (its log says why), or was cancelled
INTERRUPTED = 130  # Ctrl-C
INTERNAL = 70  # a bug in seal: rerun with --debug and report the traceback

# One table: (gRPC status code name, seal-reason) -> exit code; first match wins and
# None matches anything.  Errors raised in the client itself (input checked with the
# store's helpers) are looked up as ``rpc.LOCAL`` with their reason.  No gRPC here: the
# client starts a daemon and reports its failures before it loads gRPC.
EXIT_CODES: list[tuple[str | None, str | None, int]] = [
    (None, "store-locked", BUSY),
    (None, "store-version", INCOMPATIBLE),
    (None, "daemon-incompatible", INCOMPATIBLE),
    (None, "store-missing", NOT_FOUND),
    (None, "build-failed", BUILD_FAILED),
    (None, "build-cancelled", BUILD_FAILED),
    ("INVALID_ARGUMENT", None, BAD_INPUT),
    ("OUT_OF_RANGE", None, BAD_INPUT),
    ("ALREADY_EXISTS", None, BAD_INPUT),
    ("NOT_FOUND", None, NOT_FOUND),
    ("DATA_LOSS", None, DATA_LOSS),
    ("UNAVAILABLE", None, UNAVAILABLE),
    ("DEADLINE_EXCEEDED", None, UNAVAILABLE),
    ("ABORTED", None, UNAVAILABLE),
    ("FAILED_PRECONDITION", None, PRECONDITION),
    ("RESOURCE_EXHAUSTED", None, LIMIT),
    ("PERMISSION_DENIED", None, PERMISSION),
    ("UNAUTHENTICATED", None, PERMISSION),
    ("UNIMPLEMENTED", None, INCOMPATIBLE),
    ("CANCELLED", None, INTERRUPTED),
    (None, None, INTERNAL),  # INTERNAL, UNKNOWN: a bug in the daemon
]


def exit_code(code: str | None, reason: str | None) -> int:
    """The exit code for a status code name and a seal-reason (see ``EXIT_CODES``)."""
    for row_code, row_reason, exit_ in EXIT_CODES:
        if (row_code is None or row_code == code) and (row_reason is None or row_reason == reason):
            return exit_
    return INTERNAL  # pragma: no cover - the last row matches everything


HELP = """exit codes:
  0  success
  1  the command found a problem (verify: missing or corrupt objects;
     check: the rebuild differs; daemon status: no daemon running)
  2  usage error
  3  bad input (malformed digest, unsupported file, invalid name)
  4  not found (object, root or store)
  5  data loss (content does not match its digest)
  6  store busy (locked by another writer)
  7  incompatible store format or daemon
  8  daemon unavailable (could not be started or reached, or it went away;
     see <store>/daemon.log)
  9  failed precondition (the daemon refused the call in the store's state)
  10 resource limit (message too large, disk full, too many requests)
  11 permission denied (e.g. the daemon socket belongs to another user)
  12 build failed (the builder failed, a limit was hit, or an output was refused);
     seal check: 1 when the rebuild differs
  70 internal error (rerun with --debug)
  130 interrupted (Ctrl-C)"""
