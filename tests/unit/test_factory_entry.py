"""One entry's cycle against a scripted backend: submit, poll, recover, pause, remove."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest

from gwms.factory import attributes as A
from gwms.factory.backends.base import BackendError, PilotSpec, SiteState, SiteStatus
from gwms.factory.config import FactoryConfig, RemovalLevel
from gwms.factory.entry import EntryWorker, env_command, pilot_log_paths, transition
from gwms.factory.pilotstore import NewPilot, PilotStore
from gwms.factory.requests import ValidRequest
from gwms.factory.states import PilotState


class FakeBackend:
    """An in-memory site: pilots stay where the test puts them."""

    name = "fake"

    def __init__(self) -> None:
        self.jobs: dict[str, SiteStatus] = {}
        self.specs: dict[str, PilotSpec] = {}
        self.submit_calls: list[list[str]] = []
        self.removed: list[str] = []
        self.released: list[str] = []
        self.refuse: str | None = None
        self.poll_error: str | None = None
        self.initial = SiteState.PENDING

    def submit(self, pilots: Sequence[PilotSpec]) -> list[str | BackendError]:
        self.submit_calls.append([p.pilot_id for p in pilots])
        out: list[str | BackendError] = []
        for p in pilots:
            if self.refuse:
                out.append(BackendError(self.refuse))
                continue
            sid = f"site-{p.pilot_id}"
            if sid not in self.jobs:
                self.jobs[sid] = SiteStatus(self.initial)
                self.specs[sid] = p
            out.append(sid)
        return out

    def poll(self, site_ids):
        if self.poll_error:
            raise RuntimeError(self.poll_error)
        return {s: self.jobs.get(s, SiteStatus(SiteState.UNKNOWN)) for s in site_ids}

    def remove(self, site_ids):
        self.removed.extend(site_ids)
        for s in site_ids:
            self.jobs[s] = SiteStatus(SiteState.REMOVED)

    def release(self, site_ids):
        self.released.extend(site_ids)
        for s in site_ids:
            self.jobs[s] = SiteStatus(SiteState.PENDING)

    def collect_output(self, site_id, pilot):
        pilot.stdout.parent.mkdir(parents=True, exist_ok=True)
        pilot.stdout.write_text(f"output of {site_id}\n")
        pilot.stderr.write_text("")

    def set_all(self, state: SiteState, **kw) -> None:
        for s in self.jobs:
            if self.jobs[s].state not in (SiteState.REMOVED, SiteState.COMPLETED, SiteState.FAILED):
                self.jobs[s] = SiteStatus(state, **kw)


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def request(idle=3, mx=10, level=RemovalLevel.NO, margin=0, lifetime=0.0, client="fe.main") -> ValidRequest:
    return ValidRequest(
        name=f"default_e1@v1@gf@{client}", entry="e1", client_name=client, credential_id="default",
        identity="fe@pool", frontend="fe", security_class="main", user="feuser", req_idle=idle,
        req_max=mx, remove_level=level, remove_margin=margin, idle_lifetime=lifetime,
        params={"P": 1}, secrets={"GLIDEIN_Token": "secret"},
    )


@pytest.fixture()
def env(tmp_path: Path):
    cfg = FactoryConfig.model_validate({
        "name": "gf", "wms_collector": "http://127.0.0.1:1",
        "frontends": {"fe": {"identity": "fe@pool", "security_classes": {"main": "feuser"}}},
        "entries": [{
            "name": "e1", "pilot_command": ["/bin/true"], "attrs": {"GLIDEIN_Site": "S"},
            "failure": {"max_submit_failures": 2, "max_early_deaths": 2, "pause_s": 100, "pause_max_s": 1000},
            "limits": {"per_frontend": {"glideins": 50, "idle": 20, "held": 5}},
        }],
        "orphan_grace_s": 60,
    }).resolved(tmp_path, tmp_path / "data")
    store = PilotStore(tmp_path / "pilots.db")
    backend = FakeBackend()
    clock = Clock()
    worker = EntryWorker(cfg, cfg.entries[0], backend, store, env_command(["/bin/true"]), key_id="k1",
                         clock=clock)
    yield SimpleNamespace(cfg=cfg, store=store, backend=backend, clock=clock, worker=worker)
    store.close()


def _states(store: PilotStore) -> dict[str, int]:
    return store.count_active("e1")


def test_submits_exactly_the_requested_idle_and_is_idempotent(env):
    report = env.worker.cycle([request(idle=3, mx=10)])
    assert report.submitted == 3
    assert _states(env.store) == {"pending": 3}
    for _ in range(3):
        env.clock.t += 60
        assert env.worker.cycle([request(idle=3, mx=10)]).submitted == 0
    assert _states(env.store) == {"pending": 3}
    # they start running: new idle ones are submitted, up to ReqMaxGlideins
    env.backend.set_all(SiteState.RUNNING)
    env.clock.t += 60
    assert env.worker.cycle([request(idle=3, mx=5)]).submitted == 2
    assert _states(env.store) == {"running": 3, "pending": 2}


def test_pilot_records_log_paths_and_command(env, tmp_path):
    env.worker.cycle([request(idle=2)])
    recs = env.store.active("e1")
    assert [r.proc for r in recs] == [0, 1] and len({r.cluster for r in recs}) == 1
    out, err = pilot_log_paths(Path(env.cfg.log_dir), "feuser", "v1", "e1", recs[0].cluster, 0)
    assert recs[0].stdout == str(out) and recs[0].stderr == str(err)
    assert str(out).endswith(f"client/user_feuser/glidein_v1/entry_e1/job.{recs[0].cluster}.0.out")
    spec = env.backend.specs[recs[0].site_id]
    assert spec.argv == ["/bin/true"] and spec.env["GLIDEIN_ENC_PARAM_GLIDEIN_Token"] == "secret"
    assert spec.env["GLIDEIN_PARAM_P"] == "1" and spec.env["GLIDEIN_Pilot_Id"] == recs[0].pilot_id


def test_clusters_of_ten(env):
    env.worker.cycle([request(idle=20, mx=100)])
    assert [len(c) for c in env.backend.submit_calls] == [10, 10]


def test_a_crash_between_record_and_submit_does_not_double_submit(env):
    req = request(idle=2)
    # a previous run wrote the records, submitted one of them, then was killed
    news = [NewPilot(f"gf.v1.7.{i}", "e1", req.key, req.client_name, "default", "fe", "main", "feuser",
                     req.name, 7, i, 0.0, f"/x/{i}.out", f"/x/{i}.err") for i in range(2)]
    env.store.add_unsubmitted(news, env.clock.t)
    env.backend.submit([PilotSpec("gf.v1.7.0", [], {}, Path("/x/0"), Path("/x/0e"), 1, 1, 0, None)])
    env.backend.submit_calls.clear()
    report = env.worker.cycle([req])
    assert env.backend.submit_calls == [["gf.v1.7.0", "gf.v1.7.1"]]  # the same ids again, nothing new
    assert report.submitted == 2 and len(env.backend.jobs) == 2
    assert _states(env.store) == {"pending": 2}


def test_leftovers_of_a_vanished_request_are_given_up_after_the_grace(env):
    env.store.add_unsubmitted([NewPilot("gf.v1.9.0", "e1", "fe/old/default", "old", "default", "fe", "main",
                                    "feuser", "r", 9, 0, 0.0, "/x", "/y")], env.clock.t)
    env.worker.cycle([])
    assert _states(env.store) == {"unsubmitted": 1}
    env.clock.t += 61
    env.worker.cycle([])
    assert _states(env.store) == {} and env.store.get("gf.v1.9.0").state is PilotState.LOST
    assert env.backend.submit_calls == []


def test_refused_submissions_pause_the_entry_and_its_ad_says_why(env):
    env.backend.refuse = "partition down"
    env.worker.cycle([request(idle=30, mx=100)])
    # two refused clusters in a row: paused at once, no third call
    assert len(env.backend.submit_calls) == 2
    ad = env.worker.last_report.ads[0]
    assert ad[A.ENTRY_PAUSED] is True and "partition down" in ad[A.ENTRY_PAUSED_REASON]
    calls = len(env.backend.submit_calls)
    env.clock.t += 50
    env.worker.cycle([request(idle=30, mx=100)])
    assert len(env.backend.submit_calls) == calls  # still paused
    env.backend.refuse = None
    env.clock.t += 60
    report = env.worker.cycle([request(idle=30, mx=100)])
    assert report.submitted == 1  # probation: one at a time
    env.backend.set_all(SiteState.RUNNING)
    env.clock.t += 10
    env.worker.cycle([request(idle=30, mx=100)])
    env.clock.t += 200  # the probation pilot has run long enough: healthy again
    report = env.worker.cycle([request(idle=30, mx=100)])
    assert report.submitted > 1
    assert env.worker.last_report.ads[0][A.ENTRY_PAUSED] is False


def test_pilots_dying_early_pause_the_entry(env):
    env.worker.cycle([request(idle=2, mx=10)])
    env.backend.set_all(SiteState.FAILED, exit_code=1, reason="validation failed")
    env.clock.t += 10
    env.worker.cycle([request(idle=2, mx=10)])
    status = env.worker.status()
    assert status.paused and "died early" in status.reason and "validation failed" in status.reason
    # output of the ended pilots was collected into their log files
    ended = env.store.query(active_only=False, states=[PilotState.FAILED])
    assert all(r.output_collected and Path(r.stdout).read_text().startswith("output of") for r in ended)


def test_excess_idle_removal_is_rate_limited(env):
    env.worker.cycle([request(idle=15, mx=100)])
    env.clock.t += 60
    report = env.worker.cycle([request(idle=2, mx=100, level=RemovalLevel.IDLE)])
    assert report.removed == 5 and len(env.backend.removed) == 5
    for expected in (10, 13, 13):
        env.clock.t += 60
        env.worker.cycle([request(idle=2, mx=100, level=RemovalLevel.IDLE)])
        assert len(env.backend.removed) == expected  # never below the request
    assert _states(env.store) == {"pending": 2}
    removed = env.store.query(active_only=False, states=[PilotState.REMOVED])
    assert len(removed) == 13 and all(r.remove_reason.startswith("excess") for r in removed)


def test_running_pilots_only_go_with_all(env):
    env.worker.cycle([request(idle=4, mx=100)])
    env.backend.set_all(SiteState.RUNNING)
    env.clock.t += 60
    env.worker.cycle([request(idle=0, mx=0, level=RemovalLevel.IDLE)])
    assert env.backend.removed == []
    env.clock.t += 60
    env.worker.cycle([request(idle=0, mx=1, level=RemovalLevel.ALL)])
    assert len(env.backend.removed) == 3


def test_held_pilots_are_released_with_backoff_or_removed(env):
    env.worker.cycle([request(idle=2, mx=10)])
    sids = sorted(env.backend.jobs)
    env.backend.jobs[sids[0]] = SiteStatus(SiteState.HELD, reason="connection timed out")
    env.backend.jobs[sids[1]] = SiteStatus(SiteState.HELD, reason="executable not found")
    env.clock.t += 10
    env.worker.cycle([request(idle=2, mx=10)])
    assert env.backend.removed == [sids[1]] and env.backend.released == []
    env.clock.t += 299
    env.worker.cycle([request(idle=2, mx=10)])
    assert env.backend.released == []
    env.clock.t += 2
    env.worker.cycle([request(idle=2, mx=10)])
    assert env.backend.released == [sids[0]]
    rec = {r.site_id: r for r in env.store.query(active_only=False)}[sids[0]]
    assert rec.holds == 1 and rec.releases == 1


def test_held_limit_stops_submissions(env):
    env.worker.cycle([request(idle=5, mx=100)])
    env.backend.set_all(SiteState.HELD, reason="connection timed out")
    env.clock.t += 10
    report = env.worker.cycle([request(idle=10, mx=100)])
    assert report.submitted == 0 and "frontend held limit" in report.plan.limited_by["fe/fe.main/default"]


def test_a_failing_poll_changes_nothing(env):
    env.worker.cycle([request(idle=2)])
    env.backend.poll_error = "squeue timed out"
    env.clock.t += 60
    report = env.worker.cycle([request(idle=5)])
    assert report.error.startswith("poll failed") and report.submitted == 0
    assert len(report.ads) == 2


def test_no_recent_requests_means_no_action(env):
    env.worker.cycle([request(idle=10)])
    env.clock.t += 60
    report = env.worker.cycle(None)
    assert report.submitted == 0 and report.removed == 0


def test_operator_pause_and_downtime(env):
    env.store.update_control("e1", lambda d: {**d, "paused": {"reason": "maintenance"}})
    report = env.worker.cycle([request(idle=3)])
    assert report.submitted == 0
    assert report.ads[0][A.ENTRY_PAUSED_REASON] == "paused by operator: maintenance"
    env.store.update_control("e1", lambda d: {k: v for k, v in d.items() if k != "paused"})
    env.store.update_control("e1", lambda d: {**d, "downtimes": [{"start": env.clock.t - 1, "end": env.clock.t + 100}]})
    report = env.worker.cycle([request(idle=3)])
    assert report.submitted == 0 and report.ads[0][A.IN_DOWNTIME] is True
    env.clock.t += 101
    report = env.worker.cycle([request(idle=3)])
    assert report.submitted == 3 and report.ads[0][A.IN_DOWNTIME] is False


def test_orphaned_idle_pilots_go_after_the_grace(env):
    env.worker.cycle([request(idle=3, mx=10)])
    env.clock.t += 10
    env.worker.cycle([])
    assert env.backend.removed == []
    env.clock.t += 61
    env.worker.cycle([])
    assert len(env.backend.removed) == 3


def test_ads_describe_entry_and_clients(env):
    report = env.worker.cycle([request(idle=3, mx=10)])
    entry_ad, client_ad = report.ads
    assert entry_ad[A.NAME] == "e1@v1@gf" and entry_ad["GLIDEIN_Site"] == "S"
    assert entry_ad["GlideinMonitorTotalStatusIdle"] == 3 and entry_ad[A.PUB_KEY_ID] == "k1"
    assert entry_ad[A.CONFIG_FRONTEND_MAX_IDLE] == 20
    assert client_ad[A.MY_TYPE] == A.TYPE_GLIDEFACTORY_CLIENT
    assert client_ad["GlideinMonitorStatusPending"] == 3 and client_ad["GlideinMonitorRequestedIdle"] == 3


def test_unknown_pilots_are_lost_after_the_grace(env):
    env.worker.cycle([request(idle=1, mx=1)])
    env.backend.jobs.clear()
    env.clock.t += 10
    env.worker.cycle([request(idle=1, mx=1)])
    assert _states(env.store) == {"pending": 1}  # still counted
    env.clock.t += 601
    env.worker.cycle([request(idle=1, mx=1)])
    assert env.store.query(active_only=False, states=[PilotState.LOST])


# --------------------------------------------------------------------------- transition


def _rec(store, state=PilotState.PENDING):
    store.add_unsubmitted([NewPilot("p", "e1", "k", "c", "d", "fe", "main", "u", "r", 1, 0, 0.0, "/o", "/e")], 0.0)
    store.record_submitted([("p", "s", "")], 1.0)
    return store.get("p")


def test_transition_rules(tmp_path):
    store = PilotStore(tmp_path / "t.db")
    rec = _rec(store)
    ch = transition(rec, SiteStatus(SiteState.HELD, reason="r"), 5.0, 600)
    assert ch.state is PilotState.HELD and ch.holds == 1 and ch.reason == "r"
    ch = transition(rec, SiteStatus(SiteState.RUNNING), 5.0, 600)
    assert ch.running_since == 5.0
    assert transition(rec, SiteStatus(SiteState.PENDING), 5.0, 600) is None
    ch = transition(rec, SiteStatus(SiteState.UNKNOWN), 5.0, 600)
    assert ch.state is None and ch.unknown_since == 5.0
    ch = transition(rec, SiteStatus(SiteState.COMPLETED, 0), 5.0, 600)
    assert ch.state is PilotState.COMPLETED and ch.exit_code == 0
    store.request_removal([("p", "excess")], 6.0)
    ch = transition(store.get("p"), SiteStatus(SiteState.UNKNOWN), 7.0, 600)
    assert ch.state is PilotState.REMOVED and ch.reason == "excess"
    store.close()
