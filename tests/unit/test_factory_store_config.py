"""The pilot store (SQLite) and the factory configuration."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gwms.config import ConfigError, config_kind, parse_config
from gwms.factory.config import FactoryConfig, RemovalLevel
from gwms.factory.pilotstore import NewPilot, PilotStore, StateChange
from gwms.factory.states import PilotState


def new(i: int, entry: str = "e1", key: str = "fe/c/default") -> NewPilot:
    return NewPilot(
        pilot_id=f"gf.v1.1.{i}", entry=entry, client_key=key, client_name="c", credential_id="default",
        frontend="fe", security_class="main", user="u", request_name="r", cluster=1, proc=i,
        idle_lifetime=0.0, stdout=f"/l/job.1.{i}.out", stderr=f"/l/job.1.{i}.err",
    )


def test_records_are_written_before_submission_and_survive_reopen(tmp_path):
    store = PilotStore(tmp_path / "pilots.db")
    assert store.next_cluster() == 1 and store.next_cluster() == 2
    store.add_unsubmitted([new(0), new(1), new(2)], 100.0)
    assert [r.state for r in store.active("e1")] == [PilotState.UNSUBMITTED] * 3
    store.record_submitted([("gf.v1.1.0", "s0", ""), ("gf.v1.1.1", None, "queue full")], 101.0)
    store.close()

    store = PilotStore(tmp_path / "pilots.db")  # a restart
    assert store.next_cluster() == 3
    by_id = {r.pilot_id: r for r in store.query(active_only=False)}
    assert by_id["gf.v1.1.0"].state is PilotState.PENDING and by_id["gf.v1.1.0"].site_id == "s0"
    assert by_id["gf.v1.1.1"].state is PilotState.FAILED and by_id["gf.v1.1.1"].reason == "queue full"
    assert not by_id["gf.v1.1.1"].active
    assert by_id["gf.v1.1.2"].state is PilotState.UNSUBMITTED
    assert [s for _, s, _ in store.history("gf.v1.1.0")] == ["unsubmitted", "pending"]
    store.close()


def test_state_changes_and_history(tmp_path):
    store = PilotStore(tmp_path / "p.db")
    store.add_unsubmitted([new(0)], 1.0)
    store.record_submitted([("gf.v1.1.0", "s0", "")], 2.0)
    store.apply([StateChange("gf.v1.1.0", state=PilotState.HELD, holds=1, reason="bad")], 3.0)
    rec = store.get("gf.v1.1.0")
    assert rec is not None and rec.holds == 1 and rec.view().hold_reason == "bad"
    store.record_released(["gf.v1.1.0"], 4.0)
    store.apply([StateChange("gf.v1.1.0", state=PilotState.RUNNING, running_since=5.0)], 5.0)
    store.request_removal([("gf.v1.1.0", "excess")], 6.0)
    assert store.get("gf.v1.1.0").view().removing
    store.apply([StateChange("gf.v1.1.0", state=PilotState.REMOVED, reason="excess")], 7.0)
    rec = store.get("gf.v1.1.0")
    assert rec.releases == 1 and not rec.active and rec.finished == 7.0 and rec.running_since == 5.0
    assert store.active("e1") == []
    assert [r.pilot_id for r in store.uncollected("e1")] == ["gf.v1.1.0"]
    store.mark_output_collected("gf.v1.1.0")
    assert store.uncollected("e1") == []
    notes = [n for _, _, n in store.history("gf.v1.1.0")]
    assert "released" in notes and any("removal asked" in n for n in notes)


def test_abandon_only_touches_unsubmitted(tmp_path):
    store = PilotStore(tmp_path / "p.db")
    store.add_unsubmitted([new(0), new(1)], 1.0)
    store.record_submitted([("gf.v1.1.0", "s0", "")], 2.0)
    store.abandon(["gf.v1.1.0", "gf.v1.1.1"], "gone", 3.0)
    assert store.get("gf.v1.1.0").state is PilotState.PENDING
    assert store.get("gf.v1.1.1").state is PilotState.LOST


def test_query_and_counts(tmp_path):
    store = PilotStore(tmp_path / "p.db")
    store.add_unsubmitted([new(0), new(1, key="fe/d/default"), new(2, entry="e2")], 1.0)
    assert len(store.query(entry="e1")) == 2
    assert len(store.query(client="fe/d/default")) == 1
    assert store.count_active() == {"unsubmitted": 3}
    assert store.count_active("e2") == {"unsubmitted": 1}
    assert store.query(states=[PilotState.RUNNING]) == []


def test_control_updates_are_atomic_read_modify_write(tmp_path):
    store = PilotStore(tmp_path / "p.db")
    assert store.control("e1") == {}
    store.update_control("e1", lambda d: {**d, "paused": {"reason": "x"}})
    store.update_control("e1", lambda d: {**d, "health": {"pauses": 1}})
    assert store.control("e1") == {"paused": {"reason": "x"}, "health": {"pauses": 1}}


# --------------------------------------------------------------------------- config

MINIMAL = """
name: gf
wms_collector: http://127.0.0.1:9618
frontends:
  vofe:
    identity: fe@pool
    security_classes: {main: fe1}
