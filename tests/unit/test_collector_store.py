"""The collector's in-memory ad store: keys, stamping, ownership, expiry, queries."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gwms.pool.collector.store import DEFAULT_LIFETIME, AdStore


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def slot(name: str, **attrs: Any) -> dict[str, Any]:
    ad: dict[str, Any] = {"MyType": "Machine", "Name": name, "Cpus": 4}
    ad.update(attrs)
    return ad


# -- examples ---------------------------------------------------------------------------


def test_advertise_stamps_identity_and_time_and_overwrites_forged_values() -> None:
    clock = FakeClock(1234.7)
    store = AdStore(clock=clock)
    report = store.advertise(
        slot("a", authenticatedidentity="root@evil", LASTHEARDFROM=1),
        "startd@pool",
    )
    assert report.accepted == 1 and report.refused == []
    (ad,) = store.query("Machine")
    assert ad["AuthenticatedIdentity"] == "startd@pool"
    assert ad["LastHeardFrom"] == 1234
    lowered = [k.lower() for k in ad]
    assert lowered.count("authenticatedidentity") == 1
    assert lowered.count("lastheardfrom") == 1


def test_advertise_does_not_modify_the_callers_ad() -> None:
    store = AdStore(clock=FakeClock())
    sent = slot("a", AuthenticatedIdentity="forged")
    before = dict(sent)
    store.advertise(sent, "me")
    assert sent == before


def test_keys_are_case_insensitive_and_an_update_replaces() -> None:
    store = AdStore(clock=FakeClock())
    store.advertise(slot("Slot1@Host", Cpus=1), "me")
    store.advertise({"mytype": "MACHINE", "NAME": "slot1@host", "Cpus": 2}, "me")
    assert len(store) == 1
    (ad,) = store.query("machine")
    assert ad["Cpus"] == 2
    assert store.get("Machine", "SLOT1@HOST") is not None
    assert store.counts() == {"Machine": 1}


@pytest.mark.parametrize(
    ("ad", "reason"),
    [
        ({"Name": "x"}, "no MyType"),
        ({"MyType": "", "Name": "x"}, "no MyType"),
        ({"MyType": 3, "Name": "x"}, "no MyType"),
        ({"MyType": "Machine"}, "no Name"),
        ({"MyType": "Machine", "Name": None}, "no Name"),
        ({"MyType": "Machine", "Name": "x", "ClassAdLifetime": -1}, "positive"),
        ({"MyType": "Machine", "Name": "x", "ClassAdLifetime": "soon"}, "number of seconds"),
        ({"MyType": "Machine", "Name": "x", "ClassAdLifetime": True}, "number of seconds"),
        ({"MyType": "Machine", "Name": "x", "ClassAdLifetime": float("inf")}, "finite"),
        ("not an ad", "JSON object"),
    ],
)
def test_bad_ads_are_refused_one_by_one(ad: Any, reason: str) -> None:
    store = AdStore(clock=FakeClock())
    report = store.advertise([slot("ok1"), ad, slot("ok2")], "me")
    assert report.accepted == 2
    (refusal,) = report.refused
    assert refusal.index == 1
    assert reason in refusal.reason
    assert len(store) == 2


def test_attribute_names_differing_only_in_case_are_refused() -> None:
    store = AdStore(clock=FakeClock())
    report = store.advertise([slot("a", cpus=2), slot("b")], "me")
    assert report.accepted == 1
    (refusal,) = report.refused
    assert (refusal.index, refusal.my_type) == (0, "Machine")
    assert "'Cpus' and 'cpus'" in refusal.reason


def test_another_identity_cannot_replace_an_ad_but_an_administrator_can() -> None:
    store = AdStore(clock=FakeClock())
    store.advertise(slot("a", Cpus=1), "alice")
    report = store.advertise([slot("A", Cpus=2), slot("b")], "mallory")
    assert report.accepted == 1
    assert [(r.index, r.name) for r in report.refused] == [(0, "A")]
    assert "alice" in report.refused[0].reason
    assert store.get("Machine", "a")["Cpus"] == 1

    report = store.advertise(slot("a", Cpus=3), "admin@pool", admin=True)
    assert report.accepted == 1
    ad = store.get("Machine", "a")
    assert ad["Cpus"] == 3 and ad["AuthenticatedIdentity"] == "admin@pool"
    # The administrator now owns it; alice no longer does.
    assert store.advertise(slot("a"), "alice").refused


def test_default_lifetime_and_expiry_boundary() -> None:
    clock = FakeClock(100.0)
    store = AdStore(clock=clock)
    store.advertise([slot("default"), slot("short", ClassAdLifetime=10)], "me")
    clock.now = 110.0  # exactly at the end of the short lifetime: still alive
    assert {a["Name"] for a in store.query()} == {"default", "short"}
    clock.now = 110.001
    assert {a["Name"] for a in store.query()} == {"default"}
    clock.now = 100.0 + DEFAULT_LIFETIME + 0.5
    assert store.query() == []
    assert len(store) == 0 and store.counts() == {}


def test_refresh_extends_the_lifetime() -> None:
    clock = FakeClock(0.0)
    store = AdStore(clock=clock)
    store.advertise(slot("a", ClassAdLifetime=10), "me")
    clock.now = 8.0
    store.advertise(slot("a", ClassAdLifetime=10), "me")
    clock.now = 15.0
    assert store.expire() == 0
    assert [a["Name"] for a in store.query()] == ["a"]
    clock.now = 18.5
    assert store.expire() == 1


def test_expire_counts_and_heap_stays_bounded_under_refreshes() -> None:
    clock = FakeClock(0.0)
    store = AdStore(clock=clock)
    for step in range(50):
        clock.now = float(step)
        store.advertise([slot(f"s{i}") for i in range(100)], "me")
    assert len(store) == 100
    assert len(store._heap) <= 2 * 100 + 1024 + 100  # noqa: SLF001 - the bound is the point
    clock.now = 49.0 + DEFAULT_LIFETIME + 1
    assert store.expire() == 100
    assert store.expired_total == 100


def test_query_by_type_constraint_projection_and_limit() -> None:
    store = AdStore(clock=FakeClock())
    store.advertise([slot(f"s{i}", Cpus=i) for i in range(10)], "startd")
    store.advertise({"MyType": "Scheduler", "Name": "schedd1", "Cpus": 100}, "schedd")
    assert len(store.query()) == 11
    assert len(store.query("Machine")) == 10
    assert store.query("Negotiator") == []
    big = store.query("Machine", constraint=lambda ad: ad["Cpus"] >= 5)
    assert [a["Name"] for a in big] == ["s5", "s6", "s7", "s8", "s9"]
    assert store.query("Machine", lambda ad: ad["Cpus"] >= 5, limit=2) == big[:2]
    assert len(store.query(limit=3)) == 3
    assert store.query(limit=0) == []
    projected = store.query("Machine", projection=["name", "CPUS", "Missing"], limit=1)
    assert projected == [{"Name": "s0", "Cpus": 0}]
    across = store.query(None, lambda ad: ad["Cpus"] >= 9)
    assert {a["Name"] for a in across} == {"s9", "schedd1"}


def test_query_returns_copies() -> None:
    store = AdStore(clock=FakeClock())
    store.advertise(slot("a"), "me")
    store.query()[0]["Cpus"] = 999
    assert store.get("Machine", "a")["Cpus"] == 4


def test_query_encoded_matches_query_and_reflects_updates() -> None:
    store = AdStore(clock=FakeClock())
    store.advertise([slot("a", Note="é ü"), slot("b")], "me")
    count, data = store.query_encoded("Machine")
    assert count == 2 and json.loads(data) == store.query("Machine")
    store.advertise(slot("a", Cpus=64), "me")  # the cached encoding must not go stale
    count, data = store.query_encoded("Machine", projection=["Cpus"])
    assert json.loads(data) == [{"Cpus": 64}, {"Cpus": 4}]
    assert json.loads(store.query_encoded("Machine")[1])[0]["Cpus"] == 64
    assert store.query_encoded("Nothing") == (0, b"[]")


def test_invalidate_by_name_and_constraint_only_own_ads() -> None:
    store = AdStore(clock=FakeClock())
    store.advertise([slot(f"a{i}", Cpus=i) for i in range(4)], "alice")
    store.advertise([slot(f"b{i}", Cpus=i) for i in range(4)], "bob")

    assert store.invalidate("machine", "A0", identity="alice").to_json() == {
        "removed": 1,
        "refused": 0,
    }
    assert store.invalidate("Machine", "b0", identity="alice").to_json() == {
        "removed": 0,
        "refused": 1,
    }
    report = store.invalidate("Machine", constraint=lambda ad: ad["Cpus"] >= 2, identity="alice")
    assert (report.removed, report.refused) == (2, 2)
    assert sorted(a["Name"] for a in store.query()) == ["a1", "b0", "b1", "b2", "b3"]
    report = store.invalidate("Machine", identity="root", admin=True)
    assert (report.removed, report.refused) == (5, 0)
    assert store.query() == [] and store.counts() == {}
    assert store.invalidate("Nothing", identity="x").removed == 0


# -- properties -------------------------------------------------------------------------

attr_names = st.sampled_from(
    ["Cpus", "cpus", "AuthenticatedIdentity", "authenticatedIDENTITY", "LastHeardFrom",
     "lastheardfrom", "Memory", "State", "X"]
)
json_values = st.one_of(st.integers(-10, 10), st.text(max_size=5), st.booleans(), st.none())


@given(
    extra=st.dictionaries(attr_names, json_values, max_size=6),
    identity=st.text(min_size=1, max_size=10),
    name=st.text(min_size=1, max_size=8),
)
def test_stored_identity_is_always_the_callers(
    extra: dict[str, Any], identity: str, name: str
) -> None:
    store = AdStore(clock=FakeClock())
    unique = {k.lower(): (k, v) for k, v in extra.items()}  # names must differ beyond case
    ad = {**dict(unique.values()), "MyType": "Machine", "Name": name}
    assert store.advertise(ad, identity).accepted == 1
    for stored in store.query():
        stamped = [k for k in stored if k.lower() == "authenticatedidentity"]
        assert stamped == ["AuthenticatedIdentity"]
        assert stored["AuthenticatedIdentity"] == identity


@given(
    lifetime=st.one_of(st.none(), st.integers(1, 5000), st.floats(0.5, 5000.0)),
    start=st.floats(0, 1e9),
    later=st.floats(0, 10000.0),
)
def test_an_ad_lives_exactly_its_lifetime(
    lifetime: float | None, start: float, later: float
) -> None:
    clock = FakeClock(start)
    store = AdStore(clock=clock)
    ad = slot("a") if lifetime is None else slot("a", ClassAdLifetime=lifetime)
    store.advertise(ad, "me")
    clock.now = start + later
    limit = DEFAULT_LIFETIME if lifetime is None else lifetime
    assert bool(store.query()) == (start + later <= start + limit)


@given(
    owners=st.lists(st.sampled_from(["alice", "bob"]), min_size=1, max_size=30),
    modulus=st.integers(1, 5),
    caller=st.sampled_from(["alice", "bob"]),
    admin=st.booleans(),
)
def test_invalidate_removes_exactly_the_matched_own_ads(
    owners: list[str], modulus: int, caller: str, admin: bool
) -> None:
    store = AdStore(clock=FakeClock())
    for i, owner in enumerate(owners):
        store.advertise(slot(f"s{i}", Seq=i), owner)

    def matches(ad: Any) -> bool:
        return ad["Seq"] % modulus == 0

    report = store.invalidate("Machine", constraint=matches, identity=caller, admin=admin)
    expected_removed = {
        f"s{i}" for i, o in enumerate(owners) if i % modulus == 0 and (admin or o == caller)
    }
    expected_refused = {f"s{i}" for i, o in enumerate(owners) if i % modulus == 0} - (
        expected_removed
    )
    remaining = {a["Name"] for a in store.query()}
    assert remaining == {f"s{i}" for i in range(len(owners))} - expected_removed
    assert report.removed == len(expected_removed)
    assert report.refused == len(expected_refused)


class StoreAgainstModel(RuleBasedStateMachine):
    """Random advertise/invalidate/expire/time steps agree with a plain-dict model."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(0.0)
        self.store = AdStore(clock=self.clock)
        # (type, name) lower-cased -> (owner, deadline, value)
        self.model: dict[tuple[str, str], tuple[str, float, int]] = {}

    def _live(self) -> dict[tuple[str, str], tuple[str, float, int]]:
        return {k: v for k, v in self.model.items() if v[1] >= self.clock.now}

    @rule(
        my_type=st.sampled_from(["Machine", "machine", "Scheduler", "glidefactory"]),
        name=st.sampled_from(["a", "A", "b", "c", "d"]),
        who=st.sampled_from(["alice", "bob"]),
        admin=st.booleans(),
        lifetime=st.one_of(st.none(), st.integers(1, 100)),
        value=st.integers(0, 9),
    )
    def advertise(
        self, my_type: str, name: str, who: str, admin: bool, lifetime: int | None, value: int
    ) -> None:
        ad: dict[str, Any] = {"MyType": my_type, "Name": name, "V": value}
        if lifetime is not None:
            ad["ClassAdLifetime"] = lifetime
        report = self.store.advertise(ad, who, admin=admin)
        key = (my_type.lower(), name.lower())
        live = self._live()
        owner = live[key][0] if key in live else None
        if owner is not None and owner != who and not admin:
            assert report.refused and report.accepted == 0
            return
        assert report.accepted == 1
        deadline = self.clock.now + (lifetime if lifetime is not None else DEFAULT_LIFETIME)
        self.model[key] = (who, deadline, value)

    @rule(dt=st.sampled_from([0.0, 0.5, 1.0, 10.0, 50.0, 100.0, 1000.0]))
    def tick(self, dt: float) -> None:
        self.clock.now += dt

    @rule()
    def expire(self) -> None:
        before = len(self._live())
        stored_before = len(self.store)
        removed = self.store.expire()
        self.model = self._live()
        assert stored_before - removed == before

    @rule(
        my_type=st.sampled_from(["Machine", "Scheduler"]),
        threshold=st.integers(0, 10),
        who=st.sampled_from(["alice", "bob"]),
        admin=st.booleans(),
    )
    def invalidate(self, my_type: str, threshold: int, who: str, admin: bool) -> None:
        self.model = self._live()
        matched = {
            k: v for k, v in self.model.items() if k[0] == my_type.lower() and v[2] >= threshold
        }
        report = self.store.invalidate(
            my_type, constraint=lambda ad: ad["V"] >= threshold, identity=who, admin=admin
        )
        removed = {k for k, v in matched.items() if admin or v[0] == who}
        assert report.removed == len(removed)
        assert report.refused == len(matched) - len(removed)
        for k in removed:
            del self.model[k]

    @invariant()
    def queries_agree(self) -> None:
        got = {
            (a["MyType"].lower(), a["Name"].lower()): (a["AuthenticatedIdentity"], a["V"])
            for a in self.store.query()
        }
        want = {k: (v[0], v[2]) for k, v in self._live().items()}
        assert got == want


TestStoreAgainstModel = StoreAgainstModel.TestCase
TestStoreAgainstModel.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


def test_ads_sent_one_per_call_share_attribute_name_strings() -> None:
    store = AdStore(clock=FakeClock())
    for i in range(3):
        store.advertise(json.loads(json.dumps(slot(f"s{i}", Arch="X86_64"))), "me")
    a, b, c = store.query()
    keys_a = {k: k for k in store._types["machine"].records["s0"].ad}  # noqa: SLF001
    for other in ("s1", "s2"):
        stored = store._types["machine"].records[other].ad  # noqa: SLF001
        assert all(keys_a[k] is k for k in stored)
        assert stored["Arch"] is store._types["machine"].records["s0"].ad["Arch"]  # noqa: SLF001
    assert a["Arch"] == b["Arch"] == c["Arch"] == "X86_64"
