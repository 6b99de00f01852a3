"""Job classes, saturated schedds, slot counts and real running glideins."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.frontend.classify import (
    IDLE,
    IDLE_3600,
    JOB_CLASSES,
    OLD_IDLE,
    RUNNING,
    RealRunning,
    SlotCounts,
    ad_value,
    classify_slot,
    count_real_running,
    count_slots,
    glidein_of_slot,
    job_classes,
    schedd_exclusion,
)
from gwms.frontend.matching import Entry, MatchPolicy, match_jobs

NOW = 100_000


def test_job_classes() -> None:
    assert job_classes({"JobStatus": 1, "EnteredCurrentStatus": NOW - 10}, NOW) == (IDLE,)
    assert job_classes({"JobStatus": 1, "EnteredCurrentStatus": NOW - 600}, NOW) == (IDLE, OLD_IDLE)
    assert job_classes({"jobstatus": 1, "enteredcurrentstatus": NOW - 3600}, NOW) == (IDLE, OLD_IDLE, IDLE_3600)
    assert job_classes({"JobStatus": 2}, NOW) == (RUNNING,)
    assert job_classes({"JobStatus": 5}, NOW) == ()
    assert job_classes({"JobStatus": 1}, NOW) == (IDLE,)
    assert job_classes({"JobStatus": 1, "EnteredCurrentStatus": 0}, NOW, counts_for_idle=False) == ()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1, 2, 4, 5]), st.integers(min_value=0, max_value=8000)), max_size=40))
def test_the_matcher_classifies_like_job_classes(rows: list[tuple[int, int]]) -> None:
    jobs = [{"JobStatus": s, "EnteredCurrentStatus": NOW - age, "RequestCpus": 1} for s, age in rows]
    result = match_jobs({"s": jobs}, [Entry("k", "e@g@f", {"attrs": {}})], MatchPolicy.from_texts("True"), now=NOW)
    for job_class in JOB_CLASSES:
        expected = sum(1 for job in jobs if job_class in job_classes(job, NOW))
        assert result[job_class].count == (expected,)


def test_saturated_schedds() -> None:
    assert schedd_exclusion({"MaxJobsRunning": 100, "TotalRunningJobs": 94}) is None
    assert "MaxJobsRunning" in (schedd_exclusion({"MaxJobsRunning": 100, "TotalRunningJobs": 95}) or "")
    # int(10 * 0.95 + 0.5) = 10: a small schedd is full only at its max
    assert schedd_exclusion({"MaxJobsRunning": 10, "TotalRunningJobs": 9}) is None
    assert schedd_exclusion({"MaxJobsRunning": 100, "TotalRunningJobs": 90, "TotalSchedulerJobsRunning": 5})
    assert schedd_exclusion({"TransferQueueMaxUploading": 20, "TransferQueueNumUploading": 19})
    assert schedd_exclusion({"TransferQueueMaxUploading": 0, "TransferQueueNumUploading": 19}) is None
    assert schedd_exclusion({"CurbMatchmaking": True}) == "CurbMatchmaking is true"
    assert schedd_exclusion({"MaxJobsRunning": 0, "TotalRunningJobs": 0})  # 0 really means no jobs
    assert schedd_exclusion({}) is None


def _slot(name: str, entry: str = "e1", client: str = "fe.main", **attrs: Any) -> dict[str, Any]:
    ad = {
        "Name": name,
        "GLIDEIN_Factory": "fact",
        "GLIDEIN_Name": "inst",
        "GLIDEIN_Entry_Name": entry,
        "GLIDECLIENT_Name": client,
        "Cpus": 1,
        "Memory": 2000,
        "State": "Unclaimed",
        "Activity": "Idle",
    }
    ad.update(attrs)
    return ad


def test_slot_states() -> None:
    assert classify_slot(_slot("slot1@g1")).state == "idle"
    assert classify_slot(_slot("slot1@g1", State="Claimed", Activity="Busy")).state == "running"
    assert classify_slot(_slot("slot1@g1", State="Claimed", Activity="Retiring")).state == "running"
    assert classify_slot(_slot("slot1@g1", State="Claimed", Activity="Idle")).state == "other"
    assert classify_slot(_slot("slot1@g1", State="Drained", Activity="Idle")).state == "failed"
    pslot = _slot("slot1@g1", PartitionableSlot=True, Cpus=4, Memory=8000)
    assert classify_slot(pslot).state == "idle"
    assert classify_slot({**pslot, "Memory": 2500}).state == "ignored"  # needs more than min_memory
    assert classify_slot({**pslot, "Memory": 2500}, min_memory=2000).state == "idle"
    assert classify_slot({**pslot, "Cpus": 0}).state == "ignored"
    assert classify_slot(_slot("slot1@g1", IS_MONITOR_VM=True)).state == "ignored"
    view = classify_slot(_slot("slot1_2@glidein-7"))
    assert view.entry == "e1@inst@fact" and view.glidein == "glidein-7" and view.client == "fe.main"
    assert classify_slot({"Name": "slot1@plain-startd", "State": "Unclaimed"}).entry is None


def test_count_slots_per_entry_group_frontend_and_pool() -> None:
    ads = [
        _slot("slot1@g1"),
        _slot("slot2@g1", State="Claimed", Activity="Busy"),
        _slot("slot1@g2", entry="e2", PartitionableSlot=True, Cpus=8, Memory=16000),
        _slot("slot1_1@g2", entry="e2", State="Claimed", Activity="Busy", Cpus=2, DynamicSlot=True),
        _slot("slot1@g3", client="fe.other"),
        _slot("slot1@g4", client="otherfe.main"),
        _slot("slot1@g5", State="Owner"),
        {"Name": "slot1@notaglidein", "State": "Unclaimed", "Activity": "Idle"},
    ]
    slots = count_slots(ads, frontend_name="fe", group_name="main")
    assert slots.entry("e1@inst@fact") == SlotCounts(
        total=3, idle=1, running=1, failed=1, total_cores=3, idle_cores=1, running_cores=1
    )
    assert slots.entry("e2@inst@fact") == SlotCounts(
        total=2, idle=1, running=1, total_cores=10, idle_cores=8, running_cores=2
    )
    assert slots.entry("nowhere@inst@fact") == SlotCounts()
    assert slots.group.total == 5 and slots.group.idle == 2
    assert slots.frontend.total == 6  # fe.other counts for the frontend
    assert slots.pool.total == 7  # otherfe.main counts only for the pool
    assert slots.group.as_dict()["RunningCores"] == 3
    assert slots.entry_of_glidein == {"g1": "e1@inst@fact", "g2": "e2@inst@fact", "g5": "e1@inst@fact"}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.builds(
            dict,
            State=st.sampled_from(["Unclaimed", "Claimed", "Owner", "Drained", "Matched"]),
            Activity=st.sampled_from(["Idle", "Busy", "Retiring", "Vacating"]),
            PartitionableSlot=st.booleans(),
            Cpus=st.integers(min_value=0, max_value=8),
            Memory=st.integers(min_value=0, max_value=9000),
        ),
        max_size=30,
    )
)
def test_idle_running_failed_never_exceed_total(states: list[dict[str, Any]]) -> None:
    ads = [_slot(f"slot{i}@g{i}", **attrs) for i, attrs in enumerate(states)]
    slots = count_slots(ads, frontend_name="fe", group_name="main")
    c = slots.group
    assert c.idle + c.running + c.failed <= c.total
    assert c.idle_cores + c.running_cores <= c.total_cores


def test_real_running_counts_jobs_and_glideins_of_this_group() -> None:
    entry_of = {"g1": "e1@inst@fact", "g2": "e1@inst@fact", "g3": "e2@inst@fact"}
    jobs = [
        {"JobStatus": 2, "RemoteHost": "slot1@g1"},
        {"JobStatus": 2, "RemoteHost": "slot2@g1"},
        {"JobStatus": 2, "RemoteHost": "slot1_1@g2"},
        {"JobStatus": 2, "RemoteHost": "slot1@g3"},
        {"JobStatus": 2, "RemoteHost": "slot1@elsewhere"},
        {"JobStatus": 1, "RemoteHost": "slot1@g3"},
        {"JobStatus": 2},
    ]
    assert count_real_running(jobs, entry_of) == {
        "e1@inst@fact": RealRunning(jobs=3, glideins=2),
        "e2@inst@fact": RealRunning(jobs=1, glideins=1),
    }


def test_helpers() -> None:
    assert glidein_of_slot("slot1_3@glidein-x@host") == "glidein-x@host"
    assert glidein_of_slot("plain") == "plain"
    assert ad_value({"RequestCpus": 2}, "requestcpus") == 2
    assert ad_value({}, "x", 5) == 5
