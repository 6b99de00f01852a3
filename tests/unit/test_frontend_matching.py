"""Matching jobs to entries: the original's answers on the shared workload, and properties."""

from __future__ import annotations

import math
import random
from fractions import Fraction
from typing import Any

import frontend_workload as fw
from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.frontend.classify import IDLE, IDLE_3600, OLD_IDLE, RUNNING
from gwms.frontend.matching import (
    UNMATCHED,
    CaseBlindDict,
    Entry,
    MatchPolicy,
    cluster_jobs,
    entry_from_factory_ad,
    glidein_cpus,
    match_jobs,
)

# ----------------------------------------------------------------------------- the fixture


def _result() -> Any:
    return match_jobs(fw.jobs_by_schedd(), fw.entries(), fw.policy(), now=fw.server_time())


def test_fixture_count_hereonly_and_prop_mc_match_the_original_exactly() -> None:
    result = _result()
    expected = fw.expected()
    entries = fw.entries()
    for job_class in (IDLE, OLD_IDLE, IDLE_3600):  # every job is idle for over an hour
        ours = result[job_class].as_dict(entries)
        for name in ("count", "hereonly", "prop_mc"):
            assert ours[name] == expected[name], f"{job_class} {name}"
    assert result[IDLE].unmatched == expected["count"][UNMATCHED] == 660
    assert sum(result[IDLE].prop_mc) == sum(expected["prop_mc"].values()) - 660 == 16500


def test_fixture_prop_differs_only_where_the_original_rounded_a_float_up() -> None:
    result = _result()
    expected = fw.expected()["prop"]
    counts = result[IDLE]
    off_by_float = []
    for index, entry in enumerate(fw.entries()):
        ours, theirs = counts.prop[index], expected[entry.key]
        if ours != theirs:
            # the exact share is an integer and the original's float sum came out just above it
            assert theirs == ours + 1 and counts.prop_exact[index].denominator == 1, entry.key
            off_by_float.append(entry.name.split("@")[0])
    assert sorted(off_by_float) == ["entry_49_S49", "entry_89_S89"]  # documented in gwms.frontend.matching
    assert sum(counts.prop) == sum(v for k, v in expected.items() if k != UNMATCHED) - len(off_by_float)
    # the shares themselves add up to the matched jobs, exactly
    assert sum(counts.prop_exact) == 10000 - 660


def test_fixture_clusters_by_the_attributes_the_expression_reads() -> None:
    result = _result()
    # DESIRED_Sites and RequestMemory are read; RequestCpus (in match_attrs) is not
    assert set(result.clusters.key_attrs) == {"DESIRED_Sites", "RequestMemory"}
    assert len(result.clusters) == 990
    assert result.errors == 0


def test_fixture_with_match_attrs_clustering_gives_the_same_counts() -> None:
    data = fw.workload()
    # `len(job) > 0` makes the job reads unknown: clusters fall back to match_attrs
    policy = MatchPolicy.from_texts(["len(job) > 0", data["match_expr"]], match_attrs=data["match_attrs"])
    assert not policy.static
    result = match_jobs(fw.jobs_by_schedd(), fw.entries(), policy, now=fw.server_time())
    assert len(result.clusters) == 1000
    assert result[IDLE].as_dict(fw.entries())["count"] == fw.expected()["count"]
    assert result[IDLE].prop_mc == _result()[IDLE].prop_mc


def test_fixture_case_blind_attributes_and_the_per_job_path_agree() -> None:
    jobs = fw.jobs_by_schedd()
    mixed: dict[str, list[dict[str, Any]]] = {}
    for schedd, items in jobs.items():
        out = []
        for n, job in enumerate(items):
            job = dict(job)
            if n % 7 == 0:  # some jobs spell the attribute differently (ClassAd names are case-blind)
                job["desired_sites"] = job.pop("DESIRED_Sites")
            out.append(job)
        mixed[schedd] = out
    result = match_jobs(mixed, fw.entries(), fw.policy(), now=fw.server_time())
    assert result[IDLE].as_dict(fw.entries())["count"] == fw.expected()["count"]
    assert result[IDLE].prop_mc == _result()[IDLE].prop_mc


# ----------------------------------------------------------------------------- classes


def _job(status: int, age: int, sites: str = "A", cpus: int = 1, **extra: Any) -> dict[str, Any]:
    return {"JobStatus": status, "EnteredCurrentStatus": 10_000 - age, "RequestCpus": cpus, "Sites": sites, **extra}


SIMPLE = MatchPolicy.from_texts('glidein["attrs"]["Site"] in job["Sites"].split(",")')


def _entries(*sites: str, cpus: Any = 1) -> list[Entry]:
    return [Entry(f"k{i}", f"e{i}@g@f", {"attrs": {"Site": s, "GLIDEIN_CPUS": cpus}}) for i, s in enumerate(sites)]


