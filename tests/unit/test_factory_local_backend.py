"""The local backend: pilots as process groups, tracked through files (survives restarts)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gwms.factory.backends import BackendConfigError, BackendContext, backend_names, create_backend
from gwms.factory.backends.base import Backend, PilotSpec, SiteState, SiteStatus
from gwms.factory.backends.local import LocalBackend, LocalSettings
from gwms.factory.backends.slurm import SlurmJob, site_status


def spec(tmp: Path, pid: str, script: str, walltime: int = 0, env: dict[str, str] | None = None) -> PilotSpec:
    return PilotSpec(
        pilot_id=pid, argv=["/bin/sh", "-c", script], env=env or {},
        stdout=tmp / "logs" / f"{pid}.out", stderr=tmp / "logs" / f"{pid}.err",
        cpus=1, memory_mb=100, walltime_s=walltime, workdir=None,
    )


def wait_for(backend: LocalBackend, sid: str, states: set[SiteState], timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        st = backend.poll([sid])[sid]
        if st.state in states or time.monotonic() > deadline:
            return st
        time.sleep(0.05)


@pytest.fixture()
def backends(tmp_path: Path) -> Iterator[list[LocalBackend]]:
    made: list[LocalBackend] = []
    yield made
    for b in made:  # end our own pilots only, by their process group ids
        for pgid in b.pids().values():
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def make(backends: list[LocalBackend], tmp: Path, **settings) -> LocalBackend:
    b = LocalBackend(tmp / "state", LocalSettings(**settings))
    backends.append(b)
    return b


def test_registry_knows_local_and_checks_settings(tmp_path):
    assert {"local", "slurm"} <= set(backend_names())
    b = create_backend("local", {"slots": 3}, BackendContext("e1", tmp_path / "s"))
    assert isinstance(b, Backend) and b.slots == 3
    with pytest.raises(BackendConfigError, match="slots"):
        create_backend("local", {"slots": -1}, BackendContext("e1", tmp_path / "s"))
    with pytest.raises(BackendConfigError, match="unknown backend 'lcoal'.*did you mean 'local'"):
        create_backend("lcoal", {}, BackendContext("e1", tmp_path / "s"))


def test_a_pilot_runs_writes_its_output_and_completes(backends, tmp_path):
    b = make(backends, tmp_path, slots=2)
    s = spec(tmp_path, "p1", 'echo "out $GLIDEIN_X"; echo err >&2; sleep 0.3', env={"GLIDEIN_X": "42"})
    assert b.submit([s]) == ["p1"]
    assert b.poll(["p1"])["p1"].state is SiteState.RUNNING
    st = wait_for(b, "p1", {SiteState.COMPLETED, SiteState.FAILED})
    assert st.state is SiteState.COMPLETED and st.exit_code == 0
    b.collect_output("p1", s)
    assert s.stdout.read_text() == "out 42\n" and s.stderr.read_text() == "err\n"
    assert not (tmp_path / "state" / "p1" / "spec.json").exists()  # secrets gone once ended


def slurm_view(state: str, exit_code: int, sig: int = 0, reason: str = "") -> SiteStatus:
    """What the slurm backend reports for a job that ended that way."""
    return site_status(SlurmJob("1", state, reason, exit_code, sig))


@pytest.mark.parametrize(
    ("script", "slurm"),
    [
        ("exit 0", slurm_view("COMPLETED", 0)),
        ("exit 3", slurm_view("FAILED", 3, reason="NonZeroExitCode")),
        ("exit 6", slurm_view("FAILED", 6, reason="NonZeroExitCode")),
        ("kill -9 $$", slurm_view("FAILED", 0, 9, reason="NonZeroExitCode")),
    ],
)
def test_a_finished_pilot_is_completed_with_its_exit_code_as_in_slurm(backends, tmp_path, script, slurm):
    # one state model for every backend: a pilot that ran is COMPLETED with its exit code
    # (128 + N for signal N), whatever the code; the factory judges the code, not the site
    b = make(backends, tmp_path)
    b.submit([spec(tmp_path, "p1", script)])
    st = wait_for(b, "p1", {SiteState.COMPLETED, SiteState.FAILED})
    assert slurm.state is SiteState.COMPLETED
    assert (st.state, st.exit_code) == (slurm.state, slurm.exit_code)
    if script.startswith("kill"):
        assert st.exit_code == 128 + 9 and "SIGKILL" in st.reason


def test_a_missing_program_is_its_exit_code_not_a_site_failure(backends, tmp_path):
    # the shell ran and reported 127, as a Slurm batch script whose exec fails
    b = make(backends, tmp_path)
    s = PilotSpec("p1", ["/nonexistent/glidein"], {}, tmp_path / "o", tmp_path / "e", 1, 1, 0, None)
    b.submit([s])
    st = wait_for(b, "p1", {SiteState.COMPLETED, SiteState.FAILED})
    assert (st.state, st.exit_code) == (SiteState.COMPLETED, 127)
    assert slurm_view("FAILED", 127, reason="NonZeroExitCode").state is SiteState.COMPLETED


def test_failed_is_only_the_sites_verdict(backends, tmp_path):
    # a pilot the site could not start: FAILED, as Slurm's launch failures
    b = make(backends, tmp_path, shell="/nonexistent/sh")
    b.submit([spec(tmp_path, "p1", "exit 0")])
    st = wait_for(b, "p1", {SiteState.COMPLETED, SiteState.FAILED})
    assert st.state is SiteState.FAILED and "could not start" in st.reason
    assert slurm_view("FAILED", 1, reason="JobLaunchFailure").state is SiteState.FAILED


def test_a_held_pilot_waits_until_released(backends, tmp_path):
    b = make(backends, tmp_path, slots=1)
    b.submit([spec(tmp_path, "a", "sleep 0.3"), spec(tmp_path, "b", "echo b")])
    assert b.hold("b", "gatekeeper temporarily unavailable")
    assert not b.hold("a", "too late")  # running pilots cannot be held (as scontrol hold)
    assert wait_for(b, "a", {SiteState.COMPLETED}).state is SiteState.COMPLETED
    for _ in range(3):  # a free slot does not start a held pilot
        st = b.poll(["b"])["b"]
        assert st.state is SiteState.HELD and st.reason == "gatekeeper temporarily unavailable"
        time.sleep(0.05)
    again = make(backends, tmp_path, slots=1)  # the hold survives a factory restart
    assert again.poll(["b"])["b"].state is SiteState.HELD
    again.release(["b"])
    assert wait_for(again, "b", {SiteState.COMPLETED}).exit_code == 0
    assert not again.hold("b", "ended")


def test_slots_queue_pilots_as_pending(backends, tmp_path):
    b = make(backends, tmp_path, slots=1)
    b.submit([spec(tmp_path, "a", "sleep 0.4"), spec(tmp_path, "b", "sleep 0.1")])
    states = b.poll(["a", "b"])
    assert states["a"].state is SiteState.RUNNING and states["b"].state is SiteState.PENDING
    wait_for(b, "a", {SiteState.COMPLETED})
    assert wait_for(b, "b", {SiteState.COMPLETED}).state is SiteState.COMPLETED


def test_zero_slots_keep_everything_idle(backends, tmp_path):
    b = make(backends, tmp_path, slots=0)
    b.submit([spec(tmp_path, "a", "true")])
    time.sleep(0.1)
    assert b.poll(["a"])["a"].state is SiteState.PENDING
    b.remove(["a"])
    assert b.poll(["a"])["a"].state is SiteState.REMOVED


def test_submit_is_idempotent_per_pilot_id(backends, tmp_path):
    b = make(backends, tmp_path)
    marker = tmp_path / "count"
    s = spec(tmp_path, "p1", f"echo x >> {marker}; sleep 0.2")
    assert b.submit([s]) == ["p1"]
    assert b.submit([s]) == ["p1"]
    wait_for(b, "p1", {SiteState.COMPLETED})
    assert marker.read_text() == "x\n"


def test_remove_kills_the_whole_process_group(backends, tmp_path):
    b = make(backends, tmp_path, kill_grace_s=0.5)
    child_pid = tmp_path / "child"
    b.submit([spec(tmp_path, "p1", f"sleep 30 & echo $! > {child_pid}; wait")])
    deadline = time.monotonic() + 5
    while not child_pid.exists() or not child_pid.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child = int(child_pid.read_text())
    b.remove(["p1"])
    st = wait_for(b, "p1", {SiteState.REMOVED})
    assert st.state is SiteState.REMOVED
    deadline = time.monotonic() + 5
    while Path(f"/proc/{child}").exists():
        stat = Path(f"/proc/{child}/stat").read_text() if Path(f"/proc/{child}/stat").exists() else ""
        if ") Z" in stat:
            break
        assert time.monotonic() < deadline, "the pilot's child survived removal"
        time.sleep(0.05)


def test_unknown_ids_are_unknown(backends, tmp_path):
    b = make(backends, tmp_path)
    st = b.poll(["nope", "../etc"])
    assert st["nope"].state is SiteState.UNKNOWN and st["../etc"].state is SiteState.UNKNOWN
    b.remove(["nope"])
    b.release(["nope"])


def test_a_new_backend_finds_running_and_queued_pilots(backends, tmp_path):
    first = make(backends, tmp_path, slots=1)
    first.submit([spec(tmp_path, "a", "sleep 0.6"), spec(tmp_path, "b", "echo b")])
    assert first.poll(["a"])["a"].state is SiteState.RUNNING
    # the factory restarts: a new backend object over the same state directory
    second = make(backends, tmp_path, slots=1)
    states = second.poll(["a", "b"])
    assert states["a"].state is SiteState.RUNNING and states["b"].state is SiteState.PENDING
    assert wait_for(second, "a", {SiteState.COMPLETED}).exit_code == 0
    assert wait_for(second, "b", {SiteState.COMPLETED}).exit_code == 0
    assert (tmp_path / "logs" / "b.out").read_text() == "b\n"


def test_a_reused_pid_is_not_our_pilot(backends, tmp_path):
    b = make(backends, tmp_path)
    b.submit([spec(tmp_path, "a", "sleep 0.1")])
    wait_for(b, "a", {SiteState.COMPLETED})
    d = tmp_path / "state" / "a"
    (d / "rc").unlink()  # as if it died without an exit code, its pid now used by another process
    (d / "pid").write_text(str(os.getpid()))
    fresh = make(backends, tmp_path)
    st = fresh.poll(["a"])["a"]
    assert st.state is SiteState.FAILED and "without an exit code" in st.reason
    fresh.remove(["a"])  # must not signal this test process


def test_walltime_is_enforced(backends, tmp_path):
    b = make(backends, tmp_path, kill_grace_s=0.2)
    b.submit([spec(tmp_path, "a", "sleep 30", walltime=1)])
    st = wait_for(b, "a", {SiteState.FAILED}, timeout=10)
    assert st.state is SiteState.FAILED and "walltime" in st.reason
