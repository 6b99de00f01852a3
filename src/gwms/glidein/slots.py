"""Slots of one startd agent: static slots, one partitionable slot and its dynamic slots.

A *static* slot (``slotN@<glidein>``) holds a fixed share of the glidein's resources and
runs one job at a time. The *partitionable* slot (``slot1@<glidein>``,
``PartitionableSlot = true``) advertises what is still free; each claim carves a
*dynamic* slot (``slot1_M@<glidein>``) sized by the job's requests, which gives its
resources back when its claim ends.

:class:`SlotTable` is the thread-safe state; :func:`slot_ad` builds the ``Machine`` ad of
a slot (pure). Resources are CPUs, memory (MiB), disk (KiB) and GPUs.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from gwms.glidein import attributes as A
from gwms.glidein.jobad import CaseBlindAd, as_expr

STATIC = "Static"
PARTITIONABLE = "Partitionable"
DYNAMIC = "Dynamic"


@dataclass(frozen=True)
class Resources:
    """CPUs, memory (MiB), disk (KiB) and GPUs."""

    cpus: int
    memory: int
    disk: int
    gpus: int = 0

    def fits_in(self, other: Resources) -> bool:
        """Whether every amount here is at most the one in ``other``."""
        return (
            self.cpus <= other.cpus
            and self.memory <= other.memory
            and self.disk <= other.disk
            and self.gpus <= other.gpus
        )

    def minus(self, other: Resources) -> Resources:
        """These resources less ``other``."""
        return Resources(self.cpus - other.cpus, self.memory - other.memory, self.disk - other.disk, self.gpus - other.gpus)

    def plus(self, other: Resources) -> Resources:
        """These resources plus ``other``."""
        return Resources(self.cpus + other.cpus, self.memory + other.memory, self.disk + other.disk, self.gpus + other.gpus)


def split_static(total: Resources, count: int) -> Resources:
    """The share of each of ``count`` static slots: an even split, at least one CPU each."""
    count = max(count, 1)
    return Resources(
        max(total.cpus // count, 1),
        total.memory // count,
        total.disk // count,
        total.gpus // count,
    )


def _request(ad: CaseBlindAd, name: str, default: int) -> int:
    value = ad.number(name)
    if value is None or value < 0:
        return default
    return int(-(-value // 1))  # ceiling, for fractional requests


def job_request(job: Mapping[str, Any]) -> Resources:
    """What a job asks for (RequestCpus/Memory/Disk/Gpus); HTCondor's defaults when a
    request is missing or not a literal number (the agent does not evaluate expressions)."""
    ad = CaseBlindAd(job)
    return Resources(
        _request(ad, A.REQUEST_CPUS, A.DEFAULT_REQUEST_CPUS),
        _request(ad, A.REQUEST_MEMORY, A.DEFAULT_REQUEST_MEMORY_MB),
        _request(ad, A.REQUEST_DISK, A.DEFAULT_REQUEST_DISK_KB),
        _request(ad, A.REQUEST_GPUS, 0),
    )


def resources_from_json(value: object) -> Resources | None:
    """``{"Cpus", "Memory", "Disk", "Gpus"}`` (any case; the schedd's ``request``) as
    :class:`Resources`, or None when it is not such an object."""
    if not isinstance(value, dict):
        return None
    ad = CaseBlindAd(value)
    amounts = []
    for name in (A.CPUS, A.MEMORY, A.DISK, A.GPUS):
        n = ad.number(name)
        amounts.append(0 if n is None else max(int(-(-n // 1)), 0))
    return Resources(*amounts)


def resources_json(r: Resources) -> dict[str, int]:
    """:class:`Resources` as ``{"Cpus", "Memory", "Disk", "Gpus"}``."""
    return {A.CPUS: r.cpus, A.MEMORY: r.memory, A.DISK: r.disk, A.GPUS: r.gpus}


def carve(free: Resources, request: Resources) -> Resources | None:
    """The dynamic slot a partitionable slot with ``free`` resources gives a job asking for
    ``request``: exactly the request, or None when it does not fit."""
    return request if request.fits_in(free) else None


@dataclass
class Slot:
    """One slot; ``size`` is its resources (the whole share for a partitionable slot),
    ``free`` what a partitionable slot has left."""

    index: int
    kind: str
    glidein: str
    size: Resources
    free: Resources
    sub: int = 0
    claim_id: str | None = None
    job: dict[str, Any] | None = None
    job_start: float | None = None
    job_starts: int = 0
    children: int = 0

    @property
    def short(self) -> str:
        """``slotN`` or, for a dynamic slot, ``slotN_M``."""
        return f"slot{self.index}_{self.sub}" if self.kind == DYNAMIC else f"slot{self.index}"

    @property
    def name(self) -> str:
        """``slotN@<glidein>`` / ``slotN_M@<glidein>``."""
        return f"{self.short}@{self.glidein}"

    @property
    def parent_name(self) -> str | None:
        """The partitionable slot a dynamic slot was carved from."""
        return f"slot{self.index}@{self.glidein}" if self.kind == DYNAMIC else None

    @property
    def busy(self) -> bool:
        """Whether a claim holds the slot."""
        return self.claim_id is not None


class SlotTable:
    """The agent's slots, safe to use from several threads."""

    def __init__(self, glidein: str, total: Resources, *, static: int = 1, partitionable: bool = False) -> None:
        self.glidein = glidein
        self.total = total
        self._lock = threading.Lock()
        self._slots: dict[str, Slot] = {}
        self._removed: list[str] = []
        if partitionable:
            p = Slot(1, PARTITIONABLE, glidein, total, total)
            self._slots[p.name] = p
        else:
            share = split_static(total, static)
            for i in range(1, max(static, 1) + 1):
                s = Slot(i, STATIC, glidein, share, share)
                self._slots[s.name] = s

    def poll_names(self) -> list[str]:
        """The slots a schedd may hold matches for (static and partitionable)."""
        with self._lock:
            return [s.name for s in self._slots.values() if s.kind != DYNAMIC]

    def take(
        self, slot_name: str, claim_id: str, job: dict[str, Any], now: float, request: Resources | None = None
    ) -> tuple[Slot | None, str]:
        """Give a claim a slot to run ``job`` in: the static slot itself, or a dynamic slot
        carved from the partitionable one (sized by ``request``, the schedd's view of what
        the job needs, else the job's own requests). ``(None, reason)`` when it cannot."""
        with self._lock:
            slot = self._slots.get(slot_name)
            if slot is None:
                return None, f"no slot {slot_name} here"
            if slot.kind == STATIC:
                if slot.busy:
                    return None, f"{slot_name} is busy"
                slot.claim_id = claim_id
                slot.job = job
                slot.job_start = now
                slot.job_starts += 1
                return slot, ""
            if slot.kind != PARTITIONABLE:
                return None, f"{slot_name} is a dynamic slot"
            size = carve(slot.free, request if request is not None else job_request(job))
            if size is None:
                return None, f"{slot_name} has not enough free resources left for the job"
            used = {s.sub for s in self._slots.values() if s.kind == DYNAMIC and s.index == slot.index}
            sub = next(i for i in range(1, len(used) + 2) if i not in used)
            dyn = Slot(slot.index, DYNAMIC, self.glidein, size, size, sub=sub, claim_id=claim_id, job=job,
                       job_start=now, job_starts=1)
            slot.free = slot.free.minus(size)
            slot.children += 1
            slot.job_starts += 1
            self._slots[dyn.name] = dyn
            if dyn.name in self._removed:
                self._removed.remove(dyn.name)
            return dyn, ""

    def reuse(self, slot: Slot, job: dict[str, Any], now: float, request: Resources | None = None) -> str:
        """Run the next job of a claim in the same slot; the reason when it does not fit."""
        with self._lock:
            need = request if request is not None else job_request(job)
            if slot.kind == DYNAMIC and not need.fits_in(slot.size):
                return f"the next job does not fit in {slot.name}"
            slot.job = job
            slot.job_start = now
            slot.job_starts += 1
            return ""

    def finish(self, slot: Slot) -> None:
        """The claim of ``slot`` ended: free a static slot, return a dynamic one's resources."""
        with self._lock:
            if slot.kind == DYNAMIC:
                if self._slots.pop(slot.name, None) is not None:
                    parent = self._slots.get(slot.parent_name or "")
                    if parent is not None:
                        parent.free = parent.free.plus(slot.size)
                        parent.children -= 1
                    self._removed.append(slot.name)
                return
            slot.claim_id = None
            slot.job = None
            slot.job_start = None

    def free_resources(self) -> dict[str, dict[str, int]]:
        """What each partitionable slot has left, by name (the poll's ``free``)."""
        with self._lock:
            return {s.name: resources_json(s.free) for s in self._slots.values() if s.kind == PARTITIONABLE}

    def running(self) -> int:
        """How many claims hold a slot now."""
        with self._lock:
            return sum(1 for s in self._slots.values() if s.busy)

    def snapshot(self) -> list[Slot]:
        """Copies of every slot (for building ads without holding the lock)."""
        with self._lock:
            return [replace(s) for s in self._slots.values()]

    def busy_slots(self) -> list[Slot]:
        """The slots held by a claim (the live objects)."""
        with self._lock:
            return [s for s in self._slots.values() if s.busy]

    def restore_removed(self, names: list[str]) -> None:
        """Put back names :meth:`pop_removed` gave out whose invalidation failed."""
        with self._lock:
            live = set(self._slots)
            self._removed.extend(n for n in names if n not in self._removed and n not in live)

    def pop_removed(self) -> list[str]:
        """Names of dynamic slots gone since the last call (their ads are to be invalidated)."""
        with self._lock:
            removed, self._removed = self._removed, []
            return removed


@dataclass(frozen=True)
class MachineInfo:
    """What every slot ad of one agent shares."""

    glidein: str
    hostname: str
    arch: str
    startd_id: str
    total: Resources
    daemon_start: float
    ad_lifetime: int
    start_expr: str = "true"
    published: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentStatus:
    """The agent-wide state that shows in slot ads."""

    accepting: bool
    retire_at: float
    die_at: float
    black_hole: bool = False


def state_and_activity(slot: Slot, accepting: bool) -> tuple[str, str]:
    """HTCondor's State and Activity of a slot."""
    if slot.kind == PARTITIONABLE:
        if accepting:
            return A.STATE_UNCLAIMED, A.ACTIVITY_IDLE
        return A.STATE_DRAINED, A.ACTIVITY_RETIRING if slot.children else A.ACTIVITY_IDLE
    if slot.busy:
        return A.STATE_CLAIMED, A.ACTIVITY_BUSY if accepting else A.ACTIVITY_RETIRING
    return (A.STATE_UNCLAIMED, A.ACTIVITY_IDLE) if accepting else (A.STATE_DRAINED, A.ACTIVITY_IDLE)


def slot_ad(slot: Slot, machine: MachineInfo, status: AgentStatus, now: float) -> dict[str, Any]:
    """The ``Machine`` ad of one slot (JSON form), published attributes included."""
    ad: dict[str, Any] = dict(machine.published)
    state, activity = state_and_activity(slot, status.accepting)
    res = slot.free if slot.kind == PARTITIONABLE else slot.size
    ad.update({
        A.MY_TYPE: A.SLOT_MY_TYPE,
        A.TARGET_TYPE: A.JOB_MY_TYPE,
        A.NAME: slot.name,
        A.MACHINE: machine.hostname,
        A.SLOT_ID: slot.index,
        A.SLOT_TYPE: slot.kind,
        A.STATE: state,
        A.ACTIVITY: activity,
        A.CPUS: res.cpus,
        A.MEMORY: res.memory,
        A.DISK: res.disk,
        A.GPUS: res.gpus,
        A.TOTAL_SLOT_CPUS: slot.size.cpus,
        A.TOTAL_SLOT_MEMORY: slot.size.memory,
        A.TOTAL_SLOT_DISK: slot.size.disk,
        A.TOTAL_SLOT_GPUS: slot.size.gpus,
        A.TOTAL_CPUS: machine.total.cpus,
        A.TOTAL_MEMORY: machine.total.memory,
        A.TOTAL_DISK: machine.total.disk,
        A.TOTAL_GPUS: machine.total.gpus,
        A.OPSYS: A.OPSYS_LINUX,
        A.ARCH: machine.arch,
        A.START: as_expr(machine.start_expr if status.accepting else "false"),
        A.STARTD_ID: machine.startd_id,
        A.STARTD_NAME: machine.glidein,
        A.GLIDEIN_TO_RETIRE: int(status.retire_at),
        A.GLIDEIN_TO_DIE: int(status.die_at),
        A.DAEMON_START_TIME: int(machine.daemon_start),
        A.MY_CURRENT_TIME: int(now),
        A.CLASSAD_LIFETIME: machine.ad_lifetime,
        A.JOB_STARTS: slot.job_starts,
        A.IS_BLACK_HOLE: status.black_hole,
    })
    if slot.kind == PARTITIONABLE:
        ad[A.PARTITIONABLE_SLOT] = True
    if slot.kind == DYNAMIC:
        ad[A.DYNAMIC_SLOT] = True
        ad[A.PARENT_SLOT] = slot.parent_name
    if slot.busy and slot.job is not None:
        job = CaseBlindAd(slot.job)
        owner = job.string(A.OWNER)
        if owner:
            ad[A.REMOTE_OWNER] = owner
            ad[A.REMOTE_USER] = job.string(A.USER) or owner
        cluster, proc = job.number(A.CLUSTER_ID), job.number(A.PROC_ID)
        if cluster is not None and proc is not None:
            ad[A.JOB_ID] = f"{int(cluster)}.{int(proc)}"
        gid = job.string(A.GLOBAL_JOB_ID)
        if gid:
            ad[A.GLOBAL_JOB_ID] = gid
        if slot.job_start is not None:
            ad[A.JOB_START] = int(slot.job_start)
    return ad
