"""The job queue survives ``kill -9``: acknowledged clusters are whole, nothing is half-stored.

A child process submits clusters (the first of 10,000 jobs) in a loop, printing each
cluster id to stdout after ``submit`` returned (the commit is done), then holds the whole
cluster in one call and prints that too. The test kills it with SIGKILL at a random
moment, reopens the queue, and checks:

- every acknowledged cluster is fully present (all its procs, 0..n-1);
- every cluster present is whole (its job count equals the size every job records);
- every acknowledged hold holds the whole cluster, and no cluster is partly held;
- each stored job has exactly one ``submit`` event;
- cluster ids keep growing across crashes.

Several rounds run against the same file, alternating ``synchronous`` FULL and NORMAL
(both must survive a process kill; see gwms.pool.schedd.queue).
"""

from __future__ import annotations

import os
import queue as stdqueue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from gwms.pool.schedd.queue import JobQueue

pytestmark = pytest.mark.integration

CHILD = r"""
import random, sys
from gwms.pool.schedd.queue import JobQueue

path, seed, synchronous = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(seed)
queue = JobQueue.open(path, synchronous=synchronous)
print("ready", flush=True)
size = 10_000
while True:
    jobs = [
        {"Cmd": "/bin/true", "Arguments": str(i), "BatchSize": size, "Payload": "x" * 200,
         "Requirements": "/Expr(TARGET.Memory >= 1024)/"}
        for i in range(size)
    ]
    cluster = queue.submit(jobs, "crash")
    print(f"submitted {cluster} {size}", flush=True)
    results = queue.hold([(cluster, p) for p in range(size)], "crash test")
    assert all(r.ok for r in results)
    print(f"held {cluster}", flush=True)
    size = rng.choice([1, 7, 600, 3000, 10_000])
"""

ROUNDS = 4


def run_child_until_killed(path: Path, seed: int, synchronous: str, rng: random.Random) -> list[str]:
    """Start the child, kill -9 it at a random moment after its first ack, return its lines."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(seed), synchronous],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: stdqueue.Queue[str] = stdqueue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    seen: list[str] = []
    deadline = time.monotonic() + 60
    try:
        # Wait for the first acknowledged submit, then let it run a random while.
        while not any(line.startswith("submitted") for line in seen):
            remaining = deadline - time.monotonic()
            assert remaining > 0 and proc.poll() is None, (
                f"child made no progress: {seen!r} {proc.stderr.read() if proc.stderr else ''}"
            )
            try:
                seen.append(lines.get(timeout=min(remaining, 1.0)))
            except stdqueue.Empty:
                continue
        time.sleep(rng.uniform(0.0, 1.5))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        reader.join(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()
    while True:
        try:
            seen.append(lines.get_nowait())
        except stdqueue.Empty:
            break
    assert proc.returncode == -signal.SIGKILL
    return [line.rstrip("\n") for line in seen if line.endswith("\n")]


def test_acknowledged_clusters_survive_kill_9(tmp_path: Path) -> None:
    rng = random.Random()
    path = tmp_path / "queue.db"
    acked: dict[int, int] = {}
    held: set[int] = set()
    last_max = 0
    for round_ in range(ROUNDS):
        synchronous = "FULL" if round_ % 2 == 0 else "NORMAL"
        lines = run_child_until_killed(path, rng.randrange(1 << 30), synchronous, rng)
        round_acked = []
        for line in lines:
            parts = line.split()
            if parts[0] == "submitted":
                acked[int(parts[1])] = int(parts[2])
                round_acked.append(int(parts[1]))
            elif parts[0] == "held":
                held.add(int(parts[1]))
        assert round_acked, lines
        assert min(round_acked) > last_max, "cluster ids must grow across crashes"

        with JobQueue.open(path) as queue:
            jobs = queue.query(projection=["ClusterId", "ProcId", "JobStatus", "BatchSize"])
            sizes = Counter(ad["ClusterId"] for ad in jobs)
            declared = {ad["ClusterId"]: ad["BatchSize"] for ad in jobs}
            statuses: dict[int, set[int]] = {}
            procs: dict[int, set[int]] = {}
            for ad in jobs:
                statuses.setdefault(ad["ClusterId"], set()).add(ad["JobStatus"])
                procs.setdefault(ad["ClusterId"], set()).add(ad["ProcId"])
            for cluster, size in acked.items():
                assert sizes[cluster] == size, f"acknowledged cluster {cluster} is not whole"
            for cluster, count in sizes.items():
                assert count == declared[cluster], f"cluster {cluster} is partly stored"
                assert procs[cluster] == set(range(count))
                assert len(statuses[cluster]) == 1, f"cluster {cluster} is partly held"
            for cluster in held:
                assert statuses[cluster] == {5}, f"acknowledged hold of {cluster} lost"
            submit_events = Counter(
                e.cluster for e in queue.iter_events() if e.type == "submit"
            )
            assert submit_events == sizes
            counts = queue.counts_by_status()
            assert counts[1] + counts[5] == len(jobs)
            last_max = max(sizes)
