"""`gwms simulate` on the shipped scenarios: repeatable, and the failing site and the
black hole handled as the real factory and glidein code handle them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gwms.simulate import Simulation, load_scenario
from gwms.simulate.engine import load_configs

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "simulate"
SHIPPED = ["burst", "steady", "failing-site", "black-hole"]


def run(name: str, *, seed: int | None = None, duration: float | None = None, factory: str | None = None) -> dict:
    sc = load_scenario(EXAMPLES / f"{name}.yaml")
    if duration is not None:
        sc = sc.model_copy(update={"duration": duration})
    fe, fa = load_configs(sc, factory=EXAMPLES / factory if factory else None)
    return Simulation(sc, fe, fa, seed=seed).run()


@pytest.mark.parametrize("name", SHIPPED)
def test_same_seed_same_report(name: str) -> None:
    a = json.dumps(run(name, duration=1800), sort_keys=True)
    b = json.dumps(run(name, duration=1800), sort_keys=True)
    assert a == b
    report = json.loads(a)
    assert report["summary"]["jobs_submitted"] > 0
    assert report["summary"]["glideins_submitted"] > 0
    if name == "burst":
        # the real request math ran: the ramp-up hit the per-entry idle request cap and curbs
        assert report["groups"]["main"]["limits_fired"].get("IdleRequestPerEntry", 0) > 0


def test_another_seed_another_run() -> None:
    a = run("failing-site", duration=1800, seed=1)
    b = run("failing-site", duration=1800, seed=2)
    assert a["series"] != b["series"]
    assert a["seed"] == 1 and b["seed"] == 2


def test_failing_site_is_paused_not_flooded() -> None:
    report = run("failing-site")
    entries = report["entries"]
    bad = entries["site_b"]
    healthy = [entries[n] for n in ("site_a", "site_c", "site_d")]
    # every pilot there died, the entry was paused (more than once: it stays broken) ...
    assert bad["pilots_started"] == 0 and bad["pilots_failed_at_start"] == bad["submitted"] > 0
    assert bad["paused"] and bad["pauses"] >= 2
    assert "died early" in bad["pause_reason"]
    assert bad["paused_hours"] >= 3.0
    # ... so its submissions stay bounded: far fewer than a healthy entry's, and never a
    # flood of 100 per cycle hour after hour
    assert bad["submitted"] < 0.6 * min(e["submitted"] for e in healthy)
    assert bad["max_submitted_per_hour"] < 100
    assert all(not e["paused"] for e in healthy)
    assert report["summary"]["paused_entries"] == ["site_b"]
    # the other sites ran the work
    s = report["summary"]
    assert s["jobs_done"] >= 0.95 * s["jobs_submitted"]
    assert max(report["series"]["paused_entries"]) == 1


def test_black_holes_are_latched_by_the_glideins() -> None:
    on = run("black-hole", duration=4500)
    off = run("black-hole", duration=4500, factory="factory.yaml")
    s_on, s_off = on["summary"], off["summary"]
    assert on["entries"]["site_d"]["black_hole_pilots"] > 0
    # detection on (GLIDEIN_BLACKHOLE_NUMJOBS 5): each black-hole glidein stops after 5 fast failures
    assert s_on["black_hole_glideins_latched"] > 0
    assert 0 < s_on["max_failures_per_black_hole_glidein"] <= 5
    # detection off: the same nodes keep eating jobs
    assert s_off["black_hole_glideins_latched"] == 0
    assert s_off["max_failures_per_black_hole_glidein"] > 50
    assert s_off["black_hole_job_failures"] > 10 * s_on["black_hole_job_failures"]
