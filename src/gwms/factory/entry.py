"""One entry's cycle: poll the site, decide (:func:`gwms.factory.planning.plan_entry`),
act (release, remove, submit), and describe the entry in ads.

:class:`EntryWorker` holds what one entry needs (its backend, the shared pilot store,
how to build a glidein's command) and runs :meth:`EntryWorker.cycle`; the service
calls it every ``loop_delay`` seconds (sooner when requests change) from a worker pool.
The order inside a cycle makes crashes harmless:

1. poll every pilot with a site id; apply the changes (history kept); collect the
   output of ended pilots; update the entry's health (early deaths, healthy pilots);
2. pilots left ``unsubmitted`` by a previous run are submitted again with the same id
   (backends are idempotent per pilot id) while their request is there, or given up
   after the orphan grace;
3. plan; release; remove; submit in clusters, each cluster's records written before
   the submit call and given their site ids right after;
4. build the ``glidefactory`` and ``glidefactoryclient`` ads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gwms.errors import GwmsError
from gwms.factory import ads as adsmod
from gwms.factory import attributes as A
from gwms.factory.backends.base import Backend, BackendError, PilotSpec, SiteState, SiteStatus
from gwms.factory.config import Downtime, EntryConfig, FactoryConfig
from gwms.factory.health import (
    EntryHealth,
    is_early_death,
    record_healthy_pilot,
    record_pilot_end,
    record_submissions,
    submit_cap,
)
from gwms.factory.limits import Counts, Limits, SlotView, count_pilots, submit_clusters
from gwms.factory.pilotstore import NewPilot, PilotRecord, PilotStore, StateChange
from gwms.factory.planning import EntryInput, EntryPlan, RequestView, plan_entry
from gwms.factory.requests import ValidRequest
from gwms.factory.slotwatch import SlotSource, SlotWatcher, collector_source
from gwms.factory.states import TERMINAL_STATES, PilotState, from_site_state

log = logging.getLogger("gwms.factory")

__all__ = [
    "CycleReport",
    "EntryWorker",
    "PilotCommand",
    "PilotCommandFn",
    "PilotContext",
    "active_downtime",
    "entry_downtimes",
    "entry_status",
    "env_command",
    "pilot_log_paths",
    "stored_health",
    "transition",
]


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class PilotContext:
    """What a glidein's command is built from."""

    factory: str
    instance: str
    entry: EntryConfig
    request: ValidRequest
    pilot_id: str
    cluster: int
    proc: int
    stage_url: str | None = None


