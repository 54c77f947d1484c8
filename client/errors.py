"""The client's one exception: what to print and which exit code to return."""

from __future__ import annotations

from . import exitcodes


class ClientError(Exception):
    """An error to show as one line (plus an optional hint) and an exit code."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        reason: str = "client-error",
        exit_code: int = exitcodes.FAILED,
    ):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.reason = reason
        self.exit_code = exit_code


def corrupt_download(what: str) -> ClientError:
    """Bytes the daemon sent do not hash to the digest they were asked for."""
    return ClientError(
        what, hint="run 'seal store verify'", reason="corrupt-object", exit_code=exitcodes.DATA_LOSS
    )
