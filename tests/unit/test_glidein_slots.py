"""Slots of the startd agent: shares, carving, states and slot ads (gwms.glidein.slots)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gwms.glidein.slots import (
    DYNAMIC,
    AgentStatus,
    MachineInfo,
    Resources,
    SlotTable,
    carve,
    job_request,
    slot_ad,
    split_static,
)

resources = st.builds(
    Resources,
    cpus=st.integers(0, 64),
    memory=st.integers(0, 256_000),
    disk=st.integers(0, 10**9),
    gpus=st.integers(0, 8),
)
MACHINE = MachineInfo(
    glidein="g@host", hostname="host", arch="X86_64", startd_id="abc",
    total=Resources(8, 16000, 10**8, 1), daemon_start=1000.0, ad_lifetime=300,
    start_expr='TARGET.Owner == "alice"',
    published={"GLIDEIN_Site": "S1", "Name": "ignored", "State": "x", "GLIDEIN_Name": "v1"},
)
ACCEPTING = AgentStatus(True, 5000.0, 9000.0)
RETIRING = AgentStatus(False, 5000.0, 9000.0)


@given(resources, st.integers(1, 16))
def test_static_shares_never_exceed_the_total(total: Resources, n: int) -> None:
    share = split_static(total, n)
    assert share.cpus >= 1
    assert share.memory * n <= total.memory and share.disk * n <= total.disk and share.gpus * n <= total.gpus
    if total.cpus >= n:
        assert share.cpus * n <= total.cpus


@given(resources, resources)
def test_carve_gives_exactly_the_request_or_nothing(free: Resources, request: Resources) -> None:
    got = carve(free, request)
    if request.fits_in(free):
        assert got == request
        left = free.minus(request)
        assert min(left.cpus, left.memory, left.disk, left.gpus) >= 0
    else:
        assert got is None


def test_job_request_defaults_and_rounding() -> None:
    assert job_request({}) == Resources(1, 128, 102400, 0)
    assert job_request({"requestcpus": 2, "RequestMemory": 1000.5, "RequestDisk": 10, "RequestGpus": 1}) == Resources(2, 1001, 10, 1)
    # expressions are not evaluated on the worker: defaults
    assert job_request({"RequestMemory": "/Expr(MemoryUsage * 2)/", "RequestCpus": True}) == Resources(1, 128, 102400, 0)


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 3), st.integers(0, 3000)), max_size=30))
def test_partitionable_accounting_is_conserved(ops: list[tuple[bool, int, int]]) -> None:
    total = Resources(4, 4000, 10**6, 0)
    table = SlotTable("g", total, partitionable=True)
    live = []
    for n, (take, cpus, memory) in enumerate(ops):
        if take or not live:
            slot, reason = table.take("slot1@g", f"c{n}", {"RequestCpus": cpus, "RequestMemory": memory, "RequestDisk": 1}, 0.0)
            if slot is not None:
                assert slot.kind == DYNAMIC and slot.name.startswith("slot1_")
                live.append(slot)
            else:
                assert "not enough" in reason
        else:
            table.finish(live.pop(0))
        slots = table.snapshot()
        parent = next(s for s in slots if s.name == "slot1@g")
        used = Resources(0, 0, 0, 0)
        for s in slots:
            if s.kind == DYNAMIC:
                used = used.plus(s.size)
        assert parent.free.plus(used) == total
        assert min(parent.free.cpus, parent.free.memory, parent.free.disk) >= 0
        assert len({s.name for s in slots}) == len(slots)
        assert table.running() == len(live)


def test_static_slots_take_and_finish() -> None:
    table = SlotTable("g", Resources(2, 2000, 1000), static=2)
    assert table.poll_names() == ["slot1@g", "slot2@g"]
    slot, _ = table.take("slot1@g", "c1", {"ClusterId": 1, "ProcId": 0}, 10.0)
    assert slot is not None and slot.busy and slot.size == Resources(1, 1000, 500)
    again, reason = table.take("slot1@g", "c2", {}, 11.0)
    assert again is None and "busy" in reason
    none, reason = table.take("slot9@g", "c3", {}, 11.0)
    assert none is None and "no slot" in reason
    assert table.poll_names() == ["slot1@g", "slot2@g"], "busy slots are still polled for"
    table.finish(slot)
    assert not slot.busy and table.running() == 0
    assert table.pop_removed() == []


def test_dynamic_names_reuse_the_lowest_free_number() -> None:
    table = SlotTable("g", Resources(4, 4000, 1000), partitionable=True)
    a, _ = table.take("slot1@g", "a", {"RequestDisk": 1}, 0.0)
    b, _ = table.take("slot1@g", "b", {"RequestDisk": 1}, 0.0)
    assert (a.short, b.short) == ("slot1_1", "slot1_2")  # type: ignore[union-attr]
    table.finish(a)  # type: ignore[arg-type]
    assert table.pop_removed() == ["slot1_1@g"]
    c, _ = table.take("slot1@g", "c", {"RequestDisk": 1}, 0.0)
    assert c.short == "slot1_1"  # type: ignore[union-attr]
    assert table.reuse(c, {"RequestCpus": 2}, 1.0) != ""  # type: ignore[arg-type]
    assert table.reuse(c, {"RequestCpus": 1, "RequestDisk": 1}, 1.0) == ""  # type: ignore[arg-type]


def test_slot_ads() -> None:
    table = SlotTable("g@host", MACHINE.total, static=2)
    table.take("slot2@g@host", "c", {"ClusterId": 7, "ProcId": 3, "Owner": "alice", "GlobalJobId": "s#7.3#1"}, 1234.0)
    ads = {s.name: slot_ad(s, MACHINE, ACCEPTING, 2000.0) for s in table.snapshot()}
    free, busy = ads["slot1@g@host"], ads["slot2@g@host"]
    assert free["MyType"] == "Machine" and free["Name"] == "slot1@g@host"
    assert (free["State"], free["Activity"]) == ("Unclaimed", "Idle")
    assert (busy["State"], busy["Activity"]) == ("Claimed", "Busy")
    assert busy["JobId"] == "7.3" and busy["RemoteOwner"] == "alice" and busy["JobStart"] == 1234
    assert free["Cpus"] == 4 and free["Memory"] == 8000 and free["TotalCpus"] == 8
    assert free["OpSys"] == "LINUX" and free["Arch"] == "X86_64"
    assert free["Start"] == '/Expr(TARGET.Owner == "alice")/'
    assert free["GLIDEIN_Site"] == "S1" and free["GwmsStartdId"] == "abc"
    # GLIDEIN_Name is the factory instance the pilot published; the agent's name has its own
    assert free["GLIDEIN_Name"] == "v1" and free["GwmsStartdName"] == "g@host"
    assert free["GLIDEIN_ToRetire"] == 5000 and free["GLIDEIN_ToDie"] == 9000
    assert free["ClassAdLifetime"] == 300
    assert "PartitionableSlot" not in free
    retiring = {s.name: slot_ad(s, MACHINE, RETIRING, 2000.0) for s in table.snapshot()}
    assert (retiring["slot1@g@host"]["State"], retiring["slot1@g@host"]["Activity"]) == ("Drained", "Idle")
    assert (retiring["slot2@g@host"]["State"], retiring["slot2@g@host"]["Activity"]) == ("Claimed", "Retiring")
    assert retiring["slot1@g@host"]["Start"] == "/Expr(false)/"


def test_partitionable_ads() -> None:
    table = SlotTable("g@host", MACHINE.total, partitionable=True)
    table.take("slot1@g@host", "c", {"RequestCpus": 3, "RequestMemory": 5000, "RequestDisk": 10}, 0.0)
    ads = {s.name: slot_ad(s, MACHINE, RETIRING, 1.0) for s in table.snapshot()}
    p = ads["slot1@g@host"]
    assert p["PartitionableSlot"] is True and p["Cpus"] == 5 and p["Memory"] == 11000 and p["TotalSlotCpus"] == 8
    assert (p["State"], p["Activity"]) == ("Drained", "Retiring")
    d = ads["slot1_1@g@host"]
    assert d["DynamicSlot"] is True and d["SlotType"] == "Dynamic" and d["Cpus"] == 3 and d["ParentSlotName"] == "slot1@g@host"
