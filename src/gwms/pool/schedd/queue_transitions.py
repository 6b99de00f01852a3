"""Which job status changes are legal, and what event each one logs (pure decisions).

The job life cycle with HTCondor's ``JobStatus`` codes; a cell is the event logged, a
dash a refused change::

    from \\ to      IDLE(1)    RUNNING(2)  REMOVED(3)  COMPLETED(4)  HELD(5)
    IDLE(1)        -          execute     removed     -             held
    RUNNING(2)     evicted    -           removed     terminated    held
    HELD(5)        released   -           removed     -             -

COMPLETED and REMOVED are final: such jobs live in the history, and every change asked
of them is refused ("removing a completed job is an error").
"""

from __future__ import annotations

from gwms.pool.jobattrs import COMPLETED, HELD, IDLE, REMOVED, RUNNING
from gwms.pool.schedd.queue_errors import TransitionError
from gwms.pool.schedd.queue_events import JobEventType


__all__ = [
    "COMPLETED",
    "FINAL_STATUSES",
    "HELD",
    "IDLE",
    "QUEUED_STATUSES",
    "REMOVED",
    "RUNNING",
    "STATUS_NAMES",
    "status_name",
    "transition_event",
]

#: The statuses a queued job can have or reach, by their lower-case names.
STATUS_NAMES: dict[int, str] = {
    IDLE: "idle",
    RUNNING: "running",
    REMOVED: "removed",
    COMPLETED: "completed",
    HELD: "held",
}

#: Statuses a job can have while it is in the queue (the others move it to the history).
QUEUED_STATUSES: frozenset[int] = frozenset({IDLE, RUNNING, HELD})
#: Statuses that end a job's life; reaching one moves the job to the history.
FINAL_STATUSES: frozenset[int] = frozenset({REMOVED, COMPLETED})

_EVENTS: dict[tuple[int, int], JobEventType] = {
    (IDLE, RUNNING): JobEventType.EXECUTE,
    (IDLE, HELD): JobEventType.HELD,
    (IDLE, REMOVED): JobEventType.REMOVED,
    (RUNNING, IDLE): JobEventType.EVICTED,
    (RUNNING, HELD): JobEventType.HELD,
    (RUNNING, REMOVED): JobEventType.REMOVED,
    (RUNNING, COMPLETED): JobEventType.TERMINATED,
    (HELD, IDLE): JobEventType.RELEASED,
    (HELD, REMOVED): JobEventType.REMOVED,
}

_REFUSALS: dict[tuple[int, int], str] = {
    (IDLE, IDLE): "job is not held",
    (IDLE, COMPLETED): "job is not running",
    (RUNNING, RUNNING): "job is already running",
    (HELD, RUNNING): "job is held",
    (HELD, HELD): "job is already held",
    (HELD, COMPLETED): "job is not running",
}


def status_name(status: int) -> str:
    """The lower-case name of a ``JobStatus`` code (``"code 7"`` for one gwms does not use)."""
    return STATUS_NAMES.get(status, f"code {status}")


def transition_event(current: int, target: int) -> JobEventType:
    """The event that moving a job from ``current`` to ``target`` logs.

    Raises :class:`TransitionError` (with the reason, e.g. ``"job is not held"``) when the
    change is not allowed.
    """
    if target not in STATUS_NAMES:
        raise TransitionError(f"unsupported job status {target}")
    if current in FINAL_STATUSES:
        raise TransitionError(f"job is already {status_name(current)}")
    event = _EVENTS.get((current, target))
    if event is None:
        reason = _REFUSALS.get((current, target))
        if reason is None:
            reason = f"job cannot go from {status_name(current)} to {status_name(target)}"
        raise TransitionError(reason)
    return event
