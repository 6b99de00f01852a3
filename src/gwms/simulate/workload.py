"""The jobs users submit: bursts and steady arrivals from the scenario's workload.

Each workload item becomes a :class:`~gwms.simulate.pool.JobKind` (its requirements and
runtime distribution) and arrival events: a burst queues ``count`` jobs at ``start``;
steady arrivals are a Poisson process of ``rate`` jobs per hour from ``start`` to
``end`` (or the end of the run), at most ``count`` jobs, queued in batches of
:data:`BATCH_SECONDS` so a day of 100k arrivals is a few thousand events.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from gwms.simulate.events import EventLoop
from gwms.simulate.pool import JobKind, Pool
from gwms.simulate.scenario import WorkloadSpec

__all__ = ["BATCH_SECONDS", "arrival_times", "schedule_workload"]

#: Steady arrivals within this many seconds are queued together.
BATCH_SECONDS = 10.0


def arrival_times(spec: WorkloadSpec, start: float, end: float, rng: random.Random) -> list[float]:
    """Arrival times (absolute) of one workload item's jobs, in order."""
    t0 = start + spec.start
    if spec.pattern == "burst":
        return [t0] * int(spec.count or 0) if t0 <= end else []
    stop = min(end, start + spec.end) if spec.end is not None else end
    rate = (spec.rate or 0.0) / 3600.0
    out: list[float] = []
    if rate <= 0:
        return out
    limit = spec.count if spec.count is not None else 10**9
    t = t0
    while len(out) < limit:
        t += rng.expovariate(rate)
        if t > stop:
            break
        out.append(t)
    return out


def schedule_workload(specs: Sequence[WorkloadSpec], loop: EventLoop, pool: Pool,
                      rng: random.Random, end: float) -> list[JobKind]:
    """Register each item's job kind with the pool and schedule its arrivals."""
    kinds = []
    for i, spec in enumerate(specs):
        kind = JobKind(i, spec.name, spec.cpus, spec.memory, list(spec.sites), spec.runtime, spec.owner, spec.attrs)
        pool.add_kind(kind)
        kinds.append(kind)
        times = arrival_times(spec, loop.now, end, rng)
        batches: dict[float, int] = {}
        for t in times:
            slot = loop.now + ((t - loop.now) // BATCH_SECONDS) * BATCH_SECONDS if spec.pattern == "steady" else t
            batches[slot] = batches.get(slot, 0) + 1
        for at, n in batches.items():
            runtimes = [spec.runtime.draw(rng) for _ in range(n)]
            loop.schedule(at, pool.submit, kind, runtimes, priority=0)
    return kinds
