"""The starter running real processes (gwms.glidein.starter)."""

from __future__ import annotations

import io
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gwms.glidein.daemonlog import DaemonLogs
from gwms.glidein.procwatch import Watcher
from gwms.glidein.starter import (
    ABORTED,
    COMPLETED,
    HELD,
    VACATED,
    JobResult,
    JobRun,
    SlotContext,
    StarterPolicy,
    job_maxrss_mb,
)

SLOT = SlotContext(
    name="slot1@g@host", short="slot1", cpus=2, memory_mb=150, disk_kb=10**6,
    machine_ad={"Name": "slot1@g@host", "Cpus": 2}, published_env={"GLIDEIN_Site": "SiteA", "GLIDEIN_CPUS": "2"},
)


@pytest.fixture()
def watcher() -> Iterator[Watcher]:
    w = Watcher(0.05)
    w.start()
    yield w
    w.stop()


class Runner:
    def __init__(self, tmp: Path, watcher: Watcher) -> None:
        self.tmp = tmp
        self.watcher = watcher
        self.logs = DaemonLogs(tmp / "log")
        self.n = 0

    def job(self, ad: dict[str, Any], **kw: Any) -> JobRun:
        self.n += 1
        full = {"ClusterId": 5, "ProcId": self.n, **ad}
        return JobRun(full, kw.pop("slot", SLOT), self.tmp / "execute" / f"dir_{self.n}", watcher=self.watcher,
                      logs=self.logs, policy=kw.pop("policy", StarterPolicy(kill_grace=0.5)), **kw)

    def run(self, ad: dict[str, Any], fetch: Any = None, **kw: Any) -> tuple[JobRun, JobResult]:
        run = self.job(ad, **kw)
        return run, run.run(fetch)


@pytest.fixture()
def r(tmp_path: Path, watcher: Watcher) -> Runner:
    return Runner(tmp_path, watcher)


def sh(script: str, **extra: Any) -> dict[str, Any]:
    return {"Cmd": "/bin/sh", "Arguments": "-c '" + script.replace("'", "''") + "'", **extra}


def files(result: JobResult) -> dict[str, bytes]:
    assert result.output is not None
    with tarfile.open(result.output) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf if m.isreg()}  # type: ignore[union-attr]


def test_exit_codes_stdout_stderr_and_outputs(r: Runner) -> None:
    run, res = r.run(sh("echo to-out; echo to-err >&2; echo data > result.txt; exit 7", Out="job.out", Err="job.err"))
    assert res.outcome == COMPLETED and res.exit_code == 7 and res.exit_signal is None
    assert res.wall_seconds >= 0 and res.cpu_seconds >= 0
    assert files(res) == {"job.out": b"to-out\n", "job.err": b"to-err\n", "result.txt": b"data\n"}
    assert res.completion().keys() == {"exit_code", "exit_signal", "wall_seconds", "cpu_seconds", "peak_memory_mb"}
    run.cleanup()
    assert not run.sandbox.exists() and not res.output.exists()  # type: ignore[union-attr]


def test_same_file_for_stdout_and_stderr(r: Runner) -> None:
    _, res = r.run(sh("echo one; echo two >&2; echo three", Out="all.log", Err="all.log"))
    assert files(res) == {"all.log": b"one\ntwo\nthree\n"}


def test_killed_by_a_signal(r: Runner) -> None:
    _, res = r.run(sh("kill -SEGV $$"))
    assert res.outcome == COMPLETED and res.exit_signal == 11 and res.exit_code is None


def test_environment(r: Runner) -> None:
    _, res = r.run(sh("env > env.txt", Environment="A=1 B='x y' GLIDEIN_Site=Override"))
    env = dict(line.split("=", 1) for line in files(res)["env.txt"].decode().splitlines())
    sandbox = env["_CONDOR_SCRATCH_DIR"]
    assert env["A"] == "1" and env["B"] == "x y"
    assert env["GLIDEIN_Site"] == "Override" and env["GLIDEIN_CPUS"] == "2", "job environment wins over published attributes"
    assert env["_CONDOR_JOB_AD"] == sandbox + "/.job.ad" and env["_CONDOR_MACHINE_AD"] == sandbox + "/.machine.ad"
    assert env["_CONDOR_SLOT"] == "slot1" and env["TMPDIR"] == sandbox and env["OMP_NUM_THREADS"] == "2"
    assert sandbox.startswith("/") and "PATH" not in env, "the agent's own environment is not passed on"


