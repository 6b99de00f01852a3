"""The job event log of the schedd's queue: one row per thing that happened to a job.

Events are written in the same transaction as the change they describe, so the log and
the queue never disagree. :class:`JobEvent` is the row; :meth:`JobEvent.as_dict` is the
JSON-lines export form (``{"cluster", "proc", "time", "type", "details"}``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class JobEventType(StrEnum):
    """What happened to a job (the value is what the log stores and exports)."""

    SUBMIT = "submit"
    EXECUTE = "execute"
    EVICTED = "evicted"
    HELD = "held"
    RELEASED = "released"
    TERMINATED = "terminated"
    REMOVED = "removed"
    EDITED = "edited"


@dataclass(frozen=True)
class JobEvent:
    """One entry of a job's event log.

    ``time`` is seconds since the epoch (the queue's clock); ``details`` holds what the
    event type carries: the exit code for ``terminated``, the reason and codes for
    ``held``, the attribute and value for ``edited``, the host for ``execute``.
    """

    cluster: int
    proc: int
    time: float
    type: JobEventType
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (one line of the JSON-lines export)."""
        return {
            "cluster": self.cluster,
            "proc": self.proc,
            "time": self.time,
            "type": str(self.type),
            "details": dict(self.details),
        }
