"""The factory's decisions about one request, as pure functions (no I/O, no clock).

- :func:`keep_idle` — how many glideins to submit for a request (GlideinWMS's keep-idle
  rule with every limit);
- :func:`submit_clusters` — those split into submit calls;
- :func:`excess_removals` — which glideins to remove when a frontend asks for fewer
  (its removal level NO/WAIT/IDLE/ALL, rate-limited, idle ones first);
- :func:`held_actions` — release held glideins with linear back-off or remove the
  unrecoverable;
- :func:`lifetime_removals` — glideins idle longer than the request's lifetime, and stale ones;
- :func:`stale_unclaimed` — running glideins whose slots have sat unclaimed too long.

Properties (tested with hypothesis): a decision never takes a count above a limit it was
under; a second cycle over the state the first one produced adds nothing the first
would not have added unconstrained (idempotent cycles); lowering any limit or request
never raises a decision (curbs only lower); ALL is acted on only when requested.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from gwms.factory.config import RemovalLevel
from gwms.factory.states import IDLE_STATES, PilotState

__all__ = [
    "Counts",
    "Limits",
    "PilotView",
    "SlotView",
    "SubmitDecision",
    "count_pilots",
    "excess_removals",
    "held_actions",
    "is_recoverable",
    "keep_idle",
    "lifetime_removals",
    "stale_unclaimed",
    "submit_clusters",
]

# Names of the limits, as they appear in ads and logs (``GlideinMonitorLimitedBy``).
LIMIT_HELD_FRONTEND = "frontend held limit"
LIMIT_HELD_ENTRY = "entry held limit"
LIMIT_REQ_MAX = "ReqMaxGlideins"
LIMIT_ENTRY_TOTAL = "entry glideins limit"
LIMIT_ENTRY_IDLE = "entry idle limit"
LIMIT_FRONTEND_TOTAL = "frontend glideins limit"
LIMIT_FRONTEND_IDLE = "frontend idle limit"
LIMIT_CYCLE = "submits per cycle"


@dataclass(frozen=True)
class Limits:
    """The most glideins in the queue (any active state), idle, and held."""

    glideins: int
    idle: int
    held: int


@dataclass(frozen=True)
class Counts:
    """Active glideins by state. ``idle`` counts every state before running."""

    unsubmitted: int = 0
    pending: int = 0
    staging: int = 0
    running: int = 0
    held: int = 0

    @property
    def idle(self) -> int:
        """Unsubmitted + pending + staging."""
        return self.unsubmitted + self.pending + self.staging

    @property
    def total(self) -> int:
        """Every active glidein: idle + running + held."""
        return self.idle + self.running + self.held

    def plus(self, other: Counts) -> Counts:
        """The sum of two counts."""
        return Counts(
            self.unsubmitted + other.unsubmitted,
            self.pending + other.pending,
            self.staging + other.staging,
            self.running + other.running,
            self.held + other.held,
        )

    def with_submitted(self, n: int) -> Counts:
        """These counts after ``n`` more glideins were submitted (they are pending)."""
        return Counts(self.unsubmitted, self.pending + n, self.staging, self.running, self.held)


@dataclass(frozen=True)
class PilotView:
    """What the decisions need to know of one active glidein.

    Times are epoch seconds; ``submitted`` is when the record was written,
    ``state_since`` when it entered its current state.
    """

    pilot_id: str
    state: PilotState
    submitted: float
    state_since: float
    running_since: float | None = None
    holds: int = 0
    releases: int = 0
    hold_reason: str = ""
    removing: bool = False
    idle_lifetime: float = 0.0


def count_pilots(pilots: Iterable[PilotView], *, include_removing: bool = True) -> Counts:
    """Counts by state of active glideins (``include_removing=False`` leaves out those
    whose removal was already asked for)."""
    c = {s: 0 for s in PilotState}
    for p in pilots:
        if p.removing and not include_removing:
            continue
        c[p.state] += 1
    return Counts(
        c[PilotState.UNSUBMITTED], c[PilotState.PENDING], c[PilotState.STAGING],
        c[PilotState.RUNNING], c[PilotState.HELD],
    )


@dataclass(frozen=True)
class SubmitDecision:
    """How many glideins to submit, and which limits cut the number down."""

    count: int
    limited_by: tuple[str, ...] = ()


def keep_idle(
    req_idle: int,
    req_max: int,
    request: Counts,
    group: Counts,
    entry: Counts,
    entry_limits: Limits,
    group_limits: Limits,
    budget: int,
) -> SubmitDecision:
    """The keep-idle rule: submit enough to have ``req_idle`` glideins idle, within limits.

    Args:
        req_idle: ``ReqIdleGlideins`` (0 in a downtime).
        req_max: ``ReqMaxGlideins``: the request's idle + running + new stay within it.
        request: this request's glideins (one frontend group and credential).
        group: the glideins of its frontend:security_class at this entry (``request``
            included), which ``group_limits`` bound.
        entry: every glidein of the entry.
        entry_limits, group_limits: the entry's and the frontend:security_class's limits.
        budget: submissions left in this cycle.

    With held glideins at a held limit nothing is submitted (only clean-up happens).
    """
    if group.held >= group_limits.held:
        return SubmitDecision(0, (LIMIT_HELD_FRONTEND,))
    if entry.held >= entry_limits.held:
        return SubmitDecision(0, (LIMIT_HELD_ENTRY,))
    want = req_idle - request.idle
    if want <= 0:
        return SubmitDecision(0)
    n = want
    limited: list[str] = []
    for name, room in (
        (LIMIT_REQ_MAX, req_max - (request.idle + request.running)),
        (LIMIT_ENTRY_TOTAL, entry_limits.glideins - entry.total),
        (LIMIT_ENTRY_IDLE, entry_limits.idle - entry.idle),
        (LIMIT_FRONTEND_TOTAL, group_limits.glideins - group.total),
        (LIMIT_FRONTEND_IDLE, group_limits.idle - group.idle),
        (LIMIT_CYCLE, budget),
    ):
        if room < n:
            n = room
            limited.append(name)
    return SubmitDecision(max(n, 0), tuple(limited))


def submit_clusters(count: int, cluster_size: int) -> list[int]:
    """``count`` submissions as clusters of at most ``cluster_size`` (the last may be smaller)."""
    if count <= 0:
        return []
    size = max(1, cluster_size)
    full, rest = divmod(count, size)
    return [size] * full + ([rest] if rest else [])


def _youngest_first(pilots: Iterable[PilotView]) -> list[PilotView]:
    return sorted(pilots, key=lambda p: (-p.submitted, p.pilot_id))


def excess_removals(
    level: RemovalLevel,
    margin: int,
    req_idle: int,
    req_max: int,
    pilots: Sequence[PilotView],
    max_removals: int,
) -> list[str]:
    """Glideins to remove because the frontend asks for fewer, youngest first.

    Uses the frontend's raw request (not the one clamped by limits or a downtime).
    WAIT removes glideins the site has not confirmed yet (``unsubmitted``); IDLE also
    glideins queued at the site, when idle > ``req_idle + margin``; ALL also running
    ones when idle + running > ``req_max + margin`` (idle ones always go first). Glideins
    whose removal is under way count neither as excess nor as candidates, and at most
    ``max_removals`` are chosen.
    """
    if level is RemovalLevel.NO or max_removals <= 0:
        return []
    live = [p for p in pilots if not p.removing]
    idle = [p for p in live if p.state in IDLE_STATES]
    running = [p for p in live if p.state is PilotState.RUNNING]
    margin = max(0, margin)
    chosen: list[str] = []
    idle_excess = len(idle) - (max(0, req_idle) + margin)
    if idle_excess > 0:
        if level is RemovalLevel.WAIT:
            pool = [p for p in idle if p.state is PilotState.UNSUBMITTED]
        else:
            unsub = [p for p in idle if p.state is PilotState.UNSUBMITTED]
            queued = [p for p in idle if p.state is not PilotState.UNSUBMITTED]
            pool = _youngest_first(unsub) + _youngest_first(queued)
        chosen = [p.pilot_id for p in pool[: min(idle_excess, max_removals)]]
    if level is RemovalLevel.ALL:
        total_excess = len(idle) + len(running) - (max(0, req_max) + margin) - len(chosen)
        room = max_removals - len(chosen)
        if total_excess > 0 and room > 0:
            taken = set(chosen)
            rest = [p for p in _youngest_first(idle) if p.pilot_id not in taken]
            rest += _youngest_first(running)
            chosen += [p.pilot_id for p in rest[: min(total_excess, room)]]
    return chosen


def is_recoverable(reason: str, patterns: Sequence[str | re.Pattern[str]]) -> bool:
    """True if a hold ``reason`` matches one of the recoverable patterns."""
    return any(re.search(p, reason) for p in patterns)


def held_actions(
    held: Sequence[PilotView],
    now: float,
    *,
    backoff_s: float,
    max_releases: int,
    max_releases_per_pilot: int,
    max_holds: int,
    recoverable: Sequence[str | re.Pattern[str]],
) -> tuple[list[str], list[tuple[str, str]]]:
    """``(release, remove)`` for held glideins.

    Removed: held ``max_holds`` times or more, released ``max_releases_per_pilot`` times
    already, or held for a reason not matching ``recoverable``. Released: the others,
    once held for ``backoff_s x holds`` seconds, the longest held first, at most
    ``max_releases``. ``remove`` holds ``(pilot_id, reason)``.
    """
    release: list[str] = []
    remove: list[tuple[str, str]] = []
    for p in sorted(held, key=lambda p: (p.state_since, p.pilot_id)):
        if p.removing or p.state is not PilotState.HELD:
            continue
        if p.holds >= max_holds:
            remove.append((p.pilot_id, f"held {p.holds} times"))
        elif p.releases >= max_releases_per_pilot:
            remove.append((p.pilot_id, f"held again after {p.releases} releases"))
        elif not is_recoverable(p.hold_reason, recoverable):
            remove.append((p.pilot_id, f"unrecoverable hold: {p.hold_reason or 'no reason given'}"))
        elif len(release) < max_releases and now - p.state_since >= backoff_s * max(1, p.holds):
            release.append(p.pilot_id)
    return release, remove


def lifetime_removals(
    pilots: Sequence[PilotView],
    now: float,
    *,
    idle_lifetime: float | None,
    stale_idle_s: float,
    stale_running_s: float,
) -> list[tuple[str, str]]:
    """``(pilot_id, reason)`` of glideins queued longer than the request's idle lifetime
    (``ReqIdleLifetime``; None: each glidein's own, 0: none), idle longer than
    ``stale_idle_s``, or running longer than ``stale_running_s``; oldest first."""
    out: list[tuple[str, str]] = []
    for p in sorted(pilots, key=lambda p: (p.submitted, p.pilot_id)):
        if p.removing:
            continue
        if p.state in IDLE_STATES and p.state is not PilotState.UNSUBMITTED:
            waited = now - p.submitted
            lifetime = p.idle_lifetime if idle_lifetime is None else idle_lifetime
            if lifetime > 0 and waited > lifetime:
                out.append((p.pilot_id, f"idle for {waited:.0f}s, over the lifetime {lifetime:g}s"))
            elif waited > stale_idle_s:
                out.append((p.pilot_id, f"stale: idle for {waited:.0f}s"))
        elif p.state is PilotState.RUNNING and p.running_since is not None:
            ran = now - p.running_since
            if ran > stale_running_s:
                out.append((p.pilot_id, f"stale: running for {ran:.0f}s"))
    return out


#: HTCondor's slot states the unclaimed rule reads.
SLOT_UNCLAIMED = "Unclaimed"
SLOT_CLAIMED = "Claimed"


@dataclass(frozen=True)
class SlotView:
    """One slot of a glidein as the user pool shows it.

    ``unclaimed_since``: since when it has been Unclaimed (epoch seconds; from the slot's
    ``EnteredCurrentState`` when the startd publishes it, else when the factory first saw
    it unclaimed); None for a slot in any other state.
    """

    name: str
    state: str
    unclaimed_since: float | None = None


def stale_unclaimed(
    pilots: Sequence[PilotView],
    slots: Mapping[str, Sequence[SlotView]],
    now: float,
    *,
    max_unclaimed_s: float,
) -> list[tuple[str, str]]:
    """``(pilot_id, reason)`` of running glideins whose slots sat unclaimed too long.

    GlideinWMS's ``StaleAgeUnclaimed`` rule (default 2 h): a running glidein with an
    unclaimed slot whose every unclaimed slot has been unclaimed longer than
    ``max_unclaimed_s``. gwms is stricter about what it removes: a glidein with any
    claimed slot is never stale (it runs a job), and a glidein whose slots the pool does
    not show (``slots`` has no entry for it) is left alone, since no news is not proof.
    Glideins whose removal is under way are left out; oldest first.
    """
    out: list[tuple[str, str]] = []
    for p in sorted(pilots, key=lambda p: (p.submitted, p.pilot_id)):
        if p.removing or p.state is not PilotState.RUNNING:
            continue
        seen = slots.get(p.pilot_id) or ()
        if not seen or any(v.state == SLOT_CLAIMED for v in seen):
            continue
        unclaimed = [v for v in seen if v.state == SLOT_UNCLAIMED and v.unclaimed_since is not None]
        if not unclaimed:
            continue
        shortest = min(now - v.unclaimed_since for v in unclaimed)  # type: ignore[operator]
        if shortest > max_unclaimed_s:
            reason = f"stale: {len(unclaimed)} slot(s) unclaimed for {shortest:.0f}s (over {max_unclaimed_s:g}s)"
            out.append((p.pilot_id, reason))
    return out
