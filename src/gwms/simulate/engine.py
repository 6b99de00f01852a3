"""The simulation: the real frontend and factory code, simulated sites and jobs, virtual time.

:class:`Simulation` wires, on one :class:`~gwms.simulate.events.EventLoop`:

- **the frontend** (each enabled group of the frontend config, every ``loop_delay``,
  and sooner on idle-count changes when ``frontend_watch_interval`` is set): a
  :class:`~gwms.frontend.cycle.GroupSnapshot` built from the simulated state (the
  schedd's ad and idle/running job ads passing the group's job query, the glidein slot
  ads, the factory's ``glidefactory``/``glidefactoryglobal`` ads passing the factory
  query), then :func:`gwms.frontend.cycle.plan_group` and
  :func:`gwms.frontend.advertise.build_cycle_ads` — the real request math, matching,
  removal levels, credential split and encrypted ``glideclient`` ads;
- **the WMS collector**, played by the simulation: it stamps ``AuthenticatedIdentity``
  (the frontend's ``my_identity``, the factory's ``factory_identity``) as the real
  collector does from the tokens;
- **the factory**: the real :class:`~gwms.factory.requests.RequestReader` (decryption,
  anti-spoofing checks) and one real :class:`~gwms.factory.entry.EntryWorker` per
  entry (poll, health and pauses, keep-idle, limits, removals, submit clusters, ads),
  over an in-memory pilot store and a :class:`~gwms.simulate.sites.SimBackend`; an
  entry cycles every ``loop_delay``, ``followup_s`` after a cycle that acted, and at
  once when its requests change, as the factory service schedules it;
- **the sites and the pool** (:mod:`gwms.simulate.sites`, :mod:`gwms.simulate.pool`);
- **the workload** (:mod:`gwms.simulate.workload`) and the **metrics**
  (:mod:`gwms.simulate.metrics`), sampled every ``sample_interval``.

Simulated time starts at :data:`EPOCH` (a fixed date, so runs repeat exactly).
"""

from __future__ import annotations

import inspect
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gwms.classads.constraint import compile_constraint
from gwms.config import load_config
from gwms.factory import ads as adsmod
from gwms.factory import attributes as FA
from gwms.factory.config import FactoryConfig
from gwms.factory.entry import EntryWorker, entry_status, env_command, stored_health
from gwms.factory.limits import Counts
from gwms.factory.requests import RequestReader, ValidRequest
from gwms.frontend.advertise import build_cycle_ads
from gwms.frontend.config import FrontendConfig, load_frontend_config
from gwms.frontend.cycle import GroupPlan, GroupSnapshot, WmsView, plan_group
from gwms.frontend.removal import RemovalState
from gwms.frontend.service import job_constraint
from gwms.security.hybrid import Decryptor, RsaKeyPair, SessionKey
from gwms.simulate.events import EventLoop
from gwms.simulate.memstore import MemoryPilotStore
from gwms.simulate.metrics import Metrics
from gwms.simulate.pool import Pool
from gwms.simulate.scenario import Scenario, ScenarioError
from gwms.simulate.sites import SimBackend, SimSite
from gwms.simulate.workload import schedule_workload

__all__ = ["EPOCH", "Simulation", "load_configs"]

#: The simulated clock starts here (2026-01-01T00:00:00Z): fixed, so runs repeat.
EPOCH = 1767225600.0
#: The pool token every simulated request carries.
SIMULATED_TOKEN = "simulated-pool-token"

_KEYS: dict[str, RsaKeyPair] = {}


def _key_pair(kid: str) -> RsaKeyPair:
    """The factory's key pair (one per key id and process: generating RSA keys is slow,
    and no decision depends on the key)."""
    found = _KEYS.get(kid)
    if found is None:
        found = _KEYS[kid] = RsaKeyPair.generate(kid, bits=2048)
    return found


def load_configs(scenario: Scenario, frontend: Path | None = None,
                 factory: Path | None = None) -> tuple[FrontendConfig, FactoryConfig]:
    """The frontend and factory configurations a scenario names (or these instead)."""
    fe = load_frontend_config(frontend or scenario.frontend)
    fa = load_config(factory or scenario.factory, FactoryConfig)
    return fe, fa


