"""Collector + schedd + negotiator on loopback, with startd agents faked over plain HTTP.

The fake agents follow the Pool II protocol of docs/contracts.md: they advertise slot ads
with an ADVERTISE_STARTD token, long-poll the schedd for claims, fetch the input, send
outputs, complete (taking the next job on the same claim when the schedd offers one),
and heartbeat — or stop heartbeating, as a killed agent would.
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pool_fixtures import NegotiatedPool, start_negotiated_pool

from gwms.cli import main as climain
from gwms.net import ServiceError, SyncServiceClient
from gwms.pool.clientfile import PoolClientInfo, write_client_file
from gwms.pool.collector.client import CollectorClient
from gwms.security import scopes

CLAIM_TIMEOUT = 2.0
MATCH_TIMEOUT = 3.0


#: A running collector, schedd and negotiator.
Flow = NegotiatedPool


@pytest.fixture()
def flow(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Flow]:
    interval = getattr(request, "param", 0.5)  # seconds between negotiation cycles
    yield from start_negotiated_pool(tmp_path / "pool", match_timeout=MATCH_TIMEOUT, claim_timeout=CLAIM_TIMEOUT,
                                     interval=interval)


# --------------------------------------------------------------------------- the fake agent


def slot_ad(name: str, startd_id: str, **attrs: Any) -> dict[str, Any]:
    ad = {
        "MyType": "Machine", "Name": name, "State": "Unclaimed", "Activity": "Idle",
        "Cpus": 1, "Memory": 2048, "Disk": 10_000_000, "Gpus": 0, "OpSys": "LINUX", "Arch": "X86_64",
        "START": True, "GwmsStartdId": startd_id,
    }
    ad.update(attrs)
    return ad


def output_tar(name: str, text: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        blob = text.encode()
        info = tarfile.TarInfo(name)
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


@dataclass
class FakeStartd:
    """A startd agent reduced to its HTTP calls."""

    flow: Flow
    user: str
    startd_id: str
    slots: list[dict[str, Any]]
    ran: list[tuple[str, str]] = field(default_factory=list)  # (job id, slot)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        token = self.flow.token(self.user, scopes.ADVERTISE_STARTD)
        self.collector = CollectorClient(self.flow.collector_url, token=token)
        self.schedd = SyncServiceClient(self.flow.schedd_url, token=token, timeout=30, service="schedd")

    def close(self) -> None:
        self.collector.close()
        self.schedd.close()

    @property
    def names(self) -> list[str]:
        return [s["Name"] for s in self.slots]

    def advertise(self, **changes: Any) -> None:
        with self.lock:
            for s in self.slots:
                s.update(changes)
            ads = [dict(s) for s in self.slots]
        self.collector.advertise(ads)

    def _slot(self, name: str) -> dict[str, Any]:
        return next(s for s in self.slots if s["Name"] == name)

    def take(self, claim: dict[str, Any], sign: int = -1) -> None:
        """Show a claim in the slot ad (sign -1) or its end (sign +1), and re-advertise."""
        with self.lock:
            slot = self._slot(claim["slot"])
            if slot.get("PartitionableSlot"):
                for attr in ("Cpus", "Memory", "Disk"):
                    slot[attr] += sign * claim["request"][attr]
            else:
                slot["State"] = "Claimed" if sign < 0 else "Unclaimed"
            ad = dict(slot)
        self.collector.advertise(ad)

    def poll(self, wait: float = 5.0, slots: list[str] | None = None) -> list[dict[str, Any]]:
        with self.lock:
            free = {s["Name"]: {k: s[k] for k in ("Cpus", "Memory", "Disk", "Gpus")}
                    for s in self.slots if s.get("PartitionableSlot")}
        body: dict[str, Any] = {"startd": self.startd_id, "slots": slots or self.names, "wait": wait}
        if free:
            body["free"] = free
        answer = self.schedd.post("/v1/startd/poll", body)
        return list(answer["claims"])

    def heartbeat(self, claim_ids: list[str]) -> dict[str, Any]:
        return dict(self.schedd.post("/v1/claims/heartbeat", {"claims": claim_ids}))

    def run_claim(self, claim: dict[str, Any], exit_code: Callable[[dict[str, Any]], int] = lambda j: 0) -> int:
        """Run the claim's job and every next job the schedd hands it; return how many."""
        claim_id, slot, job = claim["claim_id"], claim["slot"], claim["job"]
        count = 0
        while job is not None:
            jid = f"{job['ClusterId']}.{job['ProcId']}"
            assert job["JobStatus"] == 2 and job["RemoteHost"] == slot and job["ClaimId"] == claim_id
            tar = self.schedd.request("GET", f"/v1/claims/{claim_id}/input", params={"job": jid}, raw=True)
            assert "true" in tarfile.open(fileobj=io.BytesIO(tar), mode="r:*").getnames()
            self.schedd.request("PUT", f"/v1/claims/{claim_id}/output", params={"job": jid},
                                content=output_tar("out.txt", f"{jid} on {slot}\n"),
                                headers={"Content-Type": "application/x-tar"})
            answer = self.schedd.post(f"/v1/claims/{claim_id}/complete", {
                "job": jid, "exit_code": exit_code(job), "exit_signal": None, "wall_seconds": 0.5,
                "cpu_seconds": 0.1, "peak_memory_mb": 12.5})
            if answer["next"] is not None:
                # a retried completion of the job just done must not complete the next one
                with pytest.raises(ServiceError) as info:
                    self.schedd.post(f"/v1/claims/{claim_id}/complete", {"job": jid, "exit_code": 0})
                assert info.value.status == 409
            self.ran.append((jid, slot))
            count += 1
            job = answer["next"]
        self.schedd.post(f"/v1/claims/{claim_id}/release", {})
        return count


