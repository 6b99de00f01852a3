"""The schedd over HTTP: submit, query, actions, sandboxes, ownership, limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gwms.net import ServiceError
from gwms.pool.schedd.service import ScheddLimits
from gwms.pool.schedd.submit_errors import SubmitError
from gwms.security import scopes

from pool_fixtures import Pool, start_pool

SUBMIT = """\
# several queue forms in one file
executable   = run.sh
arguments    = "-n $(Process) --word '$(word)'"
output       = out.$(Cluster).$(Process)
error        = err.$(Cluster).$(Process)
request_cpus = 2
request_memory = 2GB
request_disk = 1G
transfer_input_files = data.txt
+ProjectName = "physics"
word = none
queue 2
word = $(item)
queue word in (alpha, beta)
queue word from (
  gamma
  delta
)
"""


@pytest.fixture()
def pool(tmp_path: Path) -> Iterator[Pool]:
    yield from start_pool(tmp_path / "pool", limits=ScheddLimits(max_input_bytes=64 * 1024, max_jobs_per_owner=50_000))


@pytest.fixture()
def submit_dir(tmp_path: Path) -> Path:
    d = tmp_path / "submit"
    d.mkdir()
    (d / "run.sh").write_text("#!/bin/sh\necho run \"$@\"\n")
    (d / "run.sh").chmod(0o755)
    (d / "data.txt").write_text("input data\n")
    (d / "job.sub").write_text(SUBMIT)
    return d


def test_submit_queue_forms_yield_exact_jobs(pool: Pool, submit_dir: Path) -> None:
    with pool.schedd("alice") as s:
        result = s.submit_file(submit_dir / "job.sub", base_dir=submit_dir)
        assert result.count == 6
        assert sorted(result.input_files) == ["data.txt", "run.sh"]
        jobs = s.query(f"ClusterId == {result.cluster_id}")
    assert [j["ProcId"] for j in jobs] == [0, 1, 2, 3, 4, 5]
    words = [j["Arguments"] for j in jobs]
    assert words == [
        "-n 0 --word 'none'", "-n 1 --word 'none'", "-n 2 --word 'alpha'",
        "-n 3 --word 'beta'", "-n 4 --word 'gamma'", "-n 5 --word 'delta'",
    ]
    c = result.cluster_id
    for j in jobs:
        assert j["Owner"] == "alice@" + pool.layout.trust_domain()
        assert j["JobStatus"] == 1
        assert j["RequestCpus"] == 2
        assert j["RequestMemory"] == 2048
        assert j["RequestDisk"] == 1024 * 1024
        assert j["ProjectName"] == "physics"
        assert j["Out"] == f"out.{c}.{j['ProcId']}"
        assert j["GwmsSpooledInput"] is True
    # the input sandbox is in the spool, once for the cluster
    assert (pool.spool.input_dir(c) / "data.txt").read_text() == "input data\n"
    assert (pool.spool.input_dir(c) / "run.sh").stat().st_mode & 0o111


def test_owner_cannot_be_forged(pool: Pool) -> None:
    with pool.schedd("alice") as s:
        cid = s.http.post("/v1/clusters", {})["cluster_id"]
        s.http.post(f"/v1/clusters/{cid}/jobs", {
            "common": {"Cmd": "/bin/true", "Owner": "mallory@evil", "JobStatus": 2, "ClusterId": 99},
            "procs": [{}],
        })
        job = s.job(cid, 0)
    assert job["Owner"].startswith("alice@")
    assert job["JobStatus"] == 1
    assert job["ClusterId"] == cid


def test_hold_release_remove_qedit_and_events(pool: Pool, submit_dir: Path) -> None:
    (submit_dir / "one.sub").write_text("executable = /bin/true\nqueue 3\n")
    with pool.schedd("alice") as s:
        c = s.submit_file(submit_dir / "one.sub", base_dir=submit_dir).cluster_id
        r = s.act("hold", [f"{c}.1"], reason="looking at it")
        assert r["done"] == 1
        assert s.job(c, 1)["JobStatus"] == 5
        assert s.job(c, 1)["HoldReason"] == "looking at it"
        # releasing an idle job is refused, per job
        r = s.act("release", [f"{c}.0", f"{c}.1"])
        assert r["done"] == 1 and r["failed"] == 1
        assert s.job(c, 1)["JobStatus"] == 1
        r = s.edit([f"{c}"], "JobPrio", 7)
        assert r["done"] == 3
        assert {j["JobPrio"] for j in s.query(f"ClusterId == {c}")} == {7}
        r = s.act("remove", [], constraint=f"ClusterId == {c} && ProcId == 2")
        assert r["done"] == 1
        assert s.query(f"ClusterId == {c}", ["ProcId"]) == [{"ProcId": 0}, {"ProcId": 1}]
        assert [j["ProcId"] for j in s.history(f"ClusterId == {c}")] == [2]
        kinds = [e["type"] if "type" in e else e.get("kind") for e in s.events(c, 1)]
    assert kinds[:1] == ["submit"]
    assert "held" in kinds and "released" in kinds and "edited" in kinds


def test_other_users_cannot_touch_jobs(pool: Pool, submit_dir: Path) -> None:
    (submit_dir / "one.sub").write_text("executable = /bin/true\nqueue 2\n")
    with pool.schedd("alice") as alice:
        c = alice.submit_file(submit_dir / "one.sub", base_dir=submit_dir).cluster_id
    with pool.schedd("bob") as bob:
        # bob can see the queue, as with condor_q -all ...
        assert len(bob.query(f"ClusterId == {c}")) == 2
        # ... but not act on alice's jobs, by id, by cluster, or edit them
        for call in (
            lambda: bob.act("remove", [f"{c}.0"]),
            lambda: bob.act("hold", [str(c)]),
            lambda: bob.edit([f"{c}.1"], "JobPrio", 5),
        ):
            with pytest.raises(ServiceError) as info:
                call()
            assert info.value.status == 403
        # a constraint only ever selects bob's own jobs
        r = bob.act("remove", [], constraint="true")
        assert r["done"] == 0
    with pool.schedd("admin", scopes.ADMINISTRATOR) as admin:
        assert admin.act("hold", [str(c)])["done"] == 2
    with pool.schedd("alice") as alice:
        assert {j["JobStatus"] for j in alice.query(f"ClusterId == {c}")} == {5}


def test_read_only_token_cannot_submit(pool: Pool, submit_dir: Path) -> None:
    (submit_dir / "one.sub").write_text("executable = /bin/true\nqueue\n")
    with pool.schedd("carol", scopes.READ) as s, pytest.raises(ServiceError) as info:
        s.submit_file(submit_dir / "one.sub", base_dir=submit_dir)
    assert info.value.status == 403


def test_bad_submit_files_queue_nothing(pool: Pool, submit_dir: Path) -> None:
    bad = {
        "typo.sub": ("executable = /bin/true\nreqest_memory = 2GB\nqueue\n", "line 2"),
        "units.sub": ("executable = /bin/true\nrequest_memory = 2 parsecs\nqueue\n", "line 2"),
        "expr.sub": ("executable = /bin/true\nrequirements = (Memory > \nqueue\n", "line 2"),
        "missing.sub": ("executable = run.sh\ntransfer_input_files = nope.txt\nqueue\n", "nope.txt"),
    }
    with pool.schedd("alice") as s:
        before = len(s.query())
        for name, (text, where) in bad.items():
            (submit_dir / name).write_text(text)
            with pytest.raises((SubmitError, Exception)) as info:
                s.submit_file(submit_dir / name, base_dir=submit_dir)
            assert where in str(info.value), (name, str(info.value))
            assert "Traceback" not in str(info.value)
        assert len(s.query()) == before


def test_bad_constraint_is_a_clear_400(pool: Pool) -> None:
    with pool.schedd("alice") as s, pytest.raises(ServiceError) as info:
        s.query("JobStatus == == 1")
    assert info.value.status == 400
    assert "JobStatus == == 1" in str(info.value) or "column" in str(info.value)


def test_oversized_upload_is_refused(pool: Pool, submit_dir: Path) -> None:
    (submit_dir / "big.bin").write_bytes(bytes(range(256)) * 1024)  # 256 KiB, limit 64 KiB
    (submit_dir / "big.sub").write_text("executable = /bin/true\ntransfer_input_files = big.bin\nqueue\n")
    with pool.schedd("alice") as s:
        before = len(s.query())
        with pytest.raises(ServiceError) as info:
            s.submit_file(submit_dir / "big.sub", base_dir=submit_dir)
        assert info.value.status == 413
        assert "limit" in str(info.value)
        assert len(s.query()) == before


def test_submit_limit_per_owner(pool: Pool, submit_dir: Path) -> None:
    (submit_dir / "many.sub").write_text("executable = /bin/true\nqueue 50001\n")
    with pool.schedd("alice") as s, pytest.raises(ServiceError) as info:
        s.submit_file(submit_dir / "many.sub", base_dir=submit_dir)
    assert info.value.status == 409
    assert "limit" in str(info.value)


def test_schedd_ad_reaches_the_collector(pool: Pool, submit_dir: Path) -> None:
    (submit_dir / "one.sub").write_text("executable = /bin/true\nqueue 4\n")
    with pool.schedd("alice") as s:
        c = s.submit_file(submit_dir / "one.sub", base_dir=submit_dir).cluster_id
        s.act("hold", [f"{c}.0"])
    deadline = time.monotonic() + 10
    ad: dict = {}
    with pool.collector() as col:
        while time.monotonic() < deadline:
            ads = col.query("Scheduler")
            if ads and ads[0].get("TotalIdleJobs") == 3 and ads[0].get("TotalHeldJobs") == 1:
                ad = ads[0]
                break
            time.sleep(0.2)
    assert ad, "schedd ad with the right counts never reached the collector"
    assert ad["Name"] == "schedd@test"
    assert ad["AuthenticatedIdentity"].startswith("schedd@")
    assert ad["MaxJobsRunning"] == 10_000


def test_outputs_are_fetched_by_their_owner_only(pool: Pool, submit_dir: Path, tmp_path: Path) -> None:
    import io
    import subprocess
    import sys

    from gwms.pool.clientfile import PoolClientInfo, write_client_file
    from gwms.pool.schedd.sandbox import make_archive

    (submit_dir / "one.sub").write_text("executable = /bin/true\noutput = out.txt\nqueue\n")
    with pool.schedd("alice") as s:
        c = s.submit_file(submit_dir / "one.sub", base_dir=submit_dir).cluster_id
    # what a starter would send back, then the job completes
    produced = tmp_path / "produced"
    produced.mkdir()
    (produced / "out.txt").write_text("the answer is 42\n")
    pool.spool.store_output(c, 0, io.BytesIO(make_archive([("out.txt", produced / "out.txt")])))
    pool.queue.start(c, 0, remote_host="slot1@test", claim_id="claim-1")
    pool.queue.complete(c, 0, exit_code=0)
    with pool.schedd("bob") as bob, pytest.raises(ServiceError) as info:
        bob.fetch_output(c, 0, tmp_path / "bob")
    assert info.value.status == 403
    # the CLI puts the files into the job's submit directory
    client_dir = tmp_path / "client"
    write_client_file(client_dir, PoolClientInfo(collector=pool.collector_url, schedd=pool.schedd_url,
                                                 token=pool.token("alice")))
    proc = subprocess.run([sys.executable, "-m", "gwms", "transfer-data", str(c), "--pool", str(client_dir)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "1 file(s)" in proc.stdout
    assert (submit_dir / "out.txt").read_text() == "the answer is 42\n"
