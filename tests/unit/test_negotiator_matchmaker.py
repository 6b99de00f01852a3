"""The matchmaker's promises, as properties over random pools and job groups.

- every match is a symmetric match of the job and the slot as it was then;
- a static slot is given once; a partitionable slot never gives more than it has;
- a job is matched at most once, in its group's order; schedd limits hold;
- nothing is left unmatched that a free slot would take (the cycle is maximal);
- a job gets its best-ranked free static slot;
- better (lower) effective priority is served first and gets at least as much.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.classads import rank, symmetric_match
from gwms.pool.negotiator import JobGroup, negotiate
from gwms.pool.negotiator.matchmaker import fair_shares, serving_order
from gwms.pool.resources import Resources, carving, is_partitionable, job_request, slot_resources, with_resources

JOB_REQUIREMENTS = [
    "/Expr(TARGET.Memory >= RequestMemory && TARGET.Cpus >= RequestCpus)/",
    '/Expr(TARGET.Memory >= RequestMemory && TARGET.Cpus >= RequestCpus && GLIDEIN_Site == "A")/',
    '/Expr(TARGET.Cpus >= RequestCpus && (TARGET.GLIDEIN_Site =!= "B"))/',
    "/Expr(TARGET.Cpus >= RequestCpus && TARGET.Memory >= RequestMemory && TARGET.HasData)/",
    "/Expr(false)/",
]
RANKS = ["/Expr(0)/", "/Expr(TARGET.Memory)/", "/Expr(TARGET.Cpus * 10 - TARGET.Memory / 1024)/", None]
STARTS = [True, "/Expr(TARGET.RequestCpus <= 2)/", '/Expr(TARGET.Owner != "bob")/', False,
          "/Expr(TARGET.RequestMemory <= MY.Memory)/"]
OWNERS = ["alice", "bob", "carol"]


@st.composite
def groups_st(draw: st.DrawFn) -> list[JobGroup]:
    groups = []
    for gi in range(draw(st.integers(1, 6))):
        owner = draw(st.sampled_from(OWNERS))
        ad: dict[str, Any] = {
            "Owner": owner,
            "RequestCpus": draw(st.integers(1, 3)),
            "RequestMemory": draw(st.sampled_from([512, 1024, 3000, 6000])),
            "RequestDisk": 100,
            "Requirements": draw(st.sampled_from(JOB_REQUIREMENTS)),
        }
        r = draw(st.sampled_from(RANKS))
        if r is not None:
            ad["Rank"] = r
        n = draw(st.integers(1, 6))
        schedd = draw(st.sampled_from(["s1", "s2"]))
        groups.append(JobGroup(f"g{gi}", schedd, owner, owner, ad, [f"{gi + 1}.{p}" for p in range(n)],
                               draw(st.integers(0, 2))))
    return groups


@st.composite
def slots_st(draw: st.DrawFn) -> list[dict[str, Any]]:
    slots = []
    for i in range(draw(st.integers(0, 8))):
        part = draw(st.booleans())
        cpus = draw(st.integers(1, 6))
        ad: dict[str, Any] = {
            "Name": f"slot{i}@host",
            "State": "Unclaimed",
            "Cpus": cpus,
            "Memory": draw(st.sampled_from([1024, 2048, 4096, 8192])),
            "Disk": 10_000,
            "GLIDEIN_Site": draw(st.sampled_from(["A", "B", "C"])),
            "START": draw(st.sampled_from(STARTS)),
        }
        if draw(st.booleans()):
            ad["HasData"] = draw(st.booleans())
        if part:
            ad["PartitionableSlot"] = True
        slots.append(ad)
    return slots


priorities_st = st.fixed_dictionaries({o: st.sampled_from([0.5, 1.0, 3.0, 10.0]) for o in OWNERS})
limits_st = st.one_of(st.none(), st.fixed_dictionaries({"s1": st.integers(0, 6), "s2": st.integers(0, 6)}))


def replay(groups: list[JobGroup], slots: list[dict[str, Any]], matches: list[Any]) -> dict[str, Resources]:
    """Check each match against the slots as they were when it was made; return what is
    left of each partitionable slot."""
    by_name = {s["Name"]: s for s in slots}
    group_of = {g.id: g for g in groups}
    free = {n: slot_resources(s) for n, s in by_name.items() if is_partitionable(s)}
    static_used: Counter[str] = Counter()
    for m in matches:
        slot = by_name[m.slot]
        group = group_of[m.group]
        if is_partitionable(slot):
            assert m.partitionable
            assert dict(m.slot_ad) == with_resources(slot, free[m.slot])  # the slot as it was then
            take = carving(job_request(group.ad, m.slot_ad))
            assert m.request == take and take.fits_in(free[m.slot])
            free[m.slot] = free[m.slot].minus(take)
        else:
            assert m.slot_ad is slot
            static_used[m.slot] += 1
        assert symmetric_match(group.ad, m.slot_ad), (group.ad, m.slot_ad)
    assert all(n == 1 for n in static_used.values())
    for left in free.values():
        assert left.cpus >= 0 and left.memory >= 0 and left.disk >= 0 and left.gpus >= 0
    return free


@settings(max_examples=300, deadline=None)
@given(groups_st(), slots_st(), priorities_st, limits_st)
def test_matches_are_valid_and_the_cycle_is_maximal(groups: list[JobGroup], slots: list[dict[str, Any]],
                                                    prios: dict[str, float], limits: dict[str, int] | None) -> None:
    result = negotiate(groups, slots, prios, schedd_limits=limits)
    free = replay(groups, slots, result.matches)
    # jobs: once each, a prefix of their group's order
    jobs = [m.job for m in result.matches]
    assert len(jobs) == len(set(jobs))
    per_group = Counter(m.group for m in result.matches)
    for g in groups:
        taken = [m.job for m in result.matches if m.group == g.id]
        assert sorted(taken, key=g.jobs.index) == list(g.jobs[: per_group[g.id]])
    # schedd limits
    per_schedd = Counter(m.schedd for m in result.matches)
    if limits is not None:
        for schedd, n in per_schedd.items():
            assert n <= limits[schedd]
    # maximal: a group with jobs left (and room at its schedd) matches no free slot
    used_static = {m.slot for m in result.matches if not m.partitionable}
    for g in groups:
        if per_group[g.id] == len(g.jobs):
            continue
        if limits is not None and per_schedd[g.schedd] >= limits[g.schedd]:
            continue
        for s in slots:
            if is_partitionable(s):
                now = with_resources(s, free[s["Name"]])
                if free[s["Name"]].cpus >= 1 and symmetric_match(g.ad, now):
                    assert not carving(job_request(g.ad, now)).fits_in(free[s["Name"]]), (g, s)
            elif s["Name"] not in used_static:
                assert not symmetric_match(g.ad, s), (g.ad, s)
    # rank: no free static slot the job ranks higher than the static slot it got
    group_of = {g.id: g for g in groups}
    for m in result.matches:
        if m.partitionable:
            continue
        g = group_of[m.group]
        for s in slots:
            if not is_partitionable(s) and s["Name"] not in used_static and symmetric_match(g.ad, s):
                assert rank(g.ad, s) <= rank(g.ad, m.slot_ad)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 12), st.integers(1, 10), st.integers(1, 10), st.sampled_from([0.5, 1.0, 2.0]),
       st.sampled_from([1.0, 2.0, 5.0, 100.0]))
def test_better_priority_is_served_first_and_gets_at_least_as_much(
    slots_n: int, demand_a: int, demand_b: int, prio_a: float, worse_by: float
) -> None:
    ad = {"RequestCpus": 1, "RequestMemory": 1, "Requirements": "/Expr(TARGET.Cpus >= RequestCpus)/"}
    groups = [
        JobGroup("b", "s", "bob", "bob", ad, [f"2.{i}" for i in range(demand_b)]),
        JobGroup("a", "s", "alice", "alice", ad, [f"1.{i}" for i in range(demand_a)]),
    ]
    slots = [{"Name": f"slot{i}", "Cpus": 1, "Memory": 100, "START": True} for i in range(slots_n)]
    prios = {"alice": prio_a, "bob": prio_a * worse_by}
    result = negotiate(groups, slots, prios)
    assert result.served == ["alice", "bob"]
    got = Counter(m.submitter for m in result.matches)
    assert got["alice"] + got["bob"] == min(slots_n, demand_a + demand_b)
    assert got["alice"] >= min(demand_a, got["bob"])
    if demand_a >= slots_n and demand_b >= slots_n:
        # both want everything: shares follow 1/priority, rounded up for the better one first
        assert got["alice"] >= slots_n * (1 / prio_a) / (1 / prio_a + 1 / (prio_a * worse_by)) - 1e-9


def test_fair_shares_follow_inverse_priority_and_demand() -> None:
    assert fair_shares({"a": 100, "b": 100}, {"a": 1.0, "b": 3.0}, 8) == {"a": 6, "b": 2}
    assert fair_shares({"a": 1, "b": 100}, {"a": 1.0, "b": 1.0}, 10) == {"a": 1, "b": 5}
    assert fair_shares({"a": 0}, {}, 10) == {"a": 0}
    assert serving_order(["b", "a", "c"], {"a": 2.0, "b": 1.0}) == ["c", "b", "a"]  # c: default 0.5


def test_partitionable_slot_is_carved_until_resources_run_out() -> None:
    ad = {"RequestCpus": 2, "RequestMemory": 1000, "RequestDisk": 10,
          "Requirements": "/Expr(TARGET.Cpus >= RequestCpus && TARGET.Memory >= RequestMemory)/"}
    group = JobGroup("g", "s", "alice", "alice", ad, [f"1.{i}" for i in range(10)])
    slot = {"Name": "slot1@big", "PartitionableSlot": True, "Cpus": 7, "Memory": 5000, "Disk": 100, "START": True}
    result = negotiate([group], [slot])
    assert [m.slot for m in result.matches] == ["slot1@big"] * 3  # 7 CPUs: three jobs of 2
    assert [m.slot_ad["Cpus"] for m in result.matches] == [7, 5, 3]
    assert all(m.request == Resources(2, 1000, 10, 0) for m in result.matches)


def test_static_slot_goes_to_the_best_rank_and_unmatched_groups_are_named() -> None:
    small = {"Name": "small", "Cpus": 1, "Memory": 1024, "START": True}
    big = {"Name": "big", "Cpus": 8, "Memory": 16384, "START": True}
    want_big = {"RequestCpus": 1, "RequestMemory": 1, "Rank": "/Expr(TARGET.Memory)/",
                "Requirements": "/Expr(TARGET.Cpus >= RequestCpus)/"}
    too_big = {"RequestCpus": 64, "RequestMemory": 1, "Requirements": "/Expr(TARGET.Cpus >= RequestCpus)/"}
    result = negotiate([JobGroup("g1", "s", "a", "a", want_big, ["1.0"]),
                        JobGroup("g2", "s", "a", "a", too_big, ["2.0"])], [small, big])
    assert [(m.job, m.slot) for m in result.matches] == [("1.0", "big")]
    assert result.unmatched == ["g2"]
    # g2 is only tried against the slot still free when its turn comes
    assert result.slot_groups == 2 and result.evaluations == 3
