"""How many glideins to ask an entry for: min idle and max run (pure request math).

For each entry, each cycle, a group asks the factory for ``min_idle`` idle glideins
(``ReqIdleGlideins``) and at most ``max_run`` glideins in all (``ReqMaxGlideins``).
Inputs (:class:`EntryDemand`) come from matching (``prop_mc`` of the Idle and OldIdle
classes, in glideins), from the slot counts of the user pool (this group's glideins at
the entry) and from the real running glideins at the entry; :class:`Totals` holds the
glidein counts of the group, the frontend and the whole pool. Limits
(:class:`RequestLimits`) are the group's, the frontend's and the global ones.

min idle (:func:`min_idle`), as GlideinWMS computes it:

1. ``prop_idle`` is raised to ``running_glideins_per_entry.min``; ``effective_idle =
   max(prop_idle - idle_slots, 0)``, the same for OldIdle.
2. If any **max** is reached — the entry's slots ≥ ``running_glideins_per_entry.max``,
   its idle slots ≥ ``idle_vms_per_entry.max``, the group's slots ≥
   ``running_glideins_total.max`` or idle slots ≥ ``idle_vms_total.max``, the same at
   frontend and global level — the request is 0 and every max reached is recorded.
3. Else, with ``effective_idle > 0``: ``n = min(effective_idle, headroom to every max)``
   (every max but the entry's idle slots, as in the original);
   ``n = int(n / ramp_up_attenuation)``; ``n += min(effective_oldidle // 3, reserve)``;
   ``n = min(n, idle_glideins_per_entry.max)`` (gwms also keeps ``n`` within the
   headroom after adding the reserve, which the original can exceed by up to the
   reserve); halve ``n`` for each **curb** reached
   (entry idle slots ≥ ``idle_vms_per_entry.curb``, group, frontend and global
   totals and idle slots ≥ their curbs), recording each; at least 1.
4. Else 0.

max run (:func:`max_run`): with idle jobs, ``int((max(prop_idle - idle_slots, 0) +
real_running) * relative_to_queue + 1)``; without, ``real_running`` (no growth). The
arithmetic is the original's, in floating point: (100 idle, 100 running, 0 idle slots)
gives 230, not 231, because 200 × 1.15 is 229.99999999999997; (412, 971, 0) gives 1591.
gwms then caps it at ``running_glideins_per_entry.max`` (recorded as ``MaxRunPerEntry``;
the original sends it uncapped), so no request ever exceeds a configured maximum.

Limits that fire are recorded by the names of :mod:`gwms.frontend.adnames`
(``TotalGlideinsPerEntry``, ``CurbIdleGlideinsPerGroup``, ...) as the glideresource ads
show them. An entry (or the frontend) in downtime gets 0 and 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from gwms.frontend import adnames as N

__all__ = [
    "EntryDemand",
    "EntryRequest",
    "LevelLimit",
    "RequestLimits",
    "Totals",
    "compute_request",
    "max_run",
    "min_idle",
]


@dataclass(frozen=True)
class LevelLimit:
    """A maximum (stop asking) and a curb (halve what is asked) on a count."""

    max: int
    curb: int


@dataclass(frozen=True)
class RequestLimits:
    """Every limit the request math uses, with GlideinWMS's defaults.

    Entry level (per group): ``entry_max_glideins`` (running_glideins_per_entry.max),
    ``entry_min_running`` (.min), ``relative_to_queue``, ``entry_max_idle_slots`` and
    ``entry_curb_idle_slots`` (idle_vms_per_entry), ``max_idle_request`` and
    ``reserve_idle`` (idle_glideins_per_entry), ``ramp_up_attenuation``. Group, frontend
    and global levels: a :class:`LevelLimit` on all glideins and one on idle slots.
    Build it from a configuration with :meth:`gwms.frontend.config.FrontendConfig.request_limits`.
    """

    entry_max_glideins: int = 10000
    entry_min_running: int = 0
    relative_to_queue: float = 1.15
    entry_max_idle_slots: int = 100
    entry_curb_idle_slots: int = 5
    max_idle_request: int = 100
    reserve_idle: int = 5
    ramp_up_attenuation: float = 3.0
    group_total: LevelLimit = LevelLimit(100000, 90000)
    group_idle: LevelLimit = LevelLimit(1000, 200)
    frontend_total: LevelLimit = LevelLimit(100000, 90000)
    frontend_idle: LevelLimit = LevelLimit(1000, 200)
    global_total: LevelLimit = LevelLimit(100000, 90000)
    global_idle: LevelLimit = LevelLimit(1000, 200)


@dataclass(frozen=True)
class EntryDemand:
    """What one entry needs and has, for one group.

    ``prop_idle`` and ``prop_old_idle``: the ``prop_mc`` of the Idle and OldIdle
    classes (glideins). ``glideins`` and ``idle_slots``: this group's slots at the entry
    (total and idle). ``real_running``: glideins at the entry running this group's jobs.
    """

    prop_idle: int = 0
    prop_old_idle: int = 0
    glideins: int = 0
    idle_slots: int = 0
    real_running: int = 0


@dataclass(frozen=True)
class Totals:
    """Glidein slots (all, and idle) of the group, of the frontend and in the whole pool."""

    group_total: int = 0
    group_idle: int = 0
    frontend_total: int = 0
    frontend_idle: int = 0
    global_total: int = 0
    global_idle: int = 0


@dataclass(frozen=True)
class EntryRequest:
    """The request for one entry and why it is what it is.

    ``limits`` names every max and curb that fired, in the order checked;
    ``effective_idle`` is the idle demand left after idle slots.
    """

    min_idle: int
    max_run: int
    limits: tuple[str, ...] = ()
    effective_idle: int = 0


def _maxima(demand: EntryDemand, totals: Totals, limits: RequestLimits) -> list[tuple[str, int, int]]:
    """(name, count, max) of every maximum, in the original's order."""
    return [
        (N.LIMIT_TOTAL_GLIDEINS_PER_ENTRY, demand.glideins, limits.entry_max_glideins),
        (N.LIMIT_IDLE_GLIDEINS_PER_ENTRY, demand.idle_slots, limits.entry_max_idle_slots),
        (N.LIMIT_TOTAL_GLIDEINS_PER_GROUP, totals.group_total, limits.group_total.max),
        (N.LIMIT_IDLE_GLIDEINS_PER_GROUP, totals.group_idle, limits.group_idle.max),
        (N.LIMIT_TOTAL_GLIDEINS_PER_FRONTEND, totals.frontend_total, limits.frontend_total.max),
        (N.LIMIT_IDLE_GLIDEINS_PER_FRONTEND, totals.frontend_idle, limits.frontend_idle.max),
        (N.LIMIT_TOTAL_GLIDEINS_GLOBAL, totals.global_total, limits.global_total.max),
        (N.LIMIT_IDLE_GLIDEINS_GLOBAL, totals.global_idle, limits.global_idle.max),
    ]


