"""Fair share: real priority follows usage with a half-life; factors; the state file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.pool.negotiator.fairshare import (
    MIN_PRIORITY,
    Accountant,
    AccountantError,
    decay,
    load_accountant,
    next_real_priority,
    next_usage,
    save_accountant,
)

DAY = 86_400.0
prio = st.floats(MIN_PRIORITY, 1e4)
cpus = st.floats(0, 1e4)
seconds = st.floats(0, 10 * DAY)


def test_one_half_life_halves_the_distance_to_current_use() -> None:
    assert next_real_priority(100.0, 0.0, DAY, DAY) == pytest.approx(50.0)
    assert next_real_priority(100.0, 20.0, DAY, DAY) == pytest.approx(60.0)
    assert next_real_priority(0.5, 0.0, DAY, DAY) == MIN_PRIORITY
    assert decay(0, DAY) == 1.0 and decay(2 * DAY, DAY) == pytest.approx(0.25)


@settings(max_examples=300)
@given(prio, cpus, seconds, st.floats(60, 30 * DAY))
def test_real_priority_moves_toward_use_and_never_below_the_minimum(real: float, used: float, elapsed: float,
                                                                     half_life: float) -> None:
    new = next_real_priority(real, used, elapsed, half_life)
    assert new >= MIN_PRIORITY
    low, high = min(real, max(used, MIN_PRIORITY)), max(real, max(used, MIN_PRIORITY))
    assert low - 1e-6 <= new <= high + 1e-6


@settings(max_examples=200)
@given(prio, cpus, st.floats(1, DAY), st.floats(1, DAY))
def test_more_use_or_less_time_never_gives_a_better_priority(real: float, used: float, t1: float, extra: float) -> None:
    assert next_real_priority(real, used + 1, t1, DAY) >= next_real_priority(real, used, t1, DAY) - 1e-9
    # with no use, waiting longer only helps
    assert next_real_priority(real, 0, t1 + extra, DAY) <= next_real_priority(real, 0, t1, DAY) + 1e-9


@settings(max_examples=200)
@given(st.floats(0, 1e5), cpus, st.floats(0, DAY), st.floats(0, DAY))
def test_usage_decays_and_adds_cpu_hours(usage: float, used: float, a: float, b: float) -> None:
    # two steps with the same use equal one step of their sum
    two = next_usage(next_usage(usage, used, a, DAY), used, b, DAY)
    one = next_usage(usage, used, a + b, DAY)
    assert two <= one + 1e-6 * max(1.0, one)  # the earlier hours of the first step decayed longer
    assert next_usage(usage, 0, a, DAY) <= usage + 1e-9
    assert next_usage(0, used, 3600, DAY) == pytest.approx(used)


def test_accountant_charges_use_over_time_and_factors_make_priority_worse() -> None:
    acct = Accountant(half_life=DAY)
    acct.update({"alice": 10.0}, now=0.0)
    acct.update({"alice": 10.0, "bob": 1.0}, now=DAY)
    alice, bob = acct.submitters["alice"], acct.submitters["bob"]
    assert alice.real_priority == pytest.approx(0.5 * 0.5 + 0.5 * 10)
    assert alice.usage_hours == pytest.approx(240.0)
    assert bob.real_priority == MIN_PRIORITY and bob.in_use == 1.0 and bob.last_usage == DAY
    acct.set_factor("bob", 100.0, now=DAY)
    assert acct.priorities()["bob"] == pytest.approx(50.0)
    assert acct.priority_of("nobody") == MIN_PRIORITY
    with pytest.raises(AccountantError):
        acct.set_factor("bob", 0, now=DAY)
    with pytest.raises(AccountantError):
        Accountant(half_life=0)


def test_state_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "neg" / "accountant.json"
    assert load_accountant(path).submitters == {}
    acct = Accountant(half_life=3600.0)
    acct.update({"alice": 4.0}, now=100.0)
    acct.set_factor("bob", 2.5, now=100.0)
    save_accountant(acct, path)
    again = load_accountant(path, half_life=3600.0)
    assert again.as_json() == acct.as_json()
    data = json.loads(path.read_text())
    assert data["submitters"]["bob"]["effective_priority"] == pytest.approx(1.25)
    path.write_text("{not json")
    with pytest.raises(AccountantError, match="cannot read"):
        load_accountant(path)
    path.write_text('{"version": 99}')
    with pytest.raises(AccountantError, match="not an accountant state"):
        load_accountant(path)
