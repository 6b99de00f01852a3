"""``gwms up``: every service of a pool on this machine, under one data directory.

On first start it creates the security material (pool signing key, CA, service
certificate, admin token), picks free ports on 127.0.0.1 and records them in
``DIR/up.json`` so that later starts keep the same URLs. Each service runs as its own
``gwms <service> run`` process (see :mod:`gwms.embedded.supervisor`); a service that dies
is restarted. The client file ``DIR/client.json`` lets ``gwms submit/q/status`` work from
the directory that holds DIR. A second ``gwms up`` on the same DIR resumes the queue.
Besides the pool, factory and frontend it runs the log monitor (``logs``: the push
endpoint for the glideins, ``indexer``: ``gwms logs index --follow`` into ``DIR/monitor``)
and the web UI (``web``: dashboards, and the monitor's pages at ``/logs/``).

Later parts of the system add their services to :func:`plan_services`.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from gwms.embedded.supervisor import ServiceSpec, Supervisor
from gwms.embedded.upconfig import (
    UpConfig,
    load_up_config,
    write_factory_config,
    write_frontend_config,
)
from gwms.errors import GwmsError
from gwms.pool.clientfile import PoolClientInfo, write_client_file
from gwms.security import scopes
from gwms.security.layout import init_security

STATE_FILE = "up.json"
PID_FILE = "up.pid"
#: The services that listen, in start order; each gets a port kept in ``DIR/up.json``.
#: (``logs`` is the log server glideins push to; the log indexer listens on nothing.)
SERVICES = ("collector", "wms", "schedd", "negotiator", "factory", "logs", "frontend", "web")
#: Seconds between the log indexer's passes over the factory's and the pushed logs.
INDEX_INTERVAL = 5.0
#: Seconds between negotiation cycles in the embedded pool (new work also starts one early).
NEGOTIATOR_INTERVAL = 1.0
#: Seconds a match waits for its slot's agent to claim it. A live agent claims within a
#: second (it long-polls the schedd); a glidein that retired just after the negotiator
#: matched it never does, and its job is matched again only after this.
SCHEDD_MATCH_TIMEOUT = 10.0


class AlreadyRunning(GwmsError):
    """Another ``gwms up`` is running on the same data directory."""


@dataclass(frozen=True)
class UpOptions:
    """What ``gwms up`` was asked for."""

    data: Path
    host: str = "127.0.0.1"
    tls: bool = False
    config: Path | None = None


def local_user() -> str:
    """The local user name, made safe for an identity (``name@domain``)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", getpass.getuser() or "user")
    return name or "user"


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def choose_ports(state_file: Path, host: str, names: tuple[str, ...]) -> dict[str, int]:
    """Ports recorded by an earlier start where still free, new free ones otherwise."""
    saved: dict[str, int] = {}
    if state_file.exists():
        try:
            saved = {k: int(v) for k, v in json.loads(state_file.read_text()).get("ports", {}).items()}
        except (ValueError, OSError, AttributeError):
            saved = {}
    ports: dict[str, int] = {}
    for name in names:
        port = saved.get(name)
        if port is None or not port_is_free(host, port):
            port = free_port(host)
        ports[name] = port
    state_file.write_text(json.dumps({"ports": ports}, indent=2) + "\n")
    return ports


def write_state(state_file: Path, ports: dict[str, int], urls: dict[str, str]) -> None:
    """Record the ports (kept for the next start) and the URLs of the running services."""
    tmp = state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"ports": ports, "urls": urls, "pid": os.getpid()}, indent=2) + "\n")
    tmp.replace(state_file)


def read_urls(data: Path) -> dict[str, str]:
    """The URLs of the services of the ``gwms up`` on ``data`` (empty if it never came up)."""
    try:
        urls = json.loads((data / STATE_FILE).read_text()).get("urls", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in urls.items()} if isinstance(urls, dict) else {}


#: How each service is called in the "ready" lines.
SERVICE_TITLES = {
    "web": "web UI",
    "collector": "user pool collector",
    "wms": "WMS collector",
    "schedd": "schedd",
    "negotiator": "negotiator",
    "factory": "factory",
    "frontend": "frontend",
    "logs": "log server",
}


