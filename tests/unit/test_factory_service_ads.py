"""The factory service without a network: ads, refusals, stale client ads, the stage area."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gwms.errors import GwmsError
from gwms.factory import attributes as A
from gwms.factory.config import FactoryConfig, RemovalLevel
from gwms.factory.entry import PilotContext
from gwms.factory.requests import ValidRequest, build_request_ad
from gwms.factory.service import FactoryService


class MemoryCollector:
    """Just enough of CollectorClient: ads by (type, name), stamped with one identity."""

    def __init__(self) -> None:
        self.ads: dict[tuple[str, str], dict[str, Any]] = {}
        self.invalidated: list[tuple[str, str | None, str | None]] = []

    def query(self, my_type=None, constraint=None, projection=None, limit=None):
        return [dict(ad) for (t, _), ad in self.ads.items() if my_type is None or t == my_type.lower()]

    def advertise(self, ads):
        for ad in ads if isinstance(ads, list) else [ads]:
            self.ads[(ad[A.MY_TYPE].lower(), ad[A.NAME])] = dict(ad)
        return SimpleNamespace(accepted=len(ads), refused=[])

    def invalidate(self, my_type, name=None, constraint=None):
        self.invalidated.append((my_type, name, constraint))
        for key in list(self.ads):
            same = key[0] == my_type.lower() and (name is None or key[1] == name)
            if same and (constraint is None or name is not None or self.ads[key].get(A.FACTORY_NAME) == "gf"):
                del self.ads[key]
        return SimpleNamespace(removed=1, refused=0)

    def close(self) -> None:
        pass


def config(tmp: Path, **entry: Any) -> FactoryConfig:
    e = {"name": "e1", "backend": "local", "backend_settings": {"slots": 0}, "pilot_command": ["/bin/true"]}
    e.update(entry)
    return FactoryConfig.model_validate({
        "name": "gf", "wms_collector": "http://127.0.0.1:1",
        "frontends": {"fe": {"identity": "fe@pool", "security_classes": {"main": "u1"}}},
        "entries": [e],
    }).resolved(tmp, tmp / "data")


@pytest.fixture()
def service(tmp_path: Path):
    coll = MemoryCollector()
    svc = FactoryService(config(tmp_path), collector=coll)  # type: ignore[arg-type]
    yield svc, coll
    svc.stop()


def request_ad(svc: FactoryService, identity: str = "fe@pool", client: str = "fe.main", **kw: Any) -> dict[str, Any]:
    ad = build_request_ad(entry_ad_name="e1@v1@gf", client_name=client, identity=identity, security_name="fe",
                          security_class="main", factory_public_key=svc.key_pair.public_pem, key_id=svc.key_pair.kid,
                          **{"req_idle": 2, "req_max": 4, **kw})
    ad[A.AUTHENTICATED_IDENTITY] = "fe@pool"
    return ad


def test_ads_after_a_cycle(service):
    svc, coll = service
    coll.advertise([request_ad(svc)])
    svc.run_once()
    types = sorted(t for t, _ in coll.ads)
    assert types == ["glideclient", "glidefactory", "glidefactoryclient", "glidefactoryglobal"]
    g = coll.ads[("glidefactoryglobal", "v1@gf")]
    assert g[A.PUB_KEY_ID] == svc.key_pair.kid and "BEGIN PUBLIC KEY" in g[A.PUB_KEY_VALUE]
    assert svc.store.count_active("e1") == {"pending": 2}


def test_client_ads_of_vanished_requests_are_invalidated(service):
    svc, coll = service
    ad = request_ad(svc)
    coll.advertise([ad])
    svc.run_once()
    assert ("glidefactoryclient", ad[A.NAME]) in coll.ads
    del coll.ads[("glideclient", ad[A.NAME])]
    svc.run_once()
    assert ("glidefactoryclient", ad[A.NAME]) not in coll.ads
    assert (A.TYPE_GLIDEFACTORY_CLIENT, ad[A.NAME], None) in coll.invalidated


def test_refusals_are_logged_once_not_every_poll(service, caplog):
    caplog.set_level(logging.WARNING, logger="gwms.factory")
    svc, coll = service
    forged = request_ad(svc, identity="mallory@pool")
    coll.advertise([forged])
    for _ in range(3):
        svc.refresh_requests()
    messages = [r.getMessage() for r in caplog.records if "refused request" in r.getMessage()]
    assert len(messages) == 1 and "mallory@pool" in messages[0]
    assert len(svc.refusals()) == 1


def test_stopping_invalidates_every_own_ad(tmp_path):
    coll = MemoryCollector()
    svc = FactoryService(config(tmp_path), collector=coll)  # type: ignore[arg-type]
    svc.run_once()
    assert coll.ads
    svc.stop()
    assert [t for t, _, _ in coll.invalidated] == ["glidefactoryclient", "glidefactory", "glidefactoryglobal"]
    assert all('FactoryName =?= "gf"' in (c or "") for _, _, c in coll.invalidated)
    assert coll.ads == {}


def test_requests_too_old_are_not_acted_on(service):
    svc, coll = service
    coll.advertise([request_ad(svc)])
    svc.refresh_requests()
    assert svc.requests_for("e1")
    svc._requests_at -= svc.config.request_max_age_s + 1
    assert svc.requests_for("e1") is None


def test_entries_without_a_command_run_the_stage_areas_glidein(tmp_path):
    coll = MemoryCollector()
    cfg = config(tmp_path, pilot_command=None, attrs={"GLIDEIN_Site": "S", "GLIDEIN_CPUS": 2})
    svc = FactoryService(cfg, collector=coll)  # type: ignore[arg-type]
    try:
        assert svc.stage is not None and svc.stage_url and svc.stage_url.startswith("http://127.0.0.1:")
        req = ValidRequest(
            name="r", entry="e1", client_name="fe.main", credential_id="c1", identity="fe@pool", frontend="fe",
            security_class="main", user="u1", req_idle=1, req_max=1, remove_level=RemovalLevel.NO,
            remove_margin=0, idle_lifetime=0, params={"GLIDEIN_Max_Walltime": 3600},
            secrets={"GLIDEIN_Token": "the-pool-token", "GLIDEIN_Collector": "http://127.0.0.1:9618"},
        )
        cmd = svc.commands["e1"](PilotContext("gf", "v1", cfg.entries[0], req, "gf.v1.7.0", 7, 0, svc.stage_url))
        argv = cmd.argv
        assert argv[argv.index("-entry") + 1] == "e1" and argv[argv.index("-collector") + 1] == "http://127.0.0.1:9618"
        assert argv[argv.index("-cluster") + 1] == "7" and argv[argv.index("-sign") + 1] == svc.stage.signature
        assert "the-pool-token" not in " ".join(argv) and "the-pool-token" in cmd.env.values()
        assert "-param_GLIDEIN_Max_Walltime" in argv and "-attr" not in argv
        # parameters the frontend publishes become typed -attr (slot ads), the others stay params
        published = ValidRequest(**{**req.__dict__, "params": {"Tag": "blue", "Prio": 5, "Plain": "x"},
                                    "publish": ("Tag", "Prio")})
        argv = svc.commands["e1"](PilotContext("gf", "v1", cfg.entries[0], published, "gf.v1.7.1", 7, 1,
                                               svc.stage_url)).argv
        attrs = [argv[i + 1] for i, a in enumerate(argv) if a == "-attr"]
        assert attrs == ["Prio=5", 'Tag="blue"'] and argv[argv.index("-param_Plain") + 1] == "x"
        assert "-param_Tag" not in argv
        no_collector = ValidRequest(**{**req.__dict__, "secrets": {}})
        with pytest.raises(GwmsError, match="GLIDEIN_Collector"):
            svc.commands["e1"](PilotContext("gf", "v1", cfg.entries[0], no_collector, "x", 1, 0, svc.stage_url))
    finally:
        svc.stop()
