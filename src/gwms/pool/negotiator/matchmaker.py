"""Matchmaking: idle job groups to free slots, in fair-share order (a pure function).

:func:`negotiate` takes the schedds' autoclusters (:class:`JobGroup`), the unclaimed
slots and the submitters' effective priorities, and returns the matches:

1. Slots are grouped by what the jobs read (:class:`~gwms.pool.negotiator.slots.SlotPool`).
2. Submitters are served best (lowest) effective priority first. Each first gets its
   share of the pool, in proportion to ``1 / priority``; then, in the same order, the
   slots left go to whoever still has matching jobs.
3. A submitter's groups are served highest JobPrio first. A group takes slots from the
   slot groups it matches (its Requirements against the slot, the slot's START or
   Requirements against the job: :func:`gwms.classads.symmetric_match` on the two
   representatives), best job ``Rank`` first, as many as it has jobs.
4. A static slot is given once; a partitionable slot gives a share of its resources
   to each job while they last (the rest of the slot is matched again as it is then).
5. Each schedd gets at most its limit of new matches (MaxJobsRunning minus what runs).

The evaluation count is one symmetric match per (job group, slot group) pair actually
looked at, not per job and slot.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gwms.classads import rank as job_rank
from gwms.classads import symmetric_match
from gwms.pool.matchattrs import job_reads
from gwms.pool.negotiator.slots import SlotGroup, SlotPool
from gwms.pool.resources import Resources, carving, job_request

JsonAd = Mapping[str, Any]

#: Effective priority of a submitter the accountant does not know (HTCondor's minimum).
DEFAULT_PRIORITY = 0.5


@dataclass(frozen=True)
class JobGroup:
    """Idle jobs of one schedd that look the same to the matchmaker (an autocluster).

    ``jobs`` are job ids (``"C.P"``) in the order they should run; ``ad`` is one of them.
    """

    id: str
    schedd: str
    owner: str
    submitter: str
    ad: JsonAd
    jobs: Sequence[str]
    prio: int = 0

    @classmethod
    def from_json(cls, schedd: str, data: Mapping[str, Any]) -> JobGroup:
        """A group as a schedd lists it (``POST /v1/negotiation/jobs``)."""
        return cls(
            id=str(data["id"]),
            schedd=schedd,
            owner=str(data.get("owner", "")),
            submitter=str(data.get("submitter") or data.get("owner", "")),
            ad=data["ad"],
            jobs=list(data["jobs"]),
            prio=int(data.get("prio", 0) or 0),
        )


@dataclass(frozen=True)
class Match:
    """One job to one slot.

    ``slot_ad`` is the slot as matched (a partitionable slot with the resources it had
    free at that moment); ``request`` what the job takes of it.
    """

    schedd: str
    job: str
    slot: str
    slot_ad: JsonAd
    submitter: str
    group: str
    request: Resources
    rank: float = 0.0
    partitionable: bool = False

    def as_json(self) -> dict[str, Any]:
        """The match as ``POST /v1/matches`` carries it."""
        return {"job": self.job, "slot": self.slot, "slot_ad": dict(self.slot_ad), "request": self.request.as_ad()}


@dataclass
class NegotiationResult:
    """What a cycle decided, with counts for logs and metrics."""

    matches: list[Match] = field(default_factory=list)
    served: list[str] = field(default_factory=list)
    by_submitter: dict[str, int] = field(default_factory=dict)
    shares: dict[str, int] = field(default_factory=dict)
    job_groups: int = 0
    slot_groups: int = 0
    slots: int = 0
    evaluations: int = 0
    idle_jobs: int = 0
    unmatched: list[str] = field(default_factory=list)


@dataclass
class _Pair:
    ok: bool
    rank: float
    request: Resources


class _Cycle:
    """The working state of one :func:`negotiate` call."""

    def __init__(self, groups: Sequence[JobGroup], pool: SlotPool, limits: Mapping[str, int] | None) -> None:
        self.groups = groups
        self.pool = pool
        self.next_job = [0] * len(groups)
        self.pairs: dict[tuple[int, str], _Pair] = {}
        self.limits = dict(limits) if limits is not None else None
        self.result = NegotiationResult()
        self.ever_matched = [False] * len(groups)

    def pair(self, gi: int, sg: SlotGroup) -> _Pair:
        key = (gi, sg.key)
        found = self.pairs.get(key)
        if found is None:
            job = self.groups[gi].ad
            self.result.evaluations += 1
            if symmetric_match(job, sg.ad):
                found = _Pair(True, job_rank(job, sg.ad), job_request(job, sg.ad))
            else:
                found = _Pair(False, 0.0, Resources())
            self.pairs[key] = found
        return found

    def left(self, gi: int) -> int:
        return len(self.groups[gi].jobs) - self.next_job[gi]

    def room(self, schedd: str) -> int:
        if self.limits is None:
            return 1 << 62
        return max(0, self.limits.get(schedd, 1 << 62))

    def assign(self, gi: int, want: int) -> int:
        """Give group ``gi`` up to ``want`` slots; returns how many it got."""
        group = self.groups[gi]
        want = min(want, self.left(gi), self.room(group.schedd))
        if want <= 0:
            return 0
        candidates = []
        for sg in self.pool.available_groups():
            p = self.pair(gi, sg)
            if p.ok:
                candidates.append((-p.rank, sg.order, sg, p))
        candidates.sort(key=lambda c: (c[0], c[1]))
        got = 0
        for _neg_rank, _order, sg, p in candidates:
            if got >= want:
                break
            if not sg.is_partitionable:
                for name, ad in self.pool.take_static(sg, want - got):
                    self._record(gi, name, ad, p.request, p.rank, False)
                    got += 1
            else:
                got += self._carve_group(gi, sg, want - got)
        if got:
            self.ever_matched[gi] = True
            if self.limits is not None:
                self.limits[group.schedd] = self.room(group.schedd) - got
        return got

    def _carve_group(self, gi: int, sg: SlotGroup, want: int) -> int:
        got = 0
        for pslot in list(sg.partitionable.values()):
            current: SlotGroup | None = sg
            while got < want and current is not None:
                p = self.pair(gi, current)
                if not p.ok or not carving(p.request).fits_in(pslot.free):
                    break
                before, taken, current = self.pool.carve(pslot, p.request)
                self._record(gi, pslot.name, before, taken, p.rank, True)
                got += 1
            if got >= want:
                break
        return got

    def _record(self, gi: int, slot: str, ad: JsonAd, request: Resources, rank: float, part: bool) -> None:
        group = self.groups[gi]
        job = group.jobs[self.next_job[gi]]
        self.next_job[gi] += 1
        self.result.matches.append(Match(group.schedd, job, slot, ad, group.submitter, group.id, request, rank, part))
        by = self.result.by_submitter
        by[group.submitter] = by.get(group.submitter, 0) + 1


def fair_shares(demand: Mapping[str, int], priorities: Mapping[str, float], capacity: int) -> dict[str, int]:
    """Each submitter's share of ``capacity`` slots: proportional to ``1 / priority``,
    rounded up, never more than its demand."""
    active = {s: d for s, d in demand.items() if d > 0}
    if not active or capacity <= 0:
        return {s: 0 for s in demand}
    weights = {s: 1.0 / max(priorities.get(s, DEFAULT_PRIORITY), 1e-9) for s in active}
    total = sum(weights.values())
    shares = {s: 0 for s in demand}
    for s, w in weights.items():
        shares[s] = min(active[s], math.ceil(capacity * w / total))
    return shares


def serving_order(submitters: Iterable[str], priorities: Mapping[str, float]) -> list[str]:
    """Submitters best (lowest) effective priority first; ties by name."""
    return sorted(set(submitters), key=lambda s: (priorities.get(s, DEFAULT_PRIORITY), s))


def negotiate(
    groups: Sequence[JobGroup],
    slots: Iterable[JsonAd],
    priorities: Mapping[str, float] | None = None,
    *,
    schedd_limits: Mapping[str, int] | None = None,
) -> NegotiationResult:
    """Match job groups to slots (see the module docstring). Pure: inputs are not changed.

    Args:
        groups: the idle job groups of every schedd.
        slots: the unclaimed slot ads (static and partitionable).
        priorities: effective priority per submitter (lower is better; unknown ones
            get :data:`DEFAULT_PRIORITY`).
        schedd_limits: the most new matches per schedd (by :attr:`JobGroup.schedd`).
    """
    priorities = priorities or {}
    reads: set[str] = set()
    seen_ads: set[int] = set()
    for g in groups:
        if id(g.ad) not in seen_ads:
            seen_ads.add(id(g.ad))
            reads |= job_reads(g.ad)
    pool = SlotPool(slots, reads)
    cycle = _Cycle(groups, pool, schedd_limits)
    result = cycle.result
    result.job_groups = len(groups)
    result.slots = len(pool.static_ads) + len(pool.partitionable)
    result.idle_jobs = sum(len(g.jobs) for g in groups)

    by_submitter: dict[str, list[int]] = {}
    for gi, g in sorted(enumerate(groups), key=lambda item: (-item[1].prio, item[0])):
        by_submitter.setdefault(g.submitter, []).append(gi)
    order = serving_order(by_submitter, priorities)
    demand = {s: sum(len(groups[gi].jobs) for gi in gis) for s, gis in by_submitter.items()}
    shares = fair_shares(demand, priorities, pool.capacity)
    result.shares = shares
    result.served = order

    def serve(submitter: str, limit: int) -> None:
        taken = 0
        for gi in by_submitter[submitter]:
            if taken >= limit:
                return
            if cycle.left(gi) > 0:
                taken += cycle.assign(gi, limit - taken)

    for submitter in order:  # round 1: each its share
        serve(submitter, shares.get(submitter, 0))
    for submitter in order:  # round 2: what is left, best priority first
        serve(submitter, 1 << 62)

    result.slot_groups = len(pool.groups)
    result.unmatched = [groups[gi].id for gi in range(len(groups)) if not cycle.ever_matched[gi] and cycle.left(gi) > 0]
    return result
