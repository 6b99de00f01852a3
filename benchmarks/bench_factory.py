"""Factory benchmarks (issue 5).

1. **Decision part of one factory cycle** (target < 1 s) with 1,000 entries and 100 client
   requests, in-process (no HTTP, no backend): reading the requests (identity checks and
   decryption, :class:`gwms.factory.requests.RequestReader`) and every entry's plan
   (:func:`gwms.factory.planning.plan_entry`) over its pilots. Two shapes:

   - ``sparse``: 100 ``glideclient`` requests in all, spread over the 1,000 entries
     (the literal reading of the target);
   - ``dense``: 100 clients each asking every entry: 100,000 requests (an upper bound
     far beyond the original's deployments).

   Each entry has 20 active pilots of mixed states (pending, running, held); request
   ads are sealed with one session key per frontend cycle, as a frontend does.
2. **Request to pilot running** (target < 2 s) with the local backend: a real WMS
   collector and factory service on loopback (default ``request_poll_s``), a test
   frontend advertises a request, and the time is taken until the fake glidein process
   has started (it writes its start time), and until the factory's store says running.

Writes benchmarks/results/factory.json and prints one line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gwms.factory.config import CyclePolicy, FactoryConfig, RemovalLevel
from gwms.factory.limits import Limits, PilotView
from gwms.factory.planning import EntryInput, RequestView, plan_entry
from gwms.factory.requests import RequestReader, build_request_ad
from gwms.factory.states import PilotState
from gwms.security.hybrid import Decryptor, RsaKeyPair, SessionKey

RESULTS = Path(__file__).resolve().parent / "results" / "factory.json"
DECISION_TARGET_S = 1.0
LATENCY_TARGET_S = 2.0
IDENTITY = "vofrontend@pool.bench"


def _config(entries: int) -> FactoryConfig:
    return FactoryConfig.model_validate({
        "name": "gf", "wms_collector": "http://127.0.0.1:1",
        "frontends": {"vofe": {"identity": IDENTITY, "security_classes": {"main": "fe1", "pilot": "fe2"}}},
        "entries": [{"name": f"e{i:04d}", "attrs": {"GLIDEIN_Site": f"S{i % 97}"}} for i in range(entries)],
    })


def _request_ads(cfg: FactoryConfig, pair: RsaKeyPair, pairs: list[tuple[int, int]]) -> list[dict[str, Any]]:
    session = SessionKey(pair.public_pem, pair.kid)
    ads = []
    rng = random.Random(5)
    for client, entry in pairs:
        ad = build_request_ad(
            entry_ad_name=cfg.entry_ad_name(f"e{entry:04d}"), client_name=f"vofe.g{client}",
            identity=IDENTITY, security_name="vofe", security_class="main" if client % 2 else "pilot",
            factory_public_key=pair.public_pem, key_id=pair.kid, req_idle=rng.randrange(0, 30),
            req_max=rng.randrange(30, 200), remove_excess=rng.choice(["NO", "WAIT", "IDLE", "ALL"]),
            session=session, secrets={"GLIDEIN_Token": "x" * 300, "GLIDEIN_Collector": "https://pool:9618"},
            params={"GLIDEIN_Max_Walltime": 86400},
        )
        ad["AuthenticatedIdentity"] = IDENTITY
        ads.append(ad)
    return ads


def _pilots(entry: int, clients: list[int], per_entry: int, rng: random.Random) -> dict[str, list[PilotView]]:
    out: dict[str, list[PilotView]] = {}
    states = [PilotState.PENDING] * 6 + [PilotState.RUNNING] * 12 + [PilotState.HELD] * 2
    for i in range(per_entry):
        client = clients[i % len(clients)] if clients else 0
        key = f"vofe/vofe.g{client}/default"
        state = states[i % len(states)]
        out.setdefault(key, []).append(PilotView(
            f"gf.v1.{entry}.{i}", state, 1e6 + rng.random() * 1000, 1e6, running_since=1e6 + 5,
            holds=1 if state is PilotState.HELD else 0, hold_reason="connection timed out",
        ))
    return out


def decision(entries: int, pairs: list[tuple[int, int]], per_entry: int, repeat: int) -> dict[str, Any]:
    """Median seconds of reading the requests and planning every entry."""
    cfg = _config(entries)
    pair = RsaKeyPair.generate("gf-v1")
    ads = _request_ads(cfg, pair, pairs)
    by_entry: dict[int, list[int]] = {}
    for client, entry in pairs:
        by_entry.setdefault(entry, []).append(client)
    rng = random.Random(7)
    pilots = {e: _pilots(e, by_entry.get(e, []), per_entry, rng) for e in range(entries)}
    policy = CyclePolicy()
    limits = Limits(10000, 2000, 1000)
    group_limits = {"vofe:main": Limits(5000, 100, 50), "vofe:pilot": Limits(5000, 100, 50)}
    reads, plans, totals, cpu, again = [], [], [], [], []
    submits = removals = 0
    for _ in range(repeat):
        reader = RequestReader(cfg, Decryptor(pair))  # a fresh reader: the session is unwrapped again
        c0, t0 = time.process_time(), time.perf_counter()
        valid, refused = reader.read(ads)
        t1 = time.perf_counter()
        assert not refused and sum(len(v) for v in valid.values()) == len(pairs)
        submits = removals = 0
        for e in range(entries):
            reqs = valid.get(f"e{e:04d}", [])
            views = [RequestView(r.key, r.group, r.req_idle, r.req_max, r.remove_level, r.remove_margin,
                                 r.idle_lifetime) for r in reqs]
            groups = {k: ("vofe:main" if int(k.split(".g")[1].split("/")[0]) % 2 else "vofe:pilot")
                      for k in pilots[e]}
            groups.update({v.key: v.group for v in views})
            plan = plan_entry(EntryInput(
                now=1e6 + 2000, entry_limits=limits, group_limits=group_limits, policy=policy,
                pilots=pilots[e], groups_of=groups, requests=views, submit_cap=100,
                orphans_removable=frozenset(), orphan_level=RemovalLevel.IDLE,
            ))
            submits += plan.total_submits
            removals += len(plan.removals)
        t2 = time.perf_counter()
        reader.read(ads)  # the next poll, the ads unchanged: nothing is decrypted again
        again.append(time.perf_counter() - t2)
        reads.append(t1 - t0)
        plans.append(t2 - t1)
        totals.append(t2 - t0)
        cpu.append(time.process_time() - c0)
    return {
        "entries": entries, "requests": len(pairs), "pilots": entries * per_entry,
        "read_s": statistics.median(reads), "plan_s": statistics.median(plans),
        "cycle_s": statistics.median(totals), "cycle_cpu_s": statistics.median(cpu),
        "read_unchanged_s": statistics.median(again),
        "submits_decided": submits, "removals_decided": removals,
    }


# --------------------------------------------------------------------------- latency

GLIDEIN = """#!/bin/sh
python3 -c 'import time; print(repr(time.time()))' > "$BENCH_DIR/started.$GLIDEIN_Pilot_Id"
sleep 60
"""


def latency(samples: int) -> dict[str, Any]:
    """Seconds from advertising a request to the pilot's process running."""
    from gwms.factory import attributes as A
    from gwms.factory.service import FactoryService
    from gwms.net import ServiceServer
    from gwms.pool.collector.client import CollectorClient
    from gwms.pool.collector.service import create_collector_app
    from gwms.pool.collector.store import AdStore
    from gwms.security import scopes
    from gwms.security.layout import ensure_pool_keys

    tmp = Path(tempfile.mkdtemp(prefix="bench-factory-"))
    os.environ["BENCH_DIR"] = str(tmp)
    layout = ensure_pool_keys(tmp / "data")
    domain = layout.trust_domain()
    collector = ServiceServer(create_collector_app(AdStore(), layout.verifier(), name="wms"), service="collector")
    collector.start()
    glidein = tmp / "glidein.sh"
    glidein.write_text(GLIDEIN)
    glidein.chmod(0o755)
    cfg = FactoryConfig.model_validate({
        "name": "gf", "wms_collector": collector.url,
        "frontends": {"vofe": {"identity": f"vofrontend@{domain}", "security_classes": {"main": "fe1"}}},
        "entries": [{"name": "local1", "backend": "local", "backend_settings": {"slots": 64},
                     "pilot_command": [str(glidein)]}],
    }).resolved(tmp, tmp / "data")
    service = FactoryService(cfg, token=layout.mint_token("factory", [scopes.ADVERTISE_FACTORY, scopes.READ]))
    service.start()
    fe = CollectorClient(collector.url, token=layout.mint_token("vofrontend", [scopes.ADVERTISE_FRONTEND, scopes.READ]))
    to_process, to_store = [], []
    try:
        deadline = time.monotonic() + 30
        while not fe.query(A.TYPE_GLIDEFACTORY_GLOBAL):
            assert time.monotonic() < deadline, "no glidefactoryglobal ad"
            time.sleep(0.05)
        g = fe.query(A.TYPE_GLIDEFACTORY_GLOBAL)[0]
        for i in range(samples):
            time.sleep(0.3 + random.random())  # requests arrive at any point of the factory's poll period
            ad = build_request_ad(
                entry_ad_name="local1@v1@gf", client_name=f"vofe.g{i}", identity=f"vofrontend@{domain}",
                security_name="vofe", security_class="main", factory_public_key=g[A.PUB_KEY_VALUE],
                key_id=g[A.PUB_KEY_ID], req_idle=1, req_max=1,
            )
            t0 = time.time()
            fe.advertise(ad)
            key = f"vofe/vofe.g{i}/default"
            started = None
            recorded = None
            while time.time() - t0 < 30 and (started is None or recorded is None):
                files = list(tmp.glob("started.*"))
                for rec in service.store.query(client=key):
                    f = tmp / f"started.{rec.pilot_id}"
                    if started is None and f.exists() and f.read_text().strip():
                        started = float(f.read_text()) - t0
                    if recorded is None and rec.state is PilotState.RUNNING:
                        recorded = time.time() - t0
                del files
                time.sleep(0.01)
            assert started is not None and recorded is not None, "the pilot never ran"
            to_process.append(started)
            to_store.append(recorded)
    finally:
        service.stop()
        for pgid in service.backends["local1"].pids().values():  # type: ignore[attr-defined]
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        fe.close()
        collector.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "samples": samples,
        "request_poll_s": cfg.request_poll_s,
        "loop_delay_s": cfg.loop_delay,
        "to_process_median_s": statistics.median(to_process),
        "to_process_max_s": max(to_process),
        "to_store_running_median_s": statistics.median(to_store),
        "to_store_running_max_s": max(to_store),
    }


