"""Pending matches and claims of one schedd: pure state with an injectable clock.

The negotiator hands the schedd *matches* (a job and a slot ad). A match waits,
*pending*, until the startd agent that owns the slot polls; then it becomes a *claim*:
the agent runs the claim's job, and may get the next job of the same group on the same
claim (claim reuse). The agent keeps its claims alive by polling and heartbeats.

Rules kept here (the service does the I/O: job queue, HTTP):

- A pending match expires ``match_timeout`` seconds after it arrived; a claim that is
  not renewed for ``claim_timeout`` seconds expires (its job goes back to idle).
- One pending match or claim per job. A static slot takes one pending match or one
  claim at a time; a partitionable slot (``PartitionableSlot = true``) takes several.
- Only the identity in the slot ad's ``AuthenticatedIdentity`` (and, when the ad has
  one, the agent whose ``GwmsStartdId`` it names) can take a slot's pending matches,
  and only that identity can renew or act on the claim.
- At most ``capacity`` matches become claims with a job (MaxJobsRunning).
- An agent that stops taking jobs (retiring, draining) says goodbye: its pending matches
  are dropped at once (their jobs are free for the next negotiation instead of waiting
  ``match_timeout``), and new matches to its slots are refused for a while (the
  negotiator may still hold its old ads).

Every method that depends on time takes ``now`` or reads the book's clock.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gwms.errors import GwmsError
from gwms.pool.resources import Resources, is_partitionable, slot_resources

JobId = tuple[int, int]

AUTHENTICATED_IDENTITY = "AuthenticatedIdentity"
STARTD_ID = "GwmsStartdId"

DEFAULT_MATCH_TIMEOUT = 60.0
DEFAULT_CLAIM_TIMEOUT = 120.0
#: How long the schedd refuses matches to the slots of an agent that said goodbye.
DEPARTED_MEMORY = 3600.0


class ClaimError(GwmsError):
    """A claim request the schedd refuses."""

    http_status = 409


class ClaimNotFound(ClaimError):
    """No such claim (never made, expired, or released)."""

    http_status = 404


class ClaimForbidden(ClaimError):
    """The claim belongs to another startd."""

    http_status = 403


def _get(ad: Mapping[str, Any], name: str) -> Any:
    value = ad.get(name)
    if value is None:
        low = name.lower()
        for key, candidate in ad.items():
            if key.lower() == low:
                return candidate
    return value


def job_key(job: JobId) -> str:
    """``"C.P"`` of a job id."""
    return f"{job[0]}.{job[1]}"


@dataclass(frozen=True)
class Offer:
    """A match as the negotiator sends it: a job, a slot name, the slot's ad.

    ``request`` is what the job takes from a partitionable slot, when the negotiator
    says; ``None`` means unknown (the whole slot for a static one).
    """

    job: JobId
    slot: str
    slot_ad: Mapping[str, Any]
    request: Resources | None = None

    @property
    def identity(self) -> str | None:
        """The slot ad's AuthenticatedIdentity (stamped by the collector)."""
        value = _get(self.slot_ad, AUTHENTICATED_IDENTITY)
        return value if isinstance(value, str) else None

    @property
    def startd_id(self) -> str | None:
        """The slot ad's GwmsStartdId, if it has one."""
        value = _get(self.slot_ad, STARTD_ID)
        return value if isinstance(value, str) else None

    @property
    def partitionable(self) -> bool:
        """Whether the slot takes several jobs."""
        return is_partitionable(self.slot_ad)


@dataclass
class PendingMatch:
    """An offer waiting for its startd to poll, until ``expires``."""

    offer: Offer
    arrived: float
    expires: float


@dataclass
class Claim:
    """A slot claimed by a startd; ``job`` is what runs on it now (None: idle claim).

    ``request`` is what the job takes of the slot, ``submitter`` who is charged for it,
    ``stopped`` says the job was taken away (removed or held by a user) and the agent has
    not been told yet.
    """

    id: str
    slot: str
    slot_ad: Mapping[str, Any]
    startd: str
    identity: str
    renewed: float
    created: float
    job: JobId | None = None
    request: Resources = field(default_factory=Resources)
    submitter: str = ""
    owner: str = ""
    partitionable: bool = False
    wall_before: float = 0.0
    stopped: bool = False
    jobs_run: int = 0
    signature: str = ""
    signature_attrs: frozenset[str] = frozenset()


