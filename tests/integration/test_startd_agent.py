"""The startd agent against a fake collector + schedd that follows the Pool II protocol."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from startd_fake_pool import COMPLETED, HELD, IDLE, RUNNING, FakePool

from gwms.glidein.config import build_config
from gwms.glidein.startd import Agent

pytestmark = pytest.mark.integration


@pytest.fixture()
def pool() -> Iterator[FakePool]:
    p = FakePool(claim_timeout=4.0).start()
    yield p
    p.stop()


class Running:
    """An agent running in a thread of the test process."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.code = self.agent.run()

    def stop(self, timeout: float = 20.0) -> int | None:
        self.agent.request_shutdown()
        self.thread.join(timeout)
        return self.code


def start_agent(pool: FakePool, tmp: Path, name: str = "g1@test", **opts: Any) -> Running:
    values: dict[str, Any] = {
        "collector": pool.url, "token_file": None, "name": name, "cpus": 2, "memory": 2000, "disk": 10_000_000,
        "workdir": tmp / name / "work", "log_dir": tmp / name / "log", "poll_wait": 1.0,
        "monitor_interval": 0.1, "retire_spread": 0.0, "kill_grace": 1.0,
    }
    values.update(opts)
    return Running(Agent(build_config(**values), token=pool.token))


def test_static_slots_are_advertised_and_run_jobs(pool: FakePool, tmp_path: Path) -> None:
    run = start_agent(pool, tmp_path, slots=2, attrs=["GLIDEIN_Site=SiteA", "GLIDEIN_CPUS=2"], start="TARGET.Owner == \"alice\"")
    assert pool.wait_for(lambda: len([a for a in pool.ads.values() if a.get("MyType") == "Machine"]) == 2)
    ads = pool.slot_ads()
    assert set(ads) == {"slot1@g1@test", "slot2@g1@test"}
    ad = ads["slot1@g1@test"]
    assert ad["State"] == "Unclaimed" and ad["Activity"] == "Idle"
    assert ad["Cpus"] == 1 and ad["Memory"] == 1000 and ad["Disk"] == 5_000_000 and ad["Gpus"] == 0
    assert ad["OpSys"] == "LINUX" and ad["Arch"]
    assert ad["Start"] == '/Expr(TARGET.Owner == "alice")/'
    assert ad["GLIDEIN_Site"] == "SiteA" and ad["GLIDEIN_CPUS"] == 2
    assert ad["GwmsStartdId"] == run.agent.id
    assert ad["GLIDEIN_ToRetire"] > time.time()

    jobs = pool.submit([
        {"Cmd": "/bin/sh", "Arguments": f"-c 'echo out-{i} $GLIDEIN_Site; echo err-{i} >&2; exit {i}'",
         "Out": f"job{i}.out", "Err": f"job{i}.err"}
        for i in range(3)
    ])
    assert pool.wait_for(lambda: all(j.status == COMPLETED for j in jobs)), [j.status for j in jobs]
    for i, job in enumerate(jobs):
        assert job.result is not None and job.result["exit_code"] == i and job.result["exit_signal"] is None
        assert job.result["wall_seconds"] >= 0 and job.result["cpu_seconds"] >= 0
        files = job.output_files()
        assert files[f"job{i}.out"] == f"out-{i} SiteA\n".encode()
        assert files[f"job{i}.err"] == f"err-{i}\n".encode()
        assert set(job.slots) <= {"slot1@g1@test", "slot2@g1@test"}
    assert run.stop() == 0
    assert not pool.slot_ads(), "slot ads are invalidated on exit"
    log = (tmp_path / "g1@test" / "log" / "StartdLog").read_text()
    assert "claimed slot" in log and "exiting" in log
    assert list((tmp_path / "g1@test" / "log").glob("StarterLog.slot*"))


def test_claim_reuse_runs_a_cluster_on_one_claim(pool: FakePool, tmp_path: Path) -> None:
    run = start_agent(pool, tmp_path, slots=1)
    jobs = pool.submit([{"Cmd": "/bin/true"} for _ in range(30)])
    assert pool.wait_for(lambda: all(j.status == COMPLETED for j in jobs), timeout=30)
    claims = {j.slots[0] for j in jobs}
    assert claims == {"slot1@g1@test"}
    assert len(pool.polls) < 10, "reused claims need no new poll per job"
    assert pool.named_calls >= 30, "every claim call names its job"
    assert run.stop() == 0


