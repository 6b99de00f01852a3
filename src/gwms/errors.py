"""The root of gwms's own exceptions.

Every error that a user can cause (bad input, bad config, a refused request) is a
:class:`GwmsError` or a subclass. The command line prints it as one line and exits
non-zero; anything else is a bug and shows a traceback only with ``--debug``.
"""

from __future__ import annotations


class GwmsError(Exception):
    """An error with a message meant for the person at the keyboard."""

    exit_code: int = 1
    #: The HTTP status a service answers with when a request causes this error.
    http_status: int = 400

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(GwmsError):
    """The command was called with arguments that cannot work."""

    exit_code = 2
