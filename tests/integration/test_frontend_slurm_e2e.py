"""End to end with a real frontend, a real factory and the real Slurm site.

Real services on 127.0.0.1: a user pool (collector, schedd, negotiator), a WMS collector,
a factory with two entries -- ``slurm1`` (backend ``slurm``, site ``SlurmSite``, the real
glidein from its stage area served over HTTP) and ``other1`` (backend ``local``, site
``OtherSite``) -- and the frontend service itself (:class:`FrontendService` behind its HTTP
app), one group matching jobs to entries by CPUs, memory and ``DESIRED_Sites``. The Slurm
site is deploy/test-sites/slurm/ (CI starts it before the tests, as root; a run without
it starts it here).

Six jobs: five for ``SlurmSite`` (two clusters), one for a site no entry serves. The
frontend requests glideins for ``slurm1`` only; the factory submits pilots to Slurm; they
join the pool with the ``GLIDEIN_*`` slot attributes; the frontend counts them as its
glideins at ``slurm1``; the five jobs complete with the right output, the sixth stays
idle and ``gwms q -analyze`` says no entry can run it. A sampler thread checks the limits
all along (Slurm's queue, the factory's pilots, the pool's slots, the frontend's
requests). When the queue of runnable jobs is empty, the group's configured removal
(``glideins_removal: ALL``) takes the pilots out of Slurm, and their ``.out``/``.err``
are in the factory's client log tree. Every wait is bounded; a failure prints the
frontend's status, the factory's entries and pilots with the tail of their ``.err``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from factory_fixtures import Wms, start_wms, write_fake_glidein
from factory_pool import Chain, UserPool, glidein_entry, start_chain, start_user_pool
from slurm_site import (
    PARTITION,
    scancel_ours,
    slurm_site_fixture,  # noqa: F401  (the slurm_site fixture)
    squeue,
)

from gwms.embedded.upconfig import MATCH_EXPR
from gwms.factory.states import PilotState
from gwms.frontend.config import FrontendConfig
from gwms.frontend.service import FrontendService, create_frontend_app
from gwms.monitor.outfile import parse_out
from gwms.monitor.sections import split_err
from gwms.net import ServiceServer
from gwms.pool.clientfile import PoolClientInfo, write_client_file
from gwms.security import scopes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

#: The most glideins at the Slurm entry: the frontend's and the factory's limit alike.
MAX_PILOTS = 3
SLURM_ENTRY = "slurm1@v1@gf"
OTHER_ENTRY = "other1@v1@gf"
#: Seconds the whole test may take (it needs about 15): every wait stops there.
TEST_BUDGET_S = 100.0

WORK_SH = """#!/bin/sh
# NAME N SECONDS: say where, compute something checkable, sleep like real work.
echo "job=$1.$2 site=${GLIDEIN_Site:-unknown} square=$(($2 * $2))"
sleep "$3"
echo "job=$1.$2 done"
"""

JOBS = {
    # cluster name -> (DESIRED_Sites, count, request_memory)
    "alpha": ("SlurmSite", 3, 256),
    "beta": ("SlurmSite,Elsewhere", 2, 384),
    "nowhere": ("Nowhere", 1, 128),
}


def frontend_config(wms: Wms, pool: UserPool) -> dict[str, Any]:
    """One group ``main``: ``gwms up``'s match (CPUs, memory, DESIRED_Sites), at most
    :data:`MAX_PILOTS` glideins per entry, no ramp-up attenuation, and the configured
    removal ALL once an entry had no idle job for one cycle; cycles every second."""
    return {
        "frontend_name": "vofe",
        "loop_delay": 1.0,
        "wms_collectors": [{"url": wms.url, "factory_identity": f"factory@{wms.domain}",
                            "my_identity": f"vofrontend@{wms.domain}"}],
        "user_pool": {"collectors": [pool.collector_url]},
        "security": {"security_name": "vofe",
                     "credentials": [{"name": "pool", "signing_key_dir": str(pool.layout.keys_dir)}]},
        "groups": {"main": {
            "match": {"match_expr": MATCH_EXPR,
                      "job": {"match_attrs": ["DESIRED_Sites", "RequestCpus", "RequestMemory"]}},
            "limits": {
                "running_glideins_per_entry": {"max": MAX_PILOTS},
                "idle_glideins_per_entry": {"max": MAX_PILOTS, "reserve": 1},
                "ramp_up_attenuation": 1,
                "partitionable_glidein": {"min_memory": 128},
                "glideins_removal": {"type": "ALL", "wait": 1},
            },
        }},
    }


@dataclass
class Samples:
    """The highest counts seen by the sampler, and every limit violation it saw."""

    squeue: int = 0
    factory: dict[str, int] = field(default_factory=dict)
    slots: dict[str, int] = field(default_factory=dict)
    requested: dict[str, int] = field(default_factory=dict)
    frontend_glideins: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    count: int = 0

    def high(self, where: dict[str, int], key: str, value: int) -> None:
        where[key] = max(where.get(key, 0), value)


@dataclass
class System:
    """The chain (user pool, WMS collector, factory) and the frontend service."""

    chain: Chain
    frontend: FrontendService
    frontend_url: str
    prefix: str
    tmp: Path
    samples: Samples = field(default_factory=Samples)
    #: time.monotonic() by which the whole test must be done: every wait stops there
    deadline: float = float("inf")
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    # ------------------------------------------------------------ looking at it

    def entry_status(self, entry: str) -> dict[str, Any]:
        """The frontend's status of one entry of group ``main`` (empty before a cycle)."""
        for e in self.frontend.status()["groups"]["main"]["entries"]:
            if e["entry"] == entry:
                return dict(e)
        return {}

    def glideresource(self, entry: str) -> dict[str, Any]:
        """The frontend's ``glideresource`` ad of an entry, from the user collector."""
        with self.chain.pool.collector() as c:
            ads = c.query("glideresource", constraint=f'GlideFactoryName == "{entry}"')
        return ads[0] if ads else {}

    def diagnose(self) -> str:
        """Frontend status, Slurm's queue, the sampler's figures, the factory's entries and
        pilots with the tail of their logs."""
        try:
            status = json.dumps(self.frontend.status()["groups"]["main"], indent=1, default=str)
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            status = f"(no status: {exc})"
        try:
            queue = str(squeue(self.prefix))
        except Exception as exc:  # noqa: BLE001
            queue = f"(squeue failed: {exc})"
        return (f"--- frontend status (group main):\n{status}\n--- squeue (ours): {queue}\n"
                f"--- sampler: {self.samples}\n--- factory:\n{self.chain.diagnose()}")

    def wait(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        """Call ``check`` until it gives something true, at most ``timeout`` s, else fail
        with ``what`` and :meth:`diagnose`."""
        deadline = min(time.monotonic() + timeout, self.deadline)
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                budget = " (the test's time budget is spent)" if deadline == self.deadline else ""
                raise AssertionError(f"{what}: not within {timeout:g} s{budget}\n{self.diagnose()}")
            time.sleep(0.2)

    # ------------------------------------------------------------ the sampler

    def start_sampler(self) -> None:
        self._thread = threading.Thread(target=self._sample_loop, name="e2e-sampler", daemon=True)
        self._thread.start()

    def stop_sampler(self) -> Samples:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        return self.samples

    def _sample_loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.sample()
            except Exception as exc:  # noqa: BLE001 - a failed look is recorded, not fatal
                self.samples.errors.append(repr(exc))

    def sample(self) -> None:
        """One look at every count the limits bound."""
        s = self.samples
        s.count += 1
        in_slurm = len(squeue(self.prefix))
        s.squeue = max(s.squeue, in_slurm)
        if in_slurm > MAX_PILOTS:
            s.violations.append(f"{in_slurm} pilots in Slurm")
        for entry in ("slurm1", "other1"):
            active = len(self.chain.service.store.query(entry=entry, active_only=True))
            s.high(s.factory, entry, active)
            if active > MAX_PILOTS:
                s.violations.append(f"factory: {active} pilots at {entry}")
        slots: dict[str, int] = {}
        for ad in self.chain.pool.slots():
            name = str(ad.get("GLIDEIN_Entry_Name"))
            slots[name] = slots.get(name, 0) + 1
        for name, n in slots.items():
            s.high(s.slots, name, n)
            if n > MAX_PILOTS:
                s.violations.append(f"pool: {n} slots of {name}")
        for entry in (SLURM_ENTRY, OTHER_ENTRY):
            st = self.entry_status(entry)
            if not st:
                continue
            s.high(s.requested, entry, st["min_idle"])
            s.high(s.frontend_glideins, entry, st["glideins"]["total"])
            if st["min_idle"] > MAX_PILOTS or st["max_run"] > MAX_PILOTS:
                s.violations.append(f"frontend asked {st['min_idle']} idle / {st['max_run']} max at {entry}")


@pytest.fixture()
def system(slurm_site: None, tmp_path: Path) -> Iterator[System]:
    prefix = f"gwmsfe2e-{uuid.uuid4().hex[:8]}-"
    trust = tmp_path / "trust"   # one set of keys: WMS collector and user pool share a trust domain
    wms_gen = start_wms(trust)
    wms: Wms = next(wms_gen)
    pool_gen = start_user_pool(trust)
    pool: UserPool = next(pool_gen)
    limits = {"entry": {"glideins": MAX_PILOTS, "idle": MAX_PILOTS, "held": 2},
              "per_frontend": {"glideins": MAX_PILOTS, "idle": MAX_PILOTS, "held": 2}}
    slurm = glidein_entry("slurm1", "slurm",
                          {"partition": PARTITION, "job_name_prefix": prefix, "collect_timeout_s": 10},
                          GLIDEIN_Site="SlurmSite")
    slurm["limits"] = limits
    other = {
        "name": "other1", "backend": "local", "backend_settings": {"slots": 2, "kill_grace_s": 1},
        "pilot_command": [str(write_fake_glidein(tmp_path))],
        "attrs": {"GLIDEIN_Site": "OtherSite", "GLIDEIN_CPUS": 1, "GLIDEIN_MaxMemMBs": 512,
                  "GLIDEIN_Supported_VOs": "test"},
        "limits": limits,
    }
    chain_gen = start_chain(
        tmp_path, wms, pool, slurm, entries=[slurm, other],
        frontends={"vofe": {"identity": f"vofrontend@{wms.domain}", "security_classes": {"frontend": "fe1"}}},
    )
    chain = next(chain_gen)
    layout = pool.layout
    service = FrontendService(
        FrontendConfig.model_validate(frontend_config(wms, pool)),
        wms_token=layout.mint_token("vofrontend", [scopes.ADVERTISE_FRONTEND, scopes.READ]),
        pool_token=layout.mint_token("vofe", [scopes.READ, scopes.ADVERTISE_FRONTEND]),
        watch_interval=0.2, min_gap=0.2,
    )
    server = ServiceServer(create_frontend_app(service, layout.verifier()), service="frontend")
    server.start()
    system = System(chain, service, server.url, prefix, tmp_path)
    try:
        yield system
    finally:
        system.stop_sampler()
        server.stop()
        scancel_ours(prefix)
        for gen in (chain_gen, pool_gen, wms_gen):
            next(gen, None)


def submit_jobs(system: System) -> dict[str, int]:
    """The six jobs; name -> cluster id."""
    work = system.tmp / "work.sh"
    work.write_text(WORK_SH)
    work.chmod(0o755)
    clusters = {}
    for name, (sites, count, memory) in JOBS.items():
        clusters[name] = system.chain.submit(system.tmp, f"""
            executable = work.sh
            arguments = {name} $(Process) 3
            output = {name}.$(Process).out
            error = {name}.$(Process).err
            request_cpus = 1
            request_memory = {memory}
            +DESIRED_Sites = "{sites}"
            requirements = stringListMember(TARGET.GLIDEIN_Site, MY.DESIRED_Sites)
            queue {count}
        """)
    return clusters


def analyze(system: System, job_id: str) -> str:
    """``gwms q -analyze JOB`` as a user runs it (client file with the pool's URLs)."""
    client_dir = system.tmp / "client"
    write_client_file(client_dir, PoolClientInfo(
        collector=system.chain.pool.collector_url, schedd=system.chain.pool.schedd_url,
        token=system.chain.pool.layout.mint_token("alice", (scopes.READ, scopes.WRITE))))
    done = subprocess.run([sys.executable, "-m", "gwms", "q", "-analyze", job_id, "--pool", str(client_dir)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def frontend_status_cli(system: System) -> dict[str, Any]:
    """``gwms frontend status --frontend URL -json`` (an admin token minted from the keys)."""
    done = subprocess.run([sys.executable, "-m", "gwms", "frontend", "status", "--frontend", system.frontend_url,
                           "--data", str(system.tmp / "trust"), "-json"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_frontend_provisions_slurm_pilots_for_the_jobs_that_can_run_there_and_removes_them_after(
    system: System,
) -> None:
    chain = system.chain
    started = time.monotonic()
    system.deadline = started + TEST_BUDGET_S
    # the frontend's first cycle sees both entries, and no job yet
    system.wait(lambda: system.entry_status(SLURM_ENTRY) and system.entry_status(OTHER_ENTRY), 15,
                "the frontend's first cycle with both entries")
    system.start_sampler()
    clusters = submit_jobs(system)
    runnable = [(clusters[n], p) for n in ("alpha", "beta") for p in range(JOBS[n][1])]

    # the next cycle (started by the new idle jobs) asks for Slurm glideins only
    slurm = system.wait(lambda: (st := system.entry_status(SLURM_ENTRY)) and st["min_idle"] > 0 and st, 15,
                        "a request for the Slurm entry")
    assert slurm["idle"] == 5 and 0 < slurm["min_idle"] <= MAX_PILOTS, slurm
    assert system.entry_status(OTHER_ENTRY)["idle"] == 0
    assert system.frontend.status()["groups"]["main"]["unmatched_idle"] == 1

    # the factory submits pilots to Slurm; they run the real glidein and join the pool
    system.wait(lambda: squeue(system.prefix), 20, "pilots in Slurm's queue")

    def slurm_slots() -> list[dict[str, Any]]:
        return [ad for ad in chain.pool.slots() if ad.get("GLIDEIN_Entry_Name") == "slurm1"]

    ads = system.wait(slurm_slots, 45, "the Slurm glideins' slots in the user pool")
    for ad in ads:
        assert ad["GLIDEIN_Factory"] == "gf" and ad["GLIDEIN_Name"] == "v1" and ad["GLIDEIN_Site"] == "SlurmSite"
        assert ad["GLIDECLIENT_Name"] == "vofe.main", ad
        pilot = chain.service.store.query(entry="slurm1", active_only=False)
        assert (ad["GLIDEIN_ClusterId"], ad["GLIDEIN_ProcId"]) in {(p.cluster, p.proc) for p in pilot}

    # the frontend counts them as its glideins at the Slurm entry (status and glideresource)
    counted = system.wait(lambda: (st := system.entry_status(SLURM_ENTRY)) and st["glideins"]["total"] > 0 and st,
                          15, "the frontend counting the Slurm glideins")
    assert counted["glideins"]["total"] <= MAX_PILOTS, counted
    res = system.wait(lambda: (ad := system.glideresource(SLURM_ENTRY))
                      and ad.get("GlideClientMonitorGlideinsTotal", 0) > 0 and ad, 15,
                      "the glideresource ad counting the Slurm glideins")
    assert res["GLIDEIN_Site"] == "SlurmSite" and res["GlideClientName"] == "vofe.main"
    assert 0 < res["GlideClientMonitorGlideinsTotal"] <= MAX_PILOTS, res
    cli = {e["entry"]: e for e in frontend_status_cli(system)["groups"]["main"]["entries"]}
    assert 0 < cli[SLURM_ENTRY]["glideins"]["total"] <= MAX_PILOTS, cli
    assert cli[OTHER_ENTRY]["glideins"]["total"] == 0 and cli[OTHER_ENTRY]["min_idle"] == 0, cli

    # every runnable job completes, with the right output, on a Slurm glidein
    with chain.pool.schedd() as s:
        def finished() -> list[dict[str, Any]]:
            done = [j for c in (clusters["alpha"], clusters["beta"])
                    for j in s.history(constraint=f"ClusterId == {c}")]
            return done if len(done) == len(runnable) else []

        history = system.wait(finished, 60, "the five runnable jobs completed")
        slot_names = {ad["Name"] for ad in chain.pool.slots() if ad.get("GLIDEIN_Entry_Name") == "slurm1"}
        for job in history:
            cluster, proc = job["ClusterId"], job["ProcId"]
            name = "alpha" if cluster == clusters["alpha"] else "beta"
            assert job["JobStatus"] == 4 and job["ExitCode"] == 0, job
            assert job["LastRemoteHost"] in slot_names, (job["LastRemoteHost"], slot_names)
            out = s.http.request("GET", f"/v1/jobs/{cluster}.{proc}/output/{name}.{proc}.out", raw=True).decode()
            assert out == f"job={name}.{proc} site=SlurmSite square={proc * proc}\njob={name}.{proc} done\n", out
        # the job no entry can run stays idle
        [stuck] = s.query(constraint=f"ClusterId == {clusters['nowhere']}")
        assert stuck["JobStatus"] == 1, stuck
    assert sorted((j["ClusterId"], j["ProcId"]) for j in history) == sorted(runnable)
    text = analyze(system, f"{clusters['nowhere']}.0")
    assert "matches 0 of 2 entries" in text and "No entry can run this job" in text, text
    assert "MATCH    vofe.main -> slurm1@v1@gf" in analyze(system, f"{clusters['alpha']}.0")

    # no idle job left for the Slurm entry: the configured removal (ALL) takes the pilots away
    submitted = chain.service.store.query(entry="slurm1", active_only=False)
    assert submitted and len(submitted) <= MAX_PILOTS
    system.wait(lambda: not squeue(system.prefix), 45, "the pilots gone from Slurm after the queue emptied")
    ended = system.wait(
        lambda: (recs := chain.service.store.query(entry="slurm1", active_only=False))
        and all(r.state is PilotState.REMOVED and r.output_collected for r in recs) and recs,
        30, "every Slurm pilot removed and its output collected")
    assert all((r.remove_reason or "").startswith("excess (ALL requested)") for r in ended), \
        [(r.pilot_id, r.remove_reason) for r in ended]
    # each glidein ended on the factory's SIGTERM (not cancelled for good after the grace)
    assert all(r.reason.startswith("removed by the factory (SIGTERM") for r in ended), \
        [(r.pilot_id, r.reason) for r in ended]
    assert system.glideresource(SLURM_ENTRY).get("GlideClientRemoveExcess") == "ALL"

    samples = system.stop_sampler()
    print(f"sampler: {samples}")
    assert samples.violations == [], samples
    assert samples.count > 10 and samples.squeue >= 1, samples
    assert samples.factory.get("other1", 0) == 0 and samples.requested.get(OTHER_ENTRY, 0) == 0, samples
    assert 1 <= samples.frontend_glideins.get(SLURM_ENTRY, 0) <= MAX_PILOTS, samples
    assert chain.service.store.query(entry="other1", active_only=False) == []

    # every pilot's .out/.err in the client log tree; together they ran the five jobs
    base = chain.log_dir()
    assert base == Path(chain.config.log_dir) / "client" / "user_fe1" / "glidein_v1" / "entry_slurm1"
    jobs_run = 0
    for rec in ended:
        out_path = base / f"job.{rec.cluster}.{rec.proc}.out"
        err_path = base / f"job.{rec.cluster}.{rec.proc}.err"
        assert (Path(rec.stdout), Path(rec.stderr)) == (out_path, err_path)
        summary = parse_out(out_path.read_text())
        assert summary.entry == "slurm1", system.diagnose()
        jobs_run += summary.jobs_run or 0
        err = split_err(err_path.read_text())
        assert {"StartdLog", "GlideinLog"} <= set(err.names()), system.diagnose()
    assert jobs_run == len(runnable), system.diagnose()
    assert time.monotonic() - started < TEST_BUDGET_S
