"""Equality indexes: a query through an index returns exactly what a full scan returns."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import gwms.pool.collector.store as store_module
from gwms.classads import compile_constraint
from gwms.pool.collector.index import EqualityIndex, equality_terms, index_key
from gwms.pool.collector.store import AdStore

_ABSENT = object()
SPELLINGS = ["Site", "site", "SITE"]
VALUES: list[Any] = [
    "a", "A", "b", "é", "É", 1, 1.0, 2, True, False, None, 10**30,
    "/Expr(1)/", '/Expr("a")/', "/Expr(N + 1)/", [1], {"x": 1}, _ABSENT,
]
LITERALS = ['"a"', '"A"', '"b"', '"é"', "1", "1.0", "2", "true", "false"]


@pytest.fixture(autouse=True)
def index_small_types(monkeypatch: pytest.MonkeyPatch) -> None:
    """Index even small ad types, so that small examples exercise the index."""
    monkeypatch.setattr(store_module, "_INDEX_MIN_ADS", 0)


def make_ad(i: int, spelling: str, value: Any, n: int) -> dict[str, Any]:
    ad: dict[str, Any] = {"MyType": "Machine", "Name": f"s{i}", "N": n}
    if value is not _ABSENT:
        ad[spelling] = value
    return ad


constraints = st.builds(
    lambda spelling, op, lit, extra: f"{spelling} {op} {lit}" + extra,
    st.sampled_from(SPELLINGS + ["MY.Site"]),
    st.sampled_from(["==", "=?="]),
    st.sampled_from(LITERALS),
    st.sampled_from(["", " && N >= 1", " && N == 2", " || N == 0", ' && TARGET.Site == "a"']),
) | st.sampled_from(
    [
        'N == 1 && (Site == "a" || Site == "b")',
        '!(Site == "a")',
        'Site != "a"',
        '"a" == Site && N == 1',
        "N == 1",
        'TARGET.Site == "a"',
    ]
)

ads_strategy = st.lists(
    st.tuples(st.sampled_from(SPELLINGS), st.sampled_from(VALUES), st.integers(0, 2)),
    max_size=40,
)


@given(ads=ads_strategy, texts=st.lists(constraints, min_size=1, max_size=4))
@settings(max_examples=300, deadline=None)
def test_indexed_queries_equal_full_scans(ads: list[tuple[str, Any, int]], texts: list[str]) -> None:
    store = AdStore(clock=lambda: 0.0)
    store.advertise([make_ad(i, *spec) for i, spec in enumerate(ads)], "me")
    everything = store.query("Machine")
    for text in texts:  # several queries: later ones reuse or add indexes
        predicate = compile_constraint(text)
        expected = [ad for ad in everything if predicate(ad)]
        assert store.query("Machine", predicate) == expected, text
        assert store.query(None, predicate, limit=2) == expected[:2], text


class IndexedStoreMachine(RuleBasedStateMachine):
    """Updates, removals and expiry keep indexed answers equal to full scans."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.store = AdStore(clock=lambda: self.now)

    @rule(
        i=st.integers(0, 12),
        spelling=st.sampled_from(SPELLINGS),
        value=st.sampled_from(VALUES),
        n=st.integers(0, 2),
        lifetime=st.sampled_from([5, 50, 500]),
    )
    def advertise(self, i: int, spelling: str, value: Any, n: int, lifetime: int) -> None:
        ad = make_ad(i, spelling, value, n)
        ad["ClassAdLifetime"] = lifetime
        self.store.advertise(ad, "me")

    @rule(text=constraints)
    def query(self, text: str) -> None:
        predicate = compile_constraint(text)
        expected = [ad for ad in self.store.query("Machine") if predicate(ad)]
        assert self.store.query("Machine", predicate) == expected

    @rule(text=constraints)
    def invalidate(self, text: str) -> None:
        predicate = compile_constraint(text)
        expected = {ad["Name"] for ad in self.store.query("Machine") if predicate(ad)}
        report = self.store.invalidate("Machine", constraint=predicate, identity="me")
        assert report.removed == len(expected)
        assert not expected & {ad["Name"] for ad in self.store.query("Machine")}

    @rule(dt=st.sampled_from([1.0, 10.0, 100.0]))
    def tick(self, dt: float) -> None:
        self.now += dt

    @invariant()
    def indexes_hold_only_live_names(self) -> None:
        for table in self.store._types.values():  # noqa: SLF001 - checking internals
            for eq_index in table.indexes.values():
                assert set(eq_index.where) <= set(table.records)


TestIndexedStoreMachine = IndexedStoreMachine.TestCase
TestIndexedStoreMachine.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None
)


def test_equality_terms_take_only_top_level_conjuncts_of_the_ad_itself() -> None:
    def terms(text: str) -> list[tuple[str, str, Any]]:
        return equality_terms(compile_constraint(text))

    assert terms('GLIDEIN_Site == "X" && Cpus >= 4') == [("glidein_site", "GLIDEIN_Site", ("s", "x"))]
    assert terms('MY.a =?= 3 && (b == true && "Q" == c)') == [
        ("a", "a", ("n", 3.0)),
        ("b", "b", ("n", 1.0)),
        ("c", "c", ("s", "q")),
    ]
    assert terms('a == "x" || b == "y"') == []
    assert terms('TARGET.a == "x"') == []
    assert terms("a == b") == []
    assert terms("a == undefined") == []
    assert terms('!(a == "x")') == []
    assert equality_terms(lambda ad: True) == []


def test_index_keys_are_never_finer_than_classad_equality() -> None:
    assert index_key("Unclaimed") == index_key("UNCLAIMED")
    assert index_key(8) == index_key(8.0)
    assert index_key(True) == index_key(1)
    assert index_key("8") != index_key(8)


def test_a_query_uses_the_most_selective_index_and_skips_unhelpful_ones() -> None:
    store = AdStore(clock=lambda: 0.0)
    store.advertise(
        [
            {"MyType": "Machine", "Name": f"s{i}", "State": "Unclaimed", "Site": f"site{i % 50}"}
            for i in range(2000)
        ],
        "me",
    )
    state_first = compile_constraint('State == "Unclaimed" && Site == "site7"')
    assert len(store.query("Machine", state_first)) == 40
    table = store._types["machine"]  # noqa: SLF001
    assert "state" in table.unhelpful and "state" not in table.indexes
    assert len(store.query("Machine", state_first)) == 40
    assert set(table.indexes) == {"site"}
    index: EqualityIndex = table.indexes["site"]
    assert index.count(("s", "site7")) == 40
    store.advertise({"MyType": "Machine", "Name": "s7", "Site": "elsewhere"}, "me")
    assert index.count(("s", "site7")) == 39
    store.invalidate("Machine", "s57", identity="me")
    assert index.count(("s", "site7")) == 38
    assert len(store.query("Machine", state_first)) == 38
