"""The schedd's endpoints for the negotiator and the startd agents (Pool II in docs/contracts.md).

Negotiator (scope NEGOTIATOR):

``POST /v1/negotiation/jobs``  ``{"significant": [attr, ...]}``
    The idle jobs that are neither matched nor claimed, grouped in autoclusters (the
    significant attributes are the job attributes slots read). Answer
    ``{"schedd", "max_jobs_running", "running", "pending", "usage": {submitter: cpus},
    "groups": [{"id", "owner", "submitter", "signature", "prio", "ad", "jobs": ["C.P"]}]}``.
``POST /v1/matches``  ``{"matches": [{"job": "C.P", "slot": NAME, "slot_ad": {...},
"request"?: {"Cpus", "Memory", "Disk", "Gpus"}}]}``
    Keep matches pending for ``match_timeout`` s. Answer ``{"accepted": n, "refused":
    [{"index", "job", "slot", "reason"}]}``.

Startd agent (scope ADVERTISE_STARTD; the caller's identity must be the slot ad's
``AuthenticatedIdentity``):

``POST /v1/startd/poll``  ``{"startd": ID, "slots": [NAME...], "wait": 20, "free"?: {NAME:
{"Cpus", "Memory", "Disk", "Gpus"}}}``
    Long poll: answers as soon as pending matches of those slots became claims (job set
    Running), else after ``wait`` s (at most 60). Answer ``{"claims": [{"claim_id", "slot",
    "job": {ad}, "request": {"Cpus", "Memory", "Disk", "Gpus"}}], "stopped": [claim ids],
    "claim_timeout": seconds}`` (renew claims well within ``claim_timeout``).
    Renews every claim of the agent. ``free`` (partitionable slots) keeps matches that do
    not fit pending.
``POST /v1/startd/goodbye``  ``{"startd": ID, "slots"?: [NAME...]}`` -> ``{"dropped": ["C.P"...]}``
    The agent takes no more jobs (retiring, draining, exiting): its pending matches are
    dropped at once (the jobs are free for the next negotiation instead of waiting
    ``match_timeout``) and new matches to its slots are refused. Its claims are untouched.
``POST /v1/claims/heartbeat``  ``{"claims": [ids]}`` -> ``{"renewed", "unknown", "stopped",
"claim_timeout"}``.
``GET /v1/claims/{id}/input[?job=C.P]``  the job's input sandbox (tar.gz; 204 if it has none).
``PUT /v1/claims/{id}/output[?job=C.P]``  the job's outputs (tar, gzip allowed) -> ``{"files"}``.
``POST /v1/claims/{id}/complete``  ``{"job"?, "exit_code", "exit_signal", "wall_seconds",
"cpu_seconds", "peak_memory_mb"}`` -> ``{"job", "next": {ad} | null, "request": {...} | null}``.
``POST /v1/claims/{id}/hold``  ``{"job"?, "reason", "code"?, "subcode"?}`` -> the claim stays, idle.
``POST /v1/claims/{id}/vacate``  ``{"job"?, "reason"?}`` -> the job goes back to idle, the claim ends.
``POST /v1/claims/{id}/release``  end an idle claim (409 while it runs a job).

``job`` (optional everywhere) names the job the agent means: a call for a job the claim
no longer runs (a retry after claim reuse) is refused with 409 instead of acting on the
next job. Unknown or expired claims are 404 (``claim_not_found``), another agent's 403.

``stopped`` lists claims whose job a user removed or held while it ran: the agent kills
it, sends no output, and releases the claim (or keeps it idle).
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from gwms.classads import autocluster_signature, significant_attributes, symmetric_match
from gwms.errors import GwmsError
from gwms.net import require_scopes
from gwms.net.auth import Identity
from gwms.pool import jobattrs as A
from gwms.pool.matchattrs import slot_reads
from gwms.pool.resources import Resources, carving, job_request, with_resources
from gwms.pool.schedd.autoclusters import AutoclusterCache, AutoclusterIndex, submitter_of
from gwms.pool.schedd.claims import Claim, ClaimBook, ClaimError, Offer, PendingMatch, job_key
from gwms.pool.schedd.queue import JobQueue
from gwms.pool.schedd.sandbox import Spool
from gwms.security import scopes

log = logging.getLogger("gwms.schedd")

#: The longest a poll waits, whatever it asks.
MAX_POLL_WAIT = 60.0
#: How many candidates claim reuse looks at before giving up.
REUSE_CANDIDATES = 64
#: Up to this many new or changed idle jobs are read one by one; more, in one scan.
FETCH_ONE_BY_ONE = 256
#: A ``free`` amount or a ``request`` is an object of these names (any case).
GWMS_STARTD_ID = "GwmsStartdId"


class BadClaimRequest(GwmsError):
    """A malformed request from the negotiator or a startd agent."""

    http_status = 400


def parse_job_id(text: Any) -> tuple[int, int]:
    """``"12.3"`` -> ``(12, 3)``; anything else is a :class:`BadClaimRequest`."""
    if isinstance(text, str) and "." in text:
        c, _, p = text.partition(".")
        if c.isdigit() and p.isdigit():
            return int(c), int(p)
    raise BadClaimRequest(f"{text!r} is not a job id (CLUSTER.PROC)")


def parse_offers(data: Any) -> list[Offer]:
    """The matches of a ``POST /v1/matches`` body, checked."""
    if not isinstance(data, dict) or not isinstance(data.get("matches"), list):
        raise BadClaimRequest("the body must be {\"matches\": [{\"job\", \"slot\", \"slot_ad\"}, ...]}")
    offers: list[Offer] = []
    for i, item in enumerate(data["matches"]):
        if not isinstance(item, dict):
            raise BadClaimRequest(f"match {i} is not an object")
        slot, slot_ad = item.get("slot"), item.get("slot_ad")
        if not isinstance(slot, str) or not slot:
            raise BadClaimRequest(f"match {i}: 'slot' must be the slot's Name")
        if not isinstance(slot_ad, dict):
            raise BadClaimRequest(f"match {i}: 'slot_ad' must be the slot's ad (an object)")
        request = item.get("request")
        if request is not None and not isinstance(request, dict):
            raise BadClaimRequest(f"match {i}: 'request' must be an object of resources")
        offers.append(Offer(parse_job_id(item.get("job")), slot, slot_ad,
                            Resources.from_ad(request) if request is not None else None))
    return offers


class PollBody(BaseModel):
    """``POST /v1/startd/poll``."""

    startd: str = Field(min_length=1)
    slots: list[str] = Field(default_factory=list)
    wait: float = Field(default=20.0, ge=0)
    free: dict[str, dict[str, Any]] | None = None


class GoodbyeBody(BaseModel):
    """``POST /v1/startd/goodbye``: agent ``startd`` takes no more jobs; ``slots`` are its
    slot names (needed only for slot ads without ``GwmsStartdId``)."""

    startd: str = Field(min_length=1)
    slots: list[str] = Field(default_factory=list)


class HeartbeatBody(BaseModel):
    """``POST /v1/claims/heartbeat``."""

    claims: list[str] = Field(default_factory=list)


class CompleteBody(BaseModel):
    """``POST /v1/claims/{id}/complete``: how the job ended (``job``: the job the agent
    means; a retried call for a job the claim no longer runs is refused with 409)."""

    job: str | None = None
    exit_code: int | None = None
    exit_signal: int | None = None
    wall_seconds: float = Field(default=0.0, ge=0)
    cpu_seconds: float = Field(default=0.0, ge=0)
    peak_memory_mb: float | None = Field(default=None, ge=0)


class HoldBody(BaseModel):
    """``POST /v1/claims/{id}/hold``."""

    job: str | None = None
    reason: str = Field(min_length=1)
    code: int = 0
    subcode: int = 0


class VacateBody(BaseModel):
    """``POST /v1/claims/{id}/vacate``."""

    job: str | None = None
    reason: str | None = None


def completion_attrs(body: CompleteBody, wall_before: float) -> tuple[int, dict[str, Any]]:
    """(ExitCode, the other attributes a completed job gets) from a complete request.

    A job killed by a signal has ExitBySignal true, ExitSignal, and ExitCode 128 + signal
    (what a shell reports). RemoteWallClockTime accumulates over the job's runs.
    """
    if body.exit_code is None and body.exit_signal is None:
        raise BadClaimRequest("a completion needs exit_code or exit_signal")
    by_signal = body.exit_signal is not None
    code = body.exit_code if body.exit_code is not None else 128 + int(body.exit_signal or 0)
    attrs: dict[str, Any] = {
        A.EXIT_BY_SIGNAL: by_signal,
        A.REMOTE_WALL_CLOCK_TIME: round(wall_before + body.wall_seconds, 3),
        A.REMOTE_USER_CPU: round(body.cpu_seconds, 3),
    }
    if by_signal:
        attrs[A.EXIT_SIGNAL] = int(body.exit_signal or 0)
    if body.peak_memory_mb is not None:
        attrs[A.MEMORY_USAGE] = int(-(-body.peak_memory_mb // 1))
    return code, attrs


def _number(value: Any) -> float:
    return float(value) if value.__class__ in (int, float) else 0.0


class ClaimService:
    """Matches, claims and their jobs: the claim book joined to the job queue and spool.

    Methods that touch SQLite or the spool are blocking (run them in a thread); the book
    is guarded by one lock held only for in-memory work.
    """

    def __init__(self, queue: JobQueue, spool: Spool, book: ClaimBook, *, name: str) -> None:
        """Serve claims for ``queue``/``spool`` with ``book``; ``name`` is the schedd's."""
        self.queue = queue
        self.spool = spool
        self.book = book
        self.name = name
        self.lock = threading.Lock()
        self.index = AutoclusterIndex()
        self.autoclusters = AutoclusterCache()
        self._listing_lock = threading.Lock()
        self._waiters: dict[str, set[asyncio.Event]] = {}
        #: called (from any thread) when jobs started or stopped, so the schedd ad is re-sent
        self.on_change: Callable[[], None] = lambda: None

    # ------------------------------------------------------------------ negotiator

    def _fetch(self, ids: Sequence[tuple[int, int]]) -> Iterable[Mapping[str, Any]]:
        if len(ids) > FETCH_ONE_BY_ONE:
            return self.queue.iter_query(status=A.IDLE)
        return (ad for ad in (self.queue.get(c, p) for c, p in ids) if ad is not None)

    def listing(self, significant: Iterable[str]) -> dict[str, Any]:
        """Idle jobs not matched or claimed, in autoclusters (blocking)."""
        with self.lock:
            skip = self.book.booked_jobs()
        rows = self.queue.iter_query(projection=[A.CLUSTER_ID, A.PROC_ID, A.ENTERED_CURRENT_STATUS], status=A.IDLE)
        idle = (((r[A.CLUSTER_ID], r[A.PROC_ID]), r.get(A.ENTERED_CURRENT_STATUS)) for r in rows)
        with self._listing_lock:
            groups = self.autoclusters.groups(idle, self._fetch, significant, skip=skip)
        with self.lock:
            self.index.replace(groups)
            usage = self.book.usage_by_submitter()
            running = self.book.running()
            pending = self.book.pending_count()
            capacity = self.book.capacity
            taken, carved = self.book.slots_in_use()
        return {
            "schedd": self.name,
            "max_jobs_running": capacity,
            "running": running,
            "pending": pending,
            "usage": usage,
            "taken_slots": sorted(taken),
            "carved": {name: r.as_ad() for name, r in carved.items()},
            "groups": [g.as_json() for g in groups],
        }

    def offer(self, offers: list[Offer]) -> dict[str, Any]:
        """Keep the negotiator's matches pending and wake the agents polling for their slots."""
        with self.lock:
            reasons = self.book.offer(offers)
        refused = []
        woken: set[str] = set()
        for i, (offer, reason) in enumerate(zip(offers, reasons)):
            if reason is None:
                woken.add(offer.slot)
            else:
                refused.append({"index": i, "job": job_key(offer.job), "slot": offer.slot, "reason": reason})
        for slot in woken:
            for event in self._waiters.get(slot, ()):
                event.set()
        return {"accepted": len(offers) - len(refused), "refused": refused}

    # ------------------------------------------------------------------ polling

    def convert(
        self, identity: str, startd: str, slots: list[str], free: Mapping[str, Resources] | None
    ) -> list[dict[str, Any]]:
        """Turn the pending matches this agent may claim into claims with running jobs (blocking)."""
        with self.lock:
            taken = self.book.take(identity, startd, slots, free=free)
        out = []
        for match in taken:
            claim = self._start(match, identity, startd)
            if claim is not None:
                out.append(claim)
        if out:
            self.on_change()
        return out

    def _start(self, match: PendingMatch, identity: str, startd: str) -> dict[str, Any] | None:
        offer = match.offer
        cluster, proc = offer.job
        with self.lock:
            claim_id = self.book.new_claim_id()
        try:
            result = self.queue.start(cluster, proc, remote_host=offer.slot, claim_id=claim_id,
                                      attrs={GWMS_STARTD_ID: startd})
        except Exception:
            with self.lock:
                self.book.abandon(match)
            raise
        ad = self.queue.get(cluster, proc) if result.ok else None
        if ad is None:
            log.info("match of job %s to %s dropped: %s", job_key(offer.job), offer.slot, result.error)
            with self.lock:
                self.book.abandon(match)
            return None
        slot_ad = offer.slot_ad
        request = job_request(ad, slot_ad)
        if offer.partitionable:
            request = carving(request)
            slot_ad = with_resources(slot_ad, request)  # the dynamic slot the job runs in
        attrs = significant_attributes(ad, slot_reads(offer.slot_ad))
        with self.lock:
            claim = self.book.open_claim(
                match, claim_id=claim_id, startd=startd, identity=identity, request=request,
                submitter=submitter_of(ad), owner=str(ad.get(A.OWNER, "")),
                wall_before=_number(ad.get(A.REMOTE_WALL_CLOCK_TIME)), slot_ad=slot_ad,
                signature=autocluster_signature(ad, attrs), signature_attrs=attrs,
            )
        log.info("claim %s: job %s on %s for %s", claim.id[:8], job_key(offer.job), offer.slot, identity)
        return {"claim_id": claim.id, "slot": claim.slot, "job": ad, "request": request.as_ad()}

    async def poll(self, who: Identity, body: PollBody) -> dict[str, Any]:
        """The long poll: claims as soon as there are some, else nothing after ``wait`` s."""
        free = {name: Resources.from_ad(v) for name, v in body.free.items()} if body.free else None
        deadline = time.monotonic() + min(body.wait, MAX_POLL_WAIT)
        event = asyncio.Event()
        for slot in body.slots:
            self._waiters.setdefault(slot, set()).add(event)
        try:
            while True:
                event.clear()
                with self.lock:
                    self.book.renew_startd(who.name, body.startd)
                claims = await asyncio.to_thread(self.convert, who.name, body.startd, body.slots, free) if body.slots else []
                left = deadline - time.monotonic()
                if claims or left <= 0:
                    break
                try:
                    await asyncio.wait_for(event.wait(), left)
                except asyncio.TimeoutError:
                    pass
        finally:
            for slot in body.slots:
                waiting = self._waiters.get(slot)
                if waiting is not None:
                    waiting.discard(event)
                    if not waiting:
                        del self._waiters[slot]
        with self.lock:
            stopped = [c.id for c in self.book.claims() if c.identity == who.name and c.startd == body.startd and c.stopped]
            for claim_id in stopped:
                self.book.claim(claim_id).stopped = False
        return {"claims": claims, "stopped": stopped, "claim_timeout": self.book.claim_timeout}

    def goodbye(self, who: Identity, body: GoodbyeBody) -> dict[str, Any]:
        """The agent stops taking jobs: drop its pending matches, refuse new ones to its slots."""
        with self.lock:
            gone = self.book.goodbye(who.name, body.startd, body.slots)
        dropped = [job_key(pm.offer.job) for pm in gone]
        log.info("startd %s (%s) takes no more jobs: %d pending match(es) dropped%s", body.startd[:12],
                 who.name, len(dropped), f" ({', '.join(dropped[:10])})" if dropped else "")
        if dropped:
            self.on_change()
        return {"dropped": dropped}

    def heartbeat(self, who: Identity, claim_ids: list[str]) -> dict[str, Any]:
        """Renew claims."""
        with self.lock:
            r = self.book.renew(who.name, claim_ids)
        return {"renewed": r.renewed, "unknown": r.unknown, "stopped": r.stopped,
                "claim_timeout": self.book.claim_timeout}

    # ------------------------------------------------------------------ one claim

    def _busy_claim(self, who: Identity, claim_id: str, expected: str | None = None) -> tuple[Claim, tuple[int, int]]:
        with self.lock:
            claim = self.book.claim(claim_id, who.name)
            claim.renewed = self.book.now()
            job = claim.job
        if job is None:
            raise ClaimError(f"claim {claim_id!r} has no job (it ended, or a user removed or held it)")
        if expected is not None and expected != job_key(job):
            raise ClaimError(f"claim {claim_id!r} runs job {job_key(job)}, not {expected}")
        return claim, job

    def input_archive(self, who: Identity, claim_id: str, job: str | None = None) -> bytes:
        """The input sandbox of the claim's job (blocking); empty when the cluster has none."""
        _claim, (cluster, _proc) = self._busy_claim(who, claim_id, job)
        if not self.spool.input_dir(cluster).exists():
            return b""
        return self.spool.input_archive(cluster)

    def store_output(self, who: Identity, claim_id: str, body: bytes, job: str | None = None) -> list[str]:
        """Keep the outputs of the claim's job (blocking)."""
        _claim, (cluster, proc) = self._busy_claim(who, claim_id, job)
        return self.spool.store_output(cluster, proc, io.BytesIO(body))

    def complete(self, who: Identity, claim_id: str, body: CompleteBody) -> dict[str, Any]:
        """Record the job's end, then hand the claim the next job of its group, if any."""
        claim, job = self._busy_claim(who, claim_id, body.job)
        code, attrs = completion_attrs(body, claim.wall_before)
        result = self.queue.complete(job[0], job[1], exit_code=code, attrs=attrs)
        with self.lock:
            self.book.finish_job(claim_id)
        if not result.ok:
            raise ClaimError(f"job {job_key(job)} could not be completed: {result.error}")
        log.info("claim %s: job %s completed (exit %s)", claim_id[:8], job_key(job), code)
        self.on_change()
        found = self._next_job(claim, job)
        if found is None:
            return {"job": job_key(job), "next": None, "request": None}
        ad, request = found
        return {"job": job_key(job), "next": ad, "request": request.as_ad()}

    def _candidates(self, claim: Claim, finished: tuple[int, int]) -> Iterator[tuple[int, int]]:
        group = self.index.group_of(finished)
        if group is not None:
            yield from self.index.candidates(group)
        for ad in self.queue.iter_query(projection=[A.CLUSTER_ID, A.PROC_ID], owner=claim.owner,
                                        status=A.IDLE, limit=REUSE_CANDIDATES):
            yield ad[A.CLUSTER_ID], ad[A.PROC_ID]

    def _next_job(self, claim: Claim, finished: tuple[int, int]) -> tuple[dict[str, Any], Resources] | None:
        """Claim reuse: the next idle job of the same owner and autocluster that still
        matches the slot (and fits a partitionable slot's carved share)."""
        tried = 0
        for jid in self._candidates(claim, finished):
            with self.lock:
                if self.book.booked(jid):
                    continue
            tried += 1
            if tried > REUSE_CANDIDATES:
                return None
            ad = self.queue.get(*jid)
            if ad is None or ad.get(A.JOB_STATUS) != A.IDLE or ad.get(A.OWNER) != claim.owner:
                continue
            if autocluster_signature(ad, claim.signature_attrs) != claim.signature:
                continue
            if not symmetric_match(ad, claim.slot_ad):
                continue
            request = job_request(ad, claim.slot_ad)
            if claim.partitionable:
                request = carving(request)
                if not request.fits_in(claim.request):
                    continue
            with self.lock:
                if not self.book.reserve_next(claim.id, jid):
                    continue
            result = self.queue.start(jid[0], jid[1], remote_host=claim.slot, claim_id=claim.id,
                                      attrs={GWMS_STARTD_ID: claim.startd})
            if not result.ok:
                with self.lock:
                    self.book.unreserve(claim.id)
                continue
            started = self.queue.get(*jid) or ad
            with self.lock:
                self.book.assign(claim.id, request=claim.request if claim.partitionable else request,
                                 submitter=submitter_of(started), owner=claim.owner,
                                 wall_before=_number(started.get(A.REMOTE_WALL_CLOCK_TIME)))
            log.info("claim %s reused: job %s on %s", claim.id[:8], job_key(jid), claim.slot)
            return started, request
        return None

    def hold(self, who: Identity, claim_id: str, body: HoldBody) -> dict[str, Any]:
        """Put the claim's job on hold (the start failed, or it broke a limit); the claim stays idle."""
        _claim, job = self._busy_claim(who, claim_id, body.job)
        result = self.queue.hold([job], body.reason, code=body.code, subcode=body.subcode)[0]
        with self.lock:
            self.book.finish_job(claim_id)
        if not result.ok:
            raise ClaimError(f"job {job_key(job)} could not be held: {result.error}")
        log.info("claim %s: job %s held: %s", claim_id[:8], job_key(job), body.reason)
        self.on_change()
        return {"job": job_key(job), "held": True}

    def vacate(self, who: Identity, claim_id: str, body: VacateBody) -> dict[str, Any]:
        """Put the claim's job (if any) back to idle and end the claim."""
        with self.lock:
            claim = self.book.claim(claim_id, who.name)
            job = claim.job
            if body.job is not None and job is not None and job_key(job) != body.job:
                raise ClaimError(f"claim {claim_id!r} runs job {job_key(job)}, not {body.job}")
            self.book.release(claim_id)
        if job is not None:
            reason = body.reason or f"vacated by the startd on {claim.slot}"
            self.queue.evict([job], reason=reason)
            log.info("claim %s: job %s vacated: %s", claim_id[:8], job_key(job), reason)
            self.on_change()
        return {"job": job_key(job) if job else None, "vacated": job is not None}

    def release(self, who: Identity, claim_id: str) -> dict[str, Any]:
        """End an idle claim."""
        with self.lock:
            claim = self.book.claim(claim_id, who.name)
            if claim.job is not None:
                raise ClaimError(
                    f"claim {claim_id!r} runs job {job_key(claim.job)}; complete, hold or vacate it first"
                )
            self.book.release(claim_id)
        return {"released": True}

    def claims_view(self) -> list[dict[str, Any]]:
        """Every claim and pending match, for people (``GET /v1/claims``)."""
        now = self.book.now()
        with self.lock:
            return [
                {"claim_id": c.id[:8] + "...", "slot": c.slot, "startd": c.startd, "identity": c.identity,
                 "job": job_key(c.job) if c.job else None, "jobs_run": c.jobs_run,
                 "idle_seconds": round(now - c.renewed, 3), "request": c.request.as_ad()}
                for c in self.book.claims()
            ]

    # ------------------------------------------------------------------ upkeep

    def jobs_edited(self, ids: Iterable[tuple[int, int]]) -> None:
        """Jobs whose attributes a user changed: classify them again at the next listing."""
        with self._listing_lock:
            self.autoclusters.forget(ids)

    def jobs_left_running(self, ids: Iterable[tuple[int, int]]) -> None:
        """A user removed or held these jobs: tell their startds (``stopped``), drop their matches."""
        with self.lock:
            self.book.stop_jobs(ids)

    def expire(self) -> int:
        """Drop old matches and dead claims; put the dead claims' jobs back to idle (blocking)."""
        with self.lock:
            expired = self.book.expire()
        jobs = [(c, c.job) for c in expired.claims if c.job is not None]
        for claim, job in jobs:
            assert job is not None
            reason = (f"claim on {claim.slot} was not renewed for {self.book.claim_timeout:g} s "
                      f"(startd {claim.startd} lost)")
            self.queue.evict([job], reason=reason)
            log.warning("job %s back to idle: %s", job_key(job), reason)
        return len(jobs)


