"""End to end with the real Slurm site: request -> Slurm pilots -> pool slot -> user job ->
pilot logs in the client log tree -> request withdrawn -> pilots gone from Slurm.

Real services on 127.0.0.1: a user pool (collector, schedd, negotiator), a WMS
collector, a factory with one ``slurm`` entry whose stage area is served over HTTP on
127.0.0.1, and the test acting as frontend (an encrypted glideclient request carrying a
pool token for the glideins). The Slurm site is deploy/test-sites/slurm/ (CI starts it
before the tests, as root; a run without it starts it here). Every wait is bounded, and
a failure says what the pilots' states were with the tail of their ``.err``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from factory_fixtures import Wms, start_wms
from factory_pool import Chain, UserPool, glidein_entry, start_chain, start_user_pool
from slurm_site import (
    PARTITION,
    scancel_ours,
    slurm_site_fixture,  # noqa: F401  (the slurm_site fixture)
    squeue,
)

from gwms.factory.states import PilotState
from gwms.frontend.classify import classify_slot
from gwms.monitor.outfile import parse_out
from gwms.monitor.sections import split_err

pytestmark = pytest.mark.integration


@pytest.fixture()
def chain(slurm_site: None, tmp_path: Path) -> Iterator[Chain]:
    prefix = f"gwmse2e-{uuid.uuid4().hex[:8]}-"
    wms_gen = start_wms(tmp_path / "wms")
    wms: Wms = next(wms_gen)
    pool_gen = start_user_pool(tmp_path / "pool")
    pool: UserPool = next(pool_gen)
    entry = glidein_entry(
        "slurm1", "slurm", {"partition": PARTITION, "job_name_prefix": prefix, "collect_timeout_s": 10},
        GLIDEIN_Site="SlurmSite",
    )
    chain_gen = start_chain(tmp_path, wms, pool, entry)
    chain = next(chain_gen)
    chain.extra["prefix"] = prefix
    try:
        yield chain
    finally:
        scancel_ours(prefix)
        for gen in (chain_gen, pool_gen, wms_gen):
            next(gen, None)


def test_slurm_pilots_join_the_pool_run_a_job_leave_their_logs_and_go_when_withdrawn(
    chain: Chain, tmp_path: Path
) -> None:
    prefix = chain.extra["prefix"]
    chain.ask(idle=1, max_glideins=1, params={"GLIDECLIENT_Group_Tag": "e2e"}, publish=["GLIDECLIENT_Group_Tag"])

    # submitted to Slurm, and running there
    [pilot] = chain.wait(lambda: [p for p in chain.pilots() if p.site_id], 30, "a pilot submitted to Slurm")
    job_id = pilot.site_id
    assert job_id and job_id.isdigit()
    assert chain.wait(lambda: job_id in squeue(prefix), 10, f"Slurm job {job_id} in squeue")
    chain.wait(lambda: chain.service.store.get(pilot.pilot_id).state is PilotState.RUNNING, 40,
               f"pilot {pilot.pilot_id} (Slurm job {job_id}) running")

    # it joins the pool: its slot says which entry it came from
    def our_slot() -> list[dict]:
        return [ad for ad in chain.pool.slots() if ad.get("GLIDEIN_Entry_Name") == "slurm1"]

    [ad] = chain.wait(our_slot, 60, "the Slurm glidein's slot in the user pool")
    assert ad["GLIDEIN_Factory"] == "gf" and ad["GLIDEIN_Name"] == "v1" and ad["GLIDEIN_Site"] == "SlurmSite"
    assert ad["GLIDECLIENT_Name"] == "vofe.main" and ad["GLIDECLIENT_Group_Tag"] == "e2e"
    assert (ad["GLIDEIN_ClusterId"], ad["GLIDEIN_ProcId"]) == (pilot.cluster, pilot.proc)
    assert classify_slot(ad).entry == "slurm1@v1@gf"

    # a user job runs on it and completes with the right output
    script = tmp_path / "job.sh"
    script.write_text('#!/bin/sh\necho "hello from $GLIDEIN_Site slot $_CONDOR_SLOT"\necho "$1" > result.txt\n')
    script.chmod(0o755)
    cluster = chain.submit(tmp_path, """
        executable = job.sh
        arguments = forty-two
        output = job.out
        transfer_output_files = result.txt
        queue
    """)
    with chain.pool.schedd() as s:
        [done] = chain.wait(lambda: s.history(constraint=f"ClusterId == {cluster}"), 60,
                            f"user job {cluster}.0 completed (job ad: {s.job(cluster, 0)})")
        assert done["JobStatus"] == 4 and done["ExitCode"] == 0, done
        assert done["LastRemoteHost"] == ad["Name"]
        out = s.http.request("GET", f"/v1/jobs/{cluster}.0/output/job.out", raw=True).decode()
        result = s.http.request("GET", f"/v1/jobs/{cluster}.0/output/result.txt", raw=True)
    assert out.startswith("hello from SlurmSite slot ") and result == b"forty-two\n"

    # the frontend withdraws: no idle, no maximum, remove all; the pilot leaves Slurm
    chain.ask(idle=0, max_glideins=0, remove_excess="ALL")
    chain.wait(lambda: job_id not in squeue(prefix), 60, f"Slurm job {job_id} gone after the withdrawal")
    ended = chain.wait(lambda: (r := chain.service.store.get(pilot.pilot_id)).state is PilotState.REMOVED
                       and r.output_collected and r, 60, f"pilot {pilot.pilot_id} removed and its output collected")
    assert (ended.remove_reason or "").startswith("excess (ALL requested)"), ended
    assert squeue(prefix) == {} and chain.pilots() == []

    # its .out/.err in the client log tree, readable with the monitor's decoders
    base = chain.log_dir()
    assert base == Path(chain.config.log_dir) / "client" / "user_fe1" / "glidein_v1" / "entry_slurm1"
    out_path = base / f"job.{pilot.cluster}.{pilot.proc}.out"
    err_path = base / f"job.{pilot.cluster}.{pilot.proc}.err"
    assert (Path(pilot.stdout), Path(pilot.stderr)) == (out_path, err_path)
    summary = parse_out(out_path.read_text())
    assert summary.entry == "slurm1" and summary.factory_job_id == f"{pilot.cluster}.{pilot.proc}", chain.diagnose()
    assert summary.jobs_run == 1, chain.diagnose()
    err = split_err(err_path.read_text())
    names = err.names()
    assert {"StartdLog", "GlideinLog", "XML"} <= set(names), chain.diagnose()
    assert all(section.ok for section in err.sections), [s.name for s in err.sections if not s.ok]
    assert "claimed" in err.section("StartdLog").text()
