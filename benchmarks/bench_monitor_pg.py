"""Log monitor in PostgreSQL: indexing rate and search latency (gwms.monitor.index_pg).

Writes benchmarks/results/monitor_pg.json and prints a one-line summary.

Starts a throw-away PostgreSQL cluster (``tests/integration/pg_fixtures.py``: Debian's
``initdb``/``pg_ctl``, a free port on 127.0.0.1, durability off, as a test database
would run), generates ``BENCH_MONITOR_PG_JOBS`` jobs (default 3,000; the generator's
default size, as in ``bench_monitor_index.py``), indexes them without anonymization
(worker processes parse, this process stores with ``COPY``; the server makes the
tsvectors), then runs a mix of searches through :class:`gwms.monitor.searcher.Searcher`:
column filters, job ids, common and rare words, phrases, text with filters, and a
regex within a day (as ``bench_monitor_index.py`` asks them), each a page of 50 with
hit lines and the total. The PostgreSQL server's
CPU is not in this process's figures: wall-clock rates are the ones to read.
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from bench_monitor_index import generate, log, percentile
from pg_fixtures import PgCluster

from gwms.monitor.archive import Archive
from gwms.monitor.index import open_index
from gwms.monitor.indexer import Indexer
from gwms.monitor.search import parse_query
from gwms.monitor.searcher import Searcher

RESULTS = Path(__file__).with_name("results") / "monitor_pg.json"
JOBS = int(os.environ.get("BENCH_MONITOR_PG_JOBS", "3000"))
REPEAT = int(os.environ.get("BENCH_MONITOR_REPEAT", "20"))


def main() -> None:
    """Index and search in a throw-away PostgreSQL; write the figures."""
    work = Path(tempfile.mkdtemp(prefix="gwms-bench-monitor-pg-"))
    cluster = PgCluster()
    results: dict = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        cluster.start()
        url, _schema = cluster.new_url()
        log(f"generating {JOBS} jobs in {work}")
        size, facts = generate(work / "src", JOBS, seed=1)
        index = open_index(url)
        archive = Archive(work / "archive")
        indexer = Indexer(index, work / "src", archive=archive)
        t0, c0 = time.perf_counter(), os.times()
        report = indexer.run_pass()
        wall, c1 = time.perf_counter() - t0, os.times()
        assert report.errors == [], report.errors[:3]
        stats = index.stats()
        results["index"] = {
            "jobs": report.indexed,
            "files_mb": round(size / 1e6, 1),
            "wall_s": round(wall, 2),
            "jobs_per_s": round(report.indexed / wall, 1),
            "files_mb_per_s": round(size / 1e6 / wall, 2),
            "cpu_s_this_process_and_workers": round(
                sum(c1[:4]) - sum(c0[:4]), 2
            ),  # user, system, children's user and system
            "database_mb": round(stats["database_bytes"] / 1e6, 1),
        }
        log(f"indexed: {results['index']}")
        searcher = Searcher(index)
        rng = random.Random(7)
        entries = sorted({f["entry"] for f in facts})
        now = time.time()
        starts = [f["start"] for f in facts]

        def day() -> str:
            t = rng.randint(min(starts), max(starts))
            return f"time:{t}..{t + 86400}"

        kinds = {
            "entry filter": lambda: parse_query(f"entry:{rng.choice(entries)}", now=now),
            "job id (C.P)": lambda: parse_query(f"job:{rng.choice(facts)['job']}", now=now),
            "common word": lambda: parse_query(rng.choice(["condor", "slot1", "startd"]), now=now),
            "rare word (one job)": lambda: parse_query(
                f'"{rng.choice(facts)["credential"]}"', now=now
            ),
            "phrase": lambda: parse_query(
                rng.choice(['"Changing activity"', '"received RELEASE_CLAIM"']), now=now
            ),
            "text + entry + day": lambda: parse_query(
                f"condor entry:{rng.choice(entries)} {day()}", now=now
            ),
            "regex + entry + day": lambda: parse_query(
                f"entry:{rng.choice(entries)} {day()}",
                now=now,
                regex=r"Changing activity: \w+ -> Busy",
            ),
        }
        all_ms: list[float] = []
        per_kind = {}
        for name, make in kinds.items():
            ms = []
            for _ in range(REPEAT):
                query = make()
                t = time.perf_counter()
                searcher.search(query, limit=50, context=2, max_hits=5)
                ms.append((time.perf_counter() - t) * 1000)
            per_kind[name] = {
                "p50_ms": round(statistics.median(ms), 1),
                "p95_ms": round(percentile(ms, 95), 1),
            }
            all_ms += ms
            log(f"{name}: {per_kind[name]}")
        results["search"] = {
            "jobs": report.indexed,
            "queries": len(all_ms),
            "p50_ms": round(statistics.median(all_ms), 1),
            "p95_ms": round(percentile(all_ms, 95), 1),
            "by_kind": per_kind,
        }
        results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        index.close()
        archive.close()
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    i, s = results["index"], results["search"]
    print(
        f"monitor index in PostgreSQL: {i['jobs_per_s']} jobs/s ({i['files_mb_per_s']} MB/s of"
        f" files) for {i['jobs']} jobs; search p50 {s['p50_ms']} ms p95 {s['p95_ms']} ms"
    )


if __name__ == "__main__":
    main()
