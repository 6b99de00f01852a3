"""`gwms simulate` at scale (issue 8): 100k jobs x 10k glideins x 100 entries, one simulated day.

The scenario is generated (written as the same YAML files the command reads): a
factory with 100 entries (sites ``SITE_000``..``SITE_099``, each with 100 batch slots:
10,000 glideins at most), the shipped frontend's group, and 100,000 jobs: a burst of
30,000 at the start, then steady arrivals (about 3,000 an hour) for 23 hours,
runtimes around 1.5 h, a third of the steady ones pinned to a third of the sites. The real frontend
(matching, request math, encrypted requests) and factory (request reading, 100 entry
workers) run every 60 simulated seconds, as configured.

Measured: wall-clock and CPU seconds of the whole run, events processed, frontend and
entry cycles, and the simulated figures (jobs done, glideins submitted, peak glideins).
Writes benchmarks/results/simulate.json and prints one line. ``--hours`` and
``--scale`` shrink the run for a quick look.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from gwms.simulate import Simulation, load_scenario

RESULTS = Path(__file__).resolve().parent / "results" / "simulate.json"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "simulate"
TARGET_S = 600.0  # "minutes": ten at most


def write_scenario(directory: Path, *, entries: int, jobs: int, slots_per_site: int, hours: float) -> Path:
    """The generated scenario and its configs in ``directory``; the scenario's path."""
    factory = yaml.safe_load((EXAMPLES / "factory.yaml").read_text())
    factory["entries"] = [
        {"name": f"e{i:03d}", "backend": "local",
         "attrs": {"GLIDEIN_Site": f"SITE_{i:03d}", "GLIDEIN_CPUS": 1, "GLIDEIN_MaxMemMBs": 4000}}
        for i in range(entries)
    ]
    (directory / "factory.yaml").write_text(yaml.safe_dump(factory, sort_keys=False))
    frontend = yaml.safe_load((EXAMPLES / "frontend.yaml").read_text())
    (directory / "frontend.yaml").write_text(yaml.safe_dump(frontend, sort_keys=False))
    burst = int(jobs * 0.3)
    steady_hours = max(hours - 1.0, 0.5)
    rate = (jobs - burst) / steady_hours
    pinned = [f"SITE_{i:03d}" for i in range(0, entries, max(1, entries // 30))]
    scenario = {
        "name": "scale",
        "description": f"{jobs} jobs x {entries * slots_per_site} glideins x {entries} entries",
        "seed": 1,
        "duration": hours * 3600,
        "sample_interval": 300,
        "frontend": "frontend.yaml",
        "factory": "factory.yaml",
        "pool": {"max_jobs_running": 2 * entries * slots_per_site, "negotiation_interval": 60},
        "site_defaults": {"capacity": slots_per_site, "queue_delay": {"dist": "exponential", "mean": 300},
                          "startup": {"dist": "uniform", "low": 30, "high": 90}},
        "workload": [
            {"name": "burst", "pattern": "burst", "start": 0, "count": burst,
             "runtime": {"dist": "lognormal", "median": 5400, "sigma": 0.5}, "memory": 2000},
            {"name": "anywhere", "pattern": "steady", "start": 3600, "rate": rate * 2 / 3,
             "runtime": {"dist": "lognormal", "median": 5400, "sigma": 0.5}, "memory": 2000},
            {"name": "pinned", "pattern": "steady", "start": 3600, "rate": rate / 3,
             "runtime": {"dist": "lognormal", "median": 5400, "sigma": 0.5}, "memory": 2000,
             "sites": pinned},
        ],
    }
    path = directory / "scale.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; write the JSON; print one line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of jobs, entries and slots (default 1)")
    ap.add_argument("--output", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    entries = max(1, round(100 * args.scale))
    jobs = max(1, round(100_000 * args.scale))
    slots = 100
    with tempfile.TemporaryDirectory() as tmp:
        path = write_scenario(Path(tmp), entries=entries, jobs=jobs, slots_per_site=slots, hours=args.hours)
        sc = load_scenario(path)
        sim = Simulation(sc, progress=lambda line: print(line, file=sys.stderr, flush=True))
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        report = sim.run()
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    s = report["series"]
    summ = report["summary"]
    peak_glideins = max(
        (a + b + c + d for a, b, c, d in zip(s["glideins_starting"], s["glideins_idle"], s["glideins_busy"],
                                             s["glideins_retiring"], strict=True)),
        default=0,
    )
    result: dict[str, Any] = {
        "benchmark": "simulate",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "load_avg": list(os.getloadavg())},
        "scenario": {"entries": entries, "jobs": jobs, "glidein_slots": entries * slots,
                     "simulated_hours": args.hours},
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "target_s": TARGET_S,
        "met": wall <= TARGET_S,
        "events": summ["events"],
        "frontend_cycles": summ["frontend_cycles"],
        "factory_entry_cycles": summ["factory_entry_cycles"],
        "jobs_submitted": summ["jobs_submitted"],
        "jobs_done": summ["jobs_done"],
        "peak_jobs_idle": summ["peak_jobs_idle"],
        "glideins_submitted": summ["glideins_submitted"],
        "glideins_started": summ["glideins_started"],
        "peak_glideins": peak_glideins,
        "peak_jobs_running": max(s["jobs_running"], default=0),
        "wasted_glidein_hours": summ["wasted_glidein_hours"],
        "convergence_s": summ["convergence_s"],
        "stable_from_s": summ["stable_from_s"],
        "real_code_wall_s": {k: round(v, 1) for k, v in sim.timings.items()},
        "frontend_cycle_ms": round(1000 * sim.timings["frontend"] / max(1, summ["frontend_cycles"]), 1),
        "entry_cycle_ms": round(1000 * sim.timings["entry"] / max(1, summ["factory_entry_cycles"]), 2),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"simulate: {jobs} jobs x {entries * slots} glidein slots x {entries} entries, {args.hours:g} h simulated "
        f"in {wall:.0f} s wall ({cpu:.0f} s CPU; target {TARGET_S:.0f} s: {'met' if result['met'] else 'NOT met'}); "
        f"{summ['jobs_done']} jobs done, peak {peak_glideins} glideins, peak {result['peak_jobs_running']} running; "
        f"{summ['events']} events, {summ['frontend_cycles']} frontend cycles ({result['frontend_cycle_ms']} ms each) "
        f"and {summ['factory_entry_cycles']} entry cycles ({result['entry_cycle_ms']} ms each)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
