"""The frontend service: each group's cycle on its own thread, fast reaction, status.

:class:`FrontendService` runs, per enabled group, a thread that cycles every
``loop_delay`` seconds, or sooner when triggered. A cycle (:meth:`FrontendService.run_cycle`):

1. queries, in parallel (a small thread pool): each user collector for the
   ``Scheduler`` ads (``ScheddIpAddr`` is a schedd's URL) and the glidein slots; each
   watched schedd (the group's ``schedds``, else every schedd the pool lists) for its
   idle and running jobs matching the group's job ``query_expr``, only the attributes
   the match reads when they are known; each WMS collector for the ``glidefactory`` ads
   matching the factory ``query_expr`` and the ``glidefactoryglobal`` ads, both only
   from the configured ``factory_identity`` (asked of the collector, and checked again
   on the answer). If any query fails, or a watched schedd is missing or gives no URL,
   nothing new is decided (:func:`gwms.frontend.cycle.plan_incomplete`);
2. decides (:func:`gwms.frontend.cycle.plan_group`);
3. advertises (:func:`gwms.frontend.advertise.build_cycle_ads`): ``glideclient`` and
   ``glideclientglobal`` to the WMS collectors, encrypted per factory with a fresh
   session key each cycle; ``glideresource`` to the user collectors; ads of entries
   that went away are invalidated. The glideins' tokens come from
   :class:`gwms.frontend.credentials.GlideinTokens`.

Fast reaction: a watcher thread reads the ``Scheduler`` ads' ``TotalIdleJobs`` from the
user collectors every ``watch_interval`` seconds (one small query) and triggers the
groups watching a schedd whose idle count changed; a group cycles at most once per
``min_gap`` seconds.

:meth:`FrontendService.stop` ends the threads and invalidates every ad of this
frontend. :func:`create_frontend_app` serves ``GET /v1/status`` (READ: per group and
entry, what was seen, asked and which limits fired) and ``POST /v1/groups/{group}/cycle``
(ADMINISTRATOR: cycle now) and runs the service for its lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI

from gwms.errors import GwmsError
from gwms.factory import attributes as FA
from gwms.frontend import adnames as N
from gwms.frontend.advertise import (
    TYPE_GLIDECLIENT_GLOBAL,
    TYPE_GLIDERESOURCE,
    CycleAds,
    build_cycle_ads,
    own_ads_constraint,
)
from gwms.frontend.classify import ad_value
from gwms.frontend.config import FrontendConfig
from gwms.frontend.credentials import Credential, GlideinTokens
from gwms.frontend.cycle import (
    EntryPlan,
    GroupPlan,
    GroupSnapshot,
    WmsView,
    authentic_ads,
    plan_group,
    plan_incomplete,
)
from gwms.frontend.dashboard import frontend_dashboard, frontend_families
from gwms.frontend.removal import RemovalState
from gwms.net import create_app, require_scopes
from gwms.net.auth import Identity
from gwms.net.dashboard import install_dashboard
from gwms.net.errors import ApiError
from gwms.pool.collector.client import CollectorClient
from gwms.pool.schedd.client import ScheddClient
from gwms.security import scopes
from gwms.security.hybrid import SessionKey
from gwms.security.tokens import TokenVerifier

log = logging.getLogger("gwms.frontend")

__all__ = [
    "SLOT_CONSTRAINT",
    "FrontendService",
    "QueryFailed",
    "create_frontend_app",
    "job_constraint",
    "resolved_config",
]

Token = str | Callable[[], str] | None

#: Glidein slots: those naming the entry they came from.
SLOT_CONSTRAINT = f"{N.GLIDEIN_ENTRY_NAME} =!= UNDEFINED"
#: What slot counting reads of a slot ad.
SLOT_PROJECTION = (
    N.NAME, N.STATE, N.ACTIVITY, N.CPUS, N.MEMORY, N.PARTITIONABLE_SLOT, N.DYNAMIC_SLOT,
    N.GLIDEIN_FACTORY, N.GLIDEIN_NAME, N.GLIDEIN_ENTRY_NAME, N.GLIDECLIENT_NAME, N.IS_MONITOR_VM,
)
#: What the request math reads of a job besides the match attributes.
JOB_PROJECTION = (N.JOB_STATUS, N.ENTERED_CURRENT_STATUS, N.REQUEST_CPUS, N.REMOTE_HOST)
SCHEDD_URL = "ScheddIpAddr"
TOTAL_IDLE_JOBS = "TotalIdleJobs"


class QueryFailed(GwmsError):
    """A query of the cycle failed: the cycle decides nothing new."""


def job_constraint(job_query: str) -> str:
    """The schedd constraint of a group: its job query, idle or running jobs only."""
    status = f"({N.JOB_STATUS} == {N.JOB_IDLE} || {N.JOB_STATUS} == {N.JOB_RUNNING})"
    if job_query.strip().lower() == "true":
        return status
    return f"({job_query}) && {status}"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _identity_constraint(identity: str, query: str = "True") -> str:
    own = f"{FA.AUTHENTICATED_IDENTITY} =?= {_quote(identity)}"
    return own if query.strip().lower() == "true" else f"({query}) && {own}"


def resolved_config(config: FrontendConfig, base_dir: Path) -> FrontendConfig:
    """A copy with relative paths (signing key dirs, token files, work_dir) taken from
    ``base_dir`` (the configuration file's directory)."""

    def absolute(p: Path | None) -> Path | None:
        if p is None:
            return None
        p = Path(p).expanduser()
        return p if p.is_absolute() else (base_dir / p).resolve()

    def creds(items: Sequence[Any]) -> list[Any]:
        return [c.model_copy(update={"signing_key_dir": absolute(c.signing_key_dir), "path": absolute(c.path)})
                for c in items]

    def wms(items: Sequence[Any]) -> list[Any]:
        return [w.model_copy(update={"token_file": absolute(w.token_file)}) for w in items]

    groups = {
        name: g.model_copy(update={"credentials": creds(g.credentials), "wms_collectors": wms(g.wms_collectors)})
        for name, g in config.groups.items()
    }
    return config.model_copy(update={
        "work_dir": absolute(config.work_dir),
        "wms_collectors": wms(config.wms_collectors),
        "user_pool": config.user_pool.model_copy(update={"token_file": absolute(config.user_pool.token_file)}),
        "security": config.security.model_copy(update={"credentials": creds(config.security.credentials)}),
        "groups": groups,
    })


class _Group:
    """One group's loop state."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.trigger = threading.Event()
        self.reason = ""
        self.thread: threading.Thread | None = None
        self.states: dict[str, RemovalState] = {}
        self.plan: GroupPlan | None = None
        self.turn = 0
        self.cycles = 0
        self.last_started: float | None = None
        self.last_duration = 0.0
        self.last_trigger = ""
        self.advertise_errors: list[str] = []
        #: TotalIdleJobs of the watched schedds as the last cycle saw them
        self.seen_idle: dict[str, int] = {}
        #: (collector URL or "" for the user pool, MyType) -> names advertised last
        self.advertised: dict[tuple[str, str], set[str]] = {}


class FrontendService:
    """A running frontend (see the module docstring).

    Args:
        config: the configuration, paths resolved (:func:`resolved_config`).
        wms_token: token for the WMS collectors (ADVERTISE_FRONTEND, READ), or a mapping
            collector URL -> token; its identity must be the collector's ``my_identity``.
        pool_token: token for the user collectors and schedds (READ, ADVERTISE_FRONTEND).
        verify: TLS verification for every client.
        clock: epoch seconds.
        watch_interval: seconds between looks at the schedds' idle counts (0: none).
        min_gap: the least seconds between two cycles of a group.
        ad_lifetime: ClassAdLifetime of the ads (default: 5 loops, at least 300 s).
        glidein_tokens: mints the glideins' tokens (default: a new :class:`GlideinTokens`).
        query_workers: threads for the queries of the cycles.
        new_session: makes a session key for (public key PEM, key id) (tests).
        connect: makes a client for (kind, URL, token), kind ``wms``/``pool`` (a
            :class:`CollectorClient`) or ``schedd`` (a :class:`ScheddClient`) (tests).
    """

    def __init__(
        self,
        config: FrontendConfig,
        *,
        wms_token: Token | Mapping[str, Token] = None,
        pool_token: Token = None,
        verify: bool | str = True,
        clock: Callable[[], float] = time.time,
        watch_interval: float = 1.0,
        min_gap: float = 1.0,
        ad_lifetime: float | None = None,
        glidein_tokens: GlideinTokens | None = None,
        query_workers: int = 8,
        new_session: Callable[[str, str], SessionKey] = SessionKey,
        connect: Callable[[str, str, Token], Any] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.verify = verify
        self.watch_interval = watch_interval
        self.min_gap = min_gap
        self.ad_lifetime = int(ad_lifetime if ad_lifetime is not None else max(300.0, 5 * config.loop_delay))
        self.tokens = glidein_tokens or GlideinTokens(clock)
        self.new_session = new_session
        self.url: str | None = None
        self._wms_token = wms_token
        self._pool_token = pool_token
        self._connect = connect or self._default_connect
        self._clients: dict[tuple[str, str], Any] = {}
        self._clients_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, query_workers), thread_name_prefix="frontend-query")
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.groups = {name: _Group(name) for name in config.enabled_groups()}
        self.started_at = clock()

    # ------------------------------------------------------------------ clients

    def _token_for(self, url: str) -> Token:
        if isinstance(self._wms_token, Mapping):
            return self._wms_token.get(url)
        return self._wms_token

    def _default_connect(self, kind: str, url: str, token: Token) -> Any:
        if kind == "schedd":
            return ScheddClient(url, token=token, verify=self.verify, timeout=120)  # type: ignore[arg-type]
        return CollectorClient(url, token=token, verify=self.verify, timeout=30, retries=1)

    def _client(self, url: str, kind: str) -> Any:
        with self._clients_lock:
            client = self._clients.get((kind, url))
            if client is None:
                token = self._token_for(url) if kind == "wms" else self._pool_token
                client = self._clients[(kind, url)] = self._connect(kind, url, token)
            return client

    def _collector(self, url: str, kind: str) -> CollectorClient:
        return self._client(url, kind)  # type: ignore[no-any-return]

    def _schedd(self, url: str) -> ScheddClient:
        return self._client(url, "schedd")  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ queries

    def snapshot(self, group: str) -> GroupSnapshot:
        """Query everything one group's cycle needs (see the module docstring).

        Raises:
            QueryFailed: any query failed, or a watched schedd is missing.
        """
        cfg = self.config
        now = self.clock()

        def run(fn: Callable[[], Any], what: str) -> Future[Any]:
            def call() -> Any:
                try:
                    return fn()
                except Exception as exc:
                    raise QueryFailed(f"{what}: {exc}") from exc
            return self._pool.submit(call)

        pool_scheds = [
            run(lambda u=url: self._collector(u, "pool").query("Scheduler"), f"Scheduler ads from {url}")
            for url in cfg.user_pool.collectors
        ]
        pool_slots = [
            run(lambda u=url: self._collector(u, "pool").query(
                "Machine", constraint=SLOT_CONSTRAINT, projection=list(SLOT_PROJECTION)),
                f"slot ads from {url}")
            for url in cfg.user_pool.collectors
        ]
        factory_query = cfg.factory_query(group)
        wms_futures = []
        for wms in cfg.wms_collectors_of(group):
            entries = run(lambda w=wms: self._collector(w.url, "wms").query(
                FA.TYPE_GLIDEFACTORY, constraint=_identity_constraint(w.factory_identity, factory_query)),
                f"factory entries from {wms.url}")
            globals_ = run(lambda w=wms: self._collector(w.url, "wms").query(
                FA.TYPE_GLIDEFACTORY_GLOBAL, constraint=_identity_constraint(w.factory_identity)),
                f"factory keys from {wms.url}")
            wms_futures.append((wms, entries, globals_))

        errors: list[str] = []

        def result(future: Future[Any]) -> Any:
            try:
                return future.result()
            except QueryFailed as exc:
                errors.append(exc.message)
                return None

        schedd_ads: dict[str, dict[str, Any]] = {}
        for future in pool_scheds:
            for ad in result(future) or ():
                name = ad_value(ad, N.NAME)
                if isinstance(name, str):
                    schedd_ads.setdefault(name, ad)
        slots: dict[str, dict[str, Any]] = {}
        for future in pool_slots:
            for ad in result(future) or ():
                slots.setdefault(str(ad_value(ad, N.NAME, "")), ad)
        if errors:
            self._drain(wms_futures)
            raise QueryFailed("; ".join(errors))

        wanted = cfg.schedds_of(group) or sorted(schedd_ads)
        watched: dict[str, dict[str, Any]] = {}
        for name in wanted:
            ad = schedd_ads.get(name)
            if ad is None:
                errors.append(f"schedd {name} is not in the user pool's collector")
                continue
            if not isinstance(ad_value(ad, SCHEDD_URL), str):
                errors.append(f"schedd {name} advertises no {SCHEDD_URL}")
                continue
            watched[name] = ad
        if errors:
            self._drain(wms_futures)
            raise QueryFailed("; ".join(errors))

        constraint = job_constraint(cfg.job_query(group))
        policy = cfg.match_policy(group)
        projection: list[str] | None = None
        if policy.static:
            projection = list(dict.fromkeys([*JOB_PROJECTION, *policy.key_attrs]))
        job_futures = {}
        for name, ad in watched.items():
            url = str(ad_value(ad, SCHEDD_URL))
            job_futures[name] = run(lambda u=url: self._schedd(u).query(constraint, projection),
                                    f"jobs of schedd {name}")
        jobs_by_schedd = {name: result(f) for name, f in job_futures.items()}
        views = []
        for wms, entries_f, globals_f in wms_futures:
            entries = result(entries_f)
            globals_ = result(globals_f)
            views.append(WmsView(
                url=wms.url, my_identity=wms.my_identity, factory_identity=wms.factory_identity,
                entry_ads=authentic_ads(entries or (), wms.factory_identity),
                global_ads=authentic_ads(globals_ or (), wms.factory_identity),
            ))
        if errors:
            raise QueryFailed("; ".join(errors))
        return GroupSnapshot(
            now=now,
            schedd_ads=watched,
            jobs_by_schedd={k: v or [] for k, v in jobs_by_schedd.items()},
            slot_ads=list(slots.values()),
            wms=views,
        )

    @staticmethod
    def _drain(futures: Sequence[tuple[Any, Future[Any], Future[Any]]]) -> None:
        for _, a, b in futures:
            for f in (a, b):
                with contextlib.suppress(Exception):
                    f.result()

    # ------------------------------------------------------------------ the cycle

    def _glidein_token(self, credential: Credential, entry_name: str) -> str | None:
        return self.tokens.token(credential, entry_name)

    def run_cycle(self, group: str, reason: str = "manual") -> GroupPlan:
        """Run one cycle of ``group`` now: query, decide, advertise. Returns the plan."""
        state = self.groups.get(group)
        if state is None:
            raise GwmsError(f"no enabled group {group!r}")
        with state.lock:
            started = self.clock()
            t0 = time.monotonic()
            try:
                snapshot = self.snapshot(group)
            except QueryFailed as exc:
                log.warning("group %s: queries failed, deciding nothing new: %s", group, exc.message)
                plan = plan_incomplete(self.config, group, state.plan, state.states, exc.message)
            else:
                plan = plan_group(self.config, group, snapshot, state.states, turn=state.turn)
                state.turn = plan.turn
                state.seen_idle = {
                    n: v for n, ad in snapshot.schedd_ads.items()
                    if isinstance(v := ad_value(ad, TOTAL_IDLE_JOBS, 0), int)
                }
            state.states = dict(plan.states)
            ads = build_cycle_ads(
                self.config, plan,
                collector_url=self.config.user_pool.collectors[0],
                token_for=self._glidein_token,
                lifetime=self.ad_lifetime,
                new_session=self.new_session,
            )
            for error in ads.errors:
                log.warning("group %s: request left out: %s", group, error)
            state.advertise_errors = list(ads.errors) + self._advertise(state, ads, complete=plan.complete)
            state.plan = plan
            state.cycles += 1
            state.last_started = started
            state.last_duration = time.monotonic() - t0
            state.last_trigger = reason
            if plan.complete:
                asked = sum(1 for e in plan.entries if e.request.min_idle > 0)
                log.log(
                    logging.INFO if asked or reason != "interval" else logging.DEBUG,
                    "group %s cycle (%s): %d idle, %d running jobs; %d entries, %d asked for glideins",
                    group, reason, plan.idle_jobs, plan.running_jobs, len(plan.entries), asked,
                )
            return plan

    def _advertise(self, state: _Group, ads: CycleAds, *, complete: bool) -> list[str]:
        """Send the ads; invalidate ads of entries gone (only after a complete cycle)."""
        errors: list[str] = []

        def send(url: str, kind: str, batch: list[dict[str, Any]]) -> None:
            if not batch:
                return
            try:
                report = self._collector(url, kind).advertise(batch)
            except Exception as exc:  # noqa: BLE001 - the collector may be down: next cycle
                errors.append(f"cannot advertise to {url}: {exc}")
                return
            for refusal in report.refused:
                errors.append(f"{url} refused {refusal.my_type} {refusal.name}: {refusal.reason}")

        for url, batch in ads.glideclient.items():
            send(url, "wms", batch)
        for url, batch in ads.glideclientglobal.items():
            send(url, "wms", batch)
        for url in self.config.user_pool.collectors:
            send(url, "pool", ads.glideresource)
        current = ads.names()
        if complete:
            for (url, my_type), names in state.advertised.items():
                gone = names - current.get((url, my_type), set())
                targets = self.config.user_pool.collectors if url == "" else [url]
                for target in targets:
                    kind = "pool" if url == "" else "wms"
                    for name in sorted(gone):
                        try:
                            self._collector(target, kind).invalidate(my_type, name=name)
                        except Exception as exc:  # noqa: BLE001 - it expires anyway
                            errors.append(f"cannot invalidate {my_type} {name} at {target}: {exc}")
            state.advertised = current
        else:
            for key, names in current.items():
                state.advertised.setdefault(key, set()).update(names)
        for error in errors:
            log.warning("group %s: %s", state.name, error)
        return errors

    # ------------------------------------------------------------------ loops

    def trigger(self, group: str, reason: str) -> None:
        """Start a cycle of ``group`` soon (at most ``min_gap`` after its last one)."""
        state = self.groups.get(group)
        if state is None:
            raise GwmsError(f"no enabled group {group!r}")
        if not state.trigger.is_set():
            state.reason = reason
            state.trigger.set()

    def watch_once(self) -> dict[str, str]:
        """Look at the schedds' idle counts; trigger each group watching a schedd whose
        count differs from what the group's last cycle saw (a group that has not cycled
        yet is left alone: its first cycle is coming). Returns ``{group: reason}``."""
        idle: dict[str, int] = {}
        for url in self.config.user_pool.collectors:
            for ad in self._collector(url, "pool").query("Scheduler", projection=[N.NAME, TOTAL_IDLE_JOBS]):
                name = ad_value(ad, N.NAME)
                value = ad_value(ad, TOTAL_IDLE_JOBS, 0)
                if isinstance(name, str) and isinstance(value, int) and not isinstance(value, bool):
                    idle.setdefault(name, value)
        fired: dict[str, str] = {}
        for name, state in self.groups.items():
            if state.cycles == 0:
                continue
            watched = set(self.config.schedds_of(name)) or set(idle)
            hit = sorted(n for n in watched & set(idle) if state.seen_idle.get(n, 0) != idle[n])
            if not hit:
                continue
            # each change triggers once, even if the cycle it starts fails
            state.seen_idle.update({n: idle[n] for n in hit})
            reason = f"idle jobs changed in {hit[0]}" + (f" (+{len(hit) - 1})" if len(hit) > 1 else "")
            self.trigger(name, reason)
            fired[name] = reason
        return fired

    def _group_loop(self, state: _Group) -> None:
        reason = "start"
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self.run_cycle(state.name, reason)
            except Exception:
                log.exception("group %s: cycle failed", state.name)
            rest = self.min_gap - (time.monotonic() - t0)
            if rest > 0 and self._stop.wait(rest):
                break
            fired = state.trigger.wait(self.config.loop_delay)
            if self._stop.is_set():
                break
            reason = (state.reason or "trigger") if fired else "interval"
            state.trigger.clear()

    def _watch_loop(self) -> None:
        while not self._stop.wait(self.watch_interval):
            try:
                self.watch_once()
            except Exception as exc:  # noqa: BLE001 - the collector may be restarting
                log.debug("watch failed: %s", exc)

    def start(self) -> None:
        """Start every group's loop (and the watcher)."""
        for state in self.groups.values():
            if state.thread is None:
                state.thread = threading.Thread(target=self._group_loop, args=(state,),
                                                name=f"frontend-{state.name}", daemon=True)
                state.thread.start()
        if self.watch_interval > 0 and self._watcher is None:
            self._watcher = threading.Thread(target=self._watch_loop, name="frontend-watch", daemon=True)
            self._watcher.start()

    def stop(self, *, invalidate: bool = True, timeout: float = 30.0) -> None:
        """Stop the loops, invalidate this frontend's ads, close the connections."""
        self._stop.set()
        for state in self.groups.values():
            state.trigger.set()
        deadline = time.monotonic() + timeout
        for state in self.groups.values():
            if state.thread is not None:
                state.thread.join(max(0.1, deadline - time.monotonic()))
        if self._watcher is not None:
            self._watcher.join(max(0.1, deadline - time.monotonic()))
        if invalidate:
            self.invalidate_all()
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._clients_lock:
            for client in self._clients.values():
                with contextlib.suppress(Exception):
                    client.close()
            self._clients.clear()

    def invalidate_all(self) -> None:
        """Invalidate every ad of this frontend at every collector it advertises to."""
        constraint = own_ads_constraint(self.config.frontend_name)
        wms_urls: list[str] = []
        for group in self.groups:
            for w in self.config.wms_collectors_of(group):
                if w.url not in wms_urls:
                    wms_urls.append(w.url)
        targets = [(u, "wms", t) for u in wms_urls for t in (FA.TYPE_GLIDECLIENT, TYPE_GLIDECLIENT_GLOBAL)]
        targets += [(u, "pool", TYPE_GLIDERESOURCE) for u in self.config.user_pool.collectors]
        for url, kind, my_type in targets:
            try:
                self._collector(url, kind).invalidate(my_type, constraint=constraint)
            except Exception as exc:  # noqa: BLE001 - they expire anyway
                log.warning("cannot invalidate %s ads at %s: %s", my_type, url, exc)

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """Per group and entry: what was seen, what was asked, which limits fired."""
        groups: dict[str, Any] = {}
        for name, state in self.groups.items():
            plan = state.plan
            groups[name] = {
                "client": f"{self.config.frontend_name}.{name}",
                "cycles": state.cycles,
                "last_cycle": state.last_started,
                "duration": round(state.last_duration, 4),
                "trigger": state.last_trigger,
                "complete": plan.complete if plan else None,
                "error": plan.error if plan else "",
                "advertise_errors": list(state.advertise_errors),
                "idle_jobs": plan.idle_jobs if plan else 0,
                "running_jobs": plan.running_jobs if plan else 0,
                "unmatched_idle": plan.unmatched_idle if plan else 0,
                "excluded_schedds": dict(plan.excluded_schedds) if plan else {},
                "totals": asdict(plan.totals) if plan else {},
                "entries": [_entry_status(e) for e in plan.entries] if plan else [],
            }
        return {
            "frontend": self.config.frontend_name,
            "url": self.url,
            "loop_delay": self.config.loop_delay,
            "started": self.started_at,
            "now": self.clock(),
            "groups": groups,
        }


