"""``gwms job ps|top|ls|cat|tail|bt`` against a real pool: collector, schedd and negotiator on
loopback, a real startd agent (a subprocess) running a real job that writes a file and
sleeps. The requests go user -> schedd -> the agent's outbound long poll -> back.
"""

from __future__ import annotations

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

from gwms.cli import main as climain
from gwms.net import ServiceError, ServiceServer
from gwms.pool.clientfile import PoolClientInfo, write_client_file
from gwms.pool.collector.client import CollectorClient
from gwms.pool.collector.service import create_collector_app
from gwms.pool.collector.store import AdStore
from gwms.pool.negotiator.service import Negotiator, NegotiatorConfig, create_negotiator_app
from gwms.pool.schedd.client import ScheddClient
from gwms.pool.schedd.queue import JobQueue
from gwms.pool.schedd.sandbox import Spool
from gwms.pool.schedd.service import ScheddLimits, create_schedd_app
from gwms.security import scopes
from gwms.security.layout import SecurityLayout, ensure_pool_keys

pytestmark = pytest.mark.integration

JOB = """\
#!/bin/sh
for i in 1 2 3 4 5; do echo "step $i" >> progress.txt; done
ln -s /etc/passwd passwd-link
mkdir -p logs && echo inner > logs/inner.log
touch ready
sleep 60
"""


@dataclass
class Pool:
    data: Path
    layout: SecurityLayout
    collector_url: str
    schedd_url: str
    agents: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def schedd(self, user: str = "alice") -> ScheddClient:
        return ScheddClient(self.schedd_url, token=self.layout.mint_token(user, (scopes.READ, scopes.WRITE)))

    def client_dir(self, user: str, *token_scopes: str) -> Path:
        """A pool directory with a client.json for ``user`` (what ``--pool`` reads)."""
        where = self.data / "clients" / user
        token = self.layout.mint_token(user, token_scopes or (scopes.READ, scopes.WRITE))
        write_client_file(where, PoolClientInfo(collector=self.collector_url, schedd=self.schedd_url, token=token))
        return where

    def start_agent(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        token = self.data / f"{name}.token"
        token.write_text(self.layout.mint_token(f"glidein-{name}", (scopes.READ, scopes.ADVERTISE_STARTD)))
        work = self.data / "agents" / name
        proc = subprocess.Popen(
            [sys.executable, "-m", "gwms.glidein.startd", "run", "--collector", self.collector_url,
             "--token", str(token), "--name", f"{name}@test", "--workdir", str(work / "execute"),
             "--log-dir", str(work / "log"), "--poll-wait", "1", "--monitor-interval", "0.2",
             "--schedd-refresh", "1", "--ad-lifetime", "6", "--kill-grace", "1", *args],
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
                          advertise_interval=0.5, match_timeout=3.0, claim_timeout=6.0),
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


def gwms(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``gwms ARGS`` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        climain.main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_job_inspection_through_the_schedd_and_the_agent(pool: Pool, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    pool.start_agent("worker", "--slots", "1", "--cpus", "1", "--memory", "1000")
    (tmp_path / "job.sh").write_text(JOB)
    (tmp_path / "job.sh").chmod(0o755)
    with pool.schedd() as s:
        cluster = s.submit_text(textwrap.dedent("""\
            executable = job.sh
            output = job.out
            queue
        """), base_dir=tmp_path).cluster_id
        stuck = s.submit_text("executable = job.sh\nrequest_memory = 100000\nqueue\n", base_dir=tmp_path).cluster_id

        def started() -> bool:  # running at the schedd, program started, file written
            try:
                return "ready" in s.inspect(cluster, 0, "ls")["text"]
            except ServiceError as exc:
                assert exc.status in (409,), exc  # not running yet
                return False

        wait_until(started, timeout=40, step=0.3)
        job = f"{cluster}.0"
        alice = str(pool.client_dir("alice"))

        code, out, err = gwms(capsys, "job", "ps", job, "--pool", alice)
        assert code == 0, err
        assert "PID" in out and "sleep 60" in out and "/bin/sh" in out and "\\_ sleep 60" in out

        code, out, err = gwms(capsys, "job", "ls", job, "--pool", alice)
        assert code == 0, err
        assert "progress.txt" in out and "passwd-link -> /etc/passwd" in out and "logs" in out
        code, out, _ = gwms(capsys, "job", "ls", job, "logs", "--pool", alice)
        assert "inner.log" in out

        code, out, err = gwms(capsys, "job", "cat", job, "progress.txt", "--pool", alice)
        assert code == 0 and out == "".join(f"step {i}\n" for i in range(1, 6)), (out, err)

        code, out, err = gwms(capsys, "job", "tail", job, "progress.txt", "-n", "2", "--pool", alice)
        assert code == 0 and out == "step 4\nstep 5\n", (out, err)

        code, out, err = gwms(capsys, "job", "top", job, "--pool", alice)
        assert code == 0 and "%CPU" in out and "sleep 60" in out, err

        code, out, err = gwms(capsys, "job", "bt", job, "--pool", alice, "--wait", "40")
        assert code == 0, err
        assert "not available" in out or "=== pid" in out

        code, out, err = gwms(capsys, "job", "ps", job, "--json", "--pool", alice)
        assert code == 0 and '"slot": "slot1@worker@test"' in out

        # another user is refused, in one line
        code, out, err = gwms(capsys, "job", "ps", job, "--pool", str(pool.client_dir("bob")))
        assert code == 1 and out == ""
        assert err.count("\n") == 1 and "403" in err and f"job {job} belongs to alice" in err and "you are bob" in err

        # paths that leave the sandbox are refused, in one line, showing nothing of the file
        for path, why in (("../../etc/passwd", "'..'"), ("/etc/passwd", "absolute"),
                          ("passwd-link", "leads outside the job's sandbox")):
            code, out, err = gwms(capsys, "job", "cat", job, path, "--pool", alice)
            assert code == 1 and out == "" and "root:" not in err, (path, err)
            assert err.count("\n") == 1 and "403" in err and why in err, (path, err)

        code, out, err = gwms(capsys, "job", "cat", job, "no-such-file", "--pool", alice)
        assert code == 1 and "404" in err and "no such file" in err

        # an administrator may look at anyone's job
        admin = str(pool.client_dir("admin", scopes.READ, scopes.ADMINISTRATOR))
        code, out, err = gwms(capsys, "job", "cat", job, "logs/inner.log", "--pool", admin)
        assert code == 0 and out == "inner\n", err

        # a job that does not run cannot be inspected
        code, out, err = gwms(capsys, "job", "ps", f"{stuck}.0", "--pool", alice)
        assert code == 1 and "409" in err and "is not running (it is idle)" in err

        s.act("remove", [job, str(stuck)])
        wait_until(lambda: not s.query(f"ClusterId == {cluster} && JobStatus == 2"))
        code, out, err = gwms(capsys, "job", "ps", job, "--pool", alice)
        assert code == 1 and ("409" in err or "404" in err), err