def wait_for(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def serve_until_done(agents: list[FakeStartd], done: Callable[[], bool], timeout: float = 30.0) -> None:
    """Each agent polls and runs its claims in its own thread until ``done()``."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def run(agent: FakeStartd, claim: dict[str, Any]) -> None:
        try:
            agent.take(claim, -1)
            agent.run_claim(claim)
            agent.take(claim, +1)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def loop(agent: FakeStartd) -> None:
        try:
            while not stop.is_set():
                for claim in agent.poll(wait=1.0):
                    threading.Thread(target=run, args=(agent, claim), daemon=True).start()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(a,), daemon=True) for a in agents]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: done() or errors, timeout, "the jobs to finish")
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not errors, errors


SUBMIT = """\
executable = /bin/true
request_memory = {memory}
requirements = {requirements}
queue {count}
"""


def submit(flow: Flow, user: str, *, count: int, memory: str = "512MB", requirements: str = "true") -> int:
    with flow.schedd(user) as s:
        return s.submit_text(SUBMIT.format(memory=memory, requirements=requirements, count=count),
                             base_dir=flow.data).cluster_id


def history_hosts(flow: Flow, cluster: int) -> dict[str, str]:
    return {f"{j['ClusterId']}.{j['ProcId']}": j.get("LastRemoteHost")
            for j in flow.queue.history(f"ClusterId == {cluster}")}


# --------------------------------------------------------------------------- tests


def test_jobs_land_on_allowed_slots_and_too_big_job_is_explained(flow: Flow) -> None:
    a = FakeStartd(flow, "glidein-a", "a-1", [slot_ad(f"slot{i}@glidein-a", "a-1", GLIDEIN_Site="SiteA") for i in (1, 2)])
    b = FakeStartd(flow, "glidein-b", "b-1", [slot_ad(f"slot{i}@glidein-b", "b-1", GLIDEIN_Site="SiteB", Memory=4096)
                                               for i in (1, 2)])
    c = FakeStartd(flow, "glidein-c", "c-1", [slot_ad("slot1@glidein-c", "c-1", GLIDEIN_Site="SiteC", Cpus=4,
                                                      Memory=8192, PartitionableSlot=True)])
    agents = [a, b, c]
    for agent in agents:
        agent.advertise()
    not_a = submit(flow, "alice", count=6, requirements='GLIDEIN_Site =!= "SiteA"')
    big_mem = submit(flow, "alice", count=3, memory="3GB")
    anywhere = submit(flow, "bob", count=5)
    huge = submit(flow, "alice", count=1, memory="100GB")

    def finished() -> bool:
        return len(flow.queue.history()) == 14

    serve_until_done(agents, finished)
    for jid, host in history_hosts(flow, not_a).items():
        assert "glidein-a" not in host, (jid, host)
    for jid, host in history_hosts(flow, big_mem).items():
        assert host.endswith(("glidein-b", "glidein-c")), (jid, host)
    assert len(history_hosts(flow, anywhere)) == 5
    # what ran where, from the agents' side, agrees with the queue
    ran = {jid: slot for agent in agents for jid, slot in agent.ran}
    assert len(ran) == 14
    for ad in flow.queue.history():
        jid = f"{ad['ClusterId']}.{ad['ProcId']}"
        assert ad["JobStatus"] == 4 and ad["ExitCode"] == 0 and ad["LastRemoteHost"] == ran[jid]
        assert ad["RemoteWallClockTime"] == 0.5 and ad["MemoryUsage"] == 13
    # the huge job stays idle, and -analyze says why
    assert flow.queue.get(huge, 0)["JobStatus"] == 1
    time.sleep(1.0)  # a few more cycles: still idle
    assert flow.queue.get(huge, 0)["JobStatus"] == 1
    write_client_file(flow.data, PoolClientInfo(collector=flow.collector_url, schedd=flow.schedd_url,
                                                token=flow.token("alice")))
    result = CliRunner().invoke(climain.cli, ["q", "-analyze", f"{huge}.0", "--pool", str(flow.data)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "5 slots in the pool" in out
    assert "0 match the job's Requirements" in out
    assert "No slot matches. The clause that rejects the most slots (5 of 5) is [1] TARGET.Memory >= RequestMemory" in out
    assert "RequestMemory = 102400" in out
    # fair share: both submitters are known to the accountant (found through the collector)
    result = CliRunner().invoke(climain.cli, ["userprio", "--pool", str(flow.data), "-json"])
    assert result.exit_code == 0, result.output
    names = [s["name"] for s in json.loads(result.output)["submitters"]]
    assert set(names) == {flow.identity("alice"), flow.identity("bob")}
    # an administrator sets a priority factor; users cannot
    result = CliRunner().invoke(climain.cli, ["userprio", "--pool", str(flow.data), "-setfactor", flow.identity("bob"), "10"])
    assert isinstance(result.exception, ServiceError) and result.exception.status == 403
    admin_dir = flow.data / "admin"
    write_client_file(admin_dir, PoolClientInfo(collector=flow.collector_url, schedd=flow.schedd_url,
                                                token=flow.token("admin", scopes.ADMINISTRATOR, scopes.READ)))
    result = CliRunner().invoke(climain.cli, ["userprio", "--pool", str(admin_dir), "-setfactor", flow.identity("bob"), "10"])
    assert result.exit_code == 0, result.output
    table = CliRunner().invoke(climain.cli, ["userprio", "--pool", str(flow.data)]).output
    bob_line = next(line for line in table.splitlines() if line.startswith(flow.identity("bob")))
    assert bob_line.split()[3] == "10.00"
    for agent in agents:
        agent.close()


def test_claim_reuse_hands_the_next_job_of_the_group(flow: Flow) -> None:
    agent = FakeStartd(flow, "glidein-r", "r-1", [slot_ad("slot1@glidein-r", "r-1")])
    agent.advertise()
    cluster = submit(flow, "alice", count=5)
    claims = wait_for(lambda: agent.poll(wait=2.0), what="a claim")
    assert len(claims) == 1
    claim_id = claims[0]["claim_id"]
    assert agent.run_claim(claims[0]) == 5  # one claim, five jobs, no new negotiation
    hist = flow.queue.history(f"ClusterId == {cluster}")
    assert sorted(j["ProcId"] for j in hist) == [0, 1, 2, 3, 4]
    for j in hist:  # each job's own output came back
        assert (flow.data / "schedd" / "spool" / str(cluster) / str(j["ProcId"]) / "output" / "out.txt").read_text() \
            == f"{cluster}.{j['ProcId']} on slot1@glidein-r\n"
    assert {j["LastRemoteHost"] for j in hist} == {"slot1@glidein-r"}
    starts = [e for p in range(5) for e in flow.queue.events(cluster, p) if e.type == "execute"]
    assert len(starts) == 5
    # the released claim is gone: heartbeats for it are unknown
    assert agent.heartbeat([claim_id])["unknown"] == [claim_id]
    agent.close()


def test_claim_without_heartbeats_sends_the_job_back_to_idle(flow: Flow) -> None:
    dead = FakeStartd(flow, "glidein-d", "d-1", [slot_ad("slot1@glidein-d", "d-1")])
    dead.advertise()
    cluster = submit(flow, "alice", count=1)
    claims = wait_for(lambda: dead.poll(wait=2.0), what="a claim")
    assert flow.queue.get(cluster, 0)["JobStatus"] == 2
    # heartbeats keep it: still running past the timeout
    for _ in range(3):
        time.sleep(CLAIM_TIMEOUT / 2)
        assert dead.heartbeat([claims[0]["claim_id"]])["renewed"] == [claims[0]["claim_id"]]
    assert flow.queue.get(cluster, 0)["JobStatus"] == 2
    # the agent is killed: no more heartbeats
    dead.collector.invalidate("Machine")
    wait_for(lambda: flow.queue.get(cluster, 0)["JobStatus"] == 1, timeout=CLAIM_TIMEOUT * 4, what="eviction")
    events = [e.type for e in flow.queue.events(cluster, 0)]
    assert events[-2:] == ["execute", "evicted"]
    with pytest.raises(ServiceError) as info:
        dead.schedd.post(f"/v1/claims/{claims[0]['claim_id']}/complete", {"exit_code": 0})
    assert info.value.status == 404
    # another agent picks the job up and completes it
    alive = FakeStartd(flow, "glidein-e", "e-1", [slot_ad("slot1@glidein-e", "e-1")])
    alive.advertise()
    again = wait_for(lambda: alive.poll(wait=2.0), what="a new claim")
    assert alive.run_claim(again[0]) == 1
    assert flow.queue.history(f"ClusterId == {cluster}")[0]["LastRemoteHost"] == "slot1@glidein-e"
    dead.close()
    alive.close()


def test_another_identity_cannot_claim_a_slots_match(flow: Flow) -> None:
    owner = FakeStartd(flow, "glidein-o", "o-1", [slot_ad("slot1@glidein-o", "o-1")])
    thief = FakeStartd(flow, "glidein-x", "o-1", [])  # same agent id and slot names, other token
    owner.advertise()
    cluster = submit(flow, "alice", count=1)
    wait_for(lambda: flow.negotiator.last.accepted >= 1 or flow.queue.get(cluster, 0)["JobStatus"] != 1,
             what="a match")
    assert thief.poll(wait=0.5, slots=["slot1@glidein-o"]) == []
    assert flow.queue.get(cluster, 0)["JobStatus"] == 1
    claims = owner.poll(wait=2.0)
    assert [c["slot"] for c in claims] == ["slot1@glidein-o"]
    # and the thief can neither renew nor act on the owner's claim
    claim_id = claims[0]["claim_id"]
    assert thief.heartbeat([claim_id])["unknown"] == [claim_id]
    with pytest.raises(ServiceError) as info:
        thief.schedd.post(f"/v1/claims/{claim_id}/complete", {"exit_code": 0})
    assert info.value.status == 403
    assert owner.run_claim(claims[0]) == 1
    owner.close()
    thief.close()


def test_removed_job_is_reported_stopped_and_hold_keeps_reason(flow: Flow) -> None:
    agent = FakeStartd(flow, "glidein-h", "h-1", [slot_ad(f"slot{i}@glidein-h", "h-1") for i in (1, 2)])
    agent.advertise()
    cluster = submit(flow, "alice", count=2)
    claims = wait_for(lambda: agent.poll(wait=2.0), what="claims")
    if len(claims) < 2:
        claims += wait_for(lambda: agent.poll(wait=2.0), what="the second claim")
    by_job = {c["job"]["ProcId"]: c["claim_id"] for c in claims}
    with flow.schedd("alice") as s:
        s.act("remove", [f"{cluster}.0"])
    assert agent.heartbeat(list(by_job.values()))["stopped"] == [by_job[0]]
    agent.schedd.post(f"/v1/claims/{by_job[0]}/release", {})
    agent.schedd.post(f"/v1/claims/{by_job[1]}/hold", {"reason": "memory limit of 2048 MiB exceeded", "code": 34})
    held = flow.queue.get(cluster, 1)
    assert held["JobStatus"] == 5 and held["HoldReason"] == "memory limit of 2048 MiB exceeded"
    assert held["HoldReasonCode"] == 34
    agent.close()


@pytest.mark.parametrize("flow", [60.0], indirect=True)
def test_new_work_starts_a_cycle_early(flow: Flow) -> None:
    """With a 60 s interval, a new slot and a new job still meet within a couple of seconds."""
    wait_for(lambda: flow.negotiator.cycles >= 1, what="the first cycle")
    agent = FakeStartd(flow, "glidein-n", "n-1", [slot_ad("slot1@glidein-n", "n-1")])
    agent.advertise()
    t0 = time.monotonic()
    submit(flow, "alice", count=1)
    claims = wait_for(lambda: agent.poll(wait=1.0), timeout=5.0, what="a claim")
    assert time.monotonic() - t0 < 4.0
    assert flow.negotiator.last.trigger != "interval"
    assert agent.run_claim(claims[0]) == 1
    # a reschedule request starts one too
    cycles = flow.negotiator.cycles
    with SyncServiceClient(flow.negotiator_url, token=flow.token("alice"), service="negotiator") as neg:
        assert neg.post("/v1/reschedule", {})["triggered"] is True
        wait_for(lambda: flow.negotiator.cycles > cycles, timeout=5.0, what="the rescheduled cycle")
        status = neg.get("/v1/status")
    assert status["last"]["trigger"].startswith("reschedule by alice@")
    agent.close()
