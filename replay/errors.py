"""Exit codes of the replay tool and the one exception type that carries them.

Theory of operation
-------------------
Everything the tool can refuse is a :class:`ReplayError` with a one-line message and an exit
code; the command line turns it into ``replay: error: <message>`` on standard error and that
exit code, never a traceback.  A *finding* (a damaged log found by ``verify``, a divergence
found by ``audit`` or ``diff``) is not an error: the command reports it on standard output and
exits with :data:`EXIT_FINDING`.
"""

from __future__ import annotations

EXIT_OK = 0
"""The command did its work; for ``verify``, ``audit`` and ``diff``: nothing wrong found."""
EXIT_FINDING = 1
"""``verify`` found damage, ``audit`` a batch whose events differ, ``diff`` a divergence."""
EXIT_USAGE = 2
"""Bad arguments: unknown option, unknown instrument, a seq beyond the end of the log."""
EXIT_UNREADABLE = 3
"""The data cannot be read: missing directory, not a data directory, unsupported format
version, a damaged log or market definition (for every command but ``verify``), an I/O error."""
EXIT_INTERRUPTED = 130
"""Interrupted (Ctrl-C)."""


class ReplayError(Exception):
    """A refusal with a one-line message and the exit code the command line returns.

    Parameters
    ----------
    message : str
        One line, without a trailing period, naming what and where.
    exit_code : int
        One of the ``EXIT_*`` constants.
    """

    def __init__(self, message: str, exit_code: int = EXIT_UNREADABLE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(ReplayError):
    """Arguments that do not fit the data (unknown instrument, seq out of range, ...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


class DataError(ReplayError):
    """Data that cannot be read (see :data:`EXIT_UNREADABLE`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_UNREADABLE)


class LogDamageError(DataError):
    """A damaged log (see :data:`EXIT_UNREADABLE`), with where the damage is.

    ``missing_data`` marks acknowledged data that is gone (a cut or deleted segment): ``audit``
    reports that as a finding rather than refusing.
    """

    def __init__(
        self, message: str, segment: str, offset: int, seq: int | None, what: str, missing: bool
    ) -> None:
        super().__init__(message)
        self.segment, self.offset, self.seq, self.what = segment, offset, seq, what
        self.missing_data = missing
