"""One group's cycle, pure: from what the queries found to what each entry is asked for.

The service queries (:mod:`gwms.frontend.service`) and hands the answers over as a
:class:`GroupSnapshot`; :func:`plan_group` puts the decision core together (the way the
package docstring shows) and returns a :class:`GroupPlan`; :mod:`gwms.frontend.advertise`
turns the plan into ads. No I/O, no clock read here.

:func:`plan_group`, for one group:

1. entries: the ``glidefactory`` ads of each WMS collector whose ``AuthenticatedIdentity``
   is the collector's ``factory_identity`` (:func:`authentic_ads`; the service also asks
   the collector for only those), each with its factory's public key from the
   ``glidefactoryglobal`` ad of the same factory and identity (:func:`factory_keys`);
2. schedds whose running jobs saturate them (:func:`~gwms.frontend.classify.schedd_exclusion`)
   do not count for idle demand; jobs are matched to entries
   (:func:`~gwms.frontend.matching.match_jobs`); with ``ignore_down_entries`` entries
   in downtime take no part in the proportions;
3. slots per entry, group, frontend and pool (:func:`~gwms.frontend.classify.count_slots`)
   and running jobs per entry (:func:`~gwms.frontend.classify.count_real_running`);
4. per entry: :func:`~gwms.frontend.requests.compute_request` (every max and curb, downtime)
   and :func:`~gwms.frontend.removal.decide_removal` (the state of the previous cycle in,
   the next one out), and the split over the credentials that fit the entry
   (:mod:`gwms.frontend.credentials`).

An entry gets no request (``skipped`` says why) when its factory published no usable
key or no credential fits it.

A cycle whose queries failed decides nothing new (:func:`plan_incomplete`): the previous
plan's requests are kept, and the removal levels go through
:func:`~gwms.frontend.removal.decide_removal` with ``complete=False`` (no counter
advances, nothing above WAIT), so a failed query can never turn into ALL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from gwms.factory import attributes as FA
from gwms.frontend import adnames as N
from gwms.frontend.classify import (
    IDLE,
    OLD_IDLE,
    RealRunning,
    SlotCounts,
    ad_value,
    count_real_running,
    count_slots,
    schedd_exclusion,
)
from gwms.frontend.config import FrontendConfig
from gwms.frontend.credentials import (
    CredentialShare,
    credentials_for_entry,
    group_credentials,
    split_request,
)
from gwms.frontend.matching import Entry, entry_from_factory_ad, match_jobs
from gwms.frontend.removal import (
    Observation,
    RemovalDecision,
    RemovalState,
    decide_removal,
)
from gwms.frontend.requests import EntryDemand, EntryRequest, Totals, compute_request

__all__ = [
    "SKIP_NO_CREDENTIAL",
    "SKIP_NO_KEY",
    "EntryPlan",
    "FactoryKey",
    "GroupPlan",
    "GroupSnapshot",
    "WmsView",
    "authentic_ads",
    "client_name",
    "factory_keys",
    "factory_name_of",
    "in_downtime",
    "plan_group",
    "plan_incomplete",
]

#: Why an entry gets no request.
SKIP_NO_KEY = "its factory advertised no usable public key"
SKIP_NO_CREDENTIAL = "no credential fits its trust domain and authentication method"


def client_name(config: FrontendConfig, group: str) -> str:
    """``<frontend>.<group>``: the client a group's requests and glideins belong to."""
    return f"{config.frontend_name}.{group}"


# ------------------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class FactoryKey:
    """A factory's public key, from its ``glidefactoryglobal`` ad (Name ``instance@factory``)."""

    factory: str
    key_id: str
    public_pem: str


@dataclass(frozen=True)
class WmsView:
    """What one WMS collector holds for this group: entry and factory-global ads."""

    url: str
    my_identity: str
    factory_identity: str
    entry_ads: Sequence[Mapping[str, Any]] = ()
    global_ads: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class GroupSnapshot:
    """Everything one group's queries found.

    ``schedd_ads``: the watched schedds' ``Scheduler`` ads by Name; ``jobs_by_schedd``:
    their idle and running jobs matching the group's job query; ``slot_ads``: the user
    pool's glidein slots; ``wms``: one view per WMS collector; ``now``: the time job
    ages are measured at.
    """

    now: float
    schedd_ads: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    jobs_by_schedd: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    slot_ads: Sequence[Mapping[str, Any]] = ()
    wms: Sequence[WmsView] = ()


