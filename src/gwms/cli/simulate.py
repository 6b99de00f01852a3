"""``gwms simulate``: the real frontend and factory against simulated sites, in virtual time."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

__all__ = ["simulate", "summary_line"]


def summary_line(report: dict, wall_seconds: float, out: Path | None = None) -> str:
    """The one line printed after a run."""
    s = report["summary"]
    conv = s["convergence_s"]
    paused = ", ".join(s["paused_entries"]) or "none"
    line = (
        f"simulate {report['scenario']} seed {report['seed']}: {s['jobs_done']}/{s['jobs_submitted']} jobs done, "
        f"peak idle {s['peak_jobs_idle']}, backlog cleared {'never' if conv is None else f'in {conv / 3600:.2f} h'}, "
        f"{s['glideins_submitted']} glideins submitted, wasted {s['wasted_glidein_hours']:.1f} glidein-h, "
        f"over-provisioned peak {s['over_provisioned_peak']}, paused entries: {paused}; "
        f"{report['duration_s'] / 3600:.1f} h simulated in {wall_seconds:.1f} s"
    )
    if out is not None:
        line += f" -> {out}"
    return line


@click.command("simulate")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--seed", type=int, default=None, help="Random seed (default: the scenario's).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for report.json and report.html (default: ./simulate-<scenario name>).")
@click.option("--frontend", "frontend_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Frontend configuration to drive instead of the scenario's.")
@click.option("--factory", "factory_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Factory configuration to drive instead of the scenario's.")
@click.option("--duration", default=None, help="Simulated time instead of the scenario's (e.g. 90m, 6h, 1d).")
@click.option("--svg", "svg_only", is_flag=True, help="Draw inline SVG charts even if plotly is installed.")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
def simulate(scenario: Path, seed: int | None, out_dir: Path | None, frontend_path: Path | None,
             factory_path: Path | None, duration: str | None, svg_only: bool, quiet: bool) -> None:
    """Run the real frontend and factory against simulated sites in virtual time.

    SCENARIO is a YAML file naming a frontend and a factory configuration (the files
    `gwms frontend run` and `gwms factory run` accept), the simulated sites behind the
    factory's entries (queue delays, capacity, failures, black-hole nodes) and the
    workload (bursts, steady arrivals). The frontend's matching and request math and
    the factory's limits, removals and pauses are the real code, run on a virtual clock:
    a simulated day takes minutes. Writes report.json and report.html (charts, no CDN)
    to --out and prints one summary line; progress goes to stderr.
    """
    from gwms.errors import GwmsError
    from gwms.simulate.distributions import seconds
    from gwms.simulate.engine import Simulation, load_configs
    from gwms.simulate.plot import render_html
    from gwms.simulate.scenario import load_scenario

    sc = load_scenario(scenario)
    if duration is not None:
        try:
            sc = sc.model_copy(update={"duration": seconds(duration)})
        except ValueError as exc:
            raise GwmsError(f"--duration: {exc}") from None
    fe, fa = load_configs(sc, frontend_path, factory_path)
    progress = None if quiet else (lambda line: click.echo(line, err=True))
    sim = Simulation(sc, fe, fa, seed=seed, progress=progress)
    report = sim.run()
    wall = sim.wall_seconds
    out = out_dir or Path.cwd() / f"simulate-{sc.name}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    (out / "report.html").write_text(render_html(report, use_plotly=not svg_only))
    click.echo(summary_line(report, wall, out / "report.json"))
    sys.stdout.flush()
