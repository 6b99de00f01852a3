"""Errors raised by the schedd's job queue store (:mod:`gwms.pool.schedd.queue`).

All of them are :class:`gwms.errors.GwmsError` subclasses: each one is caused by a request
(a bad job, a bad constraint, an illegal status change, a queue file already in use) and
carries a one-line message meant for the person who made it.
"""

from __future__ import annotations

from gwms.errors import GwmsError


class QueueError(GwmsError):
    """The job queue refused an operation."""


class InvalidJobError(QueueError):
    """A job ad given to ``submit`` (or a value given to ``edit``) is not a valid JSON-form ad.

    ``index`` is the position of the offending job in the submitted list (``None`` when the
    error is not about one job of a batch).
    """

    def __init__(self, message: str, *, index: int | None = None) -> None:
        if index is not None:
            message = f"job {index}: {message}"
        super().__init__(message)
        self.index = index


class InvalidConstraintError(QueueError):
    """A query constraint is not a valid ClassAd expression."""


class TransitionError(QueueError):
    """A job cannot move from its current status to the one asked for."""


class QueueSchemaError(QueueError):
    """The queue file was written by an incompatible version of gwms."""


class QueueLockedError(QueueError):
    """Another process already has this queue open."""
