"""The factory service: entry workers on a loop, the ads, and a small HTTP API.

:class:`FactoryService` owns the factory's key pair, the pilot store, one
:class:`~gwms.factory.entry.EntryWorker` per entry and a client of the WMS collector.
Its scheduler thread

- reads the ``glideclient`` ads every ``request_poll_s`` seconds and validates them
  (:class:`~gwms.factory.requests.RequestReader`; every refusal is logged with its
  reason), and starts an entry's cycle at once when its requests changed;
- runs each entry's cycle every ``loop_delay`` seconds on a pool of ``workers``
  threads; a cycle that raises is the entry's worker crashing: it is made anew after a
  back-off, at most ``restart_attempts`` times per ``restart_interval``, after which the
  entry stays down (its ad says why) until the interval has passed; other entries go on;
- advertises the ``glidefactoryglobal`` ad and every entry's ``glidefactory`` and
  ``glidefactoryclient`` ads (soon after a change, and every ``advertise_interval``),
  and invalidates them when it stops.

:func:`create_factory_app` serves, for ``gwms factory q|entries|pause|resume|downtime``:
``GET /v1/status``, ``GET /v1/entries``, ``GET /v1/pilots`` (READ), ``POST
/v1/entries/{entry}/pause|resume|downtime`` (ADMINISTRATOR).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Query
from pydantic import BaseModel, Field

from gwms.embedded.supervisor import restart_delay
from gwms.errors import GwmsError
from gwms.factory import ads as adsmod
from gwms.factory import attributes as A
from gwms.factory.backends import BackendContext, create_backend
from gwms.factory.backends.base import Backend
from gwms.factory.config import Downtime, FactoryConfig
from gwms.factory.dashboard import FactoryDashboard, factory_families
from gwms.factory.entry import (
    EntryWorker,
    PilotCommand,
    PilotCommandFn,
    PilotContext,
    active_downtime,
    entry_downtimes,
    entry_status,
    env_command,
)
from gwms.factory.limits import Counts
from gwms.factory.pilotstore import PilotStore
from gwms.factory.requests import Refusal, RequestReader, ValidRequest
from gwms.factory.states import PilotState
from gwms.net import create_app, require_scopes
from gwms.net.dashboard import install_dashboard
from gwms.net.errors import ApiError
from gwms.pool.collector.client import CollectorClient
from gwms.security import scopes
from gwms.security.hybrid import Decryptor, RsaKeyPair
from gwms.security.tokens import TokenVerifier

log = logging.getLogger("gwms.factory")

__all__ = ["FactoryService", "create_factory_app", "stage_command"]

Token = str | Callable[[], str] | None

#: Encrypted (or clear) parameters the glidein needs from the frontend.
PARAM_COLLECTOR = A.PARAM_GLIDEIN_COLLECTOR
SECRET_TOKEN = A.PARAM_GLIDEIN_TOKEN
_REFUSAL_RELOG_S = 600.0


# --------------------------------------------------------------------------- commands


def stage_command(stage: Any, stage_url: str, log_tokens: Any = None) -> PilotCommandFn:
    """A command builder running the stage area's glidein bootstrap.

    The frontend gives the user pool's collector as ``GLIDEIN_Collector`` (sealed or
    clear) and the pool token as the sealed ``GLIDEIN_Token``; the token reaches the
    glidein in its environment, never on the command line. Parameters the request names
    in ``ReqGlideinPublish`` become ``-attr`` (published in the slot ads, typed), the
    others ``-param_`` (``glidein_config`` only). The glidein itself publishes
    GLIDEIN_Factory, GLIDEIN_Name (this instance), GLIDEIN_Entry_Name, GLIDECLIENT_Name,
    GLIDECLIENT_Group and the entry's attributes.

    With ``log_tokens`` (a :class:`~gwms.security.logtoken.LogTokenMinter`), each glidein
    also gets the log server's URL (``-logurl``) and its batch's push token (in the
    environment), to push its logs while it runs.
    """
    from gwms.factory import stage as stagemod

    def build(ctx: PilotContext) -> PilotCommand:
        req = ctx.request
        collector = req.secrets.get(PARAM_COLLECTOR) or req.params.get(PARAM_COLLECTOR)
        if not collector:
            raise GwmsError(f"request {req.name!r} gives no {PARAM_COLLECTOR}")
        params = {k: v for k, v in req.params.items() if k != PARAM_COLLECTOR and v is not None}
        published = {k: params.pop(k) for k in req.publish if k in params}
        push = None
        if log_tokens is not None:
            push = log_tokens.settings(entry=ctx.entry.name, user=req.user, cluster=ctx.cluster,
                                       walltime_s=ctx.entry.pilot.walltime_s,
                                       procs=max(ctx.entry.cycle.cluster_size, ctx.proc + 1))
        argv = stagemod.glidein_argv(
            stage, stage_url, entry=ctx.entry.name, client=req.client_name,
            glidein_name=ctx.instance, collector_url=str(collector),
            token_file_or_value=None, attrs=published, params=params, cluster=ctx.cluster, proc=ctx.proc,
            credential_id=req.credential_id, cpus=ctx.entry.cpus(), memory_mb=ctx.entry.memory_mb(),
            log_url=push.url if push else None, log_interval=push.interval_s if push else None,
            log_ca_file=push.ca_file if push else None,
        )
        env: dict[str, str] = {}
        if push is not None:
            from gwms.security.logtoken import LOG_TOKEN_ENV

            env[LOG_TOKEN_ENV] = push.token
        token = req.secrets.get(SECRET_TOKEN)
        if token:
            env[stagemod.TOKEN_ENV] = token
        return PilotCommand(argv, env)

    return build


# --------------------------------------------------------------------------- service


@dataclass
class _Slot:
    """The supervision state of one entry's worker."""

    name: str
    worker: EntryWorker | None = None
    running: bool = False
    due: float = 0.0
    backoff_until: float = 0.0
    crashes: collections.deque[float] = field(default_factory=collections.deque)
    down_until: float = 0.0
    last_error: str = ""
    last_cycle: float | None = None
    cycles: int = 0
    signature: tuple[Any, ...] = ()


