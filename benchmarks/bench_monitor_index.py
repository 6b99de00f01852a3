"""Log monitor: indexing rate and search latency (gwms.monitor.indexer / index_sqlite / searcher).

Writes benchmarks/results/monitor_index.json and prints a one-line summary.

1. Indexing. ``BENCH_MONITOR_JOBS`` (default 10,000) jobs from ``gwms.monitor.samples``
   (its default size: 80 lines per daemon log, every section, about 23 KB of files and
   60 KB of decoded text per job) are written in the factory's layout and indexed in one
   pass without anonymization: parse, decode every section, archive the originals
   (tar + zstd), compress the texts, store and full-text index them (FTS5). Then a
   subset (``BENCH_MONITOR_ANON_JOBS``, default 2,000) is indexed with anonymization
   (reversible mode), which also writes the anonymized archive. A third run indexes
   larger jobs (``BENCH_MONITOR_BIG_LINES``, 400 lines per log) to show the rate in MB/s
   when logs are bigger. Rates are wall-clock jobs/s and MB/s of files read. The indexer
   builds records in ``BENCH_MONITOR_WORKERS`` worker processes (default: its own choice,
   two for passes this big) while this process stores them; CPU seconds of this process
   and of the workers are recorded too, with the load average around each run (the
   machine is shared, so ``jobs_per_cpu_s`` is the steadier figure).

2. Search over 100k jobs. The 10k-job index is grown to ``BENCH_MONITOR_SEARCH_JOBS``
   (default 100,000) in SQL, without generating more logs (:func:`grow`): each copy
   ``k`` of every job starts in the same second as its original (the id's sequence
   number tells them apart, so the generator's time span holds ten times as many jobs),
   gets a new cluster id (``cluster + k * 1,000,000``), a uuid suffixed ``-c<k>``, and
   copies of its sections and compressed texts; the copies' texts are fed to FTS5 again
   (decompressed by a SQL function), so the full-text index is a real 100k-job index. Then a mix of searches
   runs through :class:`gwms.monitor.searcher.Searcher` (as the API does, in-process):
   column filters, job ids, uuids, time windows, common and rare words, phrases,
   full text with filters, and a bounded regex; each returns a page of 50 with hit lines
   (2 lines of context) and the total. Latency p50/p95 per kind and over all;
   histograms (a second, separate figure) likewise.
"""

from __future__ import annotations

import json
import os
import platform
import random
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from gwms.monitor.anonymize import Anonymizer, KeyRing
from gwms.monitor.archive import Archive
from gwms.monitor.compression import codec_named
from gwms.monitor.index import SECTION_BITS, SEQ_BITS, open_index
from gwms.monitor.index_sqlite import SQLiteIndex
from gwms.monitor.indexer import Indexer
from gwms.monitor.samples import make_job, make_world, write_job
from gwms.monitor.search import parse_query
from gwms.monitor.searcher import Searcher

RESULTS = Path(__file__).with_name("results") / "monitor_index.json"
JOBS = int(os.environ.get("BENCH_MONITOR_JOBS", "10000"))
ANON_JOBS = int(os.environ.get("BENCH_MONITOR_ANON_JOBS", "2000"))
BIG_JOBS = int(os.environ.get("BENCH_MONITOR_BIG_JOBS", "500"))
BIG_LINES = int(os.environ.get("BENCH_MONITOR_BIG_LINES", "400"))
SEARCH_JOBS = int(os.environ.get("BENCH_MONITOR_SEARCH_JOBS", "100000"))
REPEAT = int(os.environ.get("BENCH_MONITOR_REPEAT", "20"))
WORKDIR = os.environ.get("BENCH_MONITOR_DIR")
KEEP = os.environ.get("BENCH_MONITOR_KEEP") == "1"  # keep the work directory (and the 100k index)
WORKERS = int(os.environ.get("BENCH_MONITOR_WORKERS") or 0) or None  # None: the indexer's choice


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def generate(root: Path, count: int, *, seed: int, lines: int = 80) -> tuple[int, list]:
    """Write ``count`` jobs under ``root``; their total file size and the jobs' facts."""
    world = make_world(seed, users=40, sites=6, workers_per_site=30)
    size = 0
    facts = []
    for i in range(count):
        job = make_job(world, seed * 1_000_003 + i, cluster=100_000 + i, proc=i % 4, lines=lines)
        write_job(root, job)
        size += len(job.out) + len(job.err)
        facts.append(
            {
                "entry": job.entry,
                "job": job.job_id,
                "uuid": job.expected["glidein_uuid"],
                "start": job.expected["start_epoch"],
                "user": job.frontend_user,
                "credential": re.search(r"glidein_credential_id\s*= '([^']*)'", job.out).group(1),  # type: ignore[union-attr]
            }
        )
    return size, facts


