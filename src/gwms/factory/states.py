"""A pilot's states as the factory tracks them, and how a site's answer moves them.

::

    unsubmitted --submit--> pending --> (staging) --> running --> completed | failed
         |                     |  ^                      |
         |                     v  | release              v
         +--refused--> failed  held -------------> removed | lost

``unsubmitted``: the record is written, the site has not confirmed it yet (the factory
writes it before it submits, so a crash in between loses nothing). ``staging`` is kept
for backends that report stage-in. Every state before ``running`` counts as idle: the
most common bug of pilot systems is over-submission from uncounted waiting states.
``lost``: the site no longer knows the pilot (for longer than the grace).
"""

from __future__ import annotations

from enum import Enum

from gwms.factory.backends.base import SiteState

__all__ = [
    "ACTIVE_STATES",
    "IDLE_STATES",
    "TERMINAL_STATES",
    "PilotState",
    "from_site_state",
]


class PilotState(str, Enum):
    """A pilot's state in the factory's store."""

    UNSUBMITTED = "unsubmitted"
    PENDING = "pending"
    STAGING = "staging"
    RUNNING = "running"
    HELD = "held"
    COMPLETED = "completed"
    FAILED = "failed"
    REMOVED = "removed"
    LOST = "lost"


IDLE_STATES: frozenset[PilotState] = frozenset(
    {PilotState.UNSUBMITTED, PilotState.PENDING, PilotState.STAGING}
)
TERMINAL_STATES: frozenset[PilotState] = frozenset(
    {PilotState.COMPLETED, PilotState.FAILED, PilotState.REMOVED, PilotState.LOST}
)
ACTIVE_STATES: frozenset[PilotState] = frozenset(set(PilotState) - TERMINAL_STATES)

_FROM_SITE = {
    SiteState.PENDING: PilotState.PENDING,
    SiteState.RUNNING: PilotState.RUNNING,
    SiteState.HELD: PilotState.HELD,
    SiteState.COMPLETED: PilotState.COMPLETED,
    SiteState.FAILED: PilotState.FAILED,
    SiteState.REMOVED: PilotState.REMOVED,
}


def from_site_state(site: SiteState) -> PilotState | None:
    """The pilot state a site state means; None for UNKNOWN (keep the last known state)."""
    return _FROM_SITE.get(site)
