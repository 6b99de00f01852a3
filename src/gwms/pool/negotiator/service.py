"""The negotiator service: a matchmaking cycle every interval, or sooner when work arrives.

A cycle (:meth:`Negotiator.cycle`):

1. reads the Scheduler ads (``ScheddIpAddr`` is each schedd's URL) and the free slots
   (``State == "Unclaimed"``, or partitionable) from the collector;
2. asks each schedd for its idle jobs in autoclusters (``POST /v1/negotiation/jobs``,
   naming the job attributes the slots read) and what its submitters use now;
3. updates the accountant (usage with a half-life) and takes the effective priorities;
4. matches (:func:`gwms.pool.negotiator.matchmaker.negotiate`, in a thread);
5. sends each schedd its matches (``POST /v1/matches``), keeps the accountant's state
   file, and advertises a ``Negotiator`` ad (with ``NegotiatorIpAddr``) to the collector.

Slots a schedd holds (a pending match, or a claim the slot's ad does not show yet) are
not offered again: each schedd lists them with its idle jobs, and a partitionable slot
is offered with its pending matches' requests subtracted.

Early trigger: every ``watch_interval`` seconds the negotiator looks at the collector
(Scheduler ads' TotalIdleJobs, names of free slots) and starts a cycle at once when a
schedd has more idle jobs or a new free slot appeared, so a new glidein gets work within
a second or two. ``POST /v1/reschedule`` triggers one too (``condor_reschedule``).

HTTP (``gwms negotiator run`` serves it): ``GET /v1/userprio`` (READ), ``POST
/v1/userprio/factor`` (ADMINISTRATOR) ``{"submitter", "factor"}``, ``POST
/v1/reschedule`` (WRITE), ``GET /v1/status`` (READ): the last cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from pydantic import BaseModel

from gwms.net import ServiceClient, create_app, require_scopes
from gwms.net.auth import Identity
from gwms.net.dashboard import install_dashboard
from gwms.pool import jobattrs as A
from gwms.pool.collector.client import AsyncCollectorClient
from gwms.pool.matchattrs import slot_reads
from gwms.pool.negotiator.dashboard import negotiator_dashboard, negotiator_families
from gwms.pool.negotiator.fairshare import (
    DEFAULT_FACTOR,
    DEFAULT_HALF_LIFE,
    Accountant,
    load_accountant,
    save_accountant,
)
from gwms.pool.negotiator.matchmaker import JobGroup, Match, NegotiationResult, negotiate
from gwms.pool.resources import Resources, is_partitionable, slot_resources, with_resources
from gwms.security import scopes
from gwms.security.tokens import TokenVerifier

log = logging.getLogger("gwms.negotiator")

SLOT_CONSTRAINT = 'State =?= "Unclaimed" || PartitionableSlot =?= true'
Token = str | Callable[[], str] | None


@dataclass
class NegotiatorConfig:
    """How a negotiator runs (defaults as in HTCondor where it has one)."""

    collector_url: str
    name: str = field(default_factory=lambda: f"negotiator@{socket.gethostname()}")
    interval: float = 60.0
    half_life: float = DEFAULT_HALF_LIFE
    default_factor: float = DEFAULT_FACTOR
    state_file: Path | None = None
    watch_interval: float = 0.5
    min_gap: float = 0.25
    verify: bool | str = True


@dataclass
class CycleReport:
    """What one cycle did."""

    started: float = 0.0
    seconds: float = 0.0
    match_seconds: float = 0.0
    schedds: int = 0
    slots: int = 0
    idle_jobs: int = 0
    job_groups: int = 0
    slot_groups: int = 0
    evaluations: int = 0
    matches: int = 0
    accepted: int = 0
    refused: int = 0
    by_submitter: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    trigger: str = ""


def discount_taken(
    slots: Iterable[Mapping[str, Any]], taken: set[str], carved: Mapping[str, Resources]
) -> list[Mapping[str, Any]]:
    """The slots still free once the schedds' own bookings are counted (a pure decision).

    A static slot a schedd holds (a pending match or a claim: its ad may not say so yet)
    is left out; a partitionable slot is offered with its pending matches' requests
    subtracted, and left out once less than one CPU remains.
    """
    out: list[Mapping[str, Any]] = []
    for ad in slots:
        name = str(ad.get(A.NAME))
        if is_partitionable(ad):
            used = carved.get(name)
            if used is None:
                out.append(ad)
                continue
            free = slot_resources(ad).minus(used)
            if free.cpus >= 1 and free.memory >= 0 and free.disk >= 0 and free.gpus >= 0:
                out.append(with_resources(ad, free))
        elif name not in taken:
            out.append(ad)
    return out


def schedd_room(listing: Mapping[str, Any]) -> int:
    """New matches a schedd can still take: MaxJobsRunning minus running and pending."""
    cap = int(listing.get("max_jobs_running", 1 << 30))
    return max(0, cap - int(listing.get("running", 0)) - int(listing.get("pending", 0)))


class Negotiator:
    """The negotiator's state and cycle; :meth:`run` loops until stopped."""

    def __init__(self, config: NegotiatorConfig, *, token: Token, clock: Callable[[], float] = time.time) -> None:
        """A negotiator talking to ``config.collector_url`` and the schedds with ``token``."""
        self.config = config
        self.token = token
        self.clock = clock
        self.accountant: Accountant = (
            load_accountant(config.state_file, half_life=config.half_life, default_factor=config.default_factor)
            if config.state_file else Accountant(half_life=config.half_life, default_factor=config.default_factor)
        )
        self.collector = AsyncCollectorClient(config.collector_url, token=token, verify=config.verify,
                                              retries=1, timeout=30)
        self._schedds: dict[str, ServiceClient] = {}
        self.last = CycleReport()
        self.cycles = 0
        self.url: str | None = None
        self._trigger = asyncio.Event()
        self._trigger_reason = ""
        self._seen_free: set[str] = set()
        self._seen_idle: dict[str, int] = {}
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ plumbing

    def _schedd(self, url: str) -> ServiceClient:
        client = self._schedds.get(url)
        if client is None:
            client = ServiceClient(url, token=self.token, verify=self.config.verify, retries=1,
                                   timeout=60, service="schedd")
            self._schedds[url] = client
        return client

    async def aclose(self) -> None:
        """Close the connections."""
        await self.collector.aclose()
        for client in self._schedds.values():
            await client.aclose()

    def trigger(self, reason: str) -> None:
        """Start a cycle as soon as the minimum gap allows."""
        if not self._trigger.is_set():
            self._trigger_reason = reason
            self._trigger.set()

    # ------------------------------------------------------------------ the cycle

    async def cycle(self, reason: str = "interval") -> CycleReport:
        """One negotiation cycle (see the module docstring)."""
        async with self._lock:
            return await self._cycle(reason)

    async def _cycle(self, reason: str) -> CycleReport:
        started = self.clock()
        t0 = time.monotonic()
        report = CycleReport(started=started, trigger=reason)
        schedd_ads = await self.collector.query("Scheduler")
        slot_ads = await self.collector.query("Machine", constraint=SLOT_CONSTRAINT)
        self._seen_free = {str(ad.get(A.NAME)) for ad in slot_ads}
        significant = sorted(_slot_reads_all(slot_ads))
        groups: list[JobGroup] = []
        limits: dict[str, int] = {}
        urls: dict[str, str] = {}
        in_use: dict[str, float] = {}
        taken: set[str] = set()
        carved: dict[str, Resources] = {}
        for ad in schedd_ads:
            name, url = ad.get(A.NAME), ad.get("ScheddIpAddr")
            if not isinstance(name, str) or not isinstance(url, str):
                continue
            self._seen_idle[name] = int(ad.get("TotalIdleJobs", 0) or 0)
            try:
                listing = await self._schedd(url).post("/v1/negotiation/jobs", {"significant": significant},
                                                       retry_unsafe=True)
            except Exception as exc:  # one schedd down must not stop the others
                report.errors.append(f"{name}: {exc}")
                log.warning("cannot list the idle jobs of %s: %s", name, exc)
                continue
            urls[name] = url
            limits[name] = schedd_room(listing)
            for submitter, cpus in dict(listing.get("usage", {})).items():
                in_use[submitter] = in_use.get(submitter, 0.0) + float(cpus)
            taken.update(str(n) for n in listing.get("taken_slots", []))
            for slot, amount in dict(listing.get("carved", {})).items():
                carved[slot] = carved.get(slot, Resources()).plus(Resources.from_ad(amount))
            groups.extend(JobGroup.from_json(name, g) for g in listing.get("groups", []))
        report.schedds = len(urls)
        slots = discount_taken(slot_ads, taken, carved)
        for g in groups:  # submitters with idle jobs show in userprio even before they run
            self.accountant.record(g.submitter, started)
        self.accountant.update(in_use, started)
        priorities = {g.submitter: self.accountant.priority_of(g.submitter) for g in groups}
        m0 = time.monotonic()
        result: NegotiationResult = await asyncio.to_thread(negotiate, groups, slots, priorities,
                                                            schedd_limits=limits)
        report.match_seconds = round(time.monotonic() - m0, 4)
        await self._send(result.matches, urls, report)
        report.slots, report.idle_jobs = result.slots, result.idle_jobs
        report.job_groups, report.slot_groups = result.job_groups, result.slot_groups
        report.evaluations, report.matches = result.evaluations, len(result.matches)
        report.by_submitter = dict(result.by_submitter)
        if self.config.state_file is not None:
            await asyncio.to_thread(save_accountant, self.accountant.as_json(), self.config.state_file)
        report.seconds = round(time.monotonic() - t0, 4)
        self.last = report
        self.cycles += 1
        await self._advertise(report)
        level = logging.INFO if report.matches or report.errors else logging.DEBUG
        log.log(level, "cycle (%s): %d idle jobs in %d groups, %d slots in %d groups, %d matches "
                "(%d accepted) in %.3f s", reason, report.idle_jobs, report.job_groups, report.slots,
                report.slot_groups, report.matches, report.accepted, report.seconds)
        return report

    async def _send(self, matches: Sequence[Match], urls: Mapping[str, str], report: CycleReport) -> list[Match]:
        per_schedd: dict[str, list[Match]] = {}
        for m in matches:
            per_schedd.setdefault(m.schedd, []).append(m)
        accepted: list[Match] = []
        for schedd, items in per_schedd.items():
            try:
                answer = await self._schedd(urls[schedd]).post(
                    "/v1/matches", {"matches": [m.as_json() for m in items]})
            except Exception as exc:
                report.errors.append(f"{schedd}: {exc}")
                log.warning("cannot send %d matches to %s: %s", len(items), schedd, exc)
                continue
            refused = {int(r["index"]) for r in answer.get("refused", [])}
            for r in answer.get("refused", [])[:5]:
                log.info("%s refused the match of %s to %s: %s", schedd, r.get("job"), r.get("slot"), r.get("reason"))
            report.refused += len(refused)
            accepted.extend(m for i, m in enumerate(items) if i not in refused)
        report.accepted = len(accepted)
        return accepted

    async def _advertise(self, report: CycleReport) -> None:
        ad = {
            "MyType": "Negotiator",
            "Name": self.config.name,
            "NegotiatorIpAddr": self.url,
            "LastNegotiationCycleTime": int(report.started),
            "LastNegotiationCycleDuration": report.seconds,
            "LastNegotiationCycleMatches": report.matches,
            "LastNegotiationCycleIdleJobs": report.idle_jobs,
            "LastNegotiationCycleSlots": report.slots,
            "ClassAdLifetime": int(max(60, 3 * self.config.interval)),
        }
        try:
            await self.collector.advertise({k: v for k, v in ad.items() if v is not None})
        except Exception as exc:
            log.warning("cannot advertise the negotiator ad: %s", exc)

    # ------------------------------------------------------------------ loops

    async def watch_once(self) -> str | None:
        """Look for new work in the collector; the reason to trigger a cycle, or None."""
        schedds = await self.collector.query("Scheduler", projection=[A.NAME, "TotalIdleJobs"])
        free = await self.collector.query("Machine", constraint=SLOT_CONSTRAINT, projection=[A.NAME])
        reason = None
        for ad in schedds:
            name, idle = str(ad.get(A.NAME)), int(ad.get("TotalIdleJobs", 0) or 0)
            if idle > self._seen_idle.get(name, 0):
                reason = reason or f"more idle jobs in {name}"
            self._seen_idle[name] = idle
        names = {str(ad.get(A.NAME)) for ad in free}
        new = names - self._seen_free
        if new:
            reason = reason or f"{len(new)} new free slot(s)"
        self._seen_free = names
        return reason

    async def run(self, stop: asyncio.Event) -> None:
        """Cycle every ``interval`` seconds (sooner when triggered) until ``stop`` is set."""
        watcher = asyncio.create_task(self._watch(stop)) if self.config.watch_interval > 0 else None
        reason = "start"
        try:
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    await self.cycle(reason)
                except Exception as exc:
                    log.warning("negotiation cycle failed: %s", exc)
                    self.last = CycleReport(started=self.clock(), errors=[str(exc)], trigger=reason)
                self._trigger.clear()
                await asyncio.sleep(max(0.0, self.config.min_gap - (time.monotonic() - t0)))
                reason = "interval"
                waiters = [asyncio.create_task(self._trigger.wait()), asyncio.create_task(stop.wait())]
                done, pending = await asyncio.wait(waiters, timeout=self.config.interval,
                                                   return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
                if self._trigger.is_set():
                    reason = self._trigger_reason or "trigger"
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    async def _watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.config.watch_interval)
            if self._lock.locked() or self._trigger.is_set():
                continue
            try:
                reason = await self.watch_once()
            except Exception as exc:
                log.debug("watch failed: %s", exc)
                continue
            if reason:
                self.trigger(reason)

    # ------------------------------------------------------------------ user priorities

    def userprio(self) -> dict[str, Any]:
        """Every submitter's usage and priorities, best effective priority first."""
        records = sorted(self.accountant.submitters.values(), key=lambda r: (r.effective_priority, r.name))
        return {
            "half_life": self.accountant.half_life,
            "now": self.clock(),
            "submitters": [r.as_json() for r in records],
        }


