"""Simulated sites behind the factory's Backend interface."""

from __future__ import annotations

import random
from pathlib import Path

from gwms.factory.backends.base import Backend, BackendError, PilotSpec, SiteState
from gwms.factory.config import EntryConfig
from gwms.simulate.events import EventLoop
from gwms.simulate.pool import Pool, glidein_lifetime
from gwms.simulate.scenario import SiteSpec
from gwms.simulate.sites import SimBackend, SimSite


def _spec(i: int, **env: str) -> PilotSpec:
    return PilotSpec(pilot_id=f"f.v1.{i}.0", argv=[], env={"GLIDEIN_Client": "fe.main", **env},
                     stdout=Path("/dev/null"), stderr=Path("/dev/null"), cpus=1, memory_mb=1000,
                     walltime_s=0, workdir=None)


def _site(**spec) -> tuple[EventLoop, Pool, SimSite]:
    loop = EventLoop()
    pool = Pool(loop, "schedd", 1000, 60)
    entry = EntryConfig(name="e1", attrs={"GLIDEIN_Site": "S1", "GLIDEIN_CPUS": 1, "GLIDEIN_MaxMemMBs": 2000})
    site = SimSite(entry, SiteSpec.model_validate({"startup": 0, "queue_delay": 10, **spec}), loop, pool,
                   random.Random(1), "f", "v1")
    return loop, pool, site


def test_backend_protocol_and_states() -> None:
    loop, pool, site = _site(capacity=1)
    backend = SimBackend(site)
    assert isinstance(backend, Backend)
    ids = backend.submit([_spec(1), _spec(2)])
    assert all(isinstance(i, str) for i in ids)
    assert backend.submit([_spec(1)]) == [ids[0]]  # idempotent per pilot id
    st = backend.poll([*ids, "nope"])
    assert [s.state for s in st.values()] == [SiteState.PENDING, SiteState.PENDING, SiteState.UNKNOWN]
    loop.run(20)
    st = backend.poll(ids)
    assert st[ids[0]].state is SiteState.RUNNING and st[ids[1]].state is SiteState.PENDING  # capacity 1
    assert len(pool.slot_ads) == 1
    backend.remove([ids[0]])
    assert backend.poll([ids[0]])[ids[0]].state is SiteState.REMOVED
    assert pool.slot_ads == {}
    loop.run(30)
    assert backend.poll([ids[1]])[ids[1]].state is SiteState.RUNNING  # the freed slot went to the next


def test_refusals_and_deaths_at_start() -> None:
    loop, _, site = _site(capacity=5, submit_refusal_rate=1.0)
    assert all(isinstance(r, BackendError) for r in site.submit([_spec(i) for i in range(3)]))
    loop, _, site = _site(capacity=1, failure_rate=1.0)
    # thousands waiting for one batch slot, each dying as it starts: no recursion blow-up
    ids = site.submit([_spec(i) for i in range(3000)])
    loop.run(100)
    states = {s.state for s in site.poll(ids).values()}
    assert states == {SiteState.FAILED}
    assert site.stats.failed_at_start == 3000 and site.busy == 0


def test_lifetime_comes_from_the_glidein_config() -> None:
    policy = glidein_lifetime({"GLIDEIN_Retire_Time": 3600, "GLIDEIN_Max_Idle": 300,
                               "GLIDEIN_BLACKHOLE_NUMJOBS": 4, "GLIDEIN_BLACKHOLE_RATE": 0.1})
    assert (policy.retire_time, policy.max_idle, policy.blackhole_numjobs, policy.blackhole_rate) == (3600, 300, 4, 0.1)
    default = glidein_lifetime({})
    assert default.retire_time == 6 * 3600 and default.blackhole_numjobs == 0
    # a glidein with no job exits after max idle, and the site reports it completed
    loop, pool, site = _site(capacity=1)
    site.entry.attrs["GLIDEIN_Max_Idle"] = 300
    [sid] = site.submit([_spec(1)])
    loop.run(200)
    assert site.poll([sid])[sid].state is SiteState.RUNNING
    loop.run(400)
    status = site.poll([sid])[sid]
    assert status.state is SiteState.COMPLETED and status.exit_code == 0
    assert "max idle" in status.reason
    assert pool.stats.glideins_ended == 1
