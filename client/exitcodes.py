"""Exit codes of the ``seal`` command (listed in ``seal --help``)."""

OK = 0
FAILED = 1  # the command ran and found a problem (e.g. verify found damage)
USAGE = 2  # the command line is wrong
BAD_INPUT = 3  # an argument names something unusable: bad digest, FIFO in a tree, ...
NOT_FOUND = 4  # no such object, root or store
DATA_LOSS = 5  # stored bytes do not match their digest
BUSY = 6  # the store is locked by another writer
INCOMPATIBLE = 7  # the store's format is newer than this seal
INTERRUPTED = 130  # Ctrl-C
INTERNAL = 70  # a bug in seal: rerun with --debug and report the traceback

HELP = """exit codes:
  0  success
  1  the command found a problem (verify: missing or corrupt objects)
  2  usage error
  3  bad input (malformed digest, unsupported file, invalid name)
  4  not found (object, root or store)
  5  data loss (content does not match its digest)
  6  store busy (locked by another writer)
  7  incompatible store format
  70 internal error (rerun with --debug)"""