def _slot_reads_all(slots: Iterable[Mapping[str, Any]]) -> set[str]:
    """Job attributes any of the slots reads (cached per distinct expression set)."""
    out: set[str] = set()
    seen: set[frozenset[tuple[str, str]]] = set()
    for ad in slots:
        key = frozenset((k, v) for k, v in ad.items() if isinstance(v, str) and v.startswith("/Expr("))
        if key in seen:
            continue
        seen.add(key)
        out |= slot_reads(ad)
    return out


class FactorBody(BaseModel):
    """``POST /v1/userprio/factor``."""

    submitter: str
    factor: float


def create_negotiator_app(negotiator: Negotiator, verifier: TokenVerifier | None) -> FastAPI:
    """The negotiator's HTTP app; its lifespan runs the negotiation loop."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        stop = asyncio.Event()
        task = asyncio.create_task(negotiator.run(stop))
        try:
            yield
        finally:
            stop.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await negotiator.aclose()

    app = create_app(service="negotiator", verifier=verifier, lifespan=lifespan)
    app.state.negotiator = negotiator
    install_dashboard(app, lambda: negotiator_dashboard(negotiator), negotiator_families)
    reader = require_scopes(scopes.READ)
    admin = require_scopes(scopes.ADMINISTRATOR)
    writer = require_scopes(scopes.WRITE)

    @app.get("/v1/userprio", tags=["fair share"], summary="Usage and priorities of every submitter")
    async def userprio(who: Identity = Depends(reader)) -> dict[str, Any]:
        return negotiator.userprio()

    @app.post("/v1/userprio/factor", tags=["fair share"], summary="Set a submitter's priority factor")
    async def set_factor(body: FactorBody, who: Identity = Depends(admin)) -> dict[str, Any]:
        rec = negotiator.accountant.set_factor(body.submitter, body.factor, negotiator.clock())
        if negotiator.config.state_file is not None:
            await asyncio.to_thread(save_accountant, negotiator.accountant.as_json(), negotiator.config.state_file)
        return rec.as_json()

    @app.post("/v1/reschedule", tags=["negotiation"], summary="Start a negotiation cycle now")
    async def reschedule(who: Identity = Depends(writer)) -> dict[str, Any]:
        negotiator.trigger(f"reschedule by {who.name}")
        return {"triggered": True}

    @app.get("/v1/status", tags=["negotiation"], summary="The last negotiation cycle")
    async def status(who: Identity = Depends(reader)) -> dict[str, Any]:
        return {"name": negotiator.config.name, "cycles": negotiator.cycles,
                "interval": negotiator.config.interval, "last": asdict(negotiator.last)}

    return app
