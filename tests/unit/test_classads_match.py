"""gwms.classads matchmaking (symmetric match, START, rank) and autoclusters."""

from __future__ import annotations

from typing import Any

import pytest
from classads_strategies import expressions
from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.classads import (
    ad_from_json,
    autocluster_signature,
    external_refs,
    job_accepts,
    my_refs,
    rank,
    references,
    significant_attributes,
    slot_accepts,
    symmetric_match,
    target_refs,
)


def job(**extra: Any) -> dict[str, Any]:
    ad = {
        "MyType": "Job",
        "Owner": "alice",
        "RequestCpus": 2,
        "RequestMemory": 2048,
        "Requirements": "/Expr(TARGET.Memory >= RequestMemory && TARGET.Cpus >= RequestCpus)/",
        "Rank": "/Expr(TARGET.Mips / 1000)/",
    }
    ad.update(extra)
    return ad


def slot(**extra: Any) -> dict[str, Any]:
    ad = {
        "MyType": "Machine",
        "Cpus": 4,
        "Memory": 8192,
        "Mips": 25_000,
        "START": "/Expr(TARGET.Owner =!= \"mallory\")/",
    }
    ad.update(extra)
    return ad


def test_match_needs_both_sides() -> None:
    assert symmetric_match(job(), slot())
    assert not symmetric_match(job(RequestMemory=16_384), slot())  # the job says no
    assert not symmetric_match(job(Owner="mallory"), slot())  # the slot's START says no
    assert job_accepts(job(Owner="mallory"), slot())
    assert not slot_accepts(slot(), job(Owner="mallory"))


def test_slot_requirements_take_precedence_over_start() -> None:
    picky = slot(Requirements="/Expr(TARGET.RequestCpus == 1)/", START=True)
    assert not symmetric_match(job(), picky)
    assert symmetric_match(job(RequestCpus=1), picky)
    # Requirements wins even when START would refuse
    lenient = slot(Requirements=True, START=False)
    assert symmetric_match(job(), lenient)


def test_slot_without_requirements_or_start_accepts() -> None:
    bare = slot()
    del bare["START"]
    assert symmetric_match(job(Owner="mallory"), bare)
    assert symmetric_match(job(), slot(START=None))  # null is undefined: as if absent


def test_undefined_and_error_are_no_match() -> None:
    assert not symmetric_match(job(Requirements="/Expr(TARGET.NoSuchThing > 1)/"), slot())
    assert not symmetric_match(job(Requirements="/Expr(1 / 0 > 1)/"), slot())
    assert not symmetric_match(job(), slot(START="/Expr(TARGET.NoSuchThing)/"))
    no_requirements = job()
    del no_requirements["Requirements"]
    assert not symmetric_match(no_requirements, slot())


def test_numbers_count_as_booleans() -> None:
    assert symmetric_match(job(Requirements=1), slot(START="/Expr(2.5)/"))
    assert not symmetric_match(job(Requirements=0), slot())
    assert not symmetric_match(job(Requirements="yes"), slot())


def test_start_can_read_the_job_through_bare_names() -> None:
    # a bare name the slot lacks is looked up in the job (the TARGET)
    assert symmetric_match(job(), slot(START='/Expr(Owner == "ALICE")/'))
    assert not symmetric_match(job(), slot(START='/Expr(Owner == "bob")/'))


def test_attribute_names_ignore_case_in_matching() -> None:
    lower = {k.lower(): v for k, v in job().items()}
    upper = {k.upper(): v for k, v in slot().items()}
    assert symmetric_match(lower, upper)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["a", "A"]))
small_ads = st.dictionaries(st.sampled_from(["a", "b", "Cpus"]), json_scalars, max_size=3)


@settings(max_examples=150, deadline=None)
@given(expressions(6), expressions(6), small_ads, small_ads)
def test_symmetric_match_agrees_with_classad2(job_req: str, slot_req: str, j: dict, s: dict) -> None:
    j = dict(j, Requirements=f"/Expr({job_req})/")
    s = dict(s, Requirements=f"/Expr({slot_req})/")
    # classad2's symmetricMatch uses Requirements only, which is what the slot has here
    assert symmetric_match(j, s) == ad_from_json(j).symmetricMatch(ad_from_json(s))


def test_rank() -> None:
    assert rank(job(), slot()) == 25.0
    assert rank(job(Rank=3), slot()) == 3.0
    assert rank(job(Rank="/Expr(TARGET.Cpus > 2)/"), slot()) == 1.0
    assert rank(job(Rank="fast"), slot()) == 0.0
    assert rank(job(Rank="/Expr(TARGET.Missing * 2)/"), slot()) == 0.0
    assert rank(job(Rank='/Expr(real("nan"))/'), slot()) == 0.0
    no_rank = job()
    del no_rank["Rank"]
    assert rank(no_rank, slot()) == 0.0
    assert isinstance(rank(job(Rank=3), slot()), float)


