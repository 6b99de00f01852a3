"""The retry policy: full-jitter delays and which methods may be sent again."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms.net.retry import may_retry, retry_delays

retries = st.integers(min_value=-3, max_value=80)
backoffs = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
caps = st.floats(min_value=0, max_value=1e4, allow_nan=False, allow_infinity=False)


@given(retries, backoffs, caps, st.integers())
def test_delays_are_bounded_non_negative_and_never_above_the_cap(
    n: int, backoff: float, cap: float, seed: int
) -> None:
    delays = retry_delays(n, backoff, random.Random(seed), cap=cap)
    assert len(delays) == max(n, 0)
    for attempt, delay in enumerate(delays):
        assert 0.0 <= delay <= cap
        assert delay <= backoff * 2.0**attempt


@given(st.integers(0, 20), backoffs, caps, st.integers())
def test_same_seed_same_delays(n: int, backoff: float, cap: float, seed: int) -> None:
    assert retry_delays(n, backoff, random.Random(seed), cap=cap) == retry_delays(
        n, backoff, random.Random(seed), cap=cap
    )


def test_delays_are_jittered_over_the_whole_window() -> None:
    rng = random.Random(7)
    samples = [retry_delays(3, 1.0, rng, cap=100.0)[2] for _ in range(2000)]
    # the third delay is uniform on [0, 4]: both halves of the window are used
    assert min(samples) < 0.5 and max(samples) > 3.5
    assert 1.8 < sum(samples) / len(samples) < 2.2


def test_zero_backoff_means_no_waiting() -> None:
    assert retry_delays(5, 0.0) == [0.0] * 5


def test_negative_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        retry_delays(3, -1.0)
    with pytest.raises(ValueError):
        retry_delays(3, 1.0, cap=-1.0)


@pytest.mark.parametrize("method", ["GET", "get", "HEAD", "PUT", "DELETE", "OPTIONS"])
def test_idempotent_methods_may_be_retried(method: str) -> None:
    assert may_retry(method)


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_unsafe_methods_only_when_asked(method: str) -> None:
    assert not may_retry(method)
    assert may_retry(method, retry_unsafe=True)
