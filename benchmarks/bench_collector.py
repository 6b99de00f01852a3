"""Benchmark the collector: ad updates/s over HTTP, a constrained query over 100k ads, RSS.

Runs ``gwms collector run`` as a separate process on 127.0.0.1 (as deployed) and drives
it from this process over keep-alive HTTP:

1. fills the collector with 100,000 slot ads (~50 attributes each) in calls of 1,000
   ads, then updates all of them again the same way (ad updates/s, batched);
2. updates ads one per request, sequentially and with 8 requests in flight
   (ad updates/s, singly);
3. runs a constrained query over the 100,000 ads, whole ads and projected, over HTTP,
   and the same constraint in-process against an :class:`AdStore` (query latency);
4. reads the collector process's resident memory.

Request bodies are encoded before timing starts and updates are sent with the standard
library's ``http.client`` (keep-alive; much cheaper per request than httpx), so the
figures are the collector's rather than this client's. Both processes share the
machine's cores (and whatever else runs on it). Targets: >= 20,000 ad updates/s batched, query < 200 ms.
Writes ``benchmarks/results/collector.json`` and prints one line.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "collector.json"
N_ADS = 100_000
BATCH = 1_000
N_SINGLE = 3_000
QUERY_RUNS = 7
# With an equality test the store can answer from an index (built by the first query).
CONSTRAINT = 'Cpus >= 8 && State == "Unclaimed" && Memory >= 16000 && GLIDEIN_Site == "Site_7"'
# Without one, every ad of the type is evaluated.
SCAN_CONSTRAINT = "Cpus >= 15 && Memory >= 30000 && LoadAvg < 0.5 && JobStarts > 10"
TARGET_BATCHED = 20_000
TARGET_QUERY_MS = 200.0


def slot_ad(i: int, generation: int = 0) -> dict[str, Any]:
    """A slot ad shaped like a glidein's partitionable slot (~50 attributes)."""
    host = f"glidein{i}.node{i % 977}.site{i % 40}.example.org"
    ad: dict[str, Any] = {
        "MyType": "Machine",
        "Name": f"slot1@{host}",
        "Machine": host,
        "TargetType": "Job",
        "Cpus": 1 + i % 16,
        "Memory": 2048 * (1 + i % 16),
        "Disk": 20_000_000 + i,
        "State": "Claimed" if i % 3 == 0 else "Unclaimed",
        "Activity": "Busy" if i % 3 == 0 else "Idle",
        "Arch": "X86_64",
        "OpSys": "LINUX",
        "OpSysAndVer": "AlmaLinux9",
        "HasSingularity": True,
        "GLIDEIN_Site": f"Site_{i % 40}",
        "GLIDEIN_ResourceName": f"CE_{i % 120}",
        "GLIDEIN_Entry_Name": f"entry_{i % 120}",
        "GLIDEIN_Factory": "factory.example.org",
        "GLIDEIN_Name": "gfactory_instance",
        "GLIDEIN_ToRetire": 1_700_000_000 + i,
        "GLIDEIN_ToDie": 1_700_086_400 + i,
        "GLIDEIN_CPUS": 1 + i % 16,
        "SlotType": "Partitionable",
        "PartitionableSlot": True,
        "Start": "/Expr(isUndefined(GLIDEIN_ToRetire) || time() < GLIDEIN_ToRetire)/",
        "Requirements": "/Expr(START && (TARGET.RequestCpus <= MY.Cpus))/",
        "Rank": "/Expr(0)/",
        "LoadAvg": (i % 100) / 100.0,
        "TotalCpus": 16,
        "TotalMemory": 32768,
        "DetectedCpus": 16,
        "DetectedMemory": 32768,
        "KFlops": 1_000_000 + i,
        "Mips": 20_000 + i % 1000,
        "MyAddress": f"<10.{i % 250}.{i % 199}.{i % 97}:9618?sock=startd>",
        "StartdIpAddr": f"<10.{i % 250}.{i % 199}.{i % 97}:9618>",
        "DaemonStartTime": 1_700_000_000,
        "UpdateSequenceNumber": generation,
        "EnteredCurrentState": 1_700_000_000 + generation,
        "TotalSlots": 1,
        "CondorVersion": "$CondorVersion: 24.0.1 2024-01-01 $",
        "CondorPlatform": "$CondorPlatform: X86_64-AlmaLinux_9 $",
        "FileSystemDomain": host,
        "UidDomain": "example.org",
        "HasFileTransfer": True,
        "JobStarts": i % 50,
        "RecentJobStarts": i % 5,
        "ClassAdLifetime": 3600,
        "IsGlidein": True,
        "GLIDEIN_Job_Max_Time": 34_800,
        "AcceptedWhileDraining": False,
    }
    return ad


def encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def start_collector(data: Path) -> tuple[subprocess.Popen[str], str]:
    exe = Path(sys.executable).parent / "gwms"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "gwms"]
    proc = subprocess.Popen(
        [*cmd, "collector", "run", "--data", str(data), "--port", "0", "--name", "bench"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening on (\S+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"collector did not start: {line!r}")
    return proc, match.group(1)


def admin_token(data: Path) -> str:
    from gwms.security import scopes
    from gwms.security.tokens import issue_token, load_signing_key, load_trust_domain

    keys = data / "keys"
    issuer = load_trust_domain(keys) or "localhost"
    return issue_token(
        load_signing_key(keys, "POOL"),
        issuer=issuer,
        subject=f"startd@{issuer}",
        scopes=[scopes.ADVERTISE_STARTD, scopes.READ],
    )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Poster:
    """POSTs pre-encoded advertise bodies over one keep-alive connection."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        self.headers = headers

    def post(self, body: bytes) -> dict[str, Any]:
        self.conn.request("POST", "/v1/ads", body=body, headers=self.headers)
        answer = self.conn.getresponse()
        data = answer.read()
        if answer.status != 200:
            raise SystemExit(f"advertise failed: {answer.status} {data[:300]!r}")
        result: dict[str, Any] = json.loads(data)
        return result

    def close(self) -> None:
        self.conn.close()


def post_all(poster: Poster, bodies: list[bytes], per_body: int) -> float:
    """Send every body in turn; seconds taken."""
    start = time.perf_counter()
    for body in bodies:
        if poster.post(body)["accepted"] != per_body:
            raise SystemExit("an advertise call was not fully accepted")
    return time.perf_counter() - start


def post_concurrently(url: str, headers: dict[str, str], bodies: list[bytes], n: int) -> float:
    """Send the bodies over ``n`` connections at once; seconds taken."""
    posters = [Poster(url, headers) for _ in range(n)]
    slices = [bodies[i::n] for i in range(n)]
    threads = [
        threading.Thread(target=post_all, args=(p, part, 1)) for p, part in zip(posters, slices)
    ]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    for poster in posters:
        poster.close()
    return elapsed


def timed_query(
    http: httpx.Client, params: dict[str, Any], runs: int = QUERY_RUNS
) -> dict[str, Any]:
    """Run one query ``runs`` times: first and median time until the whole answer has
    arrived (not counting this client's JSON decoding), matches, answer size."""
    times = []
    count = size = 0
    for _ in range(runs):
        start = time.perf_counter()
        answer = http.get("/v1/ads", params=params)
        answer.raise_for_status()
        times.append(time.perf_counter() - start)
        count = answer.json()["count"]
        size = len(answer.content)
    return {
        "median_ms": round(statistics.median(times) * 1000, 1),
        "first_ms": round(times[0] * 1000, 1),
        "matches": count,
        "bytes": size,
    }


def in_process_query(ads: list[dict[str, Any]], constraint: str) -> dict[str, Any]:
    """The constraint over the ads in an AdStore in this process (no HTTP)."""
    from gwms.classads import compile_constraint
    from gwms.pool.collector.store import AdStore

    store = AdStore()
    store.advertise(ads, "startd@bench")
    start = time.perf_counter()
    predicate = compile_constraint(constraint)
    compile_ms = (time.perf_counter() - start) * 1000
    times = []
    matches = 0
    for _ in range(QUERY_RUNS):
        start = time.perf_counter()
        matches = len(store.query("Machine", predicate, projection=["Name"]))
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    scanned = sum(1 for ad in ads if predicate(ad))
    scan_ms = (time.perf_counter() - start) * 1000
    assert scanned == matches
    return {
        "median_ms": round(statistics.median(times) * 1000, 1),
        "first_ms": round(times[0] * 1000, 1),
        "full_scan_ms": round(scan_ms, 1),
        "compile_ms": round(compile_ms, 2),
        "matches": matches,
    }


def main() -> None:
    """Run the benchmark, write the JSON results and print one line."""
    ads = [slot_ad(i) for i in range(N_ADS)]
    fill_bodies = [encode({"ads": ads[k : k + BATCH]}) for k in range(0, N_ADS, BATCH)]
    update_bodies = [
        encode({"ads": [slot_ad(i, 1) for i in range(k, k + BATCH)]})
        for k in range(0, N_ADS, BATCH)
    ]
    single_bodies = [encode({"ads": [slot_ad(i, 2)]}) for i in range(N_SINGLE)]
    ad_bytes = sum(len(b) for b in fill_bodies) / N_ADS

    with tempfile.TemporaryDirectory(prefix="gwms-bench-collector-") as tmp:
        data = Path(tmp)
        proc, url = start_collector(data)
        try:
            headers = {
                "Authorization": f"Bearer {admin_token(data)}",
                "Content-Type": "application/json",
            }
            rss_empty = rss_mb(proc.pid)
            poster = Poster(url, headers)
            fill_s = post_all(poster, fill_bodies, BATCH)
            update_s = post_all(poster, update_bodies, BATCH)
            rss_loaded = rss_mb(proc.pid)
            single_s = post_all(poster, single_bodies, 1)
            poster.close()
            single_conc_s = post_concurrently(url, headers, single_bodies, 8)
            with httpx.Client(base_url=url, headers=headers, timeout=120) as http:

                counts = http.get("/v1/types").json()["counts"]
                if counts.get("Machine") != N_ADS:
                    raise SystemExit(f"expected {N_ADS} ads, the collector holds {counts}")

                indexed_whole = timed_query(http, {"type": "Machine", "constraint": CONSTRAINT})
                indexed_projected = timed_query(
                    http, {"type": "Machine", "constraint": CONSTRAINT, "projection": "Name"}
                )
                scan_whole = timed_query(http, {"type": "Machine", "constraint": SCAN_CONSTRAINT})
                scan_projected = timed_query(
                    http, {"type": "Machine", "constraint": SCAN_CONSTRAINT, "projection": "Name"}
                )
                everything = timed_query(http, {"type": "Machine"}, runs=3)
                rss_after_queries = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    in_proc_indexed = in_process_query(ads, CONSTRAINT)
    in_proc_scan = in_process_query(ads, SCAN_CONSTRAINT)
    worst_ms = max(indexed_whole["median_ms"], scan_whole["median_ms"])
    load = os.getloadavg()
    results = {
        "benchmark": "collector",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_1m_at_end": round(load[0], 2),
        },
        "ads": N_ADS,
        "attributes_per_ad": len(slot_ad(0)),
        "json_bytes_per_ad": round(ad_bytes),
        "batched": {
            "ads_per_request": BATCH,
            "fill_ads_per_s": round(N_ADS / fill_s),
            "update_ads_per_s": round(N_ADS / update_s),
            "target_ads_per_s": TARGET_BATCHED,
            "meets_target": N_ADS / update_s >= TARGET_BATCHED,
        },
        "single": {
            "requests": N_SINGLE,
            "sequential_ads_per_s": round(N_SINGLE / single_s),
            "sequential_ms_per_request": round(single_s / N_SINGLE * 1000, 3),
            "concurrent8_ads_per_s": round(N_SINGLE / single_conc_s),
        },
        "query": {
            "runs": QUERY_RUNS,
            "with_equality": {
                "constraint": CONSTRAINT,
                "http_whole_ads": indexed_whole,
                "http_projected_name": indexed_projected,
                "in_process": in_proc_indexed,
            },
            "full_scan": {
                "constraint": SCAN_CONSTRAINT,
                "http_whole_ads": scan_whole,
                "http_projected_name": scan_projected,
                "in_process": in_proc_scan,
            },
            "http_all_100k_whole_ads": everything,
            "target_ms": TARGET_QUERY_MS,
            "meets_target": worst_ms < TARGET_QUERY_MS,
        },
        "rss_mb": {
            "empty": round(rss_empty, 1),
            "with_100k_ads": round(rss_loaded, 1),
            "after_queries": round(rss_after_queries, 1),
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"collector: {results['batched']['update_ads_per_s']:,} ad updates/s batched "
        f"(fill {results['batched']['fill_ads_per_s']:,}/s; target {TARGET_BATCHED:,}), "
        f"{results['single']['sequential_ads_per_s']:,}/s singly "
        f"({results['single']['concurrent8_ads_per_s']:,}/s with 8 in flight); "
        f"constrained query over {N_ADS:,} ads over HTTP: "
        f"{scan_whole['median_ms']:.0f} ms full scan ({scan_whole['matches']} matches), "
        f"{indexed_whole['median_ms']:.0f} ms with an equality index "
        f"(first {indexed_whole['first_ms']:.0f} ms; target < {TARGET_QUERY_MS:.0f} ms); "
        f"RSS {rss_loaded:.0f} MB with {N_ADS:,} ads"
    )


if __name__ == "__main__":
    main()
