"""Removal levels: the original's automatic and configured rules, and gwms's guardrails."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.frontend.removal import (
    Observation,
    RemovalDecision,
    RemovalLevel,
    RemovalPolicy,
    RemovalState,
    decide_removal,
)

NO, WAIT, IDLE, ALL = RemovalLevel.NO, RemovalLevel.WAIT, RemovalLevel.IDLE, RemovalLevel.ALL


def run(policy: RemovalPolicy, observations: list[Observation]) -> list[RemovalDecision]:
    state = RemovalState()
    out = []
    for seen in observations:
        decision = decide_removal(state, seen, policy)
        out.append(decision)
        state = decision.state
    return out


def test_wait_after_five_cycles_without_idle_jobs() -> None:
    levels = [d.level for d in run(RemovalPolicy(), [Observation(0, 3, 1)] * 7)]
    assert levels == [NO] * 5 + [WAIT, WAIT]


def test_idle_jobs_reset_the_count() -> None:
    seen = [Observation(0, 3, 1)] * 5 + [Observation(4, 3, 1)] + [Observation(0, 3, 1)] * 5
    assert all(d.level == NO for d in run(RemovalPolicy(), seen))


def test_idle_after_ten_cycles_of_idle_glideins_then_all_after_ten_without_glideins() -> None:
    idle_glideins = [d.level for d in run(RemovalPolicy(), [Observation(0, 4, 4)] * 14)]
    assert idle_glideins[9] == WAIT and idle_glideins[10:] == [IDLE] * 4  # never ALL: glideins exist
    none = [d.level for d in run(RemovalPolicy(), [Observation(0, 0, 0)] * 15)]
    # WAIT at cycle 6, IDLE at 11 (all of none are idle), ALL two cycles of IDLE later
    assert none[5] == WAIT and none[10] == IDLE and none[11] == IDLE and none[12] == ALL
    assert none[13] == ALL


def test_configured_removal_after_wait_cycles_with_tracking_margin() -> None:
    policy = RemovalPolicy(configured=IDLE, wait_cycles=2, margin=7)
    levels = [d.level for d in run(policy, [Observation(0, 5, 1)] * 5)]
    assert levels == [NO, NO, WAIT, IDLE, IDLE]  # one step per cycle once 2 cycles have passed
    tracking = run(RemovalPolicy(configured=WAIT, requests_tracking=True, margin=7), [Observation(3, 5, 1)])
    assert tracking[0].level == WAIT and tracking[0].margin == 7
    no_tracking = run(RemovalPolicy(configured=WAIT, margin=7), [Observation(0, 5, 1)] * 2)
    assert no_tracking[-1].level == WAIT and no_tracking[-1].margin == 0


def test_disable_turns_every_removal_off() -> None:
    decisions = run(RemovalPolicy(disabled=True), [Observation(0, 0, 0)] * 30)
    assert all(d.level == NO and d.margin == 0 for d in decisions)


def test_configured_all_comes_after_idle_even_while_every_glidein_sits_idle() -> None:
    # The queue is empty and every glidein's slot is idle. IDLE removes only glideins
    # queued at the site, never these; ALL used to wait for the idle slots to go, so it
    # never came and the glideins stayed (found by tests/integration/test_frontend_slurm_e2e.py).
    levels = [d.level for d in run(RemovalPolicy(configured=ALL, wait_cycles=1), [Observation(0, 3, 3)] * 7)]
    assert levels == [NO, WAIT, IDLE, IDLE, ALL, ALL, ALL]
    tracking = run(RemovalPolicy(configured=ALL, requests_tracking=True), [Observation(0, 10, 3)] * 5)
    assert [d.level for d in tracking] == [WAIT, IDLE, IDLE, ALL, ALL]
    assert "ALL only after IDLE for 2 cycles" in tracking[2].reasons


def test_a_failed_cycle_never_sends_all_nor_advances_counters() -> None:
    decisions = run(RemovalPolicy(), [Observation(0, 0, 0)] * 14)
    assert decisions[-1].level == ALL
    state = decisions[-1].state
    failed = decide_removal(state, Observation(0, 0, 0, complete=False), RemovalPolicy())
    assert failed.level == WAIT
    assert failed.state.no_glideins_cycles == state.no_glideins_cycles
    assert failed.state.no_idle_jobs_cycles == state.no_idle_jobs_cycles


def test_issue_282_an_outage_that_looks_empty_cannot_drain_the_pool() -> None:
    # glideins run, then the collector query fails for 30 cycles and returns nothing
    seen = [Observation(5, 100, 0)] * 3 + [Observation(0, 0, 0, complete=False)] * 30
    assert all(d.level <= WAIT for d in run(RemovalPolicy(), seen))


# ----------------------------------------------------------------------------- properties

observations = st.builds(
    Observation,
    idle_jobs=st.sampled_from([0, 0, 0, 1, 50]),
    glideins=st.sampled_from([0, 0, 1, 10]),
    idle_glideins=st.sampled_from([0, 0, 1, 10]),
    complete=st.sampled_from([True, True, True, False]),
).map(lambda o: Observation(o.idle_jobs, o.glideins, min(o.idle_glideins, o.glideins), o.complete))
policies = st.builds(
    RemovalPolicy,
    configured=st.sampled_from(list(RemovalLevel)),
    disabled=st.booleans(),
    wait_cycles=st.integers(min_value=0, max_value=4),
    margin=st.integers(min_value=0, max_value=10),
    requests_tracking=st.booleans(),
    all_after_idle_cycles=st.integers(min_value=0, max_value=3),
)


@settings(max_examples=400, deadline=None)
@given(policies, st.lists(observations, min_size=1, max_size=40))
def test_guardrails_hold_for_any_history(policy: RemovalPolicy, seen: list[Observation]) -> None:
    state = RemovalState()
    for observation in seen:
        decision = decide_removal(state, observation, policy)
        level = decision.level
        assert level <= state.level + 1, "at most one step up per cycle"
        if not observation.complete:
            assert level <= WAIT, "never more than WAIT from an incomplete cycle"
            assert decision.state.no_idle_jobs_cycles == state.no_idle_jobs_cycles
            assert decision.state.no_glideins_cycles == state.no_glideins_cycles
        if level == ALL:
            assert observation.complete, "never ALL from an incomplete cycle"
            assert state.level >= IDLE, "ALL only after IDLE"
        if policy.disabled:
            assert level == NO
        if level == NO:
            assert decision.margin == 0
        assert decision.state.level == level
        state = decision.state


@settings(max_examples=200, deadline=None)
@given(st.lists(observations.map(lambda o: Observation(max(o.idle_jobs, 1), o.glideins, o.idle_glideins, o.complete)), max_size=30))
def test_idle_jobs_every_cycle_with_nothing_configured_never_removes(seen: list[Observation]) -> None:
    assert all(d.level == NO for d in run(RemovalPolicy(), seen))


@settings(max_examples=200, deadline=None)
@given(policies, st.lists(observations, min_size=1, max_size=20))
def test_decisions_are_a_pure_function_of_state_and_observation(
    policy: RemovalPolicy, seen: list[Observation]
) -> None:
    assert run(policy, seen) == run(policy, seen)