def test_job_ad_file(r: Runner) -> None:
    _, res = r.run(sh('cat "$_CONDOR_JOB_AD" > ad.txt; cat "$_CONDOR_MACHINE_AD" > machine.txt', Owner="alice",
                      Requirements="/Expr(TARGET.Cpus > 1)/"))
    got = files(res)
    ad = got["ad.txt"].decode()
    assert 'Owner = "alice"\n' in ad and "Requirements = TARGET.Cpus > 1\n" in ad and "ClusterId = 5\n" in ad
    assert got["machine.txt"] == b'Name = "slot1@g@host"\nCpus = 2\n'
    assert ".job.ad" not in got


def test_arguments_old_syntax(r: Runner) -> None:
    _, res = r.run({"Cmd": "/bin/echo", "Args": 'a  b\\"c', "Out": "o"})
    assert files(res)["o"] == b'a b"c\n'


def test_transferred_executable_and_stdin(r: Runner) -> None:
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as tf:
        for name, data, mode in (("prog.sh", b"#!/bin/sh\nrev\n", 0o644), ("in.txt", b"abc\n", 0o644)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tf.addfile(info, io.BytesIO(data))

    def fetch(sink: Any) -> bool:
        sink.write(tar.getvalue())
        return True

    _, res = r.run({"Cmd": "/submit/dir/prog.sh", "GwmsSpooledInput": True, "In": "/submit/dir/in.txt", "Out": "o"}, fetch)
    assert res.outcome == COMPLETED and res.exit_code == 0
    assert files(res) == {"o": b"cba\n"}, "inputs that did not change are not sent back"


def test_missing_executable_is_held(r: Runner) -> None:
    _, res = r.run({"Cmd": "/no/such/exe"})
    assert res.outcome == HELD and res.hold_code == 6
    assert "/no/such/exe" in res.reason and "No such file or directory" in res.reason
    _, res = r.run({"Cmd": "missing.sh", "GwmsSpooledInput": True}, lambda sink: False)
    assert res.outcome == HELD and res.hold_code == 6


def test_not_executable_is_held(r: Runner, tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("no shebang, no exec bit")
    _, res = r.run({"Cmd": str(plain)})
    assert res.outcome == HELD and res.hold_code == 6 and "Permission denied" in res.reason


def test_missing_or_unreadable_input_is_held(r: Runner) -> None:
    _, res = r.run({"Cmd": "/bin/cat", "In": "never-sent.txt"})
    assert res.outcome == HELD and res.hold_code == 13 and "never-sent.txt" in res.reason
    _, res = r.run({"Cmd": "/bin/true", "GwmsSpooledInput": True}, lambda sink: sink.write(b"garbage" * 100) > 0)
    assert res.outcome == HELD and res.hold_code == 13 and "input" in res.reason.lower()


def test_missing_listed_output_is_held(r: Runner) -> None:
    _, res = r.run(sh("echo x > made.txt", TransferOutput="made.txt,not-made.txt"))
    assert res.outcome == HELD and res.hold_code == 12 and "not-made.txt" in res.reason


def test_walltime_is_enforced(r: Runner) -> None:
    began = time.monotonic()
    _, res = r.run({"Cmd": "/bin/sleep", "Arguments": "30", "MaxWallTime": 1})
    assert res.outcome == HELD and res.hold_code == 47 and "wall time of 1 seconds" in res.reason
    assert 0.9 < time.monotonic() - began < 5
    _, res = r.run({"Cmd": "/bin/sleep", "Arguments": "30", "JobMaxWallTime": 0.5})
    assert res.outcome == HELD and res.hold_code == 47


def test_sigterm_is_followed_by_sigkill(r: Runner) -> None:
    script = "trap '' TERM; sleep 30 & wait; sleep 30"
    began = time.monotonic()
    _, res = r.run(sh(script, MaxWallTime=0.5, JobMaxVacateTime=0.5))
    assert res.outcome == HELD and time.monotonic() - began < 5


def test_memory_limit_is_enforced(r: Runner) -> None:
    grow = "import time\nx = []\nfor i in range(100):\n    x.append(bytearray(20 * 1024 * 1024))\n    time.sleep(0.02)\ntime.sleep(30)\n"
    _, res = r.run({"Cmd": sys.executable, "Arguments": "-c '" + grow.replace("'", "''") + "'"},
                   policy=StarterPolicy(address_space_factor=0))
    assert res.outcome == HELD and res.hold_code == 34
    assert "memory limit of 150 megabytes" in res.reason and res.peak_memory_mb > 150


def test_address_space_limit_applies(r: Runner) -> None:
    code = "try:\n    b = bytearray(2000 * 1024 * 1024)\nexcept MemoryError:\n    raise SystemExit(42)\n"
    _, res = r.run({"Cmd": sys.executable, "Arguments": "-c '" + code + "'"}, policy=StarterPolicy(address_space_factor=2.0))
    assert res.outcome == COMPLETED and res.exit_code == 42


def test_stop_vacates_a_running_job(r: Runner) -> None:
    run = r.job({"Cmd": "/bin/sleep", "Arguments": "30"})
    box: list[JobResult] = []
    t = threading.Thread(target=lambda: box.append(run.run()))
    t.start()
    time.sleep(0.3)
    run.stop(VACATED, "the startd is shutting down")
    t.join(10)
    assert box and box[0].outcome == VACATED and box[0].reason == "the startd is shutting down"


def test_stop_before_start_runs_nothing(r: Runner) -> None:
    run = r.job(sh("echo ran > ran.txt"))
    run.stop(ABORTED, "claim gone")
    res = run.run()
    assert res.outcome == ABORTED and not (run.sandbox / "ran.txt").exists()


def test_die_time_vacates(r: Runner) -> None:
    _, res = r.run({"Cmd": "/bin/sleep", "Arguments": "30"}, die_at=time.time() + 0.5)
    assert res.outcome == VACATED and "die time" in res.reason


def test_peak_memory_from_rusage_ignores_the_agents_copy() -> None:
    assert job_maxrss_mb(30 * 1024, 30.0) == 0.0
    assert job_maxrss_mb(300 * 1024, 30.0) == 300.0


def test_starter_log(r: Runner) -> None:
    r.run({"Cmd": "/bin/true"})
    text = (r.tmp / "log" / "StarterLog.slot1").read_text()
    assert "Starting job 5.1: /bin/true" in text and "Job 5.1 exited with status 0" in text


def test_memory_limit_falls_back_to_the_request(r: Runner) -> None:
    unsized = SlotContext(name="slot1@g@host", short="slot1", cpus=1, memory_mb=0, disk_kb=0)
    assert r.job({"Cmd": "/bin/true", "RequestMemory": 64}, slot=unsized).memory_limit_mb == 64
    assert r.job({"Cmd": "/bin/true"}, slot=unsized).memory_limit_mb == 0
    assert r.job({"Cmd": "/bin/true", "RequestMemory": 64}).memory_limit_mb == 150


def test_a_large_agent_peak_is_not_blamed_on_the_job(r: Runner) -> None:
    """Linux starts a child's ru_maxrss at the parent's high-water mark; a small job run by a
    process that once used much memory (a long pytest session, a busy agent) must not be
    held for the parent's peak (seen in CI: 384 MB 'peak usage' for `sh -c exit 7`)."""
    big = bytearray(400 * 1024 * 1024)
    for i in range(0, len(big), 4096):
        big[i] = 1
    del big  # resident size falls back; the high-water mark stays
    _, res = r.run(sh("exit 7"))
    assert res.outcome == COMPLETED and res.exit_code == 7
    assert res.peak_memory_mb < 150
