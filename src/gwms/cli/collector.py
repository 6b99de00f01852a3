"""The ``gwms collector`` command group.

::

    gwms collector run --data DIR [--port 9618] [--host 127.0.0.1] [--name NAME] [--tls]
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from gwms.security.tokens import TokenVerifier

logger = logging.getLogger("gwms.collector")

#: HTCondor's collector port, used when --port is not given.
DEFAULT_PORT = 9618


@click.group(name="collector")
def collector() -> None:
    """The collector: ad store and message board.

    Holds the ads of every service (slots, schedds, factory entries, frontend requests),
    stamps each with the sender's verified identity and expires those not refreshed.
    The same service is the user pool's collector and the WMS collector.
    """


def load_verifier(data_dir: Path) -> TokenVerifier:
    """The token verifier for the pool whose security directory is ``data_dir``
    (its pool key and trust domain are created if missing)."""
    from gwms.security.layout import ensure_pool_keys

    return ensure_pool_keys(data_dir).verifier()


@collector.command("run")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The pool's data directory; its keys/ verify tokens (made if missing).",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
    help="Port to listen on (0: a free one).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--name", default="collector", show_default=True,
    help="This collector's name (e.g. user-pool, wms).",
)
@click.option(
    "--tls/--no-tls", default=False, show_default=True,
    help="Serve HTTPS with DIR/ca/service.pem (from 'gwms security init DIR').",
)
@click.option(
    "--expiry-interval", type=click.FloatRange(0.05, 3600), default=None, metavar="SECONDS",
    help="Seconds between sweeps of expired ads (default 5).",
)
def run_cmd(
    data_dir: Path, port: int, host: str, name: str, tls: bool, expiry_interval: float | None
) -> None:
    """Run a collector until interrupted; prints 'gwms collector listening on URL'.

    Ads are held in memory only (soft state, as in HTCondor): after a restart the
    collector is empty until the daemons advertise again, which each does at least once
    per ad lifetime. Nothing under DIR is written except missing keys.
    """
    from gwms.net import ServiceServer
    from gwms.pool.collector.limits import DEFAULT_EXPIRY_INTERVAL
    from gwms.pool.collector.service import create_collector_app
    from gwms.pool.collector.store import AdStore
    from gwms.security.layout import SecurityLayout

    verifier = load_verifier(data_dir)
    store = AdStore()
    app = create_collector_app(
        store,
        verifier,
        name=name,
        expiry_interval=expiry_interval or DEFAULT_EXPIRY_INTERVAL,
    )
    ssl_options: dict[str, str] = {}
    if tls:
        cert = SecurityLayout(data_dir).service_cert()
        ssl_options = {
            "ssl_certfile": str(cert.cert_path),
            "ssl_keyfile": str(cert.key_path),
        }
    server = ServiceServer(app, host=host, port=port, service="collector", **ssl_options)
    server.serve_forever(announce=lambda line: click.echo(line))
