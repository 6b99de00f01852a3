"""What the frontend sees in the user pool: job classes, saturated schedds, slot counts.

Pure functions over ads in JSON form (attribute names compared case-blind).

Jobs (GlideinWMS's classes, one job may be in several):

- ``Idle``: ``JobStatus == 1`` on a schedd that counts for idle demand;
- ``OldIdle``: idle for at least :data:`OLD_IDLE_AGE` (600 s) — ``now -
  EnteredCurrentStatus``; feeds the idle reserve;
- ``Idle_3600``: idle for at least an hour (monitoring);
- ``Running``: ``JobStatus == 2``.

:func:`job_classes` classifies one job; the matcher (:mod:`gwms.frontend.matching`)
classifies a million at once with the same rules and thresholds.

Schedds (:func:`schedd_exclusion`): a schedd whose running jobs (``TotalRunningJobs +
TotalSchedulerJobsRunning``) reach 95 % of ``MaxJobsRunning`` (rounded, as the original:
``int(max * 0.95 + 0.5)``), whose uploads reach 95 % of ``TransferQueueMaxUploading``, or
that sets ``CurbMatchmaking``, cannot start more jobs: its idle jobs do not count for
idle demand (more glideins would not help them).

Slots (:func:`count_slots`): glidein slot ads (those naming their factory, glidein and
entry, see :mod:`gwms.frontend.adnames`) counted per entry for one group, and in total
for the group, the frontend and the whole pool:

- ``idle``: a static or dynamic slot ``Unclaimed``/``Idle``, or a partitionable slot with
  free CPUs and more free memory than ``partitionable_glidein.min_memory`` (2500 MB);
- ``running``: a static or dynamic slot ``Claimed`` and ``Busy``/``Retiring``;
- ``failed``: a slot in state ``Owner`` or ``Drained`` (a glidein that failed validation);
- ``total``: every counted slot: static and dynamic slots, and partitionable slots that
  count as idle or failed (a partitionable slot whose resources are all carved counts
  through its dynamic slots). So idle + running + failed <= total always.

Real running per entry (:func:`count_real_running`): running jobs whose ``RemoteHost`` is
a slot of one of this group's glideins from that entry, both as jobs and as distinct
glideins (``RemoteHost`` without its ``slotN@`` part). The max-run request uses the
glidein count, as the original does since 3.x: it is in the same unit as the request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gwms.frontend import adnames as N

__all__ = [
    "IDLE",
    "IDLE_3600",
    "IDLE_3600_AGE",
    "JOB_CLASSES",
    "OLD_IDLE",
    "OLD_IDLE_AGE",
    "RUNNING",
    "SATURATION_FRACTION",
    "PoolSlots",
    "RealRunning",
    "SlotCounts",
    "SlotView",
    "ad_value",
    "classify_slot",
    "count_real_running",
    "count_slots",
    "glidein_of_slot",
    "job_classes",
    "schedd_exclusion",
]

IDLE = "Idle"
OLD_IDLE = "OldIdle"
IDLE_3600 = "Idle_3600"
RUNNING = "Running"
#: Every job class, in the order the matcher reports them.
JOB_CLASSES: tuple[str, ...] = (IDLE, OLD_IDLE, IDLE_3600, RUNNING)
#: Seconds idle after which a job is OldIdle, and Idle_3600.
OLD_IDLE_AGE = 600
IDLE_3600_AGE = 3600
#: Fraction of MaxJobsRunning (and of the upload queue) at which a schedd is saturated.
SATURATION_FRACTION = 0.95

_MISSING: Any = object()


def ad_value(ad: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """``ad[name]`` with ClassAd's case-blind names (exact spelling tried first)."""
    value = ad.get(name, _MISSING)
    if value is not _MISSING:
        return value
    lname = name.lower()
    for key, value in ad.items():
        if key.lower() == lname:
            return value
    return default


def _number(value: Any, default: float = 0) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return value
    return default


# ------------------------------------------------------------------------------- jobs


def job_classes(job: Mapping[str, Any], now: float, *, counts_for_idle: bool = True) -> tuple[str, ...]:
    """The classes of one job (see the module docstring).

    ``counts_for_idle`` False (a saturated schedd) leaves the idle classes out.
    A job without ``EnteredCurrentStatus`` is taken as having just changed status.
    """
    status = ad_value(job, N.JOB_STATUS)
    if status == N.JOB_RUNNING:
        return (RUNNING,)
    if status != N.JOB_IDLE or not counts_for_idle:
        return ()
    entered = _number(ad_value(job, N.ENTERED_CURRENT_STATUS), now)
    age = now - entered
    out = [IDLE]
    if age >= OLD_IDLE_AGE:
        out.append(OLD_IDLE)
    if age >= IDLE_3600_AGE:
        out.append(IDLE_3600)
    return tuple(out)


# ------------------------------------------------------------------------------- schedds


