"""Simulated sites, and the factory backend that submits to them.

:class:`SimBackend` is a :class:`gwms.factory.backends.base.Backend` like ``local`` or
``slurm``, so the real :class:`~gwms.factory.entry.EntryWorker` submits, polls and
removes through it. Behind it, :class:`SimSite` is one batch queue
(:class:`~gwms.simulate.scenario.SiteSpec`): a pilot waits its queue delay, then for a
free batch slot; it may be refused at submission, die as it starts (the factory sees
it fail without ever running: an early death), land on a black-hole node, or start a
glidein (:class:`gwms.simulate.pool.Glidein`) that joins the pool after its start-up
time and lives by the agent's lifetime rules. The walltime of the entry's pilots
(``pilot.walltime_s``) is enforced by the site.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Sequence
from typing import Any

from gwms.factory.backends.base import BackendError, PilotSpec, SiteState, SiteStatus
from gwms.factory.config import EntryConfig
from gwms.simulate.events import EventLoop
from gwms.simulate.pool import Glidein, Pool, glidein_lifetime
from gwms.simulate.scenario import SiteSpec

__all__ = ["SimBackend", "SimSite", "SitePilot", "SiteStats"]

_PARAM = "GLIDEIN_PARAM_"
_UNKNOWN = SiteStatus(SiteState.UNKNOWN, reason="the site does not know this job")
_PENDING = SiteStatus(SiteState.PENDING)
_RUNNING = SiteStatus(SiteState.RUNNING)


class SitePilot:
    """One pilot job at a site."""

    __slots__ = ("black_hole", "client", "cluster", "config", "ended", "glidein", "pilot_id", "proc",
                 "site_id", "started", "status", "submitted", "waiting")

    def __init__(self, site_id: str, pilot_id: str, client: str, config: dict[str, Any], now: float) -> None:
        self.site_id = site_id
        self.pilot_id = pilot_id
        self.client = client
        self.config = config
        self.status = _PENDING
        self.submitted = now
        self.started: float | None = None
        self.ended: float | None = None
        self.glidein: Glidein | None = None
        self.black_hole = False
        self.waiting = False
        self.cluster = 0
        self.proc = 0


class SiteStats:
    """What happened at one site."""

    def __init__(self) -> None:
        self.submitted = 0
        self.refused = 0
        self.started = 0
        self.failed_at_start = 0
        self.completed = 0
        self.removed = 0
        self.walltime_killed = 0
        self.black_hole_pilots = 0
        self.queued = 0
        self.running = 0


class SimSite:
    """The batch queue behind one entry (see the module docstring).

    Args:
        entry: the entry's configuration (attributes: GLIDEIN_Site, GLIDEIN_CPUS, ...).
        spec: the site's behaviour.
        loop: the event loop; pool: the user pool the glideins join.
        rng: this site's random numbers.
        factory, instance: the factory's name and instance (the glideins publish them).
    """

    def __init__(self, entry: EntryConfig, spec: SiteSpec, loop: EventLoop, pool: Pool,
                 rng: random.Random, factory: str, instance: str) -> None:
        self.entry = entry
        self.spec = spec
        self.loop = loop
        self.pool = pool
        self.rng = rng
        self.factory = factory
        self.instance = instance
        self.site_name = str(entry.attrs.get("GLIDEIN_Site", entry.name))
        self.pilots: dict[str, SitePilot] = {}
        self.by_pilot_id: dict[str, str] = {}
        self.waiting: collections.deque[SitePilot] = collections.deque()
        self.busy = 0
        self.stats = SiteStats()
        self._next = 0
        #: how the site reports the pilot whose glidein is being ended (removal, walltime)
        self._pending_status: SiteStatus | None = None
        self._filling = False

    # ------------------------------------------------------------------ the backend's calls

    def submit(self, specs: Sequence[PilotSpec]) -> list[str | BackendError]:
        """Queue pilots (one site id or a refusal each)."""
        out: list[str | BackendError] = []
        now = self.loop.now
        for spec in specs:
            known = self.by_pilot_id.get(spec.pilot_id)
            if known is not None:
                out.append(known)
                continue
            if self.spec.submit_refusal_rate and self.rng.random() < self.spec.submit_refusal_rate:
                self.stats.refused += 1
                out.append(BackendError(f"{self.site_name}: submission refused (simulated)"))
                continue
            self._next += 1
            site_id = f"{self.entry.name}.{self._next}"
            env = spec.env
            config: dict[str, Any] = dict(self.entry.attrs)
            for key, value in env.items():
                if key.startswith(_PARAM):
                    config[key[len(_PARAM):]] = value
            p = SitePilot(site_id, spec.pilot_id, env.get("GLIDEIN_Client", ""), config, now)
            p.cluster = _int(env.get("GLIDEIN_Cluster"), 0)
            p.proc = _int(env.get("GLIDEIN_Proc"), 0)
            self.pilots[site_id] = p
            self.by_pilot_id[spec.pilot_id] = site_id
            self.stats.submitted += 1
            self.stats.queued += 1
            self.loop.after(self.spec.queue_delay.draw(self.rng), self._queued, p, priority=2)
            out.append(site_id)
        return out

    def poll(self, site_ids: Sequence[str]) -> dict[str, SiteStatus]:
        """Each pilot's state (UNKNOWN for ids never seen)."""
        pilots = self.pilots
        return {sid: (p.status if (p := pilots.get(sid)) is not None else _UNKNOWN) for sid in site_ids}

    def remove(self, site_ids: Sequence[str]) -> None:
        """Remove pilots: queued ones leave the queue, running ones are killed."""
        for sid in site_ids:
            p = self.pilots.get(sid)
            if p is None or p.ended is not None:
                continue
            if p.started is None:
                self.stats.queued -= 1
                self._end(p, SiteStatus(SiteState.REMOVED, reason="removed by the factory"), free=False)
            elif p.glidein is not None and p.glidein.alive:
                self._pending_status = SiteStatus(SiteState.REMOVED, reason="removed by the factory")
                self.pool.end_glidein(p.glidein, "removed by the factory")
            else:
                self._end(p, SiteStatus(SiteState.REMOVED, reason="removed by the factory"), free=True)
            self.stats.removed += 1

    # ------------------------------------------------------------------ the queue

    def _queued(self, p: SitePilot) -> None:
        if p.ended is not None:
            return
        if self.busy < self.spec.capacity:
            self._start(p)
        else:
            p.waiting = True
            self.waiting.append(p)

    def _start(self, p: SitePilot) -> None:
        now = self.loop.now
        self.busy += 1
        self.stats.queued -= 1
        p.waiting = False
        p.started = now
        rate = self.spec.failure_rate_at(now)
        if rate and self.rng.random() < rate:
            self.stats.failed_at_start += 1
            p.started = None
            self._end(p, SiteStatus(SiteState.FAILED, exit_code=1,
                                    reason="the pilot died before starting (simulated site failure)"), free=True)
            return
        self.stats.started += 1
        self.stats.running += 1
        p.status = _RUNNING
        p.black_hole = bool(self.spec.black_hole_fraction) and self.rng.random() < self.spec.black_hole_fraction
        if p.black_hole:
            self.stats.black_hole_pilots += 1
        policy = glidein_lifetime(p.config)
        g = Glidein(
            name=f"glidein_{p.pilot_id}", entry=self.entry.name, site=self.site_name, factory=self.factory,
            instance=self.instance, client=p.client, policy=policy, started=now, black_hole_node=p.black_hole,
            job_failure_runtime=self.spec.black_hole_job_runtime, on_exit=self._glidein_exited,
            cluster=p.cluster, proc=p.proc,
        )
        p.glidein = g
        self.pool.add_glidein(g)
        slots = _int(p.config.get("GLIDEIN_Slots"), 1)
        cpus = _int(p.config.get("GLIDEIN_CPUS"), self.entry.cpus())
        memory = _int(p.config.get("GLIDEIN_MaxMemMBs"), self.entry.memory_mb())
        self.loop.after(self.spec.startup.draw(self.rng), self.pool.glidein_ready, g, slots, cpus, memory,
                        self.rng.random(), priority=2)
        walltime = self.entry.pilot.walltime_s
        if walltime > 0:
            self.loop.after(walltime, self._walltime, p, priority=2)

    def _walltime(self, p: SitePilot) -> None:
        if p.ended is None and p.glidein is not None and p.glidein.alive:
            self.stats.walltime_killed += 1
            self._pending_status = SiteStatus(SiteState.FAILED, exit_code=143, reason="walltime exceeded")
            self.pool.end_glidein(p.glidein, "walltime exceeded")

    def _glidein_exited(self, g: Glidein, reason: str) -> None:
        site_id = self.by_pilot_id.get(g.name[len("glidein_"):])
        p = self.pilots.get(site_id or "")
        if p is None or p.ended is not None:
            return
        status = self._pending_status or SiteStatus(SiteState.COMPLETED, exit_code=0, reason=reason)
        self._pending_status = None
        self.stats.running -= 1
        if status.state is SiteState.COMPLETED:
            self.stats.completed += 1
        self._end(p, status, free=True)

    def _end(self, p: SitePilot, status: SiteStatus, *, free: bool) -> None:
        p.status = status
        p.ended = self.loop.now
        if free:
            self.busy -= 1
            self._fill()

    def _fill(self) -> None:
        """Start waiting pilots while batch slots are free (a loop, not a recursion: a
        pilot that dies as it starts frees its slot for the next at once)."""
        if self._filling:
            return
        self._filling = True
        try:
            while self.waiting and self.busy < self.spec.capacity:
                nxt = self.waiting.popleft()
                if nxt.ended is None and nxt.waiting:
                    self._start(nxt)
        finally:
            self._filling = False


def _int(value: Any, default: int) -> int:
    try:
        n = int(float(value))
    except (TypeError, ValueError):
        return default
    return n if n > 0 else default


class SimBackend:
    """The factory's backend for a :class:`SimSite` (the ``Backend`` protocol)."""

    name = "simulated"

    def __init__(self, site: SimSite) -> None:
        self.site = site

    def submit(self, pilots: Sequence[PilotSpec]) -> list[str | BackendError]:
        """Start ``pilots`` at the simulated site."""
        return self.site.submit(pilots)

    def poll(self, site_ids: Sequence[str]) -> dict[str, SiteStatus]:
        """The state of each pilot at the site."""
        return self.site.poll(site_ids)

    def remove(self, site_ids: Sequence[str]) -> None:
        """Remove these pilots at the site."""
        self.site.remove(site_ids)

    def release(self, site_ids: Sequence[str]) -> None:
        """Nothing is ever held at a simulated site."""

    def collect_output(self, site_id: str, pilot: PilotSpec) -> None:
        """No files: a simulated pilot writes no output."""
