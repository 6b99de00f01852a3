"""A whole glidein chain on 127.0.0.1 for factory tests: a user pool (collector, schedd,
negotiator), a WMS collector, a factory whose entry runs the real glidein from its stage
area (served over HTTP on 127.0.0.1), and the test acting as the frontend.

Used by the local-backend test of the slot attributes and the real Slurm end-to-end test.
Every wait is bounded; :meth:`Chain.diagnose` gives what to print when something does
not come up (the pilots' states and the tail of their ``.err``).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory_fixtures import TestFrontend, Wms
from pool_fixtures import start_negotiated_pool
from waiting import WaitTimeout, wait_until

from gwms.factory.config import FactoryConfig
from gwms.factory.service import FactoryService
from gwms.pool.collector.client import CollectorClient
from gwms.pool.schedd.client import ScheddClient
from gwms.security import scopes
from gwms.security.layout import SecurityLayout

#: The agent polls fast in tests (the defaults suit real pools).
AGENT_OPTIONS = "--poll-wait 1 --schedd-refresh 1 --monitor-interval 0.2 --ad-lifetime 60 --kill-grace 1"


@dataclass
class UserPool:
    """The user pool: collector, schedd and negotiator, and the keys of its tokens."""

    data: Path
    layout: SecurityLayout
    collector_url: str
    schedd_url: str

    def glidein_token(self) -> str:
        """The token a frontend gives its glideins (READ + ADVERTISE_STARTD)."""
        return self.layout.mint_token("glidein-vofe", (scopes.READ, scopes.ADVERTISE_STARTD))

    def schedd(self, user: str = "alice") -> ScheddClient:
        return ScheddClient(self.schedd_url, token=self.layout.mint_token(user, (scopes.READ, scopes.WRITE)))

    def collector(self) -> CollectorClient:
        return CollectorClient(self.collector_url, token=self.layout.mint_token("reader", (scopes.READ,)),
                               retries=1, timeout=10)

    def slots(self) -> list[dict[str, Any]]:
        with self.collector() as c:
            return c.query("Machine")


def start_user_pool(data: Path) -> Iterator[UserPool]:
    """Collector, schedd (advertising its URL) and negotiator on free ports."""
    pools = start_negotiated_pool(data, match_timeout=5.0, claim_timeout=5.0, collector_name="user-pool", host="pool")
    pool = next(pools)
    try:
        yield UserPool(pool.data, pool.layout, pool.collector_url, pool.schedd_url)
    finally:
        next(pools, None)


def glidein_entry(name: str, backend: str, backend_settings: dict[str, Any], **attrs: Any) -> dict[str, Any]:
    """An entry running the stage area's real glidein (no ``pilot_command``)."""
    return {
        "name": name,
        "backend": backend,
        "backend_settings": backend_settings,
        "attrs": {"GLIDEIN_CPUS": 1, "GLIDEIN_MaxMemMBs": 512, "GLIDEIN_Supported_VOs": "test", **attrs},
        "params": {"GWMS_AGENT_OPTIONS": AGENT_OPTIONS},
        "pilot": {"cpus": 1, "memory_mb": 512, "walltime_s": 1800},
        "cycle": {"max_removals": 10},
    }


@dataclass
class Chain:
    """A user pool, a WMS collector, a factory with one glidein entry, and a frontend."""

    pool: UserPool
    wms: Wms
    service: FactoryService
    frontend: TestFrontend
    entry: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> FactoryConfig:
        return self.service.config

    @property
    def request_name(self) -> str:
        """``entry@instance@factory``."""
        return self.config.entry_ad_name(self.entry)

    def ask(self, idle: int, max_glideins: int, **kw: Any) -> dict[str, Any]:
        """Advertise (or change) the frontend's request for this entry."""
        return self.frontend.request(
            entry=self.request_name, idle=idle, max_glideins=max_glideins,
            secrets={"GLIDEIN_Token": self.pool.glidein_token(), "GLIDEIN_Collector": self.pool.collector_url},
            **kw,
        )

    def pilots(self, *, all_states: bool = False) -> list[Any]:
        recs = self.service.store.query(entry=self.entry, active_only=not all_states)
        return sorted(recs, key=lambda r: (r.cluster, r.proc))

    def log_dir(self) -> Path:
        """``client/user_fe1/glidein_<instance>/entry_<entry>``."""
        return (Path(self.config.log_dir or ".") / "client" / "user_fe1" / f"glidein_{self.config.instance}"
                / f"entry_{self.entry}")

    def diagnose(self) -> str:
        """The entry's state, refused requests, the pilots' states and the tail of each
        pilot's .out/.err: for failure messages."""
        lines = []
        for e in self.service.entries():
            lines.append(f"entry {e['name']}: paused={e['paused']} {e['reason']!r} last error "
                         f"{e['last_error']!r} counts {e['counts']} requests {e['requests']}")
        lines += [f"refused: {r}" for r in self.service.refusals()]
        for rec in self.pilots(all_states=True):
            lines.append(f"pilot {rec.pilot_id} site id {rec.site_id} state {rec.state.value} "
                         f"reason {rec.reason!r}")
            for path in (Path(rec.stdout), Path(rec.stderr)):
                try:
                    text = path.read_text(errors="replace")
                except OSError as exc:
                    text = f"({exc.strerror})"
                lines.append(f"--- tail of {path.name}:\n{text[-3000:]}")
        if not any(line.startswith("pilot ") for line in lines):
            lines.append("no pilots were submitted")
        return "\n".join(lines)

    def wait(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        """Call ``check`` until it gives something true, at most ``timeout`` s, else fail
        with ``what`` and :meth:`diagnose`."""
        try:
            return wait_until(check, timeout, interval=0.2, what=what)
        except WaitTimeout:
            raise AssertionError(f"{what}: not within {timeout:g} s\n{self.diagnose()}") from None

    def submit(self, tmp: Path, text: str, user: str = "alice") -> int:
        with self.pool.schedd(user) as s:
            return s.submit_text(textwrap.dedent(text), base_dir=tmp).cluster_id


def start_chain(tmp: Path, wms: Wms, pool: UserPool, entry: dict[str, Any], **cfg: Any) -> Iterator[Chain]:
    """A running factory with ``entry`` (its stage area served on 127.0.0.1) and a frontend."""
    raw: dict[str, Any] = {
        "name": "gf",
        "instance": "v1",
        "wms_collector": wms.url,
        "frontends": {"vofe": {"identity": f"vofrontend@{wms.domain}", "security_classes": {"main": "fe1"}}},
        "entries": [entry],
        "loop_delay": 1.0,
        "request_poll_s": 0.3,
        "followup_s": 0.5,
        "advertise_interval": 2,
        **cfg,
    }
    config = FactoryConfig.model_validate(raw).resolved(tmp, tmp / "factory-data")
    service = FactoryService(config, token=wms.layout.mint_token("factory", [scopes.ADVERTISE_FACTORY, scopes.READ]))
    frontend = TestFrontend(wms)
    service.start()
    try:
        yield Chain(pool, wms, service, frontend, entry["name"])
    finally:
        frontend.close()
        service.stop()
