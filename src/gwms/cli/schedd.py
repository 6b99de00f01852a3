"""The ``gwms schedd`` command group.

::

    gwms schedd run --data DIR --collector URL [--port 9615] [--host 127.0.0.1] [--name NAME]
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import click

logger = logging.getLogger("gwms.schedd")

DEFAULT_PORT = 9615


@click.group(name="schedd")
def schedd() -> None:
    """The schedd: the durable job queue.

    Accepts jobs written in the HTCondor submit language, keeps them in a durable
    queue, hands them to startd agents and keeps their history and events.
    """


@schedd.command("run")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The pool's data directory: keys/ verify tokens; the queue and spool go in DIR/schedd/.")
@click.option("--collector", "collector_url", default=None, metavar="URL",
              help="Collector to advertise the schedd ad to (none: do not advertise).")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="Port to listen on (0: a free one).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--name", default=None, help="The schedd's name (default: schedd@<host name>).")
@click.option("--token", "token_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Token for the collector (default: minted from DIR/keys).")
@click.option("--max-jobs-running", type=click.IntRange(1), default=10_000, show_default=True,
              help="MAX_JOBS_RUNNING: jobs this schedd runs at once.")
@click.option("--max-jobs-per-owner", type=click.IntRange(1), default=1_000_000, show_default=True,
              help="Jobs one owner may have queued.")
@click.option("--max-jobs-per-submission", type=click.IntRange(1), default=1_000_000, show_default=True,
              help="Jobs one submit may queue.")
@click.option("--max-input-mb", type=click.IntRange(1), default=1024, show_default=True,
              help="Largest input sandbox of a cluster, in MiB.")
@click.option("--history-retention", type=click.IntRange(0), default=100_000, show_default=True,
              help="Completed and removed jobs kept in the history.")
@click.option("--tls/--no-tls", default=False, show_default=True,
              help="Serve HTTPS with DIR/ca/service.pem (from 'gwms security init DIR').")
@click.option("--advertise-interval", type=click.FloatRange(0.1), default=60.0, show_default=True,
              help="Seconds between schedd ads to the collector (also sent after changes).")
@click.option("--match-timeout", type=click.FloatRange(0.1), default=60.0, show_default=True,
              help="Seconds a match from the negotiator waits for its startd to claim it.")
@click.option("--claim-timeout", type=click.FloatRange(0.1), default=120.0, show_default=True,
              help="Seconds without poll or heartbeat after which a claim is dropped and its job goes back to idle.")
def run_cmd(
    data_dir: Path, collector_url: str | None, port: int, host: str, name: str | None,
    token_file: Path | None, max_jobs_running: int, max_jobs_per_owner: int,
    max_jobs_per_submission: int, max_input_mb: int, history_retention: int, tls: bool, advertise_interval: float,
    match_timeout: float, claim_timeout: float,
) -> None:
    """Run a schedd until interrupted; prints 'gwms schedd listening on URL'.

    The queue is durable (SQLite, WAL): every acknowledged change survives a crash. At
    start, jobs that were running are put back to idle (their claims died with the
    previous process).
    """
    from gwms.net import ServiceServer
    from gwms.pool.collector.client import CollectorClient
    from gwms.pool.schedd.queue import JobQueue
    from gwms.pool.schedd.sandbox import Spool
    from gwms.pool.schedd.service import ScheddLimits, create_schedd_app
    from gwms.security import scopes
    from gwms.security.layout import ensure_pool_keys
    from gwms.security.tokens import read_token_file

    layout = ensure_pool_keys(data_dir)
    verifier = layout.verifier()
    name = name or f"schedd@{socket.gethostname()}"
    state_dir = data_dir / "schedd"
    queue = JobQueue.open(state_dir / "queue.db", history_retention=history_retention)
    report = queue.recover()
    if report.running:
        logger.info("recovered queue: %d running jobs set back to idle", report.evicted)
    spool = Spool(state_dir / "spool", max_input_bytes=max_input_mb << 20)
    limits = ScheddLimits(
        max_jobs_running=max_jobs_running,
        max_jobs_per_owner=max_jobs_per_owner,
        max_jobs_per_submission=max_jobs_per_submission,
        max_input_bytes=max_input_mb << 20,
    )
    advertiser = None
    if collector_url:
        token = (
            read_token_file(token_file)
            if token_file
            else layout.mint_token("schedd", [scopes.ADVERTISE_SCHEDD, scopes.READ])
        )
        verify: bool | str = str(layout.ca_cert_path) if layout.ca_cert_path.exists() else True
        collector = CollectorClient(collector_url, token=token, retries=1, timeout=10, verify=verify)

        def advertiser(ad: dict) -> None:  # type: ignore[type-arg]
            ad["ScheddIpAddr"] = server.url
            collector.advertise(ad)

    app = create_schedd_app(
        queue, spool, verifier, name=name, limits=limits,
        advertiser=advertiser, advertise_interval=advertise_interval,
        match_timeout=match_timeout, claim_timeout=claim_timeout,
    )
    ssl_options: dict[str, str] = {}
    if tls:
        cert = layout.service_cert()
        ssl_options = {"ssl_certfile": str(cert.cert_path), "ssl_keyfile": str(cert.key_path)}
    server = ServiceServer(app, host=host, port=port, service="schedd", **ssl_options)
    try:
        server.serve_forever(announce=lambda line: click.echo(line))
    finally:
        queue.close()