def authentic_ads(ads: Iterable[Mapping[str, Any]], identity: str) -> list[Mapping[str, Any]]:
    """The ads whose ``AuthenticatedIdentity`` (stamped by the collector) is ``identity``."""
    return [ad for ad in ads if ad_value(ad, FA.AUTHENTICATED_IDENTITY) == identity]


def factory_keys(global_ads: Iterable[Mapping[str, Any]]) -> dict[str, FactoryKey]:
    """Factory (``instance@factory``) -> its public key, from ``glidefactoryglobal`` ads."""
    out: dict[str, FactoryKey] = {}
    for ad in global_ads:
        name = ad_value(ad, FA.NAME)
        kid = ad_value(ad, FA.PUB_KEY_ID)
        pem = ad_value(ad, FA.PUB_KEY_VALUE)
        if all(isinstance(v, str) and v for v in (name, kid, pem)):
            out[name] = FactoryKey(name, kid, pem)
    return out


def factory_name_of(entry_name: str) -> str:
    """``instance@factory`` of an entry's ``entry@instance@factory``."""
    return entry_name.split("@", 1)[1] if "@" in entry_name else ""


def in_downtime(entry: Entry) -> bool:
    """Whether the entry's ad says it is in downtime."""
    value = ad_value(entry.attrs, N.GLIDEIN_IN_DOWNTIME, False)
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


# ------------------------------------------------------------------------------ plans


@dataclass(frozen=True)
class EntryPlan:
    """What a group decided for one entry, and what it saw there.

    ``idle_jobs``/``old_idle_jobs``/``unique_idle_jobs``: idle jobs matching the entry
    (all, idle over 10 minutes, matching only this entry); ``running_jobs``: this group's
    jobs running on glideins from the entry; ``slots``: this group's glidein slots there.
    ``shares``: the request per credential (empty when ``skipped`` says why not).
    """

    entry: Entry
    wms_url: str
    my_identity: str
    key: FactoryKey | None
    in_downtime: bool
    idle_jobs: int
    old_idle_jobs: int
    unique_idle_jobs: int
    running_jobs: int
    demand: EntryDemand
    slots: SlotCounts
    request: EntryRequest
    removal: RemovalDecision
    shares: tuple[CredentialShare, ...] = ()
    skipped: str = ""

    @property
    def name(self) -> str:
        """The entry's request name ``entry@instance@factory``."""
        return self.entry.name

    @property
    def limits(self) -> tuple[str, ...]:
        """The limits that fired for this entry's request."""
        return self.request.limits


@dataclass(frozen=True)
class GroupPlan:
    """One group's decisions for one cycle.

    ``complete`` False: the queries failed (``error``) and the requests are the previous
    cycle's. ``states``: the removal state of each entry (by entry key) for the next
    cycle. ``turn``: the round-robin position for the next cycle.
    """

    group: str
    client: str
    complete: bool
    entries: tuple[EntryPlan, ...] = ()
    totals: Totals = field(default_factory=Totals)
    states: Mapping[str, RemovalState] = field(default_factory=dict)
    idle_jobs: int = 0
    running_jobs: int = 0
    unmatched_idle: int = 0
    excluded_schedds: Mapping[str, str] = field(default_factory=dict)
    match_errors: int = 0
    turn: int = 0
    error: str = ""


def _entries(snapshot: GroupSnapshot) -> list[tuple[Entry, WmsView, FactoryKey | None]]:
    out: list[tuple[Entry, WmsView, FactoryKey | None]] = []
    seen: set[str] = set()
    for view in snapshot.wms:
        keys = factory_keys(authentic_ads(view.global_ads, view.factory_identity))
        for ad in authentic_ads(view.entry_ads, view.factory_identity):
            entry = entry_from_factory_ad(ad, factory_pool=view.url, my_identity=view.my_identity)
            if not entry.name or entry.key in seen:
                continue
            seen.add(entry.key)
            out.append((entry, view, keys.get(factory_name_of(entry.name))))
    out.sort(key=lambda t: (t[1].url, t[0].name))
    return out


