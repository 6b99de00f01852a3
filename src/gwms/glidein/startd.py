"""The startd agent: advertises slots, claims matched jobs, runs them with the starter.

Only outbound connections (``docs/contracts.md``, "Pool II"):

- slot ads go to the collector (``POST /v1/ads``) on every change and at least every
  ``ClassAdLifetime / 3``; they are invalidated on exit;
- schedds are found in the collector (``Scheduler`` ads, ``ScheddIpAddr``) and each is
  long-polled (``POST /v1/startd/poll``) for claims on this agent's slots;
- a claim runs in a thread: input (``GET /v1/claims/{id}/input``), the job (starter),
  outputs (``PUT .../output``), ``POST .../complete``; a ``next`` job in the answer
  reuses the claim at once; ``hold``/``vacate``/``release`` otherwise;
- running claims are renewed with ``POST /v1/claims/heartbeat`` every
  ``claim_timeout / 4``.

Lifetime (``gwms.glidein.lifetime``): the main thread re-evaluates the verdict on every
change and at the next deadline. Retiring (retire time, max idle/tail, black hole,
SIGTERM) stops polling, tells each schedd goodbye (``POST /v1/startd/goodbye``: it drops
the pending matches to our slots at once, so their jobs need not wait out the match
timeout), advertises the slots as Drained with ``Start = false`` and exits after the last
job; die time or a second SIGTERM vacates the running jobs first.

Run it with ``python3 gwms-startd.pyz run ...``, ``python3 -m gwms.glidein.startd run ...``
or ``gwms startd run ...``.
"""

from __future__ import annotations

import collections
import os
import random
import shutil
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from gwms.glidein import attributes as A
from gwms.glidein.config import DEFAULT_CLAIM_TIMEOUT, AgentConfig, detect_arch
from gwms.glidein.daemonlog import DaemonLogs
from gwms.glidein.errors import ClaimGone, StartdError
from gwms.glidein.httpclient import HttpClient, HttpError, StaticToken, TokenFile, TransportError
from gwms.glidein.inspect import InspectionPoller, Target
from gwms.glidein.jobad import CaseBlindAd, env_value
from gwms.glidein.lifetime import (
    Activity,
    Verdict,
    decide,
    is_black_hole,
    next_check,
    plan_deadlines,
    recent_durations,
)
from gwms.glidein.procwatch import Watcher
from gwms.glidein.slots import (
    AgentStatus,
    MachineInfo,
    Resources,
    Slot,
    SlotTable,
    resources_from_json,
    slot_ad,
)
from gwms.glidein.starter import (
    ABORTED,
    COMPLETED,
    HELD,
    VACATED,
    JobResult,
    JobRun,
    SlotContext,
    job_label,
)
from gwms.glidein.version import VERSION

#: Statuses of a claims call that mean the schedd no longer has the claim.
GONE = (404, 410)
#: The status that means the claim exists but its job is no longer to be run (removed, held).
STOPPED = 409


def claim_gone(exc: HttpError, what: str) -> ClaimGone | None:
    """The :class:`ClaimGone` an HTTP error of a claims call means, if any."""
    if exc.status in GONE:
        return ClaimGone(f"{what}: {exc.message}")
    if exc.status == STOPPED:
        return ClaimGone(f"{what}: {exc.message}", claim_alive=True)
    return None