@dataclass
class _GroupState:
    name: str
    states: dict[str, RemovalState] = field(default_factory=dict)
    turn: int = 0
    cycles: int = 0
    plan: GroupPlan | None = None
    due: float = 0.0
    version: int = 0
    last_cycle: float = -1e18
    seen_idle: int = -1
    ads: list[dict[str, Any]] = field(default_factory=list)
    limits: dict[str, int] = field(default_factory=dict)
    requested_idle: int = 0
    requested_max: int = 0


@dataclass
class _EntryState:
    name: str
    worker: EntryWorker
    site: SimSite
    due: float = 0.0
    version: int = 0
    cycles: int = 0
    signature: tuple[Any, ...] = ()
    submitted: int = 0
    refused: int = 0
    removed: int = 0
    last_pause_at: float = 0.0
    pauses: list[tuple[float, float, str]] = field(default_factory=list)
    hourly: dict[int, int] = field(default_factory=dict)


class Simulation:
    """One run of a scenario (see the module docstring).

    Args:
        scenario: the scenario.
        frontend, factory: the configurations (default: the files the scenario names).
        seed: overrides the scenario's seed.
        progress: called with a line now and then during long runs (stderr in the CLI).
    """

    def __init__(
        self,
        scenario: Scenario,
        frontend: FrontendConfig | None = None,
        factory: FactoryConfig | None = None,
        *,
        seed: int | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        if frontend is None or factory is None:
            fe, fa = load_configs(scenario)
            frontend = frontend or fe
            factory = factory or fa
        self.scenario = scenario
        self.frontend = frontend
        self.factory = factory
        self.seed = scenario.seed if seed is None else seed
        self.progress = progress
        self.loop = EventLoop(EPOCH)
        self.end = EPOCH + scenario.duration
        self._check_configs()

        schedd = scenario.pool.schedd or (frontend.user_pool.schedds[0] if frontend.user_pool.schedds else "schedd")
        self.pool = Pool(self.loop, schedd, scenario.pool.max_jobs_running, scenario.pool.negotiation_interval)

        kid = factory.default_key_id()
        self.key_pair = _key_pair(kid)
        self.reader = RequestReader(factory, Decryptor(self.key_pair, clock=self.loop.clock))
        self.store = MemoryPilotStore()
        self.entries: dict[str, _EntryState] = {}
        for entry in factory.entries:
            if not entry.enabled:
                continue
            spec = scenario.site_for(entry.name)
            site = SimSite(entry, spec, self.loop, self.pool, self._rng(f"site:{entry.name}"),
                           factory.name, factory.instance)
            extra: dict[str, Any] = {}
            if "slot_source" in inspect.signature(EntryWorker).parameters:
                extra["slot_source"] = self._slot_source(entry.name)
            worker = EntryWorker(factory, entry, SimBackend(site), self.store, env_command([]),  # type: ignore[arg-type]
                                 key_id=self.key_pair.kid, clock=self.loop.clock, **extra)
            self.entries[entry.name] = _EntryState(entry.name, worker, site)
        if not self.entries:
            raise ScenarioError("the factory configuration has no enabled entry")
        unknown = sorted(set(scenario.sites) - set(self.entries))
        if unknown:
            raise ScenarioError(f"sites name entries the factory does not have: {', '.join(unknown)}")

        self.groups = {g: _GroupState(g) for g in frontend.enabled_groups()}
        self._factory_queries = {g: compile_constraint(frontend.factory_query(g)) for g in self.groups}
        self._job_queries = {g: compile_constraint(job_constraint(frontend.job_query(g))) for g in self.groups}
        self._kind_ok: dict[tuple[str, int], bool] = {}
        self.requests: dict[str, list[ValidRequest]] = {}
        self.requests_read = False
        self._read_pending = False
        self.refusals: dict[str, int] = {}
        self.factory_reads = 0

        self.kinds = schedule_workload(scenario.workload, self.loop, self.pool, self._rng("workload"), self.end)
        self.metrics = Metrics(self)
        self._wall_start = 0.0
        self._last_progress = 0.0
        #: wall-clock seconds spent in the real code: frontend cycles, factory request
        #: reads, entry cycles (not in the report: it would not repeat)
        self.timings = {"frontend": 0.0, "factory_read": 0.0, "entry": 0.0}

    # ------------------------------------------------------------------ set-up

    def _rng(self, purpose: str) -> random.Random:
        return random.Random(f"{self.seed}:{purpose}")

    def _check_configs(self) -> None:
        fe, fa = self.frontend, self.factory
        if fe.security_name not in fa.frontends:
            raise ScenarioError(
                f"the factory configuration has no frontend {fe.security_name!r} (the frontend's security name)"
            )
        identity = fa.frontends[fe.security_name].identity
        for group in fe.enabled_groups():
            urls = [w for w in fe.wms_collectors_of(group) if w.url == fa.wms_collector.rstrip("/")]
            if not urls:
                raise ScenarioError(
                    f"group {group!r} does not use the factory's WMS collector {fa.wms_collector}"
                )
            if urls[0].my_identity != identity:
                raise ScenarioError(
                    f"group {group!r} advertises as {urls[0].my_identity!r}, but the factory expects "
                    f"frontend {fe.security_name!r} to be {identity!r}"
                )

    @staticmethod
    def _glidein_token(credential: Any, entry_name: str) -> str:
        """Every request carries a placeholder pool token (nothing checks it here), so no
        signing key is needed and the factory reads the simulated pool's slots with it."""
        del credential, entry_name
        return SIMULATED_TOKEN

    def _slot_source(self, entry: str) -> Callable[[str, str, str, Sequence[str]], list[dict[str, Any]]]:
        """The factory's view of the user pool for one entry (what its collector query
        would answer): the entry's slot ads passing the constraint."""
        predicates: dict[str, Any] = {}

        def source(url: str, token: str, constraint: str, projection: Sequence[str]) -> list[dict[str, Any]]:
            pred = predicates.get(constraint)
            if pred is None:
                pred = predicates[constraint] = compile_constraint(constraint)
            now = int(self.loop.now)
            ads = self.pool.slot_ads_by_entry.get(entry, {}).values()
            return [{**ad, "LastHeardFrom": now} for ad in ads if pred(ad)]

        return source

    @property
    def factory_identity(self) -> str:
        """The identity the factory's ads carry (what the frontend expects)."""
        for group in self.groups:
            for w in self.frontend.wms_collectors_of(group):
                if w.url == self.factory.wms_collector.rstrip("/"):
                    return w.factory_identity
        return "factory"

    # ------------------------------------------------------------------ running

    def run(self) -> dict[str, Any]:
        """Run the scenario to its end; the report (JSON-able, deterministic for a seed).
        A simulation runs once (make a new one to run again)."""
        if self._wall_start:
            raise ScenarioError("this simulation has run already; make a new Simulation")
        self._wall_start = time.monotonic()
        self._last_progress = self._wall_start
        loop = self.loop
        for name in self.entries:
            self._schedule_entry(name, loop.now)
        for name in self.groups:
            self._schedule_group(name, loop.now)
        if self.scenario.frontend_watch_interval > 0:
            loop.schedule(loop.now + self.scenario.frontend_watch_interval, self._watch, priority=6)
        loop.schedule(loop.now, self.metrics.sample, priority=9)
        # the services' logs carry wall-clock times and one line per submit: the report says it better
        quiet = {name: logging.getLogger(name) for name in ("gwms.factory", "gwms.frontend")}
        levels = {name: lg.level for name, lg in quiet.items()}
        for lg in quiet.values():
            if lg.getEffectiveLevel() < logging.ERROR:
                lg.setLevel(logging.ERROR)
        try:
            loop.run(self.end, on_step=self._progress if self.progress else None)
        finally:
            for name, lg in quiet.items():
                lg.setLevel(levels[name])
        self.pool.finish(loop.now)
        self.metrics.sample_final()
        return self.metrics.report()

    @property
    def wall_seconds(self) -> float:
        """Wall-clock seconds the run took so far."""
        return time.monotonic() - self._wall_start

    def _progress(self, now: float) -> None:
        if self.loop.processed & 0x3FF:
            return
        wall = time.monotonic()
        if wall - self._last_progress < 5.0:
            return
        self._last_progress = wall
        st = self.pool.stats
        assert self.progress is not None
        self.progress(
            f"simulate: {(now - EPOCH) / 3600:.1f}/{self.scenario.duration / 3600:.1f} h simulated in "
            f"{wall - self._wall_start:.0f} s; jobs idle {st.idle}, running {st.running}, done {st.done}; "
            f"glideins {len(self.pool.glideins)}"
        )

    # ------------------------------------------------------------------ frontend

    def _schedule_group(self, name: str, at: float) -> None:
        st = self.groups[name]
        st.version += 1
        st.due = at
        self.loop.schedule(at, self._group_cycle, name, st.version, priority=5)

    def _watch(self) -> None:
        idle = self.pool.stats.idle
        for name, st in self.groups.items():
            if st.cycles and st.seen_idle != idle:
                st.seen_idle = idle
                at = max(self.loop.now, st.last_cycle + self.scenario.frontend_min_gap)
                if at < st.due:
                    self._schedule_group(name, at)
        self.loop.after(self.scenario.frontend_watch_interval, self._watch, priority=6)

    def factory_ads(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The factory's entry ads and global ad, as the WMS collector holds them."""
        now = self.loop.now
        identity = self.factory_identity
        fa = self.factory
        entry_ads = []
        for st in self.entries.values():
            report = st.worker.last_report
            if report is not None and report.ads:
                ad = report.ads[0]
            else:
                counts = self.store.count_active(st.name)
                ad = adsmod.entry_ad(
                    fa, st.worker.entry, key_id=self.key_pair.kid,
                    counts=Counts(counts.get("unsubmitted", 0), counts.get("pending", 0), counts.get("staging", 0),
                                  counts.get("running", 0), counts.get("held", 0)),
                    status=entry_status(st.worker.entry, self.store.control(st.name), now, []),
                )
            entry_ads.append({**ad, FA.AUTHENTICATED_IDENTITY: identity})
        glob = adsmod.global_ad(fa, key_id=self.key_pair.kid, public_pem=self.key_pair.public_pem,
                                entries=sorted(self.entries))
        return entry_ads, [{**glob, FA.AUTHENTICATED_IDENTITY: identity}]

    def _jobs_for(self, group: str) -> list[dict[str, Any]]:
        query = self._job_queries[group]
        ok = []
        for kind in self.pool.kinds:
            key = (group, kind.index)
            found = self._kind_ok.get(key)
            if found is None:
                idle_ad = {**kind.template, "JobStatus": 1}
                found = self._kind_ok[key] = bool(query(idle_ad))
            ok.append(found)
        ads = list(self.pool.active.values())
        if all(ok):
            return ads
        names = {k.name for k, good in zip(self.pool.kinds, ok, strict=True) if good}
        return [ad for ad in ads if ad.get("WorkloadName") in names]

    def _group_cycle(self, name: str, version: int) -> None:
        st = self.groups[name]
        if version != st.version:
            return
        fe = self.frontend
        now = self.loop.now
        entry_ads, global_ads = self.factory_ads()
        query = self._factory_queries[name]
        entry_ads = [ad for ad in entry_ads if query(ad)]
        views = []
        for w in fe.wms_collectors_of(name):
            mine = w.url == self.factory.wms_collector.rstrip("/")
            views.append(WmsView(url=w.url, my_identity=w.my_identity, factory_identity=w.factory_identity,
                                 entry_ads=entry_ads if mine else (), global_ads=global_ads if mine else ()))
        schedd = self.pool.schedd_ad()
        watched = fe.schedds_of(name)
        schedd_ads = {self.pool.schedd: schedd} if not watched or self.pool.schedd in watched else {}
        jobs = {self.pool.schedd: self._jobs_for(name)} if schedd_ads else {}
        snapshot = GroupSnapshot(now=now, schedd_ads=schedd_ads, jobs_by_schedd=jobs,
                                 slot_ads=list(self.pool.slot_ads.values()), wms=views)
        t0 = time.perf_counter()
        plan = plan_group(fe, name, snapshot, st.states, turn=st.turn)
        st.turn = plan.turn
        st.states = dict(plan.states)
        st.plan = plan
        st.cycles += 1
        st.last_cycle = now
        st.seen_idle = self.pool.stats.idle
        ads = build_cycle_ads(fe, plan, collector_url=fe.user_pool.collectors[0], token_for=self._glidein_token,
                              lifetime=int(max(300.0, 5 * fe.loop_delay)), new_session=SessionKey)
        mine: list[dict[str, Any]] = []
        for w in fe.wms_collectors_of(name):
            if w.url != self.factory.wms_collector.rstrip("/"):
                continue
            for ad in ads.glideclient.get(w.url, []):
                ad[FA.AUTHENTICATED_IDENTITY] = w.my_identity
                mine.append(ad)
        st.ads = mine
        self.timings["frontend"] += time.perf_counter() - t0
        st.requested_idle = sum(e.request.min_idle for e in plan.entries)
        st.requested_max = sum(e.request.max_run for e in plan.entries)
        for e in plan.entries:
            for limit in e.limits:
                st.limits[limit] = st.limits.get(limit, 0) + 1
        if not self._read_pending:
            self._read_pending = True
            self.loop.after(self.factory.request_poll_s, self._factory_read, priority=1)
        self._schedule_group(name, now + fe.loop_delay)

    # ------------------------------------------------------------------ factory

    def _factory_read(self) -> None:
        self._read_pending = False
        ads = [ad for st in self.groups.values() for ad in st.ads]
        t0 = time.perf_counter()
        valid, refused = self.reader.read(ads)
        self.timings["factory_read"] += time.perf_counter() - t0
        self.factory_reads += 1
        for r in refused:
            self.refusals[r.reason] = self.refusals.get(r.reason, 0) + 1
        now = self.loop.now
        for name, st in self.entries.items():
            sig = tuple(sorted(
                (r.key, r.req_idle, r.req_max, r.remove_level.value, r.remove_margin, r.idle_lifetime)
                for r in valid.get(name, ())
            ))
            if sig != st.signature:
                st.signature = sig
                if now < st.due:
                    self._schedule_entry(name, now)
        self.requests = valid
        self.requests_read = True

    def _schedule_entry(self, name: str, at: float) -> None:
        st = self.entries[name]
        st.version += 1
        st.due = at
        self.loop.schedule(at, self._entry_cycle, name, st.version, priority=4)

    def _entry_cycle(self, name: str, version: int) -> None:
        st = self.entries[name]
        if version != st.version:
            return
        now = self.loop.now
        requests = list(self.requests.get(name, ())) if self.requests_read else None
        t0 = time.perf_counter()
        report = st.worker.cycle(requests)
        self.timings["entry"] += time.perf_counter() - t0
        st.cycles += 1
        st.submitted += report.submitted
        st.refused += report.refused
        st.removed += report.removed
        if report.submitted:
            hour = int((now - self.loop.start) // 3600)
            st.hourly[hour] = st.hourly.get(hour, 0) + report.submitted
        health = stored_health(self.store.control(name))
        if health.paused_at and health.paused_at != st.last_pause_at:
            st.last_pause_at = health.paused_at
            st.pauses.append((health.paused_at, health.paused_until, health.reason))
        fa = self.factory
        delay = fa.loop_delay
        if report.submitted or report.removed or report.released:
            delay = min(delay, fa.followup_s)
        self._schedule_entry(name, now + delay)

    # ------------------------------------------------------------------ views for the metrics

    def factory_counts(self) -> dict[str, int]:
        """Active pilots by state, as the factory's store has them."""
        return self.store.count_active()

    def paused_entries(self) -> list[str]:
        """Entries whose failure pause lasts now."""
        now = self.loop.now
        out = []
        for name, st in self.entries.items():
            if st.pauses and st.pauses[-1][0] <= now < st.pauses[-1][1]:
                out.append(name)
        return out
