"""Negotiation cycle benchmark (issue 4): 100,000 idle jobs in 1,000 autoclusters x 10,000 slots.

Target: a cycle's matching in under 5 s. Measured in-process, without HTTP:

- ``group``: the schedd's side, :func:`gwms.pool.schedd.autoclusters.group_jobs` over the
  100k job ads (significant attributes, signatures, groups by owner);
- ``match``: the negotiator's side, :func:`gwms.pool.negotiator.negotiate` of the 1,000
  groups against the 10,000 slots (slot grouping, one symmetric match per group pair
  looked at, Rank order, fair share over 10 owners, partitionable-slot carving);
- ``cycle``: both together (what one cycle costs besides the HTTP transfers);
- ``group_cached``: the schedd's grouping in a later cycle, when its
  :class:`~gwms.pool.schedd.autoclusters.AutoclusterCache` already knows every job (only
  the ids and EnteredCurrentStatus are read; SQLite time not included).

The pool: 9,000 static slots and 1,000 partitionable ones (8 CPUs, 16 GiB each) across
20 sites, 4 CPU sizes and 2 memory sizes per CPU, each with a START expression and ~30
attributes (unique Name, Machine, GLIDEIN_Name...). The jobs: 1,000 kinds (site lists,
memory, CPUs, Rank), 100 jobs each, 10 owners with different priorities. Times are
wall-clock medians of ``--repeat`` runs, with the process CPU time beside them (the 2
cores are shared). Writes benchmarks/results/negotiator.json and prints one line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gwms.pool.negotiator import JobGroup, negotiate
from gwms.pool.schedd.autoclusters import AutoclusterCache, group_jobs

RESULTS = Path(__file__).resolve().parent / "results" / "negotiator.json"
TARGET_SECONDS = 5.0
SITES = [f"Site{i:02d}" for i in range(20)]


def slot_ads(count: int, partitionable: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` slot ads shaped like a glidein's, ``partitionable`` of them partitionable."""
    ads = []
    for i in range(count):
        site = SITES[i % len(SITES)]
        glidein = f"glidein_{i // 4}_{rng.randrange(10**9)}@wn{i % 997}.{site.lower()}.example.org"
        part = i < partitionable
        cpus = 8 if part else (1, 2, 4, 8)[(i // 20) % 4]
        memory = cpus * (2048 if part or (i // 80) % 2 else 4096)
        ads.append({
            "MyType": "Machine", "TargetType": "Job",
            "Name": f"slot{i % 4 + 1}@{glidein}", "Machine": glidein.split("@")[1],
            "State": "Unclaimed", "Activity": "Idle", "PartitionableSlot": part,
            "Cpus": cpus, "Memory": memory, "Disk": cpus * 20_000_000, "Gpus": 0,
            "OpSys": "LINUX", "Arch": "X86_64", "OpSysAndVer": "AlmaLinux9",
            "START": "/Expr((TARGET.RequestCpus <= MY.Cpus) && (TARGET.RequestMemory <= MY.Memory)"
                     " && (TARGET.GLIDEIN_Blacklist =?= undefined || TARGET.GLIDEIN_Blacklist != MY.GLIDEIN_Site))/",
            "Rank": 0, "GLIDEIN_Site": site, "GLIDEIN_ResourceName": site, "GLIDEIN_Entry_Name": f"{site}_ce1",
            "GLIDEIN_Name": "v1_0", "GLIDEIN_Factory": "factory1", "GLIDECLIENT_Name": "frontend.main",
            "GLIDECLIENT_Group": "main", "GLIDEIN_Schedd": "schedd_glideins1@factory", "GLIDEIN_ToRetire": 1_800_000_000,
            "GLIDEIN_ToDie": 1_800_086_400, "GLIDEIN_CPUS": cpus, "GLIDEIN_MaxMemMBs": memory,
            "GwmsStartdId": glidein, "AuthenticatedIdentity": "frontend@pool.example.org",
            "LastHeardFrom": 1_795_000_000 + rng.randrange(600), "ClassAdLifetime": 900,
            "LoadAvg": round(rng.random(), 3), "TotalSlots": 4, "SlotID": i % 4 + 1,
        })
    return ads


def job_ads(kinds: int, per_kind: int, owners: int, rng: random.Random) -> list[dict[str, Any]]:
    """``kinds * per_kind`` idle job ads; jobs of one kind share their matching attributes."""
    ads = []
    cluster = 1
    for k in range(kinds):
        sites = sorted(rng.sample(SITES, rng.choice((1, 2, 3, 5, 20))))
        cpus = rng.choice((1, 1, 1, 2, 4))
        memory = cpus * rng.choice((1000, 1500, 2000, 2500, 3000, 3500))
        site_clause = " || ".join(f'GLIDEIN_Site == "{s}"' for s in sites)
        owner = f"user{k % owners}@pool.example.org"
        common = {
            "MyType": "Job", "TargetType": "Machine", "JobUniverse": 5, "Owner": owner,
            "Cmd": f"/home/user{k % owners}/run_{k}.sh", "Iwd": f"/home/user{k % owners}/work",
            "In": "/dev/null", "Out": "out", "Err": "err", "UserLog": "/home/log",
            "RequestCpus": cpus, "RequestMemory": memory, "RequestDisk": 1_000_000 + k,
            "Requirements": f"/Expr(({site_clause}) && (TARGET.Memory >= RequestMemory) && "
                            f"(TARGET.Cpus >= RequestCpus) && (TARGET.Disk >= RequestDisk))/",
            "Rank": "/Expr(TARGET.Memory / 1024 + TARGET.Cpus)/" if k % 2 else "/Expr(0)/",
            "ShouldTransferFiles": "YES", "WhenToTransferOutput": "ON_EXIT", "JobStatus": 1,
            "QDate": 1_795_000_000 + k, "EnteredCurrentStatus": 1_795_000_000 + k, "JobPrio": k % 3,
            "NumJobStarts": 0, "OnExitRemove": True, "PeriodicHold": False, "PeriodicRemove": False,
            "ProjectName": f"project{k % 7}",
        }
        for p in range(per_kind):
            ad = dict(common)
            ad.update({"ClusterId": cluster, "ProcId": p, "Arguments": f"--part {p} --seed {rng.randrange(10**6)}",
                       "GlobalJobId": f"schedd#{cluster}.{p}#1795000000"})
            ads.append(ad)
        cluster += 1
    return ads


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds, result) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - w0, time.process_time() - c0, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--kinds", type=int, default=1_000)
    parser.add_argument("--slots", type=int, default=10_000)
    parser.add_argument("--partitionable", type=int, default=1_000)
    parser.add_argument("--owners", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; keep the results file")
    args = parser.parse_args()

    rng = random.Random(4)
    slots = slot_ads(args.slots, args.partitionable, rng)
    jobs = job_ads(args.kinds, max(1, args.jobs // args.kinds), args.owners, rng)
    priorities = {f"user{i}@pool.example.org": 0.5 + i * 3.0 for i in range(args.owners)}
    significant = ["requestcpus", "requestmemory", "glidein_blacklist"]

    runs: list[dict[str, float]] = []
    result = None
    groups: list[JobGroup] = []
    stamps = [((j["ClusterId"], j["ProcId"]), j["EnteredCurrentStatus"]) for j in jobs]
    for _ in range(args.repeat):
        g_wall, g_cpu, clusters = timed(lambda: group_jobs(jobs, significant))
        groups = [JobGroup.from_json("schedd@bench", c.as_json()) for c in clusters]
        m_wall, m_cpu, result = timed(lambda: negotiate(groups, slots, priorities))
        cache = AutoclusterCache()
        cache.groups(stamps, lambda ids: jobs, significant)
        c_wall, c_cpu, again = timed(lambda: cache.groups(stamps, lambda ids: jobs, significant))
        assert len(again) == len(clusters)
        runs.append({"group_wall": g_wall, "group_cpu": g_cpu, "match_wall": m_wall, "match_cpu": m_cpu,
                     "cycle_wall": g_wall + m_wall, "cycle_cpu": g_cpu + m_cpu,
                     "group_cached_wall": c_wall, "group_cached_cpu": c_cpu})
    assert result is not None

    def med(key: str) -> float:
        return round(statistics.median(r[key] for r in runs), 3)

    static_used = sum(1 for m in result.matches if not m.partitionable)
    out = {
        "benchmark": "negotiator",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_1m_at_end": round(os.getloadavg()[0], 2)},
        "idle_jobs": len(jobs),
        "autoclusters": len(groups),
        "slots": len(slots),
        "partitionable_slots": args.partitionable,
        "owners": args.owners,
        "slot_groups": result.slot_groups,
        "pair_evaluations": result.evaluations,
        "matches": len(result.matches),
        "matches_static": static_used,
        "matches_partitionable": len(result.matches) - static_used,
        "matches_by_submitter": dict(sorted(result.by_submitter.items())),
        "seconds": {k: med(k) for k in ("group_wall", "group_cpu", "match_wall", "match_cpu", "cycle_wall",
                                         "cycle_cpu", "group_cached_wall", "group_cached_cpu")},
        "runs": [{k: round(v, 3) for k, v in r.items()} for r in runs],
        "target_seconds": TARGET_SECONDS,
        "target_met": med("cycle_wall") < TARGET_SECONDS,
    }
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"negotiator: {len(jobs)} idle jobs in {len(groups)} autoclusters x {len(slots)} slots "
          f"({result.slot_groups} slot groups): group {out['seconds']['group_wall']} s + match "
          f"{out['seconds']['match_wall']} s = cycle {out['seconds']['cycle_wall']} s "
          f"(CPU {out['seconds']['cycle_cpu']} s; later cycles group in {out['seconds']['group_cached_wall']} s) "
          f"(target < {TARGET_SECONDS:g} s), {len(result.matches)} matches, "
          f"{result.evaluations} pair evaluations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
