"""The ``gwms frontend`` command group.

::

    gwms frontend run --config frontend.yaml [--data DIR] [--port 0] [--watch-interval 1] [--tls]
    gwms frontend status [--frontend URL] [--data DIR] [--token FILE] [--group G] [-json]

``run`` writes ``DIR/frontend/endpoint.json``; ``status`` finds the frontend there
(``--frontend URL`` otherwise; DIR: ``--data``, ``$GWMS_POOL``, then ``./gwms-data``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from gwms.cli.endpoint import ENDPOINT_FILE
from gwms.errors import GwmsError


@click.group(name="frontend")
def frontend() -> None:
    """The frontend: turns idle jobs into glidein requests.

    Watches the users' queues and pool, matches idle jobs to factory entries and
    asks factories for as many glideins as the demand justifies.
    """


def _wms_tokens(cfg: Any, layout: Any) -> dict[str, Any]:
    """Per WMS collector URL: its token file's token, else one minted for my_identity."""
    from gwms.cli.factory import MintedToken
    from gwms.security import scopes
    from gwms.security.tokens import read_token_file

    domain = layout.trust_domain()
    tokens: dict[str, Any] = {}
    for group in cfg.enabled_groups():
        for wms in cfg.wms_collectors_of(group):
            if wms.url in tokens:
                continue
            if wms.token_file is not None:
                tokens[wms.url] = read_token_file(wms.token_file)
                continue
            user, _, where = wms.my_identity.partition("@")
            if where != domain:
                raise GwmsError(
                    f"cannot mint a token for {wms.my_identity} (this data directory's trust domain is {domain})",
                    hint=f"set token_file for the WMS collector {wms.url}",
                )
            tokens[wms.url] = MintedToken(layout, user, [scopes.ADVERTISE_FRONTEND, scopes.READ])
    return tokens


@frontend.command("run")
@click.option("--config", "config_path", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path), help="The frontend's YAML configuration.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Data directory: keys/ verify API tokens and mint the frontend's own (default: the "
                   "config's work_dir, else frontend-data beside the config).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port of the status endpoint (0: a free one).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--watch-interval", type=click.FloatRange(0), default=1.0, show_default=True,
              help="Seconds between looks at the schedds' idle counts (a change starts a cycle; 0: never).")
@click.option("--tls/--no-tls", default=False, show_default=True, help="Serve HTTPS with DIR/ca/service.pem.")
def run_cmd(config_path: Path, data_dir: Path | None, port: int, host: str, watch_interval: float,
            tls: bool) -> None:
    """Run the frontend until interrupted; prints 'gwms frontend listening on URL'.

    Each group cycles every loop_delay seconds, and sooner when its schedds' idle job
    counts change: it queries the schedds, the user pool and the factories' entries,
    computes min idle / max run per entry and advertises encrypted requests.
    """
    from gwms.cli.factory import MintedToken
    from gwms.frontend.config import load_frontend_config
    from gwms.frontend.service import FrontendService, create_frontend_app, resolved_config
    from gwms.net import ServiceServer
    from gwms.security import scopes
    from gwms.security.layout import ensure_pool_keys
    from gwms.security.tokens import read_token_file

    base = config_path.resolve().parent
    cfg = resolved_config(load_frontend_config(config_path), base)
    data = (data_dir.resolve() if data_dir else cfg.work_dir) or (base / "frontend-data")
    layout = ensure_pool_keys(data)
    wms_tokens = _wms_tokens(cfg, layout)
    pool_token: Any = (read_token_file(cfg.user_pool.token_file) if cfg.user_pool.token_file
                       else MintedToken(layout, cfg.frontend_name, [scopes.READ, scopes.ADVERTISE_FRONTEND]))
    verify: bool | str = str(layout.ca_cert_path) if layout.ca_cert_path.exists() else True
    service = FrontendService(cfg, wms_token=wms_tokens, pool_token=pool_token, verify=verify,
                              watch_interval=watch_interval)
    app = create_frontend_app(service, layout.verifier())
    ssl_options: dict[str, str] = {}
    if tls:
        cert = layout.service_cert()
        ssl_options = {"ssl_certfile": str(cert.cert_path), "ssl_keyfile": str(cert.key_path)}
    server = ServiceServer(app, host=host, port=port, service="frontend", **ssl_options)
    service.url = server.url
    state = data / "frontend"
    state.mkdir(parents=True, exist_ok=True)
    endpoint = state / ENDPOINT_FILE
    tmp = endpoint.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": server.url, "pid": os.getpid(), "name": cfg.frontend_name}))
    tmp.replace(endpoint)
    server.serve_forever(announce=lambda line: click.echo(line))


