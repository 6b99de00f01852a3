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
def up(data: Path, host: str, tls: bool) -> None:
    """Start the whole system on this machine, until Ctrl-C or `gwms down`.

    Starts, on 127.0.0.1, the user pool's collector, a WMS collector, a schedd, a
    negotiator and a frontend (the factory and web UI are to come) as separate processes,
    restarting any that dies. Creates keys, TLS material
    and tokens on first start and writes DIR/client.json, so `gwms submit`, `gwms q` and
    `gwms status` work from the directory that holds DIR (or with --pool DIR). A second
    `gwms up` on the same DIR resumes the queue. Service logs are in DIR/logs/.
    """
    from gwms.embedded.up import UpOptions
    from gwms.embedded.up import up as run_up

    run_up(UpOptions(data=data, host=host, tls=tls), echo=lambda m: click.echo(m))


@click.command("down")
@data_option
def down(data: Path) -> None:
    """Stop the `gwms up` running on DIR (its services stop cleanly)."""
    from gwms.embedded.up import down as run_down

    if run_down(data):
        click.echo(f"stopped gwms up on {data}")
    else:
        click.echo(f"no gwms up is running on {data}")
