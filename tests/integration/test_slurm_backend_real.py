"""The slurm backend against a real single-node Slurm on 127.0.0.1.

The site comes from deploy/test-sites/slurm/up.sh (CI starts it before the tests; a test
run without it starts it here and stops it afterwards). Every wait is bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from slurm_site import (
    PARTITION,
    slurm_site_fixture,  # noqa: F401  (the slurm_site fixture)
)

from gwms.factory.backends import BackendContext, BackendError, create_backend
from gwms.factory.backends.base import PilotSpec, SiteState, SiteStatus
from gwms.factory.backends.slurm import SlurmBackend, SlurmSettings

pytestmark = pytest.mark.integration

PILOT = "echo out-$GWMS_TEST_WORD; echo err-$GWMS_TEST_WORD >&2; sleep 2; exit 3"


@pytest.fixture()
def backend(slurm_site: None, tmp_path: Path) -> SlurmBackend:
    """A backend made the way the factory makes it (registry + entry settings)."""
    made = create_backend(
        "slurm",
        {"partition": PARTITION, "collect_timeout_s": 5},
        BackendContext(entry="slurm-test", state_dir=tmp_path / "state"),
    )
    assert isinstance(made, SlurmBackend)
    return made


def spec(tmp_path: Path, name: str, script: str, **kw: object) -> PilotSpec:
    """A pilot running ``sh -c script`` with its logs in ``tmp_path/logs``."""
    logs = tmp_path / "logs dir %j"  # a space and a '%' that Slurm must not expand
    fields: dict = {
        "pilot_id": f"{name}-{time.time_ns()}",
        "argv": ["/bin/sh", "-c", script],
        "env": {"GWMS_TEST_WORD": "hello world"},
        "stdout": logs / f"{name}.out",
        "stderr": logs / f"{name}.err",
        "cpus": 1,
        "memory_mb": 64,
        "walltime_s": 600,
        "workdir": None,
    }
    fields.update(kw)
    return PilotSpec(**fields)


def with_settings(backend: SlurmBackend, **changes: object) -> SlurmSettings:
    """``backend``'s settings with ``changes``, validated as the configuration would be."""
    return SlurmSettings.model_validate({**backend.settings.model_dump(), **changes})


