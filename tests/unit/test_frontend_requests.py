"""The request math: the original's pinned values and fixture, and properties of every limit."""

from __future__ import annotations

from dataclasses import replace

import frontend_workload as fw
from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.frontend import adnames as N
from gwms.frontend.classify import IDLE, OLD_IDLE
from gwms.frontend.matching import match_jobs
from gwms.frontend.requests import (
    EntryDemand,
    LevelLimit,
    RequestLimits,
    Totals,
    compute_request,
    max_run,
    min_idle,
)

DEFAULTS = RequestLimits()


def test_pinned_max_run_values() -> None:
    assert max_run(EntryDemand(prop_idle=100, real_running=100, idle_slots=0), DEFAULTS) == (230, ())
    assert max_run(EntryDemand(prop_idle=412, real_running=971, idle_slots=0), DEFAULTS) == (1591, ())


def test_no_idle_jobs_never_grows_max_run() -> None:
    assert max_run(EntryDemand(prop_idle=0, real_running=37, idle_slots=5), DEFAULTS) == (37, ())
    assert compute_request(EntryDemand(real_running=37), Totals(), DEFAULTS).min_idle == 0


def test_idle_slots_are_subtracted() -> None:
    demand = EntryDemand(prop_idle=30, prop_old_idle=30, idle_slots=10, real_running=0, glideins=10)
    request = compute_request(demand, Totals(group_total=10, group_idle=10), DEFAULTS)
    assert request.effective_idle == 20
    # int(20 / 3) + min(20 // 3, 5) = 6 + 5 = 11, halved once for 10 idle slots >= curb 5
    assert request.min_idle == 5
    assert request.limits == (N.CURB_IDLE_GLIDEINS_PER_ENTRY,)
    assert request.max_run == int((20 + 0) * 1.15 + 1)


def test_fixture_min_idle_and_max_run() -> None:
    result = match_jobs(fw.jobs_by_schedd(), fw.entries(), fw.policy(), now=fw.server_time())
    expected = fw.expected()
    for index, entry in enumerate(fw.entries()):
        demand = EntryDemand(
            prop_idle=result[IDLE].prop_mc[index], prop_old_idle=result[OLD_IDLE].prop_mc[index]
        )
        request = compute_request(demand, Totals(), DEFAULTS)
        assert request.min_idle == expected["glidein_min_idle"][entry.key], entry.key
        assert request.max_run == expected["glidein_max_run"][entry.key], entry.key


def test_every_maximum_stops_the_request_and_is_named() -> None:
    cases = [
        (EntryDemand(prop_idle=50, glideins=10000), Totals(), N.LIMIT_TOTAL_GLIDEINS_PER_ENTRY),
        (EntryDemand(prop_idle=50, idle_slots=0, glideins=100), Totals(), None),
        (EntryDemand(prop_idle=500, idle_slots=100, glideins=100), Totals(), N.LIMIT_IDLE_GLIDEINS_PER_ENTRY),
        (EntryDemand(prop_idle=50), Totals(group_total=100000), N.LIMIT_TOTAL_GLIDEINS_PER_GROUP),
        (EntryDemand(prop_idle=50), Totals(group_idle=1000), N.LIMIT_IDLE_GLIDEINS_PER_GROUP),
        (EntryDemand(prop_idle=50), Totals(frontend_total=100000), N.LIMIT_TOTAL_GLIDEINS_PER_FRONTEND),
        (EntryDemand(prop_idle=50), Totals(frontend_idle=1000), N.LIMIT_IDLE_GLIDEINS_PER_FRONTEND),
        (EntryDemand(prop_idle=50), Totals(global_total=100000), N.LIMIT_TOTAL_GLIDEINS_GLOBAL),
        (EntryDemand(prop_idle=50), Totals(global_idle=1000), N.LIMIT_IDLE_GLIDEINS_GLOBAL),
    ]
    for demand, totals, name in cases:
        idle, fired = min_idle(demand, totals, DEFAULTS)
        if name is None:
            assert idle > 0
        else:
            assert idle == 0 and name in fired, name


