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
