"""Slot grouping, partitionable carving, and the resource arithmetic they share with the schedd."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.pool.matchattrs import job_reads, reached, slot_reads
from gwms.pool.negotiator.slots import SlotPool
from gwms.pool.resources import Resources, carving, is_partitionable, job_request, slot_resources, with_resources


def slot(name: str, **attrs: Any) -> dict[str, Any]:
    return {"Name": name, "Cpus": 4, "Memory": 8192, "Disk": 1000, "START": True, **attrs}


def test_slots_that_differ_only_in_what_no_job_reads_share_a_group() -> None:
    pool = SlotPool([slot("a", Machine="x", LoadAvg=0.1), slot("b", Machine="y", LoadAvg=0.7),
                     slot("c", GLIDEIN_Site="B")], job_reads=["cpus", "memory", "glidein_site"])
    sizes = sorted(g.size() for g in pool.groups.values())
    assert sizes == [1, 2]
    # once a job reads Machine, the slots no longer look the same
    pool = SlotPool([slot("a", Machine="x"), slot("b", Machine="y")], job_reads=["machine"])
    assert len(pool.groups) == 2


def test_what_the_slots_start_expression_reads_counts_too() -> None:
    a = slot("a", START="/Expr(MY.Trusted && TARGET.RequestCpus <= 2)/", Trusted=True)
    b = slot("b", START="/Expr(MY.Trusted && TARGET.RequestCpus <= 2)/", Trusted=False)
    assert len(SlotPool([a, b], job_reads=[]).groups) == 2
    assert slot_reads(a) == {"requestcpus"}


def test_duplicate_names_count_once_and_capacity_counts_cpus_of_partitionable_slots() -> None:
    pool = SlotPool([slot("a"), slot("a"), slot("p", PartitionableSlot=True, Cpus=6)], job_reads=[])
    assert len(pool.static_ads) == 1 and len(pool.partitionable) == 1
    assert pool.capacity == 1 + 6


def test_carving_moves_the_rest_of_the_slot_to_its_new_shape() -> None:
    pool = SlotPool([slot("p", PartitionableSlot=True), slot("q", PartitionableSlot=True)], job_reads=["cpus"])
    (group,) = pool.groups.values()
    pslot = group.partitionable["p"]
    before, taken, rest = pool.carve(pslot, Resources(0, 1000, 10, 0))
    assert taken == Resources(1, 1000, 10, 0)  # at least one CPU
    assert before["Cpus"] == 4 and rest is not None and rest.ad["Cpus"] == 3 and rest.ad["Memory"] == 7192
    assert "p" not in group.partitionable and "q" in group.partitionable
    for _ in range(3):
        _, _, rest = pool.carve(pslot, Resources(1, 1, 1, 0))
    assert rest is None and pslot.free.cpus == 0  # used up: in no group


def test_requests_are_evaluated_against_the_slot_and_default_to_one_cpu() -> None:
    job = {"RequestCpus": "/Expr(TARGET.Cpus > 4 ? 4 : 1)/", "RequestMemory": "/Expr(MY.Base * 2)/", "Base": 1000,
           "RequestDisk": "lots"}
    assert job_request(job, {"Cpus": 8}) == Resources(4, 2000, 0, 0)
    assert job_request(job, {"Cpus": 2}) == Resources(1, 2000, 0, 0)
    assert job_request({}, None) == Resources(1, 0, 0, 0)
    assert carving(Resources(0.5, 1, 1, 0)) == Resources(1, 1, 1, 0)


def test_resource_helpers() -> None:
    ad = {"name": "x", "cpus": 4, "MEMORY": 100, "Disk": -1, "PartitionableSlot": True}
    assert slot_resources(ad) == Resources(4, 100, 0, 0)
    assert is_partitionable(ad) and not is_partitionable({"PartitionableSlot": "true"})
    out = with_resources(ad, Resources(1, 50, 5, 0))
    assert out == {"name": "x", "PartitionableSlot": True, "Cpus": 1, "Memory": 50, "Disk": 5, "Gpus": 0}
    assert Resources.from_ad({"cpus": 2, "memory": 1.5}) == Resources(2, 1.5, 0, 0)
    assert Resources(2, 2, 2, 2).minus(Resources(1, 1, 1, 1)).plus(Resources(1, 1, 1, 1)) == Resources(2, 2, 2, 2)


def test_what_each_side_reads() -> None:
    job = {"Requirements": "/Expr(TARGET.Memory >= RequestMemory && MY.Big && Site == \"A\")/",
           "Big": "/Expr(TARGET.Disk > 5)/", "RequestMemory": 1, "Rank": "/Expr(Cpus)/"}
    assert job_reads(job) == {"memory", "disk", "site", "cpus"}
    mine, other = reached(job, ["requirements"])
    assert {"requirements", "big", "requestmemory"} <= mine and "site" in other


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A", "B"]), st.integers(1, 3), st.sampled_from(["x", "y", "z"])),
                max_size=15))
def test_every_slot_is_in_exactly_one_group_of_equal_read_values(specs: list[tuple[str, int, str]]) -> None:
    slots = [slot(f"s{i}", GLIDEIN_Site=site, Cpus=cpus, Machine=m) for i, (site, cpus, m) in enumerate(specs)]
    pool = SlotPool(slots, job_reads=["glidein_site", "cpus"])
    seen = [name for g in pool.groups.values() for name in g.static]
    assert sorted(seen) == sorted(s["Name"] for s in slots)
    by_name = {s["Name"]: s for s in slots}
    for g in pool.groups.values():
        values = {(by_name[n]["GLIDEIN_Site"], by_name[n]["Cpus"]) for n in g.static}
        assert len(values) == 1
    assert len(pool.groups) == len({(s, c) for s, c, _ in specs})
