"""Submit-to-running latency of the whole system (issue 6): ``gwms up`` with its default
settings, empty (no glidein yet), then one ``gwms submit`` of one job; the time until the
schedd says the job runs (JobStatus 2).

What the time holds: the schedd's ad update (the frontend watches the schedds' idle
counts every 0.5 s), the frontend's cycle and its request ad, the factory reading the
request (every 0.5 s) and submitting a glidein, the glidein's bootstrap (stage files,
validation, the startd agent), its slot ad, a negotiation cycle (every second) and the
claim. The original needs minutes (60 s loops on both sides plus site queueing); the
target is under 10 s.

Each trial starts a fresh ``gwms up`` on a new directory (so the system is really
empty) and stops it afterwards; the figure is the median of ``--trials`` (default 3),
with the split: submit -> first glidein submitted by the factory -> slot in the user
pool -> running. Writes benchmarks/results/submit_latency.json and prints one line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "submit_latency.json"
TARGET_SECONDS = 10.0
SUBMIT = """executable = /bin/sleep
arguments = 1
transfer_executable = false
queue 1
"""


def wait_for(check: Any, timeout: float, interval: float = 0.02) -> Any:
    """Poll ``check`` until it returns something true (RuntimeError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception:  # noqa: BLE001 - a service still starting
            value = None
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError("timed out")


def trial(workdir: Path) -> dict[str, float]:
    """One fresh ``gwms up``, one job; the times (seconds from the submit)."""
    from gwms.net import SyncServiceClient
    from gwms.pool.collector.client import CollectorClient
    from gwms.pool.schedd.client import ScheddClient
    from gwms.security import scopes
    from gwms.security.layout import SecurityLayout

    data = workdir / "data"
    log = open(workdir / "up.out", "w")  # noqa: SIM115
    up = subprocess.Popen([sys.executable, "-m", "gwms", "up", "--data", str(data)], stdout=log,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_for(lambda: "gwms is up" in (workdir / "up.out").read_text(), 120, 0.1)
        urls = json.loads((data / "up.json").read_text())["urls"]
        client = json.loads((data / "client.json").read_text())
        token = SecurityLayout(data).mint_token("bench", [scopes.READ])
        wms = CollectorClient(urls["wms"], token=token, timeout=10)
        pool = CollectorClient(urls["collector"], token=token, timeout=10)
        factory = SyncServiceClient(urls["factory"], token=token, timeout=10, service="factory")
        schedd = ScheddClient(urls["schedd"], token=client["token"], timeout=30)
        # the system is ready when the frontend has seen the entries (its requests are out)
        wait_for(lambda: len(wms.query("glideclient")) >= 3, 60, 0.1)
        time.sleep(1.0)
        t0 = time.monotonic()
        cluster = schedd.submit_text(SUBMIT, base_dir=workdir).cluster_id
        times: dict[str, float] = {}

        def look() -> bool:
            now = time.monotonic() - t0
            if "glidein_submitted" not in times and any(
                    p["state"] != "unsubmitted" for p in factory.get("/v1/pilots")["pilots"]):
                times["glidein_submitted"] = now
            if "slot_in_pool" not in times and pool.query("Machine", projection=["Name"]):
                times["slot_in_pool"] = now
            jobs = schedd.query(f"ClusterId == {cluster}", projection=["JobStatus"])
            if jobs and jobs[0]["JobStatus"] == 2:
                times["running"] = now
                return True
            return False

        wait_for(look, 120, 0.05)
        for c in (wms, pool, factory, schedd):
            c.close()
        return times
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
        log.close()


def main() -> None:
    """Run the trials, write the JSON, print one line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for _ in range(args.trials):
        with tempfile.TemporaryDirectory(prefix="gwms-bench-latency-") as tmp:
            runs.append(trial(Path(tmp)))
    running = [r["running"] for r in runs]
    median = statistics.median(running)
    result = {
        "benchmark": "submit_latency",
        "what": "gwms submit of one job on an empty gwms up (default settings) until it runs",
        "target_seconds": TARGET_SECONDS,
        "median_seconds": round(median, 2),
        "min_seconds": round(min(running), 2),
        "max_seconds": round(max(running), 2),
        "trials": [{k: round(v, 2) for k, v in r.items()} for r in runs],
        "load_average": os.getloadavg(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "node": platform.node()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    split = statistics.median(r.get("glidein_submitted", float("nan")) for r in runs)
    slot = statistics.median(r.get("slot_in_pool", float("nan")) for r in runs)
    print(f"submit_latency: median {median:.2f} s to running (min {min(running):.2f}, max {max(running):.2f}; "
          f"glidein submitted {split:.2f} s, slot in pool {slot:.2f} s; target < {TARGET_SECONDS:g} s; "
          f"load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