# -- references ------------------------------------------------------------------------


def test_references_by_scope() -> None:
    refs = references("MY.a + TARGET.B * c > ifThenElse(isUndefined(D), MY.e, target.F)")
    assert refs.my == {"a", "e"}
    assert refs.target == {"b", "f"}
    assert refs.bare == {"c", "d"}
    assert target_refs("TARGET.Memory >= RequestMemory") == {"memory"}
    assert my_refs("TARGET.Memory >= RequestMemory && MY.X") == {"requestmemory", "x"}
    assert external_refs("/Expr(TARGET.Memory >= RequestMemory)/") == {"memory", "requestmemory"}
    assert external_refs('strcat("x", 1)') == set()


# -- autoclusters -----------------------------------------------------------------------


def test_significant_attributes() -> None:
    j = job(
        Requirements="/Expr(TARGET.Memory >= RequestMemory && MY.Site =!= undefined && Arch == \"X86_64\")/",
        Site="/Expr(DesiredSite)/",
        DesiredSite="CERN",
        Unrelated=42,
    )
    attrs = significant_attributes(j, slot_refs=["Owner", "AccountingGroup"])
    assert attrs >= {
        "requestcpus", "requestmemory", "requestdisk", "requestgpus",
        "requirements", "rank",
        "site", "desiredsite",  # MY.Site, and what Site's expression reads
        "arch",  # a bare name: looked up in the job first
        "owner", "accountinggroup",  # what the slots read as TARGET.x
    }
    assert "unrelated" not in attrs
    assert "memory" not in attrs  # read from the slot only
    assert "mips" not in attrs


def test_jobs_with_equal_significant_values_share_a_cluster() -> None:
    base = job(Cmd="/bin/a", ClusterId=1, ProcId=0)
    attrs = significant_attributes(base, ["Owner"])
    same = job(Cmd="/bin/b", ClusterId=7, ProcId=3)  # only insignificant differences
    assert autocluster_signature(base, attrs) == autocluster_signature(same, attrs)
    for changed in (job(RequestMemory=4096), job(Owner="bob"), job(Rank=0), job(RequestMemory=2048.0)):
        assert autocluster_signature(changed, attrs) != autocluster_signature(base, attrs)


def test_signature_ignores_name_case_and_treats_missing_as_null() -> None:
    attrs = frozenset({"RequestCpus", "requestgpus", "Owner"})
    a = {"RequestCpus": 1, "Owner": "x"}
    b = {"requestcpus": 1, "OWNER": "x", "RequestGpus": None}
    assert autocluster_signature(a, attrs) == autocluster_signature(b, attrs)
    assert autocluster_signature(a, attrs) == autocluster_signature(a, ["owner", "REQUESTCPUS", "RequestGpus"])
    assert autocluster_signature(a, attrs) != autocluster_signature({"RequestCpus": 1, "Owner": "X"}, attrs)


values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5),
                   st.lists(st.integers(), max_size=2))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["A", "b", "C", "d"]), values), st.dictionaries(st.sampled_from(["A", "b", "C", "d"]), values))
def test_signatures_are_equal_exactly_when_significant_values_are(x: dict, y: dict) -> None:
    attrs = ["a", "B", "c"]

    def significant(ad: dict) -> dict:
        low = {k.lower(): v for k, v in ad.items()}
        return {n: (type(low.get(n)), repr(low.get(n))) for n in ("a", "b", "c")}

    same = autocluster_signature(x, attrs) == autocluster_signature(y, attrs)
    assert same == (significant(x) == significant(y))


def test_grouping_many_jobs() -> None:
    jobs = [job(RequestMemory=1024 * (1 + i % 3), ProcId=i) for i in range(30)]
    attrs = significant_attributes(jobs[0])
    groups: dict[str, list[int]] = {}
    for j in jobs:
        groups.setdefault(autocluster_signature(j, attrs), []).append(j["ProcId"])
    assert sorted(len(g) for g in groups.values()) == [10, 10, 10]
    assert all(len({jobs[p]["RequestMemory"] for p in g}) == 1 for g in groups.values())


@pytest.mark.parametrize("bad", ["/Expr(a + )/", "/Expr(", 5])
def test_significant_attributes_tolerates_odd_values(bad: Any) -> None:
    attrs = significant_attributes(job(Requirements=bad))
    assert "requirements" in attrs
