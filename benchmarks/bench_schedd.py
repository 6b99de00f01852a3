"""Schedd service benchmark: the issue's targets, measured over HTTP against a real process.

- submit rate of one ``queue 100000`` through ``ScheddClient.submit_file`` (parse, expand,
  send, store, acknowledge), target >= 10k jobs/s;
- query of 100k jobs over HTTP (full ads and a two-attribute projection), target < 1 s;
- schedd RSS with 1M jobs queued, target < 2 GB;
- recovery after ``kill -9`` with 1M jobs queued (restart until it answers a query), < 30 s.

Writes benchmarks/results/schedd.json and prints one line. ``--jobs`` scales the 1M down
for a quick run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from service_procs import ServiceProcess  # noqa: E402

from gwms.pool.schedd.client import ScheddClient  # noqa: E402
from gwms.security import scopes  # noqa: E402
from gwms.security.layout import ensure_pool_keys  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "schedd.json"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1_000_000, help="jobs queued for the RSS and recovery figures")
    ap.add_argument("--batch", type=int, default=100_000, help="jobs per submit")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="gwms-bench-schedd-") as tmp:
        tmpd = Path(tmp)
        data = tmpd / "pool"
        layout = ensure_pool_keys(data)
        token = layout.mint_token("bench", [scopes.READ, scopes.WRITE])
        sub = tmpd / "bench.sub"
        sub.write_text(
            "executable = /bin/true\narguments = job $(Process)\ntransfer_executable = false\n"
            "request_memory = 2GB\nrequirements = (OpSys == \"LINUX\")\n"
            f"+Project = \"bench\"\nqueue {args.batch}\n"
        )
        log = tmpd / "schedd.log"
        schedd = ServiceProcess(["schedd", "run", "--data", str(data), "--port", "0",
                                 "--history-retention", "0"], log)
        port = schedd.url.rsplit(":", 1)[1]
        out: dict[str, object] = {
            "benchmark": "schedd", "date": time.strftime("%Y-%m-%d"), "machine": platform.node(),
            "python": platform.python_version(), "batch": args.batch,
        }
        with ScheddClient(schedd.url, token=token, timeout=600) as client:
            t0 = time.perf_counter()
            client.submit_file(sub, base_dir=tmpd)
            submit_s = time.perf_counter() - t0
            out["submit_seconds"] = round(submit_s, 3)
            out["submit_jobs_per_s"] = round(args.batch / submit_s)

            t0 = time.perf_counter()
            jobs = client.query()
            out["query_full_seconds"] = round(time.perf_counter() - t0, 3)
            t0 = time.perf_counter()
            client.query(projection=["ClusterId", "ProcId"])
            out["query_projection_seconds"] = round(time.perf_counter() - t0, 3)
            out["query_jobs"] = len(jobs)
            del jobs

            queued = args.batch
            while queued < args.jobs:
                client.submit_file(sub, base_dir=tmpd)
                queued += args.batch
                print(f"  queued {queued} jobs", file=sys.stderr)
            out["queued_jobs"] = queued
            client.query("ClusterId == 1 && ProcId == 0")  # touch the queue
            out["rss_mb_with_queue"] = round(rss_mb(schedd.proc.pid), 1)
            out["peak_rss_mb"] = round(hwm_mb(schedd.proc.pid), 1)

        schedd.kill()
        t0 = time.perf_counter()
        schedd = ServiceProcess(["schedd", "run", "--data", str(data), "--port", port], log, timeout=120)
        with ScheddClient(schedd.url, token=token, timeout=600) as client:
            client.query("ClusterId == 1 && ProcId == 0")
        out["recovery_seconds"] = round(time.perf_counter() - t0, 3)
        schedd.stop()

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(
        f"schedd: submit {out['submit_jobs_per_s']} jobs/s (target >= 10000); query {out['query_jobs']} jobs "
        f"{out['query_full_seconds']} s full, {out['query_projection_seconds']} s projected (target < 1 s); "
        f"RSS {out['rss_mb_with_queue']} MB with {out['queued_jobs']} jobs (target < 2048); "
        f"recovery {out['recovery_seconds']} s (target < 30)"
    )


if __name__ == "__main__":
    main()
