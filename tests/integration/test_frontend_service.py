"""The frontend service on loopback: real collectors (user pool and WMS), a real schedd,
a fake factory with a real RSA key; the requests are read back with the factory's reader."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from frontend_fixtures import (
    FakeFactory,
    Loop,
    frontend_config,
    start_loop,
    wait_until,
    write_config,
)
from service_procs import ServiceProcess

from gwms.factory import attributes as FA
from gwms.factory.requests import sealed_aad
from gwms.frontend.config import FrontendConfig
from gwms.frontend.service import FrontendService, create_frontend_app
from gwms.net import ServiceServer, SyncServiceClient
from gwms.security import scopes
from gwms.security.hybrid import Decryptor, open_session

pytestmark = pytest.mark.integration


@pytest.fixture()
def loop(tmp_path: Path) -> Iterator[Loop]:
    yield from start_loop(tmp_path / "data")


@pytest.fixture()
def factory(loop: Loop) -> Iterator[FakeFactory]:
    fake = FakeFactory(loop)
    fake.advertise({"local1": "LOCAL", "remote1": "REMOTE"})
    yield fake
    fake.close()


def make_service(loop: Loop, **group: object) -> FrontendService:
    cfg = FrontendConfig.model_validate(frontend_config(loop, **group))
    return FrontendService(
        cfg,
        wms_token=loop.token("vofrontend", scopes.ADVERTISE_FRONTEND, scopes.READ),
        pool_token=loop.token("vofe", scopes.READ, scopes.ADVERTISE_FRONTEND),
        watch_interval=0.2, min_gap=0.2,
    )


def test_one_cycle_requests_what_the_math_says_encrypted_for_the_factory(loop: Loop, factory: FakeFactory) -> None:
    # an entry advertised by another identity, for the same site: ignored
    mallory = FakeFactory(loop, user="mallory", name="evil")
    mallory.advertise({"evil1": "LOCAL"})
    cluster = loop.submit(10, "LOCAL")
    me = loop.identity("vofrontend")
    service = make_service(loop, limits={"glideins_removal": {"type": "WAIT", "wait": 1}})
    try:
        plan = service.run_cycle("main")
        assert plan.complete, plan.error
        assert [e.name for e in plan.entries] == ["local1@v1@gf", "remote1@v1@gf"]

        with loop.wms() as wms:
            ads = {a[FA.NAME]: a for a in wms.query(FA.TYPE_GLIDECLIENT)}
            assert sorted(ads) == ["pool_local1@v1@gf@vofe.main", "pool_remote1@v1@gf@vofe.main"]
            ad = ads["pool_local1@v1@gf@vofe.main"]
            assert ad[FA.AUTHENTICATED_IDENTITY] == me
            # the identity decrypts, with the factory's key, to the frontend's
            opened = open_session(Decryptor(factory.key), ad[FA.REQ_ENC_KEY_CODE])
            assert opened.open(ad[FA.REQ_ENC_IDENTITY], sealed_aad(ad[FA.NAME], FA.REQ_ENC_IDENTITY)).decode() == me
            (glob,) = wms.query("glideclientglobal")
            assert glob[FA.NAME] == "v1@gf@vofe.main" and glob[FA.AUTHENTICATED_IDENTITY] == me

        # the factory's reader accepts the requests: 10 fresh idle jobs -> int(10 / 3) = 3,
        # max run int(10 * 1.15 + 1) = 12
        valid, refused = factory.requests(me, ["local1", "remote1"])
        assert refused == []
        req = valid["local1"][0]
        assert (req.req_idle, req.req_max, req.remove_level.value) == (3, 12, "NO")
        assert (req.frontend, req.security_class, req.client_name, req.credential_id) == (
            "vofe", "frontend", "vofe.main", "pool")
        assert (valid["remote1"][0].req_idle, valid["remote1"][0].req_max) == (0, 0)
        assert req.secrets["GLIDEIN_Collector"] == loop.pool_url
        # the glideins' token verifies in the user pool, with the glidein scopes
        claims = loop.layout.verifier().verify(req.secrets["GLIDEIN_Token"], [scopes.READ, scopes.ADVERTISE_STARTD])
        assert claims.subject == loop.identity("glidein-local1.v1.gf")

        # what the frontend saw, in the user pool
        with loop.pool() as pool:
            res = {a[FA.NAME]: a for a in pool.query("glideresource")}
        local = res["local1@v1@gf@vofe.main"]
        assert local["GlideClientMonitorJobsIdle"] == 10 and local["GlideClientMonitorGlideinsRequestIdle"] == 3
        assert local["GLIDEIN_Site"] == "LOCAL" and "evil1@v1@evil@vofe.main" not in res

        # no more jobs: the configured removal after more than `wait` (1) cycles without idle jobs
        loop.remove(cluster)
        levels = []
        for _ in range(2):
            service.run_cycle("main")
            valid, _ = factory.requests(me, ["local1", "remote1"])
            levels.append((valid["local1"][0].remove_level.value, valid["local1"][0].req_idle))
        assert levels == [("NO", 0), ("WAIT", 0)]
    finally:
        service.stop()
        mallory.close()
    # a clean stop invalidates every ad of the frontend
    with loop.wms() as wms, loop.pool() as pool:
        assert wms.query(FA.TYPE_GLIDECLIENT) == [] and wms.query("glideclientglobal") == []
        assert pool.query("glideresource") == []


def test_the_running_service_reacts_to_new_jobs_within_seconds(loop: Loop, factory: FakeFactory) -> None:
    me = loop.identity("vofrontend")
    service = make_service(loop)
    app = create_frontend_app(service, loop.layout.verifier())
    server = ServiceServer(app, service="frontend")
    server.start()
    try:
        # the first cycle: nothing to ask for
        wait_until(lambda: service.groups["main"].cycles >= 1, what="the first cycle")
        valid, _ = factory.requests(me, ["local1", "remote1"])
        assert valid["local1"][0].req_idle == 0
        # loop_delay is 60 s: the schedd's idle count in the collector starts the next cycle
        loop.submit(6, "LOCAL,REMOTE")
        valid = wait_until(lambda: (v := factory.requests(me, ["local1", "remote1"])[0])
                           and v["local1"][0].req_idle > 0 and v, timeout=10, what="a request for the new jobs")
        # 6 jobs matching both entries: 3 each -> 1 glidein each
        assert valid["local1"][0].req_idle == 1 and valid["remote1"][0].req_idle == 1
        assert service.groups["main"].last_trigger.startswith("idle jobs changed")
        with SyncServiceClient(server.url, token=loop.token("someone", scopes.READ)) as http:
            status = http.get("/v1/status")
        entries = {e["entry"]: e for e in status["groups"]["main"]["entries"]}
        assert entries["local1@v1@gf"]["idle"] == 6 and entries["local1@v1@gf"]["min_idle"] == 1
        assert entries["local1@v1@gf"]["credentials"] == [{"id": "pool", "min_idle": 1, "max_run": 4}]
    finally:
        server.stop()
    with loop.wms() as wms:
        assert wms.query(FA.TYPE_GLIDECLIENT) == []


def test_gwms_frontend_run_and_status(loop: Loop, factory: FakeFactory, tmp_path: Path) -> None:
    cfg = write_config(frontend_config(loop), tmp_path / "frontend.yaml")
    loop.submit(3, "REMOTE")
    proc = ServiceProcess(["frontend", "run", "--config", str(cfg), "--data", str(loop.data)],
                          tmp_path / "frontend.log")
    try:
        me = loop.identity("vofrontend")
        valid = wait_until(lambda: (v := factory.requests(me, ["local1", "remote1"])[0]) and "remote1" in v and v,
                           timeout=15, what="the frontend's requests")
        assert valid["remote1"][0].req_idle == 1 and valid["local1"][0].req_idle == 0
        out = subprocess.run([sys.executable, "-m", "gwms", "frontend", "status", "--data", str(loop.data), "-json"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        status = json.loads(out)
        assert status["url"] == proc.url
        assert {e["entry"]: e["idle"] for e in status["groups"]["main"]["entries"]} == {
            "local1@v1@gf": 0, "remote1@v1@gf": 3}
        table = subprocess.run([sys.executable, "-m", "gwms", "frontend", "status", "--data", str(loop.data)],
                               capture_output=True, text=True, timeout=60, check=True).stdout
        assert "remote1@v1@gf" in table and "REQ_IDLE" in table
    finally:
        proc.stop()
    assert proc.proc.returncode == 0, (tmp_path / "frontend.log").read_text()[-2000:]
    with loop.wms() as wms:
        assert wms.query(FA.TYPE_GLIDECLIENT) == []


def test_q_analyze_shows_the_frontend_view(loop: Loop, factory: FakeFactory, tmp_path: Path) -> None:
    """`gwms q -analyze` replays the group's matching from its glideresource ads."""
    from gwms.pool.clientfile import PoolClientInfo, write_client_file

    local = loop.submit(4, "LOCAL")
    nowhere = loop.submit(1, "NOWHERE")
    service = make_service(loop)
    try:
        assert service.run_cycle("main").complete
        client_dir = tmp_path / "client"
        write_client_file(client_dir, PoolClientInfo(collector=loop.pool_url, schedd=loop.schedd_url,
                                                     token=loop.token("alice", scopes.READ, scopes.WRITE)))

        def analyze(job_id: str, *extra: str) -> str:
            done = subprocess.run([sys.executable, "-m", "gwms", "q", "-analyze", job_id, "--pool", str(client_dir),
                                   *extra], capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            return done.stdout

        text = analyze(f"{local}.0")
        assert "The frontend's view of job" in text and "matches 1 of 2 entries" in text
        assert "MATCH    vofe.main -> local1@v1@gf (site LOCAL): requested idle 1" in text
        assert "no match vofe.main -> remote1@v1@gf" in text
        assert "No entry can run this job" in analyze(f"{nowhere}.0")
        (as_json,) = json.loads(analyze(f"{local}.0", "-json"))
        assert [(v["entry"], v["matches"]) for v in as_json["frontend"]] == [
            ("local1@v1@gf", True), ("remote1@v1@gf", False)]
    finally:
        service.stop()
