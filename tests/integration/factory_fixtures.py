"""A WMS collector, a factory with local entries, and a test acting as frontend."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from waiting import wait_until  # noqa: F401  (the tests import it from here)

from gwms.factory import attributes as A
from gwms.factory.requests import build_request_ad
from gwms.net import ServiceServer
from gwms.pool.collector.client import CollectorClient
from gwms.pool.collector.service import create_collector_app
from gwms.pool.collector.store import AdStore
from gwms.security import scopes
from gwms.security.hybrid import SessionKey
from gwms.security.layout import SecurityLayout, ensure_pool_keys

FAKE_GLIDEIN = """#!/bin/sh
# a fake glidein: says who it is, then sleeps like a pilot waiting for jobs
echo "glidein $GLIDEIN_Pilot_Id entry=$GLIDEIN_Entry_Name client=$GLIDEIN_Client"
echo "token=${GLIDEIN_ENC_PARAM_GLIDEIN_Token:+set}"
echo "starting" >&2
sleep "${FAKE_GLIDEIN_SLEEP:-300}"
echo done
"""


@dataclass
class Wms:
    """A WMS collector on loopback and the keys that mint its tokens."""

    data: Path
    layout: SecurityLayout
    url: str

    @property
    def domain(self) -> str:
        return self.layout.trust_domain()

    def client(self, user: str, *token_scopes: str) -> CollectorClient:
        return CollectorClient(self.url, token=self.layout.mint_token(user, token_scopes or (scopes.READ,)),
                               retries=1, timeout=10)


def start_wms(data: Path) -> Iterator[Wms]:
    """A collector on a free port whose tokens come from ``data/keys``."""
    layout = ensure_pool_keys(data)
    server = ServiceServer(create_collector_app(AdStore(), layout.verifier(), name="wms"), service="collector")
    server.start()
    try:
        yield Wms(data, layout, server.url)
    finally:
        server.stop()


def write_fake_glidein(directory: Path) -> Path:
    path = directory / "fake_glidein.sh"
    path.write_text(FAKE_GLIDEIN)
    path.chmod(0o755)
    return path


def factory_config(wms: Wms, directory: Path, *, slots: int = 2, **overrides: Any) -> dict[str, Any]:
    """A factory configuration with one local entry running the fake glidein."""
    glidein = write_fake_glidein(directory)
    entry: dict[str, Any] = {
        "name": "local1",
        "backend": "local",
        "backend_settings": {"slots": slots, "kill_grace_s": 2},
        "pilot_command": [str(glidein)],
        "attrs": {"GLIDEIN_Site": "LOCAL", "GLIDEIN_CPUS": 1, "GLIDEIN_Supported_VOs": "test"},
        "params": {"GLIDEIN_Max_Walltime": 3600},
    }
    entry.update(overrides.pop("entry", {}))
    cfg: dict[str, Any] = {
        "name": "gf",
        "instance": "v1",
        "wms_collector": wms.url,
        "frontends": {
            "vofe": {"identity": f"vofrontend@{wms.domain}", "security_classes": {"main": "fe1"}},
        },
        "entries": [entry],
        "loop_delay": 0.5,
        "request_poll_s": 0.2,
        "advertise_interval": 2,
        "orphan_grace_s": 3600,
    }
    cfg.update(overrides)
    return cfg


def write_config(cfg: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


class TestFrontend:
    """Acts as a frontend: reads the factory's key from its global ad, advertises requests."""

    __test__ = False

    def __init__(self, wms: Wms, user: str = "vofrontend") -> None:
        self.wms = wms
        self.user = user
        self.collector = wms.client(user, scopes.ADVERTISE_FRONTEND, scopes.READ)
        self.identity = f"{user}@{wms.domain}"

    def factory_key(self, timeout: float = 20.0) -> tuple[str, str]:
        """(PubKeyValue, PubKeyID) of the factory, waiting for its global ad."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ads = self.collector.query(A.TYPE_GLIDEFACTORY_GLOBAL)
            if ads:
                return ads[0][A.PUB_KEY_VALUE], ads[0][A.PUB_KEY_ID]
            time.sleep(0.1)
        raise AssertionError("the factory never advertised its glidefactoryglobal ad")

    def request(self, *, entry: str = "local1@v1@gf", idle: int, max_glideins: int, identity: str | None = None,
                security_name: str = "vofe", security_class: str = "main", client: str = "vofe.main",
                mutate: Callable[[dict[str, Any]], None] | None = None,
                secrets: dict[str, str] | None = None, **kw: Any) -> dict[str, Any]:
        pem, kid = self.factory_key()
        ad = build_request_ad(
            entry_ad_name=entry, client_name=client, identity=identity or self.identity,
            security_name=security_name, security_class=security_class, factory_public_key=pem, key_id=kid,
            req_idle=idle, req_max=max_glideins, session=SessionKey(pem, kid),
            secrets=secrets or {"GLIDEIN_Token": "pool-token", "GLIDEIN_Collector": "http://127.0.0.1:9"}, **kw,
        )
        if mutate is not None:
            mutate(ad)
        report = self.collector.advertise(ad)
        assert report.accepted == 1, report
        return ad

    def withdraw(self, name: str) -> None:
        self.collector.invalidate(A.TYPE_GLIDECLIENT, name=name)

    def close(self) -> None:
        self.collector.close()


def pilot_pgids(state_dir: Path) -> dict[str, int]:
    """pilot id -> process group of every local pilot with a pid file under ``state_dir``."""
    out: dict[str, int] = {}
    for pid_file in state_dir.glob("backends/*/*/pid"):
        text = pid_file.read_text().strip()
        if text.isdigit():
            out[pid_file.parent.name] = int(text)
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2:][:1] not in ("Z", "X")


def kill_pilots(state_dir: Path) -> None:
    """SIGKILL the process groups of the pilots this test started (by their pid files)."""
    for pgid in pilot_pgids(state_dir).values():
        if alive(pgid):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