def url_lines(urls: dict[str, str]) -> list[str]:
    """One line per running service, ``  <title>  <url>``, the web UI first."""
    width = max(len(t) for t in SERVICE_TITLES.values())
    return [f"  {title:<{width}}  {urls[name]}" for name, title in SERVICE_TITLES.items() if urls.get(name)]


def check_not_running(pid_file: Path) -> None:
    """Refuse to start twice on one directory."""
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().strip())
    except ValueError:
        return
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return
    except PermissionError:
        pass
    raise AlreadyRunning(f"gwms up is already running on {pid_file.parent} (pid {pid})",
                         hint=f"stop it with `gwms down --data {pid_file.parent}`")


def monitor_dir(data: Path) -> Path:
    """The log monitor's data directory (index, archive, pushed logs) of ``gwms up``."""
    return data / "monitor"


def factory_log_dir(data: Path) -> Path:
    """The embedded factory's glidein log tree (``client/user_*/glidein_*/entry_*``)."""
    return data / "factory" / "logs"


def log_push_url(opts: UpOptions, ports: dict[str, int]) -> str:
    """Where the embedded factory's glideins push their logs: the log server's
    ``/v1/push`` (its port is known before it starts, so the factory can be told first)."""
    scheme = "https" if opts.tls else "http"
    return f"{scheme}://{opts.host}:{ports['logs']}/v1/push"


def push_options(data: Path, push_url: str) -> list[str]:
    """The log server's ``--push-key``/``--push-url``: the factory's public keys (it writes
    them before it announces itself when its config has a ``log_server``). None when the
    factory wrote none (an override removed ``log_server`` or moved ``key_dir``): then
    the log server serves the pages only."""
    from gwms.security.logtoken import PUBLIC_KEY_SUFFIX

    keys = data / "factory" / "keys"
    if not any(keys.glob(f"*{PUBLIC_KEY_SUFFIX}")):
        return []
    return ["--push-key", str(keys), "--push-url", push_url]


def history_env(data: Path) -> dict[str, str]:
    """The services keep their metrics' history in ``DIR/history`` (so the web UI's charts
    survive restarts), unless ``$GWMS_HISTORY_DIR`` already names a directory."""
    from gwms.net.timeseries import DIR_ENV

    return {DIR_ENV: os.environ.get(DIR_ENV, "").strip() or str(data / "history")}


def gwms_argv(*args: str) -> list[str]:
    """The command line that runs ``gwms`` with this same Python."""
    return [sys.executable, "-m", "gwms", *args]