entries:
  - name: e1
    attrs: {GLIDEIN_Site: S1, GLIDEIN_CPUS: 4, GLIDEIN_MaxMemMBs: 8000}
"""


def test_defaults_are_the_originals():
    cfg = parse_config(MINIMAL, FactoryConfig)
    e = cfg.entries[0]
    assert (e.limits.entry.glideins, e.limits.entry.idle, e.limits.entry.held) == (10000, 2000, 1000)
    assert (e.limits.per_frontend.glideins, e.limits.per_frontend.idle, e.limits.per_frontend.held) == (5000, 100, 50)
    assert (e.cycle.max_submits, e.cycle.cluster_size, e.cycle.max_removals, e.cycle.max_releases) == (100, 10, 5, 20)
    assert e.cycle.release_backoff_s == 300 and e.cycle.max_holds == 20 and e.cycle.max_releases_per_pilot == 10
    assert e.cpus() == 4 and e.memory_mb() == 8000
    assert cfg.restart_attempts == 3 and cfg.restart_interval == 1800
    assert cfg.orphan_removal is RemovalLevel.IDLE
    assert cfg.entry_ad_name("e1") == "e1@v1@gf"
    assert config_kind("factory") is FactoryConfig


def test_limits_per_frontend_and_num_factories():
    cfg = parse_config(MINIMAL + textwrap.indent(textwrap.dedent("""
        limits:
          num_factories: 2
          frontends:
            "vofe:main": {glideins: 10, idle: 4, held: 2}
    """), "    "), FactoryConfig)
    limits = cfg.entries[0].limits
    assert limits.for_frontend("vofe", "main").idle == 2
    assert limits.for_frontend("vofe", "other").idle == 50
    assert limits.for_entry().glideins == 5000


@pytest.mark.parametrize("extra,words", [
    ("  - name: e1\n", "configured twice"),
    ("  - name: e2\n    allow_frontends: [nobody]\n", "not configured"),
    ("  - name: ../x\n", "not a safe name"),
    ("  - name: e3\n    downtimes: [{start: 10, end: 5}]\n", "end after it starts"),
    ("  - name: e4\n    limits: {entry: {glideins: -1, idle: 1, held: 1}}\n", "greater than or equal to 0"),
    ("  - name: e5\n    cycle: {recoverable_holds: ['(']}\n", "not a regular expression"),
    ("  - name: e6\n    attrs: {'bad name': 1}\n", "not a parameter name"),
])
def test_config_errors_name_the_problem(extra, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        parse_config(MINIMAL + extra, FactoryConfig)


def test_orphan_removal_is_never_all():
    with pytest.raises(ConfigError, match="ALL"):
        parse_config(MINIMAL + "orphan_removal: ALL\n", FactoryConfig)


def test_resolved_paths(tmp_path):
    cfg = parse_config(MINIMAL + "log_dir: logs\n", FactoryConfig)
    r = cfg.resolved(tmp_path)
    assert r.data_dir == tmp_path / "factory-data"
    assert r.log_dir == tmp_path / "logs"
    assert r.key_dir == tmp_path / "factory-data" / "factory" / "keys"
    r = cfg.resolved(tmp_path, Path("/srv/gwms"))
    assert r.state_dir() == Path("/srv/gwms/factory")


def test_downtime_covers():
    cfg = parse_config(MINIMAL + "    downtimes: [{start: 10, end: 20, frontend: vofe}]\n", FactoryConfig)
    dt = cfg.entries[0].downtimes[0]
    assert dt.covers(15, "vofe", "main") and not dt.covers(15, "other", "main") and not dt.covers(20, "vofe", "x")