class FactoryService:
    """A running factory (see the module docstring).

    Args:
        config: the configuration, with paths resolved (:meth:`FactoryConfig.resolved`).
        token: token (or a function giving one) for the WMS collector (ADVERTISE_FACTORY, READ).
        verify: TLS verification for the collector.
        collector: a ready collector client (tests); default one made from the config.
        commands: entry name -> command builder, overriding the default (an entry's
            ``pilot_command``, else the stage area's glidein).
        backends: entry name -> backend, overriding the configured one (tests).
        clock: epoch seconds.
    """

    def __init__(
        self,
        config: FactoryConfig,
        *,
        token: Token = None,
        verify: bool | str = True,
        collector: CollectorClient | None = None,
        commands: Mapping[str, PilotCommandFn] | None = None,
        backends: Mapping[str, Backend] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if config.data_dir is None or config.key_dir is None or config.log_dir is None:
            raise GwmsError("FactoryService needs a resolved configuration (FactoryConfig.resolved)")
        self.config = config
        self.clock = clock
        self.factory_url: str | None = None
        state = config.state_dir()
        state.mkdir(parents=True, exist_ok=True)
        kid = config.default_key_id()
        self.key_pair = RsaKeyPair.load_or_generate(Path(config.key_dir) / f"{kid}.pem", kid)
        self.decryptor = Decryptor(self.key_pair)
        self.reader = RequestReader(config, self.decryptor)
        self.collector = collector or CollectorClient(
            config.wms_collector, token=token, verify=verify, timeout=20, retries=2
        )
        self._own_collector = collector is None
        self.store = PilotStore(state / "pilots.db")
        self._stage_stop: Callable[[], None] | None = None
        self.stage: Any = None
        self.stage_url: str | None = None
        commands = dict(commands or {})
        backends = dict(backends or {})
        self.workers_cfg = {e.name: e for e in config.entries if e.enabled}
        self.backends: dict[str, Backend] = {}
        for entry in self.workers_cfg.values():
            if entry.name in backends:
                self.backends[entry.name] = backends[entry.name]
            else:
                bdir = state / "backends" / entry.name
                bdir.mkdir(parents=True, exist_ok=True, mode=0o700)
                self.backends[entry.name] = create_backend(
                    entry.backend, entry.backend_settings,
                    BackendContext(entry.name, bdir, config.name, config.instance),
                )
        needs_stage = [e for e in self.workers_cfg.values()
                       if e.name not in commands and e.pilot_command is None]
        if needs_stage:
            stage_cmd = self._stage_command([e.name for e in needs_stage])
            for e in needs_stage:
                commands[e.name] = stage_cmd
        for e in self.workers_cfg.values():
            if e.name not in commands:
                commands[e.name] = env_command(e.pilot_command or [])
        self.commands = commands
        self.slots = {name: _Slot(name) for name in self.workers_cfg}
        self._requests: dict[str, list[ValidRequest]] = {}
        self._requests_at: float | None = None
        self._refusals: collections.deque[tuple[float, Refusal]] = collections.deque(maxlen=200)
        self._refusal_logged: dict[tuple[str, str], float] = {}
        self._refresh_error: str = ""
        self._advertised_clients: set[str] = set()
        self._ads_dirty = True
        self._last_advertise = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._loop_thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ stage area

    def _stage_command(self, entries: list[str]) -> PilotCommandFn:
        try:
            from gwms.factory import stage as stagemod
        except ImportError as exc:
            raise GwmsError(
                f"entries {', '.join(entries)} have no pilot_command and the stage area "
                f"is not available: {exc}"
            ) from None
        cfg = self.config
        self.stage = stagemod.build_stage_area(
            Path(cfg.stage_dir or cfg.state_dir() / "stage"),
            factory_name=cfg.name,
            signing_key=self.key_pair,
            entries={n: stagemod.EntryStage(attrs=dict(self.workers_cfg[n].attrs)) for n in entries},
        )
        if cfg.stage_url:
            self.stage_url = cfg.stage_url
        else:
            self.stage_url, self._stage_stop = stagemod.serve_stage(self.stage.dir)
        log_tokens = None
        if cfg.log_server is not None:
            from gwms.security import logtoken

            log_tokens = logtoken.LogTokenMinter(
                self.key_pair, factory=cfg.name, instance=cfg.instance, url=cfg.log_server.url,
                lifetime_s=cfg.log_server.token_lifetime_s, interval_s=cfg.log_server.interval_s,
                ca_file=cfg.log_server.ca_file,
            )
            logtoken.write_public_key(self.key_pair, Path(cfg.key_dir or cfg.state_dir() / "keys"))
        return stage_command(self.stage, self.stage_url, log_tokens)

    # ------------------------------------------------------------------ running

    def start(self) -> FactoryService:
        """Start the scheduler thread and the entry worker pool."""
        if self._loop_thread is not None:
            return self
        self._executor = ThreadPoolExecutor(max_workers=self.config.workers,
                                            thread_name_prefix="gwms-factory-entry")
        self._loop_thread = threading.Thread(target=self._loop, name="gwms-factory-loop", daemon=True)
        self._loop_thread.start()
        log.info("factory %s@%s started with %d entries", self.config.instance, self.config.name,
                 len(self.slots))
        return self

    def stop(self, *, invalidate: bool = True) -> None:
        """Stop the loop, let running cycles finish, invalidate the ads, close the store."""
        self._stop.set()
        self._wake.set()
        if self._loop_thread is not None:
            self._loop_thread.join(30)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        if invalidate:
            self.invalidate_ads()
        if self._stage_stop is not None:
            self._stage_stop()
            self._stage_stop = None
        if self._own_collector:
            self.collector.close()
        self.store.close()

    def _loop(self) -> None:
        next_refresh = 0.0
        while not self._stop.is_set():
            mono = time.monotonic()
            if mono >= next_refresh:
                self.refresh_requests()
                next_refresh = time.monotonic() + self.config.request_poll_s
            self._dispatch(time.monotonic())
            mono = time.monotonic()
            gap = mono - self._last_advertise
            if (self._ads_dirty and gap >= 1.0) or gap >= self.config.advertise_interval:
                self.advertise()
            self._wake.wait(0.2)
            self._wake.clear()

    def _dispatch(self, mono: float) -> None:
        assert self._executor is not None
        now = self.clock()
        for slot in self.slots.values():
            with self._lock:
                if slot.running or slot.due > mono or now < slot.down_until:
                    continue
                slot.running = True
            self._executor.submit(self._run_slot, slot)

    def _run_slot(self, slot: _Slot) -> None:
        try:
            self.run_entry_cycle(slot.name)
        finally:
            with self._lock:
                slot.running = False
            self._wake.set()

    def run_entry_cycle(self, name: str) -> None:
        """One cycle of an entry, supervised: a crash is counted and the worker is
        made anew after a back-off (see the module docstring)."""
        slot = self.slots[name]
        try:
            if slot.worker is None:
                slot.worker = self._make_worker(name)
            report = slot.worker.cycle(self.requests_for(name))
            slot.last_error = report.error
            slot.last_cycle = self.clock()
            slot.cycles += 1
            delay = self.config.loop_delay
            if report.submitted or report.removed or report.released:
                delay = min(delay, self.config.followup_s)
            slot.due = time.monotonic() + delay
        except Exception as exc:
            now = self.clock()
            slot.worker = None
            slot.last_error = f"{type(exc).__name__}: {exc}"
            slot.crashes.append(now)
            while slot.crashes and now - slot.crashes[0] > self.config.restart_interval:
                slot.crashes.popleft()
            log.exception("entry %s: worker crashed (%d in %gs)", name, len(slot.crashes),
                          self.config.restart_interval)
            if len(slot.crashes) > self.config.restart_attempts:
                slot.down_until = slot.crashes[0] + self.config.restart_interval
                log.error("entry %s: crashed %d times; down until %s", name, len(slot.crashes),
                          time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(slot.down_until)))
            slot.backoff_until = time.monotonic() + restart_delay(len(slot.crashes), base=1.0, cap=300.0)
            slot.due = slot.backoff_until
        finally:
            self._ads_dirty = True

    def _make_worker(self, name: str) -> EntryWorker:
        return EntryWorker(
            self.config, self.workers_cfg[name], self.backends[name], self.store,
            self.commands[name], key_id=self.key_pair.kid, factory_url=self.factory_url,
            clock=self.clock,
        )

    def run_once(self) -> None:
        """Read the requests and run every entry's cycle once, in this thread (tests,
        benchmarks), then advertise."""
        self.refresh_requests()
        for name in self.slots:
            self.run_entry_cycle(name)
        self.advertise()

    def trigger(self, name: str | None = None) -> None:
        """Run an entry's cycle (every entry's with None) as soon as possible."""
        for slot in self.slots.values():
            if name is None or slot.name == name:
                slot.due = slot.backoff_until
        self._ads_dirty = True
        self._wake.set()

    # ------------------------------------------------------------------ requests

    def requests_for(self, name: str) -> list[ValidRequest] | None:
        """The valid requests of an entry, or None if they were not read recently."""
        if self._requests_at is None:
            return None
        if self.clock() - self._requests_at > self.config.request_max_age_s:
            return None
        return list(self._requests.get(name, ()))

    def refresh_requests(self) -> bool:
        """Read and validate the ``glideclient`` ads; False if the collector failed."""
        try:
            ads = self.collector.query(A.TYPE_GLIDECLIENT)
        except Exception as exc:  # noqa: BLE001 - the collector may be down; try again later
            message = f"cannot read requests from {self.config.wms_collector}: {exc}"
            if message != self._refresh_error:
                log.warning("%s", message)
            self._refresh_error = message
            return False
        self._refresh_error = ""
        valid, refused = self.reader.read(ads)
        now = self.clock()
        for refusal in refused:
            key = (refusal.name, refusal.reason)
            last = self._refusal_logged.get(key)
            if last is None or now - last >= _REFUSAL_RELOG_S:
                log.warning("%s", refusal)
                self._refusal_logged[key] = now
                self._refusals.append((now, refusal))
        current = {(r.name, r.reason) for r in refused}
        for key in list(self._refusal_logged):
            if key not in current:
                del self._refusal_logged[key]
        mono = time.monotonic()
        for name, slot in self.slots.items():
            sig = tuple(sorted(
                (r.key, r.req_idle, r.req_max, r.remove_level.value, r.remove_margin, r.idle_lifetime)
                for r in valid.get(name, ())
            ))
            if sig != slot.signature:
                slot.signature = sig
                slot.due = min(slot.due, max(mono, slot.backoff_until))
        self._requests = valid
        self._requests_at = now
        return True

    def refusals(self) -> list[dict[str, Any]]:
        """Recent refusals (newest last)."""
        return [
            {"time": t, "name": r.name, "entry": r.entry, "identity": r.identity, "reason": r.reason}
            for t, r in list(self._refusals)
        ]

    # ------------------------------------------------------------------ ads

    def global_ad(self) -> dict[str, Any]:
        """The ``glidefactoryglobal`` ad."""
        return adsmod.global_ad(
            self.config, key_id=self.key_pair.kid, public_pem=self.key_pair.public_pem,
            factory_url=self.factory_url, entries=sorted(self.slots),
        )

    def _slot_ads(self, slot: _Slot, now: float) -> list[dict[str, Any]]:
        worker = slot.worker
        if now < slot.down_until or (worker is None and slot.crashes):
            counts = self._counts(slot.name)
            n = len(slot.crashes)
            reason = f"entry worker crashed {n} time{'s' if n != 1 else ''}: {slot.last_error}"
            until = slot.down_until if now < slot.down_until else None
            return [adsmod.entry_ad(
                self.config, self.workers_cfg[slot.name], key_id=self.key_pair.kid, counts=counts,
                status=adsmod.EntryStatus(paused=True, reason=reason, paused_until=until),
                factory_url=self.factory_url,
            )]
        if worker is not None and worker.last_report is not None:
            return worker.last_report.ads
        return [adsmod.entry_ad(
            self.config, self.workers_cfg[slot.name], key_id=self.key_pair.kid,
            counts=self._counts(slot.name), status=self._status(slot.name, now),
            factory_url=self.factory_url,
        )]

    def _status(self, name: str, now: float) -> adsmod.EntryStatus:
        return entry_status(self.workers_cfg[name], self.store.control(name), now,
                            self._requests.get(name, []))

    def _counts(self, entry: str) -> Counts:
        c = self.store.count_active(entry)
        return Counts(
            c.get(PilotState.UNSUBMITTED.value, 0), c.get(PilotState.PENDING.value, 0),
            c.get(PilotState.STAGING.value, 0), c.get(PilotState.RUNNING.value, 0),
            c.get(PilotState.HELD.value, 0),
        )

    def current_ads(self) -> list[dict[str, Any]]:
        """Every ad this factory advertises now."""
        now = self.clock()
        out = [self.global_ad()]
        for slot in self.slots.values():
            out.extend(self._slot_ads(slot, now))
        return out

    def advertise(self) -> bool:
        """Send the ads to the WMS collector, and invalidate client ads no longer
        current; False if the collector failed."""
        self._ads_dirty = False
        self._last_advertise = time.monotonic()
        ads = self.current_ads()
        try:
            report = self.collector.advertise(ads)
            if report.refused:
                log.warning("the collector refused %d ad(s): %s", len(report.refused),
                            report.refused[0].reason)
            clients = {a[A.NAME] for a in ads if a[A.MY_TYPE] == A.TYPE_GLIDEFACTORY_CLIENT}
            for name in sorted(self._advertised_clients - clients):
                self.collector.invalidate(A.TYPE_GLIDEFACTORY_CLIENT, name=name)
            self._advertised_clients = clients
        except Exception as exc:  # noqa: BLE001
            log.warning("cannot advertise to %s: %s", self.config.wms_collector, exc)
            self._ads_dirty = True
            return False
        return True

    def invalidate_ads(self) -> None:
        """Remove this factory's ads from the WMS collector (on shutdown)."""
        constraint = adsmod.own_ads_constraint(self.config)
        for my_type in (A.TYPE_GLIDEFACTORY_CLIENT, A.TYPE_GLIDEFACTORY, A.TYPE_GLIDEFACTORY_GLOBAL):
            try:
                self.collector.invalidate(my_type, constraint=constraint)
            except Exception as exc:  # noqa: BLE001
                log.warning("cannot invalidate %s ads: %s", my_type, exc)
                return

    # ------------------------------------------------------------------ operator API

    def _entry_or_404(self, name: str) -> _Slot:
        slot = self.slots.get(name)
        if slot is None:
            raise ApiError(404, "no_such_entry", f"no entry {name!r} (entries: {', '.join(sorted(self.slots))})")
        return slot

    def entries(self) -> list[dict[str, Any]]:
        """A summary of every entry (``gwms factory entries``)."""
        now = self.clock()
        out = []
        for name, slot in self.slots.items():
            entry = self.workers_cfg[name]
            status = self._status(name, now)
            control = self.store.control(name)
            crashed = now < slot.down_until
            requests = self._requests.get(name, [])
            out.append({
                "name": name,
                "ad_name": self.config.entry_ad_name(name),
                "backend": entry.backend,
                "paused": status.paused or crashed,
                "reason": status.reason if status.paused else (
                    f"worker crashed: {slot.last_error}" if crashed else ""),
                "paused_until": status.paused_until if status.paused else (
                    slot.down_until if crashed else None),
                "in_downtime": status.in_downtime,
                "downtimes": control.get("downtimes") or [],
                "counts": self.store.count_active(name),
                "requests": [
                    {"name": r.name, "client": r.client_name, "frontend": r.frontend,
                     "security_class": r.security_class, "idle": r.req_idle, "max": r.req_max,
                     "remove": r.remove_level.value}
                    for r in requests
                ],
                "last_cycle": slot.last_cycle,
                "cycles": slot.cycles,
                "last_error": slot.last_error,
                "crashes": len(slot.crashes),
            })
        return out

    def pilots(self, *, entry: str | None = None, client: str | None = None,
               states: list[str] | None = None, all_states: bool = False,
               limit: int = 10000) -> list[dict[str, Any]]:
        """Pilots as JSON (``gwms factory q``)."""
        wanted = None
        if states:
            try:
                wanted = [PilotState(s.lower()) for s in states]
            except ValueError:
                raise ApiError(400, "bad_state", f"states are {', '.join(s.value for s in PilotState)}") from None
        records = self.store.query(entry=entry, client=client, states=wanted,
                                   active_only=not all_states and wanted is None, limit=limit)
        return [r.as_json() for r in records]

    def pause(self, name: str, reason: str) -> dict[str, Any]:
        """Pause an entry (no submissions; pilots keep running) until resumed."""
        self._entry_or_404(name)
        since = self.clock()

        def change(data: dict[str, Any]) -> dict[str, Any]:
            data["paused"] = {"reason": reason, "since": since}
            return data

        self.store.update_control(name, change)
        log.info("entry %s paused by operator: %s", name, reason or "no reason given")
        self.trigger(name)
        return {"entry": name, "paused": True, "reason": reason}

    def resume(self, name: str) -> dict[str, Any]:
        """Undo an operator pause and any failure pause or crash back-off."""
        slot = self._entry_or_404(name)

        def change(data: dict[str, Any]) -> dict[str, Any]:
            data.pop("paused", None)
            data.pop("health", None)
            return data

        self.store.update_control(name, change)
        slot.down_until = 0.0
        slot.backoff_until = 0.0
        slot.crashes.clear()
        log.info("entry %s resumed by operator", name)
        self.trigger(name)
        return {"entry": name, "paused": False}

    def downtime(self, name: str, start: float | None, end: float | None, comment: str = "",
                 clear: bool = False) -> dict[str, Any]:
        """Add an operator downtime to an entry (or, with ``clear``, drop them all)."""
        self._entry_or_404(name)
        item = {"start": start, "end": end, "comment": comment}
        if not clear:
            try:
                Downtime.model_validate(item)
            except ValueError as exc:
                raise ApiError(400, "bad_downtime", str(exc).splitlines()[-1].strip()) from None

        def change(data: dict[str, Any]) -> dict[str, Any]:
            if clear:
                data.pop("downtimes", None)
                return data
            now = self.clock()
            kept = [d for d in data.get("downtimes") or []
                    if d.get("end") is None or float(d["end"]) > now]
            data["downtimes"] = [*kept, item]
            return data

        data = self.store.update_control(name, change)
        self.trigger(name)
        downtimes = entry_downtimes(self.workers_cfg[name], data)
        return {"entry": name, "downtimes": data.get("downtimes") or [],
                "in_downtime": active_downtime(downtimes, self.clock()) is not None}

    def status(self) -> dict[str, Any]:
        """The factory's own state (``GET /v1/status``)."""
        return {
            "factory": self.config.name,
            "instance": self.config.instance,
            "key_id": self.key_pair.kid,
            "wms_collector": self.config.wms_collector,
            "stage_url": self.stage_url,
            "entries": len(self.slots),
            "requests_read_at": self._requests_at,
            "request_error": self._refresh_error,
            "refusals": self.refusals()[-20:],
            "active_pilots": self.store.count_active(),
        }