def test_every_curb_halves_and_is_named() -> None:
    demand = EntryDemand(prop_idle=300, prop_old_idle=0)  # int(300/3) = 100
    base, _ = min_idle(demand, Totals(), DEFAULTS)
    assert base == 100
    for totals, name in [
        (Totals(group_total=90000), N.CURB_TOTAL_GLIDEINS_PER_GROUP),
        (Totals(group_idle=200), N.CURB_IDLE_GLIDEINS_PER_GROUP),
        (Totals(frontend_total=90000), N.CURB_TOTAL_GLIDEINS_PER_FRONTEND),
        (Totals(frontend_idle=200), N.CURB_IDLE_GLIDEINS_PER_FRONTEND),
        (Totals(global_total=90000), N.CURB_TOTAL_GLIDEINS_GLOBAL),
        (Totals(global_idle=200), N.CURB_IDLE_GLIDEINS_GLOBAL),
    ]:
        assert min_idle(demand, totals, DEFAULTS) == (50, (name,))
    everything = Totals(90000, 200, 90000, 200, 90000, 200)
    idle, fired = min_idle(demand, everything, DEFAULTS)
    assert idle == 100 // 2**6 == 1 and len(fired) == 6


def test_at_least_one_when_there_is_demand() -> None:
    demand = EntryDemand(prop_idle=1, prop_old_idle=0)
    assert min_idle(demand, Totals(90000, 200, 90000, 200, 90000, 200), DEFAULTS)[0] == 1


def test_min_running_raises_the_demand() -> None:
    limits = replace(DEFAULTS, entry_min_running=9)
    request = compute_request(EntryDemand(prop_idle=0), Totals(), limits)
    assert request.min_idle == 3 and request.max_run == int(9 * 1.15 + 1)


def test_downtime_asks_for_nothing() -> None:
    request = compute_request(EntryDemand(prop_idle=500, real_running=20), Totals(), DEFAULTS, in_downtime=True)
    assert (request.min_idle, request.max_run) == (0, 0)
    assert request.limits == (N.LIMIT_DOWNTIME,)


def test_max_run_is_capped_at_the_entry_maximum() -> None:
    limits = replace(DEFAULTS, entry_max_glideins=1000)
    assert max_run(EntryDemand(prop_idle=5000), limits) == (1000, (N.LIMIT_MAX_RUN_PER_ENTRY,))


# ----------------------------------------------------------------------------- properties

counts = st.integers(min_value=0, max_value=120_000)
small = st.integers(min_value=0, max_value=3000)


@st.composite
def limits_strategy(draw: st.DrawFn) -> RequestLimits:
    def level(top: int) -> LevelLimit:
        maximum = draw(st.integers(min_value=0, max_value=top))
        return LevelLimit(maximum, draw(st.integers(min_value=0, max_value=top)))

    return RequestLimits(
        entry_max_glideins=draw(st.integers(min_value=0, max_value=20000)),
        entry_min_running=draw(st.sampled_from([0, 0, 0, 5, 50])),
        relative_to_queue=draw(st.floats(min_value=0.5, max_value=3.0)),
        entry_max_idle_slots=draw(st.integers(min_value=0, max_value=500)),
        entry_curb_idle_slots=draw(st.integers(min_value=0, max_value=500)),
        max_idle_request=draw(st.integers(min_value=0, max_value=500)),
        reserve_idle=draw(st.integers(min_value=0, max_value=20)),
        ramp_up_attenuation=draw(st.floats(min_value=0.5, max_value=10.0)),
        group_total=level(120000),
        group_idle=level(3000),
        frontend_total=level(120000),
        frontend_idle=level(3000),
        global_total=level(120000),
        global_idle=level(3000),
    )


demands = st.builds(EntryDemand, prop_idle=small, prop_old_idle=small, glideins=counts, idle_slots=small, real_running=counts)
totals_strategy = st.builds(Totals, counts, small, counts, small, counts, small)


