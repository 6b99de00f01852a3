"""``gwms up`` as a person uses it: start, submit, look, crash a service, stop, resume."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def gwms(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "gwms", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"gwms {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def start_up(cwd: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gwms", "up"], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if "gwms is up" in line:
            return proc
    proc.kill()
    raise AssertionError("gwms up did not come up:\n" + "".join(seen))


def wait_down(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=60)
    return out


def child_pids(data: Path) -> dict[str, int]:
    """The service pids, from the processes whose command line names this data dir (or,
    for the log server and indexer, its ``monitor/``)."""
    pids = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [c.decode(errors="replace") for c in cmd]
        if "--data" not in words:
            continue
        if str(data) in words and "run" in words:
            pids[words[words.index("run") - 1]] = int(entry.name)
        elif str(data / "monitor") in words and "logs" in words:
            pids[{"serve": "logs", "index": "indexer"}[words[words.index("logs") + 1]]] = int(entry.name)
    return pids


def test_up_submit_crash_down_resume(tmp_path: Path) -> None:
    # 64 CPUs: no entry of the embedded factory can run these, so they stay in the queue
    (tmp_path / "job.sub").write_text("executable = /bin/echo\narguments = hi $(Process)\nrequest_cpus = 64\nqueue 5\n")
    up = start_up(tmp_path)
    data = (tmp_path / "gwms-data").resolve()
    try:
        client = json.loads((data / "client.json").read_text())
        assert client["collector"].startswith("http://127.0.0.1:")
        assert oct((data / "client.json").stat().st_mode & 0o777) == "0o600"
        out = gwms("submit", "job.sub", cwd=tmp_path).stdout
        assert "5 job(s) submitted to cluster 1" in out
        q = gwms("q", cwd=tmp_path).stdout
        assert "Total for query: 5 jobs" in q and "5 idle" in q
        # the schedd ad reaches the collector
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            st = gwms("status", "-schedd", "-af", "Name", "TotalIdleJobs", cwd=tmp_path).stdout.split()
            if len(st) == 2 and st[1] == "5":
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"schedd ad never showed 5 idle jobs: {st}")
        # kill -9 the schedd: the supervisor restarts it and the queue is intact
        pids = child_pids(data)
        assert set(pids) == {"collector", "schedd", "negotiator", "factory", "frontend", "web", "logs",
                             "indexer"}, pids
        # up.json: the ports kept for the next start, and the URLs
        state = json.loads((data / "up.json").read_text())
        assert set(state["ports"]) == {"collector", "wms", "schedd", "negotiator", "factory", "logs", "frontend",
                                       "web"}
        assert state["urls"]["factory"] == f"http://127.0.0.1:{state['ports']['factory']}"
        assert client["web"] == state["urls"]["web"] == f"http://127.0.0.1:{state['ports']['web']}"
        first_ports = state["ports"]
        os.kill(pids["schedd"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            proc = gwms("q", "-af", "ClusterId", "ProcId", cwd=tmp_path, check=False)
            if proc.returncode == 0 and len(proc.stdout.split("\n")) > 5:
                break
            time.sleep(0.5)
        assert proc.returncode == 0, proc.stderr
        assert len(proc.stdout.strip().splitlines()) == 5
        assert child_pids(data)["schedd"] != pids["schedd"]
        # a second `gwms up` on the same directory is refused while this one runs
        again = gwms("up", cwd=tmp_path, check=False)
        assert again.returncode != 0 and "already running" in again.stderr
    finally:
        down = gwms("down", cwd=tmp_path, check=False)
        log = wait_down(up)
    assert "stopped gwms up" in down.stdout, (down.stderr, log)
    assert "gwms is down" in log
    assert child_pids(data) == {}
    # resume: the queue is still there
    up = start_up(tmp_path)
    try:
        q = gwms("q", cwd=tmp_path).stdout
        assert "Total for query: 5 jobs" in q
        # the same ports, so the web UI's URL is the one printed before
        assert json.loads((data / "up.json").read_text())["ports"] == first_ports
        # the metrics' history is kept on disk across restarts
        assert {"schedd.sqlite", "factory.sqlite", "web.sqlite"} <= {p.name for p in (data / "history").iterdir()}
        # the frontend saw them and asked no entry for glideins: none can run them
        status = json.loads(gwms("frontend", "status", "-json", cwd=tmp_path).stdout)
        entries = status["groups"]["main"]["entries"]
        assert sorted(e["entry"] for e in entries) == ["siteA@v1@gwms-up", "siteB@v1@gwms-up", "siteC@v1@gwms-up"]
        assert all(e["min_idle"] == 0 for e in entries), entries
        assert "0 pilot(s)" in gwms("factory", "q", cwd=tmp_path).stdout
    finally:
        gwms("down", cwd=tmp_path, check=False)
        wait_down(up)


def test_up_config_overrides_the_generated_configs(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(
        "factory:\n  loop_delay: 2\n  entries:\n    siteB:\n      limits: {entry: {glideins: 2, idle: 2, held: 1}}\n"
        "    siteD:\n      attrs: {GLIDEIN_Site: SiteD, GLIDEIN_CPUS: 8, GLIDEIN_MaxMemMBs: 16000}\n"
        "frontend:\n  groups:\n    main:\n      limits: {running_glideins_per_entry: {max: 2}}\n")
    up = subprocess.Popen(
        [sys.executable, "-m", "gwms", "up", "--config", "mine.yaml"], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    data = tmp_path / "gwms-data"
    try:
        assert up.stdout is not None
        lines = []
        for line in up.stdout:
            lines.append(line)
            if "gwms is up" in line:
                break
        text = "".join(lines)
        assert "gwms is up" in text, text
        for title in ("web UI", "user pool collector", "WMS collector", "schedd", "negotiator", "factory",
                      "frontend", "log server"):
            assert re.search(rf"^  {title} +http://127\.0\.0\.1:\d+$", text, re.MULTILINE), (title, text)
        import yaml

        factory = yaml.safe_load((data / "factory" / "factory.yaml").read_text())
        assert factory["loop_delay"] == 2
        entries = {e["name"]: e for e in factory["entries"]}
        assert list(entries) == ["siteA", "siteB", "siteC", "siteD"]
        assert entries["siteB"]["limits"]["entry"] == {"glideins": 2, "idle": 2, "held": 1}
        assert entries["siteB"]["attrs"]["GLIDEIN_CPUS"] == 2  # the rest of siteB is kept
        frontend = yaml.safe_load((data / "frontend" / "frontend.yaml").read_text())
        assert frontend["groups"]["main"]["limits"]["running_glideins_per_entry"] == {"max": 2}
        assert frontend["groups"]["main"]["match"]["match_expr"]  # kept
        out = gwms("factory", "entries", cwd=tmp_path).stdout
        assert "siteD" in out
    finally:
        gwms("down", cwd=tmp_path, check=False)
        wait_down(up)


def test_up_config_errors_are_one_line_and_leave_nothing_running(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("factroy:\n  loop_delay: 2\n")
    proc = gwms("up", "--config", "bad.yaml", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "factroy" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    (tmp_path / "typo.yaml").write_text("factory:\n  loop_dealy: 2\n")
    proc = gwms("up", "--config", "typo.yaml", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "loop_dealy" in proc.stderr and "factory.yaml" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert child_pids((tmp_path / "gwms-data").resolve()) == {}


def test_commands_without_a_pool_say_how_to_start_one(tmp_path: Path) -> None:
    proc = gwms("q", cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert "no pool at" in proc.stderr and "gwms up" in proc.stderr
    assert "Traceback" not in proc.stderr
