"""``gwms q -analyze``: splitting Requirements into clauses and counting slots."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.classads import compile_constraint, job_accepts, slot_accepts
from gwms.pool.negotiator.analyze import analyze_job, render_analysis, split_clauses

ATOMS = ["TARGET.Memory >= RequestMemory", 'GLIDEIN_Site == "A"', "TARGET.Cpus >= 2", "(a || b)",
         "ifThenElse(x, y && z, true)", 'stringListMember("x", "a,x")', "{1, 2}[0] == 1", "!(c && d)"]


def test_split_only_at_top_level_ands() -> None:
    assert split_clauses("a && b && c") == ["a", "b", "c"]
    assert split_clauses("(a && b) && (c || d)") == ["a && b", "c || d"]
    assert split_clauses("((a && b))") == ["a", "b"]
    assert split_clauses("a && b || c") == ["a && b || c"]
    assert split_clauses("a && b ? c : d") == ["a && b ? c : d"]
    assert split_clauses('f(a && b) && "x && y" == s') == ["f(a && b)", '"x && y" == s']
    assert split_clauses("(a) && (b)") == ["a", "b"]
    assert split_clauses("true") == ["true"]
    assert split_clauses("a && (") == ["a && ("]  # does not parse: one clause


@settings(max_examples=200)
@given(st.lists(st.sampled_from(ATOMS), min_size=1, max_size=5), st.lists(st.booleans(), min_size=5, max_size=5))
def test_split_gives_back_the_clauses(atoms: list[str], wrap: list[bool]) -> None:
    text = " && ".join(f"({a})" if w else a for a, w in zip(atoms, wrap))
    assert split_clauses(text) == [a.strip("()") if a.startswith("(") and a.endswith(")") and a.count("(") == 1 else a
                                   for a in atoms]


slot_st = st.fixed_dictionaries({
    "Name": st.text("abc", min_size=1, max_size=3),
    "State": st.sampled_from(["Unclaimed", "Claimed"]),
    "Cpus": st.integers(1, 8),
    "Memory": st.sampled_from([1024, 4096, 16384]),
    "Disk": st.just(10**6),
    "GLIDEIN_Site": st.sampled_from(["A", "B"]),
    "START": st.sampled_from([True, False, "/Expr(TARGET.RequestCpus <= 2)/"]),
})


@settings(max_examples=200, deadline=None)
@given(st.lists(slot_st, max_size=12), st.integers(1, 4), st.sampled_from([512, 8192, 100_000]))
def test_counts_agree_with_evaluating_each_slot(slots: list[dict[str, Any]], cpus: int, memory: int) -> None:
    job = {"ClusterId": 7, "ProcId": 0, "JobStatus": 1, "RequestCpus": cpus, "RequestMemory": memory,
           "Requirements": '/Expr((GLIDEIN_Site == "A") && (TARGET.Memory >= RequestMemory) && '
                           "(TARGET.Cpus >= RequestCpus))/"}
    a = analyze_job(job, slots)
    assert a.slots == len(slots)
    assert a.match_requirements == sum(job_accepts(job, s) for s in slots)
    assert a.accept_job == sum(job_accepts(job, s) and slot_accepts(s, job) for s in slots)
    assert a.available == sum(job_accepts(job, s) and slot_accepts(s, job) and s["State"] == "Unclaimed"
                              for s in slots)
    texts = ['GLIDEIN_Site == "A"', "TARGET.Memory >= RequestMemory", "TARGET.Cpus >= RequestCpus"]
    assert [c.text for c in a.clauses] == texts
    for clause, text in zip(a.clauses, texts):
        assert clause.rejects == sum(not compile_constraint(text)(job, s) for s in slots)
    if a.worst is not None:
        assert a.worst.rejects == max(c.rejects for c in a.clauses)


def test_a_job_bigger_than_every_slot_is_explained() -> None:
    job = {"ClusterId": 3, "ProcId": 1, "JobStatus": 1, "RequestMemory": 102400, "RequestCpus": 1,
           "Requirements": "/Expr((TARGET.Arch == \"X86_64\") && (TARGET.Memory >= RequestMemory) && "
                           "(TARGET.Cpus >= RequestCpus))/"}
    slots = [{"Name": f"s{i}", "Arch": "X86_64", "Cpus": 4, "Memory": 2048 * (i + 1), "State": "Unclaimed",
              "START": True} for i in range(4)]
    a = analyze_job(job, slots)
    assert (a.slots, a.match_requirements, a.accept_job, a.available) == (4, 0, 0, 0)
    assert a.worst is not None and a.worst.text == "TARGET.Memory >= RequestMemory" and a.worst.rejects == 4
    assert a.job_values == {"RequestMemory": 102400}
    assert a.slot_values == {"Memory": [2048, 8192]}
    text = render_analysis(a)
    assert "Job 3.1 (idle): analysis against 4 slot(s)" in text
    assert "No slot matches. The clause that rejects the most slots (4 of 4) is [1] TARGET.Memory >= RequestMemory" in text
    assert "job: RequestMemory = 102400" in text and "slots: Memory from 2048 to 8192" in text


def test_start_rejecting_and_busy_pools_are_told_apart() -> None:
    job = {"ClusterId": 1, "ProcId": 0, "JobStatus": 1, "Owner": "bob", "RequestCpus": 1,
           "Requirements": "/Expr(TARGET.Cpus >= RequestCpus)/"}
    no = [{"Name": "s", "Cpus": 1, "START": '/Expr(TARGET.Owner == "alice")/', "State": "Unclaimed"}]
    assert "START expression of every one of them rejects the job" in render_analysis(analyze_job(job, no))
    busy = [{"Name": "s", "Cpus": 1, "START": True, "State": "Claimed"}]
    assert "all are busy" in render_analysis(analyze_job(job, busy))
    assert "No slots in the pool" in render_analysis(analyze_job(job, []))
    part = [{"Name": "p", "Cpus": 2, "Memory": 100, "Disk": 100, "START": True, "PartitionableSlot": True,
             "State": "Unclaimed"}]
    assert analyze_job(job, part).available == 1
