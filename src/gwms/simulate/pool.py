"""The simulated user pool: the schedd's jobs, the glideins' slots, and matchmaking.

Jobs are kept as job ads (JSON form, the attributes the frontend reads) and change
status in place; slots are kept as slot ads with the State/Activity the real agent
publishes (:func:`gwms.glidein.slots.state_and_activity`). The frontend reads both
exactly as it would read them from a schedd and a collector.

Glideins follow the real agent's lifetime rules, called as they are:
:func:`gwms.glidein.lifetime.plan_deadlines`, :func:`~gwms.glidein.lifetime.decide`
and :func:`~gwms.glidein.lifetime.next_check` (retire, max idle, max tail, die time),
and black-hole detection with :func:`~gwms.glidein.lifetime.recent_durations` and
:func:`~gwms.glidein.lifetime.is_black_hole`. Their settings come from the glidein's
config (the entry's attributes and the request's parameters) through the same path the
real glidein takes: :func:`gwms.glidein.pilot.lifetime_options` to the agent's command
line, parsed by :func:`gwms.glidein.options.build_parser` into
:func:`gwms.glidein.config.build_config`.

Matchmaking is modelled, not the real negotiator: every ``negotiation_interval`` each
free slot of an accepting glidein takes the oldest idle job that fits it (the job's
``DESIRED_Sites`` holds the entry's ``GLIDEIN_Site`` or is empty, and its CPUs and
memory fit the slot), at most ``MaxJobsRunning`` running; when a job ends, its slot
takes the next fitting job at once (claim reuse).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from gwms.frontend import adnames as N
from gwms.glidein.config import build_config
from gwms.glidein.lifetime import (
    Activity,
    Deadlines,
    LifetimePolicy,
    decide,
    is_black_hole,
    next_check,
    plan_deadlines,
    recent_durations,
)
from gwms.glidein.options import build_parser
from gwms.glidein.pilot import lifetime_options
from gwms.glidein.slots import STATIC, state_and_activity
from gwms.simulate.distributions import Distribution
from gwms.simulate.events import EventLoop

__all__ = ["Glidein", "Job", "JobKind", "Pool", "PoolStats", "Slot", "glidein_lifetime"]

IDLE, RUNNING, DONE = 1, 2, 4


@lru_cache(maxsize=1024)
def _lifetime(items: tuple[tuple[str, str], ...]) -> LifetimePolicy:
    opts = lifetime_options(dict(items))
    ns = build_parser().parse_args(["run", "--collector", "http://simulated.invalid", "--token", "-", *opts])
    kw = {k: v for k, v in vars(ns).items() if k != "command"}
    kw.update(token_file=None, cpus=kw.get("cpus") or 1, memory=kw.get("memory") or 1,
              disk=kw.get("disk") or 1, attrs=())
    return build_config(**kw).lifetime


def glidein_lifetime(config: Mapping[str, Any]) -> LifetimePolicy:
    """The agent's lifetime policy for a glidein whose ``glidein_config`` holds ``config``
    (values as text), computed as the real glidein computes it."""
    return _lifetime(tuple(sorted((str(k), _text(v)) for k, v in config.items())))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


class JobKind:
    """Jobs of one workload item: their requirements, runtime, and idle queue."""

    def __init__(self, index: int, name: str, cpus: int, memory: int, sites: list[str],
                 runtime: Distribution, owner: str, attrs: Mapping[str, Any]) -> None:
        self.index = index
        self.name = name
        self.cpus = cpus
        self.memory = memory
        self.sites = frozenset(sites) if sites else None
        self.runtime = runtime
        self.template: dict[str, Any] = {
            "MyType": "Job",
            "JobUniverse": 5,
            "Owner": owner,
            N.REQUEST_CPUS: cpus,
            "RequestMemory": memory,
            "DESIRED_Sites": ",".join(sites),
            "WorkloadName": name,
            **attrs,
        }
        self.idle: collections.deque[Job] = collections.deque()

    def fits(self, site: str | None, cpus: int, memory: int) -> bool:
        """Whether a job of this kind can run in a slot of ``cpus``/``memory`` at ``site``."""
        if self.sites is not None and site not in self.sites:
            return False
        return self.cpus <= cpus and self.memory <= memory


class Job:
    """One job: its ad (status changes in place), runtime, and where it runs."""

    __slots__ = ("ad", "attempts", "end_token", "id", "kind", "runtime", "slot", "started", "state", "submitted")

    def __init__(self, job_id: int, kind: JobKind, runtime: float, now: float, schedd: str) -> None:
        self.id = job_id
        self.kind = kind
        self.runtime = runtime
        self.state = IDLE
        self.slot: Slot | None = None
        self.submitted = now
        self.started = 0.0
        self.attempts = 0
        self.end_token = 0
        self.ad = dict(kind.template)
        self.ad.update({
            "ClusterId": job_id, "ProcId": 0, "GlobalJobId": f"{schedd}#{job_id}.0",
            N.JOB_STATUS: N.JOB_IDLE, N.ENTERED_CURRENT_STATUS: int(now), "QDate": int(now),
        })


class Slot:
    """A static slot of a glidein (the agent's ``Static`` kind)."""

    __slots__ = ("ad", "cpus", "glidein", "index", "job", "memory", "name")
    kind = STATIC
    children: tuple[()] = ()

    def __init__(self, glidein: Glidein, index: int, cpus: int, memory: int) -> None:
        self.glidein = glidein
        self.index = index
        self.cpus = cpus
        self.memory = memory
        self.job: Job | None = None
        self.name = f"slot{index}@{glidein.name}"
        self.ad: dict[str, Any] = {}

    @property
    def busy(self) -> bool:
        """Whether a job runs in the slot."""
        return self.job is not None


class Glidein:
    """A glidein that started at a site: its slots, lifetime and black-hole state."""

    __slots__ = (
        "accepting",
        "alive",
        "black_hole_node",
        "check_at",
        "check_version",
        "client",
        "cluster",
        "deadlines",
        "entry",
        "factory",
        "history",
        "idle_since",
        "instance",
        "job_failure_runtime",
        "jobs_failed",
        "jobs_started",
        "latched",
        "name",
        "on_exit",
        "policy",
        "proc",
        "ready",
        "running",
        "site",
        "slots",
        "started",
        "useful",
    )

    def __init__(self, name: str, entry: str, site: str | None, factory: str, instance: str, client: str,
                 policy: LifetimePolicy, started: float, black_hole_node: bool, job_failure_runtime: float,
                 on_exit: Callable[[Glidein, str], None], cluster: int = 0, proc: int = 0) -> None:
        self.name = name
        self.cluster = cluster
        self.proc = proc
        self.entry = entry
        self.site = site
        self.factory = factory
        self.instance = instance
        self.client = client
        self.policy = policy
        self.started = started
        self.black_hole_node = black_hole_node
        self.job_failure_runtime = job_failure_runtime
        self.on_exit = on_exit
        self.ready = False
        self.alive = True
        self.accepting = True
        self.latched = False
        self.running = 0
        self.jobs_started = 0
        self.jobs_failed = 0
        self.idle_since = started
        self.history: collections.deque[tuple[float, float]] = collections.deque(maxlen=1000)
        self.slots: list[Slot] = []
        self.deadlines = Deadlines(started, math.inf, math.inf)
        self.check_at = math.inf
        self.check_version = 0
        self.useful = 0.0

    def activity(self, now: float) -> Activity:
        """The agent's activity, as :func:`gwms.glidein.lifetime.decide` reads it."""
        return Activity(now=now, jobs_started=self.jobs_started, running=self.running,
                        idle_since=self.idle_since, black_hole=self.latched)


class PoolStats:
    """Counters of the pool for the report."""

    def __init__(self) -> None:
        self.submitted = 0
        self.idle = 0
        self.running = 0
        self.done = 0
        self.job_starts = 0
        self.black_hole_failures = 0
        self.vacated = 0
        self.glideins_started = 0
        self.glideins_ready = 0
        self.glideins_ended = 0
        self.glideins_latched = 0
        self.glidein_seconds = 0.0
        self.wasted_seconds = 0.0
        self.useful_seconds = 0.0
        self.wait_total = 0.0
        self.first_job_start: float | None = None
        self.failures_per_black_hole: list[int] = []


class Pool:
    """The user pool of one simulation (see the module docstring).

    Args:
        loop: the event loop.
        schedd: the schedd's name.
        max_jobs_running: the schedd's MaxJobsRunning.
        negotiation_interval: seconds between matchmaking cycles.
    """

    def __init__(self, loop: EventLoop, schedd: str, max_jobs_running: int, negotiation_interval: float) -> None:
        self.loop = loop
        self.schedd = schedd
        self.max_jobs_running = max_jobs_running
        self.negotiation_interval = negotiation_interval
        self.kinds: list[JobKind] = []
        self.active: dict[int, dict[str, Any]] = {}
        self.slot_ads: dict[str, dict[str, Any]] = {}
        self.slot_ads_by_entry: dict[str, dict[str, dict[str, Any]]] = {}
        self.free: dict[Slot, None] = {}
        self.glideins: dict[str, Glidein] = {}
        self.stats = PoolStats()
        self._next_id = 0
        self._fit_cache: dict[tuple[str | None, int, int], list[JobKind]] = {}
        loop.schedule(loop.now, self.negotiate, priority=7)

    # ------------------------------------------------------------------ jobs

    def add_kind(self, kind: JobKind) -> None:
        """Register a kind of job (a workload item)."""
        self.kinds.append(kind)
        self._fit_cache.clear()

    def submit(self, kind: JobKind, runtimes: list[float]) -> None:
        """Queue jobs of ``kind`` with these runtimes (idle at once)."""
        now = self.loop.now
        for runtime in runtimes:
            self._next_id += 1
            job = Job(self._next_id, kind, runtime, now, self.schedd)
            kind.idle.append(job)
            self.active[job.id] = job.ad
        self.stats.submitted += len(runtimes)
        self.stats.idle += len(runtimes)

    def schedd_ad(self) -> dict[str, Any]:
        """The schedd's ``Scheduler`` ad."""
        return {
            "MyType": "Scheduler", N.NAME: self.schedd, "ScheddIpAddr": "http://simulated.invalid/schedd",
            N.SCHEDD_MAX_JOBS_RUNNING: self.max_jobs_running,
            N.SCHEDD_TOTAL_RUNNING_JOBS: self.stats.running, "TotalIdleJobs": self.stats.idle,
        }

    def _fitting(self, slot: Slot) -> list[JobKind]:
        key = (slot.glidein.site, slot.cpus, slot.memory)
        found = self._fit_cache.get(key)
        if found is None:
            found = self._fit_cache[key] = [k for k in self.kinds if k.fits(*key)]
        return found

    def _pick(self, slot: Slot) -> Job | None:
        best: JobKind | None = None
        for kind in self._fitting(slot):
            if kind.idle and (best is None or kind.idle[0].id < best.idle[0].id):
                best = kind
        return best.idle.popleft() if best is not None else None

    def negotiate(self) -> None:
        """One matchmaking cycle: free slots take the oldest fitting idle jobs."""
        if self.stats.idle and self.free:
            for slot in list(self.free):
                if self.stats.idle == 0 or self.stats.running >= self.max_jobs_running:
                    break
                job = self._pick(slot)
                if job is not None:
                    self._start_job(job, slot)
        self.loop.after(self.negotiation_interval, self.negotiate, priority=7)

    def _start_job(self, job: Job, slot: Slot) -> None:
        now = self.loop.now
        g = slot.glidein
        self.free.pop(slot, None)
        slot.job = job
        job.slot = slot
        job.state = RUNNING
        job.started = now
        job.attempts += 1
        job.end_token += 1
        job.ad[N.JOB_STATUS] = N.JOB_RUNNING
        job.ad[N.ENTERED_CURRENT_STATUS] = int(now)
        job.ad[N.REMOTE_HOST] = slot.name
        st = self.stats
        st.idle -= 1
        st.running += 1
        st.job_starts += 1
        if st.first_job_start is None:
            st.first_job_start = now
        if job.attempts == 1:
            st.wait_total += now - job.submitted
        g.running += 1
        g.jobs_started += 1
        self._slot_ad(slot)
        runtime = g.job_failure_runtime if g.black_hole_node else job.runtime
        self.loop.after(runtime, self._job_end, job, job.end_token, priority=3)
        self._evaluate(g)

    def _release_job(self, job: Job, slot: Slot) -> None:
        """Take a job off its slot (it ended or was vacated); the slot's bookkeeping."""
        g = slot.glidein
        slot.job = None
        job.slot = None
        g.running -= 1
        self.stats.running -= 1
        if g.running == 0:
            g.idle_since = self.loop.now

    def _requeue(self, job: Job) -> None:
        job.state = IDLE
        job.ad[N.JOB_STATUS] = N.JOB_IDLE
        job.ad[N.ENTERED_CURRENT_STATUS] = int(self.loop.now)
        job.ad.pop(N.REMOTE_HOST, None)
        job.kind.idle.appendleft(job)
        self.stats.idle += 1

    def _job_end(self, job: Job, token: int) -> None:
        if job.end_token != token or job.state != RUNNING or job.slot is None:
            return
        now = self.loop.now
        slot = job.slot
        g = slot.glidein
        ran = now - job.started
        self._release_job(job, slot)
        g.history.append((now, ran))
        if g.black_hole_node:
            g.jobs_failed += 1
            self.stats.black_hole_failures += 1
            self._requeue(job)
        else:
            job.state = DONE
            self.active.pop(job.id, None)
            self.stats.done += 1
            g.useful += ran
            self.stats.useful_seconds += ran
        pol = g.policy
        if not g.latched and pol.blackhole_numjobs > 0:
            recent = recent_durations(g.history, now, pol.blackhole_window)
            if is_black_hole(recent, pol.blackhole_numjobs, pol.blackhole_rate):
                g.latched = True
                self.stats.glideins_latched += 1
        self._slot_ad(slot)
        self._evaluate(g)
        if g.alive and g.accepting and slot.job is None and g.ready:
            self.free[slot] = None
            if self.stats.idle and self.stats.running < self.max_jobs_running:
                nxt = self._pick(slot)  # claim reuse
                if nxt is not None:
                    self._start_job(nxt, slot)

    # ------------------------------------------------------------------ glideins

    def glidein_ready(self, g: Glidein, slots: int, cpus: int, memory: int, draw: float) -> None:
        """The glidein's agent starts: its slots join the pool; its lifetime begins."""
        if not g.alive:
            return
        now = self.loop.now
        g.ready = True
        g.idle_since = now
        g.deadlines = plan_deadlines(now, g.policy, draw)
        n = max(1, slots)
        for i in range(1, n + 1):
            s = Slot(g, i, max(1, cpus // n), max(1, memory // n))
            s.ad = {
                "MyType": "Machine", N.NAME: s.name, N.GLIDEIN_FACTORY: g.factory, N.GLIDEIN_NAME: g.instance,
                N.GLIDEIN_ENTRY_NAME: g.entry, N.GLIDECLIENT_NAME: g.client, N.CPUS: s.cpus, N.MEMORY: s.memory,
                "GLIDEIN_Site": g.site, N.IS_MONITOR_VM: False, N.PARTITIONABLE_SLOT: False,
                "GLIDEIN_ClusterId": g.cluster, "GLIDEIN_ProcId": g.proc,
            }
            g.slots.append(s)
            self._slot_ad(s)
            self.slot_ads[s.name] = s.ad
            self.slot_ads_by_entry.setdefault(g.entry, {})[s.name] = s.ad
            self.free[s] = None
        self.stats.glideins_ready += 1
        self._evaluate(g)

    def _slot_ad(self, slot: Slot) -> None:
        state, activity = state_and_activity(slot, slot.glidein.accepting)  # type: ignore[arg-type]
        if slot.ad.get(N.STATE) != state:
            slot.ad[N.STATE] = state
            slot.ad["EnteredCurrentState"] = int(self.loop.now)
        slot.ad[N.ACTIVITY] = activity

    def _evaluate(self, g: Glidein) -> None:
        """Apply the lifetime verdict now, and plan the next look at it."""
        if not g.alive or not g.ready:
            return
        now = self.loop.now
        act = g.activity(now)
        verdict = decide(g.deadlines, g.policy, act)
        if not verdict.accept and g.accepting:
            g.accepting = False
            for s in g.slots:
                self.free.pop(s, None)
                self._slot_ad(s)
        if verdict.vacate:
            self._vacate(g)
            act = g.activity(now)
        if verdict.exit or (not g.accepting and g.running == 0):
            self.end_glidein(g, verdict.reason or "retired")
            return
        at = next_check(g.deadlines, g.policy, act)
        if at > now and at != g.check_at:
            g.check_at = at
            g.check_version += 1
            self.loop.schedule(at, self._check, g, g.check_version, priority=4)

    def _check(self, g: Glidein, version: int) -> None:
        if version == g.check_version:
            g.check_at = math.inf
            self._evaluate(g)

    def _vacate(self, g: Glidein) -> None:
        for s in g.slots:
            job = s.job
            if job is not None:
                self._release_job(job, s)
                job.end_token += 1
                self.stats.vacated += 1
                self._requeue(job)
                self._slot_ad(s)

    def end_glidein(self, g: Glidein, reason: str) -> None:
        """The glidein is gone (it exited, or the site killed or removed it): its jobs go
        back to idle, its slots leave the pool."""
        if not g.alive:
            return
        self._vacate(g)
        g.alive = False
        g.accepting = False
        now = self.loop.now
        for s in g.slots:
            self.free.pop(s, None)
            self.slot_ads.pop(s.name, None)
            self.slot_ads_by_entry.get(g.entry, {}).pop(s.name, None)
        self.glideins.pop(g.name, None)
        self.stats.glideins_ended += 1
        self.stats.glidein_seconds += now - g.started
        self.stats.wasted_seconds += (now - g.started) - g.useful / max(1, len(g.slots))
        if g.black_hole_node:
            self.stats.failures_per_black_hole.append(g.jobs_failed)
        g.on_exit(g, reason)

    def add_glidein(self, g: Glidein) -> None:
        """A glidein started at its site (its agent is not up yet)."""
        self.glideins[g.name] = g
        self.stats.glideins_started += 1

    # ------------------------------------------------------------------ views

    def glidein_states(self) -> dict[str, int]:
        """Glideins by state: starting, idle, busy, retiring."""
        out = {"starting": 0, "idle": 0, "busy": 0, "retiring": 0}
        for g in self.glideins.values():
            if not g.ready:
                out["starting"] += 1
            elif not g.accepting:
                out["retiring"] += 1
            elif g.running:
                out["busy"] += 1
            else:
                out["idle"] += 1
        return out

    def finish(self, now: float) -> None:
        """End of the run: count the time of the glideins still alive."""
        for g in self.glideins.values():
            self.stats.glidein_seconds += now - g.started
            useful = g.useful
            if not g.black_hole_node:
                for s in g.slots:
                    if s.job is not None:
                        useful += now - s.job.started
                        self.stats.useful_seconds += now - s.job.started
            self.stats.wasted_seconds += (now - g.started) - useful / max(1, len(g.slots))
            if g.black_hole_node:
                self.stats.failures_per_black_hole.append(g.jobs_failed)
