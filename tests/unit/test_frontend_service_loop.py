"""The frontend service around the pure cycle: queries, failures, advertising, watching, status.

Collectors and schedds are fakes (given to the service through ``connect``); the
integration tests run the same service against real ones.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gwms.cli.frontend import render_status
from gwms.factory import attributes as FA
from gwms.frontend.config import FrontendConfig
from gwms.frontend.service import FrontendService, job_constraint, resolved_config
from gwms.pool.collector.store import AdvertiseReport, InvalidateReport
from gwms.security.hybrid import RsaKeyPair

WMS = "http://wms.test:1"
POOL = "http://pool.test:1"
SCHEDD = "http://schedd.test:1"
FACTORY_ID = "factory@d"
ME = "vofrontend@d"
KEY = RsaKeyPair.generate("gf-v1", 2048)
MADE: list[FrontendService] = []


class FakeCollector:
    """Ads by MyType; records what is advertised and invalidated; can be made to fail."""

    def __init__(self) -> None:
        self.ads: dict[str, list[dict[str, Any]]] = {}
        self.advertised: list[dict[str, Any]] = []
        self.invalidated: list[tuple[str, str | None, str | None]] = []
        self.fail = False
        self.queries: list[tuple[str | None, str | None]] = []

    def query(self, my_type=None, constraint=None, projection=None, limit=None):
        self.queries.append((my_type, constraint))
        if self.fail:
            raise ConnectionError("collector down")
        return [dict(a) for a in self.ads.get(my_type or "", [])]

    def advertise(self, ads):
        self.advertised.extend(ads)
        return AdvertiseReport(accepted=len(ads))

    def invalidate(self, my_type, name=None, constraint=None):
        self.invalidated.append((my_type, name, constraint))
        return InvalidateReport(1, 0)

    def close(self) -> None:
        pass


class FakeSchedd:
    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []
        self.fail = False
        self.asked: list[tuple[str | None, Any]] = []

    def query(self, constraint=None, projection=None, owner=None, limit=None):
        self.asked.append((constraint, projection))
        if self.fail:
            raise ConnectionError("schedd down")
        return [dict(j) for j in self.jobs]

    def close(self) -> None:
        pass


def make_config(**extra: Any) -> FrontendConfig:
    raw: dict[str, Any] = {
        "frontend_name": "vofe",
        "loop_delay": 30,
        "wms_collectors": [{"url": WMS, "factory_identity": FACTORY_ID, "my_identity": ME}],
        "user_pool": {"collectors": [POOL]},
        "groups": {"main": {"match": {"match_expr": 'glidein["attrs"]["GLIDEIN_Site"] == job["Site"]',
                                      "job": {"query_expr": "Owner == \"alice\""}}}},
    }
    raw.update(extra)
    return FrontendConfig.model_validate(raw)


class World:
    def __init__(self, **extra: Any) -> None:
        self.wms = FakeCollector()
        self.pool = FakeCollector()
        self.schedd = FakeSchedd()
        self.wms.ads["glidefactory"] = [self.entry("local1", "LOCAL")]
        self.wms.ads["glidefactoryglobal"] = [{"MyType": "glidefactoryglobal", "Name": "v1@gf", "PubKeyID": "gf-v1",
                                               "PubKeyValue": KEY.public_pem, "AuthenticatedIdentity": FACTORY_ID}]
        self.pool.ads["Scheduler"] = [{"Name": "schedd@t", "ScheddIpAddr": SCHEDD, "TotalIdleJobs": 0,
                                       "MaxJobsRunning": 100, "TotalRunningJobs": 0}]
        self.service = FrontendService(make_config(**extra), watch_interval=0, min_gap=0,
                                       connect=self.connect)
        MADE.append(self.service)

    @staticmethod
    def entry(name: str, site: str) -> dict[str, Any]:
        return {"MyType": "glidefactory", "Name": f"{name}@v1@gf", "GLIDEIN_Site": site, "GLIDEIN_CPUS": 1,
                "AuthenticatedIdentity": FACTORY_ID}

    def connect(self, kind: str, url: str, token: Any) -> Any:
        return {"wms": self.wms, "pool": self.pool, "schedd": self.schedd}[kind]

    def idle(self, n: int) -> None:
        self.schedd.jobs = [{"JobStatus": 1, "EnteredCurrentStatus": time.time(), "RequestCpus": 1, "Site": "LOCAL"}
                            for _ in range(n)]

    def requests(self) -> dict[str, dict[str, Any]]:
        return {a["Name"]: a for a in self.wms.advertised if a["MyType"] == "glideclient"}


@pytest.fixture(autouse=True)
def _stop_services() -> Iterator[None]:
    """Stop every service a test made (loops, query threads)."""
    yield
    while MADE:
        MADE.pop().stop(invalidate=False)


def test_a_cycle_queries_everything_and_advertises_requests() -> None:
    world = World()
    world.idle(9)
    plan = world.service.run_cycle("main")
    assert plan.complete and plan.entries[0].request.min_idle == 3
    assert world.requests()["default_local1@v1@gf@vofe.main"]["ReqIdleGlideins"] == 3
    assert [a["MyType"] for a in world.pool.advertised] == ["glideresource"]
    # the schedd is asked for idle and running jobs of the group's job query, with only what the match reads
    constraint, projection = world.schedd.asked[0]
    assert constraint == ('(((JobUniverse==5)&&(GLIDEIN_Is_Monitor =!= TRUE)&&(JOB_Is_Monitor =!= TRUE)) '
                          '&& (Owner == "alice")) && (JobStatus == 1 || JobStatus == 2)')
    assert "Site" in projection and "JobStatus" in projection and "RemoteHost" in projection
    # factory ads are asked only from the factory's identity
    asked = dict(world.wms.queries)
    assert asked["glidefactory"] == 'AuthenticatedIdentity =?= "factory@d"'
    assert asked["glidefactoryglobal"] == 'AuthenticatedIdentity =?= "factory@d"'


def test_ads_from_another_identity_are_dropped_even_if_the_collector_returns_them() -> None:
    world = World()
    evil = world.entry("evil1", "LOCAL")
    evil["AuthenticatedIdentity"] = "mallory@d"
    world.wms.ads["glidefactory"].append(evil)
    world.idle(3)
    plan = world.service.run_cycle("main")
    assert [e.name for e in plan.entries] == ["local1@v1@gf"]


def test_a_failed_query_decides_nothing_new() -> None:
    world = World(groups={"main": {"match": {"match_expr": 'glidein["attrs"]["GLIDEIN_Site"] == job["Site"]'},
                                   "limits": {"glideins_removal": {"type": "ALL"}}}})
    world.idle(9)
    first = world.service.run_cycle("main")
    world.schedd.fail = True
    world.schedd.jobs = []
    world.wms.advertised.clear()
    failed = world.service.run_cycle("main")
    assert not failed.complete and "jobs of schedd schedd@t" in failed.error
    # the previous request is sent again, not a new one from partial data
    (ad,) = world.requests().values()
    assert ad["ReqIdleGlideins"] == first.entries[0].request.min_idle
    assert ad["ReqRemoveExcess"] in ("NO", "WAIT") and ad["GlideinMonitorCycleComplete"] is False
    assert world.wms.invalidated == []
    status = world.service.status()["groups"]["main"]
    assert status["complete"] is False and "schedd down" in status["error"]


def test_a_missing_schedd_fails_the_cycle() -> None:
    world = World(user_pool={"collectors": [POOL], "schedds": ["schedd@t", "gone@t"]})
    plan = world.service.run_cycle("main")
    assert not plan.complete and "gone@t is not in the user pool" in plan.error


def test_ads_of_entries_gone_are_invalidated_and_all_on_stop() -> None:
    world = World()
    world.wms.ads["glidefactory"].append(world.entry("remote1", "REMOTE"))
    world.idle(3)
    world.service.run_cycle("main")
    world.wms.ads["glidefactory"] = [world.entry("local1", "LOCAL")]
    world.service.run_cycle("main")
    assert world.wms.invalidated == [("glideclient", "default_remote1@v1@gf@vofe.main", None)]
    assert world.pool.invalidated == [("glideresource", "remote1@v1@gf@vofe.main", None)]
    world.service.stop()
    own = 'FrontendName =?= "vofe"'
    assert ("glideclient", None, own) in world.wms.invalidated
    assert ("glideclientglobal", None, own) in world.wms.invalidated
    assert ("glideresource", None, own) in world.pool.invalidated


def test_a_change_of_idle_jobs_triggers_the_group() -> None:
    world = World()
    world.pool.ads["Scheduler"][0]["TotalIdleJobs"] = 3
    assert world.service.watch_once() == {}  # no cycle yet: the first one is coming anyway
    world.service.run_cycle("main")
    assert world.service.watch_once() == {}  # what the cycle saw
    world.pool.ads["Scheduler"][0]["TotalIdleJobs"] = 5
    assert world.service.watch_once() == {"main": "idle jobs changed in schedd@t"}
    assert world.service.groups["main"].trigger.is_set()
    assert world.service.watch_once() == {}  # one change, one trigger (even if that cycle fails)
    world.pool.ads["Scheduler"][0]["TotalIdleJobs"] = 0
    assert world.service.watch_once() == {"main": "idle jobs changed in schedd@t"}


def test_the_loop_reacts_within_seconds_not_a_loop_delay() -> None:
    world = World()
    world.service.watch_interval = 0.05
    world.service.start()
    try:
        deadline = time.monotonic() + 5
        while world.service.groups["main"].cycles < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert world.service.groups["main"].cycles == 1
        world.idle(6)
        world.pool.ads["Scheduler"][0]["TotalIdleJobs"] = 6
        t0 = time.monotonic()
        while world.service.groups["main"].cycles < 2 and time.monotonic() - t0 < 5:
            time.sleep(0.02)
        assert world.service.groups["main"].cycles == 2  # loop_delay is 30 s
        assert world.service.groups["main"].last_trigger.startswith("idle jobs changed")
        assert world.requests()["default_local1@v1@gf@vofe.main"]["ReqIdleGlideins"] == 2
    finally:
        world.service.stop()
    loops = ("frontend-main", "frontend-watch")
    assert not any(t.name in loops for t in threading.enumerate() if t.is_alive())


def test_status_and_its_table() -> None:
    world = World()
    world.idle(9)
    world.service.run_cycle("main", "test")
    status = world.service.status()
    entry = status["groups"]["main"]["entries"][0]
    assert entry["entry"] == "local1@v1@gf" and entry["idle"] == 9 and entry["min_idle"] == 3
    assert entry["max_run"] == 11 and entry["removal"] == "NO" and entry["limits"] == []
    assert entry["credentials"] == [{"id": "default", "min_idle": 3, "max_run": 11}]
    text = render_status(status)
    assert "local1@v1@gf" in text and "group main: 1 cycle(s)" in text
    assert text.splitlines()[1].split()[:7] == ["main", "local1@v1@gf", "9", "0", "0/0/0", "3", "11"]


def test_job_constraint_and_resolved_paths(tmp_path: Path) -> None:
    assert job_constraint("True") == "(JobStatus == 1 || JobStatus == 2)"
    cfg = make_config(security={"credentials": [{"name": "pool", "signing_key_dir": "keys"}]},
                      user_pool={"collectors": [POOL], "token_file": "pool.token"})
    resolved = resolved_config(cfg, tmp_path)
    assert resolved.security.credentials[0].signing_key_dir == tmp_path / "keys"
    assert resolved.user_pool.token_file == tmp_path / "pool.token"
    assert FA.TYPE_GLIDECLIENT == "glideclient"


def test_groups_cycle_in_parallel_each_with_its_own_requests() -> None:
    match = {"match_expr": 'glidein["attrs"]["GLIDEIN_Site"] == job["Site"]'}
    world = World(groups={"main": {"match": match}, "second": {"match": match, "limits": {
        "idle_glideins_per_entry": {"max": 1}}}})
    world.idle(9)
    world.service.start()
    deadline = time.monotonic() + 5
    while min(g.cycles for g in world.service.groups.values()) < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    world.service.stop(invalidate=False)
    names = {t.name for t in threading.enumerate()}
    assert "frontend-main" not in names and "frontend-second" not in names
    requests = world.requests()
    assert requests["default_local1@v1@gf@vofe.main"]["ReqIdleGlideins"] == 3
    assert requests["default_local1@v1@gf@vofe.second"]["ReqIdleGlideins"] == 1
    assert requests["default_local1@v1@gf@vofe.second"]["GlideinMonitorLimits"] == "IdleRequestPerEntry"
