"""A factory-started local glidein's slot ad says where it came from.

Real services on 127.0.0.1: a user pool, a WMS collector, a factory whose ``local``
entry runs the stage area's glidein (bootstrap, pilot, startd agent zipapp), and the
test acting as frontend with an encrypted request that publishes two of its parameters.
The frontend counts glideins per entry from exactly these attributes
(:func:`gwms.frontend.classify.classify_slot`), so the test checks them through it too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from factory_fixtures import Wms, kill_pilots, start_wms
from factory_pool import Chain, UserPool, glidein_entry, start_chain, start_user_pool

from gwms.frontend.classify import classify_slot

pytestmark = pytest.mark.integration


@pytest.fixture()
def chain(tmp_path: Path) -> Iterator[Chain]:
    wms_gen = start_wms(tmp_path / "wms")
    wms: Wms = next(wms_gen)
    pool_gen = start_user_pool(tmp_path / "pool")
    pool: UserPool = next(pool_gen)
    entry = glidein_entry("local1", "local", {"slots": 2, "kill_grace_s": 2},
                          GLIDEIN_Site="LocalSite", GLIDEIN_ResourceName="loopback")
    chain_gen = start_chain(tmp_path, wms, pool, entry)
    chain = next(chain_gen)
    try:
        yield chain
    finally:
        kill_pilots(chain.config.state_dir())
        for gen in (chain_gen, pool_gen, wms_gen):
            next(gen, None)


def test_a_local_glideins_slot_ad_names_its_factory_entry_and_client(chain: Chain) -> None:
    chain.ask(idle=1, max_glideins=1, client="vofe.main",
              params={"GLIDECLIENT_Group_Tag": "blue", "FE_Priority": 5, "FE_NotPublished": "x"},
              publish=["GLIDECLIENT_Group_Tag", "FE_Priority"])
    [ad] = chain.wait(lambda: chain.pool.slots(), 40, "the glidein's slot in the user pool")
    [pilot] = chain.pilots()
    expected = {
        "GLIDEIN_Factory": "gf",
        "GLIDEIN_Name": "v1",  # the factory instance, not the agent's own name
        "GLIDEIN_Entry_Name": "local1",
        "GLIDECLIENT_Name": "vofe.main",
        "GLIDECLIENT_Group": "main",
        "GLIDEIN_Site": "LocalSite",  # the entry's published attributes
        "GLIDEIN_ResourceName": "loopback",
        "GLIDEIN_Supported_VOs": "test",
        "GLIDEIN_CPUS": 1,
        "GLIDECLIENT_Group_Tag": "blue",  # the frontend's glidein_publish ones, typed
        "FE_Priority": 5,
        "GLIDEIN_ClusterId": pilot.cluster,
        "GLIDEIN_ProcId": pilot.proc,
        "GLIDEIN_CredentialIdentifier": "default",
    }
    assert {k: ad.get(k) for k in expected} == expected, ad
    assert "FE_NotPublished" not in ad  # a plain parameter stays in glidein_config
    name = ad["Name"]
    assert ad["GwmsStartdName"] == name.split("@", 1)[1]  # the agent's name has its own attribute
    # the entry's request name, as the frontend builds it from the slot
    view = classify_slot(ad)
    assert view.entry == chain.request_name == "local1@v1@gf" and view.client == "vofe.main"
    assert view.state == "idle"
    assert f"pilot {pilot.pilot_id} " in chain.diagnose()  # what a failing wait would print
