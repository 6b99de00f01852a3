"""When a failing entry is paused, as pure functions over an :class:`EntryHealth` value.

An entry whose submissions are refused ``max_submit_failures`` times in a row, or whose
pilots die early (fail before running, or within ``early_death_s`` of starting)
``max_early_deaths`` times in a row, is paused: no submissions for ``pause_s``, doubling
with each pause in a row up to ``pause_max_s``. After a pause the entry is on
probation: one submission per cycle until a pilot proves healthy (ran ``early_death_s``,
or ended with exit code 0), so a broken site never gets a flood. The ad says why it
is paused and until when.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gwms.factory.config import FailurePolicy
from gwms.factory.states import PilotState

__all__ = [
    "EntryHealth",
    "is_early_death",
    "pause_length",
    "record_healthy_pilot",
    "record_pilot_end",
    "record_submissions",
    "submit_cap",
]


@dataclass(frozen=True)
class EntryHealth:
    """Failure counters of one entry and its pause."""

    submit_failures: int = 0
    early_deaths: int = 0
    pauses: int = 0
    paused_until: float = 0.0
    reason: str = ""
    probation: bool = False
    paused_at: float = 0.0

    def paused(self, now: float) -> bool:
        """True while a failure pause lasts."""
        return now < self.paused_until


def pause_length(pauses: int, policy: FailurePolicy) -> float:
    """Seconds of the ``pauses``-th pause in a row: ``pause_s`` doubling, capped."""
    if pauses <= 0:
        return 0.0
    return min(policy.pause_max_s, policy.pause_s * 2.0 ** min(pauses - 1, 60))


def _pause(h: EntryHealth, reason: str, now: float, policy: FailurePolicy) -> EntryHealth:
    pauses = h.pauses + 1
    return EntryHealth(
        submit_failures=0,
        early_deaths=0,
        pauses=pauses,
        paused_until=now + pause_length(pauses, policy),
        reason=reason,
        probation=True,
        paused_at=now,
    )


def record_submissions(
    h: EntryHealth, ok: int, refused: int, reason: str, now: float, policy: FailurePolicy
) -> EntryHealth:
    """After one submit call: ``ok`` pilots accepted, ``refused`` refused (``reason``:
    the site's message). A call with nothing accepted is a failure."""
    if ok > 0:
        return replace(h, submit_failures=0)
    if refused <= 0:
        return h
    failures = h.submit_failures + 1
    if failures >= policy.max_submit_failures:
        return _pause(h, f"{failures} submissions refused in a row: {reason}", now, policy)
    return replace(h, submit_failures=failures)


def is_early_death(
    state: PilotState, exit_code: int | None, ran_s: float | None, policy: FailurePolicy
) -> bool:
    """True if a pilot that ended in ``state`` died before starting properly: it failed
    (or exited non-zero) without running, or within ``early_death_s`` of starting.
    Removed pilots (the factory's doing) never count."""
    if state is PilotState.REMOVED:
        return False
    if state is PilotState.COMPLETED and exit_code in (0, None):
        return False
    if state not in (PilotState.FAILED, PilotState.COMPLETED, PilotState.LOST):
        return False
    return ran_s is None or ran_s < policy.early_death_s


def record_pilot_end(
    h: EntryHealth, early: bool, reason: str, now: float, policy: FailurePolicy
) -> EntryHealth:
    """After a pilot ended: an early death counts toward a pause; any other end is
    neutral (health is proven by :func:`record_healthy_pilot`)."""
    if not early:
        return h
    deaths = h.early_deaths + 1
    if deaths >= policy.max_early_deaths:
        return _pause(h, f"{deaths} pilots died early in a row: {reason}", now, policy)
    return replace(h, early_deaths=deaths)


def record_healthy_pilot(h: EntryHealth, started_at: float | None = None) -> EntryHealth:
    """A pilot that started running at ``started_at`` ran long enough (or ended well):
    counters, back-off and probation reset (a pause already under way runs out as
    planned). A pilot that started before the last pause proves nothing about the site
    since, and changes nothing."""
    if started_at is not None and started_at < h.paused_at:
        return h
    if h.early_deaths == 0 and h.pauses == 0 and not h.probation:
        return h
    return replace(h, early_deaths=0, pauses=0, probation=False)


def submit_cap(h: EntryHealth, now: float, budget: int) -> int:
    """Submissions allowed this cycle: 0 while paused, 1 on probation, else ``budget``."""
    if h.paused(now):
        return 0
    if h.probation:
        return min(1, budget)
    return budget
