"""One entry's cycle decided at once, as a pure function: :func:`plan_entry`.

Given the entry's active glideins (by client), the valid requests addressed to it, its
limits and what its health allows, the plan says which glideins to release, which to
remove and why, and how many to submit for each request. The order of the steps:

1. clean-up (done whatever the requests say): held glideins are released with back-off
   (only as many as the entry's and their group's idle limits leave room for: a released
   glidein is idle again, and counts so for the submissions below) or removed when
   unrecoverable; glideins idle past the request's lifetime, stale
   ones, and running ones whose slots sat unclaimed too long are removed (at most
   ``max_cleanup_removals``);
2. excess removal per request with its removal level (at most ``max_removals`` for
   the whole entry), then glideins of requests that vanished longer than the grace ago
   (level ``orphan_level``, never ALL);
3. keep-idle submissions per request (at most ``submit_cap`` for the whole entry),
   each seeing the counts the previous ones left; a request in downtime asks for 0.

Glideins chosen for removal stay counted (they are at the site until they are gone),
so a plan never submits into room a removal has not made yet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from gwms.factory.config import CyclePolicy, RemovalLevel
from gwms.factory.limits import (
    Counts,
    Limits,
    PilotView,
    SlotView,
    count_pilots,
    excess_removals,
    held_actions,
    keep_idle,
    lifetime_removals,
    stale_unclaimed,
)
from gwms.factory.states import PilotState

__all__ = ["EntryInput", "EntryPlan", "RequestView", "plan_entry"]


@dataclass(frozen=True)
class RequestView:
    """What the plan needs of one valid request.

    ``key`` names the client (frontend group and credential) the glideins belong to;
    ``group`` is its ``frontend:security_class``, the unit of the frontend limits.
    """

    key: str
    group: str
    req_idle: int
    req_max: int
    remove_level: RemovalLevel = RemovalLevel.NO
    remove_margin: int = 0
    idle_lifetime: float = 0.0
    in_downtime: bool = False


@dataclass(frozen=True)
class EntryInput:
    """Everything one entry's decisions depend on.

    Attributes:
        now: the time of the decision (epoch seconds).
        entry_limits: the entry's limits; ``group_limits``: per ``frontend:security_class``
            (groups missing here are unlimited).
        policy: per-cycle rates and held / stale rules.
        pilots: active glideins by client key (clients without a request included).
        groups_of: client key -> group, for every key in ``pilots``.
        requests: the valid requests addressed to this entry.
        submit_cap: submissions the entry's state allows (0 paused, 1 on probation).
        act_on_requests: False when the requests could not be read recently: no
            submissions and no excess removals (clean-up still happens).
        orphans_removable: client keys whose request vanished longer than the grace ago.
        orphan_level: what goes of those clients' glideins (NO, WAIT or IDLE).
        slots: pilot id -> its slots as the user pool shows them (pilots missing here
            are not judged by the unclaimed rule).
    """

    now: float
    entry_limits: Limits
    group_limits: Mapping[str, Limits]
    policy: CyclePolicy
    pilots: Mapping[str, Sequence[PilotView]]
    groups_of: Mapping[str, str]
    requests: Sequence[RequestView]
    submit_cap: int
    act_on_requests: bool = True
    orphans_removable: frozenset[str] = frozenset()
    orphan_level: RemovalLevel = RemovalLevel.IDLE
    slots: Mapping[str, Sequence[SlotView]] = field(default_factory=dict)


@dataclass
class EntryPlan:
    """What an entry does this cycle.

    ``removals`` holds ``(pilot_id, reason)``; ``submits`` maps client key -> count (in
    the order to submit); ``limited_by`` the limits that cut each request's number;
    ``counts`` the glideins per client key and ``entry_counts`` all of them, before the
    plan is carried out.
    """

    submits: dict[str, int] = field(default_factory=dict)
    limited_by: dict[str, tuple[str, ...]] = field(default_factory=dict)
    releases: list[str] = field(default_factory=list)
    removals: list[tuple[str, str]] = field(default_factory=list)
    counts: dict[str, Counts] = field(default_factory=dict)
    entry_counts: Counts = field(default_factory=Counts)

    @property
    def total_submits(self) -> int:
        """Glideins to submit in all."""
        return sum(self.submits.values())


_UNLIMITED = Limits(10**12, 10**12, 10**12)


def _released(c: Counts) -> Counts:
    """Counts after one held glidein went back to the queue."""
    return Counts(c.unsubmitted, c.pending + 1, c.staging, c.running, c.held - 1)


def _within_idle_limits(
    releases: Sequence[str], inp: EntryInput, key_of: Mapping[str, str],
    group_counts: Mapping[str, Counts], entry_counts: Counts,
) -> list[str]:
    """The releases that keep the entry's and each group's idle glideins within their
    limits (a released glidein is idle again; the others wait for room)."""
    entry_idle = entry_counts.idle
    group_idle = {g: c.idle for g, c in group_counts.items()}
    kept: list[str] = []
    for pid in releases:
        group = inp.groups_of.get(key_of.get(pid, ""), "")
        limit = inp.group_limits.get(group, _UNLIMITED).idle
        if entry_idle + 1 > inp.entry_limits.idle or group_idle.get(group, 0) + 1 > limit:
            continue
        entry_idle += 1
        group_idle[group] = group_idle.get(group, 0) + 1
        kept.append(pid)
    return kept


def plan_entry(inp: EntryInput) -> EntryPlan:
    """Decide one entry's cycle (see the module docstring)."""
    policy = inp.policy
    plan = EntryPlan()
    counts = {key: count_pilots(views) for key, views in inp.pilots.items()}
    plan.counts = dict(counts)
    entry_counts = Counts()
    group_counts: dict[str, Counts] = {}
    for key, c in counts.items():
        entry_counts = entry_counts.plus(c)
        group = inp.groups_of.get(key, "")
        group_counts[group] = group_counts.get(group, Counts()).plus(c)
    plan.entry_counts = entry_counts
    requests = {r.key: r for r in inp.requests}
    removing: set[str] = set()

    # 1. clean-up: held, idle lifetime, stale
    held = [p for views in inp.pilots.values() for p in views if p.state is PilotState.HELD]
    if held:
        plan.releases, held_removals = held_actions(
            held,
            inp.now,
            backoff_s=policy.release_backoff_s,
            max_releases=policy.max_releases,
            max_releases_per_pilot=policy.max_releases_per_pilot,
            max_holds=policy.max_holds,
            recoverable=policy.recoverable_holds,
        )
        plan.removals.extend(held_removals[: policy.max_cleanup_removals])
        key_of = {p.pilot_id: key for key, views in inp.pilots.items() for p in views if p.state is PilotState.HELD}
        plan.releases = _within_idle_limits(plan.releases, inp, key_of, group_counts, entry_counts)
        for pid in plan.releases:  # a released glidein is idle again: count it so
            key = key_of[pid]
            group = inp.groups_of.get(key, "")
            counts[key] = _released(counts[key])
            group_counts[group] = _released(group_counts[group])
            entry_counts = _released(entry_counts)
    for key in sorted(inp.pilots):
        room = policy.max_cleanup_removals - len(plan.removals)
        if room <= 0:
            break
        req = requests.get(key)
        chosen = lifetime_removals(
            inp.pilots[key],
            inp.now,
            idle_lifetime=req.idle_lifetime if req is not None else None,
            stale_idle_s=policy.stale_idle_s,
            stale_running_s=policy.stale_running_s,
        )
        plan.removals.extend(chosen[:room])
    if inp.slots:
        taken = {pid for pid, _ in plan.removals}
        for key in sorted(inp.pilots):
            room = policy.max_cleanup_removals - len(plan.removals)
            if room <= 0:
                break
            views = [p for p in inp.pilots[key] if p.pilot_id not in taken]
            chosen = stale_unclaimed(views, inp.slots, inp.now, max_unclaimed_s=policy.stale_unclaimed_s)
            plan.removals.extend(chosen[:room])
    removing.update(pid for pid, _ in plan.removals)

    def live(key: str) -> list[PilotView]:
        views = inp.pilots.get(key, ())
        return [replace(p, removing=True) if p.pilot_id in removing else p for p in views]

    # 2. excess removal, then glideins of vanished requests
    budget = policy.max_removals
    if inp.act_on_requests:
        for req in sorted(inp.requests, key=lambda r: r.key):
            if budget <= 0:
                break
            chosen_ids = excess_removals(
                req.remove_level, req.remove_margin, req.req_idle, req.req_max,
                live(req.key), budget,
            )
            for pid in chosen_ids:
                plan.removals.append((pid, f"excess ({req.remove_level.value} requested)"))
            removing.update(chosen_ids)
            budget -= len(chosen_ids)
        level = inp.orphan_level if inp.orphan_level is not RemovalLevel.ALL else RemovalLevel.IDLE
        for key in sorted(inp.orphans_removable):
            if budget <= 0:
                break
            if key in requests or key not in inp.pilots:
                continue
            chosen_ids = excess_removals(level, 0, 0, 0, live(key), budget)
            for pid in chosen_ids:
                plan.removals.append((pid, "its request is gone"))
            removing.update(chosen_ids)
            budget -= len(chosen_ids)

    # 3. keep-idle submissions
    submit_budget = max(0, min(inp.submit_cap, policy.max_submits))
    if not inp.act_on_requests:
        submit_budget = 0
    for req in sorted(inp.requests, key=lambda r: r.key):
        group_limits = inp.group_limits.get(req.group, _UNLIMITED)
        decision = keep_idle(
            0 if req.in_downtime else req.req_idle,
            req.req_max,
            counts.get(req.key, Counts()),
            group_counts.get(req.group, Counts()),
            entry_counts,
            inp.entry_limits,
            group_limits,
            submit_budget,
        )
        if decision.limited_by:
            plan.limited_by[req.key] = decision.limited_by
        if decision.count <= 0:
            continue
        n = decision.count
        plan.submits[req.key] = n
        submit_budget -= n
        counts[req.key] = counts.get(req.key, Counts()).with_submitted(n)
        group_counts[req.group] = group_counts.get(req.group, Counts()).with_submitted(n)
        entry_counts = entry_counts.with_submitted(n)
    return plan
