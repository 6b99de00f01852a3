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
from gwms.errors import GwmsError
from gwms.pool.clientfile import PoolClientInfo, write_client_file
from gwms.security import scopes
from gwms.security.layout import init_security

STATE_FILE = "up.json"
PID_FILE = "up.pid"
SERVICES = ("collector", "wms", "schedd", "negotiator", "frontend")
#: Seconds between negotiation cycles in the embedded pool (new work also starts one early).
NEGOTIATOR_INTERVAL = 1.0
#: Seconds between frontend cycles (a change of the schedd's idle jobs starts one early).
FRONTEND_LOOP_DELAY = 10.0
#: The frontend's name, and the user part of its identity at the WMS collector.
FRONTEND_NAME = "frontend"
#: The user part of the identity the factory's ads carry (``gwms factory run`` mints it).
FACTORY_USER = "factory"


class AlreadyRunning(GwmsError):
    """Another ``gwms up`` is running on the same data directory."""


@dataclass(frozen=True)
class UpOptions:
    """What ``gwms up`` was asked for."""

    data: Path
    host: str = "127.0.0.1"
    tls: bool = False


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


def frontend_config(data: Path, urls: dict[str, str], trust_domain: str) -> dict[str, object]:
    """The embedded frontend's configuration: one group ``main``; a job asks for sites
    with ``+DESIRED_Sites = "A,B"`` (no such attribute: any entry); requests go through
    the WMS collector to factories whose ads come from ``factory@<trust domain>``;
    glideins get pool tokens signed with the pool key."""
    return {
        "frontend_name": FRONTEND_NAME,
        "loop_delay": FRONTEND_LOOP_DELAY,
        "wms_collectors": [{
            "url": urls["wms"],
            "factory_identity": f"{FACTORY_USER}@{trust_domain}",
            "my_identity": f"{FRONTEND_NAME}@{trust_domain}",
        }],
        "user_pool": {"collectors": [urls["collector"]]},
        "security": {
            "security_name": FRONTEND_NAME,
            "credentials": [{"name": "pool", "type": "pool_token", "signing_key_dir": str(data / "keys")}],
        },
        "groups": {"main": {"match": {
            "match_expr": 'not job.get("DESIRED_Sites") or '
                          'glidein["attrs"].get("GLIDEIN_Site") in job["DESIRED_Sites"].split(",")',
            "job": {"match_attrs": ["DESIRED_Sites"]},
        }}},
    }


def write_frontend_config(data: Path, urls: dict[str, str]) -> Path:
    """Write ``DIR/frontend/frontend.yaml`` anew (the URLs may change between starts)."""
    import yaml

    from gwms.security.layout import SecurityLayout

    path = data / "frontend" / "frontend.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# generated by `gwms up` at every start: edits are overwritten\n"
    text += yaml.safe_dump(frontend_config(data, urls, SecurityLayout(data).trust_domain()), sort_keys=False)
    path.write_text(text)
    return path


def plan_services(opts: UpOptions, ports: dict[str, int], urls: dict[str, str]) -> list[tuple[str, Callable[[], ServiceSpec]]]:
    """The services to start, in order; each spec is made when its turn comes (it may
    need the URLs of those started before it)."""
    data = str(opts.data)
    logs = opts.data / "logs"
    tls = ["--tls"] if opts.tls else []
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
                      "--collector", urls["collector"], "--advertise-interval", "10", *tls),
            logs / "schedd.log")),
        ("negotiator", lambda: ServiceSpec(
            "negotiator",
            gwms_argv("negotiator", "run", "--data", data, "--host", opts.host,
                      "--port", str(ports["negotiator"]), "--collector", urls["collector"],
                      "--interval", f"{NEGOTIATOR_INTERVAL:g}", *tls),
            logs / "negotiator.log")),
        ("frontend", lambda: ServiceSpec(
            "frontend",
            gwms_argv("frontend", "run", "--config", str(write_frontend_config(opts.data, urls)),
                      "--data", data, "--host", opts.host, "--port", str(ports["frontend"]),
                      "--watch-interval", "0.5", *tls),
            logs / "frontend.log")),
    ]


def up(opts: UpOptions, *, echo: Callable[[str], None] = print, ready: Callable[[dict[str, str]], None] | None = None) -> None:
    """Start everything, write the client file, and supervise until SIGINT/SIGTERM."""
    data = opts.data.resolve()
    opts = UpOptions(data=data, host=opts.host, tls=opts.tls)
    data.mkdir(parents=True, exist_ok=True)
    pid_file = data / PID_FILE
    check_not_running(pid_file)
    layout, steps = init_security(data)
    for step in steps:
        if step.action == "created":
            echo(f"created {step.what}: {step.path}")
    ports = choose_ports(data / STATE_FILE, opts.host, SERVICES)
    pid_file.write_text(f"{os.getpid()}\n")

    sup = Supervisor(on_event=echo)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()
        sup._stopping.set()  # noqa: SLF001 - wake watch() at once

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    urls: dict[str, str] = {}
    try:
        for name, make in plan_services(opts, ports, urls):
            if stop.is_set():
                break
            urls[name] = sup.start(make())
        if not stop.is_set():
            token = layout.mint_token(local_user(), [scopes.READ, scopes.WRITE], lifetime=timedelta(days=30))
            ca = str(layout.ca_cert_path) if opts.tls else None
            path = write_client_file(data, PoolClientInfo(
                collector=urls["collector"], schedd=urls.get("schedd"), token=token, ca_file=ca))
            pool_arg = "" if data == (Path.cwd() / "gwms-data").resolve() else f" --pool {data}"
            echo(f"gwms is up; client file {path}")
            echo(f"  try: gwms submit job.sub{pool_arg} ; gwms q{pool_arg} ; gwms status -schedd{pool_arg}")
            echo("  stop with Ctrl-C or `gwms down" + (f" --data {data}`" if pool_arg else "`"))
            if ready:
                ready(urls)
            sup.watch()
    finally:
        sup.stop()
        for s, handler in old.items():
            signal.signal(s, handler)
        try:
            if pid_file.read_text().strip() == str(os.getpid()):
                pid_file.unlink()
        except OSError:
            pass
        echo("gwms is down")


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
