"""Which scopes may advertise which ad types, and who may read."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms.pool.collector.policy import (
    ADVERTISE_SCOPES,
    advertise_scope,
    is_administrator,
    may_advertise,
    may_invalidate,
    may_query,
    refused_types,
)
from gwms.security import scopes as s

ALL = sorted(s.ALL_SCOPES)


@pytest.mark.parametrize(
    ("my_type", "scope"),
    [
        ("Machine", s.ADVERTISE_STARTD),
        ("slot", s.ADVERTISE_STARTD),
        ("Scheduler", s.ADVERTISE_SCHEDD),
        ("Submitter", s.ADVERTISE_SCHEDD),
        ("Negotiator", s.NEGOTIATOR),
        ("ACCOUNTING", s.NEGOTIATOR),
        ("DaemonMaster", s.ADVERTISE_MASTER),
        ("glidefactory", s.ADVERTISE_FACTORY),
        ("GlideFactoryGlobal", s.ADVERTISE_FACTORY),
        ("glidefactoryclient", s.ADVERTISE_FACTORY),
        ("glideclient", s.ADVERTISE_FRONTEND),
        ("glideclientglobal", s.ADVERTISE_FRONTEND),
        ("glideresource", s.ADVERTISE_FRONTEND),
        ("Collector", s.DAEMON),
        ("SomethingNew", s.DAEMON),
    ],
)
def test_scope_per_type(my_type: str, scope: str) -> None:
    assert advertise_scope(my_type) == scope
    assert may_advertise({scope}, my_type)
    assert may_invalidate({scope}, my_type)
    others = set(ALL) - {scope, s.ADMINISTRATOR}
    assert not may_advertise(others, my_type)


def test_a_startd_token_cannot_advertise_a_factory_ad() -> None:
    startd = set(s.GLIDEIN_SCOPES)
    assert may_advertise(startd, "Machine")
    assert not may_advertise(startd, "glidefactory")
    assert refused_types(startd, ["Machine", "glidefactory", "GLIDEFACTORY", "DaemonMaster"]) == [
        "glidefactory"
    ]


def test_queries_need_read() -> None:
    assert may_query({s.READ})
    assert may_query({s.ADMINISTRATOR})
    assert not may_query({s.ADVERTISE_STARTD, s.WRITE, s.DAEMON})
    assert not may_query(set())


@given(my_type=st.text(max_size=20), granted=st.sets(st.sampled_from(ALL)))
def test_administrator_may_do_everything_and_scopes_are_monotonic(
    my_type: str, granted: set[str]
) -> None:
    assert may_advertise(granted | {s.ADMINISTRATOR}, my_type)
    assert is_administrator(granted) == (s.ADMINISTRATOR in granted)
    if may_advertise(granted, my_type):
        assert may_advertise(granted | {s.READ}, my_type)  # more scopes never take rights away
    assert may_advertise(granted, my_type) == (
        s.ADMINISTRATOR in granted or advertise_scope(my_type) in granted
    )
    assert may_advertise(granted, my_type) == (refused_types(granted, [my_type]) == [])


@given(my_type=st.sampled_from(sorted(ADVERTISE_SCOPES)))
def test_type_lookup_ignores_case(my_type: str) -> None:
    assert advertise_scope(my_type.upper()) == advertise_scope(my_type) == ADVERTISE_SCOPES[my_type]
