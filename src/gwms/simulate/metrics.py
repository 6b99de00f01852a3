"""What a simulation measures, and its report.

Sampled every ``sample_interval`` (series in the report, one value per sample):

- ``jobs_submitted`` (so far), ``jobs_idle``, ``jobs_running``, ``jobs_done``;
- glideins by state: ``glideins_queued`` (at the site, waiting), ``glideins_starting``
  (running at the site, agent not up yet), ``glideins_idle`` (up, no job),
  ``glideins_busy``, ``glideins_retiring``; and the factory's view of its pilots
  (``factory_idle``: unsubmitted + pending + staging, ``factory_running``, ``factory_held``);
- ``requested_idle`` (the frontend's ReqIdleGlideins summed over entries), ``paused_entries``;
- ``over_provisioned``: glideins beyond what the jobs could use: glideins queued,
  starting, idle or busy, minus the busy ones and the idle jobs (in glideins, by the
  slots per glidein), when positive.

Figures of the whole run: wasted glidein hours (glidein time not spent running a job
that completed: start-up, idle, black-hole and vacated work), the time to the first job
start, the mean wait of jobs, and how fast the system converges. A sample is
*backlogged* when its idle jobs are more than 10 and more than 10 % of the jobs in the
system (idle + running). ``convergence_s``: how long the first backlog took to clear
(from its first backlogged sample to the next sample that is not; 0 without a backlog,
None if it never cleared); ``stable_from_s``: the time from which no sample is
backlogged to the end (None if the last one is); ``backlogged_hours``: all backlogged time.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gwms.simulate.engine import Simulation

__all__ = ["CONVERGED_FRACTION", "SERIES", "Metrics", "convergence_time", "stable_from"]

SERIES = (
    "t", "jobs_submitted", "jobs_idle", "jobs_running", "jobs_done", "glideins_queued", "glideins_starting", "glideins_idle",
    "glideins_busy", "glideins_retiring", "factory_idle", "factory_running", "factory_held",
    "requested_idle", "paused_entries", "over_provisioned",
)
#: Idle jobs at most this fraction of the jobs in the system: demand is met.
CONVERGED_FRACTION = 0.10
CONVERGED_FLOOR = 10


def _r(x: float, nd: int = 3) -> float:
    return round(float(x), nd)


def _backlogged(idle: int, running: int) -> bool:
    return idle > CONVERGED_FLOOR and idle > CONVERGED_FRACTION * (idle + running)


def convergence_time(t: list[float], idle: list[int], running: list[int]) -> float | None:
    """How long the first backlog took to clear: from the first sample with idle jobs
    over the threshold to the first later sample within it (see the module docstring);
    0 if there never was a backlog, None if it never cleared."""
    start: float | None = None
    for when, a, b in zip(t, idle, running, strict=True):
        if start is None:
            if _backlogged(a, b):
                start = when
        elif not _backlogged(a, b):
            return when - start
    return 0.0 if start is None else None


def stable_from(t: list[float], idle: list[int], running: list[int]) -> float | None:
    """The first sample time from which, to the end, no sample is backlogged (None if
    the last one is)."""
    last_bad = -1
    for i, (a, b) in enumerate(zip(idle, running, strict=True)):
        if _backlogged(a, b):
            last_bad = i
    if last_bad + 1 >= len(t):
        return None
    return t[last_bad + 1]


class Metrics:
    """Samples of one simulation, and its report."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.series: dict[str, list[Any]] = {k: [] for k in SERIES}
        self._slots_per_glidein = self._mean_slots()

    def _mean_slots(self) -> float:
        slots = []
        for entry in self.sim.factory.entries:
            try:
                slots.append(max(1, int(float(entry.attrs.get("GLIDEIN_Slots", 1)))))
            except (TypeError, ValueError):
                slots.append(1)
        return sum(slots) / len(slots) if slots else 1.0

    def sample(self) -> None:
        """Take one sample now and plan the next."""
        self._take()
        sim = self.sim
        nxt = sim.loop.now + sim.scenario.sample_interval
        if nxt < sim.end:
            sim.loop.schedule(nxt, self.sample, priority=9)

    def sample_final(self) -> None:
        """The sample at the end of the run (unless one was just taken)."""
        t = self.sim.loop.now - self.sim.loop.start
        if not self.series["t"] or self.series["t"][-1] < t:
            self._take()

    def _take(self) -> None:
        sim = self.sim
        pool = sim.pool
        st = pool.stats
        g = pool.glidein_states()
        queued = sum(e.site.stats.queued for e in sim.entries.values())
        fc = sim.factory_counts()
        alive = queued + g["starting"] + g["idle"] + g["busy"]
        needed = g["busy"] + math.ceil(st.idle / self._slots_per_glidein)
        s = self.series
        s["t"].append(_r(sim.loop.now - sim.loop.start, 1))
        s["jobs_submitted"].append(st.submitted)
        s["jobs_idle"].append(st.idle)
        s["jobs_running"].append(st.running)
        s["jobs_done"].append(st.done)
        s["glideins_queued"].append(queued)
        s["glideins_starting"].append(g["starting"])
        s["glideins_idle"].append(g["idle"])
        s["glideins_busy"].append(g["busy"])
        s["glideins_retiring"].append(g["retiring"])
        s["factory_idle"].append(fc.get("unsubmitted", 0) + fc.get("pending", 0) + fc.get("staging", 0))
        s["factory_running"].append(fc.get("running", 0))
        s["factory_held"].append(fc.get("held", 0))
        s["requested_idle"].append(sum(gs.requested_idle for gs in sim.groups.values()))
        s["paused_entries"].append(len(sim.paused_entries()))
        s["over_provisioned"].append(max(0, alive - needed))

    # ------------------------------------------------------------------ the report

    def report(self) -> dict[str, Any]:
        """The whole report (JSON-able; the same for the same scenario, configs and seed)."""
        sim = self.sim
        sc = sim.scenario
        st = sim.pool.stats
        s = self.series
        interval = sc.sample_interval
        over = s["over_provisioned"]
        conv = convergence_time(s["t"], s["jobs_idle"], s["jobs_running"])
        stable = stable_from(s["t"], s["jobs_idle"], s["jobs_running"])
        backlogged = sum(1 for a, b in zip(s["jobs_idle"], s["jobs_running"], strict=True) if _backlogged(a, b))
        first = None if st.first_job_start is None else _r(st.first_job_start - sim.loop.start, 1)
        started_jobs = st.submitted - sum(1 for k in sim.pool.kinds for j in k.idle if j.attempts == 0)
        entries: dict[str, Any] = {}
        for name, e in sim.entries.items():
            ss = e.site.stats
            paused_s = sum(max(0.0, min(until, sim.end) - at) for at, until, _ in e.pauses)
            entries[name] = {
                "site": e.site.site_name,
                "cycles": e.cycles,
                "submitted": e.submitted,
                "refused": e.refused,
                "removed": e.removed,
                "pilots_started": ss.started,
                "pilots_failed_at_start": ss.failed_at_start,
                "pilots_completed": ss.completed,
                "pilots_walltime_killed": ss.walltime_killed,
                "black_hole_pilots": ss.black_hole_pilots,
                "paused": bool(e.pauses),
                "pauses": len(e.pauses),
                "paused_hours": _r(paused_s / 3600.0),
                "first_pause_s": _r(e.pauses[0][0] - sim.loop.start, 1) if e.pauses else None,
                "pause_reason": e.pauses[-1][2] if e.pauses else "",
                "max_submitted_per_hour": self._max_per_hour(name),
            }
        groups = {
            name: {"cycles": g.cycles, "limits_fired": dict(sorted(g.limits.items()))}
            for name, g in sim.groups.items()
        }
        bh = st.failures_per_black_hole
        summary = {
            "jobs_submitted": st.submitted,
            "jobs_done": st.done,
            "jobs_idle_at_end": st.idle,
            "jobs_running_at_end": st.running,
            "jobs_started": started_jobs,
            "job_starts": st.job_starts,
            "jobs_vacated": st.vacated,
            "black_hole_job_failures": st.black_hole_failures,
            "black_hole_glideins_latched": st.glideins_latched,
            "max_failures_per_black_hole_glidein": max(bh) if bh else 0,
            "peak_jobs_idle": max(s["jobs_idle"]) if s["jobs_idle"] else 0,
            "mean_wait_s": _r(st.wait_total / started_jobs, 1) if started_jobs else None,
            "time_to_first_job_s": first,
            "convergence_s": conv,
            "stable_from_s": stable,
            "backlogged_hours": _r(backlogged * interval / 3600.0),
            "glideins_submitted": sum(e.submitted for e in sim.entries.values()),
            "glideins_started": st.glideins_started,
            "glideins_failed_at_start": sum(e.site.stats.failed_at_start for e in sim.entries.values()),
            "glidein_hours": _r(st.glidein_seconds / 3600.0),
            "useful_slot_hours": _r(st.useful_seconds / 3600.0),
            "wasted_glidein_hours": _r(st.wasted_seconds / 3600.0),
            "over_provisioned_peak": max(over) if over else 0,
            "over_provisioned_mean": _r(sum(over) / len(over)) if over else 0.0,
            "over_provisioned_glidein_hours": _r(sum(over) * interval / 3600.0),
            "paused_entries": sorted(n for n, e in sim.entries.items() if e.pauses),
            "factory_refusals": dict(sorted(sim.refusals.items())),
            "frontend_cycles": sum(g.cycles for g in sim.groups.values()),
            "factory_entry_cycles": sum(e.cycles for e in sim.entries.values()),
            "events": sim.loop.processed,
        }
        return {
            "scenario": sc.name,
            "description": sc.description,
            "seed": sim.seed,
            "duration_s": sc.duration,
            "sample_interval_s": interval,
            "entries_count": len(sim.entries),
            "summary": summary,
            "entries": entries,
            "groups": groups,
            "series": {k: list(v) for k, v in s.items()},
        }

    def _max_per_hour(self, entry: str) -> int:
        hourly = self.sim.entries[entry].hourly
        return max(hourly.values()) if hourly else 0
