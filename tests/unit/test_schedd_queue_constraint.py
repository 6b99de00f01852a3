"""Constraint push-down: which parts of a ClassAd constraint the queue answers in SQL.

The property: for any ad, the SQL the planner produces is true whenever the constraint
is (it never loses a job), and when the plan says it is complete the two agree exactly.
The oracle is classad2 evaluating the constraint text on the ad.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import classad2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.pool.schedd.queue_constraint import (
    compile_job_constraint,
    plan_constraint,
    split_conjuncts,
)
from gwms.pool.schedd.queue_errors import InvalidConstraintError
from gwms.pool.schedd.queue_schema import job_key


def classad_says(constraint: str, ad: dict[str, Any]) -> bool:
    return classad2.ExprTree(constraint).eval(classad2.ClassAd(ad)) is True


def sql_says(plan_where: tuple[str, ...], params: tuple[Any, ...], ad: dict[str, Any]) -> bool:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, cluster, proc, owner, status, qdate, entered, extra)")
    conn.execute(
        "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            job_key(ad["ClusterId"], ad["ProcId"]),
            ad["ClusterId"],
            ad["ProcId"],
            ad["Owner"],
            ad["JobStatus"],
            ad["QDate"],
            ad["EnteredCurrentStatus"],
            ad["Extra"],
        ),
    )
    sql = "SELECT count(*) FROM jobs" + (" WHERE " + " AND ".join(plan_where) if plan_where else "")
    return conn.execute(sql, params).fetchone()[0] == 1


OWNERS = ["alice", "Alice", "ALICE", "bob", "b\u00f6b", "B\u00d6B", ""]

ads = st.fixed_dictionaries(
    {
        "ClusterId": st.integers(1, 3),
        "ProcId": st.integers(0, 2),
        "Owner": st.sampled_from(OWNERS),
        "JobStatus": st.integers(1, 3),
        "QDate": st.integers(0, 2),
        "EnteredCurrentStatus": st.integers(0, 2),
        "Extra": st.integers(0, 2),
    }
)

INT_ATTRS = ["ClusterId", "procid", "JOBSTATUS", "QDate", "EnteredCurrentStatus", "MY.JobStatus", "Extra"]
OPS = ["==", "!=", "=?=", "=!=", "<", "<=", ">", ">="]


@st.composite
def comparisons(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        attr = draw(st.sampled_from(INT_ATTRS))
        literal = draw(st.one_of(st.integers(-1, 3).map(str), st.just('"1"'), st.just("1.0")))
    else:
        attr = draw(st.sampled_from(["Owner", "owner", "Extra"]))
        literal = '"' + draw(st.sampled_from(OWNERS)) + '"'
    op = draw(st.sampled_from(OPS))
    text = f"{attr} {op} {literal}"
    return f"({text})" if draw(st.booleans()) else text


@st.composite
def constraints(draw: st.DrawFn) -> str:
    parts = draw(st.lists(comparisons(), min_size=1, max_size=4))
    glue = draw(st.sampled_from([" && ", " && ", " && ", " || "]))
    text = glue.join(parts)
    if draw(st.booleans()):
        text = f"({text}) && true"
    if draw(st.integers(0, 5)) == 0:
        text = f"!({text})"
    return text


@settings(max_examples=400, deadline=None)
@given(constraint=constraints(), ad=ads)
def test_pushdown_never_loses_a_match_and_is_exact_when_complete(constraint: str, ad: dict[str, Any]) -> None:
    plan = plan_constraint(constraint)
    truth = classad_says(constraint, ad)
    sql = sql_says(plan.where, plan.params, ad)
    if truth:
        assert sql, (constraint, plan)
    if plan.complete:
        assert sql == truth, (constraint, plan)


HOT_INTS = {"ClusterId": "ClusterId", "procid": "ProcId", "JOBSTATUS": "JobStatus", "QDate": "QDate",
             "EnteredCurrentStatus": "EnteredCurrentStatus"}
ASCII_OWNERS = ["alice", "Alice", "ALICE", "bob", ""]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), ad=ads)
def test_conjunctions_of_hot_comparisons_are_decided_in_sql(data: st.DataObject, ad: dict[str, Any]) -> None:
    parts = []
    for _ in range(data.draw(st.integers(1, 3))):
        attr = data.draw(st.sampled_from([*HOT_INTS, "Owner", "OWNER"]))
        if attr.lower() == "owner":
            op = data.draw(st.sampled_from(["==", "!=", "=?=", "=!="]))
            literal = '"' + data.draw(st.sampled_from(ASCII_OWNERS)) + '"'
        else:
            op = data.draw(st.sampled_from(OPS))
            value = ad[HOT_INTS[attr]]
            literal = str(data.draw(st.integers(value - 1, value + 1)))
        parts.append(f"{attr} {op} {literal}")
    constraint = " && ".join(parts)
    plan = plan_constraint(constraint)
    assert plan.complete
    assert sql_says(plan.where, plan.params, ad) == classad_says(constraint, ad), (constraint, plan)


def test_cluster_comparisons_as_key_ranges_exhaustively() -> None:
    """ClusterId comparisons become job-key ranges: check every small case against classad2."""
    base = {"Owner": "a", "JobStatus": 1, "QDate": 0, "EnteredCurrentStatus": 0, "Extra": 0}
    for cluster in range(0, 4):
        for proc in (0, 1, (1 << 24) - 1):
            ad = {"ClusterId": cluster, "ProcId": proc, **base}
            for op in OPS:
                for literal in range(-1, 5):
                    constraint = f"ClusterId {op} {literal}"
                    plan = plan_constraint(constraint)
                    assert plan.complete
                    assert sql_says(plan.where, plan.params, ad) == classad_says(constraint, ad), (
                        constraint,
                        ad,
                    )


def test_common_queries_are_complete() -> None:
    plan = plan_constraint('JobStatus == 1 && Owner == "alice"')
    assert plan.complete
    assert plan.where == ("status = ?", "owner = ? COLLATE NOCASE")
    assert plan.params == (1, "alice")
    assert plan_constraint(None).complete and plan_constraint("  ").where == ()
    assert plan_constraint("TRUE").complete
    by_id = plan_constraint("(ClusterId == 5) && (ProcId == 0)")
    assert by_id.complete
    assert by_id.where == ("id BETWEEN ? AND ?", "proc = ?")
    assert by_id.params == (job_key(5, 0), job_key(5, (1 << 24) - 1), 0)


def test_partial_and_refused_plans() -> None:
    partial = plan_constraint("JobStatus == 1 && RequestMemory > 10")
    assert not partial.complete and partial.where == ("status = ?",)
    assert plan_constraint("JobStatus == 1 || JobStatus == 2") == plan_constraint("x || y")
    assert not plan_constraint("JobStatus == 1 || JobStatus == 2").where
    assert not plan_constraint('Owner == "b\u00f6b"').complete  # non-ASCII case folding
    assert not plan_constraint("JobStatus == 1 ? true : false").where
    assert not plan_constraint("JobStatus == 1 /* comment */").where
    assert not plan_constraint("JobStatus == 007").complete


def test_split_conjuncts_respects_strings_and_brackets() -> None:
    assert split_conjuncts('a && (b && c) && s == "x && y"') == ["a", "b", "c", 's == "x && y"']
    assert split_conjuncts("f(a && b) && {1, 2}[0] == 1") == ["f(a && b)", "{1, 2}[0] == 1"]
    assert split_conjuncts("(a || b) && c") == ["(a || b)", "c"]
    assert split_conjuncts("a || b") is None
    assert split_conjuncts("(a") is None
    assert split_conjuncts('"open') is None


def test_compiled_constraint_evaluates_json_form_ads() -> None:
    predicate = compile_job_constraint('Requirements && Owner == "alice" && size(Tags) == 2')
    ad = {"Owner": "Alice", "Memory": 8, "Requirements": "/Expr(Memory > 4)/", "Tags": ["a", "b"]}
    assert predicate(ad)
    assert not predicate({**ad, "Memory": 2})
    assert not predicate({"Owner": "alice"})  # undefined is not true
    with pytest.raises(InvalidConstraintError):
        compile_job_constraint("Owner == ")
