"""The stage area and the glidein bootstrap (issue 5): how fast a pilot gets to its agent.

- ``stage_build``: :func:`gwms.factory.stage.build_stage_area` for 1 and ``--entries``
  entries (each with two attributes, every tenth with a validation script of its own):
  the first build into an empty directory, and a rebuild where every file exists.
- ``bootstrap``: the real ``glidein_startup.sh`` run with ``sh`` against the stage area
  served on 127.0.0.1 (curl + sha256sum), the default validation scripts, and a stand-in
  agent that records the moment it starts and exits at once. Seconds from the launch to
  the agent's start (what "request to pilot running" adds on top of the factory and the
  site) and to the glidein's exit (logs written), one glidein at a time (``--runs``), then
  ``--burst`` glideins started together.

Writes benchmarks/results/glidein_startup.json and prints one line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gwms.factory.stage import EntryStage, build_stage_area, glidein_argv, serve_stage
from gwms.glidein.zipbuild import build_zipapp
from gwms.security.hybrid import RsaKeyPair

RESULTS = Path(__file__).resolve().parent / "results" / "glidein_startup.json"

FAKE_AGENT = """import os, sys, time
with open(os.environ["BENCH_AGENT_MARK"], "a") as f:
    f.write("%f\\n" % time.time())
log = sys.argv[sys.argv.index("--log-dir") + 1]
os.makedirs(log, exist_ok=True)
with open(os.path.join(log, "StartdLog"), "w") as f:
    f.write("started\\n" * 1000)
"""


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_stage(tmp: Path, entries: int, pyz: Path, key: RsaKeyPair) -> dict[str, float]:
    script = tmp / "check_site.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    spec = {f"entry_{i:04d}": EntryStage(validation=(script,) if i % 10 == 0 else (),
                                          attrs={"GLIDEIN_Site": f"Site{i}", "GLIDEIN_CPUS": 1 + i % 8})
            for i in range(entries)}
    out: dict[str, float] = {}
    for label in ("first", "rebuild"):
        t = time.perf_counter()
        area = build_stage_area(tmp / f"stage_{entries}", factory_name="bench", signing_key=key, entries=spec,
                                agent_zipapp=pyz)
        out[f"{label}_s"] = round(time.perf_counter() - t, 4)
    out["files"] = len(area.files)
    out["index_bytes"] = (area.dir / area.index_name).stat().st_size
    return out


def launch(argv: list[str], env: dict[str, str], mark: Path) -> tuple[float, subprocess.Popen[bytes]]:
    t = time.time()
    proc = subprocess.Popen(argv, env={**env, "BENCH_AGENT_MARK": str(mark)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    return t, proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--burst", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-glidein-") as tmpname:
        tmp = Path(tmpname)
        key = RsaKeyPair.generate("bench", 2048)
        pyz = build_zipapp(tmp / "gwms-startd.pyz")
        stage = {"1": bench_stage(tmp, 1, pyz, key), str(args.entries): bench_stage(tmp, args.entries, pyz, key)}

        area = build_stage_area(tmp / "stage", factory_name="bench", signing_key=key, agent_zipapp=pyz,
                                config={"GLIDEIN_MIN_DISK_MB": 1}, entries={"e": {"attrs": {"GLIDEIN_Site": "B"}}})
        agent = tmp / "agent.py"
        agent.write_text(FAKE_AGENT)
        work = tmp / "work"
        work.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env["GWMS_GLIDEIN_AGENT"] = str(agent)
        url, stop = serve_stage(area.dir)
        try:
            argv = glidein_argv(area, url, entry="e", client="fe.main", glidein_name="bench",
                                collector_url="http://127.0.0.1:9", token_file_or_value="t", work_dir=str(work),
                                hold_seconds=0)
            to_agent, to_exit = [], []
            for i in range(args.runs):
                mark = tmp / f"mark_{i}"
                t, proc = launch(argv, env, mark)
                code = proc.wait(120)
                done = time.time()
                assert code == 0, f"glidein exited with {code}"
                to_agent.append(float(mark.read_text().split()[0]) - t)
                to_exit.append(done - t)
            marks = [tmp / f"burst_{i}" for i in range(args.burst)]
            t0 = time.time()
            procs = [launch(argv, env, m)[1] for m in marks]
            codes = [p.wait(300) for p in procs]
            burst_done = time.time() - t0
            assert codes == [0] * args.burst, codes
            burst_agent = [float(m.read_text().split()[0]) - t0 for m in marks]
        finally:
            stop()

    result = {
        "benchmark": "glidein_startup",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "stage_build": stage,
        "bootstrap": {
            "runs": args.runs,
            "to_agent_s": {"median": round(statistics.median(to_agent), 3), "p90": round(pct(to_agent, 0.9), 3),
                           "max": round(max(to_agent), 3)},
            "to_exit_s": {"median": round(statistics.median(to_exit), 3), "p90": round(pct(to_exit, 0.9), 3)},
            "burst": {"glideins": args.burst, "last_agent_start_s": round(max(burst_agent), 3),
                      "all_done_s": round(burst_done, 3)},
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    b = result["bootstrap"]
    print(f"glidein_startup: stage build {args.entries} entries {stage[str(args.entries)]['first_s']:.2f} s "
          f"(rebuild {stage[str(args.entries)]['rebuild_s']:.2f} s); bootstrap to agent median "
          f"{b['to_agent_s']['median']:.2f} s (p90 {b['to_agent_s']['p90']:.2f} s), to exit "
          f"{b['to_exit_s']['median']:.2f} s; burst of {args.burst}: last agent at "
          f"{b['burst']['last_agent_start_s']:.2f} s", file=sys.stdout)


if __name__ == "__main__":
    main()
