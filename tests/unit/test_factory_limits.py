"""The factory's per-request decisions: keep-idle, clusters, excess removal, held, lifetime."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.factory.config import RemovalLevel
from gwms.factory.limits import (
    LIMIT_CYCLE,
    LIMIT_ENTRY_IDLE,
    LIMIT_FRONTEND_IDLE,
    LIMIT_HELD_ENTRY,
    LIMIT_HELD_FRONTEND,
    LIMIT_REQ_MAX,
    Counts,
    Limits,
    PilotView,
    count_pilots,
    excess_removals,
    held_actions,
    keep_idle,
    lifetime_removals,
    submit_clusters,
)
from gwms.factory.states import IDLE_STATES, PilotState

BIG = Limits(10**6, 10**6, 10**6)

small = st.integers(min_value=0, max_value=60)
counts = st.builds(Counts, small, small, small, small, st.integers(0, 20))
limits = st.builds(Limits, st.integers(0, 300), st.integers(0, 200), st.integers(0, 40))


def _ki(req_idle, req_max, request, entry=None, el=BIG, gl=BIG, budget=100, group=None):
    entry = entry if entry is not None else request
    group = group if group is not None else request
    return keep_idle(req_idle, req_max, request, group, entry, el, gl, budget)


# --------------------------------------------------------------------------- keep-idle


def test_submits_the_missing_idle_glideins():
    assert _ki(10, 100, Counts(pending=3, running=5)).count == 7


def test_every_waiting_state_counts_as_idle():
    c = Counts(unsubmitted=2, pending=3, staging=4)
    assert c.idle == 9
    assert _ki(10, 100, c).count == 1


def test_req_max_caps_idle_plus_running():
    d = _ki(10, 12, Counts(pending=0, running=8))
    assert d.count == 4
    assert LIMIT_REQ_MAX in d.limited_by


def test_held_at_the_limit_only_cleans_up():
    d = _ki(10, 100, Counts(held=50), gl=Limits(5000, 100, 50))
    assert d.count == 0 and d.limited_by == (LIMIT_HELD_FRONTEND,)
    d = _ki(10, 100, Counts(held=3), entry=Counts(held=1000), el=Limits(10000, 2000, 1000))
    assert d.count == 0 and d.limited_by == (LIMIT_HELD_ENTRY,)


def test_entry_and_frontend_idle_limits_clamp():
    d = _ki(500, 1000, Counts(), el=Limits(10000, 2000, 1000), gl=Limits(5000, 100, 50))
    assert d.count == 100
    assert LIMIT_FRONTEND_IDLE in d.limited_by
    d = _ki(500, 1000, Counts(), entry=Counts(pending=1990), el=Limits(10000, 2000, 1000))
    assert d.count == 10 and LIMIT_ENTRY_IDLE in d.limited_by


def test_budget_limits_one_cycle():
    d = _ki(500, 1000, Counts(), budget=100)
    assert d.count == 100 and LIMIT_CYCLE in d.limited_by


@given(small, small, counts, counts, counts, limits, limits, st.integers(0, 120))
@settings(max_examples=400)
def test_keep_idle_never_exceeds_a_limit_it_was_under(req_idle, req_max, req_c, other, other2, el, gl, budget):
    group = req_c.plus(other)
    entry = group.plus(other2)
    d = keep_idle(req_idle, req_max, req_c, group, entry, el, gl, budget)
    n = d.count
    assert 0 <= n <= budget
    assert n <= max(0, req_idle - req_c.idle)
    if n:
        assert req_c.idle + req_c.running + n <= req_max
        assert entry.total + n <= el.glideins
        assert entry.idle + n <= el.idle
        assert group.total + n <= gl.glideins
        assert group.idle + n <= gl.idle
        assert group.held < gl.held and entry.held < el.held


@given(small, small, counts, counts, limits, limits, st.integers(0, 120))
@settings(max_examples=300)
def test_a_second_cycle_adds_nothing_one_unbounded_cycle_would_not(req_idle, req_max, req_c, other, el, gl, budget):
    entry = req_c.plus(other)
    first = keep_idle(req_idle, req_max, req_c, req_c, entry, el, gl, budget).count
    after_req, after_entry = req_c.with_submitted(first), entry.with_submitted(first)
    second = keep_idle(req_idle, req_max, after_req, after_req, after_entry, el, gl, budget).count
    unbounded = keep_idle(req_idle, req_max, req_c, req_c, entry, el, gl, 10**9).count
    assert first + second <= unbounded
    if first < budget:  # not cut by the cycle budget: the state is already the target
        assert second == 0


@given(small, small, counts, limits, limits, st.integers(0, 120), st.data())
@settings(max_examples=300)
def test_curbs_only_lower(req_idle, req_max, c, el, gl, budget, data):
    base = keep_idle(req_idle, req_max, c, c, c, el, gl, budget).count
    lower_el = Limits(*(data.draw(st.integers(0, v)) for v in (el.glideins, el.idle, el.held)))
    lower_gl = Limits(*(data.draw(st.integers(0, v)) for v in (gl.glideins, gl.idle, gl.held)))
    assert keep_idle(req_idle, req_max, c, c, c, lower_el, gl, budget).count <= base
    assert keep_idle(req_idle, req_max, c, c, c, el, lower_gl, budget).count <= base
    assert keep_idle(data.draw(st.integers(0, req_idle)), req_max, c, c, c, el, gl, budget).count <= base
    assert keep_idle(req_idle, data.draw(st.integers(0, req_max)), c, c, c, el, gl, budget).count <= base
    assert keep_idle(req_idle, req_max, c, c, c, el, gl, data.draw(st.integers(0, budget))).count <= base


# --------------------------------------------------------------------------- clusters


@given(st.integers(0, 1000), st.integers(1, 50))
def test_clusters_add_up_and_are_bounded(n, size):
    parts = submit_clusters(n, size)
    assert sum(parts) == n
    assert all(1 <= p <= size for p in parts)
    assert all(p == size for p in parts[:-1])


def test_clusters_of_ten():
    assert submit_clusters(25, 10) == [10, 10, 5]
    assert submit_clusters(0, 10) == []


# --------------------------------------------------------------------------- excess removal


def _pv(i, state, submitted=None, removing=False, **kw):
    return PilotView(f"p{i}", state, submitted if submitted is not None else float(i), 0.0,
                     removing=removing, **kw)


pilot_states = st.sampled_from([PilotState.UNSUBMITTED, PilotState.PENDING, PilotState.STAGING,
                                PilotState.RUNNING, PilotState.HELD])
pilot_lists = st.lists(st.tuples(pilot_states, st.booleans()), max_size=40).map(
    lambda items: [_pv(i, s, removing=r) for i, (s, r) in enumerate(items)]
)


def test_idle_removal_takes_the_youngest_above_request_plus_margin():
    pilots = [_pv(i, PilotState.PENDING) for i in range(10)]
    chosen = excess_removals(RemovalLevel.IDLE, 2, 5, 100, pilots, 5)
    assert chosen == ["p9", "p8", "p7"]  # 10 idle - (5 + 2)


def test_removals_are_rate_limited():
    pilots = [_pv(i, PilotState.PENDING) for i in range(50)]
    assert len(excess_removals(RemovalLevel.IDLE, 0, 0, 0, pilots, 5)) == 5


def test_no_removes_nothing_and_idle_never_touches_running():
    pilots = [_pv(i, PilotState.RUNNING) for i in range(10)]
    assert excess_removals(RemovalLevel.NO, 0, 0, 0, pilots, 5) == []
    assert excess_removals(RemovalLevel.IDLE, 0, 0, 0, pilots, 5) == []
    assert len(excess_removals(RemovalLevel.ALL, 0, 0, 0, pilots, 5)) == 5


def test_all_removes_idle_first():
    pilots = [_pv(i, PilotState.RUNNING) for i in range(4)] + [_pv(10 + i, PilotState.PENDING) for i in range(2)]
    chosen = excess_removals(RemovalLevel.ALL, 0, 0, 3, pilots, 5)
    assert chosen[:2] == ["p11", "p10"] and len(chosen) == 3


def test_wait_only_removes_unconfirmed():
    pilots = [_pv(0, PilotState.UNSUBMITTED), _pv(1, PilotState.PENDING), _pv(2, PilotState.PENDING)]
    assert excess_removals(RemovalLevel.WAIT, 0, 0, 0, pilots, 5) == ["p0"]


@given(st.sampled_from(list(RemovalLevel)), st.integers(0, 5), st.integers(0, 30), st.integers(0, 30),
       pilot_lists, st.integers(0, 10))
@settings(max_examples=400)
def test_removal_properties(level, margin, req_idle, req_max, pilots, cap):
    chosen = excess_removals(level, margin, req_idle, req_max, pilots, cap)
    by_id = {p.pilot_id: p for p in pilots}
    assert len(chosen) == len(set(chosen)) <= cap
    assert all(not by_id[c].removing for c in chosen)
    assert all(by_id[c].state is not PilotState.HELD for c in chosen)
    live_idle = [p for p in pilots if not p.removing and p.state in IDLE_STATES]
    live_running = [p for p in pilots if not p.removing and p.state is PilotState.RUNNING]
    if level is not RemovalLevel.ALL:
        assert all(by_id[c].state in IDLE_STATES for c in chosen)
        # never below the request + margin
        assert len(live_idle) - len(chosen) >= min(len(live_idle), req_idle + margin)
    else:
        idle_chosen = [c for c in chosen if by_id[c].state in IDLE_STATES]
        if any(by_id[c].state is PilotState.RUNNING for c in chosen):
            assert len(idle_chosen) == len(live_idle)  # idle first
        if any(by_id[c].state is PilotState.RUNNING for c in chosen):
            # running glideins go only while idle + running stays at or above max + margin
            assert len(live_idle) + len(live_running) - len(chosen) >= req_max + margin
    if level is RemovalLevel.WAIT:
        assert all(by_id[c].state is PilotState.UNSUBMITTED for c in chosen)
    # a second call on what is left, with the chosen marked removing, removes no more than needed
    marked = [PilotView(p.pilot_id, p.state, p.submitted, p.state_since, removing=p.removing or p.pilot_id in chosen)
              for p in pilots]
    again = excess_removals(level, margin, req_idle, req_max, marked, 10**6)
    if level is RemovalLevel.IDLE:
        assert len(chosen) + len(again) == max(0, len(live_idle) - (req_idle + margin))


# --------------------------------------------------------------------------- held


def _held(i, since, holds=1, releases=0, reason="connection timed out"):
    return PilotView(f"h{i}", PilotState.HELD, 0.0, since, holds=holds, releases=releases, hold_reason=reason)


HELD_KW = {"backoff_s": 300.0, "max_releases": 20, "max_releases_per_pilot": 10, "max_holds": 20,
           "recoverable": [r"(?i)timed? ?out"]}


def test_release_waits_for_linear_backoff():
    now = 10_000.0
    pilots = [_held(0, now - 299, holds=1), _held(1, now - 300, holds=1), _held(2, now - 500, holds=2),
              _held(3, now - 601, holds=2)]
    release, remove = held_actions(pilots, now, **HELD_KW)
    assert sorted(release) == ["h1", "h3"] and remove == []


def test_unrecoverable_and_repeated_holds_are_removed():
    now = 10_000.0
    pilots = [_held(0, 0, reason="disk quota exceeded"), _held(1, 0, holds=20), _held(2, 0, holds=11, releases=10)]
    release, remove = held_actions(pilots, now, **HELD_KW)
    assert release == []
    assert {pid for pid, _ in remove} == {"h0", "h1", "h2"}
    assert any("unrecoverable" in why for _, why in remove)


def test_releases_are_rate_limited():
    pilots = [_held(i, 0.0) for i in range(50)]
    release, _ = held_actions(pilots, 10_000.0, **HELD_KW)
    assert len(release) == 20


@given(st.lists(st.tuples(st.floats(0, 5000), st.integers(1, 25), st.integers(0, 12), st.booleans()), max_size=40))
def test_held_properties(items):
    now = 5000.0
    pilots = [_held(i, since, holds, rel, "timed out" if ok else "bad") for i, (since, holds, rel, ok) in enumerate(items)]
    release, remove = held_actions(pilots, now, **HELD_KW)
    assert len(release) <= 20
    assert not set(release) & {pid for pid, _ in remove}
    by_id = {p.pilot_id: p for p in pilots}
    for pid in release:
        p = by_id[pid]
        assert now - p.state_since >= 300 * p.holds and p.holds < 20 and p.releases < 10


# --------------------------------------------------------------------------- lifetime


def test_idle_lifetime_and_stale():
    now = 100_000.0
    pilots = [
        PilotView("a", PilotState.PENDING, now - 700, now - 700),
        PilotView("b", PilotState.PENDING, now - 100, now - 100),
        PilotView("c", PilotState.RUNNING, now - 40 * 86400, 0, running_since=now - 32 * 86400),
        PilotView("d", PilotState.RUNNING, now - 1000, 0, running_since=now - 900),
        PilotView("e", PilotState.UNSUBMITTED, now - 900, now - 900),
    ]
    out = lifetime_removals(pilots, now, idle_lifetime=600, stale_idle_s=7 * 86400, stale_running_s=31 * 86400)
    assert [pid for pid, _ in out] == ["c", "a"]
    out = lifetime_removals(pilots, now, idle_lifetime=0, stale_idle_s=7 * 86400, stale_running_s=31 * 86400)
    assert [pid for pid, _ in out] == ["c"]


def test_pilot_lifetime_used_without_a_request():
    now = 1000.0
    pilots = [PilotView("a", PilotState.PENDING, 0, 0, idle_lifetime=500)]
    assert lifetime_removals(pilots, now, idle_lifetime=None, stale_idle_s=1e9, stale_running_s=1e9)


def test_count_pilots_can_leave_out_removing():
    pilots = [_pv(0, PilotState.PENDING), _pv(1, PilotState.PENDING, removing=True), _pv(2, PilotState.RUNNING)]
    assert count_pilots(pilots) == Counts(pending=2, running=1)
    assert count_pilots(pilots, include_removing=False) == Counts(pending=1, running=1)


@given(counts, counts)
def test_counts_add(a, b):
    s = a.plus(b)
    assert s.total == a.total + b.total and s.idle == a.idle + b.idle