@settings(max_examples=500, deadline=None)
@given(demands, totals_strategy, limits_strategy())
def test_no_request_ever_exceeds_a_max(demand: EntryDemand, totals: Totals, limits: RequestLimits) -> None:
    request = compute_request(demand, totals, limits)
    assert 0 <= request.min_idle <= limits.max_idle_request
    assert 0 <= request.max_run <= limits.entry_max_glideins
    if request.min_idle > 0:
        assert demand.glideins + request.min_idle <= limits.entry_max_glideins
        assert demand.idle_slots < limits.entry_max_idle_slots
        assert totals.group_total + request.min_idle <= limits.group_total.max
        assert totals.group_idle + request.min_idle <= limits.group_idle.max
        assert totals.frontend_total + request.min_idle <= limits.frontend_total.max
        assert totals.frontend_idle + request.min_idle <= limits.frontend_idle.max
        assert totals.global_total + request.min_idle <= limits.global_total.max
        assert totals.global_idle + request.min_idle <= limits.global_idle.max


def _no_curbs(limits: RequestLimits) -> RequestLimits:
    huge = 10**9
    return replace(
        limits,
        entry_curb_idle_slots=huge,
        group_total=LevelLimit(limits.group_total.max, huge),
        group_idle=LevelLimit(limits.group_idle.max, huge),
        frontend_total=LevelLimit(limits.frontend_total.max, huge),
        frontend_idle=LevelLimit(limits.frontend_idle.max, huge),
        global_total=LevelLimit(limits.global_total.max, huge),
        global_idle=LevelLimit(limits.global_idle.max, huge),
    )


@settings(max_examples=500, deadline=None)
@given(demands, totals_strategy, limits_strategy())
def test_curbs_only_lower_the_request(demand: EntryDemand, totals: Totals, limits: RequestLimits) -> None:
    with_curbs = compute_request(demand, totals, limits)
    without = compute_request(demand, totals, _no_curbs(limits))
    assert with_curbs.min_idle <= without.min_idle
    assert with_curbs.max_run == without.max_run
    curb_names = {name for name in with_curbs.limits if name.startswith("Curb")}
    if not curb_names:
        assert with_curbs.min_idle == without.min_idle


@settings(max_examples=300, deadline=None)
@given(demands, totals_strategy, limits_strategy())
def test_zero_idle_jobs_means_no_idle_request_and_no_growth(
    demand: EntryDemand, totals: Totals, limits: RequestLimits
) -> None:
    limits = replace(limits, entry_min_running=0)
    demand = replace(demand, prop_idle=0, prop_old_idle=0)
    request = compute_request(demand, totals, limits)
    assert request.min_idle == 0
    assert request.max_run == min(demand.real_running, limits.entry_max_glideins)


@settings(max_examples=300, deadline=None)
@given(demands, totals_strategy, limits_strategy())
def test_demand_with_room_gets_at_least_one(demand: EntryDemand, totals: Totals, limits: RequestLimits) -> None:
    idle, fired = min_idle(demand, totals, limits)
    effective = max(max(demand.prop_idle, limits.entry_min_running) - demand.idle_slots, 0)
    maxima_hit = any(name in fired for name in (
        N.LIMIT_TOTAL_GLIDEINS_PER_ENTRY, N.LIMIT_IDLE_GLIDEINS_PER_ENTRY, N.LIMIT_TOTAL_GLIDEINS_PER_GROUP,
        N.LIMIT_IDLE_GLIDEINS_PER_GROUP, N.LIMIT_TOTAL_GLIDEINS_PER_FRONTEND, N.LIMIT_IDLE_GLIDEINS_PER_FRONTEND,
        N.LIMIT_TOTAL_GLIDEINS_GLOBAL, N.LIMIT_IDLE_GLIDEINS_GLOBAL,
    ) if idle == 0)
    if effective > 0 and not maxima_hit and limits.max_idle_request >= 1:
        assert idle >= 1
    if effective == 0:
        assert idle == 0