@dataclass(frozen=True)
class PilotCommand:
    """The command line and environment of one glidein."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


PilotCommandFn = Callable[[PilotContext], PilotCommand]


def env_command(argv: Sequence[str]) -> PilotCommandFn:
    """A command builder that runs ``argv`` and passes everything in the environment:
    ``GLIDEIN_Factory``, ``GLIDEIN_Name``, ``GLIDEIN_Entry_Name``, ``GLIDEIN_Client``,
    ``GLIDEIN_Pilot_Id``, ``GLIDEIN_Cluster``/``_Proc``, ``GLIDEIN_PARAM_<name>`` for
    each parameter and ``GLIDEIN_ENC_PARAM_<name>`` for each decrypted one (used by an
    entry's ``pilot_command``, e.g. a fake glidein in tests)."""
    fixed = list(argv)

    def build(ctx: PilotContext) -> PilotCommand:
        env = {
            "GLIDEIN_Factory": ctx.factory,
            "GLIDEIN_Name": ctx.instance,
            "GLIDEIN_Entry_Name": ctx.entry.name,
            "GLIDEIN_Client": ctx.request.client_name,
            "GLIDEIN_Pilot_Id": ctx.pilot_id,
            "GLIDEIN_Cluster": str(ctx.cluster),
            "GLIDEIN_Proc": str(ctx.proc),
        }
        if ctx.stage_url:
            env["GLIDEIN_Stage_URL"] = ctx.stage_url
        for key, value in ctx.request.params.items():
            env[f"GLIDEIN_PARAM_{key}"] = _text(value)
        for key, value in ctx.request.secrets.items():
            env[f"GLIDEIN_ENC_PARAM_{key}"] = value
        return PilotCommand(fixed, env)

    return build


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def pilot_log_paths(
    log_dir: Path, user: str, instance: str, entry: str, cluster: int, proc: int
) -> tuple[Path, Path]:
    """``(stdout, stderr)`` of a glidein:
    ``<log_dir>/client/user_<user>/glidein_<instance>/entry_<entry>/job.<cluster>.<proc>.out|.err``."""
    base = log_dir / "client" / f"user_{user}" / f"glidein_{instance}" / f"entry_{entry}"
    return base / f"job.{cluster}.{proc}.out", base / f"job.{cluster}.{proc}.err"


# --------------------------------------------------------------------------- transitions


def transition(
    rec: PilotRecord, status: SiteStatus, now: float, unknown_grace: float
) -> StateChange | None:
    """The change a site's answer makes to a pilot's record (None: nothing changes).

    UNKNOWN keeps the last known state until ``unknown_grace`` has passed, then the
    pilot is lost, unless its removal was asked for (then it is removed, as wanted).
    Entering HELD counts a hold; entering RUNNING notes the time.
    """
    if status.state is SiteState.UNKNOWN:
        if rec.remove_requested is not None:
            return StateChange(rec.pilot_id, state=PilotState.REMOVED,
                               reason=rec.remove_reason or "removed", note="gone after removal")
        if rec.unknown_since is None:
            return StateChange(rec.pilot_id, unknown_since=now)
        if now - rec.unknown_since >= unknown_grace:
            why = f": {status.reason}" if status.reason else ""
            return StateChange(rec.pilot_id, state=PilotState.LOST,
                               reason=f"the site has not known it for {now - rec.unknown_since:.0f}s{why}")
        return None
    new = from_site_state(status.state)
    clear = rec.unknown_since is not None
    if new is None or new is rec.state:
        return StateChange(rec.pilot_id, clear_unknown=True) if clear else None
    holds = rec.holds + 1 if new is PilotState.HELD else None
    running_since = now if new is PilotState.RUNNING and rec.running_since is None else None
    reason: str | None = None
    exit_code: int | None = None
    if new is PilotState.HELD:
        reason = status.reason
    elif new in TERMINAL_STATES:
        exit_code = status.exit_code
        reason = status.reason or (rec.remove_reason if new is PilotState.REMOVED else "")
    return StateChange(
        rec.pilot_id, state=new, exit_code=exit_code, reason=reason,
        running_since=running_since, holds=holds, clear_unknown=clear,
    )


def active_downtime(
    downtimes: Sequence[Downtime], now: float, frontend: str | None = None,
    security_class: str | None = None,
) -> Downtime | None:
    """The first downtime covering ``now`` (for that frontend / class), or None."""
    for dt in downtimes:
        if dt.covers(now, frontend, security_class):
            return dt
    return None


def stored_health(control: Mapping[str, Any]) -> EntryHealth:
    """The failure health kept in an entry's control data."""
    try:
        return EntryHealth(**(control.get("health") or {}))
    except TypeError:
        return EntryHealth()


def entry_downtimes(entry: EntryConfig, control: Mapping[str, Any]) -> list[Downtime]:
    """The configured downtimes of an entry and the operator's (from its control data)."""
    extra = []
    for item in control.get("downtimes") or []:
        try:
            extra.append(Downtime.model_validate(item))
        except ValueError:
            continue
    return [*entry.downtimes, *extra]


def entry_status(
    entry: EntryConfig, control: Mapping[str, Any], now: float, requests: Sequence[ValidRequest]
) -> adsmod.EntryStatus:
    """What an entry's ad says: an operator pause first, then a failure pause, and
    whether a downtime covers ``now``."""
    common: dict[str, Any] = {
        "in_downtime": active_downtime(entry_downtimes(entry, control), now) is not None,
        "requested_idle": sum(r.req_idle for r in requests),
        "requested_max": sum(r.req_max for r in requests),
        "clients": len(requests),
    }
    manual = control.get("paused")
    if isinstance(manual, dict):
        reason = manual.get("reason") or "no reason given"
        return adsmod.EntryStatus(paused=True, reason=f"paused by operator: {reason}", **common)
    h = stored_health(control)
    if h.paused(now):
        return adsmod.EntryStatus(paused=True, reason=h.reason, paused_until=h.paused_until, **common)
    return adsmod.EntryStatus(**common)


# --------------------------------------------------------------------------- worker


@dataclass
class CycleReport:
    """What one cycle did, and the ads describing the entry after it."""

    entry: str
    started: float
    duration: float = 0.0
    submitted: int = 0
    refused: int = 0
    removed: int = 0
    released: int = 0
    changes: int = 0
    ads: list[dict[str, Any]] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    plan: EntryPlan | None = None
    error: str = ""


class EntryWorker:
    """One entry's state and cycle (see the module docstring).

    Args:
        config: the factory configuration (resolved paths).
        entry: this entry's configuration.
        backend: its backend.
        store: the pilot store shared by all entries.
        command: builds a glidein's command line from a :class:`PilotContext`.
        key_id: the factory key id to put in the ad.
        factory_url: the factory's HTTP API, for the ads.
        slot_source: how to read the glideins' slots from a user pool (default: its
            collector, with the request's collector URL and token).
        clock: epoch seconds (injectable for tests).
    """

    def __init__(
        self,
        config: FactoryConfig,
        entry: EntryConfig,
        backend: Backend,
        store: PilotStore,
        command: PilotCommandFn,
        *,
        key_id: str = "",
        factory_url: str | None = None,
        slot_source: SlotSource | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.entry = entry
        self.backend = backend
        self.store = store
        self.command = command
        self.key_id = key_id
        self.factory_url = factory_url
        self.clock = clock
        self.log_dir = Path(config.log_dir or ".")
        self.started_at = clock()
        self._orphan_since: dict[str, float] = {}
        self.last_report: CycleReport | None = None
        self.last_requests: list[ValidRequest] = []
        self.slot_watcher = SlotWatcher(config.name, config.instance, entry.name,
                                        interval=entry.cycle.slot_check_s,
                                        source=slot_source or collector_source, clock=clock)

    # ------------------------------------------------------------------ control

    def _control(self) -> dict[str, Any]:
        return self.store.control(self.entry.name)

    def health(self) -> EntryHealth:
        """The entry's failure health, as stored."""
        return stored_health(self._control())

    def _save_health(self, before: EntryHealth, h: EntryHealth) -> None:
        """Store ``h`` unless someone else (an operator's resume) changed the stored
        health since it was ``before``: theirs wins."""
        if h == before:
            return
        old = {k: getattr(before, k) for k in EntryHealth.__dataclass_fields__}
        new = {k: getattr(h, k) for k in EntryHealth.__dataclass_fields__}

        def change(data: dict[str, Any]) -> dict[str, Any]:
            if (data.get("health") or old) == old:
                data["health"] = new
            return data

        self.store.update_control(self.entry.name, change)

    def downtimes(self) -> list[Downtime]:
        """Configured and operator downtimes of this entry."""
        return entry_downtimes(self.entry, self._control())

    def status(self, now: float | None = None) -> adsmod.EntryStatus:
        """Pause and downtime as the ad shows them."""
        now = self.clock() if now is None else now
        return entry_status(self.entry, self._control(), now, self.last_requests)

    # ------------------------------------------------------------------ cycle

    def cycle(self, requests: Sequence[ValidRequest] | None) -> CycleReport:
        """Run one cycle. ``requests``: the valid requests for this entry, or None when
        they could not be read recently (then nothing is submitted or removed as excess)."""
        now = self.clock()
        report = CycleReport(self.entry.name, now)
        if requests is not None:
            self.last_requests = list(requests)
        by_key = {r.key: r for r in (requests or ())}
        health = health_before = self.health()

        # 1. poll and apply
        records = self.store.active(self.entry.name)
        polled = [r for r in records if r.site_id]
        if polled:
            try:
                statuses = self.backend.poll([r.site_id for r in polled if r.site_id])
            except Exception as exc:  # noqa: BLE001 - a site failure must not crash the entry
                report.error = f"poll failed: {exc}"
                log.warning("entry %s: %s", self.entry.name, report.error)
                report.counts = count_pilots(r.view() for r in records)
                report.ads = self._ads(records, requests or (), None, now)
                self.last_report = report
                return report
            health = self._apply_statuses(polled, statuses, now, health, report)
            records = self.store.active(self.entry.name)
        self._collect_outputs()

        # 2. leftovers of a previous run
        records = self._resume_unsubmitted(records, by_key, now, report)

        # 3. plan and act
        inp = self._plan_input(records, requests, health, now)
        inp = replace(inp, slots=self._slots(records, requests or ()))
        plan = plan_entry(inp)
        report.plan = plan
        self._release(records, plan.releases, now, report)
        self._remove(records, plan.removals, now, report)
        health = self._submit(plan, by_key, health, report)
        self._save_health(health_before, health)

        records = self.store.active(self.entry.name)
        report.counts = count_pilots(r.view() for r in records)
        report.ads = self._ads(records, requests or (), plan, now)
        report.duration = self.clock() - now
        self.last_report = report
        return report

    def _apply_statuses(
        self,
        polled: Sequence[PilotRecord],
        statuses: Mapping[str, SiteStatus],
        now: float,
        health: EntryHealth,
        report: CycleReport,
    ) -> EntryHealth:
        changes: list[StateChange] = []
        policy = self.entry.failure
        for rec in polled:
            st = statuses.get(rec.site_id or "", SiteStatus(SiteState.UNKNOWN, reason="not answered"))
            ch = transition(rec, st, now, self.entry.cycle.unknown_grace_s)
            if ch is not None:
                changes.append(ch)
            state = ch.state if ch is not None and ch.state is not None else rec.state
            running_since = rec.running_since or (ch.running_since if ch else None)
            if (state is PilotState.RUNNING and running_since is not None
                    and now - running_since >= policy.early_death_s):
                health = record_healthy_pilot(health, running_since)
            if ch is not None and ch.state in TERMINAL_STATES:
                ran = None if running_since is None else now - running_since
                if ch.state is PilotState.COMPLETED and ch.exit_code in (0, None):
                    health = record_healthy_pilot(health, running_since or now)
                elif is_early_death(ch.state, ch.exit_code, ran, policy):
                    why = ch.reason or f"exit code {ch.exit_code}"
                    before = health.paused(now)
                    health = record_pilot_end(health, True, why, now, policy)
                    if health.paused(now) and not before:
                        log.warning("entry %s paused until %s: %s", self.entry.name,
                                    time.strftime("%H:%M:%S", time.localtime(health.paused_until)),
                                    health.reason)
        self.store.apply(changes, now)
        report.changes = sum(1 for c in changes if c.state is not None)
        lost = {c.pilot_id for c in changes if c.state is PilotState.LOST}
        if lost:
            # the site lost them: make sure they are gone there too, should they come back
            site_ids = [r.site_id for r in polled if r.pilot_id in lost and r.site_id]
            log.warning("entry %s: %d pilot(s) lost by the site; removing them there too",
                        self.entry.name, len(lost))
            try:
                self.backend.remove(site_ids)
            except Exception as exc:  # noqa: BLE001 - best effort: the site does not know them
                log.info("entry %s: removing lost pilots: %s", self.entry.name, exc)
        return health

    def _slots(self, records: Sequence[PilotRecord], requests: Sequence[ValidRequest]) -> dict[str, list[SlotView]]:
        """The running glideins' slots, from the user pools their requests name."""
        running = [(r.pilot_id, r.cluster, r.proc, r.client_key) for r in records
                   if r.state is PilotState.RUNNING and r.remove_requested is None]
        if not running:
            return {}
        pools: dict[str, tuple[str, str]] = {}
        for req in requests:
            url = req.secrets.get(A.PARAM_GLIDEIN_COLLECTOR) or req.params.get(A.PARAM_GLIDEIN_COLLECTOR)
            token = req.secrets.get(A.PARAM_GLIDEIN_TOKEN)
            if url and token:
                pools[req.key] = (str(url), token)
        if not pools:
            return {}
        return self.slot_watcher.slots(running, pools)

    def _collect_outputs(self) -> None:
        for rec in self.store.uncollected(self.entry.name):
            spec = self._spec_paths(rec)
            try:
                self.backend.collect_output(rec.site_id or rec.pilot_id, spec)
            except Exception as exc:  # noqa: BLE001 - try again next cycle
                log.warning("entry %s: output of %s not collected: %s", self.entry.name, rec.pilot_id, exc)
                continue
            self.store.mark_output_collected(rec.pilot_id)

    def _spec_paths(self, rec: PilotRecord) -> PilotSpec:
        return PilotSpec(
            pilot_id=rec.pilot_id, argv=[], env={}, stdout=Path(rec.stdout), stderr=Path(rec.stderr),
            cpus=self.entry.cpus(), memory_mb=self.entry.memory_mb(),
            walltime_s=self.entry.pilot.walltime_s, workdir=None,
        )

    def _resume_unsubmitted(
        self,
        records: list[PilotRecord],
        by_key: Mapping[str, ValidRequest],
        now: float,
        report: CycleReport,
    ) -> list[PilotRecord]:
        leftovers = [r for r in records if r.state is PilotState.UNSUBMITTED]
        if not leftovers:
            return records
        resubmit: list[tuple[PilotRecord, PilotSpec]] = []
        give_up: list[str] = []
        for rec in leftovers:
            req = by_key.get(rec.client_key)
            if req is not None:
                try:
                    resubmit.append((rec, self._spec(rec.pilot_id, rec.cluster, rec.proc, req,
                                                     Path(rec.stdout), Path(rec.stderr))))
                except Exception as exc:  # noqa: BLE001
                    log.warning("entry %s: cannot rebuild pilot %s: %s", self.entry.name, rec.pilot_id, exc)
            elif now - rec.created >= self.config.orphan_grace_s:
                give_up.append(rec.pilot_id)
        if give_up:
            self.store.abandon(give_up, "never confirmed by the site and its request is gone", now)
        if resubmit:
            log.info("entry %s: submitting %d pilot(s) again that a previous run left unconfirmed",
                     self.entry.name, len(resubmit))
            self._submit_specs([spec for _, spec in resubmit], report)
        return self.store.active(self.entry.name)

    def _plan_input(
        self,
        records: Sequence[PilotRecord],
        requests: Sequence[ValidRequest] | None,
        health: EntryHealth,
        now: float,
    ) -> EntryInput:
        pilots: dict[str, list[Any]] = {}
        groups_of: dict[str, str] = {}
        for rec in records:
            pilots.setdefault(rec.client_key, []).append(rec.view())
            groups_of[rec.client_key] = rec.group
        downtimes = self.downtimes()
        views: list[RequestView] = []
        group_limits: dict[str, Limits] = {}
        limits = self.entry.limits
        for req in requests or ():
            groups_of[req.key] = req.group
            views.append(RequestView(
                key=req.key, group=req.group, req_idle=req.req_idle, req_max=req.req_max,
                remove_level=req.remove_level, remove_margin=req.remove_margin,
                idle_lifetime=req.idle_lifetime,
                in_downtime=active_downtime(downtimes, now, req.frontend, req.security_class) is not None,
            ))
        for key, group in groups_of.items():
            if group not in group_limits:
                fe, _, sc = group.partition(":")
                ls = limits.for_frontend(fe, sc)
                group_limits[group] = Limits(ls.glideins, ls.idle, ls.held)
        el = limits.for_entry()
        # requests that vanished: their glideins are left alone for the grace, then cleaned
        present = {v.key for v in views}
        if requests is not None:
            for key in list(self._orphan_since):
                if key in present or key not in pilots:
                    del self._orphan_since[key]
            for key in pilots:
                if key not in present:
                    self._orphan_since.setdefault(key, now)
        removable = frozenset(
            k for k, since in self._orphan_since.items()
            if now - since >= self.config.orphan_grace_s
        )
        cap = submit_cap(health, now, self.entry.cycle.max_submits)
        if isinstance(self._control().get("paused"), dict):
            cap = 0
        return EntryInput(
            now=now,
            entry_limits=Limits(el.glideins, el.idle, el.held),
            group_limits=group_limits,
            policy=self.entry.cycle,
            pilots=pilots,
            groups_of=groups_of,
            requests=views,
            submit_cap=cap,
            act_on_requests=requests is not None,
            orphans_removable=removable,
            orphan_level=self.config.orphan_removal,
        )

    def _release(self, records: Sequence[PilotRecord], ids: Sequence[str], now: float,
                 report: CycleReport) -> None:
        if not ids:
            return
        by_id = {r.pilot_id: r for r in records}
        site_ids = [by_id[i].site_id for i in ids if i in by_id and by_id[i].site_id]
        try:
            self.backend.release([s for s in site_ids if s])
        except Exception as exc:  # noqa: BLE001
            log.warning("entry %s: release failed: %s", self.entry.name, exc)
            return
        self.store.record_released(list(ids), now)
        report.released = len(ids)

    def _remove(self, records: Sequence[PilotRecord], removals: Sequence[tuple[str, str]],
                now: float, report: CycleReport) -> None:
        if not removals:
            return
        by_id = {r.pilot_id: r for r in records}
        at_site = [(pid, why) for pid, why in removals if pid in by_id and by_id[pid].site_id]
        not_at_site = [pid for pid, _ in removals if pid in by_id and not by_id[pid].site_id]
        if not_at_site:
            self.store.abandon(not_at_site, "removed before the site confirmed it", now)
        if at_site:
            try:
                self.backend.remove([by_id[pid].site_id or "" for pid, _ in at_site])
            except Exception as exc:  # noqa: BLE001
                log.warning("entry %s: remove failed: %s", self.entry.name, exc)
                return
            self.store.request_removal(at_site, now)
            for pid, why in at_site:
                log.info("entry %s: removing pilot %s: %s", self.entry.name, pid, why)
        report.removed = len(at_site) + len(not_at_site)

    def _spec(self, pilot_id: str, cluster: int, proc: int, req: ValidRequest,
              stdout: Path, stderr: Path) -> PilotSpec:
        cmd = self.command(PilotContext(
            factory=self.config.name, instance=self.config.instance, entry=self.entry,
            request=req, pilot_id=pilot_id, cluster=cluster, proc=proc,
            stage_url=self.config.stage_url,
        ))
        return PilotSpec(
            pilot_id=pilot_id, argv=list(cmd.argv), env=dict(cmd.env), stdout=stdout, stderr=stderr,
            cpus=self.entry.cpus(), memory_mb=self.entry.memory_mb(),
            walltime_s=self.entry.pilot.walltime_s, workdir=None,
        )

    def _submit(self, plan: EntryPlan, by_key: Mapping[str, ValidRequest], health: EntryHealth,
                report: CycleReport) -> EntryHealth:
        for key, n in plan.submits.items():
            req = by_key[key]
            for size in submit_clusters(n, self.entry.cycle.cluster_size):
                now = self.clock()
                if submit_cap(health, now, 1) == 0:
                    return health
                cluster = self.store.next_cluster()
                news: list[NewPilot] = []
                specs: list[PilotSpec] = []
                try:
                    for proc in range(size):
                        pilot_id = f"{self.config.name}.{self.config.instance}.{cluster}.{proc}"
                        out, err = pilot_log_paths(self.log_dir, req.user, self.config.instance,
                                                   self.entry.name, cluster, proc)
                        specs.append(self._spec(pilot_id, cluster, proc, req, out, err))
                        news.append(NewPilot(
                            pilot_id=pilot_id, entry=self.entry.name, client_key=req.key,
                            client_name=req.client_name, credential_id=req.credential_id,
                            frontend=req.frontend, security_class=req.security_class,
                            user=req.user, request_name=req.name, cluster=cluster, proc=proc,
                            idle_lifetime=req.idle_lifetime, stdout=str(out), stderr=str(err),
                        ))
                except Exception as exc:  # noqa: BLE001 - no command, no pilot
                    reason = f"cannot build the glidein command: {exc}"
                    log.error("entry %s: %s", self.entry.name, reason)
                    return record_submissions(health, 0, size, reason, now, self.entry.failure)
                self.store.add_unsubmitted(news, now)
                ok, refused, reason = self._submit_specs(specs, report)
                before = health.paused(now)
                health = record_submissions(health, ok, refused, reason, self.clock(), self.entry.failure)
                if health.paused(self.clock()) and not before:
                    log.warning("entry %s paused: %s", self.entry.name, health.reason)
                    return health
        return health

    def _submit_specs(self, specs: Sequence[PilotSpec], report: CycleReport) -> tuple[int, int, str]:
        """Submit, record the results; ``(accepted, refused, last refusal reason)``."""
        try:
            results: list[str | BackendError] = list(self.backend.submit(specs))
        except Exception as exc:  # noqa: BLE001 - the whole call failed: nothing started
            results = [BackendError(f"submit failed: {exc}")] * len(specs)
        if len(results) != len(specs):
            results = (results + [BackendError("the backend gave no answer for this pilot")]
                       * len(specs))[: len(specs)]
        now = self.clock()
        rows: list[tuple[str, str | None, str]] = []
        ok = refused = 0
        reason = ""
        for spec, res in zip(specs, results, strict=True):
            if isinstance(res, str):
                rows.append((spec.pilot_id, res, ""))
                ok += 1
            else:
                reason = str(res) if isinstance(res, GwmsError) else repr(res)
                rows.append((spec.pilot_id, None, reason))
                refused += 1
        self.store.record_submitted(rows, now)
        report.submitted += ok
        report.refused += refused
        if ok:
            log.info("entry %s: submitted %d pilot(s) (%s...)", self.entry.name, ok, specs[0].pilot_id)
        if refused:
            log.warning("entry %s: %d submission(s) refused: %s", self.entry.name, refused, reason)
        return ok, refused, reason

    # ------------------------------------------------------------------ ads

    def _ads(self, records: Sequence[PilotRecord], requests: Sequence[ValidRequest],
             plan: EntryPlan | None, now: float) -> list[dict[str, Any]]:
        counts = count_pilots(r.view() for r in records)
        out = [adsmod.entry_ad(self.config, self.entry, key_id=self.key_id, counts=counts,
                               status=self.status(now), factory_url=self.factory_url)]
        by_key: dict[str, list[Any]] = {}
        for r in records:
            by_key.setdefault(r.client_key, []).append(r.view())
        for req in requests:
            c = count_pilots(by_key.get(req.key, ()))
            limited = plan.limited_by.get(req.key, ()) if plan else ()
            out.append(adsmod.client_ad(self.config, self.entry.name, req, c, limited))
        return out