def claim_cpus(claim: Claim) -> float:
    """CPUs a claim with a job holds: its request on a partitionable slot, the whole slot
    (at least one CPU) on a static one."""
    if claim.partitionable:
        return claim.request.cpus
    return max(1.0, slot_resources(claim.slot_ad).cpus)


@dataclass(frozen=True)
class Expired:
    """What :meth:`ClaimBook.expire` dropped: pending matches and claims (with their jobs)."""

    matches: list[PendingMatch]
    claims: list[Claim]


def leaves_with(match: PendingMatch, identity: str, startd: str, slots: frozenset[str]) -> bool:
    """Whether a pending match goes when agent ``startd`` of ``identity`` says goodbye.

    Only the slot's own identity may drop its matches. A match whose slot ad names its
    agent (``GwmsStartdId``) goes when that agent leaves; a slot ad without an agent id goes
    when the leaving agent lists the slot.
    """
    offer = match.offer
    if offer.identity != identity:
        return False
    if offer.startd_id is not None:
        return offer.startd_id == startd
    return offer.slot in slots


@dataclass(frozen=True)
class Renewal:
    """The answer to a heartbeat: claims renewed, unknown ones, and stopped ones."""

    renewed: list[str]
    unknown: list[str]
    stopped: list[str]


class ClaimBook:
    """Pending matches and claims, with their timeouts.

    Not thread-safe by itself: the service serializes calls with a lock.
    """

    def __init__(
        self,
        *,
        match_timeout: float = DEFAULT_MATCH_TIMEOUT,
        claim_timeout: float = DEFAULT_CLAIM_TIMEOUT,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        """A book with these timeouts (seconds), ``capacity`` (MaxJobsRunning) and clock."""
        if match_timeout <= 0 or claim_timeout <= 0:
            raise ClaimError("match and claim timeouts must be positive")
        self.match_timeout = float(match_timeout)
        self.claim_timeout = float(claim_timeout)
        self.capacity = int(capacity)
        self._clock = clock
        self._new_id = new_id or (lambda: secrets.token_urlsafe(18))
        self._pending: dict[JobId, PendingMatch] = {}
        self._pending_by_slot: dict[str, list[JobId]] = {}
        self._converting: dict[JobId, PendingMatch] = {}
        self._claims: dict[str, Claim] = {}
        self._claim_of_job: dict[JobId, str] = {}
        self._claims_by_slot: dict[str, set[str]] = {}
        self._departed: dict[tuple[str, str], float] = {}  # (identity, startd) -> forget at

    # ------------------------------------------------------------------ reading

    def now(self) -> float:
        """The book's clock."""
        return self._clock()

    def booked(self, job: JobId) -> bool:
        """True if the job has a pending match, is being claimed, or runs under a claim."""
        return job in self._pending or job in self._converting or job in self._claim_of_job

    def booked_jobs(self) -> set[JobId]:
        """Every job with a pending match, a claim in the making, or a claim."""
        return set(self._pending) | set(self._converting) | set(self._claim_of_job)

    def running(self) -> int:
        """Claims with a job, plus matches being turned into claims (what capacity counts)."""
        return len(self._claim_of_job) + len(self._converting)

    def pending_count(self) -> int:
        """Pending matches."""
        return len(self._pending)

    def claims(self) -> list[Claim]:
        """All claims."""
        return list(self._claims.values())

    def claim(self, claim_id: str, identity: str | None = None) -> Claim:
        """The claim ``claim_id``; with ``identity``, only if it is that startd's.

        Raises :class:`ClaimNotFound` or :class:`ClaimForbidden`.
        """
        found = self._claims.get(claim_id)
        if found is None:
            raise ClaimNotFound(f"no claim {claim_id!r} (it expired, was released, or never existed)")
        if identity is not None and found.identity != identity:
            raise ClaimForbidden(f"claim {claim_id!r} belongs to another startd")
        return found

    def claim_of_job(self, job: JobId) -> Claim | None:
        """The claim that runs ``job`` now, if any."""
        claim_id = self._claim_of_job.get(job)
        return self._claims.get(claim_id) if claim_id is not None else None

    def pending_for(self, job: JobId) -> PendingMatch | None:
        """The pending match of ``job``, if any."""
        return self._pending.get(job)

    def usage_by_submitter(self) -> dict[str, float]:
        """CPUs in use under claims with a job, per submitter (for fair share)."""
        out: dict[str, float] = {}
        for claim in self._claims.values():
            if claim.job is not None:
                out[claim.submitter] = out.get(claim.submitter, 0.0) + claim_cpus(claim)
        return out

    def slots_in_use(self) -> tuple[set[str], dict[str, Resources]]:
        """What the negotiator must not give again: static slots with a pending match or a
        claim, and per partitionable slot the sum of the requests of its pending matches
        (its claims show in the slot's own ad once the agent advertises it)."""
        taken: set[str] = set()
        carved: dict[str, Resources] = {}
        for pm in (*self._pending.values(), *self._converting.values()):
            offer = pm.offer
            if not offer.partitionable:
                taken.add(offer.slot)
            elif offer.request is not None:
                carved[offer.slot] = carved.get(offer.slot, Resources()).plus(offer.request)
        for claim in self._claims.values():
            if not claim.partitionable:
                taken.add(claim.slot)
        return taken, carved

    # ------------------------------------------------------------------ matches

    def offer(self, offers: Iterable[Offer], now: float | None = None) -> list[str | None]:
        """Take the negotiator's matches; per offer ``None`` (kept) or why it was refused."""
        moment = self._clock() if now is None else now
        results: list[str | None] = []
        for offer in offers:
            reason = self._refusal(offer)
            if reason is None:
                pm = PendingMatch(offer, moment, moment + self.match_timeout)
                self._pending[offer.job] = pm
                self._pending_by_slot.setdefault(offer.slot, []).append(offer.job)
            results.append(reason)
        return results

    def _refusal(self, offer: Offer) -> str | None:
        if self.booked(offer.job):
            return f"job {job_key(offer.job)} is already matched or claimed"
        if offer.identity is None:
            return f"slot {offer.slot} has no AuthenticatedIdentity"
        if offer.startd_id is not None and (offer.identity, offer.startd_id) in self._departed:
            return f"the startd of slot {offer.slot} is retiring (it takes no new jobs)"
        if not offer.partitionable:
            if self._pending_by_slot.get(offer.slot):
                return f"slot {offer.slot} already has a pending match"
            if any(self._converting_slot(offer.slot)) or self._claims_by_slot.get(offer.slot):
                return f"slot {offer.slot} is already claimed"
        return None

    def _converting_slot(self, slot: str) -> Iterable[JobId]:
        return (j for j, pm in self._converting.items() if pm.offer.slot == slot)

    def _drop_pending(self, job: JobId) -> PendingMatch | None:
        pm = self._pending.pop(job, None)
        if pm is not None:
            jobs = self._pending_by_slot.get(pm.offer.slot)
            if jobs is not None:
                try:
                    jobs.remove(job)
                except ValueError:
                    pass
                if not jobs:
                    del self._pending_by_slot[pm.offer.slot]
        return pm

    def take(
        self,
        identity: str,
        startd: str,
        slots: Iterable[str],
        *,
        free: Mapping[str, Resources] | None = None,
        now: float | None = None,
    ) -> list[PendingMatch]:
        """Pending matches of ``slots`` that ``identity`` (agent ``startd``) may claim now.

        They leave the pending list and count as running until :meth:`open_claim` or
        :meth:`abandon`. Matches of another identity stay pending. With ``free`` (the
        agent's free resources of partitionable slots), a match whose request does not fit
        stays pending. At most the free capacity (MaxJobsRunning) is taken. Expired matches
        are not handed out.
        """
        moment = self._clock() if now is None else now
        room = self.capacity - self.running()
        taken: list[PendingMatch] = []
        for slot in dict.fromkeys(slots):
            if room <= 0:
                break
            jobs = list(self._pending_by_slot.get(slot, ()))
            left = free.get(slot) if free else None
            for job in jobs:
                if room <= 0:
                    break
                pm = self._pending[job]
                offer = pm.offer
                if pm.expires <= moment:
                    continue
                if offer.identity != identity:
                    continue
                if offer.startd_id is not None and offer.startd_id != startd:
                    continue
                if left is not None and offer.request is not None:
                    if not offer.request.fits_in(left):
                        continue
                    left = left.minus(offer.request)
                self._drop_pending(job)
                self._converting[job] = pm
                taken.append(pm)
                room -= 1
        return taken

    def goodbye(
        self, identity: str, startd: str, slots: Iterable[str] = (), now: float | None = None
    ) -> list[PendingMatch]:
        """Agent ``startd`` of ``identity`` takes no more jobs (retiring, draining, exiting).

        Drop its pending matches (see :func:`leaves_with`) and return them (their jobs are
        idle and unbooked again, free for the next negotiation); refuse new matches to its
        slots for :data:`DEPARTED_MEMORY` seconds. Claims are untouched: the agent still
        completes, vacates or releases them.
        """
        moment = self._clock() if now is None else now
        names = frozenset(slots)
        gone = [pm for pm in self._pending.values() if leaves_with(pm, identity, startd, names)]
        for pm in gone:
            self._drop_pending(pm.offer.job)
        self._departed[(identity, startd)] = moment + max(DEPARTED_MEMORY, self.match_timeout)
        return gone

    def departed(self, identity: str, startd: str) -> bool:
        """Whether agent ``startd`` of ``identity`` said goodbye (and is still remembered)."""
        return (identity, startd) in self._departed

    def abandon(self, match: PendingMatch) -> None:
        """Forget a taken match whose job could not start (removed, held meanwhile)."""
        self._converting.pop(match.offer.job, None)

    def new_claim_id(self) -> str:
        """A fresh, unguessable claim id (it is a capability: whoever knows it acts on it,
        together with the right identity)."""
        return self._new_id()

    def open_claim(
        self,
        match: PendingMatch,
        *,
        claim_id: str | None = None,
        startd: str,
        identity: str,
        request: Resources,
        submitter: str = "",
        owner: str = "",
        wall_before: float = 0.0,
        slot_ad: Mapping[str, Any] | None = None,
        signature: str = "",
        signature_attrs: frozenset[str] = frozenset(),
        now: float | None = None,
    ) -> Claim:
        """Make the claim for a taken match whose job now runs (``claim_id`` from
        :meth:`new_claim_id`, or a new one)."""
        moment = self._clock() if now is None else now
        self._converting.pop(match.offer.job, None)
        claim = Claim(
            id=claim_id or self._new_id(),
            slot=match.offer.slot,
            slot_ad=slot_ad if slot_ad is not None else match.offer.slot_ad,
            startd=startd,
            identity=identity,
            renewed=moment,
            created=moment,
            job=match.offer.job,
            request=request,
            submitter=submitter,
            owner=owner,
            partitionable=match.offer.partitionable,
            wall_before=wall_before,
            jobs_run=1,
            signature=signature,
            signature_attrs=signature_attrs,
        )
        self._claims[claim.id] = claim
        self._claim_of_job[match.offer.job] = claim.id
        self._claims_by_slot.setdefault(claim.slot, set()).add(claim.id)
        return claim

    # ------------------------------------------------------------------ claims

    def renew(self, identity: str, claim_ids: Iterable[str], now: float | None = None) -> Renewal:
        """Renew claims of ``identity``; others' and unknown ids come back as unknown.

        A stopped claim (its job was removed or held) is reported once in ``stopped``.
        """
        moment = self._clock() if now is None else now
        renewed: list[str] = []
        unknown: list[str] = []
        stopped: list[str] = []
        for claim_id in dict.fromkeys(claim_ids):
            claim = self._claims.get(claim_id)
            if claim is None or claim.identity != identity:
                unknown.append(claim_id)
                continue
            claim.renewed = moment
            renewed.append(claim_id)
            if claim.stopped:
                claim.stopped = False
                stopped.append(claim_id)
        return Renewal(renewed, unknown, stopped)

    def renew_startd(self, identity: str, startd: str, now: float | None = None) -> int:
        """Renew every claim of agent ``startd`` under ``identity`` (a poll does this)."""
        moment = self._clock() if now is None else now
        count = 0
        for claim in self._claims.values():
            if claim.identity == identity and claim.startd == startd:
                claim.renewed = moment
                count += 1
        return count

    def finish_job(self, claim_id: str) -> JobId | None:
        """The claim's job ended (completed, held, vacated): the claim is idle now."""
        claim = self._claims.get(claim_id)
        if claim is None or claim.job is None:
            return None
        job = claim.job
        self._claim_of_job.pop(job, None)
        claim.job = None
        return job

    def reserve_next(self, claim_id: str, job: JobId) -> bool:
        """Book ``job`` for claim reuse on an idle claim (False if the job is booked or the
        claim gone or busy). Follow with :meth:`assign` or :meth:`unreserve`."""
        claim = self._claims.get(claim_id)
        if claim is None or claim.job is not None or self.booked(job):
            return False
        claim.job = job
        self._claim_of_job[job] = claim_id
        return True

    def unreserve(self, claim_id: str) -> None:
        """Undo :meth:`reserve_next` (the job could not start)."""
        self.finish_job(claim_id)

    def assign(
        self, claim_id: str, *, request: Resources, submitter: str, owner: str, wall_before: float = 0.0
    ) -> None:
        """Record what the reserved next job of a claim takes and who is charged."""
        claim = self._claims[claim_id]
        claim.request = request
        claim.submitter = submitter
        claim.owner = owner
        claim.wall_before = wall_before
        claim.jobs_run += 1

    def release(self, claim_id: str) -> Claim | None:
        """End a claim (its job, if any, is the caller's to put back)."""
        claim = self._claims.pop(claim_id, None)
        if claim is None:
            return None
        if claim.job is not None:
            self._claim_of_job.pop(claim.job, None)
        ids = self._claims_by_slot.get(claim.slot)
        if ids is not None:
            ids.discard(claim_id)
            if not ids:
                del self._claims_by_slot[claim.slot]
        return claim

    def stop_jobs(self, jobs: Iterable[JobId]) -> list[str]:
        """Jobs left the running state by a user's action (remove, hold): their claims
        become idle and are marked stopped; their pending matches are dropped. Returns the
        claim ids that were stopped."""
        stopped: list[str] = []
        for job in jobs:
            self._drop_pending(job)
            self._converting.pop(job, None)
            claim_id = self._claim_of_job.pop(job, None)
            if claim_id is not None:
                claim = self._claims[claim_id]
                claim.job = None
                claim.stopped = True
                stopped.append(claim_id)
        return stopped

    # ------------------------------------------------------------------ time

    def expire(self, now: float | None = None) -> Expired:
        """Drop pending matches past their time and claims not renewed within the timeout.

        Expired claims keep their ``job`` so the caller can put it back to idle.
        """
        moment = self._clock() if now is None else now
        for key in [k for k, until in self._departed.items() if until <= moment]:
            del self._departed[key]
        old_matches = [pm for pm in self._pending.values() if pm.expires <= moment]
        for pm in old_matches:
            self._drop_pending(pm.offer.job)
        limit = moment - self.claim_timeout
        old_claims = [c for c in self._claims.values() if c.renewed <= limit]
        for claim in old_claims:
            job = claim.job
            self.release(claim.id)
            claim.job = job
        return Expired(old_matches, old_claims)
