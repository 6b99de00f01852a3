"""Errors of the startd agent (standard library only: no ``gwms.errors`` here).

The ``gwms`` command line turns :class:`StartdError` into its one-line error output;
the zipapp entry point prints the message itself.
"""

from __future__ import annotations


class StartdError(Exception):
    """An error the person starting the agent can fix (bad option, unreadable token)."""

    exit_code = 2


class StartdConfigError(StartdError):
    """An option or configuration value that is not usable."""


class JobSpecError(Exception):
    """A job ad the starter cannot turn into a command line or environment."""


class ClaimGone(Exception):
    """The claim's job is no longer the agent's to run: the schedd dropped the claim, or a
    user removed or held the job (``claim_alive``: the claim itself still exists, idle)."""

    def __init__(self, message: str, *, claim_alive: bool = False) -> None:
        super().__init__(message)
        self.claim_alive = claim_alive
