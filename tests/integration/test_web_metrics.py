"""Every service's ``/metrics`` parses with the Prometheus text parser and agrees with
its JSON (``/v1/dashboard``) and with the web UI's pages, on a real ``gwms up`` pool."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from web_fixtures import RUNNING_ALICE, RUNNING_BOB, WebPool, start_web_pool

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebPool]:
    yield from start_web_pool(tmp_path_factory.mktemp("webmetrics"))


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def snapshot(pool: WebPool, url: str) -> tuple[dict[str, Any], Samples]:
    """A dashboard document and the metrics of the same moment (the document read
    before and after the metrics is the same)."""
    for _ in range(40):
        before = pool.get(url, "/v1/dashboard")
        metrics = parse(pool.text(url, "/metrics"))
        if pool.get(url, "/v1/dashboard") == before:
            return before, metrics
        time.sleep(0.2)
    raise AssertionError(f"{url} never held still")


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"{name}{labels} not exported; have {sorted(k for k in samples if k[0] == name)}"
    return samples[key]


def test_schedd_metrics_agree_with_json_and_the_pool_page(pool: WebPool) -> None:
    doc, m = snapshot(pool, pool.urls["schedd"])
    owners = doc["by_owner"]
    alice = next(o for o in owners if o.startswith("alice@"))
    bob = next(o for o in owners if o.startswith("bob@"))
    assert owners[alice]["Running"] == RUNNING_ALICE
    assert (owners[bob]["Running"], owners[bob]["Held"], owners[bob]["Idle"]) == (RUNNING_BOB, 1, 1)
    for owner, counts in owners.items():
        for status, n in counts.items():
            assert value(m, "gwms_schedd_jobs", owner=owner, status=status) == n
    assert value(m, "gwms_schedd_max_jobs_running") == doc["max_jobs_running"]
    page = pool.get(pool.web_url, "/pool.json")
    assert page["jobs"]["by_owner"] == owners
    assert page["jobs"]["by_status"] == doc["totals"]


def test_collector_metrics_agree_with_json_and_the_pool_page(pool: WebPool) -> None:
    doc, m = snapshot(pool, pool.urls["collector"])
    assert doc["slots"], "no slots in the pool"
    claimed = sum(r["slots"] for r in doc["slots"] if r["state"] == "Claimed")
    assert claimed >= RUNNING_ALICE + RUNNING_BOB
    assert all(r["entry"] != "-" for r in doc["slots"])  # every slot came from a glidein
    for r in doc["slots"]:
        assert value(m, "gwms_collector_slots", state=r["state"], entry=r["entry"]) == r["slots"]
        assert value(m, "gwms_collector_slot_cpus", state=r["state"], entry=r["entry"]) == r["cpus"]
    for my_type, n in doc["ads"].items():
        assert value(m, "gwms_collector_ads", my_type=my_type) == n
    wms_doc, wms_m = snapshot(pool, pool.urls["wms"])
    assert wms_doc["ads"].get("glidefactory", 0) >= 1
    for my_type, n in wms_doc["ads"].items():
        assert value(wms_m, "gwms_collector_ads", my_type=my_type) == n


def test_negotiator_metrics_agree_with_json(pool: WebPool) -> None:
    url = pool.get(pool.web_url, "/pool.json")["negotiator"]["url"]
    doc, m = snapshot(pool, url)
    assert doc["cycles"] >= 1
    assert value(m, "gwms_negotiator_cycles_total") == doc["cycles"]
    for f in ("seconds", "match_seconds", "slots", "idle_jobs", "matches", "accepted", "refused"):
        assert value(m, f"gwms_negotiator_last_cycle_{f}") == pytest.approx(doc["last"][f] or 0)
    names = {s["name"] for s in doc["submitters"]}
    assert any(n.startswith("alice@") for n in names) and any(n.startswith("bob@") for n in names)
    for s in doc["submitters"]:
        for f in ("effective_priority", "real_priority", "factor", "usage_hours", "in_use"):
            assert value(m, f"gwms_negotiator_submitter_{f}", submitter=s["name"]) == pytest.approx(s[f])


def test_factory_metrics_agree_with_json_and_the_factory_page(pool: WebPool) -> None:
    doc, m = snapshot(pool, pool.urls["factory"])
    assert doc["entries"]
    running = sum(e["totals"]["running"] for e in doc["entries"])
    assert running >= 1 and sum(e["totals"]["submitted"] for e in doc["entries"]) >= running
    for e in doc["entries"]:
        for c in e["clients"]:
            for f in ("idle", "running", "held", "requested_idle", "requested_max", "submitted",
                      "removed", "failed", "completed"):
                assert value(m, f"gwms_factory_{f}", entry=e["name"], client=c["client"]) == c[f]
        assert value(m, "gwms_factory_entry_paused", entry=e["name"], reason=e["reason"]) == int(e["paused"])
        assert value(m, "gwms_factory_wasted_seconds", entry=e["name"]) == e["wasted_seconds"]
        assert value(m, "gwms_factory_glidein_lifetime_mean_seconds", entry=e["name"]) == e["lifetime"]["mean_seconds"]
    page = pool.get(pool.web_url, "/factory.json")
    assert [e["name"] for e in page["factories"][0]["entries"]] == [e["name"] for e in doc["entries"]]


def test_frontend_metrics_agree_with_json_and_the_frontend_page(pool: WebPool) -> None:
    doc, m = snapshot(pool, pool.urls["frontend"])
    groups = doc["groups"]
    assert groups and groups[0]["cycles"] >= 1
    assert sum(g["running_jobs"] for g in groups) == RUNNING_ALICE + RUNNING_BOB
    for g in groups:
        assert value(m, "gwms_frontend_group_running_jobs", group=g["name"]) == g["running_jobs"]
        assert value(m, "gwms_frontend_group_idle_jobs", group=g["name"]) == g["idle_jobs"]
        for e in g["entries"]:
            labels = {"group": g["name"], "entry": e["entry"]}
            assert value(m, "gwms_frontend_idle_jobs", **labels) == e["idle"]
            assert value(m, "gwms_frontend_running_jobs", **labels) == e["running"]
            assert value(m, "gwms_frontend_requested_idle", **labels) == e["min_idle"]
            assert value(m, "gwms_frontend_requested_max_run", **labels) == e["max_run"]
            for state, n in e["glideins"].items():
                assert value(m, "gwms_frontend_glideins", **labels, state=state) == n
            for limit in e["limits"]:
                assert value(m, "gwms_frontend_limit_fired", **labels, limit=limit) == 1
    page = pool.get(pool.web_url, "/frontend.json")
    assert [g["name"] for g in page["frontends"][0]["groups"]] == [g["name"] for g in groups]


def test_every_service_keeps_history(pool: WebPool) -> None:
    checks = {"schedd": "gwms_schedd_jobs", "collector": "gwms_collector_slots",
              "factory": "gwms_factory_running", "frontend": "gwms_frontend_group_running_jobs"}
    deadline = time.monotonic() + 20
    missing = dict(checks)
    while missing and time.monotonic() < deadline:
        for service, metric in list(missing.items()):
            answer = pool.get(pool.urls[service], "/api/v1/history", metric=metric, range="hour")
            if answer["series"] and answer["step"] == 60:
                del missing[service]
        time.sleep(0.5)
    assert not missing, f"no history of {missing}"
    page = pool.get(pool.web_url, "/pool.json", range="hour")
    assert page["range"] == "hour" and page["history"]["jobs_by_status"].get("Running")


def test_pages_answer_json_by_accept_header_and_html_otherwise(pool: WebPool) -> None:
    import httpx

    as_json = httpx.get(pool.web_url + "/pool", headers={"Accept": "application/json"}, timeout=30)
    assert as_json.headers["content-type"].startswith("application/json") and "jobs" in as_json.json()
    html = httpx.get(pool.web_url + "/pool", timeout=30)
    assert html.headers["content-type"].startswith("text/html") and 'id="jobs-by-owner"' in html.text
    js = httpx.get(pool.web_url + "/static/plotly.min.js", timeout=30)
    assert js.status_code == 200 and len(js.content) > 1_000_000
    assert httpx.get(pool.web_url + "/pool?range=month", timeout=30).status_code == 400
    assert httpx.get(pool.web_url + "/pool/jobs/1.x", timeout=30).status_code == 400
    assert httpx.get(pool.web_url + "/pool/jobs/999.0.json", timeout=30).status_code == 404


def test_web_run_without_a_pool_says_what_it_needs(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "gwms", "web", "run"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode != 0 and "collector" in done.stderr
    done = subprocess.run([sys.executable, "-m", "gwms", "web", "run", "--data", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "no `gwms up` data in" in done.stderr
