"""Frontend decision benchmark (issue 6): one group's cycle over 1M idle jobs, 10k clusters, 1,000 entries.

Target: under 2 s. The original GlideinWMS frontend (``countMatch`` and the request
computation) takes 0.8 s for 10k jobs / 1k clusters / 100 entries, ~98 s for 100k / 5k /
500 and more than 600 s for 1M / 10k / 1,000 on this kind of machine
(``shared/fixtures/frontend-matching/README.md``).

The workloads come from the fixture's ``gen_workload.py`` (deterministic, seed 12345):
jobs idle for 1-2 h with DESIRED_Sites (1-5 of 100 sites), RequestMemory and
RequestCpus; entries with GLIDEIN_Site, GLIDEIN_CPUS, GLIDEIN_MaxMemMBs; the group's
``match_expr`` reads the site list and the memory. Measured in-process (the queries and
the advertising are not part of it), per phase:

- ``cluster``: :func:`gwms.frontend.matching.cluster_jobs`: classify the jobs (Idle,
  OldIdle, Idle_3600, Running) and group them by the attributes the match reads;
- ``match``: :func:`~gwms.frontend.matching.match_clusters`: one evaluation per cluster
  against every entry;
- ``count``: :func:`~gwms.frontend.matching.count_matches`: count, prop (unique sets),
  hereonly, prop_mc per job class and entry;
- ``requests``: :func:`gwms.frontend.requests.compute_request` for every entry;
- ``cycle``: all four.

Times are wall-clock medians of ``--repeat`` runs with the process CPU time beside them
(the machine's 2 cores are shared with other work; the load average is recorded).
Writes benchmarks/results/frontend.json and prints one line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from gwms.frontend.classify import IDLE, OLD_IDLE
from gwms.frontend.matching import Entry, MatchPolicy, cluster_jobs, count_matches, match_clusters
from gwms.frontend.requests import EntryDemand, RequestLimits, Totals, compute_request

RESULTS = Path(__file__).resolve().parent / "results" / "frontend.json"
TARGET_SECONDS = 2.0
#: (jobs, clusters, entries) and the original frontend's time for it, where known
SIZES = {"small": (10_000, 1_000, 100, 0.8), "medium": (100_000, 5_000, 500, 98.0), "target": (1_000_000, 10_000, 1_000, 600.0)}


def find_generator() -> Path:
    """The fixture directory holding gen_workload.py (next to the repository)."""
    env = os.environ.get("GWMS_SHARED_FIXTURES")
    candidates = [Path(env) / "frontend-matching"] if env else []
    for parent in Path(__file__).resolve().parents:
        candidates.append(parent / "shared" / "fixtures" / "frontend-matching")
    for candidate in candidates:
        if (candidate / "gen_workload.py").is_file():
            return candidate
    sys.exit("bench_frontend: gen_workload.py not found (set GWMS_SHARED_FIXTURES to the fixtures directory)")


def workload(jobs: int, clusters: int, entries: int) -> dict[str, Any]:
    """A generated workload (seed 12345)."""
    sys.path.insert(0, str(find_generator()))
    import gen_workload  # type: ignore[import-not-found]

    return gen_workload.generate(jobs, clusters, entries)


def run_cycle(data: dict[str, Any], entries: list[Entry], policy: MatchPolicy, jobs: dict[str, list[Any]], now: int) -> dict[str, Any]:
    """One decision cycle; per-phase wall and CPU seconds, and a summary of the answer."""
    marks: list[tuple[float, float]] = [(time.perf_counter(), time.process_time())]
    clusters = cluster_jobs(jobs, policy, now=now)
    marks.append((time.perf_counter(), time.process_time()))
    cluster_entries, errors = match_clusters(clusters, entries, policy)
    marks.append((time.perf_counter(), time.process_time()))
    counts = count_matches(clusters, cluster_entries, entries)
    marks.append((time.perf_counter(), time.process_time()))
    limits = RequestLimits()
    totals = Totals()
    idle, old = counts[IDLE], counts[OLD_IDLE]
    requests = [
        compute_request(EntryDemand(prop_idle=idle.prop_mc[i], prop_old_idle=old.prop_mc[i]), totals, limits)
        for i in range(len(entries))
    ]
    marks.append((time.perf_counter(), time.process_time()))
    names = ["cluster", "match", "count", "requests"]
    seconds: dict[str, float] = {}
    for name, (a, b) in zip(names, itertools.pairwise(marks)):
        seconds[f"{name}_wall"] = b[0] - a[0]
        seconds[f"{name}_cpu"] = b[1] - a[1]
    seconds["cycle_wall"] = marks[-1][0] - marks[0][0]
    seconds["cycle_cpu"] = marks[-1][1] - marks[0][1]
    return {
        "seconds": seconds,
        "clusters": len(clusters),
        "errors": errors,
        "matched_pairs": sum(len(e) for e in cluster_entries),
        "unmatched_jobs": idle.unmatched,
        "sum_count": sum(idle.count),
        "sum_prop_mc": sum(idle.prop_mc),
        "sum_min_idle": sum(r.min_idle for r in requests),
        "sum_max_run": sum(r.max_run for r in requests),
    }


def measure(label: str, repeat: int) -> dict[str, Any]:
    """Generate one workload size and run the cycle ``repeat`` times."""
    n_jobs, n_clusters, n_entries, original = SIZES[label]
    data = workload(n_jobs, n_clusters, n_entries)
    entries = [
        Entry(f"{g['factory_pool_node']}|{g['glidename']}|{g['frontend_identity']}", g["glidename"], g)
        for g in data["entries"]
    ]
    policy = MatchPolicy.from_texts(data["match_expr"], match_attrs=data["match_attrs"], attr_dict=data["attr_dict"])
    jobs: dict[str, list[Any]] = {}
    for job in data["jobs"]:
        jobs.setdefault(job["ScheddName"], []).append(job)
    now = int(data["jobs"][0]["ServerTime"])
    runs = [run_cycle(data, entries, policy, jobs, now) for _ in range(repeat)]
    keys = runs[0]["seconds"].keys()
    median = {k: round(statistics.median(r["seconds"][k] for r in runs), 4) for k in keys}
    best = {k: round(min(r["seconds"][k] for r in runs), 4) for k in keys}
    summary = {k: v for k, v in runs[0].items() if k != "seconds"}
    return {
        "jobs": n_jobs,
        "match_clusters": n_clusters,
        "entries": n_entries,
        "original_seconds": original,
        "median": median,
        "best": best,
        "answer": summary,
        "speedup_vs_original": round(original / median["cycle_wall"], 1),
    }


def _short(n: int) -> str:
    """1000000 -> 1M, 10000 -> 10k."""
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def main() -> None:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="small,medium,target", help="comma list of: " + ", ".join(SIZES))
    args = parser.parse_args()
    results = {label: measure(label, args.repeat) for label in args.sizes.split(",")}
    report = {
        "benchmark": "frontend",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "repeat": args.repeat,
        "target_seconds": TARGET_SECONDS,
        "sizes": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    target = results.get("target")
    parts = [
        f"{_short(r['jobs'])}/{_short(r['match_clusters'])}/{r['entries']}: {r['median']['cycle_wall']:.2f} s"
        for r in results.values()
    ]
    verdict = ""
    if target is not None:
        ok = target["median"]["cycle_wall"] < TARGET_SECONDS
        verdict = f" — target 1M/10k/1000 < {TARGET_SECONDS:.0f} s: {'met' if ok else 'MISSED'}"
    print(
        "frontend cycle (median wall): " + ", ".join(parts) + verdict
        + f" (load {report['machine']['loadavg_1m_at_end']}); {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}"
    )


if __name__ == "__main__":
    main()
