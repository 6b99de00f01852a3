"""Real pool services on 127.0.0.1 for integration tests: a collector and a schedd
(:func:`start_pool`), or a collector, a schedd and a negotiator with real startd agents
as subprocesses (:func:`start_negotiated_pool`)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gwms.net import ServiceServer
from gwms.pool.clientfile import PoolClientInfo, write_client_file
from gwms.pool.collector.client import CollectorClient
from gwms.pool.collector.service import create_collector_app
from gwms.pool.collector.store import AdStore
from gwms.pool.negotiator.service import Negotiator, NegotiatorConfig, create_negotiator_app
from gwms.pool.schedd.client import ScheddClient
from gwms.pool.schedd.queue import JobQueue
from gwms.pool.schedd.sandbox import Spool
from gwms.pool.schedd.service import ScheddLimits, create_schedd_app
from gwms.security import scopes
from gwms.security.layout import SecurityLayout, ensure_pool_keys


@dataclass
class Pool:
    """A running collector + schedd with tokens for a few users."""

    data: Path
    layout: SecurityLayout
    collector_url: str
    schedd_url: str
    queue: JobQueue
    spool: Spool

    def token(self, user: str, *token_scopes: str) -> str:
        return self.layout.mint_token(user, token_scopes or (scopes.READ, scopes.WRITE))

    def schedd(self, user: str = "alice", *token_scopes: str) -> ScheddClient:
        return ScheddClient(self.schedd_url, token=self.token(user, *token_scopes))

    def collector(self, user: str = "alice") -> CollectorClient:
        return CollectorClient(self.collector_url, token=self.token(user, scopes.READ))


def start_pool(data: Path, *, limits: ScheddLimits | None = None) -> Iterator[Pool]:
    """Start a collector and a schedd on free ports; stop them afterwards."""
    layout = ensure_pool_keys(data)
    verifier = layout.verifier()
    collector = ServiceServer(create_collector_app(AdStore(), verifier, name="test-pool"), service="collector")
    collector.start()
    queue = JobQueue.open(data / "schedd" / "queue.db", synchronous="NORMAL")
    spool = Spool(data / "schedd" / "spool", max_input_bytes=(limits or ScheddLimits()).max_input_bytes)
    advertiser_client = CollectorClient(collector.url, token=layout.mint_token("schedd", [scopes.ADVERTISE_SCHEDD]))
    app = create_schedd_app(
        queue, spool, verifier, name="schedd@test", limits=limits,
        advertiser=lambda ad: advertiser_client.advertise(ad), advertise_interval=0.5,
    )
    schedd = ServiceServer(app, service="schedd")
    schedd.start()
    try:
        yield Pool(data, layout, collector.url, schedd.url, queue, spool)
    finally:
        schedd.stop()
        collector.stop()
        advertiser_client.close()
        queue.close()


@dataclass
class NegotiatedPool:
    """A running collector, schedd and negotiator, the keys of their tokens, and the
    startd agents started on it with :meth:`start_agent`."""

    data: Path
    layout: SecurityLayout
    collector_url: str
    schedd_url: str
    negotiator_url: str
    queue: JobQueue
    negotiator: Negotiator
    agents: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def token(self, user: str, *token_scopes: str) -> str:
        """A token for ``user`` (READ + WRITE unless scopes are given)."""
        return self.layout.mint_token(user, token_scopes or (scopes.READ, scopes.WRITE))

    def identity(self, user: str) -> str:
        """``user@<trust domain>``, as the services see ``user``'s tokens."""
        return f"{user}@{self.layout.trust_domain()}"

    def schedd(self, user: str = "alice") -> ScheddClient:
        """A schedd client acting as ``user`` (READ + WRITE)."""
        return ScheddClient(self.schedd_url, token=self.token(user))

    def collector(self, **client_options: Any) -> CollectorClient:
        """A collector client with a READ token of user ``reader``."""
        return CollectorClient(self.collector_url, token=self.token("reader", scopes.READ), **client_options)

    def client_dir(self, user: str, *token_scopes: str) -> Path:
        """A pool directory with a client.json for ``user`` (what ``--pool`` reads)."""
        where = self.data / "clients" / user
        info = PoolClientInfo(collector=self.collector_url, schedd=self.schedd_url, token=self.token(user, *token_scopes))
        write_client_file(where, info)
        return where

    def start_agent(self, name: str, *args: str, gwms_cli: bool = False) -> subprocess.Popen[bytes]:
        """A startd agent ``name@test`` as its own process, polling fast: ``python -m
        gwms.glidein.startd run`` (the zipapp's command line) or, with ``gwms_cli``,
        ``gwms startd run``. Its files are under ``data/agents/<name>``."""
        token = self.data / f"{name}.token"
        token.write_text(self.layout.mint_token(f"glidein-{name}", (scopes.READ, scopes.ADVERTISE_STARTD)))
        work = self.data / "agents" / name
        work.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", *(("gwms", "startd") if gwms_cli else ("gwms.glidein.startd",)), "run",
             "--collector", self.collector_url,
             "--token", str(token), "--name", f"{name}@test", "--workdir", str(work / "execute"),
             "--log-dir", str(work / "log"), "--poll-wait", "1", "--monitor-interval", "0.2",
             "--schedd-refresh", "1", "--ad-lifetime", "6", "--kill-grace", "1", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(work.parent / f"{name}.stderr", "ab"),  # noqa: SIM115
        )
        self.agents.append(proc)
        return proc

    def stop_agents(self) -> None:
        """SIGQUIT every agent still running (a graceful shutdown), wait for each, kill the slow."""
        for proc in self.agents:
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT)
        for proc in self.agents:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_negotiated_pool(
    data: Path,
    *,
    match_timeout: float,
    claim_timeout: float,
    interval: float = 0.5,
    collector_name: str = "test-pool",
    host: str = "test",
) -> Iterator[NegotiatedPool]:
    """Start a collector, a schedd (advertising its URL as ``ScheddIpAddr``) and a
    negotiator cycling every ``interval`` s on free ports; afterwards stop the agents
    started on the pool, then the services. The schedd is ``schedd@<host>``, the
    negotiator ``negotiator@<host>``."""
    layout = ensure_pool_keys(data)
    verifier = layout.verifier()
    collector = ServiceServer(create_collector_app(AdStore(), verifier, name=collector_name), service="collector")
    collector.start()
    queue = JobQueue.open(data / "schedd" / "queue.db", synchronous="NORMAL")
    spool = Spool(data / "schedd" / "spool")
    advertiser = CollectorClient(collector.url, token=layout.mint_token("schedd", [scopes.ADVERTISE_SCHEDD]))
    urls: dict[str, str] = {}

    def advertise(ad: dict[str, Any]) -> None:
        ad["ScheddIpAddr"] = urls["schedd"]
        advertiser.advertise(ad)

    schedd = ServiceServer(
        create_schedd_app(queue, spool, verifier, name=f"schedd@{host}", limits=ScheddLimits(), advertiser=advertise,
                          advertise_interval=0.5, match_timeout=match_timeout, claim_timeout=claim_timeout),
        service="schedd",
    )
    urls["schedd"] = schedd.url
    schedd.start()
    config = NegotiatorConfig(collector_url=collector.url, name=f"negotiator@{host}", interval=interval,
                              half_life=3600.0, state_file=data / "negotiator" / "accountant.json",
                              watch_interval=0.2)
    negotiator = Negotiator(config, token=layout.mint_token("negotiator", [scopes.NEGOTIATOR, scopes.READ]))
    neg_server = ServiceServer(create_negotiator_app(negotiator, verifier), service="negotiator")
    negotiator.url = neg_server.url
    neg_server.start()
    pool = NegotiatedPool(data, layout, collector.url, schedd.url, neg_server.url, queue, negotiator)
    try:
        yield pool
    finally:
        pool.stop_agents()
        neg_server.stop()
        schedd.stop()
        collector.stop()
        advertiser.close()
        queue.close()