def wait_for(
    check: Callable[[], dict[str, SiteStatus] | None], timeout: float, what: str
) -> dict[str, SiteStatus]:
    """Call ``check`` every 0.1 s until it returns something, at most ``timeout`` s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = check()
        if got is not None:
            return got
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


def test_pilots_run_and_complete_with_their_exit_code(backend: SlurmBackend, tmp_path: Path):
    pilots = [spec(tmp_path, f"p{i}", PILOT) for i in range(3)]
    t0 = time.monotonic()
    ids = backend.submit(pilots)
    assert all(isinstance(i, str) and i.isdigit() for i in ids), ids
    job_ids = [str(i) for i in ids]
    assert len(set(job_ids)) == 3

    seen: dict[str, set[SiteState]] = {i: set() for i in job_ids}
    first_running: dict[str, float] = {}

    def all_completed() -> dict[str, SiteStatus] | None:
        states = backend.poll(job_ids)
        for job_id, status in states.items():
            seen[job_id].add(status.state)
            if status.state is SiteState.RUNNING:
                first_running.setdefault(job_id, time.monotonic() - t0)
        done = all(s.state is SiteState.COMPLETED for s in states.values())
        return states if done else None

    final = wait_for(all_completed, 30, "3 pilots COMPLETED")
    for job_id in job_ids:
        assert final[job_id] == SiteStatus(SiteState.COMPLETED, 3), final[job_id]
        assert seen[job_id] <= {SiteState.PENDING, SiteState.RUNNING, SiteState.COMPLETED}
    # a 2 s pilot polled every 0.1 s is seen running
    assert first_running, seen
    print(f"sbatch -> RUNNING: {sorted(first_running.values())}")

    for pilot, job_id in zip(pilots, job_ids):
        backend.collect_output(job_id, pilot)
        assert pilot.stdout.read_text() == "out-hello world\n"
        assert pilot.stderr.read_text() == "err-hello world\n"

    # submitting the same specs again starts nothing new
    assert backend.submit(pilots) == job_ids


def test_resubmission_after_a_lost_answer_finds_the_job_by_name(
    backend: SlurmBackend, tmp_path: Path
):
    pilot = spec(tmp_path, "lost", "sleep 30")
    [job_id] = backend.submit([pilot])
    try:
        # a factory that crashed before it saw sbatch's answer, with no journal
        amnesiac = SlurmBackend(backend.settings, tmp_path / "empty-state")
        assert amnesiac.submit([pilot]) == [job_id]
    finally:
        backend.remove([str(job_id)])


def test_removing_a_running_pilot(backend: SlurmBackend, tmp_path: Path):
    pilot = spec(tmp_path, "long", "echo started; sleep 300")
    [job_id] = backend.submit([pilot])
    assert isinstance(job_id, str)

    def running() -> dict[str, SiteStatus] | None:
        states = backend.poll([job_id])
        return states if states[job_id].state is SiteState.RUNNING else None

    wait_for(running, 20, "long pilot RUNNING")

    def started() -> dict[str, SiteStatus] | None:
        text = pilot.stdout.read_text() if pilot.stdout.exists() else ""
        return {} if text == "started\n" else None

    wait_for(started, 10, "long pilot printing")
    t0 = time.monotonic()
    backend.remove([job_id])

    def removed() -> dict[str, SiteStatus] | None:
        states = backend.poll([job_id])
        return states if states[job_id].state is SiteState.REMOVED else None

    final = wait_for(removed, 20, "long pilot REMOVED")
    assert time.monotonic() - t0 < 15
    assert "removed by the factory" in final[job_id].reason  # it ended on the SIGTERM
    backend.collect_output(job_id, pilot)
    assert pilot.stdout.read_text() == "started\n"
    assert "CANCELLED" in pilot.stderr.read_text()  # slurmstepd's note
    # removing again (already gone) is not an error
    backend.remove([job_id])


def test_a_pilot_that_ignores_sigterm_is_cancelled_after_the_grace(backend: SlurmBackend, tmp_path: Path):
    backend.settings = with_settings(backend, kill_grace_s=2)
    pilot = spec(tmp_path, "stubborn", "trap 'echo got TERM' TERM; echo started; while :; do sleep 0.2; done")
    [job_id] = backend.submit([pilot])
    assert isinstance(job_id, str)
    wait_for(lambda: {} if pilot.stdout.exists() and "started" in pilot.stdout.read_text() else None, 20,
             "stubborn pilot printing")
    t0 = time.monotonic()
    backend.remove([job_id])

    def removed() -> dict[str, SiteStatus] | None:
        states = backend.poll([job_id])
        return states if states[job_id].state is SiteState.REMOVED else None

    wait_for(removed, 25, "stubborn pilot REMOVED")
    assert 2 <= time.monotonic() - t0 < 20
    backend.collect_output(job_id, pilot)
    assert "got TERM" in pilot.stdout.read_text()


def test_a_held_pilot_is_held_until_released(backend: SlurmBackend, tmp_path: Path):
    held = SlurmBackend(
        with_settings(backend, extra_directives=["#SBATCH --hold"]),
        tmp_path / "held-state",
    )
    pilot = spec(tmp_path, "held", "echo ran")
    [job_id] = held.submit([pilot])
    assert isinstance(job_id, str)

    # right after sbatch the reason may still be empty; the scheduler sets JobHeldUser
    def is_held() -> dict[str, SiteStatus] | None:
        states = held.poll([job_id])
        return states if states[job_id].state is SiteState.HELD else None

    status = wait_for(is_held, 10, "pilot HELD")[job_id]
    assert status == SiteStatus(SiteState.HELD, reason="JobHeldUser")
    time.sleep(1)
    assert held.poll([job_id])[job_id].state is SiteState.HELD
    held.release([job_id])

    def completed() -> dict[str, SiteStatus] | None:
        states = held.poll([job_id])
        return states if states[job_id].state is SiteState.COMPLETED else None

    assert wait_for(completed, 20, "released pilot COMPLETED")[job_id].exit_code == 0
    held.collect_output(job_id, pilot)
    assert pilot.stdout.read_text() == "ran\n"
    held.release([job_id])  # releasing a finished job is not an error


def test_a_refused_submission_carries_slurms_message(backend: SlurmBackend, tmp_path: Path):
    bad = SlurmBackend(
        with_settings(backend, partition="no-such-partition"),
        tmp_path / "bad-state",
    )
    results = bad.submit([spec(tmp_path, "bad", "true")])
    assert len(results) == 1
    assert isinstance(results[0], BackendError)
    assert "Invalid partition name specified" in str(results[0])
    # a good pilot in the same call as a refused one still starts
    good, refused = backend.submit(
        [spec(tmp_path, "good", "true"), spec(tmp_path, "huge", "true", memory_mb=10**9)]
    )
    assert isinstance(good, str)
    assert isinstance(refused, BackendError)
    assert "sbatch refused pilot huge-" in str(refused)
    backend.remove([good])


def test_unknown_and_malformed_ids_are_unknown(backend: SlurmBackend):
    states = backend.poll(["999999999", "not-a-job"])
    assert states["999999999"].state is SiteState.UNKNOWN
    assert states["not-a-job"].state is SiteState.UNKNOWN
