"""Pseudo-interactive monitoring at the schedd: ``gwms job ps|top|ls|cat|tail|bt``.

The schedd is the go-between of a user and the startd agent that runs the user's job;
the agent only makes outbound calls, so the request waits here until the agent's own
long poll picks it up::

    user  --POST /v1/jobs/{C}.{P}/inspect-->  schedd  (waits for the answer, at most "wait" s)
    agent --POST /v1/startd/inspections------>  schedd  (long poll: the requests for its claims)
    agent --POST /v1/startd/inspections/{id}->  schedd  (the answer; the user's call returns it)

User: ``POST /v1/jobs/{C}.{P}/inspect`` (READ) ``{"what": "ps"|"top"|"ls"|"cat"|"tail"|"bt",
"path"?, "lines"?, "wait"?}``. Only the job's Owner or an ADMINISTRATOR; the job must be
running under a claim of this schedd (else 409). Answer ``{"job", "what", "path", "slot",
"text", "truncated", "data"?}``. The agent's refusals come back as errors: a path that
leaves the sandbox 403, no such file 404, job not (or no longer) running 409; no answer
within ``wait`` s (default 20, at most 60) is 504 ``inspection_timeout``.

Agent (ADVERTISE_STARTD, the identity and agent id of the claim): ``POST
/v1/startd/inspections`` ``{"startd": ID, "wait": 20}`` -> ``{"requests": [{"id",
"claim_id", "job", "what", "path", "lines"}]}`` as soon as there are some, else empty after
``wait`` s; ``POST /v1/startd/inspections/{id}`` ``{"ok": true, "text", "truncated",
"data"?}`` or ``{"ok": false, "code", "error"}``.

What the agent runs, and how paths are confined to the sandbox, is
:mod:`gwms.glidein.inspect`. The :class:`InspectionDesk` lives on the event loop only
(every endpoint here is ``async``), so it needs no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from gwms.errors import GwmsError
from gwms.net import require_scopes
from gwms.net.auth import Identity
from gwms.pool import jobattrs as A
from gwms.pool.schedd.claims import job_key
from gwms.pool.schedd.queue import JobQueue
from gwms.pool.schedd.startd_api import ClaimService
from gwms.security import scopes

#: The inspections there are (the agent runs nothing else).
KINDS = ("ps", "top", "ls", "cat", "tail", "bt")
#: Those that take a path; ``cat`` and ``tail`` need one.
PATH_KINDS = frozenset({"ls", "cat", "tail"})
NEEDS_PATH = frozenset({"cat", "tail"})
MAX_PATH_CHARS = 4096
MAX_TAIL_LINES = 100_000
DEFAULT_WAIT = 20.0
MAX_WAIT = 60.0
#: Inspections queued or running per agent at once; more are refused (429).
MAX_OPEN_PER_AGENT = 16
#: The most text an answer may carry (the agent cuts at 1 MiB; this is the schedd's guard).
MAX_TEXT_CHARS = (1 << 20) + 4096
T = TypeVar("T")
#: What the agent's error codes become.
AGENT_ERROR_STATUS = {"refused": 403, "not_found": 404, "not_running": 409, "bad_request": 400, "failed": 502}


class InspectionError(GwmsError):
    """A refused or failed inspection (the status and code say which)."""

    http_status = 400
    error_code = "bad_inspection"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.http_status = status
        if code is not None:
            self.error_code = code


# --------------------------------------------------------------------------- pure checks


class InspectBody(BaseModel):
    """``POST /v1/jobs/{C}.{P}/inspect``."""

    what: str
    path: str | None = None
    lines: int | None = None
    wait: float = Field(default=DEFAULT_WAIT, gt=0)


@dataclass(frozen=True)
class InspectRequest:
    """A checked user request."""

    what: str
    path: str | None
    lines: int | None
    wait: float


def check_request(body: InspectBody) -> InspectRequest:
    """The user's request, checked for shape (the agent checks the path against the
    sandbox); :class:`InspectionError` (400) when it cannot be asked."""
    what = body.what.strip().lower()
    if what not in KINDS:
        raise InspectionError(f"unknown inspection {body.what!r}; one of {', '.join(KINDS)}")
    path = body.path
    if path is not None and what not in PATH_KINDS:
        raise InspectionError(f"{what} takes no path")
    if what in NEEDS_PATH and not path:
        raise InspectionError(f"{what} needs a file: a path relative to the job's sandbox")
    if path is not None and (len(path) > MAX_PATH_CHARS or "\x00" in path):
        raise InspectionError(f"the path must be at most {MAX_PATH_CHARS} characters without NUL")
    lines = body.lines
    if lines is not None:
        if what != "tail":
            raise InspectionError(f"{what} takes no line count")
        if not 1 <= lines <= MAX_TAIL_LINES:
            raise InspectionError(f"tail shows 1 to {MAX_TAIL_LINES} lines, not {lines}")
    return InspectRequest(what, path or None, lines, min(float(body.wait), MAX_WAIT))


def check_answer(data: Any) -> dict[str, Any]:
    """An agent's answer, checked and bounded: ``{"ok": True, "text", "truncated", "data"}``
    or ``{"ok": False, "code", "error"}``."""
    if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
        return {"ok": False, "code": "failed", "error": "the startd agent sent a malformed answer"}
    if not data["ok"]:
        code = data.get("code") if data.get("code") in AGENT_ERROR_STATUS else "failed"
        error = " ".join(str(data.get("error") or "the inspection failed").split())[:500]
        return {"ok": False, "code": code, "error": error}
    text = data.get("text")
    text = text if isinstance(text, str) else ""
    truncated = bool(data.get("truncated"))
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS] + "\n[output truncated by the schedd]\n"
        truncated = True
    return {"ok": True, "text": text, "truncated": truncated, "data": data.get("data")}


def refusal_of(answer: dict[str, Any], job: str) -> InspectionError | None:
    """The error a failed answer becomes for the user (None when it succeeded)."""
    if answer.get("ok"):
        return None
    code = str(answer.get("code") or "failed")
    status = AGENT_ERROR_STATUS.get(code, 502)
    error_code = {"refused": "inspection_refused", "not_found": "not_found", "not_running": "job_not_running",
                  "bad_request": "bad_inspection"}.get(code, "inspection_failed")
    return InspectionError(f"job {job}: {answer.get('error')}", status=status, code=error_code)


# --------------------------------------------------------------------------- the desk


@dataclass
class Inspection:
    """One request on its way to an agent and back."""

    id: str
    claim_id: str
    job: str
    what: str
    path: str | None
    lines: int | None
    identity: str
    startd: str
    asked_by: str
    future: asyncio.Future[dict[str, Any]]
    created: float = field(default_factory=time.monotonic)
    sent: bool = False

    def request(self) -> dict[str, Any]:
        """What the agent gets."""
        return {"id": self.id, "claim_id": self.claim_id, "job": self.job, "what": self.what,
                "path": self.path, "lines": self.lines}


class InspectionDesk:
    """Inspection requests waiting for agents, and the users waiting for the answers.

    Use it from the event loop only.
    """

    def __init__(self, *, max_open_per_agent: int = MAX_OPEN_PER_AGENT) -> None:
        """An empty desk; at most ``max_open_per_agent`` requests per agent at once."""
        self.max_open_per_agent = max_open_per_agent
        self._queued: dict[tuple[str, str], list[Inspection]] = {}
        self._open: dict[str, Inspection] = {}
        self._waiters: dict[tuple[str, str], set[asyncio.Event]] = {}
        self.answered = 0
        self.timed_out = 0

    def open_count(self, identity: str, startd: str) -> int:
        """Requests for that agent not answered yet (queued or being run)."""
        return sum(1 for i in self._open.values() if i.identity == identity and i.startd == startd)

    async def ask(self, *, claim_id: str, job: str, what: str, path: str | None, lines: int | None,
                  identity: str, startd: str, asked_by: str, wait: float) -> dict[str, Any]:
        """Queue a request for the agent ``(identity, startd)`` and wait up to ``wait`` s
        for its answer (a checked one, see :func:`check_answer`)."""
        if self.open_count(identity, startd) >= self.max_open_per_agent:
            raise InspectionError(
                f"too many inspections are waiting for the agent running job {job}; try again shortly",
                status=429, code="too_many_inspections")
        loop = asyncio.get_running_loop()
        insp = Inspection(secrets.token_urlsafe(12), claim_id, job, what, path, lines, identity, startd,
                          asked_by, loop.create_future())
        key = (identity, startd)
        self._open[insp.id] = insp
        self._queued.setdefault(key, []).append(insp)
        for event in self._waiters.get(key, ()):
            event.set()
        try:
            return await asyncio.wait_for(asyncio.shield(insp.future), wait)
        except TimeoutError:
            self.timed_out += 1
            how = "did not answer" if insp.sent else "did not pick up the request"
            raise InspectionError(
                f"the startd agent running job {job} {how} within {wait:g} s", status=504,
                code="inspection_timeout") from None
        finally:
            self._forget(insp)

    def _forget(self, insp: Inspection) -> None:
        self._open.pop(insp.id, None)
        key = (insp.identity, insp.startd)
        queued = self._queued.get(key)
        if queued is not None:
            if insp in queued:
                queued.remove(insp)
            if not queued:
                del self._queued[key]

    def _take(self, key: tuple[str, str]) -> list[Inspection]:
        taken = self._queued.pop(key, [])
        for insp in taken:
            insp.sent = True
        return taken

    async def collect(self, identity: str, startd: str, wait: float) -> list[dict[str, Any]]:
        """The agent's long poll: its queued requests as soon as there are some, else ``[]``
        after ``wait`` s."""
        key = (identity, startd)
        deadline = time.monotonic() + min(max(wait, 0.0), MAX_WAIT)
        event = asyncio.Event()
        self._waiters.setdefault(key, set()).add(event)
        try:
            while True:
                event.clear()
                taken = self._take(key)
                left = deadline - time.monotonic()
                if taken or left <= 0:
                    return [i.request() for i in taken]
                try:
                    await asyncio.wait_for(event.wait(), left)
                except TimeoutError:
                    pass
        finally:
            waiting = self._waiters.get(key)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._waiters[key]

    def answer(self, identity: str, inspection_id: str, data: Any) -> None:
        """An agent's answer: hand it to the waiting user. 404 when nobody waits any more,
        403 when the request was not this agent's."""
        insp = self._open.get(inspection_id)
        if insp is None:
            raise InspectionError(f"no open inspection {inspection_id!r} (its user stopped waiting)",
                                  status=404, code="inspection_not_found")
        if insp.identity != identity:
            raise InspectionError(f"inspection {inspection_id!r} was meant for another startd", status=403,
                                  code="forbidden")
        if not insp.future.done():
            insp.future.set_result(check_answer(data))
            self.answered += 1


