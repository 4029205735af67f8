"""The one error type a command raises for something the user can fix."""

from __future__ import annotations

import errno


class CliError(Exception):
    """Printed as one line on stderr; the process exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def listen_error(what: str, address: str, exc: OSError) -> CliError:
    """A readable sentence for a failed bind."""
    if exc.errno == errno.EADDRINUSE:
        reason = "address already in use"
    elif exc.errno == errno.EACCES:
        reason = "permission denied"
    elif exc.errno == errno.EADDRNOTAVAIL:
        reason = "no such local address"
    else:
        reason = exc.strerror or str(exc)
    return CliError(f"cannot listen on {address} for {what}: {reason}")
