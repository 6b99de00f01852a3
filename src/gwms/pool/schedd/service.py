"""The schedd service: the job queue over HTTP.

Submission works like ``condor_submit``: the client parses the submit file, asks the
schedd for a new cluster id (``POST /v1/clusters``), expands the jobs with it, uploads
the input sandbox (``PUT /v1/clusters/{id}/input``, a tar archive) and sends the jobs
(``POST /v1/clusters/{id}/jobs``, the attributes common to every proc once plus each
proc's own). The schedd stamps ``Owner`` from the caller's verified token, and stores the
cluster in one transaction: all of it, or nothing.

Users act only on their own jobs; a token with ADMINISTRATOR acts on all. Anyone with
READ may list the queue (as ``condor_q -all``), as in HTCondor.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from gwms.errors import GwmsError
from gwms.net import create_app, require_scopes
from gwms.net.auth import Identity
from gwms.net.dashboard import install_dashboard
from gwms.pool import jobattrs as A
from gwms.pool.schedd.claims import DEFAULT_CLAIM_TIMEOUT, DEFAULT_MATCH_TIMEOUT, ClaimBook
from gwms.pool.schedd.dashboard import schedd_dashboard, schedd_families
from gwms.pool.schedd.inspect import install_inspection_routes
from gwms.pool.schedd.queue import JobQueue
from gwms.pool.schedd.sandbox import Spool
from gwms.pool.schedd.startd_api import ClaimService, install_routes
from gwms.security import scopes
from gwms.security.tokens import TokenVerifier

log = logging.getLogger("gwms.schedd")

#: attributes the schedd sets itself; a client cannot choose them
SCHEDD_OWNED = {"clusterid", "procid", "owner", "jobstatus", "qdate", "enteredcurrentstatus", "globaljobid"}


class ScheddRequestError(GwmsError):
    """A request the schedd refuses (bad ids, limits, someone else's jobs)."""

    http_status = 400


class Forbidden(ScheddRequestError):
    http_status = 403


class NotFound(ScheddRequestError):
    http_status = 404


class LimitExceeded(ScheddRequestError):
    http_status = 409


@dataclass
class ScheddLimits:
    """Limits of one schedd (HTCondor names where there is one)."""

    max_jobs_running: int = 10_000          # MAX_JOBS_RUNNING
    max_jobs_per_owner: int = 1_000_000     # MAX_JOBS_PER_OWNER (queued, any state)
    max_jobs_per_submission: int = 1_000_000  # MAX_JOBS_PER_SUBMISSION
    max_idle_per_owner: int = 1_000_000     # idle jobs an owner may have at once
    max_input_bytes: int = 1 << 30          # a cluster's input sandbox
    max_output_bytes: int = 1 << 30         # a job's output sandbox


@dataclass
class ScheddState:
    """What the service keeps besides the queue: pending cluster reservations."""

    queue: JobQueue
    spool: Spool
    name: str
    limits: ScheddLimits
    reservations: dict[int, tuple[str, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    reservation_ttl: float = 3600.0

    def reserve(self, owner: str, now: float) -> int:
        cluster = self.queue.new_cluster_id()
        with self.lock:
            self.reservations = {c: v for c, v in self.reservations.items() if now - v[1] < self.reservation_ttl}
            self.reservations[cluster] = (owner, now)
        return cluster

    def check_reservation(self, cluster: int, who: Identity) -> None:
        with self.lock:
            held = self.reservations.get(cluster)
        if held is None:
            raise NotFound(f"cluster {cluster} was not reserved (or its reservation expired); submit again")
        if held[0] != who.name:
            raise Forbidden(f"cluster {cluster} was reserved by another user")

    def release_reservation(self, cluster: int) -> None:
        with self.lock:
            self.reservations.pop(cluster, None)


# --------------------------------------------------------------------------- pure helpers


def parse_job_ids(ids: Iterable[str]) -> tuple[list[tuple[int, int]], list[int]]:
    """Split ``["12", "12.3"]`` into procs ``[(12, 3)]`` and whole clusters ``[12]``."""
    procs: list[tuple[int, int]] = []
    clusters: list[int] = []
    for raw in ids:
        text = str(raw).strip()
        try:
            if "." in text:
                c, p = text.split(".", 1)
                procs.append((int(c), int(p)))
            else:
                clusters.append(int(text))
        except ValueError:
            raise ScheddRequestError(f"{raw!r} is not a job id (CLUSTER or CLUSTER.PROC)") from None
    for c, p in procs:
        if c < 1 or p < 0:
            raise ScheddRequestError(f"{c}.{p} is not a job id")
    for c in clusters:
        if c < 1:
            raise ScheddRequestError(f"{c} is not a cluster id")
    return procs, clusters


def merge_procs(common: Mapping[str, Any], procs: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Full job ads from the attributes common to a cluster and each proc's own."""
    out = []
    lowered_common = {k.lower(): k for k in common}
    for proc in procs:
        ad = dict(common)
        for key, value in proc.items():
            old = lowered_common.get(key.lower())
            if old is not None and old != key:
                ad.pop(old, None)
            ad[key] = value
        out.append(ad)
    return out


def strip_schedd_owned(ad: dict[str, Any]) -> dict[str, Any]:
    """Drop the attributes only the schedd may set (the client cannot forge them)."""
    return {k: v for k, v in ad.items() if k.lower() not in SCHEDD_OWNED}


# --------------------------------------------------------------------------- API models


class JobsBody(BaseModel):
    common: dict[str, Any] = Field(default_factory=dict)
    procs: list[dict[str, Any]] = Field(min_length=1)


class ActionBody(BaseModel):
    action: str = Field(pattern="^(remove|hold|release)$")
    ids: list[str] = Field(default_factory=list)
    constraint: str | None = None
    reason: str | None = None


class EditBody(BaseModel):
    ids: list[str] = Field(default_factory=list)
    constraint: str | None = None
    attr: str
    value: Any


class QueryBody(BaseModel):
    constraint: str | None = None
    projection: list[str] | None = None
    owner: str | None = None
    limit: int | None = Field(default=None, ge=1)


def parse_jobs_body(raw: bytes) -> JobsBody:
    """Read a submit body fast (orjson) and check its shape without pydantic per job."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ScheddRequestError(f"the request body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ScheddRequestError("the request body must be an object with 'common' and 'procs'")
    common = data.get("common", {})
    procs = data.get("procs")
    if not isinstance(common, dict):
        raise ScheddRequestError("'common' must be an object (the attributes every job shares)")
    if not isinstance(procs, list) or not procs:
        raise ScheddRequestError("'procs' must be a non-empty list of objects, one per job")
    if not all(isinstance(p, dict) for p in procs):
        raise ScheddRequestError("every entry of 'procs' must be an object")
    return JobsBody.model_construct(common=common, procs=procs)


# --------------------------------------------------------------------------- the app


def create_schedd_app(
    queue: JobQueue,
    spool: Spool,
    verifier: TokenVerifier | None,
    *,
    name: str,
    limits: ScheddLimits | None = None,
    advertiser: Callable[[dict[str, Any]], None] | None = None,
    advertise_interval: float = 60.0,
    clock: Callable[[], float] = time.time,
    match_timeout: float = DEFAULT_MATCH_TIMEOUT,
    claim_timeout: float = DEFAULT_CLAIM_TIMEOUT,
    claim_clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """Make the schedd app over ``queue`` and ``spool``.

    ``advertiser`` is called with the schedd ad (``MyType = "Scheduler"``) at start and every
    ``advertise_interval`` seconds, and after changes to the counts; typically it sends the
    ad to the collector. Matches from the negotiator stay pending ``match_timeout`` seconds;
    a claim not renewed for ``claim_timeout`` seconds is dropped and its job goes back to
    idle (see :mod:`gwms.pool.schedd.startd_api`).
    """
    limits = limits or ScheddLimits()
    state = ScheddState(queue=queue, spool=spool, name=name, limits=limits)
    wake = asyncio.Event()
    book = ClaimBook(match_timeout=match_timeout, claim_timeout=claim_timeout,
                     capacity=limits.max_jobs_running, clock=claim_clock)
    claims = ClaimService(queue, spool, book, name=name)
    expiry_tick = max(0.05, min(1.0, match_timeout / 4, claim_timeout / 4))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        app.state.loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(_expiry_loop())]
        if advertiser:
            tasks.append(asyncio.create_task(_advertise_loop()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _expiry_loop() -> None:
        while True:
            await asyncio.sleep(expiry_tick)
            try:
                if await asyncio.to_thread(claims.expire):
                    changed()
            except Exception:  # keep expiring; a bug here must not stop the schedd
                log.exception("claim expiry failed")

    async def _advertise_loop() -> None:
        assert advertiser is not None
        while True:
            try:
                ad = schedd_ad(state, clock())
                await asyncio.to_thread(advertiser, ad)
            except Exception as exc:  # the collector may be down: try again next time
                log.warning("could not advertise the schedd ad: %s", exc)
            wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), advertise_interval)
            await asyncio.sleep(0.2)  # coalesce bursts of changes

    def changed() -> None:
        if advertiser:
            loop_wake()

    def loop_wake() -> None:
        try:
            asyncio.get_running_loop().call_soon(wake.set)
        except RuntimeError:  # called from a worker thread
            app.state.loop.call_soon_threadsafe(wake.set)

    app = create_app(
        service="schedd",
        verifier=verifier,
        max_body_bytes=max(256 << 20, limits.max_input_bytes, limits.max_output_bytes),
        lifespan=lifespan,
    )
    app.state.schedd = state
    install_dashboard(app, lambda: schedd_dashboard(state), schedd_families)
    app.state.claims = claims
    claims.on_change = changed
    install_routes(app, claims)
    install_inspection_routes(app, queue, claims)  # gwms job ps|top|ls|cat|tail|bt

    reader = require_scopes(scopes.READ)
    writer = require_scopes(scopes.WRITE)

    def is_admin(who: Identity) -> bool:
        return scopes.ADMINISTRATOR in who.scopes

    def owned_ids(who: Identity, ids: list[str], constraint: str | None) -> list[tuple[int, int]]:
        """The (cluster, proc) of queued jobs the request names that ``who`` may act on."""
        procs, clusters = parse_job_ids(ids)
        if not procs and not clusters and not constraint:
            raise ScheddRequestError("name jobs by id or by -constraint")
        owner = None if is_admin(who) else who.name
        selected: list[tuple[int, int]] = []
        seen: set[tuple[int, int]] = set()

        def add(cid: int, pid: int) -> None:
            if (cid, pid) not in seen:
                seen.add((cid, pid))
                selected.append((cid, pid))

        for c, p in procs:
            ad = queue.get(c, p)
            if ad is None:
                raise NotFound(f"job {c}.{p} not found")
            if owner is not None and ad.get("Owner") != owner:
                raise Forbidden(f"job {c}.{p} belongs to {ad.get('Owner')}; you are {who.name}")
            add(c, p)
        for c in clusters:
            rows = queue.query(f"ClusterId == {c}", ["ClusterId", "ProcId", "Owner"])
            if not rows:
                raise NotFound(f"cluster {c} has no jobs in the queue")
            others = [r for r in rows if owner is not None and r.get("Owner") != owner]
            if others:
                raise Forbidden(f"cluster {c} belongs to {others[0].get('Owner')}; you are {who.name}")
            for r in rows:
                add(r["ClusterId"], r["ProcId"])
        if constraint:
            for r in queue.query(constraint, ["ClusterId", "ProcId"], owner=owner):
                add(r["ClusterId"], r["ProcId"])
        return selected

    @app.get("/v1/whoami", tags=["query"], summary="The identity the schedd sees for this token")
    def whoami(who: Identity = Depends(reader)) -> dict[str, Any]:
        return {"name": who.name, "scopes": sorted(who.scopes), "administrator": is_admin(who)}

    # -- submit --------------------------------------------------------------------------
    @app.post("/v1/clusters", tags=["submit"], summary="Reserve a new cluster id")
    def new_cluster(who: Identity = Depends(writer)) -> dict[str, Any]:
        cluster = state.reserve(who.name, clock())
        return {"cluster_id": cluster, "owner": who.name, "schedd": state.name}

    @app.put("/v1/clusters/{cluster}/input", tags=["submit"], summary="Upload a cluster's input sandbox (tar)")
    async def upload_input(cluster: int, request: Request, who: Identity = Depends(writer)) -> dict[str, Any]:
        state.check_reservation(cluster, who)
        body = await request.body()
        files = await asyncio.to_thread(spool.store_input, cluster, io.BytesIO(body))
        return {"cluster_id": cluster, "files": files, "bytes": len(body)}

    @app.post(
        "/v1/clusters/{cluster}/jobs", tags=["submit"], summary="Queue the jobs of a reserved cluster",
        openapi_extra={"requestBody": {"content": {"application/json": {"schema": JobsBody.model_json_schema()}}}},
    )
    async def submit_jobs(cluster: int, request: Request, who: Identity = Depends(writer)) -> dict[str, Any]:
        body = parse_jobs_body(await request.body())
        return await asyncio.to_thread(_submit, cluster, body, who)

    def _submit(cluster: int, body: JobsBody, who: Identity) -> dict[str, Any]:
        state.check_reservation(cluster, who)
        n = len(body.procs)
        if n > limits.max_jobs_per_submission:
            raise LimitExceeded(
                f"{n} jobs in one submission; this schedd takes at most {limits.max_jobs_per_submission}"
            )
        counts = queue.counts_by_status(owner=who.name)
        queued = sum(counts.values())
        if queued + n > limits.max_jobs_per_owner:
            raise LimitExceeded(
                f"{who.name} has {queued} jobs queued; {n} more would pass the limit of {limits.max_jobs_per_owner}"
            )
        idle = counts.get(A.IDLE, 0)
        if idle + n > limits.max_idle_per_owner:
            raise LimitExceeded(
                f"{who.name} has {idle} idle jobs; {n} more would pass the limit of {limits.max_idle_per_owner}"
            )
        common = strip_schedd_owned(body.common)
        if (state.spool.input_dir(cluster)).exists():
            common["GwmsSpooledInput"] = True
        jobs = [strip_schedd_owned(ad) for ad in merge_procs(common, body.procs)]
        now = clock()
        for proc, ad in enumerate(jobs):
            ad["GlobalJobId"] = f"{state.name}#{cluster}.{proc}#{int(now)}"
        queue.submit(jobs, who.name, cluster_id=cluster)
        state.release_reservation(cluster)
        changed()
        return {"cluster_id": cluster, "count": n, "owner": who.name}

    # -- queries -------------------------------------------------------------------------
    @app.get("/v1/jobs", tags=["query"], summary="Queued jobs (condor_q)")
    def list_jobs(
        constraint: str | None = None,
        projection: str | None = None,
        owner: str | None = None,
        limit: int | None = None,
        who: Identity = Depends(reader),
    ) -> Response:
        proj = [p for p in projection.split(",") if p] if projection else None
        return _json_rows(queue.iter_query_json(constraint, proj, owner, limit), "jobs")

    @app.post("/v1/jobs/query", tags=["query"], summary="Queued jobs, with a long constraint in the body")
    def query_jobs(body: QueryBody, who: Identity = Depends(reader)) -> Response:
        return _json_rows(queue.iter_query_json(body.constraint, body.projection, body.owner, body.limit), "jobs")

    @app.get("/v1/jobs/{cluster}.{proc}", tags=["query"], summary="One job's ad (queue or history)")
    def get_job(cluster: int, proc: int, who: Identity = Depends(reader)) -> dict[str, Any]:
        ad = queue.get(cluster, proc)
        if ad is None:
            raise NotFound(f"job {cluster}.{proc} not found")
        return ad

    @app.get("/v1/jobs/{cluster}.{proc}/events", tags=["query"], summary="A job's event log")
    def job_events(cluster: int, proc: int, who: Identity = Depends(reader)) -> dict[str, Any]:
        if queue.get(cluster, proc) is None:
            raise NotFound(f"job {cluster}.{proc} not found")
        return {"events": [e.as_dict() for e in queue.events(cluster, proc)]}

    @app.get("/v1/history", tags=["query"], summary="Completed and removed jobs (condor_history)")
    def history(
        constraint: str | None = None,
        projection: str | None = None,
        owner: str | None = None,
        limit: int | None = 1000,
        who: Identity = Depends(reader),
    ) -> Response:
        proj = [p for p in projection.split(",") if p] if projection else None
        return _json_rows(queue.iter_history_json(constraint, limit, owner, proj), "jobs")

    @app.get("/v1/summary", tags=["query"], summary="Job counts by status and owner")
    def summary(who: Identity = Depends(reader)) -> dict[str, Any]:
        return schedd_ad(state, clock()) | {
            "by_owner": {o: {A.JOB_STATUS_NAMES.get(s, str(s)): n for s, n in c.items()} for o, c in queue.counts_by_owner().items()}
        }

    # -- actions -------------------------------------------------------------------------
    @app.post("/v1/jobs/action", tags=["actions"], summary="Remove, hold or release jobs")
    def act(body: ActionBody, who: Identity = Depends(writer)) -> dict[str, Any]:
        ids = owned_ids(who, body.ids, body.constraint)
        reason = body.reason or f"via gwms {body.action} by {who.name}"
        if body.action == "remove":
            results = queue.remove(ids, reason=reason)
        elif body.action == "hold":
            results = queue.hold(ids, reason=body.reason or f"held by {who.name}")
        else:
            results = queue.release(ids, reason=reason)
        if body.action != "release":
            claims.jobs_left_running((r.cluster, r.proc) for r in results if r.ok)
        changed()
        return _results(results)

    @app.post("/v1/jobs/edit", tags=["actions"], summary="Set an attribute of jobs (condor_qedit)")
    def edit(body: EditBody, who: Identity = Depends(writer)) -> dict[str, Any]:
        ids = owned_ids(who, body.ids, body.constraint)
        results = queue.edit(ids, body.attr, body.value)
        claims.jobs_edited((r.cluster, r.proc) for r in results if r.ok)
        return _results(results)

    # -- outputs -------------------------------------------------------------------------
    def own_job(cluster: int, proc: int, who: Identity) -> dict[str, Any]:
        ad = queue.get(cluster, proc)
        if ad is None:
            raise NotFound(f"job {cluster}.{proc} not found")
        if not is_admin(who) and ad.get("Owner") != who.name:
            raise Forbidden(f"job {cluster}.{proc} belongs to {ad.get('Owner')}; you are {who.name}")
        return ad

    @app.get("/v1/jobs/{cluster}.{proc}/output", tags=["sandbox"], summary="List a job's output files")
    def list_output(cluster: int, proc: int, who: Identity = Depends(reader)) -> dict[str, Any]:
        own_job(cluster, proc, who)
        return {"files": spool.output_files(cluster, proc)}

    @app.get("/v1/jobs/{cluster}.{proc}/output.tar.gz", tags=["sandbox"], summary="A job's outputs as one archive")
    def output_archive(cluster: int, proc: int, who: Identity = Depends(reader)) -> Response:
        own_job(cluster, proc, who)
        return Response(spool.output_archive(cluster, proc), media_type="application/gzip")

    @app.get("/v1/jobs/{cluster}.{proc}/output/{path:path}", tags=["sandbox"], summary="One output file")
    def output_file(cluster: int, proc: int, path: str, who: Identity = Depends(reader)) -> FileResponse:
        own_job(cluster, proc, who)
        return FileResponse(spool.output_file(cluster, proc, path))

    return app


def _results(results: Iterable[Any]) -> dict[str, Any]:
    out = [{"id": f"{r.cluster}.{r.proc}", "ok": r.ok, "error": r.error} for r in results]
    return {"results": out, "done": sum(1 for r in out if r["ok"]), "failed": sum(1 for r in out if not r["ok"])}


def _json_rows(rows: Iterable[str], key: str) -> Response:
    """``{"<key>": [...]}`` from ads already encoded as JSON text (passed through from the
    queue's storage, so a 100k-job answer costs no decoding and re-encoding)."""
    body = '{"' + key + '":[' + ",".join(rows) + "]}"
    return Response(body.encode(), media_type="application/json")


def schedd_ad(state: ScheddState, now: float) -> dict[str, Any]:
    """The schedd's ad for the collector (``MyType = "Scheduler"``) with its job counts."""
    counts = state.queue.counts_by_status()
    return {
        "MyType": "Scheduler",
        "Name": state.name,
        "Machine": socket.gethostname(),
        "TotalIdleJobs": counts.get(A.IDLE, 0),
        "TotalRunningJobs": counts.get(A.RUNNING, 0),
        "TotalHeldJobs": counts.get(A.HELD, 0),
        "TotalJobAds": sum(counts.values()),
        "MaxJobsRunning": state.limits.max_jobs_running,
        "MyCurrentTime": int(now),
        "ClassAdLifetime": 300,
    }