# --------------------------------------------------------------------------- endpoints


class AgentPollBody(BaseModel):
    """``POST /v1/startd/inspections``."""

    startd: str = Field(min_length=1)
    wait: float = Field(default=DEFAULT_WAIT, ge=0)


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


async def _disconnected(request: Request) -> None:
    """Return when the client of ``request`` (whose body was read) goes away."""
    while True:
        message = await request.receive()
        if message.get("type") == "http.disconnect":
            return


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T | None:
    """``work`` (a wait), given up (None) when the client disconnects: an agent that
    exited, a user who pressed Ctrl-C. The schedd holds no request open for nobody."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


def install_inspection_routes(app: FastAPI, queue: JobQueue, claims: ClaimService) -> InspectionDesk:
    """Add the user's and the agents' inspection endpoints to the schedd app; the desk."""
    desk = InspectionDesk()
    app.state.inspections = desk
    reader = require_scopes(scopes.READ)
    startd = require_scopes(scopes.ADVERTISE_STARTD)

    @app.post("/v1/jobs/{cluster}.{proc}/inspect", tags=["monitoring"],
              summary="Inspect a running job: ps, top, ls, cat, tail, bt (the owner or an administrator)")
    async def inspect_job(cluster: int, proc: int, body: InspectBody, raw: Request,
                          who: Identity = Depends(reader)) -> Response:
        request = check_request(body)
        label = f"{cluster}.{proc}"
        ad = await asyncio.to_thread(queue.get, cluster, proc)
        if ad is None:
            raise InspectionError(f"job {label} not found", status=404, code="not_found")
        owner = ad.get(A.OWNER)
        if scopes.ADMINISTRATOR not in who.scopes and owner != who.name:
            raise InspectionError(f"job {label} belongs to {owner}; you are {who.name}", status=403,
                                  code="forbidden")
        status = ad.get(A.JOB_STATUS)
        if status != A.RUNNING:
            word = (A.JOB_STATUS_NAMES.get(status, str(status)) if isinstance(status, int) else str(status)).lower()
            raise InspectionError(f"job {label} is not running (it is {word}); only a running job can be inspected",
                                  status=409, code="job_not_running")
        with claims.lock:
            claim = claims.book.claim_of_job((cluster, proc))
            where = (claim.id, claim.identity, claim.startd, claim.slot) if claim is not None else None
        if where is None:
            raise InspectionError(f"job {label} runs under no claim of this schedd (it is starting or ending)",
                                  status=409, code="job_not_running")
        claim_id, identity, agent, slot = where
        answer = await unless_disconnected(raw, desk.ask(
            claim_id=claim_id, job=job_key((cluster, proc)), what=request.what, path=request.path,
            lines=request.lines, identity=identity, startd=agent, asked_by=who.name, wait=request.wait))
        if answer is None:  # the user went away: nobody to answer
            return Response(status_code=204)
        refusal = refusal_of(answer, label)
        if refusal is not None:
            raise refusal
        return _json({"job": label, "what": request.what, "path": request.path, "slot": slot,
                      "text": answer["text"], "truncated": answer["truncated"], "data": answer.get("data")})

    @app.post("/v1/startd/inspections", tags=["startd"], summary="Long poll: inspection requests for this agent")
    async def agent_poll(request: Request, body: AgentPollBody, who: Identity = Depends(startd)) -> Response:
        requests = await unless_disconnected(request, desk.collect(who.name, body.startd, body.wait))
        return _json({"requests": requests or []})

    @app.post("/v1/startd/inspections/{inspection_id}", tags=["startd"], summary="The answer to an inspection")
    async def agent_answer(inspection_id: str, body: dict[str, Any], who: Identity = Depends(startd)) -> Response:
        desk.answer(who.name, inspection_id, body)
        return _json({"accepted": True})

    return desk