def test_partitionable_slot_carves_dynamic_slots(pool: FakePool, tmp_path: Path) -> None:
    run = start_agent(pool, tmp_path, partitionable=True, cpus=4, memory=4000)
    assert pool.wait_for(lambda: "slot1@g1@test" in pool.ads)
    assert pool.ads["slot1@g1@test"]["PartitionableSlot"] is True
    jobs = pool.submit([{"Cmd": "/bin/sleep", "Arguments": "1.5", "RequestCpus": 2, "RequestMemory": 1000} for _ in range(2)])
    assert pool.wait_for(lambda: "slot1_1@g1@test" in pool.ads and "slot1_2@g1@test" in pool.ads)
    with pool.lock:
        dyn = dict(pool.ads["slot1_1@g1@test"])
        parent = dict(pool.ads["slot1@g1@test"])
    assert dyn["DynamicSlot"] is True and dyn["State"] == "Claimed" and dyn["Activity"] == "Busy"
    assert dyn["Cpus"] == 2 and dyn["Memory"] == 1000 and dyn["ParentSlotName"] == "slot1@g1@test"
    assert dyn["JobId"] in {j.id for j in jobs} and dyn["RemoteOwner"] == "alice"
    assert parent["Cpus"] == 0 and parent["Memory"] == 2000 and parent["TotalSlotCpus"] == 4
    assert pool.wait_for(lambda: all(j.status == COMPLETED for j in jobs), timeout=20)
    # the dynamic slots are gone again and the partitionable slot has everything back
    assert pool.wait_for(lambda: "slot1_1@g1@test" not in pool.ads and pool.ads["slot1@g1@test"]["Cpus"] == 4)
    assert run.stop() == 0


def test_claim_that_does_not_fit_is_given_back(pool: FakePool, tmp_path: Path) -> None:
    run = start_agent(pool, tmp_path, partitionable=True, cpus=2, memory=1000)
    assert pool.wait_for(lambda: "slot1@g1@test" in pool.ads)
    # the fake negotiator believes the slot has room (a stale ad): fake it with a doctored ad
    with pool.lock:
        pool.ads["slot1@g1@test"]["Cpus"] = 64
    [job] = pool.submit([{"Cmd": "/bin/true", "RequestCpus": 8}])
    assert pool.wait_for(lambda: job.vacates, timeout=10)
    assert "not enough free resources" in job.vacates[0]
    assert job.status == IDLE
    assert run.stop() == 0


def test_input_sandbox_executable_stdin_and_job_ad(pool: FakePool, tmp_path: Path) -> None:
    run = start_agent(pool, tmp_path)
    script = b"#!/bin/sh\ntr a-z A-Z\necho \"scratch=$_CONDOR_SCRATCH_DIR\" > where.txt\ncp \"$_CONDOR_JOB_AD\" jobad.txt\necho \"$@\" > args.txt\n"
    [job] = pool.submit(
        [{"Cmd": "/home/alice/run.sh", "Arguments": "one 'two words' three", "In": "data.txt", "Out": "out.txt",
          "Err": "err.txt", "Environment": "GREETING='hi there'"}],
        inputs={"run.sh": script, "data.txt": b"hello\n"},
    )
    assert pool.wait_for(lambda: job.status == COMPLETED, timeout=20), (job.status, job.hold)
    files = job.output_files()
    assert files["out.txt"] == b"HELLO\n"
    assert files["args.txt"] == b"one two words three\n"
    assert b"scratch=/" in files["where.txt"]
    jobad = files["jobad.txt"].decode()
    assert 'Cmd = "/home/alice/run.sh"' in jobad and "GwmsSpooledInput = true" in jobad
    assert "run.sh" not in files and "data.txt" not in files, "unchanged inputs do not go back"
    assert run.stop() == 0


def test_job_that_cannot_start_is_held(pool: FakePool, tmp_path: Path) -> None:
    run = start_agent(pool, tmp_path)
    [job] = pool.submit([{"Cmd": "/no/such/program"}])
    assert pool.wait_for(lambda: job.status == HELD)
    assert job.hold is not None and job.hold["code"] == 6
    assert "/no/such/program" in job.hold["reason"] and "No such file" in job.hold["reason"]
    assert job.result is None
    assert run.stop() == 0


@pytest.mark.parametrize("drop_claim", [False, True], ids=["stopped", "unknown"])
def test_removed_job_is_killed_and_the_slot_freed(pool: FakePool, tmp_path: Path, drop_claim: bool) -> None:
    run = start_agent(pool, tmp_path)
    [job] = pool.submit([{"Cmd": "/bin/sleep", "Arguments": "60"}])
    assert pool.wait_for(lambda: job.status == RUNNING and "Busy" == pool.ads["slot1@g1@test"]["Activity"])
    claim = pool.claims[job.claim]  # type: ignore[index]
    pool.remove(job.id, drop_claim=drop_claim)
    # the next poll or heartbeat says "stopped" (or "unknown"): the job is killed, nothing reported
    assert pool.wait_for(lambda: pool.ads["slot1@g1@test"]["State"] == "Unclaimed", timeout=10)
    if not drop_claim:
        assert pool.wait_for(lambda: claim.released), "the idle claim is released"
    [second] = pool.submit([{"Cmd": "/bin/true"}])
    assert pool.wait_for(lambda: second.status == COMPLETED)
    assert job.result is None
    assert run.stop() == 0


