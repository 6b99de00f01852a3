"""The ``gwms negotiator`` command group and ``gwms userprio``.

::

    gwms negotiator run --data DIR --collector URL [--interval 60] [--port 0] [--half-life 86400]
    gwms userprio [--pool DIR] [-setfactor SUBMITTER FACTOR] [-json]
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import click

from gwms.errors import GwmsError

STATE_FILE = "accountant.json"


@click.group(name="negotiator")
def negotiator() -> None:
    """The negotiator: matchmaking and fair share.

    Matches idle jobs to unclaimed slots with ClassAd Requirements, START and Rank,
    serving owners in fair-share order.
    """


@negotiator.command("run")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The pool's data directory: keys/ mint and verify tokens; state in DIR/negotiator/.")
@click.option("--collector", "collector_url", required=True, metavar="URL", help="The pool's collector.")
@click.option("--interval", type=click.FloatRange(0.1), default=60.0, show_default=True,
              help="Seconds between negotiation cycles (a cycle also starts early when work arrives).")
@click.option("--watch-interval", type=click.FloatRange(0), default=0.5, show_default=True,
              help="Seconds between looks for new idle jobs or free slots (0: no early cycles).")
@click.option("--half-life", type=click.FloatRange(1), default=86_400.0, show_default=True,
              help="Half-life of usage and real priority, in seconds.")
@click.option("--default-factor", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Priority factor of submitters not given one.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port of the HTTP endpoint (userprio, reschedule, status); 0: a free one.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--name", default=None, help="The negotiator's name (default: negotiator@<host name>).")
@click.option("--token", "token_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Token for the collector and schedds (NEGOTIATOR and READ; default: minted from DIR/keys).")
@click.option("--tls/--no-tls", default=False, show_default=True,
              help="Serve HTTPS with DIR/ca/service.pem.")
def run_cmd(
    data_dir: Path, collector_url: str, interval: float, watch_interval: float, half_life: float,
    default_factor: float, port: int, host: str, name: str | None,
    token_file: Path | None, tls: bool,
) -> None:
    """Run the negotiator until interrupted; prints 'gwms negotiator listening on URL'.

    Each cycle reads the free slots and the schedds from the collector, the idle jobs
    from each schedd, and hands each schedd its matches. Usage and priority factors
    are kept in DIR/negotiator/accountant.json.
    """
    from gwms.net import ServiceServer
    from gwms.pool.negotiator.service import Negotiator, NegotiatorConfig, create_negotiator_app
    from gwms.security import scopes
    from gwms.security.layout import ensure_pool_keys
    from gwms.security.tokens import read_token_file

    layout = ensure_pool_keys(data_dir)
    token = (read_token_file(token_file) if token_file
             else layout.mint_token("negotiator", [scopes.NEGOTIATOR, scopes.READ]))
    verify: bool | str = str(layout.ca_cert_path) if layout.ca_cert_path.exists() else True
    config = NegotiatorConfig(
        collector_url=collector_url,
        name=name or f"negotiator@{socket.gethostname()}",
        interval=interval,
        half_life=half_life,
        default_factor=default_factor,
        state_file=data_dir / "negotiator" / STATE_FILE,
        watch_interval=watch_interval,
        verify=verify,
    )
    neg = Negotiator(config, token=token)
    app = create_negotiator_app(neg, layout.verifier())
    ssl_options: dict[str, str] = {}
    if tls:
        cert = layout.service_cert()
        ssl_options = {"ssl_certfile": str(cert.cert_path), "ssl_keyfile": str(cert.key_path)}
    server = ServiceServer(app, host=host, port=port, service="negotiator", **ssl_options)
    neg.url = server.url
    server.serve_forever(announce=lambda line: click.echo(line))


# --------------------------------------------------------------------------- userprio


class NoNegotiator(GwmsError):
    """No negotiator could be found to ask."""


def find_negotiator(collector_url: str, token: str | None, verify: bool | str) -> str:
    """The URL of the pool's negotiator, from its ad in the collector."""
    from gwms.pool.collector.client import CollectorClient

    with CollectorClient(collector_url, token=token, verify=verify, retries=1, timeout=10) as collector:
        ads = collector.query("Negotiator", projection=["Name", "NegotiatorIpAddr"])
    urls = [a["NegotiatorIpAddr"] for a in ads if isinstance(a.get("NegotiatorIpAddr"), str)]
    if not urls:
        raise NoNegotiator(f"the collector at {collector_url} knows no negotiator",
                           hint="is `gwms negotiator run` (or `gwms up`) running?")
    return urls[0]


