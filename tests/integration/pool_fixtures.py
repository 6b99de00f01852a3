"""Real collector and schedd services on 127.0.0.1 for integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gwms.net import ServiceServer
from gwms.pool.collector.client import CollectorClient
from gwms.pool.collector.service import create_collector_app
from gwms.pool.collector.store import AdStore
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
