"""`gwms simulate` from the command line: files written, one summary line, clear errors."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from click.testing import CliRunner

from gwms.cli import main as climain

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "simulate"


def _scenario(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: tiny
        seed: 3
        duration: 40m
        frontend: {EXAMPLES / 'frontend.yaml'}
        factory: {EXAMPLES / 'factory.yaml'}
        site_defaults: {{capacity: 20, queue_delay: 30, startup: 10}}
        """) + textwrap.dedent(body))
    return path


def test_run_writes_json_and_html(tmp_path: Path) -> None:
    sc = _scenario(tmp_path, """\
        workload:
          - {name: w, pattern: burst, start: 1m, count: 40, runtime: 10m, memory: 1000}
        """)
    out = tmp_path / "out"
    result = CliRunner().invoke(climain.cli, ["simulate", str(sc), "--duration", "20m", "--out", str(out), "--svg", "--quiet"])
    assert result.exit_code == 0, result.output + (result.stderr or "")
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simulate tiny seed 3: 40/40 jobs done")
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["jobs_done"] == 40
    page = (out / "report.html").read_text()
    assert "<svg" in page and "Glideins by state" in page
    assert "cdn" not in page.lower() and "<script src=" not in page


def test_seed_and_duration_options(tmp_path: Path) -> None:
    sc = _scenario(tmp_path, """\
        workload:
          - {name: w, pattern: steady, rate: 120, runtime: {dist: exponential, mean: 5m}}
        """)
    runner = CliRunner()
    reports = []
    for seed in ("5", "5", "6"):
        out = tmp_path / f"out{len(reports)}"
        result = runner.invoke(climain.cli, ["simulate", str(sc), "--seed", seed, "--duration", "20m",
                                             "--out", str(out), "--svg", "--quiet"])
        assert result.exit_code == 0, result.output
        reports.append((out / "report.json").read_text())
    assert reports[0] == reports[1] != reports[2]
    assert json.loads(reports[0])["duration_s"] == 1200


def test_mismatched_configs_are_one_line_errors(tmp_path: Path) -> None:
    factory = tmp_path / "factory.yaml"
    factory.write_text((EXAMPLES / "factory.yaml").read_text().replace("identity: simfe@wms.sim", "identity: other@x"))
    sc = _scenario(tmp_path, """\
        workload:
          - {name: w, count: 1}
        """)
    result = CliRunner().invoke(climain.cli, ["simulate", str(sc), "--factory", str(factory)],
                                                standalone_mode=False)
    assert result.exception is not None
    assert "expects frontend 'simfe' to be 'other@x'" in str(result.exception)

    bad = _scenario(tmp_path, """\
        sites: {nowhere: {capacity: 1}}
        workload:
          - {name: w, count: 1}
        """)
    result = CliRunner().invoke(climain.cli, ["simulate", str(bad)], standalone_mode=False)
    assert "nowhere" in str(result.exception)


def test_same_report_from_separate_processes(tmp_path: Path) -> None:
    # string hashing differs between processes: nothing in a run may depend on set order
    import os
    import subprocess
    import sys

    sc = _scenario(tmp_path, """\
        workload:
          - {name: w, pattern: steady, rate: 200, runtime: {dist: exponential, mean: 8m}}
          - {name: v, pattern: burst, count: 30, runtime: 5m, sites: [SITE_C]}
        """)
    texts = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"p{hash_seed}"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-m", "gwms.cli.main", "simulate", str(sc), "--duration", "20m", "--out", str(out), "--svg",
                        "--quiet"], check=True, env=env, capture_output=True, timeout=120)
        texts.append((out / "report.json").read_text())
    assert texts[0] == texts[1]