def _hours(value: float) -> str:
    return f"{value:.2f}"


def _ago(now: float, when: float | None) -> str:
    if not when:
        return "never"
    seconds = max(0, int(now - when))
    if seconds < 60:
        return f"{seconds}s ago"
    if seconds < 3600:
        return f"{seconds // 60}m ago"
    if seconds < 86400:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


def render_userprio(data: dict[str, Any]) -> str:
    """The table ``gwms userprio`` prints (condor_userprio's columns)."""
    from gwms.cli.jobs import render_table

    now = float(data.get("now") or time.time())
    rows = [[
        str(r["name"]),
        f"{float(r['effective_priority']):.2f}",
        f"{float(r['real_priority']):.2f}",
        f"{float(r['factor']):.2f}",
        f"{float(r['in_use']):g}",
        _hours(float(r["usage_hours"])),
        _ago(now, r.get("last_usage")),
    ] for r in data.get("submitters", [])]
    table = render_table(["SUBMITTER", "EFFECTIVE_PRIO", "REAL_PRIO", "FACTOR", "IN_USE", "USAGE_HRS", "LAST_USAGE"], rows)
    half = float(data.get("half_life", 0))
    return f"{table}\n\n{len(rows)} submitter(s); lower effective priority is served first; usage half-life {half:g} s"


@click.command("userprio")
@click.option("--pool", "pool", default=None, metavar="DIR", envvar="GWMS_POOL",
              help="Pool directory with client.json (default: $GWMS_POOL, then ./gwms-data).")
@click.option("--negotiator", "negotiator_url", default=None, metavar="URL",
              help="The negotiator's URL (default: found through the collector).")
@click.option("--state", "state_file", default=None, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Read the negotiator's state file instead (DIR/negotiator/accountant.json).")
@click.option("-setfactor", "--setfactor", nargs=2, default=None, metavar="SUBMITTER FACTOR",
              help="Set a submitter's priority factor (needs an ADMINISTRATOR token).")
@click.option("-json", "--json", "as_json", is_flag=True, help="Print the priorities as JSON.")
def userprio(pool: str | None, negotiator_url: str | None, state_file: Path | None,
             setfactor: tuple[str, str] | None, as_json: bool) -> None:
    """Show fair-share usage and priorities of submitters (condor_userprio).

    Lower effective priority is better: those submitters are served first in each
    negotiation cycle. Effective priority = real priority (CPUs in use, decayed with the
    half-life) x priority factor.
    """
    from gwms.pool.negotiator.fairshare import Accountant, AccountantError

    if state_file is not None:
        if setfactor:
            raise GwmsError("-setfactor talks to the running negotiator; leave out --state")
        try:
            acct = Accountant.from_json(json.loads(state_file.read_text()))
        except (OSError, ValueError, AccountantError) as exc:
            raise GwmsError(f"cannot read {state_file}: {exc}") from exc
        records = sorted(acct.submitters.values(), key=lambda r: (r.effective_priority, r.name))
        data: dict[str, Any] = {"half_life": acct.half_life, "now": time.time(),
                                "submitters": [r.as_json() for r in records]}
    else:
        from gwms.net import SyncServiceClient
        from gwms.pool.clientfile import load_client_file

        info = load_client_file(pool)
        verify: bool | str = info.ca_file or True
        url = negotiator_url or find_negotiator(info.collector, info.token, verify)
        with SyncServiceClient(url, token=info.token, verify=verify, service="negotiator") as client:
            if setfactor:
                try:
                    factor = float(setfactor[1])
                except ValueError:
                    raise GwmsError(f"{setfactor[1]!r} is not a number") from None
                rec = client.post("/v1/userprio/factor", {"submitter": setfactor[0], "factor": factor})
                click.echo(f"The priority factor of {rec['name']} is now {rec['factor']:g}")
                return
            data = client.get("/v1/userprio")
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(render_userprio(data))
