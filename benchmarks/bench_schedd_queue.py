"""Job queue store benchmark (gwms.pool.schedd.queue.JobQueue), the targets of issue 3:

- submit rate of one 100,000-job cluster, end to end (validation, JSON encoding, one
  SQLite transaction with synchronous=FULL), target >= 10,000 jobs/s;
- query of 100,000 jobs (full ads as dicts), target < 1 s; also a hot-column query
  ("idle jobs", two attributes), an owner query, and the JSON-text path;
- peak RSS (``resource.getrusage``) of a process holding the open queue with 1,000,000
  jobs queued (one in 10 running, ``--running-every``), while it recovers, counts,
  streams all 1M ads and loads one owner's 100k, target < 2 GB;
- recovery time with 1M jobs queued: reopen + ``recover()`` (the 100,000 running jobs
  set back to idle), target < 30 s. Recovery work is proportional to the running jobs.

The 1M-job queue is built once, in a temporary directory, by a separate process; the RSS
and recovery figures come from another fresh process. Times are wall-clock medians of
a few runs, with the process CPU time beside them (the machine's 2 cores are shared, so
CPU time is the steadier figure). Writes benchmarks/results/schedd_queue.json and prints
one line. ``--jobs`` scales the 1M down for a quick run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gwms.pool.schedd.queue import JobQueue

RESULTS = Path(__file__).resolve().parent / "results" / "schedd_queue.json"
CLUSTER = 100_000


def job_ad(i: int) -> dict[str, Any]:
    """A job ad shaped like what ``gwms submit`` produces (~1 KB of JSON, 37 attributes)."""
    return {
        "MyType": "Job",
        "TargetType": "Machine",
        "JobUniverse": 5,
        "Cmd": "/home/alice/analysis/run.sh",
        "Arguments": f"--input data/part-{i:06d}.root --seed {i}",
        "Iwd": "/home/alice/analysis",
        "In": "/dev/null",
        "Out": f"out/job.{i}.out",
        "Err": f"out/job.{i}.err",
        "UserLog": "/home/alice/analysis/jobs.log",
        "Environment": "ANALYSIS_MODE=full OMP_NUM_THREADS=1",
        "RequestCpus": 1,
        "RequestMemory": 2048,
        "RequestDisk": 1048576,
        "Requirements": '/Expr(TARGET.Arch == "X86_64" && TARGET.OpSys == "LINUX" && '
        "TARGET.Memory >= RequestMemory && TARGET.Disk >= RequestDisk)/",
        "Rank": 0.0,
        "JobPrio": 0,
        "NiceUser": False,
        "ShouldTransferFiles": "YES",
        "WhenToTransferOutput": "ON_EXIT",
        "TransferInput": "run.sh,config.yaml,lib.tar.gz",
        "TransferOutput": "result.root",
        "TransferExecutable": True,
        "OnExitRemove": True,
        "OnExitHold": False,
        "PeriodicHold": False,
        "PeriodicRelease": False,
        "PeriodicRemove": "/Expr(JobStatus == 5 && time() - EnteredCurrentStatus > 86400)/",
        "MaxRetries": 3,
        "AccountingGroup": "group_physics.alice",
        "JobBatchName": "analysis-2026",
        "DESIRED_Sites": "SITE_A,SITE_B,SITE_C",
        "x509userproxysubject": "/DC=org/DC=example/OU=People/CN=Alice Analyst",
        "ImageSize": 100,
        "DiskUsage": 1,
        "NumJobStarts": 0,
        "ExitBySignal": False,
    }


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, process CPU seconds, result) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def median_of(runs: list[tuple[float, float]]) -> dict[str, float]:
    return {
        "wall_s": round(statistics.median(w for w, _ in runs), 3),
        "cpu_s": round(statistics.median(c for _, c in runs), 3),
        "best_wall_s": round(min(w for w, _ in runs), 3),
    }


def bench_submit_and_query(tmp: Path, repeats: int) -> dict[str, Any]:
    """Submit one 100k cluster into fresh queues; query the last one."""
    out: dict[str, Any] = {}
    runs = []
    queue = None
    for r in range(repeats):
        if queue is not None:
            queue.close()
        jobs = [job_ad(i) for i in range(CLUSTER)]
        queue = JobQueue.open(tmp / f"submit-{r}.db")
        wall, cpu, _ = timed(lambda: queue.submit(jobs, "alice"))
        runs.append((wall, cpu))
        del jobs
    out["submit_100k"] = median_of(runs) | {
        "jobs_per_s": round(CLUSTER / statistics.median(w for w, _ in runs)),
        "jobs_per_cpu_s": round(CLUSTER / statistics.median(c for _, c in runs)),
    }
    jobs = [job_ad(i) for i in range(CLUSTER)]
    with JobQueue.open(tmp / "submit-normal.db", synchronous="NORMAL") as normal:
        wall, cpu, _ = timed(lambda: normal.submit(jobs, "alice"))
    out["submit_100k_synchronous_normal"] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}
    del jobs

    assert queue is not None
    cases: dict[str, Callable[[], Any]] = {
        "query_100k_full": lambda: queue.query(),
        "query_100k_idle_two_attrs": lambda: queue.query("JobStatus == 1", ["ClusterId", "ProcId"]),
        "query_100k_owner_full": lambda: queue.query(owner="alice"),
        "query_100k_residual_constraint": lambda: queue.query("RequestMemory >= 2048 && NiceUser == false"),
        "query_100k_json_text": lambda: list(queue.iter_query_json()),
    }
    for name, fn in cases.items():
        runs = []
        for _ in range(repeats):
            wall, cpu, rows = timed(fn)
            assert len(rows) == CLUSTER, (name, len(rows))
            del rows
            runs.append((wall, cpu))
        out[name] = median_of(runs)
    ids = [(1, p) for p in range(CLUSTER)]
    for name, fn in [
        ("hold_100k", lambda: queue.hold(ids, "benchmark")),
        ("release_100k", lambda: queue.release(ids)),
        ("remove_100k", lambda: queue.remove(ids)),
    ]:
        wall, cpu, results = timed(fn)
        assert all(r.ok for r in results)
        out[name] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}
    queue.close()
    return out


# ---------------------------------------------------------------------- child processes


def child_build(path: Path, total: int, every: int) -> dict[str, Any]:
    """Fill a queue with ``total`` jobs in 100k clusters of 10 owners; one in ``every`` running."""
    start = time.perf_counter()
    with JobQueue.open(path) as queue:
        clusters = []
        for n in range(0, total, CLUSTER):
            size = min(CLUSTER, total - n)
            jobs = [job_ad(i) for i in range(size)]
            clusters.append((queue.submit(jobs, f"user{len(clusters) % 10}"), size))
            del jobs
        for cluster, size in clusters:
            running = [(cluster, p) for p in range(0, size, every)]
            for lo in range(0, len(running), 10_000):
                queue.set_status(
                    running[lo : lo + 10_000],
                    2,
                    attrs={"RemoteHost": f"slot1@wn{cluster}.example", "ClaimId": f"claim-{cluster}"},
                )
        counts = queue.counts_by_status()
    return {
        "build_s": round(time.perf_counter() - start, 1),
        "counts": counts,
        "db_mb": round(sum(f.stat().st_size for f in path.parent.glob(path.name + "*")) / 2**20),
    }


def vm_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def child_measure(path: Path) -> dict[str, Any]:
    """Reopen + recover the big queue, then use it; report times and peak RSS."""
    out: dict[str, Any] = {"rss_mb_before_open": vm_rss_mb()}
    wall, cpu = time.perf_counter(), time.process_time()
    queue = JobQueue.open(path)
    report = queue.recover()
    out["recovery"] = {
        "wall_s": round(time.perf_counter() - wall, 2),
        "cpu_s": round(time.process_time() - cpu, 2),
        "running": report.running,
        "evicted": report.evicted,
    }
    out["rss_mb_after_recover"] = vm_rss_mb()
    w, c, counts = timed(queue.counts_by_status)
    out["counts_by_status"] = {"wall_s": round(w, 3), "counts": counts}
    w, c, by_owner = timed(queue.counts_by_owner)
    out["counts_by_owner_s"] = round(w, 3)
    w, c, idle = timed(lambda: queue.query("JobStatus == 1", ["ClusterId", "ProcId"], owner="user3"))
    out["idle_of_one_owner"] = {"wall_s": round(w, 3), "jobs": len(idle)}
    del idle
    w, c, streamed = timed(lambda: sum(1 for _ in queue.iter_query()))
    out["stream_all_ads"] = {"wall_s": round(w, 1), "cpu_s": round(c, 1), "jobs": streamed}
    w, c, rows = timed(lambda: queue.query(owner="user3"))
    out["query_owner_100k_full"] = {"wall_s": round(w, 3), "cpu_s": round(c, 3), "jobs": len(rows)}
    out["rss_mb_holding_100k_ads"] = vm_rss_mb()
    del rows
    queue.close()
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def run_child(*args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1_000_000, help="jobs queued for the RSS and recovery figures")
    ap.add_argument("--repeats", type=int, default=3, help="runs per timed figure (median reported)")
    ap.add_argument(
        "--running-every", type=int, default=10, help="one job in N of the big queue is running (default 10)"
    )
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, path = args.child[0], Path(args.child[1])
        if kind == "build":
            result = child_build(path, int(args.child[2]), int(args.child[3]))
        else:
            result = child_measure(path)
        print(json.dumps(result))
        return

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="gwms-bench-queue-") as tmp:
        tmpd = Path(tmp)
        small = bench_submit_and_query(tmpd, args.repeats)
        for f in tmpd.glob("submit-*"):
            f.unlink()
        big = tmpd / "big" / "queue.db"
        built = run_child("build", str(big), str(args.jobs), str(args.running_every))
        measured = run_child("measure", str(big))

    results = {
        "benchmark": "schedd_queue",
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": round(load_before, 2),
        "load_average_at_end": round(os.getloadavg()[0], 2),
        "cluster_jobs": CLUSTER,
        **small,
        "queued_jobs": args.jobs,
        "running_every": args.running_every,
        "build": built,
        "big_queue": measured,
        "targets": {
            "submit_jobs_per_s": ">= 10000",
            "query_100k_s": "< 1",
            "peak_rss_mb_1m": "< 2048",
            "recovery_s_1m": "< 30",
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"schedd_queue: submit {small['submit_100k']['jobs_per_s']} jobs/s "
        f"(100k cluster, {small['submit_100k']['wall_s']} s); "
        f"query 100k {small['query_100k_full']['wall_s']} s full, "
        f"{small['query_100k_idle_two_attrs']['wall_s']} s idle ids; "
        f"{args.jobs} queued: peak RSS {measured['peak_rss_mb']} MB, "
        f"recovery {measured['recovery']['wall_s']} s ({measured['recovery']['evicted']} evicted); "
        f"load {load_before:.1f}"
    )


if __name__ == "__main__":
    main()
