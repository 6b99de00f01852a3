"""One entry's plan (plan_entry) and the entry's health (pauses with back-off)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.factory.config import CyclePolicy, FailurePolicy, RemovalLevel
from gwms.factory.health import (
    EntryHealth,
    is_early_death,
    pause_length,
    record_healthy_pilot,
    record_pilot_end,
    record_submissions,
    submit_cap,
)
from gwms.factory.limits import Counts, Limits, PilotView, count_pilots
from gwms.factory.planning import EntryInput, RequestView, plan_entry
from gwms.factory.states import IDLE_STATES, PilotState

POLICY = CyclePolicy()
ENTRY_LIMITS = Limits(10000, 2000, 1000)
GROUP_LIMITS = Limits(5000, 100, 50)


def _pilots(key, n, state, start=0, **kw):
    return [PilotView(f"{key}-{start + i}", state, float(start + i), 0.0, **kw) for i in range(n)]


def _input(requests, pilots, **kw):
    groups = {k: "fe:main" for k in pilots}
    groups.update({r.key: r.group for r in requests})
    base = {
        "now": 1000.0, "entry_limits": ENTRY_LIMITS, "group_limits": {"fe:main": GROUP_LIMITS},
        "policy": POLICY, "pilots": pilots, "groups_of": groups, "requests": requests, "submit_cap": 100,
    }
    base.update(kw)
    return EntryInput(**base)


def _req(key="c1", idle=10, mx=100, **kw):
    return RequestView(key=key, group="fe:main", req_idle=idle, req_max=mx, **kw)


def test_plan_submits_for_each_request_within_the_group_limit():
    plan = plan_entry(_input([_req("c1", 80), _req("c2", 80)], {}))
    assert plan.submits == {"c1": 80, "c2": 20}  # the frontend:class idle limit is 100
    assert "frontend idle limit" in plan.limited_by["c2"]


def test_plan_respects_the_cycle_cap_and_probation():
    plan = plan_entry(_input([_req("c1", 500, 1000)], {}, group_limits={}))
    assert plan.total_submits == 100
    plan = plan_entry(_input([_req("c1", 500, 1000)], {}, submit_cap=1))
    assert plan.total_submits == 1
    plan = plan_entry(_input([_req("c1", 500, 1000)], {}, submit_cap=0))
    assert plan.total_submits == 0


def test_downtime_asks_for_nothing_and_keeps_running_glideins():
    pilots = {"c1": _pilots("c1", 5, PilotState.RUNNING) + _pilots("c1", 2, PilotState.PENDING, 10)}
    plan = plan_entry(_input([_req("c1", 10, 100, in_downtime=True)], pilots))
    assert plan.submits == {} and plan.removals == []


def test_stale_requests_mean_no_submissions_and_no_excess_removal():
    pilots = {"c1": _pilots("c1", 20, PilotState.PENDING)}
    plan = plan_entry(_input([_req("c1", 0, 0, remove_level=RemovalLevel.IDLE)], pilots,
                             act_on_requests=False))
    assert plan.submits == {} and plan.removals == []


def test_excess_is_removed_five_at_a_time():
    pilots = {"c1": _pilots("c1", 20, PilotState.PENDING)}
    plan = plan_entry(_input([_req("c1", 2, 100, remove_level=RemovalLevel.IDLE)], pilots))
    assert len(plan.removals) == 5 and plan.submits == {}


def test_glideins_of_a_vanished_request_go_after_the_grace_but_running_ones_stay():
    pilots = {"gone": _pilots("gone", 3, PilotState.PENDING) + _pilots("gone", 3, PilotState.RUNNING, 10)}
    assert plan_entry(_input([], pilots)).removals == []
    plan = plan_entry(_input([], pilots, orphans_removable=frozenset({"gone"})))
    assert sorted(pid for pid, _ in plan.removals) == ["gone-0", "gone-1", "gone-2"]
    # never ALL, even if configured so
    plan = plan_entry(_input([], pilots, orphans_removable=frozenset({"gone"}), orphan_level=RemovalLevel.ALL))
    assert all(pid in ("gone-0", "gone-1", "gone-2") for pid, _ in plan.removals)


def test_held_glideins_are_released_or_removed():
    held = [PilotView("h1", PilotState.HELD, 0.0, 0.0, holds=1, hold_reason="connection refused"),
            PilotView("h2", PilotState.HELD, 0.0, 0.0, holds=1, hold_reason="bad executable")]
    plan = plan_entry(_input([_req("c1", 0, 10)], {"c1": held}))
    assert plan.releases == ["h1"]
    assert [pid for pid, _ in plan.removals] == ["h2"]


requests_st = st.lists(
    st.builds(
        RequestView,
        key=st.sampled_from(["a", "b", "c"]),
        group=st.sampled_from(["fe:main", "fe:other"]),
        req_idle=st.integers(0, 150),
        req_max=st.integers(0, 300),
        remove_level=st.sampled_from(list(RemovalLevel)),
        remove_margin=st.integers(0, 5),
        in_downtime=st.booleans(),
    ),
    max_size=3,
    unique_by=lambda r: r.key,
)
state_st = st.sampled_from([PilotState.PENDING, PilotState.RUNNING, PilotState.HELD, PilotState.STAGING])
pilots_st = st.dictionaries(
    st.sampled_from(["a", "b", "c", "x"]),
    st.lists(state_st, max_size=30),
    max_size=4,
)
limits_st = st.builds(Limits, st.integers(0, 120), st.integers(0, 80), st.integers(0, 10))


def _build(pilots_states, requests, el, gl, cap):
    pilots = {k: [PilotView(f"{k}-{i}", s, float(i), 0.0, holds=1) for i, s in enumerate(v)]
              for k, v in pilots_states.items()}
    groups = {k: "fe:main" for k in pilots}
    groups.update({r.key: r.group for r in requests})
    return EntryInput(
        now=10_000.0, entry_limits=el, group_limits={"fe:main": gl, "fe:other": gl}, policy=POLICY,
        pilots=pilots, groups_of=groups, requests=requests, submit_cap=cap,
    )


@given(pilots_st, requests_st, limits_st, limits_st, st.integers(0, 150))
@settings(max_examples=300, deadline=None)
def test_plan_properties(pilots_states, requests, el, gl, cap):
    inp = _build(pilots_states, requests, el, gl, cap)
    plan = plan_entry(inp)
    all_views = [p for v in inp.pilots.values() for p in v]
    entry = count_pilots(all_views)
    # never above the cycle caps
    assert plan.total_submits <= min(cap, POLICY.max_submits)
    excess = [r for r in plan.removals if r[1].startswith("excess") or "gone" in r[1]]
    assert len(excess) <= POLICY.max_removals
    assert len(plan.releases) <= POLICY.max_releases
    ids = [pid for pid, _ in plan.removals]
    assert len(ids) == len(set(ids)) and not set(ids) & set(plan.releases)
    # submissions never take a count over a limit it was under
    added = plan.total_submits
    if added:
        assert entry.total + added <= el.glideins
        assert entry.idle + added <= el.idle
        for group in ("fe:main", "fe:other"):
            g_add = sum(n for k, n in plan.submits.items() if inp.groups_of[k] == group)
            if g_add:
                g = count_pilots(p for k, v in inp.pilots.items() if inp.groups_of[k] == group for p in v)
                assert g.total + g_add <= gl.glideins and g.idle + g_add <= gl.idle
    by_key = {r.key: r for r in requests}
    for key, n in plan.submits.items():
        r = by_key[key]
        assert not r.in_downtime
        c = count_pilots(inp.pilots.get(key, ()))
        assert c.idle + n <= r.req_idle and c.idle + c.running + n <= r.req_max
    # running glideins only go when the request says ALL
    views = {p.pilot_id: (k, p) for k, v in inp.pilots.items() for p in v}
    for pid, why in plan.removals:
        k, p = views[pid]
        if p.state is PilotState.RUNNING:
            assert by_key[k].remove_level is RemovalLevel.ALL


@given(pilots_st, requests_st, limits_st, limits_st)
@settings(max_examples=200, deadline=None)
def test_plans_are_idempotent(pilots_states, requests, el, gl):
    """Carrying out a plan and planning again asks for nothing new unless a cap cut the first."""
    inp = _build(pilots_states, requests, el, gl, 10**6)
    first = plan_entry(replace(inp, policy=CyclePolicy(max_submits=10**6, max_removals=0, max_cleanup_removals=0,
                                                        max_releases=0)))
    pilots = {k: list(v) for k, v in inp.pilots.items()}
    for key, n in first.submits.items():
        pilots.setdefault(key, []).extend(
            PilotView(f"{key}-new{i}", PilotState.PENDING, 1e9, 0.0) for i in range(n))
    again = plan_entry(replace(inp, pilots=pilots,
                               policy=CyclePolicy(max_submits=10**6, max_removals=0, max_cleanup_removals=0,
                                                  max_releases=0)))
    assert again.total_submits == 0


# --------------------------------------------------------------------------- health

FAIL = FailurePolicy(max_submit_failures=3, max_early_deaths=3, early_death_s=120, pause_s=60, pause_max_s=600)


def test_three_refused_submissions_pause_the_entry():
    h = EntryHealth()
    for _ in range(2):
        h = record_submissions(h, 0, 10, "queue closed", 0.0, FAIL)
        assert not h.paused(0.0)
    h = record_submissions(h, 0, 10, "queue closed", 0.0, FAIL)
    assert h.paused(59.0) and not h.paused(60.0)
    assert "queue closed" in h.reason
    assert submit_cap(h, 10.0, 100) == 0
    assert submit_cap(h, 61.0, 100) == 1  # probation after the pause


def test_success_resets_submit_failures():
    h = record_submissions(EntryHealth(), 0, 1, "x", 0.0, FAIL)
    h = record_submissions(h, 3, 0, "", 0.0, FAIL)
    assert h.submit_failures == 0


def test_pauses_double_up_to_the_cap():
    assert [pause_length(n, FAIL) for n in range(1, 6)] == [60, 120, 240, 480, 600]
    h = EntryHealth()
    until = []
    for _ in range(3):
        for _ in range(3):
            h = record_pilot_end(h, True, "exit 1", 0.0, FAIL)
        until.append(h.paused_until)
    assert until == [60, 120, 240]


def test_healthy_pilot_ends_probation_and_backoff():
    h = EntryHealth(pauses=2, probation=True, early_deaths=1)
    h = record_healthy_pilot(h)
    assert not h.probation and h.pauses == 0 and h.early_deaths == 0
    assert submit_cap(h, 0.0, 100) == 100


def test_early_death_rules():
    assert is_early_death(PilotState.FAILED, 1, None, FAIL)
    assert is_early_death(PilotState.FAILED, 1, 30.0, FAIL)
    assert not is_early_death(PilotState.FAILED, 1, 500.0, FAIL)
    assert not is_early_death(PilotState.COMPLETED, 0, 1.0, FAIL)
    assert is_early_death(PilotState.COMPLETED, 3, 1.0, FAIL)
    assert not is_early_death(PilotState.REMOVED, None, None, FAIL)


@given(st.lists(st.tuples(st.sampled_from(["ok", "refused", "early", "healthy"]), st.floats(0, 100)), max_size=40))
def test_health_never_allows_more_than_probation_right_after_a_pause(events):
    h = EntryHealth()
    now = 0.0
    for kind, dt in events:
        now += dt
        was_paused = h.paused(now)
        if kind == "ok":
            h = record_submissions(h, 1, 0, "", now, FAIL)
        elif kind == "refused":
            h = record_submissions(h, 0, 1, "no", now, FAIL)
        elif kind == "early":
            h = record_pilot_end(h, True, "died", now, FAIL)
        else:
            h = record_healthy_pilot(h)
        if h.paused(now) and not was_paused:
            assert h.probation and submit_cap(h, now, 100) == 0
            assert submit_cap(h, h.paused_until, 100) == 1


def test_counts_helper():
    assert Counts(pending=1, staging=1, unsubmitted=1).idle == 3
    assert IDLE_STATES == {PilotState.UNSUBMITTED, PilotState.PENDING, PilotState.STAGING}


def test_pilots_older_than_the_pause_prove_nothing():
    h = EntryHealth()
    for _ in range(3):
        h = record_submissions(h, 0, 1, "refused", 500.0, FAIL)
    assert h.paused(500.0) and h.pauses == 1
    assert record_healthy_pilot(h, started_at=100.0) == h  # it ran before the site broke
    assert not record_healthy_pilot(h, started_at=600.0).probation


@given(pilots_st, requests_st, limits_st, limits_st, st.integers(0, 150))
@settings(max_examples=300, deadline=None)
def test_releases_and_submissions_together_stay_within_the_idle_limits(pilots_states, requests, el, gl, cap):
    # held glideins the site may release (a recoverable reason, past the back-off)
    pilots = {k: [PilotView(f"{k}-{i}", s, float(i), 0.0, holds=1, hold_reason="temporarily unavailable")
                  for i, s in enumerate(v)] for k, v in pilots_states.items()}
    groups = {k: "fe:main" for k in pilots}
    groups.update({r.key: r.group for r in requests})
    inp = EntryInput(now=10_000.0, entry_limits=el, group_limits={"fe:main": gl, "fe:other": gl}, policy=POLICY,
                     pilots=pilots, groups_of=groups, requests=requests, submit_cap=cap)
    plan = plan_entry(inp)
    entry = count_pilots(p for v in pilots.values() for p in v)
    released = len(plan.releases)
    if entry.idle <= el.idle:
        assert entry.idle + released + plan.total_submits <= el.idle
    for group in ("fe:main", "fe:other"):
        keys = [k for k in pilots if groups[k] == group]
        g = count_pilots(p for k in keys for p in pilots[k])
        g_rel = sum(1 for pid in plan.releases if groups[pid.rsplit("-", 1)[0]] == group)
        g_add = sum(n for k, n in plan.submits.items() if groups[k] == group)
        if g.idle <= gl.idle:
            assert g.idle + g_rel + g_add <= gl.idle
    # a released glidein counts as idle for its request: no double submission
    for key, n in plan.submits.items():
        r = next(r for r in requests if r.key == key)
        c = count_pilots(pilots.get(key, ()))
        rel = sum(1 for pid in plan.releases if pid.rsplit("-", 1)[0] == key)
        assert c.idle + rel + n <= r.req_idle