def plan_group(
    config: FrontendConfig,
    group: str,
    snapshot: GroupSnapshot,
    states: Mapping[str, RemovalState] | None = None,
    *,
    turn: int = 0,
) -> GroupPlan:
    """Decide one group's requests from a complete snapshot (see the module docstring)."""
    states = states or {}
    gcfg = config.group(group)
    policy = config.match_policy(group)
    limits = config.request_limits(group)
    removal_policy = config.removal_policy(group)
    selection = config.credential_selection_of(group)
    credentials = group_credentials(config, group)

    found = _entries(snapshot)
    entries = [e for e, _, _ in found]
    down = [in_downtime(e) for e in entries]
    excluded = {}
    for name, ad in snapshot.schedd_ads.items():
        why = schedd_exclusion(ad)
        if why is not None:
            excluded[name] = why
    # entries in downtime take no part in the proportions when so configured
    matched_idx = [i for i, d in enumerate(down) if not (d and gcfg.limits.ignore_down_entries)]
    result = match_jobs(
        snapshot.jobs_by_schedd,
        [entries[i] for i in matched_idx],
        policy,
        now=snapshot.now,
        excluded_schedds=excluded,
    )
    position = {entry_index: k for k, entry_index in enumerate(matched_idx)}

    slots = count_slots(
        snapshot.slot_ads,
        frontend_name=config.frontend_name,
        group_name=group,
        min_memory=gcfg.limits.partitionable_glidein.min_memory,
    )
    running_jobs = [
        job for jobs in snapshot.jobs_by_schedd.values() for job in jobs
        if ad_value(job, N.JOB_STATUS) == N.JOB_RUNNING
    ]
    real = count_real_running(running_jobs, slots.entry_of_glidein)
    totals = Totals(
        slots.group.total, slots.group.idle,
        slots.frontend.total, slots.frontend.idle,
        slots.pool.total, slots.pool.idle,
    )
    idle_class = result[IDLE]
    old_class = result[OLD_IDLE]

    plans: list[EntryPlan] = []
    new_states: dict[str, RemovalState] = {}
    for i, (entry, view, key) in enumerate(found):
        k = position.get(i)
        idle = idle_class.count[k] if k is not None else 0
        old = old_class.count[k] if k is not None else 0
        unique = idle_class.hereonly[k] if k is not None else 0
        here = slots.entry(entry.name)
        running = real.get(entry.name, RealRunning())
        demand = EntryDemand(
            prop_idle=idle_class.prop_mc[k] if k is not None else 0,
            prop_old_idle=old_class.prop_mc[k] if k is not None else 0,
            glideins=here.total,
            idle_slots=here.idle,
            real_running=running.glideins,
        )
        request = compute_request(demand, totals, limits, in_downtime=down[i])
        removal = decide_removal(
            states.get(entry.key, RemovalState()),
            Observation(idle, here.total, here.idle, complete=True),
            removal_policy,
        )
        new_states[entry.key] = removal.state
        skipped = ""
        shares: tuple[CredentialShare, ...] = ()
        fitting = credentials_for_entry(credentials, entry)
        if key is None:
            skipped = SKIP_NO_KEY
        elif not fitting:
            skipped = SKIP_NO_CREDENTIAL
        else:
            shares = tuple(split_request(request.min_idle, request.max_run, fitting, selection, turn))
        plans.append(EntryPlan(
            entry=entry, wms_url=view.url, my_identity=view.my_identity, key=key,
            in_downtime=down[i], idle_jobs=idle, old_idle_jobs=old, unique_idle_jobs=unique,
            running_jobs=running.jobs, demand=demand, slots=here, request=request,
            removal=removal, shares=shares, skipped=skipped,
        ))
    return GroupPlan(
        group=group,
        client=client_name(config, group),
        complete=True,
        entries=tuple(plans),
        totals=totals,
        states=new_states,
        idle_jobs=result.clusters.total(IDLE),
        running_jobs=len(running_jobs),
        unmatched_idle=idle_class.unmatched,
        excluded_schedds=excluded,
        match_errors=result.errors,
        turn=turn + 1,
    )


def plan_incomplete(
    config: FrontendConfig,
    group: str,
    previous: GroupPlan | None,
    states: Mapping[str, RemovalState] | None,
    error: str,
) -> GroupPlan:
    """The plan of a cycle whose queries failed: the previous requests, removal levels
    decided with ``complete=False`` (see the module docstring)."""
    states = states or {}
    policy = config.removal_policy(group)
    if previous is None:
        return GroupPlan(group=group, client=client_name(config, group), complete=False,
                         states=dict(states), error=error)
    entries: list[EntryPlan] = []
    new_states: dict[str, RemovalState] = {}
    for plan in previous.entries:
        removal = decide_removal(
            states.get(plan.entry.key, RemovalState()),
            Observation(plan.idle_jobs, plan.slots.total, plan.slots.idle, complete=False),
            policy,
        )
        new_states[plan.entry.key] = removal.state
        entries.append(replace(plan, removal=removal))
    return replace(previous, complete=False, entries=tuple(entries), states=new_states, error=error)

