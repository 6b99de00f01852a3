"""When to ask the factory to remove glideins: a pure state machine per entry.

A group's request to an entry carries a removal level (``ReqRemoveExcess``), one of
``NO < WAIT < IDLE < ALL``: remove nothing; remove glideins not yet submitted to the
site; also those queued at the site; also running ones. The factory removes the excess
over the request (plus a margin) at a limited rate.

:func:`decide_removal` takes the state carried from the previous cycle
(:class:`RemovalState`, one per entry), what this cycle saw (:class:`Observation`) and
the group's policy (:class:`RemovalPolicy`), and returns a :class:`RemovalDecision`
holding the level, the margin and the state for the next cycle.

The original's rules (``decide_removal_type``):

- automatic: WAIT after more than 5 consecutive cycles without idle jobs for the entry;
  IDLE when, on top of that, every glidein was idle for more than 10 cycles; ALL when, on
  top of that, there were no glideins at all for more than 10 cycles;
- configured (``glideins_removal``): ``type`` once there were no idle jobs for more than
  ``wait`` cycles, or at once with ``requests_tracking`` (then ``margin`` is sent too);
  ``DISABLE`` turns every removal off;
- the request is the higher of the two.

gwms adds guardrails, because a single ALL decided on bad data once drained a whole
pool (GlideinWMS issue #282, a collector query that failed and looked empty):

- an incomplete cycle (a query failed or answered partially) advances no counter and
  never sends more than WAIT (removing glideins that never reached a site is harmless);
- the level rises by at most one step per cycle (NO -> WAIT -> IDLE -> ALL), and ALL
  comes only after IDLE was sent for ``all_after_idle_cycles`` cycles;
- idle first: ALL comes only after IDLE was sent (the factory removes the glideins
  queued at the site first, and within ALL it still takes queued ones before running
  ones); lowering the level is always immediate. ALL does not wait for the entry's idle
  *slots* to go: IDLE never removes a running glidein, so with the queue empty (every
  slot idle) ALL would never come. The factory removes only the excess over the
  request's max, which counts the glideins running jobs (``max_run``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum

__all__ = [
    "Observation",
    "RemovalDecision",
    "RemovalLevel",
    "RemovalPolicy",
    "RemovalState",
    "decide_removal",
]


class RemovalLevel(IntEnum):
    """What the factory may remove: nothing, unsubmitted, also queued, also running."""

    NO = 0
    WAIT = 1
    IDLE = 2
    ALL = 3

    @classmethod
    def parse(cls, text: str) -> RemovalLevel:
        """A level from its name (case-blind)."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"removal level must be NO, WAIT, IDLE or ALL, not {text!r}") from None


@dataclass(frozen=True)
class RemovalPolicy:
    """A group's removal settings (``glideins_removal``) and the automatic thresholds."""

    configured: RemovalLevel = RemovalLevel.NO
    disabled: bool = False
    wait_cycles: int = 0
    margin: int = 0
    requests_tracking: bool = False
    auto_wait_after: int = 5
    auto_idle_after: int = 10
    auto_all_after: int = 10
    all_after_idle_cycles: int = 2


@dataclass(frozen=True)
class RemovalState:
    """Carried from cycle to cycle, per entry: consecutive complete cycles without idle
    jobs, with every glidein idle, with no glidein; the level sent last and for how
    many cycles in a row."""

    no_idle_jobs_cycles: int = 0
    all_glideins_idle_cycles: int = 0
    no_glideins_cycles: int = 0
    level: RemovalLevel = RemovalLevel.NO
    cycles_at_level: int = 0


@dataclass(frozen=True)
class Observation:
    """What one cycle saw for one entry: idle jobs matching it, this group's glideins
    there (all, and idle); ``complete`` False when any query failed or was partial."""

    idle_jobs: int
    glideins: int
    idle_glideins: int
    complete: bool = True


@dataclass(frozen=True)
class RemovalDecision:
    """The level and margin to send, the state for the next cycle, and why."""

    level: RemovalLevel
    margin: int
    state: RemovalState
    reasons: tuple[str, ...] = ()


def _automatic(state: RemovalState, policy: RemovalPolicy) -> RemovalLevel:
    wait = state.no_idle_jobs_cycles > policy.auto_wait_after
    if wait and state.no_glideins_cycles > policy.auto_all_after:
        return RemovalLevel.ALL
    if wait and state.all_glideins_idle_cycles > policy.auto_idle_after:
        return RemovalLevel.IDLE
    return RemovalLevel.WAIT if wait else RemovalLevel.NO


def _configured(state: RemovalState, policy: RemovalPolicy) -> RemovalLevel:
    if policy.configured == RemovalLevel.NO:
        return RemovalLevel.NO
    if policy.requests_tracking or state.no_idle_jobs_cycles > policy.wait_cycles:
        return policy.configured
    return RemovalLevel.NO


def decide_removal(state: RemovalState, seen: Observation, policy: RemovalPolicy) -> RemovalDecision:
    """This cycle's removal level for one entry (see the module docstring)."""
    reasons: list[str] = []
    if seen.complete:
        state = replace(
            state,
            no_idle_jobs_cycles=state.no_idle_jobs_cycles + 1 if seen.idle_jobs == 0 else 0,
            all_glideins_idle_cycles=(
                state.all_glideins_idle_cycles + 1 if seen.idle_glideins >= seen.glideins else 0
            ),
            no_glideins_cycles=state.no_glideins_cycles + 1 if seen.glideins == 0 else 0,
        )
    if policy.disabled:
        target, margin = RemovalLevel.NO, 0
        reasons.append("removal disabled")
    else:
        automatic = _automatic(state, policy)
        configured = _configured(state, policy)
        if automatic > configured:
            target, margin = automatic, 0
            reasons.append(f"automatic {automatic.name}")
        else:
            target = configured
            margin = policy.margin if (configured > RemovalLevel.NO and policy.requests_tracking) else 0
            if configured > RemovalLevel.NO:
                reasons.append(f"configured {configured.name}")
    level = target
    previous = state.level
    if not seen.complete and level > RemovalLevel.WAIT:
        level = RemovalLevel.WAIT
        reasons.append("incomplete cycle: at most WAIT")
    if level > previous + 1:
        level = RemovalLevel(previous + 1)
        reasons.append(f"one step per cycle: {level.name}")
    if level == RemovalLevel.ALL:
        settled = previous == RemovalLevel.ALL or (
            previous == RemovalLevel.IDLE and state.cycles_at_level >= policy.all_after_idle_cycles
        )
        if not settled:
            level = RemovalLevel.IDLE
            reasons.append(f"ALL only after IDLE for {policy.all_after_idle_cycles} cycles")
    if level == RemovalLevel.NO:
        margin = 0
    cycles = state.cycles_at_level + 1 if level == previous else 1
    new_state = replace(state, level=level, cycles_at_level=cycles)
    return RemovalDecision(level, margin, new_state, tuple(reasons))