def test_heartbeats_keep_a_long_job_claimed(pool: FakePool, tmp_path: Path) -> None:
    pool.claim_timeout = 2.0
    run = start_agent(pool, tmp_path)
    [job] = pool.submit([{"Cmd": "/bin/sleep", "Arguments": "3.5"}])  # longer than claim_timeout
    assert pool.wait_for(lambda: job.status == COMPLETED, timeout=20)
    assert job.vacates == [] and job.starts == 1
    assert len(pool.heartbeats) >= 3 and all(len(ids) == 1 for ids in pool.heartbeats)
    assert run.stop() == 0


def test_drain_lets_running_jobs_finish_and_takes_no_more(pool: FakePool, tmp_path: Path) -> None:
    run = start_agent(pool, tmp_path, slots=1)
    [first, second] = pool.submit([{"Cmd": "/bin/sleep", "Arguments": "2"}, {"Cmd": "/bin/true"}])
    assert pool.wait_for(lambda: first.status == RUNNING and pool.ads["slot1@g1@test"]["Activity"] == "Busy")
    run.agent.request_shutdown()
    assert pool.wait_for(lambda: pool.ads.get("slot1@g1@test", {}).get("Activity") == "Retiring", timeout=5)
    assert pool.ads["slot1@g1@test"]["Start"] == "/Expr(false)/"
    run.thread.join(20)
    assert run.code == 0
    assert first.status == COMPLETED and first.result["exit_code"] == 0
    # the schedd offered the second job on the same claim (reuse): it is given back unrun
    assert second.status == IDLE and second.result is None
    assert second.vacates and "retiring" in second.vacates[0]
    assert not pool.slot_ads()


def test_die_time_vacates_running_jobs(pool: FakePool, tmp_path: Path) -> None:
    run = start_agent(pool, tmp_path, die_time=2.0)
    [job] = pool.submit([{"Cmd": "/bin/sleep", "Arguments": "60"}])
    run.thread.join(20)
    assert run.code == 0
    assert job.status == IDLE and job.vacates and "die time" in job.vacates[0]
    assert not pool.slot_ads()


def test_max_idle_ends_an_agent_that_never_ran_a_job(pool: FakePool, tmp_path: Path) -> None:
    began = time.monotonic()
    run = start_agent(pool, tmp_path, max_idle=1.0)
    run.thread.join(15)
    assert run.code == 0 and time.monotonic() - began < 10
    assert "max idle" in (tmp_path / "g1@test" / "log" / "StartdLog").read_text()


def test_max_tail_ends_an_agent_idle_after_jobs(pool: FakePool, tmp_path: Path) -> None:
    run = start_agent(pool, tmp_path, max_tail=1.0)
    [job] = pool.submit([{"Cmd": "/bin/true"}])
    run.thread.join(15)
    assert run.code == 0 and job.status == COMPLETED
    assert "max tail" in (tmp_path / "g1@test" / "log" / "StartdLog").read_text()


def test_black_hole_latch_stops_accepting(pool: FakePool, tmp_path: Path) -> None:
    run = start_agent(pool, tmp_path, blackhole_numjobs=3, blackhole_rate=1.0)
    jobs = pool.submit([{"Cmd": "/bin/true"} for _ in range(10)])
    run.thread.join(20)
    assert run.code == 0
    done = [j for j in jobs if j.status == COMPLETED]
    assert len(done) == 3, [j.status for j in jobs]
    assert all(j.status == IDLE for j in jobs if j not in done)
    log = (tmp_path / "g1@test" / "log" / "StartdLog").read_text()
    assert "black hole" in log


def test_collector_outage_is_retried_with_back_off(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = FakePool()  # only for its token; never started
    dead.url = f"http://127.0.0.1:{port}"
    began = time.monotonic()
    run = start_agent(dead, tmp_path, max_idle=5.0)
    run.thread.join(20)
    assert run.code == 0 and time.monotonic() - began < 15
    log = (tmp_path / "g1@test" / "log" / "StartdLog").read_text()
    assert "max idle" in log
    assert 1 <= log.count("cannot query the collector") <= 4, "retries back off"
    dead.server.server_close()
