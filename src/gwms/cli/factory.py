"""The ``gwms factory`` command group.

::

    gwms factory run --config factory.yaml [--data DIR] [--port 0] [--token FILE] [--tls]
    gwms factory q [--entry E] [--client C] [--state S] [-all] [-json]
    gwms factory entries [-json]
    gwms factory pause ENTRY [--reason TEXT]
    gwms factory resume ENTRY
    gwms factory downtime ENTRY [--start WHEN] [--end WHEN] [--comment TEXT] [--clear]

The operator commands find the factory from ``--factory URL``, else from
``DIR/factory/endpoint.json`` that ``run`` writes (DIR: ``--data``, ``$GWMS_POOL``, then
``./gwms-data``); their token is ``--token FILE``, else one minted from ``DIR/keys``,
else the pool client file's.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from gwms.cli.endpoint import ENDPOINT_FILE
from gwms.errors import UsageError

_RELATIVE = re.compile(r"^\+(\d+(?:\.\d+)?)([smhdw]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@click.group(name="factory")
def factory() -> None:
    """The glidein factory: entries, limits, pilots.

    Advertises its entries (sites), reads frontend requests, and submits, watches,
    releases and removes glideins within limits.
    """


# --------------------------------------------------------------------------- run


class MintedToken:
    """A token minted from the pool key, minted again before it gets old."""

    def __init__(self, layout: Any, user: str, token_scopes: list[str], renew_after: float = 6 * 3600) -> None:
        self.layout = layout
        self.user = user
        self.scopes = token_scopes
        self.renew_after = renew_after
        self._token = ""
        self._minted = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if not self._token or time.monotonic() - self._minted > self.renew_after:
                self._token = self.layout.mint_token(self.user, self.scopes)
                self._minted = time.monotonic()
            return self._token


@factory.command("run")
@click.option("--config", "config_path", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path), help="The factory's YAML configuration.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Data directory: keys/ verify API tokens and mint the factory's; state in DIR/factory/ "
                   "(default: the config's data_dir).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port of the HTTP API (0: a free one).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--token", "token_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Token for the WMS collector (ADVERTISE_FACTORY and READ; default: the config's "
                   "token_file, else minted from DIR/keys).")
@click.option("--tls/--no-tls", default=False, show_default=True, help="Serve HTTPS with DIR/ca/service.pem.")
def run_cmd(config_path: Path, data_dir: Path | None, port: int, host: str, token_file: Path | None,
            tls: bool) -> None:
    """Run the factory until interrupted; prints 'gwms factory listening on URL'.

    Each entry's cycle polls its pilots at the site, reads the frontends' requests for
    it, and submits, releases and removes pilots within the limits. The pilot store
    (DIR/factory/pilots.db) keeps every pilot, so a restarted factory picks up its
    pilots where it left them.
    """
    from gwms.config import load_config
    from gwms.factory.config import FactoryConfig
    from gwms.factory.service import FactoryService, create_factory_app
    from gwms.net import ServiceServer
    from gwms.security import scopes
    from gwms.security.layout import ensure_pool_keys
    from gwms.security.tokens import read_token_file

    cfg = load_config(config_path, FactoryConfig).resolved(config_path.resolve().parent, data_dir)
    assert cfg.data_dir is not None and cfg.log_dir is not None
    layout = ensure_pool_keys(cfg.data_dir)
    token_path = token_file or cfg.token_file
    token: Any = (read_token_file(token_path) if token_path
                  else MintedToken(layout, "factory", [scopes.ADVERTISE_FACTORY, scopes.READ]))
    verify: bool | str = str(layout.ca_cert_path) if layout.ca_cert_path.exists() else True
    Path(cfg.log_dir).mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(Path(cfg.log_dir) / "factory.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("gwms").addHandler(handler)

    service = FactoryService(cfg, token=token, verify=verify)
    app = create_factory_app(service, layout.verifier())
    ssl_options: dict[str, str] = {}
    if tls:
        cert = layout.service_cert()
        ssl_options = {"ssl_certfile": str(cert.cert_path), "ssl_keyfile": str(cert.key_path)}
    server = ServiceServer(app, host=host, port=port, service="factory", **ssl_options)
    service.factory_url = server.url
    endpoint = cfg.state_dir() / ENDPOINT_FILE
    tmp = endpoint.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": server.url, "pid": os.getpid(), "name": cfg.name,
                               "instance": cfg.instance}))
    tmp.replace(endpoint)
    server.serve_forever(announce=lambda line: click.echo(line))


# --------------------------------------------------------------------------- operator commands


def parse_when(text: str, now: float) -> float:
    """An instant: ``now``, ``+90``/``+30m``/``+2h``/``+1d`` from now, epoch seconds, or
    an ISO 8601 date-time (UTC when it names no zone)."""
    value = text.strip()
    if value.lower() == "now":
        return now
    m = _RELATIVE.match(value)
    if m:
        return now + float(m.group(1)) * _UNIT[m.group(2)]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{text!r} is not a time (now, +2h, epoch seconds or 2030-01-31T12:00)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _client(factory_url: str | None, data_dir: Path | None, token_file: Path | None) -> Any:
    from gwms.cli.endpoint import service_client
    from gwms.security import scopes

    return service_client("factory", factory_url, data_dir, token_file, scopes.ADMINISTRATOR)


def _common(f: Any) -> Any:
    f = click.option("--token", "token_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                     default=None, help="Token file (default: minted from DIR/keys).")(f)
    f = click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="The factory's data directory (default: $GWMS_POOL, then ./gwms-data).")(f)
    f = click.option("--factory", "factory_url", default=None, metavar="URL",
                     help="The factory's URL (default: from DIR/factory/endpoint.json).")(f)
    return f


def _age(now: float, then: float | None) -> str:
    if not then:
        return "-"
    s = max(0, int(now - then))
    if s < 3600:
        return f"{s // 60}+{s % 60:02d}s" if s >= 60 else f"{s}s"
    return f"{s // 86400}+{(s % 86400) // 3600:02d}:{(s % 3600) // 60:02d}"


def render_pilots(pilots: list[dict[str, Any]], now: float) -> str:
    """The table ``gwms factory q`` prints."""
    from gwms.cli.jobs import render_table

    rows = [[
        f"{p['cluster']}.{p['proc']}", str(p["entry"]), str(p["client_name"]), str(p["state"]),
        str(p.get("site_id") or "-"), _age(now, p.get("submitted") or p.get("created")),
        str(p.get("holds", 0)), (str(p.get("remove_reason") or p.get("reason") or ""))[:60],
    ] for p in pilots]
    table = render_table(["ID", "ENTRY", "CLIENT", "STATE", "SITE_ID", "AGE", "HOLDS", "NOTE"], rows)
    by_state: dict[str, int] = {}
    for p in pilots:
        by_state[p["state"]] = by_state.get(p["state"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(by_state.items())) or "none"
    return f"{table}\n\n{len(pilots)} pilot(s): {summary}"


def render_entries(entries: list[dict[str, Any]]) -> str:
    """The table ``gwms factory entries`` prints."""
    from gwms.cli.jobs import render_table

    rows = []
    for e in entries:
        c = e.get("counts") or {}
        idle = sum(int(c.get(s, 0)) for s in ("unsubmitted", "pending", "staging"))
        state = "paused" if e.get("paused") else ("downtime" if e.get("in_downtime") else "ok")
        req_idle = sum(int(r["idle"]) for r in e.get("requests") or [])
        req_max = sum(int(r["max"]) for r in e.get("requests") or [])
        rows.append([
            str(e["name"]), str(e["backend"]), state, str(idle), str(c.get("running", 0)),
            str(c.get("held", 0)), f"{req_idle}/{req_max}", str(len(e.get("requests") or [])),
            str(e.get("reason") or e.get("last_error") or "")[:70],
        ])
    return render_table(["ENTRY", "BACKEND", "STATE", "IDLE", "RUNNING", "HELD", "REQ_IDLE/MAX",
                         "CLIENTS", "REASON"], rows)


@factory.command("q")
@_common
@click.option("--entry", default=None, help="Only this entry's pilots.")
@click.option("--client", default=None, help="Only this client's pilots (client name or key).")
@click.option("--state", "states", multiple=True, help="Only pilots in these states (repeatable).")
@click.option("-all", "--all", "all_states", is_flag=True, help="Ended pilots too.")
@click.option("-json", "--json", "as_json", is_flag=True, help="Print JSON.")
def q_cmd(factory_url: str | None, data_dir: Path | None, token_file: Path | None, entry: str | None,
          client: str | None, states: tuple[str, ...], all_states: bool, as_json: bool) -> None:
    """List the factory's pilots (active ones unless -all or --state)."""
    params: dict[str, Any] = {"all": all_states}
    if entry:
        params["entry"] = entry
    if client:
        params["client"] = client
    if states:
        params["state"] = ",".join(states)
    with _client(factory_url, data_dir, token_file) as http:
        pilots = http.get("/v1/pilots", params=params)["pilots"]
    if as_json:
        click.echo(json.dumps(pilots, indent=2))
    else:
        click.echo(render_pilots(pilots, time.time()))


