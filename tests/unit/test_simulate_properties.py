"""Properties of whole simulations: jobs are conserved, time only moves forward, the
glideins' slots are counted by the frontend as the pool has them."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.frontend.classify import _counts_of, classify_slot, count_slots
from gwms.simulate import Scenario, Simulation
from gwms.simulate.engine import load_configs

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "simulate"


def _scenario(**kw) -> Scenario:
    data = {
        "name": "prop", "duration": 2400, "sample_interval": 120,
        "frontend": EXAMPLES / "frontend.yaml", "factory": EXAMPLES / "factory.yaml",
        "site_defaults": {"capacity": kw.pop("capacity"), "queue_delay": {"dist": "exponential", "mean": 60},
                          "startup": 10, "failure_rate": kw.pop("failure_rate"),
                          "black_hole_fraction": kw.pop("black_hole"), "black_hole_job_runtime": 5},
        "workload": kw.pop("workload"),
    }
    data.update(kw)
    return Scenario.model_validate(data)


_WORKLOAD = st.lists(
    st.fixed_dictionaries({
        "name": st.sampled_from(["a", "b", "c", "d"]),
        "pattern": st.sampled_from(["burst", "steady"]),
        "start": st.integers(0, 1200),
        "count": st.integers(0, 40),
        "rate": st.integers(0, 200),
        "runtime": st.sampled_from([60, 600, {"dist": "exponential", "mean": 300}]),
        "memory": st.sampled_from([1000, 6000]),
        "sites": st.sampled_from([[], ["SITE_A"], ["SITE_C", "SITE_D"]]),
    }),
    min_size=1, max_size=3, unique_by=lambda w: w["name"],
)


@settings(max_examples=8, deadline=None)
@given(
    workload=_WORKLOAD,
    capacity=st.integers(0, 30),
    failure_rate=st.sampled_from([0.0, 0.5, 1.0]),
    black_hole=st.sampled_from([0.0, 0.5]),
    seed=st.integers(0, 1000),
)
def test_jobs_are_conserved_and_time_moves_forward(workload, capacity, failure_rate, black_hole, seed) -> None:
    sc = _scenario(workload=workload, capacity=capacity, failure_rate=failure_rate, black_hole=black_hole)
    fe, fa = load_configs(sc)
    sim = Simulation(sc, fe, fa, seed=seed)
    report = sim.run()
    s = report["series"]
    assert s["t"] == sorted(s["t"])
    for sub, idle, run, done in zip(s["jobs_submitted"], s["jobs_idle"], s["jobs_running"], s["jobs_done"], strict=True):
        assert idle + run + done == sub
        assert min(idle, run, done) >= 0
    summ = report["summary"]
    assert summ["jobs_idle_at_end"] + summ["jobs_running_at_end"] + summ["jobs_done"] == summ["jobs_submitted"]
    assert summ["jobs_running_at_end"] <= sum(e["pilots_started"] for e in report["entries"].values())
    # the pool's own view agrees with the frontend's count of running jobs
    assert len([a for a in sim.pool.active.values() if a["JobStatus"] == 2]) == sim.pool.stats.running
    assert sim.loop.now == sim.end


_SLOT = st.fixed_dictionaries(
    {
        "Name": st.sampled_from(["slot1@g1", "slot2@g1", "slot1@g2", "slot1@g3"]),
        "GLIDEIN_Factory": st.just("f"), "GLIDEIN_Name": st.just("v1"),
        "GLIDEIN_Entry_Name": st.sampled_from(["e1", "e2"]),
        "GLIDECLIENT_Name": st.sampled_from(["fe.main", "fe.other", "x.main"]),
        "State": st.sampled_from(["Unclaimed", "Claimed", "Owner", "Drained", "Matched"]),
        "Activity": st.sampled_from(["Idle", "Busy", "Retiring"]),
        "Cpus": st.integers(0, 8), "Memory": st.integers(0, 8000),
        "PartitionableSlot": st.booleans(), "IS_MONITOR_VM": st.booleans(),
    },
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_SLOT, max_size=30))
def test_count_slots_equals_the_sum_over_slots(ads) -> None:
    # count_slots tallies instead of adding a SlotCounts per slot (made fast for 10k-slot
    # simulations): it must still equal the plain sum of each slot's counts
    got = count_slots(ads, frontend_name="fe", group_name="main")
    from gwms.frontend.classify import SlotCounts

    pool = frontend = group = SlotCounts()
    by_entry: dict[str, SlotCounts] = {}
    for ad in ads:
        v = classify_slot(ad)
        if v.entry is None or v.state == "ignored":
            continue
        c = _counts_of(v.state, v.cores)
        pool = pool + c
        if v.client is None or not v.client.startswith("fe."):
            continue
        frontend = frontend + c
        if v.client != "fe.main":
            continue
        group = group + c
        by_entry[v.entry] = by_entry.get(v.entry, SlotCounts()) + c
    assert (got.pool, got.frontend, got.group) == (pool, frontend, group)
    assert got.by_entry == by_entry and list(got.by_entry) == list(by_entry)