def schedd_exclusion(schedd_ad: Mapping[str, Any]) -> str | None:
    """Why a schedd's idle jobs do not count for idle demand, or None if they do."""
    curb = ad_value(schedd_ad, N.SCHEDD_CURB_MATCHMAKING)
    if curb is True or (isinstance(curb, str) and curb.strip().lower() == "true"):
        return "CurbMatchmaking is true"
    max_jobs = ad_value(schedd_ad, N.SCHEDD_MAX_JOBS_RUNNING)
    if isinstance(max_jobs, (int, float)) and not isinstance(max_jobs, bool):
        limit = int(max_jobs * SATURATION_FRACTION + 0.5)
        running = _number(ad_value(schedd_ad, N.SCHEDD_TOTAL_RUNNING_JOBS)) + _number(
            ad_value(schedd_ad, N.SCHEDD_TOTAL_SCHEDULER_JOBS_RUNNING)
        )
        if running >= limit:
            return f"{int(running)} running jobs reach {int(SATURATION_FRACTION * 100)}% of MaxJobsRunning {int(max_jobs)}"
    max_up = ad_value(schedd_ad, N.SCHEDD_TRANSFER_QUEUE_MAX_UPLOADING)
    if isinstance(max_up, (int, float)) and not isinstance(max_up, bool) and max_up > 0:
        limit = int(max_up * SATURATION_FRACTION + 0.5)
        uploading = _number(ad_value(schedd_ad, N.SCHEDD_TRANSFER_QUEUE_NUM_UPLOADING))
        if uploading >= limit:
            return f"{int(uploading)} uploads reach {int(SATURATION_FRACTION * 100)}% of TransferQueueMaxUploading {int(max_up)}"
    return None


# ------------------------------------------------------------------------------- slots


@dataclass(frozen=True)
class SlotCounts:
    """Glidein slot counts (the original's ``count_status``), and their CPUs."""

    total: int = 0
    idle: int = 0
    running: int = 0
    failed: int = 0
    total_cores: int = 0
    idle_cores: int = 0
    running_cores: int = 0

    def __add__(self, other: SlotCounts) -> SlotCounts:
        # field by field, spelled out: count_slots adds once per slot and level, and the
        # generic loop over fields() made it the frontend's slowest step at 10k slots
        return SlotCounts(
            self.total + other.total,
            self.idle + other.idle,
            self.running + other.running,
            self.failed + other.failed,
            self.total_cores + other.total_cores,
            self.idle_cores + other.idle_cores,
            self.running_cores + other.running_cores,
        )

    def as_dict(self) -> dict[str, int]:
        """The counts under the original's names (``Total``, ``Idle``, ``RunningCores``, ...)."""
        return {
            "Total": self.total,
            "Idle": self.idle,
            "Running": self.running,
            "Failed": self.failed,
            "TotalCores": self.total_cores,
            "IdleCores": self.idle_cores,
            "RunningCores": self.running_cores,
        }


@dataclass(frozen=True)
class SlotView:
    """What the frontend makes of one slot ad.

    ``entry`` is the entry's request name ``entry@glidein@factory`` (None: not a glidein
    slot); ``client`` the ``frontend.group`` that asked for the glidein; ``state`` one
    of ``idle``, ``running``, ``failed``, ``other`` (counted in the total only) and
    ``ignored`` (not counted: a partitionable slot with nothing usable left, a monitor slot).
    """

    name: str
    glidein: str
    entry: str | None
    client: str | None
    state: str
    cores: int


def glidein_of_slot(slot_name: str) -> str:
    """The glidein part of a slot name or RemoteHost (``slot1_2@glidein-7`` -> ``glidein-7``)."""
    return slot_name.split("@", 1)[1] if "@" in slot_name else slot_name


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def classify_slot(ad: Mapping[str, Any], *, min_memory: int = 2500) -> SlotView:
    """Classify one slot ad (see the module docstring)."""
    name = str(ad_value(ad, N.NAME, "") or "")
    factory = ad_value(ad, N.GLIDEIN_FACTORY)
    glidein_name = ad_value(ad, N.GLIDEIN_NAME)
    entry_name = ad_value(ad, N.GLIDEIN_ENTRY_NAME)
    entry = None
    if all(isinstance(v, str) and v for v in (factory, glidein_name, entry_name)):
        entry = f"{entry_name}@{glidein_name}@{factory}"
    client = ad_value(ad, N.GLIDECLIENT_NAME)
    client = client if isinstance(client, str) else None
    cores = int(_number(ad_value(ad, N.CPUS), 0))
    state_name = ad_value(ad, N.STATE)
    activity = ad_value(ad, N.ACTIVITY)
    if _is_true(ad_value(ad, N.IS_MONITOR_VM)):
        state = "ignored"
    elif state_name in N.FAILED_STATES:
        state = "failed"
    elif _is_true(ad_value(ad, N.PARTITIONABLE_SLOT)):
        memory = _number(ad_value(ad, N.MEMORY), 0)
        state = "idle" if cores > 0 and memory > min_memory else "ignored"
    elif state_name == N.STATE_UNCLAIMED and activity == N.ACTIVITY_IDLE:
        state = "idle"
    elif state_name == N.STATE_CLAIMED and activity in N.RUNNING_ACTIVITIES:
        state = "running"
    else:
        state = "other"
    return SlotView(name, glidein_of_slot(name), entry, client, state, cores)


