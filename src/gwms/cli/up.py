"""``gwms up`` and ``gwms down``: the embedded all-in-one deployment."""

from __future__ import annotations

from pathlib import Path

import click

data_option = click.option(
    "--data", "data", type=click.Path(file_okay=False, path_type=Path), default=Path("gwms-data"),
    show_default=True, help="Directory for all state: keys, queue, logs, client file.",
)


@click.command("up")
@data_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the services listen on.")
@click.option("--tls/--no-tls", default=False, show_default=True, help="Serve HTTPS with the pool's own CA.")
@click.option("--config", "config", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="YAML with 'factory:' and 'frontend:' sections merged into the generated configs "
                   "(see docs/up.md).")
def up(data: Path, host: str, tls: bool, config: Path | None) -> None:
    """Start the whole system on this machine, until Ctrl-C or `gwms down`.

    Starts, on 127.0.0.1, the user pool's collector, a WMS collector, a schedd, a
    negotiator, a factory with three local entries (siteA: 1 CPU / 2 GB, siteB: 2 CPUs /
    4 GB partitionable, siteC: 4 CPUs / 8 GB partitionable), the log server the glideins
    push their logs to and the log indexer (DIR/monitor), a frontend with one group, and
    the web UI (dashboards at /pool, /factory, /frontend; glidein logs at /logs/), as
    separate processes, restarting any that dies. Creates keys, TLS material
    and tokens on first start, writes the factory's and frontend's configs
    (DIR/factory/factory.yaml, DIR/frontend/frontend.yaml; --config overrides them) and
    DIR/client.json, so `gwms submit`, `gwms q` and `gwms status` work from the
    directory that holds DIR (or with --pool DIR). Ports are kept in DIR/up.json; a
    second `gwms up` on the same DIR resumes the queue. Service logs are in DIR/logs/.
    """
    from gwms.embedded.up import UpOptions
    from gwms.embedded.up import up as run_up

    run_up(UpOptions(data=data, host=host, tls=tls, config=config), echo=lambda m: click.echo(m))


@click.command("down")
@data_option
def down(data: Path) -> None:
    """Stop the `gwms up` running on DIR (its services stop cleanly)."""
    from gwms.embedded.up import down as run_down

    if run_down(data):
        click.echo(f"stopped gwms up on {data}")
    else:
        click.echo(f"no gwms up is running on {data}")


@click.command("demo")
@click.option("--data", "data", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-data"),
              show_default=True, help="Data directory of the `gwms up` the demo starts (or uses).")
@click.option("--examples", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Directory with the workload's *.sub files (default: the source tree's examples/).")
@click.option("--config", "config", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Overrides for `gwms up --config` (see docs/up.md).")
@click.option("--exit-when-done", is_flag=True, help="Stop gwms up once the workload is done (tests, CI).")
@click.option("--timeout", type=click.FloatRange(1), default=900.0, show_default=True,
              help="Give up when the workload takes longer than this (seconds).")
def demo(data: Path, examples: Path | None, config: Path | None, exit_when_done: bool, timeout: float) -> None:
    """Start gwms up, run the sample workload live, then show where to look.

    Starts `gwms up --data DIR` (or uses the one running there), submits every *.sub of
    examples/ from a fresh DIR/demo/run-N directory, shows jobs and glideins per entry
    every second, fetches the outputs, and prints the web UI URL and commands to try.
    Then it keeps the system running until Ctrl-C (--exit-when-done: stops it).
    """
    from gwms.embedded.demo import DemoOptions, default_examples_dir, run_demo

    run_demo(DemoOptions(data=data, examples=examples or default_examples_dir(),
                         exit_when_done=exit_when_done, config=config, timeout=timeout))