def _entry_status(plan: EntryPlan) -> dict[str, Any]:
    return {
        "entry": plan.name,
        "wms": plan.wms_url,
        "idle": plan.idle_jobs,
        "old_idle": plan.old_idle_jobs,
        "unique_idle": plan.unique_idle_jobs,
        "running": plan.running_jobs,
        "glideins": {"total": plan.slots.total, "idle": plan.slots.idle, "running": plan.slots.running,
                     "failed": plan.slots.failed},
        "min_idle": plan.request.min_idle,
        "max_run": plan.request.max_run,
        "effective_idle": plan.request.effective_idle,
        "limits": list(plan.limits),
        "in_downtime": plan.in_downtime,
        "removal": plan.removal.level.name,
        "removal_margin": plan.removal.margin,
        "removal_reasons": list(plan.removal.reasons),
        "credentials": [
            {"id": s.credential.id, "min_idle": s.min_idle, "max_run": s.max_run} for s in plan.shares
        ],
        "skipped": plan.skipped,
    }


def create_frontend_app(service: FrontendService, verifier: TokenVerifier | None) -> FastAPI:
    """The frontend's HTTP app; its lifespan runs the service (started, then stopped)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        service.start()
        try:
            yield
        finally:
            await asyncio.to_thread(service.stop)

    app = create_app(service="frontend", verifier=verifier, lifespan=lifespan)
    app.state.frontend = service
    install_dashboard(app, lambda: frontend_dashboard(service), frontend_families)
    reader = require_scopes(scopes.READ)
    admin = require_scopes(scopes.ADMINISTRATOR)

    @app.get("/v1/status", tags=["frontend"], summary="Per group and entry: seen, asked, limits")
    async def status(who: Identity = Depends(reader)) -> dict[str, Any]:
        return service.status()

    @app.post("/v1/groups/{group}/cycle", tags=["frontend"], summary="Start a cycle of a group now")
    async def cycle(group: str, who: Identity = Depends(admin)) -> dict[str, Any]:
        if group not in service.groups:
            raise ApiError(404, "no_such_group", f"no enabled group {group!r}")
        service.trigger(group, f"asked by {who.name}")
        return {"triggered": group}

    return app
