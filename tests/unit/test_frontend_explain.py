"""The frontend's view of a job (``gwms q -analyze``), replayed from real glideresource ads.

The ads come from the real cycle (plan_group + build_cycle_ads), so a change in what the
frontend publishes that breaks the replay fails here.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from test_frontend_service_cycle import (
    POOL,
    config,
    entry_ad,
    fake_token,
    snapshot,
)
from test_frontend_service_cycle import job as cycle_job

from gwms.frontend import adnames as N
from gwms.frontend.advertise import build_cycle_ads
from gwms.frontend.cycle import plan_group
from gwms.frontend.explain import explain_job, render_frontend_view

SITES = ["LOCAL", "REMOTE", "FAR"]


def job(status: int, site: str, **kw: Any) -> dict[str, Any]:
    """A job ad as the schedd has it (vanilla universe: the default job query selects it)."""
    return {**cycle_job(status, site, **kw), "JobUniverse": 5}


def resources(cfg: Any, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    entries = [entry_ad(s.lower() + "1", s) for s in SITES]
    plan = plan_group(cfg, "main", snapshot(jobs, entries))
    return build_cycle_ads(cfg, plan, collector_url=POOL, token_for=fake_token, lifetime=300).glideresource


def test_a_job_matches_only_the_entries_of_its_sites() -> None:
    cfg = config()
    ads = resources(cfg, [job(1, "LOCAL") for _ in range(6)])
    views = explain_job(job(1, "LOCAL,FAR"), ads)
    by_entry = {v.entry: v for v in views}
    assert by_entry["local1@v1@gf"].matches and by_entry["far1@v1@gf"].matches
    assert not by_entry["remote1@v1@gf"].matches
    assert "match_expr is false" in by_entry["remote1@v1@gf"].reason
    # the group saw 6 idle LOCAL jobs: glideins requested there; none for FAR (no idle job seen)
    assert by_entry["local1@v1@gf"].requested_idle > 0 and by_entry["local1@v1@gf"].reason == ""
    assert by_entry["far1@v1@gf"].requested_idle == 0
    assert "no idle job" in by_entry["far1@v1@gf"].reason
    assert [v.matches for v in views] == [True, True, False]  # matching entries first
    text = render_frontend_view("7.0", views)
    assert "matches 2 of 3 entries" in text and "no match vofe.main -> remote1@v1@gf" in text


def test_a_job_no_entry_can_run_is_told_so() -> None:
    views = explain_job(job(1, "NOWHERE"), resources(config(), [job(1, "LOCAL")]))
    assert views and not any(v.matches for v in views)
    assert "No entry can run this job" in render_frontend_view("1.0", views)


def test_the_limit_that_fired_is_the_reason() -> None:
    cfg = config(limits={"running_glideins_total": {"max": 0}})
    views = explain_job(job(1, "LOCAL"), resources(cfg, [job(1, "LOCAL") for _ in range(30)]))
    local = next(v for v in views if v.entry == "local1@v1@gf")
    assert local.matches and local.requested_idle == 0
    assert local.reason.startswith("limits fired:") and local.limits
    assert all(name in local.reason for name in local.limits)


def test_the_job_query_is_replayed() -> None:
    cfg = config(match={"match_expr": 'True', "job": {"query_expr": "RequestCpus < 4"}})
    ads = resources(cfg, [job(1, "LOCAL")])
    big = explain_job(job(1, "LOCAL", cpus=8), ads)
    assert big and all(not v.considered and "does not consider" in v.reason for v in big)
    small = explain_job(job(1, "LOCAL", cpus=1), ads)
    assert all(v.considered for v in small)


def test_no_frontend_is_said_plainly() -> None:
    assert "no frontend advertises" in render_frontend_view("1.0", explain_job(job(1, "LOCAL"), []))


@settings(max_examples=40, deadline=None)
@given(job_sites=st.sets(st.sampled_from(SITES + ["ELSEWHERE"]), min_size=1),
       idle_sites=st.lists(st.sampled_from(SITES), max_size=12))
def test_the_replay_agrees_with_the_cycle(job_sites: set[str], idle_sites: list[str]) -> None:
    """An entry matches iff the job's sites name it; a matching entry with a request has no reason."""
    cfg = config()
    ads = resources(cfg, [job(1, s) for s in idle_sites])
    views = explain_job(job(1, ",".join(sorted(job_sites))), ads)
    assert len(views) == len(SITES)
    for v in views:
        assert v.matches == (v.site in job_sites)
        if v.matches and v.requested_idle > 0:
            assert v.reason == ""
        if not v.matches:
            assert v.reason
    assert N.LIMIT_IDLE_REQUEST_PER_ENTRY  # the names the reasons use come from adnames
