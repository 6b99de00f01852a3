"""Scopes: the names, ADMINISTRATOR implies all, parsing and formatting the claim."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms.security import scopes as S

names = st.sampled_from(sorted(S.ALL_SCOPES)) | st.from_regex(
    r"[A-Za-z0-9_.:/-]{1,20}", fullmatch=True
)


def test_constants_equal_their_names():
    for name in (
        "READ",
        "WRITE",
        "ADMINISTRATOR",
        "NEGOTIATOR",
        "DAEMON",
        "ADVERTISE_STARTD",
        "ADVERTISE_SCHEDD",
        "ADVERTISE_MASTER",
        "ADVERTISE_FACTORY",
        "ADVERTISE_FRONTEND",
        "LOGS_ORIGINAL",
    ):
        assert getattr(S, name) == name
        assert name in S.ALL_SCOPES
    assert len(S.ALL_SCOPES) == 11
    assert S.GLIDEIN_SCOPES == {"READ", "ADVERTISE_STARTD", "ADVERTISE_MASTER"}


def test_examples():
    assert S.has_scopes({S.READ}, [])
    assert S.has_scopes({S.READ, S.WRITE}, [S.READ])
    assert not S.has_scopes({S.READ}, [S.WRITE])
    assert not S.has_scopes(set(), [S.READ])
    assert S.has_scopes({S.ADMINISTRATOR}, [S.DAEMON, "SOMETHING_NEW"])
    # originals of glidein logs: a scope of its own, implied only by ADMINISTRATOR
    assert not S.has_scopes({S.READ, S.WRITE}, [S.LOGS_ORIGINAL])
    assert S.has_scopes({S.ADMINISTRATOR}, [S.LOGS_ORIGINAL])
    assert S.missing_scopes({S.READ}, [S.READ, S.WRITE]) == {S.WRITE}
    # WRITE does not imply READ, DAEMON does not imply ADMINISTRATOR
    assert not S.has_scopes({S.WRITE}, [S.READ])
    assert not S.has_scopes({S.DAEMON}, [S.ADMINISTRATOR])


@given(st.frozensets(names), st.frozensets(names))
def test_has_scopes_property(granted, required):
    expected = S.ADMINISTRATOR in granted or required <= granted
    assert S.has_scopes(granted, required) is expected
    assert S.missing_scopes(granted, required) == (
        frozenset() if S.ADMINISTRATOR in granted else required - granted
    )


@given(st.frozensets(names))
def test_format_then_parse_round_trips(scopes):
    text = S.format_scopes(scopes)
    assert S.parse_scopes(text) == scopes
    assert text == " ".join(sorted(scopes))


@pytest.mark.parametrize("bad", ["", "HAS SPACE", "tab\t", "x" * 65, "é", "A\n"])
def test_invalid_scope_names(bad):
    with pytest.raises(S.InvalidScope):
        S.validate_scope(bad)
    with pytest.raises(S.InvalidScope):
        S.format_scopes([bad])
