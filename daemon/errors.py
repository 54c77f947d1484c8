"""The daemon's own exceptions (the store's live in ``seal.store.errors``).

Same shape as the store's: a message a person can act on, an optional
``hint``, a stable kebab-case ``reason`` that travels to the client as the
``seal-reason`` trailing metadata.  Which gRPC status each one becomes is
decided in one table, ``seal.daemon.services.status``.  This module imports
nothing else from the package.
"""

from __future__ import annotations


class DaemonError(Exception):
    """Base class of every error the daemon raises itself."""

    reason = "daemon-error"

    def __init__(self, message: str, *, hint: str | None = None, temporary: bool = False):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.temporary = temporary


class InvalidRequest(DaemonError, ValueError):
    """A request is malformed: a missing or repeated header, bad compressed data, ..."""

    reason = "invalid-request"

    def __init__(self, message: str, *, reason: str | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        if reason is not None:
            self.reason = reason


class InvalidDocument(DaemonError, ValueError):
    """A document a user wrote (an image config, a lock file) breaks a rule; ``str()``
    names the file and the line."""

    reason = "document-invalid"


class TooLarge(DaemonError):
    """A message or a list in it exceeds the API's limits (1 MiB payloads, 10,000 digests)."""

    reason = "message-too-large"

    def __init__(self, message: str, *, reason: str | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        if reason is not None:
            self.reason = reason


class OutOfRange(DaemonError):
    """A Get starts past the end of the object."""

    reason = "out-of-range"


class LeaseNotFound(DaemonError, LookupError):
    """No open tree upload has this lease id (it was committed, cancelled or lapsed)."""

    reason = "lease-not-found"

    def __init__(self, lease_id: str):
        super().__init__(
            f"no tree upload with lease {lease_id!r}: it was committed, cancelled, "
            "lapsed after its TTL, or the daemon restarted",
            hint="start the upload again with PutTree; blobs already sent are found present",
        )
        self.lease_id = lease_id


class RootNotFound(DaemonError, LookupError):
    """No root has this name."""

    reason = "root-not-found"

    def __init__(self, name: str):
        super().__init__(f"no root named {name!r}", hint="'seal store roots' lists them")
        self.name = name


class InvalidRootName(DaemonError, ValueError):
    """A root name is empty, too long or not printable."""

    reason = "invalid-root-name"

    def __init__(self, name: str):
        super().__init__(f"invalid root name {name!r}: use 1-255 printable characters")
        self.name = name


class SocketInUse(DaemonError):
    """Another process answers on the socket path this daemon was asked to listen on."""

    reason = "socket-in-use"

    def __init__(self, path: str):
        super().__init__(
            f"another daemon answers on {path}",
            hint="stop it ('seal daemon stop') or pass another --socket",
            temporary=True,
        )
        self.path = path


class ListenError(DaemonError):
    """The daemon cannot create or bind its socket."""

    reason = "listen-failed"


class InvalidDerivation(InvalidRequest):
    """A derivation document is malformed: bad JSON, an unknown or missing field, a cycle."""

    reason = "invalid-derivation"

    def __init__(self, message: str, *, where: str = "", hint: str | None = None):
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.where = where


class MissingInput(DaemonError, LookupError):
    """A derivation names an input object or derivation the store does not have."""

    reason = "missing-input"


class SandboxUnavailable(DaemonError):
    """bubblewrap is missing or cannot create namespaces on this machine."""

    reason = "sandbox-unavailable"


class BuildFailed(DaemonError):
    """A build ran and failed: the builder's exit status, a limit, a forbidden output."""

    reason = "build-failed"

    def __init__(self, message: str, *, drv: str = "", log: str = "", hint: str | None = None):
        super().__init__(message, hint=hint)
        self.drv = drv  # the derivation's digest
        self.log = log  # the stored log's digest, when there is one


class InputCorrupt(BuildFailed):
    """A build's input no longer hashes to its name in the store: data loss, not a build bug."""

    reason = "data-loss"


class BuildCancelled(DaemonError):
    """Every client waiting for a build went away, or the daemon is stopping."""

    reason = "build-cancelled"


class HandoffUnknown(DaemonError, LookupError):
    """AddHandoff named a token the daemon does not hold (unknown, used or lapsed)."""

    reason = "handoff-unknown"

    def __init__(self, ttl: float):
        super().__init__(
            "no descriptor waits under this handoff token (used, lapsed or never given)",
            hint=f"hand the descriptor over again; a token serves one call within {ttl:.0f} s",
        )
