"""The web UI's pure parts: series sums, job filters, dashboard documents to metrics, charts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gwms.factory.dashboard import COUNT_FIELDS, factory_families, pilot_counts
from gwms.net.dashboard import DashboardCollector
from gwms.pool.collector.dashboard import collector_families, slot_counts
from gwms.pool.schedd.dashboard import schedd_families
from gwms.web.charts import bar_chart, line_chart, sum_series
from gwms.web.pages import PageError, job_constraint, pool_charts

series_st = st.lists(
    st.fixed_dictionaries({
        "labels": st.fixed_dictionaries({"status": st.sampled_from(["Idle", "Running"]),
                                         "owner": st.sampled_from(["a", "b", "c"])}),
        "points": st.lists(st.tuples(st.integers(0, 5).map(lambda i: 1000 + 60 * i),
                                     st.integers(0, 100).map(float)), max_size=6,
                           unique_by=lambda p: p[0]),
    }),
    max_size=8,
)


@given(series_st)
def test_sum_series_adds_by_label_and_keeps_the_total(series: list[dict]) -> None:
    by_status = sum_series(series, ["status"])
    total = sum_series(series, [])
    grand = sum(v for s in series for _, v in s["points"])
    assert sum(v for pts in by_status.values() for _, v in pts) == grand
    assert sum(v for pts in total.values() for _, v in pts) == grand
    for pts in by_status.values():
        assert [t for t, _ in pts] == sorted({t for t, _ in pts})
    assert set(by_status) == {s["labels"]["status"] for s in series if s["points"]}


def test_job_constraint() -> None:
    assert job_constraint() is None
    assert job_constraint(owner='al"ice', status="held") == 'Owner == "al\\"ice" && JobStatus == 5'
    assert job_constraint(status="2", constraint="RequestCpus > 1") == "JobStatus == 2 && (RequestCpus > 1)"
    with pytest.raises(PageError, match="unknown job status"):
        job_constraint(status="sleeping")


def _parsed(families) -> dict[tuple[str, tuple], float]:  # type: ignore[no-untyped-def]
    reg = CollectorRegistry()
    doc = {"families": list(families)}
    reg.register(DashboardCollector(lambda: doc, lambda d: d["families"]))
    out = {}
    for fam in text_string_to_metric_families(generate_latest(reg).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_slot_counts_and_collector_metrics_agree() -> None:
    ads = [{"State": "Claimed", "GLIDEIN_Entry_Name": "A", "Cpus": 2},
           {"state": "Claimed", "glidein_entry_name": "A", "cpus": 1},
           {"State": "Unclaimed", "Cpus": 4}]
    rows = slot_counts(ads)
    assert rows == [{"state": "Claimed", "entry": "A", "slots": 2, "cpus": 3},
                    {"state": "Unclaimed", "entry": "-", "slots": 1, "cpus": 4}]
    got = _parsed(collector_families({"slots": rows}))
    assert got[("gwms_collector_slots", (("entry", "A"), ("state", "Claimed")))] == 2
    assert got[("gwms_collector_slot_cpus", (("entry", "-"), ("state", "Unclaimed")))] == 4


def test_schedd_metrics_from_the_document() -> None:
    doc = {"max_jobs_running": 10, "by_owner": {"alice": {"Idle": 2, "Running": 1}}}
    got = _parsed(schedd_families(doc))
    assert got[("gwms_schedd_jobs", (("owner", "alice"), ("status", "Idle")))] == 2
    assert got[("gwms_schedd_max_jobs_running", ())] == 10


def test_pilot_counts_and_factory_metrics() -> None:
    rows = [("e1", "fe.main", "pending", 1, 3, 3), ("e1", "fe.main", "running", 1, 2, 2),
            ("e1", "fe.main", "failed", 0, 1, 1), ("e1", "fe.main", "lost", 0, 1, 1),
            ("e1", "fe.main", "unsubmitted", 1, 0, 4), ("e2", "fe.other", "completed", 0, 5, 5)]
    counts = pilot_counts(rows)
    c = counts[("e1", "fe.main")]
    assert (c["idle"], c["running"], c["failed"], c["submitted"]) == (7, 2, 2, 7)
    assert counts[("e2", "fe.other")]["completed"] == 5
    doc = {"entries": [{"name": "e1", "paused": True, "reason": "too many failures", "in_downtime": False,
                        "clients": [{"client": "fe.main", **c}], "totals": c,
                        "lifetime": {"count": 2, "mean_seconds": 10.0, "max_seconds": 12.0},
                        "validation": {"count": 1, "mean_seconds": 3.0}, "wasted_seconds": 20.0}]}
    got = _parsed(factory_families(doc))
    for f in COUNT_FIELDS:
        assert got[(f"gwms_factory_{f}", (("client", "fe.main"), ("entry", "e1")))] == c[f]
    assert got[("gwms_factory_entry_paused", (("entry", "e1"), ("reason", "too many failures")))] == 1
    assert got[("gwms_factory_wasted_seconds", (("entry", "e1"),))] == 20.0


def test_charts_are_plotly_json_safe_in_a_script_element() -> None:
    chart = line_chart("x", "Jobs </script>", {"Idle": [(1000, 1.0), (1060, 2.0)]}, "jobs")
    assert "</script>" not in chart["figure"] and '"scatter"' in chart["figure"]
    bars = bar_chart("b", "B", ["a"], {"Idle": [1]})
    assert '"bar"' in bars["figure"]
    doc = {"range": "day", "jobs": {"by_owner": {"a": {"Idle": 1}}, "by_status": {"Idle": 1}},
           "slots": {"rows": []}, "history": {"jobs_by_status": {}, "slots_by_state": {}, "cycle_seconds": {}}}
    assert [c["id"] for c in pool_charts(doc)] == ["jobs-by-owner", "slots-by-entry", "jobs-history",
                                                   "slots-history", "cycle-history"]


def _exported_names() -> set[str]:
    """Every metric name the dashboard families export (from sample documents)."""
    from gwms.frontend.dashboard import frontend_families
    from gwms.pool.negotiator.dashboard import negotiator_families

    counts = dict.fromkeys(COUNT_FIELDS, 1)
    docs = [
        collector_families({"slots": [{"state": "Claimed", "entry": "e", "slots": 1, "cpus": 1}]}),
        schedd_families({"max_jobs_running": 1, "by_owner": {"a": {"Idle": 1}}}),
        negotiator_families({"cycles": 1, "last": {"started": 1.0, "seconds": 1, "match_seconds": 1, "schedds": 1,
                                                   "slots": 1, "idle_jobs": 1, "matches": 1, "accepted": 1,
                                                   "refused": 0},
                             "submitters": [{"name": "a", "effective_priority": 1, "real_priority": 1,
                                             "factor": 1, "usage_hours": 1, "in_use": 1}]}),
        factory_families({"entries": [{"name": "e", "paused": False, "reason": "", "in_downtime": False,
                                       "clients": [{"client": "c", **counts}], "totals": counts,
                                       "lifetime": {"count": 1, "mean_seconds": 1, "max_seconds": 1},
                                       "validation": {"count": 1, "mean_seconds": 1}, "wasted_seconds": 1}]}),
        frontend_families({"groups": [{"name": "g", "cycles": 1, "duration": 1, "idle_jobs": 1, "running_jobs": 1,
                                       "unmatched_idle": 1, "entries": [
                                           {"entry": "e", "idle": 1, "unique_idle": 1, "old_idle": 1, "running": 1,
                                            "min_idle": 1, "max_run": 1, "glideins": {"idle": 1},
                                            "limits": ["x"]}]}]}),
    ]
    return {name for key in _parsed(f for fams in docs for f in fams) for name in [key[0]]}


def test_grafana_dashboards_use_only_exported_metrics() -> None:
    import json
    import re
    from pathlib import Path

    exported = _exported_names()
    files = sorted((Path(__file__).resolve().parents[2] / "deploy" / "grafana").glob("*.json"))
    assert [f.name for f in files] == ["gwms-factory.json", "gwms-frontend.json", "gwms-pool.json"]
    for f in files:
        dash = json.loads(f.read_text())
        assert dash["panels"] and dash["uid"].startswith("gwms-")
        for panel in dash["panels"]:
            for target in panel["targets"]:
                names = set(re.findall(r"\bgwms_[a-z_]+", target["expr"]))
                assert names and names <= exported, (f.name, panel["title"], names - exported)


def test_metric_names_are_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "web.md").read_text()
    missing = sorted(n for n in _exported_names() if n.removesuffix("_total") not in doc)
    assert not missing, f"not in docs/web.md: {missing}"


def test_sources_from_a_gwms_up_directory_and_explicit_urls_win(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from gwms.security.layout import init_security
    from gwms.web.sources import SourcesError, WebSources, sources_from_data

    with pytest.raises(SourcesError, match="no `gwms up` data"):
        sources_from_data(tmp_path)
    layout, _ = init_security(tmp_path)
    bare = sources_from_data(tmp_path)  # gwms up still starting: no URLs yet
    assert bare.collector is None and bare.token == layout.admin_token()
    (tmp_path / "up.json").write_text(json.dumps({"urls": {
        "collector": "http://127.0.0.1:1", "schedd": "http://127.0.0.1:2", "factory": "http://127.0.0.1:3"}}))
    src = sources_from_data(tmp_path)
    assert (src.collector, src.schedds, src.factories) == ("http://127.0.0.1:1", ("http://127.0.0.1:2",),
                                                           ("http://127.0.0.1:3",))
    assert src.monitor_data == tmp_path / "monitor"
    merged = src.merged(WebSources(collector="http://h:9", frontends=("http://h:8",)))
    assert merged.collector == "http://h:9" and merged.schedds == src.schedds
    assert merged.frontends == ("http://h:8",) and merged.token == src.token


def test_factory_dashboard_lifetimes_validation_and_waste_from_a_real_store(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from gwms.factory.dashboard import FactoryDashboard
    from gwms.factory.pilotstore import NewPilot, PilotStore, StateChange
    from gwms.factory.states import PilotState

    store = PilotStore(tmp_path / "pilots.db")

    def pilot(pid: str, proc: int) -> NewPilot:
        out = tmp_path / f"{pid}.out"
        return NewPilot(pid, "e1", "key", "fe.main", "cred", "fe", "sec", "u", "req", 1, proc, 600.0,
                        str(out), str(tmp_path / f"{pid}.err"))

    store.add_unsubmitted([pilot("p0", 0), pilot("p1", 1), pilot("p2", 2), pilot("p3", 3)], now=1000)
    store.record_submitted([("p0", "s0", ""), ("p1", "s1", ""), ("p2", "s2", ""), ("p3", None, "refused")], now=1001)
    store.apply([StateChange("p0", PilotState.RUNNING, running_since=1010),
                 StateChange("p1", PilotState.RUNNING, running_since=1020),
                 StateChange("p2", PilotState.RUNNING, running_since=1030)], now=1030)
    store.apply([StateChange("p0", PilotState.COMPLETED, exit_code=0)], now=1110)  # ran 100 s
    store.apply([StateChange("p1", PilotState.FAILED, exit_code=1)], now=1070)  # ran 50 s, wasted
    (tmp_path / "p0.out").write_text("=== Last script starting Mon (1012) after validating for 7 ===\n")
    store.mark_output_collected("p0")
    service = SimpleNamespace(
        store=store, config=SimpleNamespace(name="f"),
        entries=lambda: [{"name": "e1", "backend": "local", "paused": True, "reason": "failing",
                          "in_downtime": False,
                          "requests": [{"client": "fe.main", "idle": 4, "max": 9}]}])
    doc = FactoryDashboard(service)()
    (e,) = doc["entries"]
    assert e["totals"] == {"idle": 0, "running": 1, "held": 0, "requested_idle": 4, "requested_max": 9,
                           "submitted": 3, "removed": 0, "failed": 2, "completed": 1}
    assert e["lifetime"] == {"count": 2, "mean_seconds": 75.0, "max_seconds": 100.0}
    assert e["validation"] == {"count": 1, "mean_seconds": 7.0}
    assert e["wasted_seconds"] == 50.0
    assert e["paused"] and e["reason"] == "failing"
    got = _parsed(factory_families(doc))
    assert got[("gwms_factory_validation_mean_seconds", (("entry", "e1"),))] == 7.0
    assert got[("gwms_factory_failed", (("client", "fe.main"), ("entry", "e1")))] == 2