def install_routes(app: FastAPI, service: ClaimService) -> None:
    """Add the negotiator's and the startd agents' endpoints to the schedd app."""
    negotiator = require_scopes(scopes.NEGOTIATOR)
    startd = require_scopes(scopes.ADVERTISE_STARTD)
    reader = require_scopes(scopes.READ)

    async def body_json(request: Request) -> Any:
        raw = await request.body()
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadClaimRequest(f"the request body is not JSON: {exc}") from None

    @app.post("/v1/negotiation/jobs", tags=["negotiation"], summary="Idle jobs in autoclusters, for the negotiator")
    async def negotiation_jobs(request: Request, who: Identity = Depends(negotiator)) -> Response:
        data = await body_json(request) if await request.body() else {}
        significant = data.get("significant", []) if isinstance(data, dict) else None
        if not isinstance(significant, list) or not all(isinstance(s, str) for s in significant):
            raise BadClaimRequest("'significant' must be a list of attribute names")
        answer = await asyncio.to_thread(service.listing, significant)
        return Response(orjson.dumps(answer), media_type="application/json")

    @app.post("/v1/matches", tags=["negotiation"], summary="Matches from the negotiator (kept pending)")
    async def matches(request: Request, who: Identity = Depends(negotiator)) -> dict[str, Any]:
        return service.offer(parse_offers(await body_json(request)))

    @app.post("/v1/startd/poll", tags=["startd"], summary="Long poll: claim this agent's pending matches")
    async def poll(body: PollBody, who: Identity = Depends(startd)) -> Response:
        answer = await service.poll(who, body)
        return Response(orjson.dumps(answer), media_type="application/json")

    @app.post("/v1/startd/goodbye", tags=["startd"], summary="The agent takes no more jobs: drop its pending matches")
    def goodbye(body: GoodbyeBody, who: Identity = Depends(startd)) -> dict[str, Any]:
        return service.goodbye(who, body)

    @app.post("/v1/claims/heartbeat", tags=["startd"], summary="Renew claims")
    def heartbeat(body: HeartbeatBody, who: Identity = Depends(startd)) -> dict[str, Any]:
        return service.heartbeat(who, body.claims)

    @app.get("/v1/claims", tags=["startd"], summary="Claims of this schedd")
    def list_claims(who: Identity = Depends(reader)) -> dict[str, Any]:
        return {"claims": service.claims_view(), "pending": service.book.pending_count()}

    @app.get("/v1/claims/{claim_id}/input", tags=["startd"], summary="The claim's job's input sandbox (tar.gz)")
    async def claim_input(claim_id: str, job: str | None = None, who: Identity = Depends(startd)) -> Response:
        blob = await asyncio.to_thread(service.input_archive, who, claim_id, job)
        if not blob:
            return Response(status_code=204)
        return Response(blob, media_type="application/gzip")

    @app.put("/v1/claims/{claim_id}/output", tags=["startd"], summary="The claim's job's outputs (tar)")
    async def claim_output(claim_id: str, request: Request, job: str | None = None,
                           who: Identity = Depends(startd)) -> dict[str, Any]:
        body = await request.body()
        files = await asyncio.to_thread(service.store_output, who, claim_id, body, job)
        return {"files": files, "bytes": len(body)}

    @app.post("/v1/claims/{claim_id}/complete", tags=["startd"], summary="The job ended; maybe the next one")
    async def claim_complete(claim_id: str, body: CompleteBody, who: Identity = Depends(startd)) -> Response:
        answer = await asyncio.to_thread(service.complete, who, claim_id, body)
        return Response(orjson.dumps(answer), media_type="application/json")

    @app.post("/v1/claims/{claim_id}/hold", tags=["startd"], summary="Put the claim's job on hold")
    async def claim_hold(claim_id: str, body: HoldBody, who: Identity = Depends(startd)) -> dict[str, Any]:
        return await asyncio.to_thread(service.hold, who, claim_id, body)

    @app.post("/v1/claims/{claim_id}/vacate", tags=["startd"], summary="Job back to idle; end the claim")
    async def claim_vacate(claim_id: str, body: VacateBody | None = None,
                           who: Identity = Depends(startd)) -> dict[str, Any]:
        return await asyncio.to_thread(service.vacate, who, claim_id, body or VacateBody())

    @app.post("/v1/claims/{claim_id}/release", tags=["startd"], summary="End an idle claim")
    def claim_release(claim_id: str, who: Identity = Depends(startd)) -> dict[str, Any]:
        return service.release(who, claim_id)