def _curbs(demand: EntryDemand, totals: Totals, limits: RequestLimits) -> list[tuple[str, int, int]]:
    """(name, count, curb) of every curb, in the original's order."""
    return [
        (N.CURB_IDLE_GLIDEINS_PER_ENTRY, demand.idle_slots, limits.entry_curb_idle_slots),
        (N.CURB_TOTAL_GLIDEINS_PER_GROUP, totals.group_total, limits.group_total.curb),
        (N.CURB_IDLE_GLIDEINS_PER_GROUP, totals.group_idle, limits.group_idle.curb),
        (N.CURB_TOTAL_GLIDEINS_PER_FRONTEND, totals.frontend_total, limits.frontend_total.curb),
        (N.CURB_IDLE_GLIDEINS_PER_FRONTEND, totals.frontend_idle, limits.frontend_idle.curb),
        (N.CURB_TOTAL_GLIDEINS_GLOBAL, totals.global_total, limits.global_total.curb),
        (N.CURB_IDLE_GLIDEINS_GLOBAL, totals.global_idle, limits.global_idle.curb),
    ]


def _raised_prop(demand: EntryDemand, limits: RequestLimits) -> int:
    """prop_idle raised to running_glideins_per_entry.min."""
    return max(demand.prop_idle, limits.entry_min_running)


def min_idle(demand: EntryDemand, totals: Totals, limits: RequestLimits) -> tuple[int, tuple[str, ...]]:
    """The idle glideins to request and the limits that fired (see the module docstring)."""
    prop = _raised_prop(demand, limits)
    effective_idle = max(prop - demand.idle_slots, 0)
    effective_old_idle = max(demand.prop_old_idle - demand.idle_slots, 0)
    maxima = _maxima(demand, totals, limits)
    reached = tuple(name for name, count, top in maxima if count >= top)
    if reached:
        return 0, reached
    if effective_idle <= 0:
        return 0, ()
    # the headroom to every max but the entry's idle slots (as the original: idle slots
    # and requested idle glideins are different things; that max only stops requests)
    room = [m for m in maxima if m[0] != N.LIMIT_IDLE_GLIDEINS_PER_ENTRY]
    headroom = min(top - count for _, count, top in room)
    n = min(effective_idle, headroom)
    # ask for a fraction only: previous requests may still be queued at the site
    n = int(n / limits.ramp_up_attenuation)
    n += min(effective_old_idle // 3, limits.reserve_idle)
    fired: list[str] = []
    if n > headroom:  # gwms: the reserve may not push a request past a maximum
        n = headroom
        fired.append(min(room, key=lambda m: m[2] - m[1])[0])
    if n > limits.max_idle_request:
        n = limits.max_idle_request
        fired.append(N.LIMIT_IDLE_REQUEST_PER_ENTRY)
    for name, count, curb in _curbs(demand, totals, limits):
        if count >= curb:
            n //= 2  # exponential back-off: int(n / 2**k) equals k floor-halvings
            fired.append(name)
    n = max(n, 1)
    # never above the idle request cap or the headroom (1 could be if the cap is 0)
    n = min(n, limits.max_idle_request)
    return n, tuple(fired)


def max_run(demand: EntryDemand, limits: RequestLimits) -> tuple[int, tuple[str, ...]]:
    """The most glideins the entry may hold for this group, and the limits that fired."""
    prop = _raised_prop(demand, limits)
    if prop > 0:
        # the original's float arithmetic, so the pinned values come out the same
        value = int((max(prop - demand.idle_slots, 0) + demand.real_running) * limits.relative_to_queue + 1)
    else:
        value = int(demand.real_running)
    if value > limits.entry_max_glideins:
        return limits.entry_max_glideins, (N.LIMIT_MAX_RUN_PER_ENTRY,)
    return value, ()


def compute_request(
    demand: EntryDemand,
    totals: Totals,
    limits: RequestLimits,
    *,
    in_downtime: bool = False,
) -> EntryRequest:
    """min idle and max run for one entry, with every limit that fired."""
    effective = max(_raised_prop(demand, limits) - demand.idle_slots, 0)
    if in_downtime:
        return EntryRequest(0, 0, (N.LIMIT_DOWNTIME,), effective)
    idle, idle_limits = min_idle(demand, totals, limits)
    run, run_limits = max_run(demand, limits)
    return EntryRequest(idle, run, idle_limits + run_limits, effective)
