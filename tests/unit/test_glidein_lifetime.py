"""Lifetime decisions of the startd agent (gwms.glidein.lifetime), as properties."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gwms.glidein.lifetime import (
    Activity,
    Deadlines,
    LifetimePolicy,
    decide,
    is_black_hole,
    next_check,
    plan_deadlines,
    recent_durations,
)

times = st.floats(min_value=0, max_value=1e6, allow_nan=False)
durations = st.floats(min_value=0, max_value=1e5, allow_nan=False)
policies = st.builds(
    LifetimePolicy,
    retire_time=durations,
    retire_spread=st.floats(min_value=0, max_value=1),
    job_max_time=durations,
    die_time=st.one_of(st.none(), durations),
    max_idle=durations,
    max_tail=durations,
)
START = 1000.0


@st.composite
def situations(draw: st.DrawFn) -> tuple[Deadlines, LifetimePolicy, Activity]:
    policy = draw(policies)
    d = plan_deadlines(START, policy, draw(st.floats(min_value=0, max_value=1)))
    running = draw(st.integers(min_value=0, max_value=5))
    started = draw(st.integers(min_value=running, max_value=running + 5))
    now = START + draw(times)
    act = Activity(
        now=now,
        jobs_started=started,
        running=running,
        idle_since=START + draw(st.floats(min_value=0, max_value=now - START)),
        drain=draw(st.booleans()),
        fast=draw(st.booleans()),
        black_hole=draw(st.booleans()),
    )
    return d, policy, act


@given(policies, st.floats(min_value=0, max_value=1))
def test_deadlines_are_ordered(policy: LifetimePolicy, draw: float) -> None:
    d = plan_deadlines(START, policy, draw)
    assert START <= d.retire_at <= d.die_at
    assert d.retire_at >= START + policy.retire_time * (1 - policy.retire_spread) - 1e-6 or d.retire_at == d.die_at
    assert d.retire_at <= START + policy.retire_time + 1e-6


def test_pinned_defaults() -> None:
    policy = LifetimePolicy()
    assert (policy.retire_time, policy.max_idle, policy.max_tail) == (21600, 1200, 400)
    d = plan_deadlines(0.0, policy, 0.0)
    assert (d.retire_at, d.die_at) == (21600, 21600 + 34800)
    d = plan_deadlines(0.0, policy, 1.0)
    assert d.retire_at == 21600 * 0.9
    assert plan_deadlines(0.0, LifetimePolicy(die_time=100.0), 0.0) == Deadlines(0.0, 100.0, 100.0)


@given(situations())
def test_verdict_rules(s: tuple[Deadlines, LifetimePolicy, Activity]) -> None:
    d, policy, act = s
    v = decide(d, policy, act)
    assert not v.exit or act.running == 0, "never exit with jobs running"
    assert not (v.accept and v.vacate)
    if act.now >= d.die_at or act.fast:
        assert v.vacate and not v.accept
    if act.now >= d.retire_at or act.drain or act.black_hole:
        assert not v.accept
    if v.accept:
        assert not v.exit and v.reason == ""
    else:
        assert v.reason
        assert v.exit == (act.running == 0)


@given(situations(), times)
def test_acceptance_only_ends_as_time_passes(s: tuple[Deadlines, LifetimePolicy, Activity], later: float) -> None:
    d, policy, act = s
    if not decide(d, policy, act).accept:
        moved = Activity(act.now + later, act.jobs_started, act.running, act.idle_since, act.drain, act.fast, act.black_hole)
        assert not decide(d, policy, moved).accept


@given(situations())
def test_nothing_changes_before_next_check(s: tuple[Deadlines, LifetimePolicy, Activity]) -> None:
    d, policy, act = s
    t = next_check(d, policy, act)
    assert t >= act.now
    if t > act.now:
        before = Activity(t - (t - act.now) / 2, act.jobs_started, act.running, act.idle_since, act.drain, act.fast, act.black_hole)
        assert decide(d, policy, before) == decide(d, policy, act)


def test_idle_rules() -> None:
    policy = LifetimePolicy(max_idle=100, max_tail=10)
    d = plan_deadlines(0.0, policy, 0.0)
    assert decide(d, policy, Activity(now=99)).accept
    v = decide(d, policy, Activity(now=100))
    assert not v.accept and v.exit and "max idle" in v.reason
    # after jobs ran, max tail counts from the moment the last one ended
    assert decide(d, policy, Activity(now=500, jobs_started=3, idle_since=495)).accept
    v = decide(d, policy, Activity(now=505, jobs_started=3, idle_since=495))
    assert not v.accept and "max tail" in v.reason
    # with a job running, neither idle rule applies
    assert decide(d, policy, Activity(now=5000, jobs_started=1, running=1, idle_since=0)).accept


def test_drain_then_die() -> None:
    policy = LifetimePolicy(retire_time=100, job_max_time=50, retire_spread=0)
    d = plan_deadlines(0.0, policy, 0.0)
    v = decide(d, policy, Activity(now=10, jobs_started=1, running=1, drain=True))
    assert (v.accept, v.vacate, v.exit) == (False, False, False)
    v = decide(d, policy, Activity(now=150, jobs_started=1, running=1, drain=True))
    assert (v.accept, v.vacate, v.exit) == (False, True, False) and v.reason == "die time reached"
    v = decide(d, policy, Activity(now=10, jobs_started=1, running=1, drain=True, fast=True))
    assert v.vacate


@given(st.lists(durations, max_size=20), st.integers(min_value=0, max_value=10), st.floats(min_value=0, max_value=10))
def test_black_hole(durs: list[float], numjobs: int, rate: float) -> None:
    hole = is_black_hole(durs, numjobs, rate)
    if numjobs <= 0 or rate <= 0 or len(durs) < numjobs:
        assert not hole
    else:
        assert hole == (sum(durs) / len(durs) < 1 / rate)
    # longer jobs never make a black hole out of a healthy node
    if not hole:
        assert not is_black_hole([x + 1 for x in durs], numjobs, rate)


def test_black_hole_examples_and_window() -> None:
    assert is_black_hole([0.1, 0.2, 0.1], 3, 1.0)
    assert not is_black_hole([0.1, 0.2], 3, 1.0)
    assert not is_black_hole([5, 5, 5], 3, 1.0)
    assert recent_durations([(0, 1.0), (100, 2.0), (150, 3.0)], 200, 100) == [2.0, 3.0]
