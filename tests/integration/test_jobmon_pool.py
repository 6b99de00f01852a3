"""``gwms job ps|top|ls|cat|tail|bt`` against a real pool: collector, schedd and negotiator on
loopback, a real startd agent (a subprocess) running a real job that writes a file and
sleeps. The requests go user -> schedd -> the agent's outbound long poll -> back.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from pool_fixtures import NegotiatedPool, start_negotiated_pool
from waiting import wait_until

from gwms.cli import main as climain
from gwms.net import ServiceError
from gwms.security import scopes

pytestmark = pytest.mark.integration

JOB = """\
#!/bin/sh
for i in 1 2 3 4 5; do echo "step $i" >> progress.txt; done
ln -s /etc/passwd passwd-link
mkdir -p logs && echo inner > logs/inner.log
touch ready
sleep 60
"""


@pytest.fixture()
def pool(tmp_path: Path) -> Iterator[NegotiatedPool]:
    yield from start_negotiated_pool(tmp_path / "pool", match_timeout=3.0, claim_timeout=6.0)


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


def test_job_inspection_through_the_schedd_and_the_agent(pool: NegotiatedPool, tmp_path: Path,
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

        wait_until(started, timeout=40, interval=0.3)
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
        wait_until(lambda: not s.query(f"ClusterId == {cluster} && JobStatus == 2"), timeout=30)
        code, out, err = gwms(capsys, "job", "ps", job, "--pool", alice)
        assert code == 1 and ("409" in err or "404" in err), err
