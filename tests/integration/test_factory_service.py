"""The factory service on loopback with the local backend, and a test acting as frontend.

A real WMS collector, a real factory (its loop, its HTTP API) and real pilot processes
(a fake glidein that sleeps); the frontend side encrypts its requests with the key from
the factory's glidefactoryglobal ad.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from factory_fixtures import (
    TestFrontend,
    Wms,
    alive,
    factory_config,
    kill_pilots,
    pilot_pgids,
    start_wms,
    wait_until,
)

from gwms.factory import attributes as A
from gwms.factory.config import FactoryConfig
from gwms.factory.service import FactoryService, create_factory_app
from gwms.net import ServiceError, ServiceServer, SyncServiceClient
from gwms.security import scopes


@pytest.fixture()
def wms(tmp_path: Path) -> Iterator[Wms]:
    yield from start_wms(tmp_path / "data")


class Running:
    def __init__(self, wms: Wms, tmp: Path, setup=None, **cfg_overrides) -> None:
        self.wms = wms
        raw = factory_config(wms, tmp, **cfg_overrides)
        self.config = FactoryConfig.model_validate(raw).resolved(tmp, wms.data)
        self.service = FactoryService(
            self.config, token=wms.layout.mint_token("factory", [scopes.ADVERTISE_FACTORY, scopes.READ]),
        )
        self.server = ServiceServer(create_factory_app(self.service, wms.layout.verifier()), service="factory")
        self.service.factory_url = self.server.url
        if setup is not None:
            setup(self.service)  # before the service's loop starts
        self.server.start()
        self.state = self.config.state_dir()

    def api(self, *token_scopes: str) -> SyncServiceClient:
        token = self.wms.layout.mint_token("operator", token_scopes or (scopes.READ,))
        return SyncServiceClient(self.server.url, token=token, retries=0)

    def counts(self) -> dict[str, int]:
        return self.service.store.count_active("local1")

    def stop(self) -> None:
        try:
            self.server.stop()
        finally:
            kill_pilots(self.state)


@pytest.fixture()
def frontend(wms: Wms) -> Iterator[TestFrontend]:
    fe = TestFrontend(wms)
    yield fe
    fe.close()


def watch(run: Running, seconds: float, max_total: int, max_idle: int | None = None) -> dict[str, int]:
    """Poll the store for ``seconds``; never above the limits at any look."""
    deadline = time.monotonic() + seconds
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = run.counts()
        total = sum(counts.values())
        idle = sum(counts.get(s, 0) for s in ("unsubmitted", "pending", "staging"))
        assert total <= max_total, counts
        if max_idle is not None:
            assert idle <= max_idle, counts
        time.sleep(0.05)
    return counts


def test_request_gives_exactly_the_requested_pilots_never_above_a_limit(wms, frontend, tmp_path):
    run = Running(wms, tmp_path, slots=2)
    try:
        frontend.request(idle=3, max_glideins=6)
        wait_until(lambda: run.counts() == {"running": 2, "pending": 3}, what="2 running + 3 idle")
        final = watch(run, 3.0, max_total=5, max_idle=3)
        assert final == {"running": 2, "pending": 3}
        # the running pilots are real processes, writing to the client log tree
        pgids = pilot_pgids(run.state)
        running = [r for r in run.service.store.active("local1") if r.state.value == "running"]
        assert all(alive(pgids[r.pilot_id]) for r in running)
        out = Path(running[0].stdout)
        assert out.parent == Path(run.config.log_dir) / "client" / "user_fe1" / "glidein_v1" / "entry_local1"
        wait_until(lambda: "glidein gf.v1." in out.read_text(), what="the glidein's output")
        assert "client=vofe.main" in out.read_text() and "token=set" in out.read_text()
        # the factory's ads: entry, global and this client's monitoring
        ads = frontend.collector.query(A.TYPE_GLIDEFACTORY)
        assert ads[0][A.NAME] == "local1@v1@gf" and ads[0]["GLIDEIN_Site"] == "LOCAL"
        assert ads[0][A.AUTHENTICATED_IDENTITY] == f"factory@{wms.domain}"
        client = wait_until(lambda: [a for a in frontend.collector.query(A.TYPE_GLIDEFACTORY_CLIENT)
                                     if a.get("GlideinMonitorStatusRunning") == 2], what="client ad")
        assert client[0]["GlideinMonitorStatusIdle"] == 3 and client[0]["GlideinMonitorRequestedIdle"] == 3
        # the operator API
        with run.api() as api:
            entries = api.get("/v1/entries")["entries"]
            assert entries[0]["counts"] == {"running": 2, "pending": 3}
            assert len(api.get("/v1/pilots")["pilots"]) == 5
    finally:
        run.stop()
    # a clean stop invalidates the factory's ads
    assert frontend.collector.query(A.TYPE_GLIDEFACTORY) == []
    assert frontend.collector.query(A.TYPE_GLIDEFACTORY_GLOBAL) == []


def test_spoofed_and_tampered_requests_are_refused_and_logged(wms, frontend, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="gwms.factory")
    run = Running(wms, tmp_path, slots=0)
    mallory = TestFrontend(wms, user="mallory")
    try:
        # 1. forged identity: mallory's token, claiming to be the frontend inside the ciphertext
        mallory.request(idle=3, max_glideins=3, identity=frontend.identity, client="vofe.forged")
        # 2. an honest mallory claiming the frontend's security name
        mallory.request(idle=3, max_glideins=3, client="vofe.claim")
        # 3. unknown security class
        frontend.request(idle=3, max_glideins=3, security_class="admin", client="vofe.cls")

        # 4. a tampered ciphertext
        def tamper(ad):
            v = ad["GlideinEncParamGLIDEIN_Token"]
            ad["GlideinEncParamGLIDEIN_Token"] = v[:-4] + ("AAAA" if not v.endswith("AAAA") else "BBBB")

        frontend.request(idle=3, max_glideins=3, client="vofe.tamper", mutate=tamper)
        reasons = wait_until(lambda: len(run.service.refusals()) >= 4 and run.service.refusals(), what="refusals")
        by_client = {r["name"].rsplit("@", 1)[1]: r["reason"] for r in reasons}
        assert "is not the authenticated identity" in by_client["vofe.forged"]
        assert "is not the one configured for frontend 'vofe'" in by_client["vofe.claim"]
        assert "unknown security class 'admin'" in by_client["vofe.cls"]
        assert "does not decrypt" in by_client["vofe.tamper"]
        watch(run, 1.5, max_total=0)
        logged = "\n".join(r.getMessage() for r in caplog.records)
        for reason in by_client.values():
            assert reason in logged
        with run.api() as api:
            assert len(api.get("/v1/status")["refusals"]) >= 4
    finally:
        mallory.close()
        run.stop()


def test_excess_pilots_are_removed_per_the_removal_level(wms, frontend, tmp_path):
    run = Running(wms, tmp_path, slots=2)
    try:
        frontend.request(idle=4, max_glideins=10)
        wait_until(lambda: run.counts() == {"running": 2, "pending": 4}, what="2 running + 4 idle")
        # fewer wanted, but NO removal: nothing goes
        frontend.request(idle=1, max_glideins=10, remove_excess="NO")
        watch(run, 1.5, max_total=6)
        assert run.counts() == {"running": 2, "pending": 4}
        # IDLE: idle pilots above request + margin go; running ones stay
        frontend.request(idle=1, max_glideins=10, remove_excess="IDLE", remove_margin=1)
        wait_until(lambda: run.counts() == {"running": 2, "pending": 2}, what="idle down to 2")
        watch(run, 1.0, max_total=6)
        running = {r.pilot_id for r in run.service.store.active("local1") if r.state.value == "running"}
        # ALL: running ones too, down to max + margin
        frontend.request(idle=0, max_glideins=0, remove_excess="ALL")
        wait_until(lambda: run.counts() == {}, timeout=20, what="all removed")
        pgids = pilot_pgids(run.state)
        wait_until(lambda: not any(alive(pgids[p]) for p in running), what="pilot processes gone")
        removed = run.service.store.query(active_only=False, states=None)
        assert all(r.state.value == "removed" for r in removed)
    finally:
        run.stop()


def test_operator_pause_resume_and_downtime(wms, frontend, tmp_path):
    run = Running(wms, tmp_path, slots=0)
    try:
        with run.api(scopes.ADMINISTRATOR) as api:
            api.post("/v1/entries/local1/pause", {"reason": "site maintenance"})
            frontend.request(idle=2, max_glideins=2)
            watch(run, 1.5, max_total=0)
            ad = wait_until(lambda: [a for a in frontend.collector.query(A.TYPE_GLIDEFACTORY)
                                     if a.get(A.ENTRY_PAUSED)], what="paused ad")[0]
            assert ad[A.ENTRY_PAUSED_REASON] == "paused by operator: site maintenance"
            api.post("/v1/entries/local1/resume", {})
            wait_until(lambda: run.counts() == {"pending": 2}, what="pilots after resume")
            answer = api.post("/v1/entries/local1/downtime", {"start": time.time() - 1, "end": time.time() + 60})
            assert answer["in_downtime"] is True
            frontend.request(idle=4, max_glideins=4)
            watch(run, 1.5, max_total=2)
            assert frontend.collector.query(A.TYPE_GLIDEFACTORY)[0][A.IN_DOWNTIME] is True
            api.post("/v1/entries/local1/downtime", {"clear": True})
            wait_until(lambda: run.counts() == {"pending": 4}, what="pilots after the downtime")
        with run.api() as api, pytest.raises(ServiceError, match="ADMINISTRATOR"):
            api.post("/v1/entries/local1/pause", {"reason": "x"})  # READ cannot pause
    finally:
        run.stop()


def test_a_crashing_entry_is_restarted_and_does_not_stop_the_others(wms, frontend, tmp_path):
    second = {"name": "local2", "backend": "local", "backend_settings": {"slots": 0}, "pilot_command": ["/bin/true"]}
    raw_entries = factory_config(wms, tmp_path, slots=0)["entries"] + [second]
    made = []

    def boom(requests):
        raise RuntimeError("the site's CLI exploded")

    def setup(service: FactoryService) -> None:
        real_make = service._make_worker

        def make_worker(name):
            worker = real_make(name)
            if name == "local2":
                made.append(worker)
                worker.cycle = boom
            return worker

        service._make_worker = make_worker

    run = Running(wms, tmp_path, setup=setup, slots=0, entries=raw_entries, restart_attempts=1,
                  restart_interval=600)
    try:
        frontend.request(idle=2, max_glideins=2)
        frontend.request(entry="local2@v1@gf", idle=2, max_glideins=2, client="vofe.two")
        wait_until(lambda: run.counts() == {"pending": 2}, what="local1 works")
        ad = wait_until(lambda: [a for a in frontend.collector.query(A.TYPE_GLIDEFACTORY)
                                 if a[A.NAME] == "local2@v1@gf" and "crashed 2" in a.get(A.ENTRY_PAUSED_REASON, "")],
                        what="local2 down")[0]
        assert "exploded" in ad[A.ENTRY_PAUSED_REASON]
        assert len(made) == 2  # made anew once after the first crash, then left down
        time.sleep(1.5)
        assert len(made) == 2
        assert run.service.store.count_active("local2") == {}
        frontend.request(idle=3, max_glideins=3)  # local1 still serves
        wait_until(lambda: run.counts() == {"pending": 3}, what="local1 still works")
    finally:
        run.stop()
