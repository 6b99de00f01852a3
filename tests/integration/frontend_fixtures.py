"""Two real collectors (user pool and WMS), a real schedd, and a fake factory that
advertises entries and its public key, for the frontend's integration tests.

One data directory holds the keys of both collectors, so every token (the frontend's,
the factory's, the glideins') comes from one trust domain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import waiting
import yaml

from gwms.factory import attributes as FA
from gwms.factory.config import FactoryConfig
from gwms.factory.requests import RequestReader, ValidRequest
from gwms.net import ServiceServer
from gwms.pool.collector.client import CollectorClient
from gwms.pool.collector.service import create_collector_app
from gwms.pool.collector.store import AdStore
from gwms.pool.schedd.client import ScheddClient
from gwms.pool.schedd.queue import JobQueue
from gwms.pool.schedd.sandbox import Spool
from gwms.pool.schedd.service import create_schedd_app
from gwms.security import scopes
from gwms.security.hybrid import Decryptor, RsaKeyPair
from gwms.security.layout import SecurityLayout, ensure_pool_keys

SUBMIT = """\
executable = /bin/true
+DESIRED_Sites = "{sites}"
queue {count}
"""


@dataclass
class Loop:
    """The user pool (collector + schedd) and the WMS collector, on loopback."""

    data: Path
    layout: SecurityLayout
    pool_url: str
    schedd_url: str
    wms_url: str

    @property
    def domain(self) -> str:
        return self.layout.trust_domain()

    def identity(self, user: str) -> str:
        return f"{user}@{self.domain}"

    def token(self, user: str, *token_scopes: str) -> str:
        return self.layout.mint_token(user, token_scopes or (scopes.READ,))

    def wms(self, user: str = "reader", *token_scopes: str) -> CollectorClient:
        return CollectorClient(self.wms_url, token=self.token(user, *token_scopes), retries=1, timeout=10)

    def pool(self, user: str = "reader", *token_scopes: str) -> CollectorClient:
        return CollectorClient(self.pool_url, token=self.token(user, *token_scopes), retries=1, timeout=10)

    def schedd(self, user: str = "alice") -> ScheddClient:
        return ScheddClient(self.schedd_url, token=self.token(user, scopes.READ, scopes.WRITE))

    def submit(self, count: int, sites: str = "LOCAL", user: str = "alice") -> int:
        with self.schedd(user) as s:
            return s.submit_text(SUBMIT.format(sites=sites, count=count), base_dir=self.data).cluster_id

    def remove(self, cluster: int, user: str = "alice") -> None:
        with self.schedd(user) as s:
            s.act("remove", [str(cluster)])


def start_loop(data: Path) -> Iterator[Loop]:
    """Start a user collector, a schedd advertising itself (with ScheddIpAddr) to it,
    and a WMS collector; stop them afterwards."""
    layout = ensure_pool_keys(data)
    verifier = layout.verifier()
    pool = ServiceServer(create_collector_app(AdStore(), verifier, name="user-pool"), service="collector")
    wms = ServiceServer(create_collector_app(AdStore(), verifier, name="wms"), service="collector")
    pool.start()
    wms.start()
    queue = JobQueue.open(data / "schedd" / "queue.db", synchronous="NORMAL")
    spool = Spool(data / "schedd" / "spool", max_input_bytes=1 << 26)
    advertiser = CollectorClient(pool.url, token=layout.mint_token("schedd", [scopes.ADVERTISE_SCHEDD]))
    holder: dict[str, str] = {}

    def advertise(ad: dict[str, Any]) -> None:
        if "url" in holder:
            ad["ScheddIpAddr"] = holder["url"]
            advertiser.advertise(ad)

    schedd = ServiceServer(create_schedd_app(queue, spool, verifier, name="schedd@test", advertiser=advertise,
                                             advertise_interval=0.3), service="schedd")
    schedd.start()
    holder["url"] = schedd.url
    loop = Loop(data, layout, pool.url, schedd.url, wms.url)
    try:
        with loop.pool() as reader:
            wait_until(lambda: reader.query("Scheduler", constraint="ScheddIpAddr =!= UNDEFINED"),
                       what="the schedd's ad in the user collector")
        yield loop
    finally:
        schedd.stop()
        wms.stop()
        pool.stop()
        advertiser.close()
        queue.close()


class FakeFactory:
    """Advertises ``glidefactory`` ads and the ``glidefactoryglobal`` ad with a real key,
    under its own identity, and reads requests with the real factory's reader."""

    __test__ = False

    def __init__(self, loop: Loop, user: str = "factory", name: str = "gf") -> None:
        self.loop = loop
        self.name = name
        self.identity = loop.identity(user)
        self.key = RsaKeyPair.generate(f"{name}-v1", 2048)
        self.collector = loop.wms(user, scopes.ADVERTISE_FACTORY, scopes.READ)

    def advertise(self, entries: dict[str, str], *, with_key: bool = True) -> None:
        """Entries as name -> GLIDEIN_Site."""
        ads: list[dict[str, Any]] = [{
            FA.MY_TYPE: FA.TYPE_GLIDEFACTORY, FA.NAME: f"{e}@v1@{self.name}", FA.ENTRY_NAME: e,
            FA.FACTORY_NAME: self.name, FA.GLIDEIN_NAME: "v1", "GLIDEIN_Site": site, "GLIDEIN_CPUS": 1,
            FA.IN_DOWNTIME: False, FA.PUB_KEY_ID: self.key.kid,
        } for e, site in entries.items()]
        if with_key:
            ads.append({FA.MY_TYPE: FA.TYPE_GLIDEFACTORY_GLOBAL, FA.NAME: f"v1@{self.name}",
                        FA.FACTORY_NAME: self.name, FA.GLIDEIN_NAME: "v1", FA.PUB_KEY_ID: self.key.kid,
                        FA.PUB_KEY_VALUE: self.key.public_pem})
        report = self.collector.advertise(ads)
        assert report.accepted == len(ads), report

    def reader(self, frontend_identity: str, entries: list[str]) -> RequestReader:
        cfg = FactoryConfig.model_validate({
            "name": self.name, "instance": "v1", "wms_collector": self.loop.wms_url,
            "frontends": {"vofe": {"identity": frontend_identity, "security_classes": {"frontend": "fe1"}}},
            "entries": [{"name": e} for e in entries],
        })
        return RequestReader(cfg, Decryptor(self.key))

    def requests(self, frontend_identity: str, entries: list[str]) -> tuple[dict[str, list[ValidRequest]], list]:
        """The glideclient ads in the WMS collector, read as the factory reads them."""
        ads = self.collector.query(FA.TYPE_GLIDECLIENT)
        return self.reader(frontend_identity, entries).read(ads)

    def close(self) -> None:
        self.collector.close()


def frontend_config(loop: Loop, **group: Any) -> dict[str, Any]:
    """A frontend with one group matching jobs' DESIRED_Sites to entries' GLIDEIN_Site."""
    return {
        "frontend_name": "vofe",
        "loop_delay": 60,
        "wms_collectors": [{"url": loop.wms_url, "factory_identity": loop.identity("factory"),
                            "my_identity": loop.identity("vofrontend")}],
        "user_pool": {"collectors": [loop.pool_url]},
        "security": {"security_name": "vofe",
                     "credentials": [{"name": "pool", "signing_key_dir": str(loop.layout.keys_dir)}]},
        "groups": {"main": {
            "match": {"match_expr": 'glidein["attrs"]["GLIDEIN_Site"] in job["DESIRED_Sites"].split(",")',
                      "job": {"match_attrs": ["DESIRED_Sites"]}},
            **group,
        }},
    }


def write_config(cfg: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def wait_until(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = "") -> Any:
    """:func:`waiting.wait_until`, polling every 50 ms by default."""
    return waiting.wait_until(check, timeout, interval, what)