# --------------------------------------------------------------------------- HTTP API


class PauseBody(BaseModel):
    """``POST /v1/entries/{entry}/pause``."""

    reason: str = Field(default="", max_length=1000)


class DowntimeBody(BaseModel):
    """``POST /v1/entries/{entry}/downtime``: epoch seconds (None: open)."""

    start: float | None = None
    end: float | None = None
    comment: str = Field(default="", max_length=1000)
    clear: bool = False


def create_factory_app(
    service: FactoryService, verifier: TokenVerifier | None, *, manage: bool = True
) -> FastAPI:
    """The factory's HTTP API; with ``manage`` the app starts and stops the service."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage:
            service.start()
        try:
            yield
        finally:
            if manage:
                service.stop()

    app = create_app(service="factory", verifier=verifier, lifespan=lifespan)
    install_dashboard(app, FactoryDashboard(service), factory_families)
    read = Depends(require_scopes(scopes.READ))
    admin = Depends(require_scopes(scopes.ADMINISTRATOR))

    @app.get("/v1/status", tags=["factory"], dependencies=[read])
    def status() -> dict[str, Any]:
        return service.status()

    @app.get("/v1/entries", tags=["factory"], dependencies=[read])
    def entries() -> dict[str, Any]:
        return {"entries": service.entries()}

    @app.get("/v1/pilots", tags=["factory"], dependencies=[read])
    def pilots(
        entry: str | None = None,
        client: str | None = None,
        state: str | None = Query(default=None, description="comma-separated states"),
        all: bool = False,
        limit: int = Query(default=10000, ge=1, le=1_000_000),
    ) -> dict[str, Any]:
        states = [s for s in (state or "").split(",") if s] or None
        return {"pilots": service.pilots(entry=entry, client=client, states=states,
                                         all_states=all, limit=limit)}

    @app.post("/v1/entries/{entry}/pause", tags=["factory"], dependencies=[admin])
    def pause(entry: str, body: PauseBody) -> dict[str, Any]:
        return service.pause(entry, body.reason)

    @app.post("/v1/entries/{entry}/resume", tags=["factory"], dependencies=[admin])
    def resume(entry: str) -> dict[str, Any]:
        return service.resume(entry)

    @app.post("/v1/entries/{entry}/downtime", tags=["factory"], dependencies=[admin])
    def downtime(entry: str, body: DowntimeBody) -> dict[str, Any]:
        return service.downtime(entry, body.start, body.end, body.comment, body.clear)

    return app
