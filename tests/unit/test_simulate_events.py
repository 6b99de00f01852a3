"""The virtual clock: events in order, time never backwards, and the pool's job accounting."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.simulate.distributions import Distribution, seconds
from gwms.simulate.events import EventLoop


@settings(max_examples=200, deadline=None)
@given(
    first=st.lists(st.tuples(st.floats(-50, 500), st.integers(0, 9)), max_size=40),
    nested=st.lists(st.floats(-100, 100), max_size=20),
)
def test_time_never_goes_backwards(first, nested) -> None:
    loop = EventLoop(1000.0)
    seen: list[float] = []
    spawn = list(nested)

    def act() -> None:
        seen.append(loop.now)
        if spawn:
            loop.after(spawn.pop(), act)  # negative delays mean "now", never the past
            loop.schedule(loop.now - 10.0, act)

    for at, prio in first:
        loop.schedule(1000.0 + at, act, priority=prio)
    loop.run(2000.0)
    assert seen == sorted(seen)
    assert all(t >= 1000.0 for t in seen)
    assert loop.now == 2000.0


def test_ties_run_by_priority_then_order() -> None:
    loop = EventLoop()
    order: list[str] = []
    loop.schedule(5, order.append, "b", priority=5)
    loop.schedule(5, order.append, "a", priority=1)
    loop.schedule(5, order.append, "c", priority=5)
    loop.schedule(1, order.append, "first")
    loop.schedule(9, order.append, "late")
    loop.run(8)
    assert order == ["first", "a", "b", "c"]
    assert loop.next_time() == 9


@settings(max_examples=100, deadline=None)
@given(st.one_of(
    st.builds(lambda v: {"dist": "fixed", "value": v}, st.floats(0, 1e5)),
    st.builds(lambda a, b: {"dist": "uniform", "low": min(a, b), "high": max(a, b)}, st.floats(0, 1e4), st.floats(0, 1e4)),
    st.builds(lambda m: {"dist": "exponential", "mean": m}, st.floats(0, 1e4)),
    st.builds(lambda m, s: {"dist": "lognormal", "median": m, "sigma": s}, st.floats(0, 1e4), st.floats(0, 2)),
    st.builds(lambda m, s: {"dist": "normal", "mean": m, "sd": s}, st.floats(0, 1e4), st.floats(0, 1e3)),
), st.integers(0, 2**32))
def test_draws_are_durations_and_repeat_with_the_seed(spec, seed) -> None:
    import random

    d = Distribution.model_validate(spec)
    a = [d.draw(random.Random(seed)) for _ in range(3)]
    b = [d.draw(random.Random(seed)) for _ in range(3)]
    assert a == b
    assert all(x >= 0 for x in a)


def test_duration_texts() -> None:
    assert seconds("90") == 90 and seconds("30m") == 1800 and seconds("6h") == 21600 and seconds("1d") == 86400
    assert seconds(2.5) == 2.5
    for bad in ("ten", "-5", True, "5w"):
        try:
            seconds(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")