class InputCache:
    """Input sandboxes already downloaded, by cluster: later jobs of a cluster reuse them.

    Files under ``root``, at most ``max_bytes`` in all (oldest dropped first).
    """

    def __init__(self, root: Path, *, max_bytes: int = 256 << 20) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: collections.OrderedDict[str, tuple[Path, int]] = collections.OrderedDict()
        self._size = 0

    def get(self, key: str) -> Path | None:
        """The cached archive for ``key``, if any."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: str, src: IO[bytes], size: int) -> None:
        """Keep a copy of ``src`` (``size`` bytes) for ``key`` when it is small enough."""
        if size <= 0 or size > self.max_bytes // 4:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{uuid.uuid4().hex}.tar"
        src.seek(0)
        with open(path, "wb") as out:
            shutil.copyfileobj(src, out)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._size -= old[1]
                _unlink(old[0])
            self._entries[key] = (path, size)
            self._size += size
            while self._size > self.max_bytes and self._entries:
                _, (p, s) = self._entries.popitem(last=False)
                self._size -= s
                _unlink(p)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


class ScheddLink:
    """One schedd this agent polls: its clients, claims and input cache."""

    def __init__(self, url: str, name: str, token: Any, ca_file: str | None, cache_root: Path) -> None:
        self.url = url
        self.name = name
        self.client = HttpClient(url, token, ca_file=ca_file, timeout=120.0)
        self.poll_client = HttpClient(url, token, ca_file=ca_file, attempts=2)
        self.claim_timeout = DEFAULT_CLAIM_TIMEOUT
        self.next_heartbeat = 0.0  # monotonic
        self.claims: set[str] = set()
        self.active = True
        self.poller: threading.Thread | None = None
        self.inspector: InspectionPoller | None = None  # gwms job ps|ls|cat...: while claims run
        self.cache = InputCache(cache_root)

    def claim_call(self, method: str, claim_id: str, action: str, body: Any = None, **kw: Any) -> Any:
        """A ``/v1/claims/{id}/{action}`` call; :class:`ClaimGone` on 404/410."""
        try:
            return self.client.call(method, f"/v1/claims/{claim_id}/{action}", body, **kw)
        except HttpError as exc:
            gone = claim_gone(exc, f"{self.name}: claim {claim_id[:12]}...")
            if gone is not None:
                raise gone from None
            raise

    def fetch_input(self, claim_id: str, job: CaseBlindAd, sink: IO[bytes]) -> bool:
        """Write the job's input archive to ``sink``; False when the cluster has none."""
        cluster, qdate = job.number(A.CLUSTER_ID), job.number(A.QDATE)
        key = f"{cluster}:{qdate}" if cluster is not None and qdate is not None else ""
        cached = self.cache.get(key) if key else None
        if cached is not None:
            try:
                with open(cached, "rb") as src:
                    shutil.copyfileobj(src, sink)
                return True
            except OSError:
                pass
        try:
            resp = self.client.request("GET", f"/v1/claims/{claim_id}/input?job={job_label(job)}", sink=sink,
                                       ok=(204,), timeout=600.0)
        except HttpError as exc:
            gone = claim_gone(exc, f"{self.name}: claim {claim_id[:12]}...")
            if gone is not None:
                raise gone from None
            raise
        if resp.status == 204:
            return False
        size = sink.tell()
        if size == 0:
            return False
        if key:
            self.cache.put(key, sink, size)
        return True