@factory.command("entries")
@_common
@click.option("-json", "--json", "as_json", is_flag=True, help="Print JSON.")
def entries_cmd(factory_url: str | None, data_dir: Path | None, token_file: Path | None, as_json: bool) -> None:
    """List the factory's entries: state, pilots, requests."""
    with _client(factory_url, data_dir, token_file) as http:
        entries = http.get("/v1/entries")["entries"]
    if as_json:
        click.echo(json.dumps(entries, indent=2))
    else:
        click.echo(render_entries(entries))


@factory.command("pause")
@_common
@click.argument("entry")
@click.option("--reason", default="", help="Why (shown in the entry's ad).")
def pause_cmd(factory_url: str | None, data_dir: Path | None, token_file: Path | None, entry: str,
              reason: str) -> None:
    """Stop submitting to ENTRY (its pilots keep running) until resumed."""
    with _client(factory_url, data_dir, token_file) as http:
        http.post(f"/v1/entries/{entry}/pause", {"reason": reason})
    click.echo(f"Entry {entry} paused" + (f": {reason}" if reason else ""))


@factory.command("resume")
@_common
@click.argument("entry")
def resume_cmd(factory_url: str | None, data_dir: Path | None, token_file: Path | None, entry: str) -> None:
    """Submit to ENTRY again (ends an operator pause and any failure pause)."""
    with _client(factory_url, data_dir, token_file) as http:
        http.post(f"/v1/entries/{entry}/resume", {})
    click.echo(f"Entry {entry} resumed")


