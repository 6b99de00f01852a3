"""End to end on loopback: ``gwms up`` with its three local entries runs 200 jobs with
mixed requirements; glideins stay within the limits, go only where jobs can run, and
retire when the queue is empty; a forged frontend gets nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from e2e_system import JobClass, Sampler, Submitted, System, check_outputs, wait_for

from gwms.embedded.upconfig import FACTORY_NAME, FRONTEND_NAME, GLIDEINS_PER_ENTRY
from gwms.factory import attributes as FA
from gwms.factory.requests import build_request_ad
from gwms.pool.collector.client import CollectorClient
from gwms.security import scopes
from gwms.security.hybrid import SessionKey

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

#: Phase 1: nothing siteB could run (siteA only; 4 CPUs and 6 GB: siteC only).
PHASE1 = [
    JobClass("a_only", 30, cpus=1, memory=1024, sites=("SiteA",)),
    JobClass("c_big", 20, cpus=4, memory=6000),
]
#: Phase 2: the rest, over every entry.
PHASE2 = [
    JobClass("any", 80, cpus=1, memory=256),
    JobClass("bc_two", 40, cpus=2, memory=3000, sites=("SiteB", "SiteC")),
    JobClass("b_only", 30, cpus=1, memory=1024, sites=("SiteB",)),
]


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    sys_ = System(tmp_path_factory.mktemp("e2e-workload"))
    try:
        yield sys_
    finally:
        log = sys_.stop()
        assert "gwms is down" in log, log[-2000:]


def test_200_mixed_jobs_complete_within_limits_and_glideins_retire(system: System) -> None:
    assert sum(c.count for c in PHASE1 + PHASE2) == 200
    assert {c.name: c.entries() for c in PHASE1} == {"a_only": {"siteA"}, "c_big": {"siteC"}}
    phase = {"n": 1}

    def only_where_jobs_can_run(counts: dict[str, dict[str, int]]) -> str | None:
        if phase["n"] == 1 and sum(counts.get("siteB", {}).values()):
            return f"siteB got glideins while no job could run there: {counts['siteB']}"
        return None

    sampler = Sampler(system, check=only_where_jobs_can_run).start()
    try:
        submitted: list[Submitted] = [system.submit(c) for c in PHASE1]
        # let phase 1 run until siteA and siteC both have glideins running jobs
        wait_for(lambda: all(system.entry_counts()[e].get("running", 0) for e in ("siteA", "siteC"))
                 and len(system.history()) >= 5, timeout=60, what="phase 1 under way", describe=system.describe)
        assert not sampler.violations, sampler.violations
        phase["n"] = 2
        submitted += [system.submit(c) for c in PHASE2]
        start = time.monotonic()
        wait_for(lambda: not system.queue_counts(), timeout=150, interval=1.0, what="an empty queue", describe=system.describe)
        took = time.monotonic() - start
        # the queue is empty: every glidein retires on its own (GLIDEIN_Max_Tail)
        wait_for(lambda: not any(sum(c.values()) for c in system.entry_counts().values()), timeout=60,
                 interval=0.5, what="every glidein retired", describe=system.describe)
    finally:
        sampler.stop()
    assert sampler.looks > 20
    assert not sampler.violations, sampler.violations[:10]
    # every entry was used, and none beyond its maximum
    assert all(0 < n <= GLIDEINS_PER_ENTRY for n in sampler.max_active.values()), sampler.max_active
    assert set(sampler.max_active) == {"siteA", "siteB", "siteC"}
    check_outputs(system, submitted)
    # the factory removed nothing: every glidein ended on its own, and well
    pilots = system.pilots(all_states=True)
    states = {p["state"] for p in pilots}
    assert states == {"completed"}, [(p["pilot_id"], p["state"], p.get("reason")) for p in pilots
                                      if p["state"] != "completed"][:10]
    assert all(p["client_name"] == f"{FRONTEND_NAME}.main" for p in pilots)
    print(f"200 jobs: phase 2 drained in {took:.0f} s with {len(pilots)} glideins; max per entry "
          f"{dict(sampler.max_active)}")


def test_a_forged_frontend_gets_no_glideins(system: System) -> None:
    domain = system.layout.trust_domain()
    mallory = CollectorClient(system.urls["wms"], timeout=10,
                              token=system.layout.mint_token("mallory", [scopes.ADVERTISE_FRONTEND, scopes.READ]))
    try:
        (glob,) = mallory.query(FA.TYPE_GLIDEFACTORY_GLOBAL)
        pem, kid = glob[FA.PUB_KEY_VALUE], glob[FA.PUB_KEY_ID]
        before = {p["pilot_id"] for p in system.pilots(all_states=True)}
        for client, identity in (("frontend.forged", f"{FRONTEND_NAME}@{domain}"),  # lies inside the ciphertext
                                 ("frontend.honest", f"mallory@{domain}")):         # tells the truth
            ad = build_request_ad(
                entry_ad_name=f"siteB@v1@{FACTORY_NAME}", client_name=client, identity=identity,
                security_name=FRONTEND_NAME, security_class="frontend", factory_public_key=pem, key_id=kid,
                req_idle=3, req_max=3, session=SessionKey(pem, kid),
                secrets={"GLIDEIN_Token": "x", "GLIDEIN_Collector": system.urls["collector"]},
            )
            assert mallory.advertise(ad).accepted == 1
        refusals = wait_for(
            lambda: (r := system.factory.get("/v1/status")["refusals"])
            and {x["name"].rsplit("@", 1)[1] for x in r} >= {"frontend.forged", "frontend.honest"} and r,
            timeout=20, what="both requests refused")
        reasons = " | ".join(r["reason"] for r in refusals)
        assert "is not the authenticated identity" in reasons
        assert f"is not the one configured for frontend '{FRONTEND_NAME}'" in reasons
        time.sleep(3)  # several factory cycles (loop_delay 1 s)
        new = [p for p in system.pilots(all_states=True) if p["pilot_id"] not in before]
        assert new == []
    finally:
        mallory.close()
