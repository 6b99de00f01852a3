"""The scenario file: defaults, overrides per site, and errors that say where."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gwms.config import ConfigError
from gwms.simulate import load_scenario
from gwms.simulate.distributions import Distribution
from gwms.simulate.workload import arrival_times

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "simulate"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_shipped_scenarios_load_with_absolute_config_paths() -> None:
    for name in ("burst", "steady", "failing-site", "black-hole"):
        sc = load_scenario(EXAMPLES / f"{name}.yaml")
        assert sc.frontend.is_absolute() and sc.frontend.exists()
        assert sc.factory.is_absolute() and sc.factory.exists()
    sc = load_scenario(EXAMPLES / "failing-site.yaml")
    assert sc.site_for("site_b").failure_rate == 1.0
    assert sc.site_for("site_a").failure_rate == 0.0
    assert sc.site_for("site_a").capacity == sc.site_defaults.capacity == 150


def test_durations_and_distributions(tmp_path: Path) -> None:
    sc = load_scenario(_write(tmp_path, """\
        name: t
        duration: 1d
        frontend: f.yaml
        factory: g.yaml
        site_defaults: {queue_delay: 5m, startup: {dist: uniform, low: 10s, high: 1m}}
        sites: {a: {failing_from: 1h, failing_until: 2h, failure_rate: 0.5}}
        workload:
          - {name: w, pattern: steady, rate: 60, start: 30m, end: 2h, runtime: {dist: lognormal, median: 1h}}
        """))
    assert sc.duration == 86400
    assert sc.site_defaults.queue_delay == Distribution(dist="fixed", value=300)
    site = sc.site_for("a")
    assert (site.failure_rate_at(1800), site.failure_rate_at(3600), site.failure_rate_at(7200)) == (0, 0.5, 0)
    w = sc.workload[0]
    assert (w.start, w.end) == (1800, 7200)
    import random

    times = arrival_times(w, 0.0, 86400.0, random.Random(1))
    assert times == sorted(times) and all(1800 < t <= 7200 for t in times)
    assert 30 < len(times) < 200  # about 60 an hour for 1.5 h


@pytest.mark.parametrize(("body", "message"), [
    ("workload: [{name: w, pattern: burst}]", "a burst needs count"),
    ("workload: [{name: w, pattern: steady}]", "steady arrivals need rate"),
    ("workload: [{name: w, count: 1, runtime: {dist: uniform, low: 5}}]", "needs high"),
    ("workload: [{name: w, count: 1, runtime: ten}]", "duration"),
    ("workload: [{name: w, count: 1}, {name: w, count: 2}]", "unique"),
    ("sites: {a: {capacity: -1}}\nworkload: [{name: w, count: 1}]", "sites.a"),
    ("workload: []", "workload"),
])
def test_errors_name_the_setting(tmp_path: Path, body: str, message: str) -> None:
    path = _write(tmp_path, "name: t\nfrontend: f.yaml\nfactory: g.yaml\n" + body + "\n")
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    assert message in str(info.value)
    assert "s.yaml" in str(info.value)