def test_job_classes_and_excluded_schedds() -> None:
    jobs = {
        "s1": [_job(1, 10), _job(1, 700), _job(1, 4000, cpus=4), _job(2, 50), _job(5, 9000)],
        "s2": [_job(1, 5000), _job(2, 5)],
    }
    result = match_jobs(jobs, _entries("A"), SIMPLE, now=10_000, excluded_schedds={"s2"})
    assert result[IDLE].count == (3,)
    assert result[OLD_IDLE].count == (2,)
    assert result[IDLE_3600].count == (1,)
    assert result[RUNNING].count == (2,)
    assert result[IDLE].cpus == (6,)
    assert result.clusters.excluded_idle == 1
    assert result.clusters.jobs_seen == 7


def test_mixed_ages_in_one_chunk_are_classified_per_job() -> None:
    jobs = [_job(1, age) for age in (0, 599, 600, 601, 3599, 3600, 7200)]
    result = match_jobs({"s": jobs}, _entries("A"), SIMPLE, now=10_000)
    assert result[IDLE].count == (7,)
    assert result[OLD_IDLE].count == (5,)
    assert result[IDLE_3600].count == (2,)


def test_prop_mc_scales_by_requested_and_offered_cpus() -> None:
    jobs = {"s": [_job(1, 0, "A,B", cpus=8) for _ in range(3)] + [_job(1, 0, "A", cpus=1)]}
    entries = _entries("A", "B", cpus=4)
    counts = match_jobs(jobs, entries, SIMPLE, now=10_000)[IDLE]
    assert counts.count == (4, 3)
    assert counts.hereonly == (1, 0)
    assert counts.prop_exact == (Fraction(5, 2), Fraction(3, 2))
    assert counts.prop == (3, 2)
    # A: ceil(25 cpus * 2.5 / 4 jobs / 4 cpus per glidein) = ceil(3.90625) = 4
    assert counts.prop_mc == (4, 3)


def test_glidein_cpus_and_nodes() -> None:
    def entry(**attrs: Any) -> Entry:
        return Entry("k", "n", {"attrs": attrs})

    assert glidein_cpus(entry()) == 1
    assert glidein_cpus(entry(GLIDEIN_CPUS=8)) == 8
    assert glidein_cpus(entry(GLIDEIN_CPUS="4", GLIDEIN_NODES=2)) == 8
    assert glidein_cpus(entry(GLIDEIN_CPUS="auto")) == 1
    assert glidein_cpus(entry(GLIDEIN_CPUS="node", GLIDEIN_ESTIMATED_CPUS=16)) == 16
    assert glidein_cpus(entry(GLIDEIN_CPUS=0)) == 1


def test_start_expr_excludes_only_definite_false() -> None:
    policy = MatchPolicy.from_texts("True", start_expr="TARGET.RequestMemory <= GLIDEIN_MaxMemMBs")
    entries = [
        Entry("big", "big@g@f", {"attrs": {"GLIDEIN_MaxMemMBs": 8000}}),
        Entry("small", "small@g@f", {"attrs": {"GLIDEIN_MaxMemMBs": 1000}}),
        Entry("unknown", "unknown@g@f", {"attrs": {}}),  # UNDEFINED: the glidein decides
    ]
    jobs = {"s": [_job(1, 0, RequestMemory=2000), _job(1, 0, RequestMemory=500)]}
    result = match_jobs(jobs, entries, policy, now=10_000)
    assert result[IDLE].count == (2, 1, 2)
    assert "requestmemory" in {a.lower() for a in result.clusters.key_attrs}


def test_evaluation_errors_count_as_no_match() -> None:
    policy = MatchPolicy.from_texts('job["RequestMemory"] <= glidein["attrs"]["Mem"]')
    entries = [Entry("a", "a@g@f", {"attrs": {"Mem": 100}}), Entry("b", "b@g@f", {"attrs": {"Mem": "x"}})]
    result = match_jobs({"s": [_job(1, 0, RequestMemory=50)]}, entries, policy, now=10_000)
    assert result[IDLE].count == (1, 0)
    assert result.errors >= 1


def test_entry_from_factory_ad() -> None:
    ad = {
        "Name": "e1@inst@fact",
        "GLIDEIN_Site": "S1",
        "GlideinParamCONDOR_VERSION": "default",
        "GlideinMonitorRunning": 4,
        "AuthenticatedIdentity": "factory@host",
    }
    entry = entry_from_factory_ad(ad, factory_pool="https://wms:8618", my_identity="fe@wms")
    assert entry.key == "https://wms:8618|e1@inst@fact|fe@wms"
    assert entry.name == "e1@inst@fact"
    assert entry.glidein["params"]["CONDOR_VERSION"] == "default"
    assert entry.glidein["monitor"]["Running"] == 4
    assert entry.attrs["glidein_site"] == "S1"  # case-blind
    assert "GlideinParamCONDOR_VERSION" not in entry.attrs


def test_case_blind_dict() -> None:
    d = CaseBlindDict({"RequestMemory": 1})
    assert d["requestmemory"] == 1 and d.get("REQUESTMEMORY") == 1 and "requestMemory" in d
    assert d.get("missing", 7) == 7 and "missing" not in d
    d["Other"] = 2
    assert d["other"] == 2


