"""The schedd's claim book: pending matches, claims, timeouts, identities, capacity."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gwms.pool.resources import Resources
from gwms.pool.schedd.claims import ClaimBook, ClaimError, ClaimForbidden, ClaimNotFound, Offer, claim_cpus


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def slot(name: str, identity: str = "startd@pool", startd: str | None = "agent-1", **attrs: Any) -> dict[str, Any]:
    ad: dict[str, Any] = {"Name": name, "AuthenticatedIdentity": identity, "Cpus": 4, "Memory": 8192, **attrs}
    if startd is not None:
        ad["GwmsStartdId"] = startd
    return ad


def book(**kw: Any) -> tuple[ClaimBook, Clock]:
    clock = Clock()
    counter = iter(range(1, 10**9))
    return ClaimBook(clock=clock, new_id=lambda: f"c{next(counter)}", **kw), clock


def test_offer_refuses_a_second_match_for_a_job_or_a_static_slot() -> None:
    b, _ = book()
    assert b.offer([Offer((1, 0), "s1", slot("s1"))]) == [None]
    again = b.offer([Offer((1, 0), "s2", slot("s2")), Offer((1, 1), "s1", slot("s1")), Offer((1, 2), "s3", {"Name": "s3"})])
    assert again[0] == "job 1.0 is already matched or claimed"
    assert again[1] == "slot s1 already has a pending match"
    assert again[2] == "slot s3 has no AuthenticatedIdentity"
    # a partitionable slot takes several
    p = slot("p1", PartitionableSlot=True)
    assert b.offer([Offer((2, 0), "p1", p), Offer((2, 1), "p1", p)]) == [None, None]


def test_only_the_slots_identity_and_agent_can_take_its_matches() -> None:
    b, _ = book()
    b.offer([Offer((1, 0), "s1", slot("s1", identity="a@pool", startd="agent-a"))])
    assert b.take("b@pool", "agent-a", ["s1"]) == []          # another identity
    assert b.take("a@pool", "agent-z", ["s1"]) == []          # the right identity, another agent
    taken = b.take("a@pool", "agent-a", ["s1"])
    assert [m.offer.job for m in taken] == [(1, 0)]
    assert b.running() == 1 and b.pending_count() == 0


def test_pending_matches_expire_and_are_not_handed_out_late() -> None:
    b, clock = book(match_timeout=60)
    b.offer([Offer((1, 0), "s1", slot("s1"))])
    clock.now += 60
    assert b.take("startd@pool", "agent-1", ["s1"]) == []
    expired = b.expire()
    assert [m.offer.job for m in expired.matches] == [(1, 0)]
    assert not b.booked((1, 0))
    # the slot is free for a new match
    assert b.offer([Offer((1, 1), "s1", slot("s1"))]) == [None]


def test_claims_expire_without_renewal_and_keep_their_job_for_eviction() -> None:
    b, clock = book(claim_timeout=120)
    b.offer([Offer((1, 0), "s1", slot("s1"))])
    (m,) = b.take("startd@pool", "agent-1", ["s1"])
    claim = b.open_claim(m, startd="agent-1", identity="startd@pool", request=Resources(1, 100, 0, 0))
    clock.now += 100
    assert b.renew("startd@pool", [claim.id]).renewed == [claim.id]
    clock.now += 100
    assert b.expire().claims == []
    clock.now += 20
    expired = b.expire()
    assert [c.id for c in expired.claims] == [claim.id] and expired.claims[0].job == (1, 0)
    assert not b.booked((1, 0))
    with pytest.raises(ClaimNotFound):
        b.claim(claim.id)


def test_capacity_limits_what_polls_take() -> None:
    b, _ = book(capacity=2)
    b.offer([Offer((1, i), f"s{i}", slot(f"s{i}")) for i in range(4)])
    taken = b.take("startd@pool", "agent-1", [f"s{i}" for i in range(4)])
    assert len(taken) == 2
    assert b.take("startd@pool", "agent-1", ["s2", "s3"]) == []
    b.abandon(taken[0])
    assert len(b.take("startd@pool", "agent-1", ["s2", "s3"])) == 1


def test_free_resources_keep_what_does_not_fit_pending() -> None:
    b, _ = book()
    p = slot("p1", PartitionableSlot=True)
    b.offer([Offer((1, i), "p1", p, Resources(2, 1000, 0, 0)) for i in range(3)])
    taken = b.take("startd@pool", "agent-1", ["p1"], free={"p1": Resources(4, 8000, 10**6, 0)})
    assert [m.offer.job for m in taken] == [(1, 0), (1, 1)]
    assert b.pending_for((1, 2)) is not None
    # what is being claimed counts against the slot until the claims are made
    assert b.slots_in_use() == (set(), {"p1": Resources(6, 3000, 0, 0)})
    for m in taken:
        b.open_claim(m, startd="agent-1", identity="startd@pool", request=Resources(2, 1000, 0, 0))
    assert b.slots_in_use() == (set(), {"p1": Resources(2, 1000, 0, 0)})


def test_claims_are_acted_on_only_by_their_identity_and_reuse_books_the_next_job() -> None:
    b, _ = book()
    b.offer([Offer((1, 0), "s1", slot("s1"))])
    (m,) = b.take("startd@pool", "agent-1", ["s1"])
    claim = b.open_claim(m, startd="agent-1", identity="startd@pool", request=Resources(1, 0, 0, 0))
    with pytest.raises(ClaimForbidden):
        b.claim(claim.id, "other@pool")
    assert b.renew("other@pool", [claim.id]).unknown == [claim.id]
    assert b.finish_job(claim.id) == (1, 0)
    assert b.reserve_next(claim.id, (1, 1))
    assert not b.reserve_next(claim.id, (1, 2))  # busy again
    assert b.booked((1, 1)) and b.running() == 1
    assert b.slots_in_use() == ({"s1"}, {})
    assert b.stop_jobs([(1, 1)]) == [claim.id]
    assert b.renew("startd@pool", [claim.id]).stopped == [claim.id]
    assert b.renew("startd@pool", [claim.id]).stopped == []  # told once
    assert b.release(claim.id) is not None and b.slots_in_use() == (set(), {})


def test_claim_cpus_is_the_whole_static_slot_or_the_carved_request() -> None:
    b, _ = book()
    b.offer([Offer((1, 0), "s1", slot("s1", Cpus=8)), Offer((1, 1), "p", slot("p", PartitionableSlot=True))])
    m1, m2 = b.take("startd@pool", "agent-1", ["s1", "p"])
    c1 = b.open_claim(m1, startd="agent-1", identity="startd@pool", request=Resources(1, 0, 0, 0), submitter="a")
    c2 = b.open_claim(m2, startd="agent-1", identity="startd@pool", request=Resources(2, 0, 0, 0), submitter="a")
    assert claim_cpus(c1) == 8 and claim_cpus(c2) == 2
    assert b.usage_by_submitter() == {"a": 10}


def test_bad_timeouts_are_refused() -> None:
    with pytest.raises(ClaimError):
        ClaimBook(match_timeout=0)


# --------------------------------------------------------------------------- the state machine

JOBS = [(c, p) for c in (1, 2) for p in range(3)]
SLOTS = ["s1", "s2", "s3", "p1"]
IDENTITIES = ["a@pool", "b@pool"]


def ad_for(name: str, identity: str) -> dict[str, Any]:
    return slot(name, identity=identity, startd=None, PartitionableSlot=name.startswith("p"))


class ClaimBookMachine(RuleBasedStateMachine):
    """Random offers, polls, claims, renewals, releases and time; the rules always hold."""

    def __init__(self) -> None:
        super().__init__()
        self.book, self.clock = book(match_timeout=10, claim_timeout=20, capacity=3)
        self.owner = {name: IDENTITIES[i % 2] for i, name in enumerate(SLOTS)}
        self.evicted: list[tuple[int, int]] = []

    @rule(job=st.sampled_from(JOBS), name=st.sampled_from(SLOTS), cpus=st.integers(1, 3))
    def offer(self, job: tuple[int, int], name: str, cpus: int) -> None:
        before = self.book.booked(job)
        result = self.book.offer([Offer(job, name, ad_for(name, self.owner[name]), Resources(cpus, 0, 0, 0))])[0]
        if before:
            assert result is not None

    @rule(identity=st.sampled_from(IDENTITIES), names=st.lists(st.sampled_from(SLOTS), max_size=4))
    def poll(self, identity: str, names: list[str]) -> None:
        for m in self.book.take(identity, "agent", names):
            assert self.owner[m.offer.slot] == identity
            assert m.offer.slot in names
            assert m.expires > self.clock.now
            self.book.open_claim(m, startd="agent", identity=identity, request=m.offer.request or Resources())

    @rule(identity=st.sampled_from(IDENTITIES))
    def heartbeat(self, identity: str) -> None:
        ids = [c.id for c in self.book.claims()]
        r = self.book.renew(identity, ids)
        for cid in r.renewed:
            assert self.book.claim(cid).identity == identity

    @precondition(lambda self: any(c.job for c in self.book.claims()))
    @rule(data=st.data())
    def finish_and_maybe_reuse(self, data: st.DataObject) -> None:
        claim = data.draw(st.sampled_from([c for c in self.book.claims() if c.job]))
        self.book.finish_job(claim.id)
        nxt = data.draw(st.sampled_from(JOBS))
        if self.book.reserve_next(claim.id, nxt):
            assert self.book.claim(claim.id).job == nxt

    @precondition(lambda self: bool(self.book.claims()))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        claim = data.draw(st.sampled_from(self.book.claims()))
        self.book.release(claim.id)

    @rule(jobs=st.lists(st.sampled_from(JOBS), max_size=3))
    def user_removes(self, jobs: list[tuple[int, int]]) -> None:
        self.book.stop_jobs(jobs)
        for job in jobs:
            assert not self.book.booked(job)

    @rule(seconds=st.floats(0, 15))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds
        expired = self.book.expire()
        for pm in expired.matches:
            assert pm.expires <= self.clock.now
        for claim in expired.claims:
            assert claim.renewed <= self.clock.now - 20

    @invariant()
    def one_booking_per_job_and_per_static_slot(self) -> None:
        b = self.book
        pending = list(b._pending.values())  # noqa: SLF001 - the invariant looks inside
        holders: dict[tuple[int, int], int] = {}
        for pm in pending:
            holders[pm.offer.job] = holders.get(pm.offer.job, 0) + 1
        for claim in b.claims():
            if claim.job is not None:
                holders[claim.job] = holders.get(claim.job, 0) + 1
        assert all(n == 1 for n in holders.values()), holders
        per_slot: dict[str, int] = {}
        for pm in pending:
            per_slot[pm.offer.slot] = per_slot.get(pm.offer.slot, 0) + 1
        for claim in b.claims():
            per_slot[claim.slot] = per_slot.get(claim.slot, 0) + 1
        for name, n in per_slot.items():
            if not name.startswith("p"):
                assert n <= 1, (name, n)

    @invariant()
    def claims_belong_to_their_slots_identity_and_capacity_holds(self) -> None:
        for claim in self.book.claims():
            assert claim.identity == self.owner[claim.slot]
        assert self.book.running() <= 3


TestClaimBookMachine = ClaimBookMachine.TestCase
TestClaimBookMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