def main() -> None:
    """Run the benchmarks and write the JSON results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--skip-dense", action="store_true")
    args = ap.parse_args()

    rng = random.Random(1)
    sparse_pairs = [(c, rng.randrange(1000)) for c in range(100)]
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
    }
    results["decision_sparse"] = decision(1000, sparse_pairs, 20, args.repeat)
    if not args.skip_dense:
        dense_pairs = [(c, e) for c in range(100) for e in range(1000)]
        results["decision_dense"] = decision(1000, dense_pairs, 20, max(1, args.repeat // 2))
    results["latency"] = latency(args.samples)
    results["targets"] = {"decision_cycle_s": DECISION_TARGET_S, "request_to_running_s": LATENCY_TARGET_S}
    results["loadavg_after"] = os.getloadavg()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    s = results["decision_sparse"]
    d = results.get("decision_dense")
    lat = results["latency"]
    dense = (f"; dense 100k requests {d['cycle_s']:.2f} s ({d['plan_s'] + d['read_unchanged_s']:.2f} s "
             "when unchanged)") if d else ""
    print(
        f"factory: cycle decision 1,000 entries x 100 requests {s['cycle_s'] * 1000:.0f} ms "
        f"(target < {DECISION_TARGET_S:g} s){dense}; request -> pilot running "
        f"{lat['to_process_median_s']:.2f} s median, {lat['to_process_max_s']:.2f} s max "
        f"(store says running: {lat['to_store_running_median_s']:.2f} s; target < {LATENCY_TARGET_S:g} s)"
    )


if __name__ == "__main__":
    sys.exit(main())