def test_representatives_of_static_clusters_hold_what_the_expression_reads() -> None:
    clusters = cluster_jobs({"s": [_job(1, 0, "A,B", Extra=1)]}, SIMPLE, now=10_000)
    assert dict(clusters.representatives[0]) == {"Sites": "A,B"}


# ----------------------------------------------------------------------------- properties

_SITES = ["A", "B", "C", "D"]


@st.composite
def _workloads(draw: Any) -> tuple[dict[str, list[dict[str, Any]]], list[Entry]]:
    n_entries = draw(st.integers(min_value=0, max_value=6))
    entries = [
        Entry(
            f"k{i}",
            f"e{i}@g@f",
            {"attrs": {"Site": draw(st.sampled_from(_SITES)), "GLIDEIN_CPUS": draw(st.sampled_from([1, 2, 4, "auto"])),
                       "Mem": draw(st.sampled_from([1000, 4000]))}},
        )
        for i in range(n_entries)
    ]
    jobs: dict[str, list[dict[str, Any]]] = {}
    for schedd in ("s1", "s2"):
        rows = []
        for _ in range(draw(st.integers(min_value=0, max_value=25))):
            job = {
                "JobStatus": draw(st.sampled_from([1, 1, 1, 2, 5])),
                "EnteredCurrentStatus": 10_000 - draw(st.sampled_from([0, 600, 5000])),
                "RequestCpus": draw(st.sampled_from([1, 2, 8])),
                "RequestMemory": draw(st.sampled_from([500, 2000, 8000])),
            }
            if draw(st.booleans()):
                job["Sites"] = ",".join(draw(st.lists(st.sampled_from(_SITES), min_size=1, max_size=3)))
            rows.append(job)
        jobs[schedd] = rows
    return jobs, entries


PROPERTY_POLICY = MatchPolicy.from_texts(
    'glidein["attrs"]["Site"] in job.get("Sites", "A,B,C,D").split(",") '
    'and job["RequestMemory"] <= glidein["attrs"]["Mem"]'
)


def _reference(jobs: dict[str, list[dict[str, Any]]], entries: list[Entry]) -> dict[str, Any]:
    """Job by job, with exact fractions: the definition of the counts."""
    expr = PROPERTY_POLICY.match_expr
    n = len(entries)
    count = [0] * n
    here = [0] * n
    prop = [Fraction(0)] * n
    cpus = [0] * n
    unmatched = 0
    for rows in jobs.values():
        for job in rows:
            if job["JobStatus"] != 1:
                continue
            matched = [i for i, e in enumerate(entries) if expr.matches(job, e.glidein)]
            if not matched:
                unmatched += 1
            for i in matched:
                count[i] += 1
                cpus[i] += job["RequestCpus"]
                prop[i] += Fraction(1, len(matched))
            if len(matched) == 1:
                here[matched[0]] += 1
    mc = [
        math.ceil(cpus[i] * prop[i] / count[i] / glidein_cpus(entries[i])) if count[i] else 0 for i in range(n)
    ]
    return {"count": count, "hereonly": here, "prop_exact": prop, "unmatched": unmatched, "prop_mc": mc}


@settings(max_examples=150, deadline=None)
@given(_workloads())
def test_counts_equal_the_job_by_job_definition(data: tuple[dict[str, list[dict[str, Any]]], list[Entry]]) -> None:
    jobs, entries = data
    counts = match_jobs(jobs, entries, PROPERTY_POLICY, now=10_000)[IDLE]
    ref = _reference(jobs, entries)
    assert list(counts.count) == ref["count"]
    assert list(counts.hereonly) == ref["hereonly"]
    assert list(counts.prop_exact) == ref["prop_exact"]
    assert list(counts.prop) == [math.ceil(p) for p in ref["prop_exact"]]
    assert list(counts.prop_mc) == ref["prop_mc"]
    assert counts.unmatched == ref["unmatched"]
    idle = sum(1 for rows in jobs.values() for j in rows if j["JobStatus"] == 1)
    assert sum(counts.prop_exact) + counts.unmatched == idle
    for i in range(len(entries)):
        assert counts.hereonly[i] <= counts.prop_exact[i] <= counts.count[i]


@settings(max_examples=60, deadline=None)
@given(_workloads(), st.randoms(use_true_random=False))
def test_counts_do_not_depend_on_job_order(
    data: tuple[dict[str, list[dict[str, Any]]], list[Entry]], rnd: random.Random
) -> None:
    jobs, entries = data
    shuffled = {s: rnd.sample(rows, len(rows)) for s, rows in jobs.items()}
    a = match_jobs(jobs, entries, PROPERTY_POLICY, now=10_000)
    b = match_jobs(shuffled, entries, PROPERTY_POLICY, now=10_000)
    for job_class in (IDLE, OLD_IDLE, IDLE_3600, RUNNING):
        assert a[job_class] == b[job_class]
