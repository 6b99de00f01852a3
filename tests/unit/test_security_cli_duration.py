"""Durations on the security command line (--lifetime, --admin-lifetime)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms.cli.security import format_duration, parse_duration
from gwms.errors import UsageError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("45s", 45),
        ("30m", 1800),
        ("1h", 3600),
        ("1h30m", 5400),
        ("7d", 604800),
        ("2w", 1209600),
        (" 1H ", 3600),
        ("1d2h3m4s", 93784),
    ],
)
def test_examples(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["", "0", "0s", "h", "1x", "1h 30m", "-5", "1.5h", "h1", "1hh"])
def test_invalid(bad):
    with pytest.raises(UsageError):
        parse_duration(bad)


@given(
    st.lists(
        st.tuples(st.integers(0, 1000), st.sampled_from(sorted(UNITS))), min_size=1, max_size=5
    )
)
def test_sum_of_parts(parts):
    text = "".join(f"{n}{u}" for n, u in parts)
    total = sum(n * UNITS[u] for n, u in parts)
    if total == 0:
        with pytest.raises(UsageError):
            parse_duration(text)
    else:
        assert parse_duration(text).total_seconds() == total


def test_format_duration():
    assert format_duration(0) == "0s"
    assert format_duration(59) == "59s"
    assert format_duration(3600) == "1h"
    assert format_duration(93784) == "1d 2h"
    assert format_duration(-120) == "2m"