class ClaimRunner:
    """One claim: runs its job, reports, follows ``next`` jobs, then gives the slot back."""

    def __init__(self, agent: Agent, link: ScheddLink, claim_id: str, slot: Slot, job: dict[str, Any]) -> None:
        self.agent = agent
        self.link = link
        self.claim_id = claim_id
        self.slot = slot
        self.job = job
        self.current: JobRun | None = None
        self.lost = False  # the job is not ours to run any more: report nothing
        self.release_after = False  # ...but the claim lives on: release it
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"claim-{slot.short}", daemon=True)

    def start(self) -> None:
        """Start the claim's thread."""
        self.thread.start()

    def stop(self, outcome: str, reason: str, *, claim_alive: bool = False) -> None:
        """End the running job early: vacate it, or abort it when the schedd no longer wants
        it run (``claim_alive``: the claim stays and is released afterwards)."""
        with self._lock:
            if outcome == ABORTED:
                self.lost = True
                self.release_after = self.release_after or claim_alive
            run = self.current
        if run is not None:
            run.stop(outcome, reason)

    def _run(self) -> None:
        agent = self.agent
        job: dict[str, Any] | None = self.job
        try:
            while job is not None:
                result = self._run_one(job)
                job, request = self._report(job, result)
                if job is None:
                    break
                reason = agent.refusal()
                if not reason:
                    reason = agent.slots.reuse(self.slot, job, agent.clock(), request)
                if reason:
                    agent.give_back(self.link, self.claim_id, f"{reason} (claim reuse)", job_label(CaseBlindAd(job)))
                    job = None
        except Exception as exc:  # noqa: BLE001 - never lose a slot to a bug: log it, free the slot
            agent.logs.startd(f"claim {self.claim_id[:12]}... on {self.slot.name} failed: {exc!r}",
                              severity="error", type="claim_error")
        finally:
            agent.claim_ended(self)

    def _run_one(self, job: dict[str, Any]) -> JobResult:
        agent = self.agent
        ad = CaseBlindAd(job)
        agent.job_started(self, ad)
        run = JobRun(
            ad,
            agent.slot_context(self.slot),
            agent.new_sandbox(self.slot),
            watcher=agent.watcher,
            logs=agent.logs,
            policy=agent.config.starter,
            die_at=agent.deadlines.die_at,
            clock=agent.clock,
        )
        with self._lock:
            self.current = run
            lost = self.lost
        if lost:
            run.stop(ABORTED, "the schedd no longer wants the job run")
        fetch: Callable[[IO[bytes]], bool] | None = None
        if ad.boolean(A.SPOOLED_INPUT) is True:
            fetch = lambda sink: self.link.fetch_input(self.claim_id, ad, sink)
        try:
            return run.run(fetch)
        except Exception as exc:  # noqa: BLE001 - a starter bug vacates the job, never loses it
            agent.logs.startd(f"starter failed for job {job_label(ad)}: {exc!r}", severity="error")
            return JobResult(VACATED, reason=f"starter error: {exc}")

    def _report(self, job: dict[str, Any], result: JobResult) -> tuple[dict[str, Any] | None, Resources | None]:
        """Tell the schedd how the job ended; the next job of the claim and its request, if any."""
        agent = self.agent
        run = self.current
        label = run.label if run is not None else job_label(CaseBlindAd(job))
        where = f"job {label} on {self.slot.name}"
        try:
            with self._lock:
                lost, release = self.lost, self.release_after
            if lost or result.outcome == ABORTED:
                agent.logs.startd(f"{where}: stopped by the schedd, not reported", type="job_abort")
                if release:
                    self._release()
                return None, None
            if result.outcome == COMPLETED:
                agent.job_finished(result)
                if result.output is not None and not self._send_output(result, where, label):
                    return None, None
                answer = self.link.claim_call("POST", self.claim_id, "complete", {**result.completion(), "job": label})
                how = f"signal {result.exit_signal}" if result.exit_signal is not None else f"exit code {result.exit_code}"
                agent.logs.starter_summary(f"{where} completed: {how}, {result.wall_seconds:.3f} s")
                nxt = answer.get("next") if isinstance(answer, dict) else None
                if isinstance(nxt, dict) and nxt:
                    return nxt, resources_from_json(answer.get("request"))
                self._release()
                return None, None
            if result.outcome == HELD:
                self.link.claim_call("POST", self.claim_id, "hold",
                                     {"reason": result.reason, "code": result.hold_code, "job": label})
                agent.logs.startd(f"{where} held: {result.reason}", type="job_hold")
                self._release()
                return None, None
            self.link.claim_call("POST", self.claim_id, "vacate",
                                 {"reason": result.reason or "vacated by the startd", "job": label})
            agent.logs.startd(f"{where} vacated: {result.reason}", type="job_vacate")
            self._release()
            return None, None
        except ClaimGone as exc:
            agent.logs.startd(f"{where}: {exc}")
            if exc.claim_alive:
                self._release()
            return None, None
        except (HttpError, TransportError) as exc:
            agent.logs.startd(f"{where}: cannot report to {self.link.name}: {exc}", severity="warning")
            return None, None
        finally:
            if run is not None:
                run.cleanup()

    def _send_output(self, result: JobResult, where: str, label: str) -> bool:
        """Upload the outputs; on a refusal, hold the job instead (False)."""
        assert result.output is not None
        try:
            with open(result.output, "rb") as f:
                self.link.client.request(
                    "PUT", f"/v1/claims/{self.claim_id}/output?job={label}", file=f,
                    content_type="application/x-tar", timeout=600.0,
                )
            return True
        except HttpError as exc:
            gone = claim_gone(exc, where)
            if gone is not None:
                raise gone from None
            reason = f"Error from {self.slot.name}: Transfer output files failure: {exc.message}"
            self.link.claim_call("POST", self.claim_id, "hold",
                                 {"reason": reason, "code": A.HOLD_TRANSFER_OUTPUT_ERROR, "job": label})
            self.agent.logs.startd(f"{where} held: {reason}", severity="warning", type="job_hold")
            self._release()
            return False

    def _release(self) -> None:
        try:
            self.link.claim_call("POST", self.claim_id, "release", {})
        except (ClaimGone, HttpError, TransportError):
            pass