@factory.command("downtime")
@_common
@click.argument("entry")
@click.option("--start", default="now", show_default=True, help="now, +2h, epoch seconds or ISO date-time.")
@click.option("--end", default=None, help="Same forms; default: open-ended.")
@click.option("--comment", default="", help="Why.")
@click.option("--clear", is_flag=True, help="Drop the operator downtimes of ENTRY instead.")
def downtime_cmd(factory_url: str | None, data_dir: Path | None, token_file: Path | None, entry: str,
                 start: str, end: str | None, comment: str, clear: bool) -> None:
    """Put ENTRY in downtime: no new pilots, running ones are kept."""
    now = time.time()
    body: dict[str, Any] = {"clear": clear, "comment": comment}
    if not clear:
        body["start"] = parse_when(start, now)
        body["end"] = parse_when(end, now) if end else None
        if body["end"] is not None and body["end"] <= body["start"]:
            raise UsageError("--end must be after --start")
    with _client(factory_url, data_dir, token_file) as http:
        answer = http.post(f"/v1/entries/{entry}/downtime", body)
    if clear:
        click.echo(f"Downtimes of entry {entry} cleared")
    else:
        until = "open-ended" if body["end"] is None else time.strftime(
            "%Y-%m-%d %H:%M:%S", time.localtime(body["end"]))
        now_word = "in downtime now" if answer.get("in_downtime") else "not in downtime yet"
        click.echo(f"Entry {entry}: downtime until {until} ({now_word})")