def _counts_of(state: str, cores: int) -> SlotCounts:
    if state == "idle":
        return SlotCounts(total=1, idle=1, total_cores=cores, idle_cores=cores)
    if state == "running":
        return SlotCounts(total=1, running=1, total_cores=cores, running_cores=cores)
    if state == "failed":
        return SlotCounts(total=1, failed=1, total_cores=cores)
    return SlotCounts(total=1, total_cores=cores)


@dataclass
class PoolSlots:
    """Slot counts for one group: ``by_entry`` (this group's glideins per entry request
    name), ``group``, ``frontend`` (every group of this frontend) and ``pool`` (every
    glidein slot, whoever asked for it); ``entry_of_glidein`` maps this group's glidein
    names to their entry, for :func:`count_real_running`."""

    by_entry: dict[str, SlotCounts] = field(default_factory=dict)
    group: SlotCounts = SlotCounts()
    frontend: SlotCounts = SlotCounts()
    pool: SlotCounts = SlotCounts()
    entry_of_glidein: dict[str, str] = field(default_factory=dict)

    def entry(self, request_name: str) -> SlotCounts:
        """The counts of one entry (zeros if it has no glidein of this group)."""
        return self.by_entry.get(request_name, SlotCounts())


def count_slots(
    slot_ads: Iterable[Mapping[str, Any]],
    *,
    frontend_name: str,
    group_name: str,
    min_memory: int = 2500,
) -> PoolSlots:
    """Count glidein slots for group ``group_name`` of frontend ``frontend_name``."""
    client_name = f"{frontend_name}.{group_name}"
    frontend_prefix = f"{frontend_name}."
    out = PoolSlots()
    # tallies of (slots, cores) per scope and state, turned into SlotCounts at the end
    # (one SlotCounts per slot and level made this the frontend's slowest step at 10k slots)
    pool: dict[str, list[int]] = {}
    frontend: dict[str, list[int]] = {}
    group: dict[str, list[int]] = {}
    entries: dict[str, dict[str, list[int]]] = {}
    for ad in slot_ads:
        view = classify_slot(ad, min_memory=min_memory)
        if view.entry is None or view.state == "ignored":
            if view.entry is not None and view.client == client_name:
                out.entry_of_glidein.setdefault(view.glidein, view.entry)
            continue
        _tally(pool, view.state, view.cores)
        if view.client is None or not view.client.startswith(frontend_prefix):
            continue
        _tally(frontend, view.state, view.cores)
        if view.client != client_name:
            continue
        _tally(group, view.state, view.cores)
        _tally(entries.setdefault(view.entry, {}), view.state, view.cores)
        out.entry_of_glidein.setdefault(view.glidein, view.entry)
    out.pool = _counts_of_tally(pool)
    out.frontend = _counts_of_tally(frontend)
    out.group = _counts_of_tally(group)
    out.by_entry = {entry: _counts_of_tally(t) for entry, t in entries.items()}
    return out


def _tally(tally: dict[str, list[int]], state: str, cores: int) -> None:
    found = tally.get(state)
    if found is None:
        tally[state] = [1, cores]
    else:
        found[0] += 1
        found[1] += cores


def _counts_of_tally(tally: Mapping[str, list[int]]) -> SlotCounts:
    """The SlotCounts of ``{state: [slots, cores]}`` (what adding :func:`_counts_of` of
    every slot gives)."""
    total = total_cores = 0
    idle = idle_cores = running = running_cores = failed = 0
    for state, (n, cores) in tally.items():
        total += n
        total_cores += cores
        if state == "idle":
            idle += n
            idle_cores += cores
        elif state == "running":
            running += n
            running_cores += cores
        elif state == "failed":
            failed += n
    return SlotCounts(total, idle, running, failed, total_cores, idle_cores, running_cores)


@dataclass(frozen=True)
class RealRunning:
    """Running jobs at one entry, and the distinct glideins they run on."""

    jobs: int = 0
    glideins: int = 0


def count_real_running(
    jobs: Iterable[Mapping[str, Any]], entry_of_glidein: Mapping[str, str]
) -> dict[str, RealRunning]:
    """Per entry request name: running jobs whose RemoteHost is on this group's glideins."""
    job_counts: dict[str, int] = {}
    glideins: dict[str, set[str]] = {}
    for job in jobs:
        if ad_value(job, N.JOB_STATUS) != N.JOB_RUNNING:
            continue
        host = ad_value(job, N.REMOTE_HOST)
        if not isinstance(host, str):
            continue
        glidein = glidein_of_slot(host)
        entry = entry_of_glidein.get(glidein)
        if entry is None:
            continue
        job_counts[entry] = job_counts.get(entry, 0) + 1
        glideins.setdefault(entry, set()).add(glidein)
    return {entry: RealRunning(n, len(glideins[entry])) for entry, n in job_counts.items()}