def plan_services(opts: UpOptions, ports: dict[str, int], urls: dict[str, str],
                  overrides: UpConfig | None = None) -> list[tuple[str, Callable[[], ServiceSpec]]]:
    """The services to start, in order; each spec is made when its turn comes (it may
    need the URLs of those started before it). The factory's and the frontend's configs
    are generated then (``DIR/factory/factory.yaml``, ``DIR/frontend/frontend.yaml``),
    with the ``--config`` overrides merged in.

    The log monitor has three parts: ``logs`` (``gwms logs serve``: the push endpoint the
    factory's glideins send their logs to, verified with the factory's public key, which
    the factory writes before it announces itself), ``indexer`` (``gwms logs index
    --follow`` over the factory's log tree and the pushed logs) and the pages, mounted at
    ``/logs/`` of ``web``; all three share ``DIR/monitor``."""
    from gwms.security.layout import SecurityLayout

    data = str(opts.data)
    logs = opts.data / "logs"
    monitor = str(monitor_dir(opts.data))
    tls = ["--tls"] if opts.tls else []
    overrides = overrides or UpConfig()
    env = history_env(opts.data)
    push_url = log_push_url(opts, ports)

    def domain() -> str:
        return SecurityLayout(opts.data).trust_domain()

    def ca_file() -> str | None:
        return str(SecurityLayout(opts.data).ca_cert_path) if opts.tls else None

    def indexer() -> ServiceSpec:
        source = factory_log_dir(opts.data)
        (source / "client").mkdir(parents=True, exist_ok=True)  # the indexer reads client/
        return ServiceSpec(
            "indexer",
            gwms_argv("logs", "index", "--source", str(source), "--data", monitor, "--follow",
                      "--interval", f"{INDEX_INTERVAL:g}"),
            logs / "indexer.log", env=env, announces=False)

    return [
        ("collector", lambda: ServiceSpec(
            "collector",
            gwms_argv("collector", "run", "--data", data, "--host", opts.host,
                      "--port", str(ports["collector"]), "--name", "user-pool", *tls),
            logs / "collector.log", env=env)),
        ("wms", lambda: ServiceSpec(
            "wms",
            gwms_argv("collector", "run", "--data", data, "--host", opts.host,
                      "--port", str(ports["wms"]), "--name", "wms", *tls),
            logs / "wms-collector.log", env=env)),
        ("schedd", lambda: ServiceSpec(
            "schedd",
            gwms_argv("schedd", "run", "--data", data, "--host", opts.host, "--port", str(ports["schedd"]),
                      "--collector", urls["collector"], "--advertise-interval", "10",
                      "--match-timeout", f"{SCHEDD_MATCH_TIMEOUT:g}", *tls),
            logs / "schedd.log", env=env)),
        ("negotiator", lambda: ServiceSpec(
            "negotiator",
            gwms_argv("negotiator", "run", "--data", data, "--host", opts.host,
                      "--port", str(ports["negotiator"]), "--collector", urls["collector"],
                      "--interval", f"{NEGOTIATOR_INTERVAL:g}", *tls),
            logs / "negotiator.log", env=env)),
        ("factory", lambda: ServiceSpec(
            "factory",
            gwms_argv("factory", "run",
                      "--config", str(write_factory_config(opts.data, urls, domain(), overrides.factory,
                                                           log_push_url=push_url, log_ca_file=ca_file())),
                      "--data", data, "--host", opts.host, "--port", str(ports["factory"]), *tls),
            logs / "factory.log", env=env)),
        ("logs", lambda: ServiceSpec(
            "logs",
            gwms_argv("logs", "serve", "--data", monitor, "--security", data, "--host", opts.host,
                      "--port", str(ports["logs"]), *push_options(opts.data, push_url), *tls),
            logs / "logs.log", env=env)),
        ("indexer", indexer),
        ("frontend", lambda: ServiceSpec(
            "frontend",
            gwms_argv("frontend", "run",
                      "--config", str(write_frontend_config(opts.data, urls, domain(), overrides.frontend)),
                      "--data", data, "--host", opts.host, "--port", str(ports["frontend"]),
                      "--watch-interval", "0.5", *tls),
            logs / "frontend.log", env=env)),
        ("web", lambda: ServiceSpec(
            "web",
            gwms_argv("web", "run", "--data", data, "--host", opts.host, "--port", str(ports["web"]),
                      "--collector", urls["collector"], "--wms", urls["wms"], "--schedd", urls["schedd"],
                      "--negotiator", urls["negotiator"], "--factory", urls["factory"],
                      "--frontend", urls["frontend"], "--monitor-data", monitor, *tls),
            logs / "web.log", env=env)),
    ]


