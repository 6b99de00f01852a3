"""``make demo DEMO_EXIT=1`` end to end: the Makefile runs ``gwms demo --exit-when-done``,
which starts ``gwms up``, runs examples/ to the end, prints where to look and stops."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from e2e_system import fast_overrides

from gwms.embedded.demo import default_examples_dir

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]


def test_make_demo_runs_gwms_demo() -> None:
    # -n: print the command only; -o: do not (re)install the venv here. Under `make test`
    # the parent make's MAKEFLAGS/MAKELEVEL would add "Entering directory" lines: drop them.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    make = ["make", "--no-print-directory", "-n", "-o", ".venv/.gwms-installed", "demo"]
    out = subprocess.run([*make, "DEMO_EXIT=1", "DEMO_DATA=/tmp/x"],
                         cwd=REPO, capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip().endswith("-m gwms demo --data /tmp/x --exit-when-done"), out
    out = subprocess.run(make, cwd=REPO, capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip().endswith("-m gwms demo --data demo-data"), out


def test_the_demo_runs_the_examples_and_says_where_to_look(tmp_path: Path) -> None:
    examples = default_examples_dir()
    subs = sorted(p.stem for p in examples.glob("*.sub"))
    assert subs == ["bigmem", "multicore", "site_a", "small"]
    config = tmp_path / "fast.yaml"
    config.write_text(yaml.safe_dump(fast_overrides()))
    data = tmp_path / "demo-data"
    proc = subprocess.run(
        [sys.executable, "-m", "gwms", "demo", "--data", str(data), "--exit-when-done", "--config", str(config),
         "--timeout", "180"],
        cwd=tmp_path, capture_output=True, text=True, timeout=230, env={**os.environ, "COLUMNS": "200"}, check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    m = re.search(r"submitted (\d+) jobs from 4 submit files", out)
    assert m and int(m.group(1)) == 27, out[-3000:]
    # progress lines (not a terminal: one line every few seconds), ending with all done
    assert re.search(r"jobs idle=0 running=0 held=0 done=27 \| glideins siteA=", out), out[-3000:]
    assert "all 27 jobs finished" in out
    for hint in ("Where to look:", "gwms q --pool", "gwms status --pool", "gwms frontend status --data",
                 "gwms factory q --data", "gwms logs search --data", "web UI"):
        assert hint in out, hint
    # gwms up runs the web UI: its pages, the glidein logs at /logs/ among them
    m = re.search(r"^  web UI +(http://127\.0\.0\.1:\d+)$", out, re.MULTILINE)
    assert m and f"{m.group(1)}/pool" in out and f"{m.group(1)}/logs/" in out, out[-3000:]
    assert "gwms is down" in out
    # nothing of it is left running: no service, no glidein
    left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _mentions(p, str(data))]
    assert left == [], [(p.name, (p / "cmdline").read_bytes()[:200]) for p in left]
    # the outputs are in the run directory, from the sites each job asked for
    run_dir = data / "demo" / "run-1"
    outs = sorted(run_dir.glob("*.out"))
    assert len(outs) == 27
    for path in outs:
        text = path.read_text()
        assert "done after" in text, (path, text)
        if path.name.startswith("site_a."):
            assert "site=SiteA" in text, text
        if path.name.startswith("bigmem."):
            assert "site=SiteC" in text, text
        if path.name.startswith("multicore."):
            assert re.search(r"site=Site[BC]", text), text
    # the glideins' logs were indexed for `gwms logs search`
    assert (data / "monitor").is_dir()


def _mentions(proc_dir: Path, text: str) -> bool:
    try:
        return text.encode() in (proc_dir / "cmdline").read_bytes()
    except OSError:
        return False
