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
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pool_fixtures import NegotiatedPool, start_negotiated_pool
from waiting import wait_until

from gwms.pool.negotiator.analyze import analyze_job, render_analysis
from gwms.pool.schedd.client import ScheddClient

pytestmark = pytest.mark.integration

CLAIM_TIMEOUT = 3.0
MATCH_TIMEOUT = 3.0


@pytest.fixture()
def pool(tmp_path: Path) -> Iterator[NegotiatedPool]:
    yield from start_negotiated_pool(tmp_path / "pool", match_timeout=MATCH_TIMEOUT, claim_timeout=CLAIM_TIMEOUT)


def job_ad(schedd: ScheddClient, cluster: int, proc: int) -> dict[str, Any]:
    return schedd.job(cluster, proc)


def submit(pool: NegotiatedPool, tmp: Path, text: str) -> int:
    with pool.schedd() as s:
        return s.submit_text(textwrap.dedent(text), base_dir=tmp).cluster_id


def slots_of(pool: NegotiatedPool) -> list[dict[str, Any]]:
    with pool.collector() as c:
        return c.query("Machine")


def test_jobs_land_on_allowed_slots(pool: NegotiatedPool, tmp_path: Path) -> None:
    pool.start_agent("siteA", "--slots", "2", "--cpus", "2", "--memory", "2000", "--disk", "2000000",
                     "--attr", "GLIDEIN_Site=SiteA")
    pool.start_agent("siteB", "--slots", "1", "--cpus", "4", "--memory", "8000", "--disk", "2000000",
                     "--attr", "GLIDEIN_Site=SiteB", gwms_cli=True)
    pool.start_agent("siteC", "--partitionable", "--cpus", "4", "--memory", "4000", "--disk", "4000000",
                     "--attr", "GLIDEIN_Site=SiteC")
    wait_until(lambda: len(slots_of(pool)) == 4, timeout=30)
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


def test_kill_9_of_an_agent_puts_its_job_back_and_it_completes_elsewhere(pool: NegotiatedPool, tmp_path: Path) -> None:
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
        wait_until(lambda: s.job(cluster, 0)["JobStatus"] == 2 and s.job(cluster, 0)["RemoteHost"] == "slot1@doomed@test",
                   timeout=30)
        time.sleep(0.5)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        pool.start_agent("rescue", "--slots", "1", "--cpus", "1", "--memory", "1000", "--attr", "GLIDEIN_Site=Rescue")
        hist = wait_until(lambda: s.history(constraint=f"ClusterId == {cluster}"), timeout=60)
        assert hist[0]["JobStatus"] == 4 and hist[0]["LastRemoteHost"] == "slot1@rescue@test"
        assert s.http.request("GET", f"/v1/jobs/{cluster}.0/output/out.txt", raw=True) == b"finished on Rescue\n"
        kinds = [e.get("event") or e.get("type") for e in s.events(cluster, 0)]
        assert any("evict" in str(k) for k in kinds), kinds


def test_memory_and_walltime_overruns_are_held(pool: NegotiatedPool, tmp_path: Path) -> None:
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
