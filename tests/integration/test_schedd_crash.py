"""``kill -9`` of a real schedd process during a large submit: all of it or none of it."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

from service_procs import ServiceProcess

from gwms.net import ServiceError
from gwms.pool.schedd.client import ScheddClient
from gwms.security import scopes
from gwms.security.layout import ensure_pool_keys

JOBS = 10_000


def test_kill_9_during_10k_submit_is_all_or_nothing(tmp_path: Path) -> None:
    data = tmp_path / "pool"
    layout = ensure_pool_keys(data)
    token = layout.mint_token("alice", [scopes.READ, scopes.WRITE])
    sub = tmp_path / "big.sub"
    sub.write_text(f"executable = /bin/true\narguments = $(Process)\ntransfer_executable = false\nqueue {JOBS}\n")
    rng = random.Random(1234)
    acknowledged: list[int] = []
    attempted: list[int] = []
    port = 0
    for round_no in range(4):
        schedd = ServiceProcess(["schedd", "run", "--data", str(data), "--port", str(port)], tmp_path / "schedd.log")
        port = int(schedd.url.rsplit(":", 1)[1])
        outcome: dict[str, object] = {}

        def submit() -> None:
            with ScheddClient(schedd.url, token=token, timeout=60) as client:
                try:
                    # reserve first so the test knows which cluster was in flight
                    result = client.submit_file(sub, base_dir=tmp_path)
                    outcome["cluster"] = result.cluster_id
                except (ServiceError, Exception) as exc:  # the schedd died under us
                    outcome["error"] = exc

        # the first round completes normally; later ones are killed at random moments
        worker = threading.Thread(target=submit)
        worker.start()
        if round_no == 0:
            worker.join(120)
        else:
            time.sleep(rng.uniform(0.05, 1.5))
            schedd.kill()
            worker.join(60)
        if "cluster" in outcome:
            acknowledged.append(int(outcome["cluster"]))  # type: ignore[arg-type]
        schedd.kill()

        # restart on the same data: every cluster is complete or absent
        schedd = ServiceProcess(["schedd", "run", "--data", str(data), "--port", str(port)], tmp_path / "schedd.log")
        with ScheddClient(schedd.url, token=token) as client:
            jobs = client.query(projection=["ClusterId", "ProcId"])
        schedd.stop()
        per_cluster: dict[int, list[int]] = {}
        for j in jobs:
            per_cluster.setdefault(j["ClusterId"], []).append(j["ProcId"])
        for cluster, procs in per_cluster.items():
            assert sorted(procs) == list(range(JOBS)), f"cluster {cluster} partially present: {len(procs)} jobs"
        for cluster in acknowledged:
            assert cluster in per_cluster, f"acknowledged cluster {cluster} was lost"
        attempted.append(len(per_cluster))
    assert acknowledged, "not even the undisturbed submit was acknowledged"