def index_run(src: Path, data: Path, *, anonymize: bool) -> dict:
    """One pass over ``src`` into a fresh index under ``data``."""
    shutil.rmtree(data, ignore_errors=True)
    index = open_index(data / "index.sqlite")
    archive = Archive(data / "archive")
    anon = Anonymizer(KeyRing.generate("k1")) if anonymize else None
    indexer = Indexer(index, src, archive=archive, anonymizer=anon, workers=WORKERS)
    load0 = os.getloadavg()[0]
    times0, t0 = os.times(), time.perf_counter()
    report = indexer.run_pass()
    wall, times1 = time.perf_counter() - t0, os.times()
    own = sum(times1[:2]) - sum(times0[:2])  # user + system
    workers = sum(times1[2:4]) - sum(times0[2:4])  # the children's
    cpu = own + workers
    assert report.errors == [], report.errors[:3]
    stats = index.stats()
    index.close()
    decoded = stats["sections"] and sum_decoded(data / "index.sqlite")
    return {
        "jobs": report.indexed,
        "files_mb": round(report.bytes_read / 1e6, 1),
        "decoded_text_mb": round(decoded / 1e6, 1),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "jobs_per_s": round(report.indexed / wall, 1),
        "files_mb_per_s": round(report.bytes_read / 1e6 / wall, 2),
        "decoded_mb_per_s": round(decoded / 1e6 / wall, 2),
        "jobs_per_cpu_s": round(report.indexed / cpu, 1),
        "workers": indexer._workers_for(report.indexed),
        "cpu_s_storing_process": round(own, 2),
        "cpu_s_workers": round(workers, 2),
        "load_average_before_after": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "database_mb": round(stats["database_bytes"] / 1e6, 1),
        "archive_original_mb": round(stats["original_bytes"] / 1e6, 1),
        "archive_anonymized_mb": round(stats["anonymized_bytes"] / 1e6, 1),
        "stored_text_mb": round(stats["text_bytes"] / 1e6, 1),
    }


