"""A pending match to the slot of an agent that stops taking jobs is dropped at once.

Real collector and schedd on loopback (match timeout 60 s, the default) and a real startd
agent (a subprocess); the test plays the negotiator (``POST /v1/matches``). To keep a
match pending while the agent is alive and polling, it asks for more CPUs than the
agent's partitionable slot has free (such a match stays pending: ``free`` in the poll).
When the agent retires (lifetime) or drains (SIGTERM), it says goodbye to the schedd and
the match goes away in a few seconds, not after the match timeout; matches made later
from the agent's stale ad are refused. Running claims are not touched.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_until

from gwms.net import ServiceServer
from gwms.pool.collector.client import CollectorClient
from gwms.pool.collector.service import create_collector_app
from gwms.pool.collector.store import AdStore
from gwms.pool.schedd.client import ScheddClient
from gwms.pool.schedd.queue import JobQueue
from gwms.pool.schedd.sandbox import Spool
from gwms.pool.schedd.service import ScheddLimits, create_schedd_app
from gwms.security import scopes
from gwms.security.layout import SecurityLayout, ensure_pool_keys

pytestmark = pytest.mark.integration

MATCH_TIMEOUT = 60.0  # the default: a dropped match must not wait for it
PROMPT = 10.0  # "a few seconds"
TOO_BIG = {"Cpus": 100, "Memory": 100, "Disk": 1000, "Gpus": 0}
SMALL = {"Cpus": 1, "Memory": 100, "Disk": 1000, "Gpus": 0}


@dataclass
class Pool:
    data: Path
    layout: SecurityLayout
    collector_url: str
    schedd_url: str
    agents: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def schedd(self) -> ScheddClient:
        return ScheddClient(self.schedd_url, token=self.layout.mint_token("alice", (scopes.READ, scopes.WRITE)))

    def negotiator(self) -> ScheddClient:
        return ScheddClient(self.schedd_url, token=self.layout.mint_token("negotiator", (scopes.NEGOTIATOR, scopes.READ)))

    def slot_ad(self, name: str) -> dict[str, Any]:
        with CollectorClient(self.collector_url, token=self.layout.mint_token("reader", (scopes.READ,))) as c:
            ads = [ad for ad in c.query("Machine") if ad.get("Name") == name]
        return ads[0] if ads else {}

    def start_agent(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        token = self.data / f"{name}.token"
        token.write_text(self.layout.mint_token(f"glidein-{name}", (scopes.READ, scopes.ADVERTISE_STARTD)))
        work = self.data / "agents" / name
        proc = subprocess.Popen(
            [sys.executable, "-m", "gwms.glidein.startd", "run", "--collector", self.collector_url,
             "--token", str(token), "--name", f"{name}@test", "--workdir", str(work / "execute"),
             "--log-dir", str(work / "log"), "--poll-wait", "2", "--monitor-interval", "0.2",
             "--schedd-refresh", "1", "--ad-lifetime", "30", "--kill-grace", "1", "--partitionable",
             "--cpus", "2", "--memory", "2000", "--disk", "2000000", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(work.parent / f"{name}.stderr", "ab"),  # noqa: SIM115
        )
        self.agents.append(proc)
        return proc


@pytest.fixture()
def pool(tmp_path: Path) -> Iterator[Pool]:
    data = tmp_path / "pool"
    (data / "agents").mkdir(parents=True)
    layout = ensure_pool_keys(data)
    verifier = layout.verifier()
    collector = ServiceServer(create_collector_app(AdStore(), verifier, name="test-pool"), service="collector")
    collector.start()
    queue = JobQueue.open(data / "schedd" / "queue.db", synchronous="NORMAL")
    spool = Spool(data / "schedd" / "spool")
    advertiser = CollectorClient(collector.url, token=layout.mint_token("schedd", [scopes.ADVERTISE_SCHEDD]))
    urls: dict[str, str] = {}

    def advertise(ad: dict[str, Any]) -> None:
        ad["ScheddIpAddr"] = urls["schedd"]
        advertiser.advertise(ad)

    schedd = ServiceServer(
        create_schedd_app(queue, spool, verifier, name="schedd@test", limits=ScheddLimits(), advertiser=advertise,
                          advertise_interval=0.5, match_timeout=MATCH_TIMEOUT, claim_timeout=30.0),
        service="schedd",
    )
    urls["schedd"] = schedd.url
    schedd.start()
    p = Pool(data, layout, collector.url, schedd.url)
    try:
        yield p
    finally:
        for proc in p.agents:
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT)
        for proc in p.agents:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        schedd.stop()
        collector.stop()
        advertiser.close()
        queue.close()


def submit(pool: Pool, tmp: Path, seconds: int) -> int:
    with pool.schedd() as s:
        return s.submit_text(textwrap.dedent(f"""
            executable = /bin/sleep
            arguments = {seconds}
            transfer_executable = false
            queue
        """), base_dir=tmp).cluster_id


def offer(pool: Pool, cluster: int, slot_ad: dict[str, Any], request: dict[str, int]) -> dict[str, Any]:
    with pool.negotiator() as n:
        return n.http.post("/v1/matches", {"matches": [
            {"job": f"{cluster}.0", "slot": slot_ad["Name"], "slot_ad": slot_ad, "request": request}]})


def pending(pool: Pool) -> int:
    with pool.negotiator() as n:
        return int(n.http.request("GET", "/v1/claims")["pending"])


def listed_idle(pool: Pool) -> set[str]:
    """The jobs the negotiator would be offered now (idle, neither matched nor claimed)."""
    with pool.negotiator() as n:
        listing = n.http.post("/v1/negotiation/jobs", {"significant": []})
    return {job for group in listing["groups"] for job in group["jobs"]}


def test_a_pending_match_to_a_draining_agent_goes_back_at_once(pool: Pool, tmp_path: Path) -> None:
    agent = pool.start_agent("drainer")
    slot_ad = wait_until(lambda: pool.slot_ad("slot1@drainer@test"))
    cluster = submit(pool, tmp_path, 1)
    assert offer(pool, cluster, slot_ad, TOO_BIG) == {"accepted": 1, "refused": []}
    time.sleep(3.0)  # the agent polled (at least once) and left the match pending: it does not fit
    assert pending(pool) == 1 and f"{cluster}.0" not in listed_idle(pool)
    began = time.monotonic()
    agent.send_signal(signal.SIGTERM)  # drain: idle, so it says goodbye and exits
    wait_until(lambda: pending(pool) == 0, timeout=PROMPT)
    took = time.monotonic() - began
    assert took < PROMPT < MATCH_TIMEOUT
    assert f"{cluster}.0" in listed_idle(pool)
    assert agent.wait(15) == 0
    with pool.schedd() as s:
        assert s.job(cluster, 0)["JobStatus"] == 1
    log = (pool.data / "agents" / "drainer" / "log" / "StartdLog").read_text()
    assert "dropped 1 pending match" in log


def test_a_retiring_agent_drops_its_pending_matches_and_keeps_its_running_job(pool: Pool, tmp_path: Path) -> None:
    started = time.monotonic()
    pool.start_agent("retiree", "--retire-time", "12", "--retire-spread", "0")
    slot_ad = wait_until(lambda: pool.slot_ad("slot1@retiree@test"))
    running = submit(pool, tmp_path, 60)
    waiting = submit(pool, tmp_path, 1)
    assert offer(pool, running, slot_ad, SMALL)["accepted"] == 1
    with pool.schedd() as s:
        wait_until(lambda: s.job(running, 0)["JobStatus"] == 2, timeout=15)
    assert offer(pool, waiting, slot_ad, TOO_BIG)["accepted"] == 1
    assert time.monotonic() - started < 11.0, "the set-up was too slow to see the match pending before retiring"
    assert pending(pool) == 1
    wait_until(lambda: pending(pool) == 0, timeout=12.0 + PROMPT)  # retires at 12 s: the match goes then
    gone_after = time.monotonic() - started
    assert gone_after < 12.0 + PROMPT < MATCH_TIMEOUT
    assert f"{waiting}.0" in listed_idle(pool)
    # the negotiator may still hold the old ad: a new match to the retired agent is refused
    answer = offer(pool, waiting, slot_ad, SMALL)
    assert answer["accepted"] == 0 and "retiring" in answer["refused"][0]["reason"]
    with pool.schedd() as s:
        job = s.job(running, 0)
        assert job["JobStatus"] == 2 and job["RemoteHost"] == "slot1@retiree@test"
        assert s.job(waiting, 0)["JobStatus"] == 1
