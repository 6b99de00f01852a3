"""The ``gwms web`` command group.

::

    gwms web run --data DIR [--port 0]                      # the services of `gwms up --data DIR`
    gwms web run --collector URL [--schedd URL ...] [--negotiator URL] [--factory URL ...]
                 [--frontend URL ...] --token-file FILE [--security DIR] [--monitor-data DIR]
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group(name="web")
def web() -> None:
    """The web UI: dashboards for pool, factory, frontend, logs.

    One web application with the dashboards and the log monitor's pages.
    """


@web.command("run")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A `gwms up` data directory: service URLs from DIR/up.json, the admin token, "
                   "the CA, and the log monitor in DIR/monitor.")
@click.option("--collector", metavar="URL", default=None, help="The user pool's collector.")
@click.option("--wms", metavar="URL", default=None, help="The WMS collector.")
@click.option("--schedd", "schedds", metavar="URL", multiple=True,
              help="A schedd (repeatable; default: those advertised to the collector).")
@click.option("--negotiator", metavar="URL", default=None,
              help="The negotiator (default: the one advertised to the collector).")
@click.option("--factory", "factories", metavar="URL", multiple=True, help="A factory (repeatable).")
@click.option("--frontend", "frontends", metavar="URL", multiple=True, help="A frontend (repeatable).")
@click.option("--token-file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Token the UI reads the services with (READ; default with --data: the admin token).")
@click.option("--ca", "ca_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="CA certificate for HTTPS services.")
@click.option("--security", "security_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A pool directory whose keys verify log-monitor logins (default: --data).")
@click.option("--monitor-data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The log monitor's data directory, mounted at /logs (default with --data: DIR/monitor).")
@click.option("--anonymous-logs/--no-anonymous-logs", default=False, show_default=True,
              help="Let visitors read anonymized logs at /logs without logging in.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port to listen on (0: a free one).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--tls/--no-tls", default=False, show_default=True,
              help="Serve HTTPS with the security directory's service certificate.")
def run_cmd(
    data_dir: Path | None, collector: str | None, wms: str | None, schedds: tuple[str, ...],
    negotiator: str | None, factories: tuple[str, ...], frontends: tuple[str, ...],
    token_file: Path | None, ca_file: Path | None, security_dir: Path | None,
    monitor_data: Path | None, anonymous_logs: bool, port: int, host: str, tls: bool,
) -> None:
    """Serve the dashboards until interrupted; prints 'gwms web listening on URL'.

    With --data, reads the services of that `gwms up` (explicit URLs win); otherwise give
    at least --collector and a --token-file. Pages: /pool, /pool/jobs, /factory,
    /frontend (each also as JSON with .json), and /logs/ when a monitor is mounted.
    """
    from gwms.errors import GwmsError
    from gwms.net import ServiceServer
    from gwms.security.layout import SecurityLayout
    from gwms.security.tokens import read_token_file
    from gwms.web.app import create_web_app
    from gwms.web.sources import WebSources, sources_from_data

    sources = sources_from_data(data_dir) if data_dir else WebSources()
    explicit = WebSources(
        collector=collector, wms=wms, schedds=schedds, negotiator=negotiator,
        factories=factories, frontends=frontends,
        token=read_token_file(token_file) if token_file else None,
        verify=str(ca_file) if ca_file else True, monitor_data=monitor_data,
    )
    sources = sources.merged(explicit)
    if not sources.collector:
        raise GwmsError("the web UI needs the pool's collector: give --collector URL, or --data DIR "
                        "of a running `gwms up`")
    if not sources.token:
        raise GwmsError("the web UI needs a token to read the services: give --token-file FILE or --data DIR")
    secdir = security_dir or data_dir
    layout = SecurityLayout(secdir) if secdir else None
    verifier = layout.verifier() if layout and layout.signing_key_path.exists() else None
    app = create_web_app(sources, verifier=verifier, monitor_anonymous=anonymous_logs)
    ssl_options: dict[str, str] = {}
    if tls:
        if layout is None:
            raise GwmsError("--tls needs --data or --security (the service certificate lives there)")
        cert = layout.service_cert()
        ssl_options = {"ssl_certfile": str(cert.cert_path), "ssl_keyfile": str(cert.key_path)}
    server = ServiceServer(app, host=host, port=port, service="web", **ssl_options)
    server.serve_forever(announce=lambda line: click.echo(line))