# --------------------------------------------------------------------------- status


def _client(frontend_url: str | None, data_dir: Path | None, token_file: Path | None) -> Any:
    from gwms.cli.endpoint import service_client
    from gwms.security import scopes

    return service_client("frontend", frontend_url, data_dir, token_file, scopes.READ)


def render_status(status: dict[str, Any], group: str | None = None) -> str:
    """The table ``gwms frontend status`` prints: per group and entry, seen and asked."""
    from gwms.cli.jobs import render_table

    rows = []
    notes = []
    for name, g in status.get("groups", {}).items():
        if group is not None and name != group:
            continue
        if g.get("complete") is False:
            notes.append(f"group {name}: last cycle incomplete: {g.get('error')}")
        for e in g.get("entries", []):
            gl = e.get("glideins", {})
            limits = ",".join(e.get("limits", [])) or "-"
            if e.get("skipped"):
                limits = f"skipped: {e['skipped']}"
            rows.append([
                name, str(e["entry"]), str(e["idle"]), str(e["running"]),
                f"{gl.get('total', 0)}/{gl.get('idle', 0)}/{gl.get('running', 0)}",
                str(e["min_idle"]), str(e["max_run"]), str(e["removal"]), limits,
            ])
        if not g.get("entries"):
            rows.append([name, "-", str(g.get("idle_jobs", 0)), str(g.get("running_jobs", 0)),
                         "-", "-", "-", "-", "no entries" if g.get("cycles") else "no cycle yet"])
    table = render_table(["GROUP", "ENTRY", "IDLE", "RUNNING", "GLIDEINS(T/I/R)", "REQ_IDLE", "MAX_RUN",
                          "REMOVE", "LIMITS"], rows)
    lines = [table]
    for name, g in status.get("groups", {}).items():
        if group is not None and name != group:
            continue
        lines.append(f"group {name}: {g.get('cycles', 0)} cycle(s), last took {g.get('duration', 0):.2f}s "
                     f"({g.get('trigger') or '-'}); {g.get('idle_jobs', 0)} idle, {g.get('running_jobs', 0)} "
                     f"running, {g.get('unmatched_idle', 0)} idle matching no entry")
    return "\n".join(lines + notes)


@frontend.command("status")
@click.option("--frontend", "frontend_url", default=None, metavar="URL",
              help="The frontend's URL (default: from DIR/frontend/endpoint.json).")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The frontend's data directory (default: $GWMS_POOL, then ./gwms-data).")
@click.option("--token", "token_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Token file (READ; default: minted from DIR/keys).")
@click.option("--group", default=None, help="Only this group.")
@click.option("-json", "--json", "as_json", is_flag=True, help="Print JSON.")
def status_cmd(frontend_url: str | None, data_dir: Path | None, token_file: Path | None, group: str | None,
               as_json: bool) -> None:
    """Per group and entry: idle and running jobs, glideins, the request, the limits that fired."""
    with _client(frontend_url, data_dir, token_file) as http:
        status = http.get("/v1/status")
    if as_json:
        click.echo(json.dumps(status, indent=2))
    else:
        click.echo(render_status(status, group))
