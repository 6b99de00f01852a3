"""End-to-end throughput of zero-length jobs through real startd agents (issue 4).

Starts, each as its own process on 127.0.0.1: ``gwms collector run``, ``gwms schedd run``,
``gwms negotiator run`` and ``--agents`` startd agents (``python -m gwms.glidein.startd
run --slots N``). Then:

- ``first_job``: an agent started while idle jobs wait; seconds from the agent's start
  record to its first job starting (both from its ``StartdEvents.jsonl``; the slot ad
  appears in between). Target < 2 s.
- ``throughput``: ``--jobs`` zero-length jobs (``/bin/true``, one cluster, so claims are
  reused) submitted at once; completed jobs per second from the submit to the last
  completion (the schedd's history), with every agent already running. Target >= 200
  jobs/s with 10 agents x 10 slots on this 2-core machine.

The CPU time of every process (services and agents, from /proc) is reported beside the
wall-clock figures. Writes benchmarks/results/startd.json and prints one line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gwms.pool.schedd.client import ScheddClient
from gwms.security import scopes
from gwms.security.layout import ensure_pool_keys

RESULTS = Path(__file__).resolve().parent / "results" / "startd.json"
LISTEN_RE = re.compile(r"listening on (\S+)")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (and its reaped children)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return sum(int(x) for x in fields[11:15]) / TICKS
    except OSError:
        return 0.0


def service(args: list[str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``gwms <service> run ...`` and wait for its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "gwms", *args], stdout=subprocess.PIPE,
                            stderr=open(log, "ab"), stdin=subprocess.DEVNULL,  # noqa: SIM115
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        m = LISTEN_RE.search(line)
        if m:
            return proc, m.group(1)
        if not line:
            break
    proc.kill()
    raise RuntimeError(f"{args[0]} did not start; see {log}")


def agent(data: Path, collector: str, token: Path, name: str, slots: int, *extra: str) -> subprocess.Popen[bytes]:
    """Start one startd agent with ``slots`` static slots."""
    work = data / "agents" / name
    work.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "gwms.glidein.startd", "run", "--collector", collector, "--token", str(token),
         "--name", f"{name}@bench", "--slots", str(slots), "--cpus", str(slots), "--memory", str(slots * 1024),
         "--disk", str(slots * 1_000_000), "--workdir", str(work / "execute"), "--log-dir", str(work / "log"),
         "--schedd-refresh", "1", *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(work / "stderr", "ab"),
    )


def events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def stamp(record: dict[str, Any]) -> float:
    from datetime import datetime

    return datetime.fromisoformat(record["timestamp"]).timestamp()


def completed(schedd: ScheddClient, cluster: int) -> int:
    return len(schedd.history(constraint=f"ClusterId == {cluster}", limit=10**6, projection=["ProcId"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--slots", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="gwms-bench-startd-"))
    layout = ensure_pool_keys(data)
    token = data / "glidein.token"
    token.write_text(layout.mint_token("glidein", (scopes.READ, scopes.ADVERTISE_STARTD)))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        collector, curl = service(["collector", "run", "--data", str(data), "--port", "0"], data / "collector.log")
        procs.append(collector)
        schedd_proc, surl = service(["schedd", "run", "--data", str(data), "--port", "0", "--collector", curl,
                                     "--advertise-interval", "1", "--history-retention", str(args.jobs * 2 + 100)],
                                    data / "schedd.log")
        procs.append(schedd_proc)
        negotiator, _ = service(["negotiator", "run", "--data", str(data), "--collector", curl, "--interval", "1",
                                 "--watch-interval", "0.2"], data / "negotiator.log")
        procs.append(negotiator)
        schedd = ScheddClient(surl, token=layout.mint_token("alice", (scopes.READ, scopes.WRITE)))
        submit = "executable = /bin/true\ntransfer_executable = false\nqueue {n}\n"

        # -- first job on a new slot --------------------------------------------------
        first_cluster = schedd.submit_text(submit.format(n=5), base_dir=data).cluster_id
        time.sleep(1.0)  # the schedd ad and the idle jobs are known before the slot appears
        probe = agent(data, curl, token, "probe", 1)
        procs.append(probe)
        log = data / "agents" / "probe" / "log" / "StartdEvents.jsonl"
        deadline = time.monotonic() + 60
        first_job = None
        while time.monotonic() < deadline:
            recs = events(log)
            starts = [r for r in recs if r.get("type") == "start"]
            jobs = [r for r in recs if r.get("type") == "job_start"]
            if starts and jobs:
                first_job = stamp(jobs[0]) - stamp(starts[0])
                break
            time.sleep(0.05)
        while completed(schedd, first_cluster) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        probe.send_signal(signal.SIGTERM)
        probe.wait(30)

        # -- throughput ---------------------------------------------------------------
        agents = [agent(data, curl, token, f"a{i}", args.slots) for i in range(args.agents)]
        procs.extend(agents)
        time.sleep(3.0)  # every agent advertised and polling
        cpu_before = {p.pid: cpu_seconds(p.pid) for p in procs if p.poll() is None}
        t0 = time.monotonic()
        cluster = schedd.submit_text(submit.format(n=args.jobs), base_dir=data).cluster_id
        t_submitted = time.monotonic() - t0
        done = 0
        deadline = time.monotonic() + 600
        while done < args.jobs and time.monotonic() < deadline:
            time.sleep(0.25)
            done = completed(schedd, cluster)
        elapsed = time.monotonic() - t0
        cpu = {p.pid: cpu_seconds(p.pid) - cpu_before.get(p.pid, 0.0) for p in procs if p.poll() is None}
        names = {collector.pid: "collector", schedd_proc.pid: "schedd", negotiator.pid: "negotiator"}
        cpu_by = {names.get(pid, "agents"): 0.0 for pid in cpu}
        for pid, sec in cpu.items():
            cpu_by[names.get(pid, "agents")] += sec
        rate = done / elapsed if elapsed > 0 else 0.0
        result = {
            "benchmark": "startd",
            "agents": args.agents,
            "slots_per_agent": args.slots,
            "jobs": args.jobs,
            "completed": done,
            "seconds": round(elapsed, 3),
            "submit_seconds": round(t_submitted, 3),
            "jobs_per_second": round(rate, 1),
            "target_jobs_per_second": 200,
            "first_job_seconds": round(first_job, 3) if first_job is not None else None,
            "target_first_job_seconds": 2.0,
            "cpu_seconds": {k: round(v, 2) for k, v in cpu_by.items()},
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(
            f"startd: {done}/{args.jobs} zero-length jobs in {elapsed:.1f} s = {rate:.0f} jobs/s "
            f"({args.agents} agents x {args.slots} slots; target 200); first job on a new slot after "
            f"{first_job if first_job is None else round(first_job, 2)} s (target 2); cpu s {result['cpu_seconds']}"
        )
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGQUIT if p not in procs[:3] else signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        if not args.keep:
            import shutil

            shutil.rmtree(data, ignore_errors=True)
        else:
            print(f"data kept in {data}")


if __name__ == "__main__":
    main()