def up(opts: UpOptions, *, echo: Callable[[str], None] = print, ready: Callable[[dict[str, str]], None] | None = None) -> None:
    """Start everything, write the client file, and supervise until SIGINT/SIGTERM.

    ``ready`` is called with the services' URLs once all are up (and the client file
    written). Raises :class:`gwms.config.ConfigError` for a bad ``--config`` file.
    """
    data = opts.data.resolve()
    overrides = load_up_config(opts.config.resolve() if opts.config else None)
    opts = UpOptions(data=data, host=opts.host, tls=opts.tls, config=opts.config)
    data.mkdir(parents=True, exist_ok=True)
    pid_file = data / PID_FILE
    check_not_running(pid_file)
    layout, steps = init_security(data)
    for step in steps:
        if step.action == "created":
            echo(f"created {step.what}: {step.path}")
    ports = choose_ports(data / STATE_FILE, opts.host, SERVICES)
    # check the generated configs (with the overrides) before starting anything; they are
    # written again with the announced URLs when their services start
    scheme = "https" if opts.tls else "http"
    expected = {name: f"{scheme}://{opts.host}:{port}" for name, port in ports.items()}
    write_factory_config(data, expected, layout.trust_domain(), overrides.factory,
                         log_push_url=log_push_url(opts, ports))
    write_frontend_config(data, expected, layout.trust_domain(), overrides.frontend)
    pid_file.write_text(f"{os.getpid()}\n")

    sup = Supervisor(on_event=echo)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()
        sup.request_stop()  # wake watch() at once

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    urls: dict[str, str] = {}
    try:
        for name, make in plan_services(opts, ports, urls, overrides):
            if stop.is_set():
                break
            url = sup.start(make())
            if url:  # the indexer has none
                urls[name] = url
        if not stop.is_set():
            token = layout.mint_token(local_user(), [scopes.READ, scopes.WRITE], lifetime=timedelta(days=30))
            ca = str(layout.ca_cert_path) if opts.tls else None
            path = write_client_file(data, PoolClientInfo(
                collector=urls["collector"], schedd=urls.get("schedd"), token=token, ca_file=ca,
                wms_collector=urls.get("wms"), web=urls.get("web")))
            pool_arg = "" if data == (Path.cwd() / "gwms-data").resolve() else f" --pool {data}"
            write_state(data / STATE_FILE, ports, urls)
            for line in url_lines(urls):
                echo(line)
            echo(f"gwms is up; client file {path}")
            echo(f"  try: gwms submit job.sub{pool_arg} ; gwms q{pool_arg} ; gwms status -schedd{pool_arg}")
            echo("  stop with Ctrl-C or `gwms down" + (f" --data {data}`" if pool_arg else "`"))
            if ready:
                ready(urls)
            sup.watch()
    finally:
        sup.stop()
        stopped = stop_local_glideins(data)
        if stopped:
            echo(f"stopped {stopped} local glidein(s)")
        for s, handler in old.items():
            signal.signal(s, handler)
        try:
            if pid_file.read_text().strip() == str(os.getpid()):
                pid_file.unlink()
        except OSError:
            pass
        echo("gwms is down")


def stop_local_glideins(data: Path, grace: float = 5.0) -> int:
    """Stop the glideins of the embedded factory's ``local`` entries (they run in their
    own sessions, so they outlive the factory): removed as the factory removes them
    (SIGTERM to each process group), SIGKILL after ``grace`` seconds. Returns how many
    were running. Done after the services stopped, so no factory starts new ones."""
    import time

    import yaml

    from gwms.factory.backends.local import LocalBackend, LocalSettings

    try:
        cfg = yaml.safe_load((data / "factory" / "factory.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return 0
    groups: list[int] = []
    for entry in cfg.get("entries") or []:
        state = data / "factory" / "backends" / str(entry.get("name"))
        if entry.get("backend", "local") != "local" or not state.is_dir():
            continue
        backend = LocalBackend(state, LocalSettings(slots=0))
        pids = backend.pids()
        backend.remove(list(pids))
        groups += pids.values()
    count = len(groups)
    deadline = time.monotonic() + grace
    while groups and time.monotonic() < deadline:
        groups = [g for g in groups if _group_alive(g)]
        time.sleep(0.1)
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return count


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def down(data: Path, *, timeout: float = 30.0) -> bool:
    """Ask the ``gwms up`` running on ``data`` to stop; wait for it. False if none ran."""
    import time

    pid_file = data / PID_FILE
    if not pid_file.exists():
        return False
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (ValueError, ProcessLookupError):
        pid_file.unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # it removes its pid file as the last thing it does (it may linger as a zombie
        # until its parent reaps it, so the pid alone does not tell)
        if not pid_file.exists():
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    raise GwmsError(f"gwms up (pid {pid}) did not stop within {timeout:.0f} s")
