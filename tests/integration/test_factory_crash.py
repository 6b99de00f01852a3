"""`gwms factory run` killed with -9 and restarted: pilots re-attached, limits kept;
and the operator commands against the running factory."""

from __future__ import annotations

import json
import subprocess
import sys
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
    write_config,
)
from service_procs import ServiceProcess

from gwms.factory import attributes as A
from gwms.net import SyncServiceClient
from gwms.security import scopes


@pytest.fixture()
def wms(tmp_path: Path) -> Iterator[Wms]:
    yield from start_wms(tmp_path / "data")


def pilots(url: str, wms: Wms, all_states: bool = False) -> list[dict]:
    with SyncServiceClient(url, token=wms.layout.mint_token("op", [scopes.READ]), retries=0, timeout=10) as api:
        return api.get("/v1/pilots", params={"all": all_states})["pilots"]


def by_state(items: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in items:
        out[p["state"]] = out.get(p["state"], 0) + 1
    return out


def gwms(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gwms", *args], capture_output=True, text=True, timeout=60, env=env,
                          check=False)


def test_kill_9_and_restart_reattaches_and_keeps_limits(wms, tmp_path, cli_env):
    data = wms.data
    cfg = write_config(factory_config(wms, tmp_path, slots=2), tmp_path / "factory.yaml")
    args = ["factory", "run", "--config", str(cfg), "--data", str(data)]
    frontend = TestFrontend(wms)
    state = data / "factory"
    proc = ServiceProcess(args, tmp_path / "factory1.log")
    try:
        frontend.request(idle=2, max_glideins=4)
        wait_until(lambda: by_state(pilots(proc.url, wms)) == {"running": 2, "pending": 2}, what="2 + 2 pilots")
        before = {p["pilot_id"]: p for p in pilots(proc.url, wms)}
        running = sorted(pid for pid, p in before.items() if p["state"] == "running")
        pgids = pilot_pgids(state)
        assert all(alive(pgids[p]) for p in running)

        proc.kill()  # kill -9: no clean-up at all
        time.sleep(1.0)
        assert all(alive(pgids[p]) for p in running), "pilots must outlive the factory"

        proc = ServiceProcess(args, tmp_path / "factory2.log")
        deadline = time.monotonic() + 5.0
        seen = 0
        while time.monotonic() < deadline:
            now = pilots(proc.url, wms, all_states=True)
            active = [p for p in now if p["state"] not in ("completed", "failed", "removed", "lost")]
            assert len(active) <= 4, by_state(now)
            assert {p["pilot_id"] for p in now} == set(before), "no pilot may be submitted twice or lost"
            seen += 1
            time.sleep(0.1)
        assert seen > 10
        after = {p["pilot_id"]: p for p in pilots(proc.url, wms)}
        assert sorted(pid for pid, p in after.items() if p["state"] == "running") == running
        assert pilot_pgids(state) == pgids and all(alive(pgids[p]) for p in running)

        # it still acts: more wanted -> more submitted, within ReqMaxGlideins
        frontend.request(idle=3, max_glideins=5)
        wait_until(lambda: by_state(pilots(proc.url, wms)) == {"running": 2, "pending": 3}, what="one more")

        # the operator commands, finding the factory through DIR/factory/endpoint.json
        env = dict(cli_env)
        q = gwms("factory", "q", "--data", str(data), env=env)
        assert q.returncode == 0, q.stderr
        assert "5 pilot(s): 3 pending, 2 running" in q.stdout and "vofe.main" in q.stdout
        qj = gwms("factory", "q", "--data", str(data), "-json", "--state", "running", env=env)
        assert sorted(p["pilot_id"] for p in json.loads(qj.stdout)) == running
        ent = gwms("factory", "entries", "--data", str(data), env=env)
        assert ent.returncode == 0 and "local1" in ent.stdout and "3/5" in ent.stdout
        pause = gwms("factory", "pause", "local1", "--reason", "disk full", "--data", str(data), env=env)
        assert pause.returncode == 0 and "paused" in pause.stdout
        wait_until(lambda: [a for a in frontend.collector.query(A.TYPE_GLIDEFACTORY)
                            if a.get(A.ENTRY_PAUSED_REASON) == "paused by operator: disk full"], what="paused ad")
        dt = gwms("factory", "downtime", "local1", "--end", "+1h", "--data", str(data), env=env)
        assert dt.returncode == 0 and "in downtime now" in dt.stdout, dt.stderr
        bad = gwms("factory", "pause", "nope", "--data", str(data), env=env)
        assert bad.returncode != 0 and "no entry 'nope'" in bad.stderr
        resume = gwms("factory", "resume", "local1", "--data", str(data), env=env)
        assert resume.returncode == 0
    finally:
        proc.stop()
        kill_pilots(state)
        frontend.close()
    # SIGTERM: a clean stop that invalidates the factory's ads
    with wms.client("reader") as reader:
        assert reader.query(A.TYPE_GLIDEFACTORY) == [] and reader.query(A.TYPE_GLIDEFACTORY_GLOBAL) == []
    assert "listening on" not in (tmp_path / "factory2.log").read_text()
    # the pilots that ran wrote into the client log tree (job.<cluster>.<proc>.out/.err)
    logs = data / "factory" / "logs" / "client" / "user_fe1" / "glidein_v1" / "entry_local1"
    for pilot_id in running:
        cluster, proc_no = pilot_id.split(".")[-2:]
        assert f"glidein {pilot_id}" in (logs / f"job.{cluster}.{proc_no}.out").read_text()
        assert "starting" in (logs / f"job.{cluster}.{proc_no}.err").read_text()
