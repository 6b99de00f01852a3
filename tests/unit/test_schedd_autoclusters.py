"""Autoclusters at the schedd: grouping idle jobs, the cache between cycles, the reuse index."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.classads import autocluster_signature, significant_attributes
from gwms.pool.schedd.autoclusters import (
    AutoclusterCache,
    AutoclusterIndex,
    JobClassifier,
    group_jobs,
    submitter_of,
)

REQUIREMENTS = [
    "/Expr(TARGET.Memory >= RequestMemory)/",
    "/Expr(TARGET.Cpus >= RequestCpus && MY.Foo)/",
    '/Expr(GLIDEIN_Site == "A" || Foo)/',
]
FOO = [True, False, 3, "/Expr(Bar > 2)/", "/Expr(TARGET.Memory > 1)/", None]


def spelled(name: str, upper: bool) -> str:
    return name.upper() if upper else name


@st.composite
def job_ads(draw: st.DrawFn, cluster: int) -> list[dict[str, Any]]:
    jobs = []
    for proc in range(draw(st.integers(1, 12))):
        ad: dict[str, Any] = {"ClusterId": cluster, "ProcId": proc}
        upper = draw(st.booleans())
        ad[spelled("RequestCpus", upper)] = draw(st.sampled_from([1, 2, 1.0, True]))
        ad["RequestMemory"] = draw(st.sampled_from([1024, 2048]))
        ad["Requirements"] = draw(st.sampled_from(REQUIREMENTS))
        foo = draw(st.sampled_from(FOO))
        if foo is not None:
            ad["Foo"] = foo
        ad["Bar"] = draw(st.integers(0, 4))
        ad["Unread"] = draw(st.integers(0, 100))  # never significant
        ad["Owner"] = draw(st.sampled_from(["alice", "bob"]))
        if draw(st.booleans()):
            ad["AccountingGroup"] = draw(st.sampled_from(["group_a.alice", ""]))
        ad["JobPrio"] = draw(st.sampled_from([0, 0, 5]))
        jobs.append(ad)
    return jobs


def reference_key(job: dict[str, Any], refs: frozenset[str]) -> tuple[str, str, frozenset[str], str]:
    attrs = significant_attributes(job, refs)
    return job["Owner"], submitter_of(job), attrs, autocluster_signature(job, attrs)


SLOT_REFS = st.sampled_from([frozenset(), frozenset({"unread"}), frozenset({"bar"})])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=3, unique=True).flatmap(
    lambda cs: st.tuples(*[job_ads(c) for c in cs])), SLOT_REFS)
def test_groups_are_exactly_the_jobs_with_equal_significant_attributes(clusters: tuple[list[dict[str, Any]], ...],
                                                                       refs: frozenset[str]) -> None:
    jobs = [j for c in clusters for j in c]
    groups = group_jobs(jobs, refs)
    placed = [jid for g in groups for jid in g.jobs]
    assert sorted(placed) == sorted((j["ClusterId"], j["ProcId"]) for j in jobs)  # each job once
    by_id = {(j["ClusterId"], j["ProcId"]): j for j in jobs}
    group_of = {jid: g.id for g in groups for jid in g.jobs}
    ids = list(by_id)
    for a in ids:
        for b in ids:
            same = reference_key(by_id[a], refs) == reference_key(by_id[b], refs)
            assert (group_of[a] == group_of[b]) == same, (by_id[a], by_id[b])
    for g in groups:
        prios = [by_id[j]["JobPrio"] for j in g.jobs]
        assert prios == sorted(prios, reverse=True)
        assert g.prio == max(prios)
        assert g.owner == by_id[g.jobs[0]]["Owner"] and g.submitter == submitter_of(by_id[g.jobs[0]])
    assert [g.prio for g in groups] == sorted((g.prio for g in groups), reverse=True)


def test_submitter_is_the_accounting_group_when_there_is_one() -> None:
    assert submitter_of({"Owner": "alice"}) == "alice"
    assert submitter_of({"owner": "alice", "accountinggroup": "group_cms.alice"}) == "group_cms.alice"
    assert submitter_of({"Owner": "alice", "AccountingGroup": ""}) == "alice"


def test_int_real_and_bool_requests_differ() -> None:
    c = JobClassifier()
    base = {"Owner": "a", "Requirements": "/Expr(true)/"}
    keys = {c.classify({**base, "RequestCpus": v})[0] for v in (1, 1.0, True)}
    assert len(keys) == 3


def test_skip_leaves_booked_jobs_out() -> None:
    jobs = [{"ClusterId": 1, "ProcId": p, "Owner": "a", "RequestCpus": 1} for p in range(3)]
    groups = group_jobs(jobs, skip={(1, 1)})
    assert [g.jobs for g in groups] == [[(1, 0), (1, 2)]]


def test_cache_fetches_only_new_or_changed_jobs() -> None:
    ads = {(1, p): {"ClusterId": 1, "ProcId": p, "Owner": "a", "RequestMemory": 1024 * (1 + p % 2)} for p in range(6)}
    fetched: list[list[tuple[int, int]]] = []

    def fetch(ids: Any) -> list[dict[str, Any]]:
        fetched.append(sorted(ids))
        return [ads[i] for i in ids]

    cache = AutoclusterCache()
    idle = [(jid, 100) for jid in ads]
    first = cache.groups(idle, fetch, ["x"])
    assert len(first) == 2 and fetched == [sorted(ads)]
    again = cache.groups(idle, fetch, ["x"])
    assert [g.jobs for g in again] == [g.jobs for g in first] and len(fetched) == 1
    # a job changed state (new stamp) and one was edited: only they are read again
    ads[(1, 0)]["RequestMemory"] = 4096
    cache.forget([(1, 0)])
    idle = [(jid, 200 if jid == (1, 3) else 100) for jid in ads]
    third = cache.groups(idle, fetch, ["x"])
    assert fetched[-1] == [(1, 0), (1, 3)]
    assert len(third) == 3
    # jobs no longer idle are dropped; new significant attributes mean a fresh start
    fourth = cache.groups([((1, 1), 100)], fetch, ["y"])
    assert [g.jobs for g in fourth] == [[(1, 1)]] and fetched[-1] == [(1, 1)]
    assert cache.groups([((1, 1), 100)], fetch, ["y"], skip={(1, 1)}) == []


def test_index_hands_each_candidate_once() -> None:
    jobs = [{"ClusterId": 1, "ProcId": p, "Owner": "a"} for p in range(3)]
    groups = group_jobs(jobs)
    index = AutoclusterIndex()
    index.replace(groups)
    assert len(index) == 3
    gid = index.group_of((1, 1))
    assert gid == groups[0].id and index.group_of((9, 9)) is None
    assert list(index.candidates(gid)) == [(1, 0), (1, 1), (1, 2)]
    assert list(index.candidates(gid)) == []