def sum_decoded(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT coalesce(sum(bytes), 0) FROM sections").fetchone()[0])


def grow(db: Path, copies: int) -> dict:
    """Add ``copies`` copies of every job, section, text and FTS row (in SQL).

    Copy ``k`` of a job starts in the same second as the original (its id's sequence
    number is raised by ``16 k``), so the index keeps the generator's time span at
    ``copies + 1`` times the density; it gets cluster ``cluster + k * 1,000,000`` and
    uuid ``<uuid>-c<k>``.
    """
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")

    def decompress(codec: str, body: bytes) -> str:
        return codec_named(codec).decompress(body).decode("utf-8")

    conn.create_function("decompress", 2, decompress, deterministic=True)
    mask_seq = (1 << SEQ_BITS) - 1
    (max_seq,) = conn.execute(f"SELECT max(id & {mask_seq}) FROM jobs").fetchone()
    assert max_seq < 16 and copies * 16 + 16 <= mask_seq, "copies would collide"
    cols = [r[1] for r in conn.execute("PRAGMA table_info(jobs)")]
    started = time.perf_counter()
    for k in range(1, copies + 1):
        offset = k * 16
        select = []
        params: list = []
        for c in cols:
            if c == "id":
                select.append("id + ?")
                params.append(offset)
            elif c == "cluster":
                select.append("cluster + ?")
                params.append(k * 1_000_000)
            elif c == "path":
                select.append(
                    "substr(path, 1, length(path) - length('job.' || cluster || '.' || proc))"
                    " || 'job.' || (cluster + ?) || '.' || proc"
                )
                params.append(k * 1_000_000)
            elif c == "glidein_uuid":
                select.append("glidein_uuid || ?")
                params.append(f"-c{k}")
            else:
                select.append(c)
        originals = f"(id & {mask_seq}) < 16"  # the generated jobs, not earlier copies
        conn.execute("BEGIN")
        conn.execute(
            f"INSERT INTO jobs ({', '.join(cols)}) SELECT {', '.join(select)} FROM jobs"
            f" WHERE {originals}",
            params,
        )
        soff = offset << SECTION_BITS
        original_sections = f"((id >> {SECTION_BITS}) & {mask_seq}) < 16"
        conn.execute(
            "INSERT INTO sections (id, name, kind, lines, bytes, members, columns, problem, truncated)"
            " SELECT id + ?, name, kind, lines, bytes, members, columns, problem, truncated"
            f" FROM sections WHERE {original_sections}",
            [soff],
        )
        conn.execute(
            "INSERT INTO section_text (id, codec, body) SELECT id + ?, codec, body"
            f" FROM section_text WHERE {original_sections}",
            [soff],
        )
        conn.execute(
            "INSERT INTO section_fts (rowid, body) SELECT id + ?, decompress(codec, body)"
            f" FROM section_text WHERE {original_sections} ORDER BY id",
            [soff],
        )
        conn.execute("COMMIT")
        log(f"copy {k}/{copies} done ({time.perf_counter() - started:.0f}s)")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    jobs = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
    lo, hi = conn.execute("SELECT min(sort_epoch), max(sort_epoch) FROM jobs").fetchone()
    conn.close()
    return {
        "jobs": jobs,
        "seconds": round(time.perf_counter() - started, 1),
        "span_days": round((hi - lo) / 86400, 1),
        "jobs_per_day": round(jobs / max(1, (hi - lo) / 86400)),
    }


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def search_mix(db: Path, facts: list[dict], copies: int) -> dict:
    index = SQLiteIndex(db, create=False)
    searcher = Searcher(index)
    rng = random.Random(7)
    starts = [f["start"] for f in facts]
    lo, hi = min(starts), max(starts)
    entries = sorted({f["entry"] for f in facts})
    now = time.time()

    def some_fact() -> tuple[dict, int]:
        return rng.choice(facts), rng.randint(0, copies)

    def day_window() -> str:
        t = rng.randint(lo, hi)
        return f"time:{t}..{t + 86400}"

    def job_id(with_proc: bool) -> str:
        fact, k = some_fact()
        cluster, proc = fact["job"].split(".")
        return f"job:{int(cluster) + k * 1_000_000}" + (f".{proc}" if with_proc else "")

    def uuid() -> str:
        fact, k = some_fact()
        return f"uuid:{fact['uuid']}" + (f"-c{k}" if k else "")

    kinds = {
        "entry filter": lambda: parse_query(f"entry:{rng.choice(entries)}", now=now),
        "job id (C.P)": lambda: parse_query(job_id(True), now=now),
        "cluster (C)": lambda: parse_query(job_id(False), now=now),
        "glidein uuid": lambda: parse_query(uuid(), now=now),
        "day + entry + exit!=0": lambda: parse_query(
            f"{day_window()} entry:{rng.choice(entries)} exit:!0", now=now
        ),
        "common word": lambda: parse_query(
            rng.choice(["condor", "slot1", "startd", "Sent"]), now=now
        ),
        "rare word (one job)": lambda: parse_query(f'"{rng.choice(facts)["credential"]}"', now=now),
        "phrase": lambda: parse_query(
            rng.choice(['"Changing activity"', '"Connection refused"', '"received RELEASE_CLAIM"']),
            now=now,
        ),
        "text + entry + day": lambda: parse_query(
            f"condor entry:{rng.choice(entries)} {day_window()}", now=now
        ),
        "text + user + section": lambda: parse_query(
            f"claim user:{rng.choice(facts)['user']} section:StartdLog", now=now
        ),
        "regex + entry + day": lambda: parse_query(
            f"entry:{rng.choice(entries)} {day_window()}",
            now=now,
            regex=r"Changing activity: \w+ -> Busy",
        ),
    }
    per_kind: dict[str, dict] = {}
    all_page: list[float] = []
    all_hist: list[float] = []
    for name, make in kinds.items():
        page_ms: list[float] = []
        hist_ms: list[float] = []
        totals: list[int] = []
        for i in range(REPEAT):
            query = make()
            t0 = time.perf_counter()
            page = searcher.search(query, limit=50, context=2, max_hits=5)
            page_ms.append((time.perf_counter() - t0) * 1000)
            totals.append(page.total if page.total is not None else -1)
            if i < max(3, REPEAT // 4):
                t0 = time.perf_counter()
                searcher.search(query, limit=50, with_total=True, with_histogram=True)
                hist_ms.append((time.perf_counter() - t0) * 1000)
        per_kind[name] = {
            "p50_ms": round(statistics.median(page_ms), 1),
            "p95_ms": round(percentile(page_ms, 95), 1),
            "max_ms": round(max(page_ms), 1),
            "with_histogram_p50_ms": round(statistics.median(hist_ms), 1),
            "median_total": int(statistics.median(totals)),
        }
        all_page += page_ms
        all_hist += hist_ms
        log(
            f"{name}: p50 {per_kind[name]['p50_ms']} ms, p95 {per_kind[name]['p95_ms']} ms, "
            f"with histogram {per_kind[name]['with_histogram_p50_ms']} ms, total ~{per_kind[name]['median_total']}"
        )
    index.close()
    return {
        "queries": len(all_page),
        "p50_ms": round(statistics.median(all_page), 1),
        "p95_ms": round(percentile(all_page, 95), 1),
        "with_histogram_p50_ms": round(statistics.median(all_hist), 1),
        "with_histogram_p95_ms": round(percentile(all_hist, 95), 1),
        "by_kind": per_kind,
    }


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="gwms-bench-monitor-", dir=WORKDIR))
    results: dict = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "targets": {"index_jobs_per_s": 500, "search_p95_ms": 200},
    }
    try:
        log(f"generating {JOBS} jobs in {work}")
        size, facts = generate(work / "src", JOBS, seed=1)
        results["corpus"] = {
            "jobs": JOBS,
            "files_mb": round(size / 1e6, 1),
            "avg_job_kb": round(size / JOBS / 1e3, 1),
        }
        log("indexing without anonymization")
        results["index_plain"] = index_run(work / "src", work / "plain", anonymize=False)
        log(f"plain: {results['index_plain']}")
        anon_src = work / "src-anon"
        log(f"generating {ANON_JOBS} jobs for the anonymized run")
        generate(anon_src, ANON_JOBS, seed=2)
        results["index_anonymized"] = index_run(anon_src, work / "anon", anonymize=True)
        log(f"anonymized: {results['index_anonymized']}")
        shutil.rmtree(work / "anon", ignore_errors=True)
        shutil.rmtree(anon_src, ignore_errors=True)
        big_src = work / "src-big"
        generate(big_src, BIG_JOBS, seed=3, lines=BIG_LINES)
        results["index_big_jobs"] = {
            "lines_per_log": BIG_LINES,
            **index_run(big_src, work / "big", anonymize=False),
        }
        log(f"big: {results['index_big_jobs']}")
        shutil.rmtree(work / "big", ignore_errors=True)
        shutil.rmtree(big_src, ignore_errors=True)

        copies = max(0, SEARCH_JOBS // JOBS - 1)
        db = work / "plain" / "index.sqlite"
        log(f"growing the index to {JOBS * (copies + 1)} jobs ({copies} copies, in SQL)")
        results["grown_index"] = grow(db, copies)
        results["grown_index"]["database_mb"] = round(
            sum(p.stat().st_size for p in db.parent.glob("index.sqlite*")) / 1e6, 1
        )
        log(f"grown: {results['grown_index']}")
        results["search"] = search_mix(db, facts, copies)
        results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        if KEEP:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    p, a, s = results["index_plain"], results["index_anonymized"], results["search"]
    print(
        f"monitor index: {p['jobs_per_s']} jobs/s ({p['files_mb_per_s']} MB/s files, "
        f"{p['decoded_mb_per_s']} MB/s decoded) without anonymization (target >= 500), "
        f"{a['jobs_per_s']} jobs/s with; search over {results['grown_index']['jobs']} jobs "
        f"p50 {s['p50_ms']} ms p95 {s['p95_ms']} ms (target < 200), "
        f"with histogram p50 {s['with_histogram_p50_ms']} ms p95 {s['with_histogram_p95_ms']} ms"
    )


if __name__ == "__main__":
    main()
