"""Real collector, schedd and negotiator on loopback with real startd agents (subprocesses).

Three agents with different Cpus, Memory and GLIDEIN_Site; jobs whose requirements only
some slots meet end on allowed slots with the right outputs and exit codes; a job asking
for more memory than any slot stays idle and the analysis says why; ``kill -9`` of an
agent mid-job puts the job back to idle and it completes elsewhere; jobs over their
memory or walltime are held with the reason.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gwms.net import ServiceServer
from gwms.pool.collector.client import CollectorClient
from gwms.pool.collector.service import create_collector_app
from gwms.pool.collector.store import AdStore
from gwms.pool.negotiator.analyze import analyze_job, render_analysis
from gwms.pool.negotiator.service import Negotiator, NegotiatorConfig, create_negotiator_app
from gwms.pool.schedd.client import ScheddClient
from gwms.pool.schedd.queue import JobQueue
from gwms.pool.schedd.sandbox import Spool
from gwms.pool.schedd.service import ScheddLimits, create_schedd_app
from gwms.security import scopes
from gwms.security.layout import SecurityLayout, ensure_pool_keys

pytestmark = pytest.mark.integration

CLAIM_TIMEOUT = 3.0
MATCH_TIMEOUT = 3.0


@dataclass
class Pool:
    data: Path
    layout: SecurityLayout
    collector_url: str
    schedd_url: str
    agents: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def schedd(self, user: str = "alice") -> ScheddClient:
        return ScheddClient(self.schedd_url, token=self.layout.mint_token(user, (scopes.READ, scopes.WRITE)))

    def collector(self) -> CollectorClient:
        return CollectorClient(self.collector_url, token=self.layout.mint_token("reader", (scopes.READ,)))

    def start_agent(self, name: str, *args: str, gwms_cli: bool = False) -> subprocess.Popen[bytes]:
        """A startd agent as its own process: ``python -m gwms.glidein.startd run`` (the
        zipapp's command line) or, with ``gwms_cli``, ``gwms startd run``."""
        token = self.data / f"{name}.token"
        token.write_text(self.layout.mint_token(f"glidein-{name}", (scopes.READ, scopes.ADVERTISE_STARTD)))
        work = self.data / "agents" / name
        proc = subprocess.Popen(
            [sys.executable, "-m", *(("gwms", "startd") if gwms_cli else ("gwms.glidein.startd",)), "run",
             "--collector", self.collector_url,
             "--token", str(token), "--name", f"{name}@test", "--workdir", str(work / "execute"),
             "--log-dir", str(work / "log"), "--poll-wait", "1", "--monitor-interval", "0.2",
             "--schedd-refresh", "1", "--ad-lifetime", "6", "--kill-grace", "1", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(work.parent / f"{name}.stderr", "ab"),  # noqa: SIM115
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
                          advertise_interval=0.5, match_timeout=MATCH_TIMEOUT, claim_timeout=CLAIM_TIMEOUT),
        service="schedd",
    )
    urls["schedd"] = schedd.url
    schedd.start()
    config = NegotiatorConfig(collector_url=collector.url, name="negotiator@test", interval=0.5, half_life=3600.0,
                              state_file=data / "negotiator" / "accountant.json", watch_interval=0.2)
    negotiator = Negotiator(config, token=layout.mint_token("negotiator", [scopes.NEGOTIATOR, scopes.READ]))
    neg_server = ServiceServer(create_negotiator_app(negotiator, verifier), service="negotiator")
    negotiator.url = neg_server.url
    neg_server.start()
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
        neg_server.stop()
        schedd.stop()
        collector.stop()
        advertiser.close()
        queue.close()


def wait_until(what: Callable[[], Any], timeout: float = 30.0, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


def job_ad(schedd: ScheddClient, cluster: int, proc: int) -> dict[str, Any]:
    return schedd.job(cluster, proc)


def submit(pool: Pool, tmp: Path, text: str) -> int:
    with pool.schedd() as s:
        return s.submit_text(textwrap.dedent(text), base_dir=tmp).cluster_id


def slots_of(pool: Pool) -> list[dict[str, Any]]:
    with pool.collector() as c:
        return c.query("Machine")


def test_jobs_land_on_allowed_slots(pool: Pool, tmp_path: Path) -> None:
    pool.start_agent("siteA", "--slots", "2", "--cpus", "2", "--memory", "2000", "--disk", "2000000",
                     "--attr", "GLIDEIN_Site=SiteA")
    pool.start_agent("siteB", "--slots", "1", "--cpus", "4", "--memory", "8000", "--disk", "2000000",
                     "--attr", "GLIDEIN_Site=SiteB", gwms_cli=True)
    pool.start_agent("siteC", "--partitionable", "--cpus", "4", "--memory", "4000", "--disk", "4000000",
                     "--attr", "GLIDEIN_Site=SiteC")
    wait_until(lambda: len(slots_of(pool)) == 4)
    (tmp_path / "job.sh").write_text("#!/bin/sh\necho \"$GLIDEIN_Site $1 $_CONDOR_SLOT\"\necho result-$1 > result.txt\nexit $1\n")
    os.chmod(tmp_path / "job.sh", 0o755)
    on_a = submit(pool, tmp_path, """
        executable = job.sh
        arguments = $(Process)
        output = a.$(Process).out
        requirements = GLIDEIN_Site == "SiteA"
        queue 4
    """)
    big_memory = submit(pool, tmp_path, """
        executable = job.sh
        arguments = 7
        output = b.out
        request_memory = 6000
        queue 2
    """)
    carved = submit(pool, tmp_path, """
        executable = job.sh
        arguments = 3
        output = c.$(Process).out
        request_cpus = 2
        request_memory = 1000
        requirements = GLIDEIN_Site == "SiteC"
        queue 2
    """)
    too_big = submit(pool, tmp_path, """
        executable = job.sh
        request_memory = 100000
        queue
    """)
    with pool.schedd() as s:
        def done() -> bool:
            hist = s.history(constraint=f"ClusterId != {too_big}")
            return len(hist) == 8
        wait_until(done, timeout=60)
        history = {(j["ClusterId"], j["ProcId"]): j for j in s.history()}
        for proc in range(4):
            j = history[(on_a, proc)]
            assert j["JobStatus"] == 4 and j["ExitCode"] == proc, j
            assert j["LastRemoteHost"].endswith("@siteA@test")
            assert f"a.{proc}.out" in s.output_files(on_a, proc)
        for proc in range(2):
            j = history[(big_memory, proc)]
            assert j["ExitCode"] == 7 and j["LastRemoteHost"] == "slot1@siteB@test", j
            j = history[(carved, proc)]
            assert j["ExitCode"] == 3 and j["LastRemoteHost"].endswith("@siteC@test"), j
        out = s.http.request("GET", f"/v1/jobs/{on_a}.2/output/a.2.out", raw=True)
        assert out.decode().startswith("SiteA 2 slot")
        result = s.http.request("GET", f"/v1/jobs/{carved}.0/output/result.txt", raw=True)
        assert result == b"result-3\n"
        idle = s.job(too_big, 0)
        assert idle["JobStatus"] == 1
        analysis = analyze_job(idle, slots_of(pool))
        assert analysis.slots == 4 and analysis.match_requirements == 0
        assert "Memory" in render_analysis(analysis)
    starter_logs = list((pool.data / "agents" / "siteC" / "log").glob("StarterLog.slot1_*"))
    assert starter_logs, "jobs on the partitionable slot ran in dynamic slots"


def test_kill_9_of_an_agent_puts_its_job_back_and_it_completes_elsewhere(pool: Pool, tmp_path: Path) -> None:
    doomed = pool.start_agent("doomed", "--slots", "1", "--cpus", "1", "--memory", "1000", "--attr", "GLIDEIN_Site=Doomed")
    (tmp_path / "slow_here.sh").write_text(
        "#!/bin/sh\nif [ \"$GLIDEIN_Site\" = Doomed ]; then sleep 120; fi\necho finished on $GLIDEIN_Site\n")
    os.chmod(tmp_path / "slow_here.sh", 0o755)
    cluster = submit(pool, tmp_path, """
        executable = slow_here.sh
        output = out.txt
        queue
    """)
    with pool.schedd() as s:
        wait_until(lambda: s.job(cluster, 0)["JobStatus"] == 2 and s.job(cluster, 0)["RemoteHost"] == "slot1@doomed@test")
        time.sleep(0.5)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        pool.start_agent("rescue", "--slots", "1", "--cpus", "1", "--memory", "1000", "--attr", "GLIDEIN_Site=Rescue")
        hist = wait_until(lambda: s.history(constraint=f"ClusterId == {cluster}"), timeout=60)
        assert hist[0]["JobStatus"] == 4 and hist[0]["LastRemoteHost"] == "slot1@rescue@test"
        assert s.http.request("GET", f"/v1/jobs/{cluster}.0/output/out.txt", raw=True) == b"finished on Rescue\n"
        kinds = [e.get("event") or e.get("type") for e in s.events(cluster, 0)]
        assert any("evict" in str(k) for k in kinds), kinds


def test_memory_and_walltime_overruns_are_held(pool: Pool, tmp_path: Path) -> None:
    pool.start_agent("small", "--partitionable", "--cpus", "2", "--memory", "2000", "--disk", "2000000",
                     "--vm-factor", "0")
    (tmp_path / "hog.py").write_text(textwrap.dedent("""\
        #!/usr/bin/env python3
        import time
        x = []
        for _ in range(40):
            x.append(bytearray(10 * 1024 * 1024))
            time.sleep(0.02)
        time.sleep(60)
    """))
    os.chmod(tmp_path / "hog.py", 0o755)
    hog = submit(pool, tmp_path, """
        executable = hog.py
        request_memory = 100
        queue
    """)
    slow = submit(pool, tmp_path, """
        executable = /bin/sleep
        arguments = 60
        transfer_executable = false
        +MaxWallTime = 1
        queue
    """)
    with pool.schedd() as s:
        held = wait_until(lambda: s.job(hog, 0) if s.job(hog, 0)["JobStatus"] == 5 else None, timeout=45)
        assert held["HoldReasonCode"] == 34 and "memory limit of 100 megabytes" in held["HoldReason"]
        held = wait_until(lambda: s.job(slow, 0) if s.job(slow, 0)["JobStatus"] == 5 else None, timeout=45)
        assert held["HoldReasonCode"] == 47 and "wall time" in held["HoldReason"]
