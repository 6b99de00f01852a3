"""``gwms up``: every service of a pool on this machine, under one data directory.

On first start it creates the security material (pool signing key, CA, service
certificate, admin token), picks free ports on 127.0.0.1 and records them in
``DIR/up.json`` so that later starts keep the same URLs. Each service runs as its own
``gwms <service> run`` process (see :mod:`gwms.embedded.supervisor`); a service that dies
is restarted. The client file ``DIR/client.json`` lets ``gwms submit/q/status`` work from
the directory that holds DIR. A second ``gwms up`` on the same DIR resumes the queue.

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
#: The services, in start order; each gets a port kept in ``DIR/up.json``.
SERVICES = ("collector", "wms", "schedd", "negotiator", "factory", "frontend", "web")
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


def gwms_argv(*args: str) -> list[str]:
    """The command line that runs ``gwms`` with this same Python."""
    return [sys.executable, "-m", "gwms", *args]


def plan_services(opts: UpOptions, ports: dict[str, int], urls: dict[str, str],
                  overrides: UpConfig | None = None) -> list[tuple[str, Callable[[], ServiceSpec]]]:
    """The services to start, in order; each spec is made when its turn comes (it may
    need the URLs of those started before it). The factory's and the frontend's configs
    are generated then (``DIR/factory/factory.yaml``, ``DIR/frontend/frontend.yaml``),
    with the ``--config`` overrides merged in."""
    from gwms.security.layout import SecurityLayout

    data = str(opts.data)
    logs = opts.data / "logs"
    tls = ["--tls"] if opts.tls else []
    overrides = overrides or UpConfig()

    def domain() -> str:
        return SecurityLayout(opts.data).trust_domain()

    return [
        ("collector", lambda: ServiceSpec(
            "collector",
            gwms_argv("collector", "run", "--data", data, "--host", opts.host,
                      "--port", str(ports["collector"]), "--name", "user-pool", *tls),
            logs / "collector.log")),
        ("wms", lambda: ServiceSpec(
            "wms",
            gwms_argv("collector", "run", "--data", data, "--host", opts.host,
                      "--port", str(ports["wms"]), "--name", "wms", *tls),
            logs / "wms-collector.log")),
        ("schedd", lambda: ServiceSpec(
            "schedd",
            gwms_argv("schedd", "run", "--data", data, "--host", opts.host, "--port", str(ports["schedd"]),
                      "--collector", urls["collector"], "--advertise-interval", "10",
                      "--match-timeout", f"{SCHEDD_MATCH_TIMEOUT:g}", *tls),
            logs / "schedd.log")),
        ("negotiator", lambda: ServiceSpec(
            "negotiator",
            gwms_argv("negotiator", "run", "--data", data, "--host", opts.host,
                      "--port", str(ports["negotiator"]), "--collector", urls["collector"],
                      "--interval", f"{NEGOTIATOR_INTERVAL:g}", *tls),
            logs / "negotiator.log")),
        ("factory", lambda: ServiceSpec(
            "factory",
            gwms_argv("factory", "run",
                      "--config", str(write_factory_config(opts.data, urls, domain(), overrides.factory)),
                      "--data", data, "--host", opts.host, "--port", str(ports["factory"]), *tls),
            logs / "factory.log")),
        ("frontend", lambda: ServiceSpec(
            "frontend",
            gwms_argv("frontend", "run",
                      "--config", str(write_frontend_config(opts.data, urls, domain(), overrides.frontend)),
                      "--data", data, "--host", opts.host, "--port", str(ports["frontend"]),
                      "--watch-interval", "0.5", *tls),
            logs / "frontend.log")),
        # ---- WEB UI: the place for `gwms web run` (written by the web helper, issue 8). ----
        # Its port is already reserved in up.json as ports["web"]; add here, e.g.:
        # ("web", lambda: ServiceSpec(
        #     "web",
        #     gwms_argv("web", "run", "--data", data, "--host", opts.host, "--port", str(ports["web"]),
        #               "--collector", urls["collector"], "--wms", urls["wms"], *tls),
        #     logs / "web.log")),
        # and `up()` prints urls["web"] as the web UI once it is in `urls`.
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
    write_factory_config(data, expected, layout.trust_domain(), overrides.factory)
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
            urls[name] = sup.start(make())
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