class Agent:
    """One startd agent (see the module docstring)."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        token: str | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.id = uuid.uuid4().hex
        self.start_time = clock()
        self.deadlines = plan_deadlines(self.start_time, config.lifetime, (rng or random.Random()).random())
        echo = (lambda line: print(line, file=sys.stderr, flush=True)) if config.echo else None
        self.logs = DaemonLogs(config.log_dir, clock=clock, echo=echo)
        if token is not None:
            self.token: Any = StaticToken(token)
        elif config.token_file is not None:
            self.token = TokenFile(config.token_file)
        else:
            raise StartdError("a token is required (--token FILE)")
        self.collector = HttpClient(config.collector, self.token, ca_file=config.ca_file, timeout=30.0)
        self.slots = SlotTable(config.name, config.total, static=config.static_slots, partitionable=config.partitionable)
        self.machine = MachineInfo(
            glidein=config.name,
            hostname=socket.gethostname(),
            arch=detect_arch(),
            startd_id=self.id,
            total=config.total,
            daemon_start=self.start_time,
            ad_lifetime=config.ad_lifetime,
            start_expr=config.start,
            published=dict(config.attrs),
        )
        self.published_env = {k: env_value(v) for k, v in config.attrs.items()}
        self.workdir = config.workdir
        self.execute_dir = config.workdir
        self.watcher = Watcher(config.monitor_interval)
        self.schedds: dict[str, ScheddLink] = {}
        self.claims: dict[str, ClaimRunner] = {}
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._ads_changed = threading.Event()
        self._stopping = threading.Event()
        self._accepting = True
        self._retire_reason = ""
        self._retired_at: float | None = None
        self._drain = False
        self._fast = False
        self._goodbye: threading.Thread | None = None  # telling the schedds we take no more jobs
        self._black_hole = False
        self._jobs_started = 0
        self._jobs_completed = 0
        self._idle_since = self.start_time
        self._history: collections.deque[tuple[float, float]] = collections.deque(maxlen=10000)
        self._sandbox_seq = 0
        self._next_schedd_refresh = 0.0
        self._threads: list[threading.Thread] = []
        self._signals: collections.deque[int] = collections.deque()
        self._schedd_backoff = 0.0
        self.ads_sent = 0

    # -- state used by claims ----------------------------------------------------------
    @property
    def accepting(self) -> bool:
        """Whether the agent takes new jobs."""
        return self._accepting

    def refusal(self) -> str:
        """Why a new job would be turned away now ("" if it would not)."""
        if not self._accepting:
            return f"the startd is retiring ({self._retire_reason})"
        return ""

    def slot_context(self, slot: Slot) -> SlotContext:
        """What the starter needs about ``slot``."""
        ad = slot_ad(slot, self.machine, self.status(), self.clock())
        return SlotContext(
            name=slot.name, short=slot.short, cpus=slot.size.cpus, memory_mb=slot.size.memory,
            disk_kb=slot.size.disk, gpus=slot.size.gpus, machine_ad=ad, published_env=self.published_env,
        )

    def new_sandbox(self, slot: Slot) -> Path:
        """A fresh sandbox path for a job in ``slot``."""
        with self._lock:
            self._sandbox_seq += 1
            n = self._sandbox_seq
        return self.execute_dir / f"dir_{os.getpid()}_{slot.short}_{n}"

    def job_started(self, runner: ClaimRunner, ad: CaseBlindAd) -> None:
        """Count a job start (lifetime: max idle no longer applies)."""
        with self._lock:
            self._jobs_started += 1

    def job_finished(self, result: JobResult) -> None:
        """Record a completed job's duration (black-hole detection)."""
        now = self.clock()
        policy = self.config.lifetime
        with self._lock:
            self._jobs_completed += 1
            self._history.append((now, result.wall_seconds))
            if not self._black_hole and policy.blackhole_numjobs > 0:
                recent = recent_durations(self._history, now, policy.blackhole_window)
                if is_black_hole(recent, policy.blackhole_numjobs, policy.blackhole_rate):
                    self._black_hole = True
                    self.logs.startd(
                        f"black hole: {len(recent)} jobs in the last {policy.blackhole_window:g} s ran "
                        f"{sum(recent) / len(recent):.2f} s on average; no more jobs will be accepted",
                        severity="warning", type="black_hole",
                    )
        if self._black_hole:
            self._wake.set()

    def give_back(self, link: ScheddLink, claim_id: str, reason: str, job: str) -> None:
        """Return a claim's job (``C.P``) to idle and end the claim (a claim this agent will not run)."""
        self.logs.startd(f"giving back claim {claim_id[:12]}... of job {job} to {link.name}: {reason}")
        for action, body in (("vacate", {"reason": reason, "job": job}), ("release", {})):
            try:
                link.claim_call("POST", claim_id, action, body)
            except (ClaimGone, HttpError, TransportError):
                pass

    def inspection_target(self, claim_id: str, job: str) -> Target | None:
        """What ``gwms job ps|ls|cat...`` looks at for the claim's job ``C.P`` (None when the
        claim runs no such job here)."""
        with self._lock:
            runner = self.claims.get(claim_id)
        run = runner.current if runner is not None else None
        if run is None or run.label != job:
            return None
        return Target(str(run.sandbox), run.session, run.label)

    def _inspections(self, link: ScheddLink) -> InspectionPoller:
        """The inspection channel to ``link``'s schedd (outbound long poll while claims run)."""
        with self._lock:
            if link.inspector is None:
                link.inspector = InspectionPoller(
                    self.id,
                    lambda path, body, timeout: link.poll_client.call("POST", path, body, timeout=timeout),
                    lambda path, body: link.client.call("POST", path, body, timeout=30.0, attempts=2),
                    self.inspection_target,
                    lambda: bool(link.claims),
                    self._stopping,
                    lambda line: self.logs.startd(f"{link.name}: {line}", severity="warning"),
                )
            return link.inspector

    def claim_ended(self, runner: ClaimRunner) -> None:
        """A claim's thread is done: free its slot."""
        self.slots.finish(runner.slot)
        with self._lock:
            self.claims.pop(runner.claim_id, None)
            runner.link.claims.discard(runner.claim_id)
            if not self.claims:
                self._idle_since = self.clock()
        self._ads_changed.set()
        self._wake.set()

    def claim_lost(self, claim_id: str, reason: str, *, claim_alive: bool = False) -> None:
        """The schedd no longer wants this claim's job run (claim dropped, or the job removed
        or held: ``claim_alive``): kill the job, report nothing."""
        with self._lock:
            runner = self.claims.get(claim_id)
        if runner is not None:
            self.logs.startd(f"claim {claim_id[:12]}... on {runner.slot.name}: {reason}")
            runner.stop(ABORTED, reason, claim_alive=claim_alive)

    def _stopped_claims(self, link: ScheddLink, answer: Any) -> None:
        """Act on a poll or heartbeat answer: its ``claim_timeout``, and ``unknown`` and
        ``stopped`` claim ids."""
        if not isinstance(answer, dict):
            return
        timeout = answer.get("claim_timeout")
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
            link.claim_timeout = float(timeout)
        for key, alive, reason in (
            ("unknown", False, "the schedd no longer knows the claim"),
            ("stopped", True, "the job was removed or held at the schedd"),
        ):
            for cid in answer.get(key) or []:
                if isinstance(cid, str):
                    self.claim_lost(cid, f"{link.name}: {reason}", claim_alive=alive)

    # -- status and ads ----------------------------------------------------------------
    def status(self) -> AgentStatus:
        """What the slot ads say about the agent as a whole."""
        retire_at = self.deadlines.retire_at
        if self._retired_at is not None:
            retire_at = min(retire_at, self._retired_at)
        return AgentStatus(self._accepting, retire_at, self.deadlines.die_at, self._black_hole)

    def slot_ads(self) -> list[dict[str, Any]]:
        """The current ad of every slot."""
        now = self.clock()
        status = self.status()
        return [slot_ad(s, self.machine, status, now) for s in self.slots.snapshot()]

    def advertise(self) -> bool:
        """Send every slot ad and invalidate the ads of dynamic slots that are gone."""
        removed = self.slots.pop_removed()
        ads = self.slot_ads()
        try:
            answer = self.collector.call("POST", "/v1/ads", {"ads": ads}, timeout=30.0)
            refused = answer.get("refused") if isinstance(answer, dict) else None
            if refused:
                self.logs.startd(f"collector refused slot ads: {refused}", severity="warning")
            self.ads_sent += 1
            if removed:
                names = " || ".join(f'Name == "{n}"' for n in removed)
                self.collector.call("POST", "/v1/ads/invalidate", {"my_type": A.SLOT_MY_TYPE, "constraint": names})
            return True
        except (HttpError, TransportError, StartdError) as exc:
            self.slots.restore_removed(removed)  # invalidate them on the next try
            self.logs.startd(f"cannot advertise to the collector: {exc}", severity="warning")
            return False

    def invalidate_all(self) -> None:
        """Remove every ad of this agent from the collector."""
        try:
            self.collector.call(
                "POST", "/v1/ads/invalidate",
                {"my_type": A.SLOT_MY_TYPE, "constraint": f'{A.STARTD_ID} == "{self.id}"'},
                timeout=10.0, attempts=2,
            )
        except (HttpError, TransportError, StartdError) as exc:
            self.logs.startd(f"cannot invalidate the slot ads: {exc}", severity="warning")

    def _advertise_loop(self) -> None:
        refresh = max(self.config.ad_lifetime / 3.0, 1.0)
        timeout = 0.0
        while not self._stopping.is_set():
            self._ads_changed.wait(timeout)
            if self._stopping.is_set():
                break
            self._ads_changed.clear()
            timeout = refresh if self.advertise() else min(refresh, 5.0)

    # -- schedds -------------------------------------------------------------------------
    def refresh_schedds(self) -> bool:
        """Find the schedds in the collector; start polling new ones, stop forgotten ones.
        False when the collector could not be asked."""
        try:
            answer = self.collector.call(
                "POST", "/v1/ads/query",
                {"my_type": "Scheduler", "projection": ["Name", "ScheddIpAddr"]},
                timeout=15.0, attempts=2,
            )
        except (HttpError, TransportError, StartdError) as exc:
            self.logs.startd(f"cannot query the collector for schedds: {exc}", severity="warning")
            return False
        found: dict[str, str] = {}
        for ad in (answer or {}).get("ads", []) if isinstance(answer, dict) else []:
            view = CaseBlindAd(ad)
            url = view.string("ScheddIpAddr")
            if url and url.startswith(("http://", "https://")):
                found[url.rstrip("/")] = view.string("Name") or url
        with self._lock:
            for url, name in found.items():
                link = self.schedds.get(url)
                if link is None:
                    link = ScheddLink(url, name, self.token, self.config.ca_file, self.workdir / ".input-cache" / uuid.uuid4().hex[:8])
                    self.schedds[url] = link
                    self.logs.startd(f"found schedd {name} at {url}")
                link.active = True
                if self._accepting and (link.poller is None or not link.poller.is_alive()):
                    link.poller = threading.Thread(target=self._poll_loop, args=(link,), name=f"poll-{name}", daemon=True)
                    link.poller.start()
            for url, link in self.schedds.items():
                if url not in found and link.active:
                    link.active = False
                    self.logs.startd(f"schedd {link.name} is no longer in the collector")
        return True

    def _poll_loop(self, link: ScheddLink) -> None:
        backoff = 0.0
        wait = self.config.poll_wait
        while link.active and self._accepting and not self._stopping.is_set():
            if backoff and self._stopping.wait(backoff):
                break
            began = time.monotonic()
            body: dict[str, Any] = {"startd": self.id, "slots": self.slots.poll_names(), "wait": wait}
            free = self.slots.free_resources()
            if free:
                body["free"] = free
            try:
                answer = link.poll_client.call("POST", "/v1/startd/poll", body, timeout=wait + 30.0)
            except (HttpError, TransportError, StartdError) as exc:
                if self._stopping.is_set():
                    break
                backoff = min(max(backoff * 2, 1.0), 30.0)
                self.logs.startd(f"poll of {link.name} failed (retry in {backoff:g} s): {exc}", severity="warning")
                continue
            backoff = 0.0
            claims = []
            if isinstance(answer, dict):
                self._stopped_claims(link, answer)
                claims = answer.get("claims") or []
            for claim in claims:
                self._on_claim(link, claim)
            if not claims and time.monotonic() - began < min(1.0, wait):
                self._stopping.wait(min(1.0, wait) - (time.monotonic() - began))
        link.poller = None

    def _on_claim(self, link: ScheddLink, claim: Any) -> None:
        if not isinstance(claim, dict):
            return
        claim_id, slot_name, job = claim.get("claim_id"), claim.get("slot"), claim.get("job")
        if not isinstance(claim_id, str) or not isinstance(slot_name, str) or not isinstance(job, dict):
            self.logs.startd(f"ignoring a malformed claim from {link.name}: {str(claim)[:200]}", severity="warning")
            return
        reason = self.refusal()
        slot = None
        if not reason:
            request = resources_from_json(claim.get("request"))
            slot, reason = self.slots.take(slot_name, claim_id, job, self.clock(), request)
        if slot is None:
            self.give_back(link, claim_id, reason, job_label(CaseBlindAd(job)))
            return
        runner = ClaimRunner(self, link, claim_id, slot, job)
        with self._lock:
            self.claims[claim_id] = runner
            if not link.claims:
                link.next_heartbeat = time.monotonic() + link.claim_timeout / 4.0
            link.claims.add(claim_id)
        self.logs.startd(f"claimed {slot.name} by {link.name} for job {job_label(CaseBlindAd(job))}", type="claim")
        self._inspections(link).ensure_running()
        runner.start()
        self._ads_changed.set()
        self._wake.set()

    def _heartbeat_loop(self) -> None:
        while not self._stopping.wait(0.5):
            now = time.monotonic()
            with self._lock:
                due = [(link, sorted(link.claims)) for link in self.schedds.values()
                       if link.claims and now >= link.next_heartbeat]
            for link, ids in due:
                link.next_heartbeat = now + max(link.claim_timeout / 4.0, 0.5)
                try:
                    answer = link.client.call("POST", "/v1/claims/heartbeat", {"claims": ids}, timeout=30.0, attempts=2)
                except (HttpError, TransportError, StartdError) as exc:
                    self.logs.startd(f"heartbeat to {link.name} failed: {exc}", severity="warning")
                    continue
                self._stopped_claims(link, answer)

    # -- lifetime ----------------------------------------------------------------------
    def request_shutdown(self, fast: bool = False, *, signum: int | None = None, wake: bool = True) -> None:
        """Drain (first request) or vacate now (``fast`` or a second request); ``signum``
        is logged later by the main loop. From a signal handler pass ``wake=False`` and
        wake the main loop another way (:func:`install_signal_handlers`): waking it takes
        the lock of a :class:`threading.Event`, which a second signal arriving inside the
        first handler would wait for forever."""
        if signum is not None:
            self._signals.append(signum)
        if fast or self._drain:
            self._fast = True
        self._drain = True
        if wake:
            self._wake.set()

    def wake(self) -> None:
        """Wake the main loop (it re-evaluates the flags and deadlines at once)."""
        self._wake.set()

    def activity(self) -> Activity:
        """The agent's activity now, for :func:`gwms.glidein.lifetime.decide`."""
        with self._lock:
            return Activity(
                now=self.clock(),
                jobs_started=self._jobs_started,
                running=len(self.claims),
                idle_since=self._idle_since,
                drain=self._drain,
                fast=self._fast,
                black_hole=self._black_hole,
            )

    def _apply(self, verdict: Verdict) -> None:
        if not verdict.accept and self._accepting:
            self._accepting = False
            self._retire_reason = verdict.reason
            self._retired_at = self.clock()
            self.logs.startd(f"retiring: {verdict.reason}; no new jobs", type="retire")
            self._ads_changed.set()
            self._start_goodbye()
        if verdict.vacate:
            with self._lock:
                runners = list(self.claims.values())
            for runner in runners:
                runner.stop(VACATED, f"the startd is shutting down ({verdict.reason})")

    def say_goodbye(self) -> dict[str, list[str]]:
        """Tell every schedd this agent knows that it takes no more jobs (retiring,
        draining, exiting): each drops the pending matches to our slots at once, so their
        jobs go back to the negotiator instead of waiting ``match_timeout``. Returns the
        jobs dropped per schedd name; a schedd that cannot be told is logged and skipped
        (its matches then expire)."""
        with self._lock:
            links = list(self.schedds.values())
        names = self.slots.poll_names()
        out: dict[str, list[str]] = {}
        for link in links:
            try:
                answer = link.client.call("POST", "/v1/startd/goodbye", {"startd": self.id, "slots": names},
                                          timeout=10.0, attempts=2)
            except (HttpError, TransportError, StartdError) as exc:
                self.logs.startd(f"cannot tell {link.name} that we take no more jobs: {exc}", severity="warning")
                continue
            dropped = answer.get("dropped") if isinstance(answer, dict) else None
            jobs = [str(j) for j in dropped] if isinstance(dropped, list) else []
            out[link.name] = jobs
            if jobs:
                self.logs.startd(f"{link.name} dropped {len(jobs)} pending match(es) to our slots: "
                                 f"{', '.join(jobs[:10])}")
        return out

    def _start_goodbye(self) -> None:
        with self._lock:
            if self._goodbye is not None:
                return
            self._goodbye = threading.Thread(target=self.say_goodbye, name="goodbye", daemon=True)
        self._goodbye.start()

    def run(self) -> int:
        """Run until the agent retires and its last job is done; the exit code."""
        self.execute_dir.mkdir(parents=True, exist_ok=True)
        self.logs.startd(
            f"gwms startd {VERSION} {self.config.name} (id {self.id}) starting: "
            f"{'1 partitionable slot' if self.config.partitionable else f'{self.config.static_slots} static slot(s)'}, "
            f"{self.config.total.cpus} cpus, {self.config.total.memory} MB, collector {self.config.collector}; "
            f"retire at {time.ctime(self.deadlines.retire_at)}, die at {time.ctime(self.deadlines.die_at)}",
            type="start",
        )
        self.watcher.start()
        for target, name in ((self._advertise_loop, "advertise"), (self._heartbeat_loop, "heartbeat")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        try:
            self._main_loop()
        finally:
            self._shutdown()
        return 0

    def _main_loop(self) -> None:
        while True:
            while self._signals:
                signum = self._signals.popleft()
                self.logs.startd(f"got signal {signal.Signals(signum).name}", type="signal")
            act = self.activity()
            verdict = decide(self.deadlines, self.config.lifetime, act)
            self._apply(verdict)
            if verdict.exit:
                self.logs.startd(f"exiting: {verdict.reason}", type="exit")
                return
            now = self.clock()
            if self._accepting and now >= self._next_schedd_refresh:
                if self.refresh_schedds():
                    self._schedd_backoff = 0.0
                    delay = self.config.schedd_refresh if self.schedds else min(2.0, self.config.schedd_refresh)
                else:  # the collector did not answer: try again, less and less often
                    self._schedd_backoff = min(max(self._schedd_backoff * 2, 2.0), max(self.config.schedd_refresh, 2.0))
                    delay = self._schedd_backoff
                self._next_schedd_refresh = self.clock() + delay
            wake_at = min(next_check(self.deadlines, self.config.lifetime, act), self._next_schedd_refresh)
            timeout = min(max(wake_at - self.clock(), 0.05), 5.0)
            self._wake.wait(timeout)
            self._wake.clear()

    def _shutdown(self) -> None:
        self._accepting = False
        self._start_goodbye()  # when the agent exits without retiring first
        with self._lock:
            links = list(self.schedds.values())
        deadline = time.monotonic() + (0 if self._fast else min(self.config.poll_wait + 2.0, 10.0))
        for link in links:
            link.active = False
            poller = link.poller
            if poller is not None:
                poller.join(max(deadline - time.monotonic(), 0))
        self._stopping.set()
        for link in links:
            link.poll_client.abort()
        goodbye = self._goodbye
        if goodbye is not None:
            goodbye.join(max(deadline - time.monotonic(), 5.0))
        with self._lock:
            runners = list(self.claims.values())
        for runner in runners:
            runner.stop(VACATED, "the startd is exiting")
            runner.thread.join(30)
        self._ads_changed.set()
        for t in self._threads:
            t.join(10)
        self.invalidate_all()
        self.watcher.stop()
        with self._lock:
            started, completed = self._jobs_started, self._jobs_completed
        self.logs.startd(f"startd {self.config.name} exited: {started} job(s) started, {completed} completed", type="stop")
        self.logs.close()
        shutil.rmtree(self.workdir / ".input-cache", ignore_errors=True)


def install_signal_handlers(agent: Agent) -> None:
    """SIGTERM/SIGINT: drain (a second one: vacate now); SIGQUIT: vacate now.

    The handlers take no lock: they set flags (the main loop logs the signal) and write a
    byte to a pipe, whose reader thread wakes the main loop. A handler that took a lock
    (a log file's, or the one inside ``threading.Event.set``) deadlocks when the main
    thread, or the same handler interrupted by a second signal, holds it: a glidein
    removed from Slurm gets SIGTERM twice at once (from slurmstepd and from the pilot)
    and hung that way until it was killed without its logs.
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)

    def waker() -> None:
        while True:
            try:
                data = os.read(read_fd, 64)
            except OSError:
                return
            if not data:
                return
            agent.wake()

    threading.Thread(target=waker, name="signal-waker", daemon=True).start()

    def poke() -> None:
        try:
            os.write(write_fd, b"\0")
        except OSError:  # the pipe is full: a wake-up is pending anyway
            pass

    def drain(signum: int, frame: Any) -> None:
        agent.request_shutdown(signum=signum, wake=False)
        poke()

    def fast(signum: int, frame: Any) -> None:
        agent.request_shutdown(fast=True, signum=signum, wake=False)
        poke()

    signal.signal(signal.SIGTERM, drain)
    signal.signal(signal.SIGINT, drain)
    signal.signal(signal.SIGQUIT, fast)


def run_agent(config: AgentConfig) -> int:
    """Run one agent in this process (signals handled) until it exits; its exit code."""
    agent = Agent(config)
    if threading.current_thread() is threading.main_thread():
        install_signal_handlers(agent)
    return agent.run()


def main(argv: list[str] | None = None) -> int:
    """The zipapp / ``python3 -m gwms.glidein.startd`` command line."""
    from gwms.glidein.config import build_config
    from gwms.glidein.options import OPTIONS, build_parser

    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(f"gwms-startd {VERSION}")
        return 0
    values = {opt.dest: getattr(args, opt.dest) for opt in OPTIONS}
    try:
        config = build_config(**values, echo=args.echo)
        return run_agent(config)
    except StartdError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


def main_exit() -> None:
    """Entry point of the zipapp: :func:`main`, then exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    main_exit()
