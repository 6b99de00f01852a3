"""End to end on loopback: ``kill -9`` of each service of ``gwms up`` in turn, during a
run, loses no job: the supervisor restarts it and every job completes, once, with the
right output."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_system import JobClass, Sampler, System, check_outputs, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

#: Long enough for the six kills to land while jobs run: a run of 48 jobs of 5 s once ended
#: after the fourth kill (about 2 jobs/s complete between kills), so 110 jobs of 6 s (about
#: a minute of work at that rate, while the six kills take about 35 s).
WORKLOAD = [
    JobClass("any", 80, cpus=1, memory=256, seconds=6),
    JobClass("a_only", 15, cpus=1, memory=1024, sites=("SiteA",), seconds=6),
    JobClass("bc_two", 15, cpus=2, memory=3000, sites=("SiteB", "SiteC"), seconds=6),
]
#: Every service of gwms up, in the order they are killed.
SERVICES = ["negotiator", "schedd", "collector", "wms", "factory", "frontend"]


@pytest.fixture()
def system(tmp_path: Path) -> Iterator[System]:
    sys_ = System(tmp_path)
    try:
        yield sys_
    finally:
        sys_.stop()


def test_kill_9_of_each_service_during_a_run_loses_no_job(system: System) -> None:
    total = sum(c.count for c in WORKLOAD)
    sampler = Sampler(system).start()
    try:
        submitted = [system.submit(c) for c in WORKLOAD]
        start = time.monotonic()
        done = 0
        killed: list[str] = []
        for service in SERVICES:
            # wait for progress since the last kill, then kill -9 this one
            done = wait_for(lambda d=done: (n := len(system.history())) > d and n, timeout=90, interval=0.5,
                            what=f"progress before killing the {service}", describe=system.describe)
            if done >= total:
                break
            system.kill9(service)
            killed.append(service)
            print(f"{time.monotonic() - start:5.1f} s: {done} done, killed the {service}")
        assert killed == SERVICES, f"the run ended before every service was killed: {killed}"
        wait_for(lambda: len(system.history()) >= total and not system.queue_counts(), timeout=150, interval=1.0,
                 what="every job done after the kills", describe=system.describe)
        print(f"{time.monotonic() - start:5.1f} s: all {total} done")
    finally:
        sampler.stop()
    assert not sampler.violations, sampler.violations[:10]
    check_outputs(system, submitted)  # each job exactly once in the history, exit 0, right output
    assert len(system.history()) == total
