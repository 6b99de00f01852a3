"""An agent that stops taking jobs says goodbye: the schedd drops its pending matches at once.

Regression: a match made just before a glidein retired waited the whole match timeout
(60 s by default) before its job could be matched again.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from test_schedd_claims import book
from test_schedd_claims import slot as claims_slot

from gwms.pool.resources import Resources
from gwms.pool.schedd.claims import DEPARTED_MEMORY, Offer, PendingMatch, leaves_with


def slot(name: str, identity: str = "glidein@pool", startd: str | None = "agent-1", **attrs: Any) -> dict[str, Any]:
    """A slot ad of a glidein's agent (the claim book tests' helper, another identity)."""
    return claims_slot(name, identity, startd, **attrs)


def test_goodbye_drops_the_agents_pending_matches_and_frees_their_jobs() -> None:
    b, clock = book(match_timeout=60)
    b.offer([Offer((1, 0), "s1@g1", slot("s1@g1")), Offer((1, 1), "s2@g1", slot("s2@g1")),
             Offer((1, 2), "s1@g2", slot("s1@g2", startd="agent-2"))])
    clock.now += 1
    gone = b.goodbye("glidein@pool", "agent-1", ["s1@g1", "s2@g1"])
    assert sorted(pm.offer.job for pm in gone) == [(1, 0), (1, 1)]
    assert not b.booked((1, 0)) and not b.booked((1, 1))
    assert b.booked((1, 2)) and b.pending_count() == 1
    assert b.slots_in_use()[0] == {"s1@g2"}
    # the jobs can be matched elsewhere right away, long before the match timeout
    assert b.offer([Offer((1, 0), "s9@g9", slot("s9@g9", startd="agent-9"))]) == [None]


def test_new_matches_to_a_departed_agent_are_refused_until_it_is_forgotten() -> None:
    b, clock = book(match_timeout=60)
    b.goodbye("glidein@pool", "agent-1", ["s1@g1"])
    (reason,) = b.offer([Offer((2, 0), "s1@g1", slot("s1@g1"))])
    assert reason is not None and "retiring" in reason
    assert not b.booked((2, 0))
    # another agent, or the same id under another identity, is not affected
    assert b.offer([Offer((2, 1), "s1@g2", slot("s1@g2", startd="agent-2")),
                    Offer((2, 2), "s1@x", slot("s1@x", identity="other@pool"))]) == [None, None]
    assert b.departed("glidein@pool", "agent-1")
    clock.now += DEPARTED_MEMORY + 1
    b.expire()
    assert not b.departed("glidein@pool", "agent-1")


def test_goodbye_leaves_claims_alone() -> None:
    b, _ = book()
    b.offer([Offer((1, 0), "s1@g1", slot("s1@g1"))])
    (m,) = b.take("glidein@pool", "agent-1", ["s1@g1"])
    claim = b.open_claim(m, startd="agent-1", identity="glidein@pool", request=Resources(1, 100, 0, 0))
    assert b.goodbye("glidein@pool", "agent-1", ["s1@g1"]) == []
    assert b.claim_of_job((1, 0)) is claim and b.running() == 1


def test_only_the_slots_identity_can_say_goodbye_for_it() -> None:
    b, _ = book()
    b.offer([Offer((1, 0), "s1@g1", slot("s1@g1"))])
    assert b.goodbye("intruder@pool", "agent-1", ["s1@g1"]) == []
    assert b.booked((1, 0))


def test_slot_ads_without_an_agent_id_go_only_when_listed() -> None:
    b, _ = book()
    b.offer([Offer((1, 0), "s1@old", slot("s1@old", startd=None)), Offer((1, 1), "s2@old", slot("s2@old", startd=None))])
    gone = b.goodbye("glidein@pool", "agent-1", ["s1@old"])
    assert [pm.offer.job for pm in gone] == [(1, 0)]
    assert b.booked((1, 1))


def test_partitionable_slot_matches_all_go() -> None:
    b, _ = book()
    p = slot("p1@g1", PartitionableSlot=True)
    b.offer([Offer((3, i), "p1@g1", p, Resources(1, 100, 0, 0)) for i in range(3)])
    assert len(b.goodbye("glidein@pool", "agent-1")) == 3
    assert b.slots_in_use() == (set(), {})


identities = st.sampled_from(["a@pool", "b@pool"])
agents = st.sampled_from(["agent-1", "agent-2", None])
slot_names = st.sampled_from(["s1", "s2", "s3", "s4"])


@settings(max_examples=200, deadline=None)
@given(
    offers=st.lists(st.tuples(identities, agents, slot_names), max_size=12),
    who=identities, leaving=st.sampled_from(["agent-1", "agent-2"]), listed=st.frozensets(slot_names),
)
def test_goodbye_drops_exactly_the_matches_that_leave_with_the_agent(
    offers: list[tuple[str, str | None, str]], who: str, leaving: str, listed: frozenset[str]
) -> None:
    b, _ = book()
    made: list[Offer] = []
    for i, (identity, agent, name) in enumerate(offers):
        o = Offer((1, i), f"{name}@{identity}@{agent}", slot(name, identity=identity, startd=agent))
        if b.offer([o]) == [None]:
            made.append(o)
    full_names = frozenset(o.slot for o in made if o.slot.split("@")[0] in listed)
    gone = b.goodbye(who, leaving, full_names)
    expected = {o.job for o in made if leaves_with(PendingMatch(o, 0, 1), who, leaving, full_names)}
    assert {pm.offer.job for pm in gone} == expected
    for o in made:
        assert b.booked(o.job) == (o.job not in expected)
        # the decision itself: never another identity's match; never another agent's when the ad names one
        if o.job in expected:
            assert o.identity == who
            assert o.startd_id in (leaving, None)
