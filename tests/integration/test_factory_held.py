"""Held pilots with the local backend: the site holds queued pilots, the factory releases
the recoverable ones with linear back-off and removes the unrecoverable, and keeps the
requested idle pilots without ever going above a limit.

Real WMS collector, real factory service (its loop), real local pilots that never start
(``slots: 0``), held the way a site would hold them (:meth:`LocalBackend.hold`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from factory_fixtures import TestFrontend, Wms, factory_config, kill_pilots, start_wms, wait_until

from gwms.factory.backends.local import LocalBackend
from gwms.factory.config import FactoryConfig
from gwms.factory.service import FactoryService
from gwms.factory.states import PilotState
from gwms.security import scopes

pytestmark = pytest.mark.integration

BACKOFF = 1.0
LIMITS = {"glideins": 6, "idle": 3, "held": 2}


@pytest.fixture()
def setup(tmp_path: Path) -> Iterator[tuple[FactoryService, TestFrontend]]:
    gen = start_wms(tmp_path / "data")
    wms: Wms = next(gen)
    raw = factory_config(wms, tmp_path, slots=0, entry={
        "cycle": {"release_backoff_s": BACKOFF, "max_removals": 10},
        "limits": {"per_frontend": LIMITS},
    }, loop_delay=0.2, followup_s=0.2)
    config = FactoryConfig.model_validate(raw).resolved(tmp_path, wms.data)
    service = FactoryService(config, token=wms.layout.mint_token("factory", [scopes.ADVERTISE_FACTORY, scopes.READ]))
    frontend = TestFrontend(wms)
    service.start()
    try:
        yield service, frontend
    finally:
        frontend.close()
        service.stop()
        kill_pilots(config.state_dir())
        next(gen, None)


def counts(service: FactoryService) -> dict[str, int]:
    return service.store.count_active("local1")


def check_limits(service: FactoryService) -> dict[str, int]:
    """The counts now, asserting they are within the limits (held: only the site adds)."""
    c = counts(service)
    assert sum(c.values()) <= LIMITS["glideins"], c
    assert c.get("pending", 0) + c.get("unsubmitted", 0) <= LIMITS["idle"], c
    assert c.get("held", 0) <= LIMITS["held"], c
    return c


def test_held_pilots_are_released_with_backoff_or_removed(setup) -> None:
    service, frontend = setup
    backend = service.backends["local1"]
    assert isinstance(backend, LocalBackend)
    frontend.request(idle=2, max_glideins=10)
    wait_until(lambda: counts(service) == {"pending": 2}, what="2 idle pilots")
    first, second = sorted(service.store.active("local1"), key=lambda r: r.proc)

    assert backend.hold(first.site_id, "gatekeeper temporarily unavailable")  # recoverable
    assert backend.hold(second.site_id, "bad credentials: proxy expired")  # not
    held_at = time.time()
    deadline = time.monotonic() + 20
    seen_held = False
    while time.monotonic() < deadline:
        c = check_limits(service)
        seen_held |= c.get("held", 0) > 0
        rec, gone = service.store.get(first.pilot_id), service.store.get(second.pilot_id)
        if rec.releases >= 1 and rec.state is PilotState.PENDING and gone.state is PilotState.REMOVED:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"no release / removal: {service.store.get(first.pilot_id)}, "
                             f"{service.store.get(second.pilot_id)}")
    assert seen_held
    gone = service.store.get(second.pilot_id)
    assert gone.remove_reason == "unrecoverable hold: bad credentials: proxy expired", gone
    # the first release came no sooner than the back-off after the hold
    released = [t for t, _, note in service.store.history(first.pilot_id) if note == "released"]
    assert released[0] - held_at >= BACKOFF - 0.3

    # held again: the back-off grows with the number of holds (linear)
    assert backend.hold(first.site_id, "connection to the gatekeeper timed out")
    held_again = time.time()
    wait_until(lambda: check_limits(service) and service.store.get(first.pilot_id).releases >= 2, timeout=20,
               interval=0.05, what="the second release")
    rec = service.store.get(first.pilot_id)
    assert rec.holds == 2
    released = [t for t, _, note in service.store.history(first.pilot_id) if note == "released"]
    assert released[1] - held_again >= 2 * BACKOFF - 0.3

    # all along the request's idle pilots were kept (the removed one was replaced), and
    # the released one came back only into room the idle limit left
    final = wait_until(lambda: counts(service).get("held", 0) == 0 and counts(service), what="none held")
    assert final == {"pending": 3}, final
    for _ in range(20):
        check_limits(service)
        time.sleep(0.05)


def test_at_the_held_limit_nothing_is_submitted_until_releases_make_room(setup) -> None:
    service, frontend = setup
    backend = service.backends["local1"]
    frontend.request(idle=3, max_glideins=10)
    wait_until(lambda: counts(service) == {"pending": 3}, what="3 idle pilots")
    ids = [rec.site_id for rec in service.store.active("local1")]
    for site_id in ids:  # the site holds more than the frontend's held limit
        assert backend.hold(site_id, "site temporarily unavailable")
    wait_until(lambda: counts(service).get("held") == 3, what="3 held")
    # held glideins are not idle, but at the held limit the factory only cleans up
    deadline = time.monotonic() + 20
    while min(r.releases for r in service.store.active("local1")) == 0:
        c = counts(service)
        assert sum(c.values()) <= 3, c
        assert time.monotonic() < deadline, "the held pilots were never released"
        time.sleep(0.05)
    final = wait_until(lambda: counts(service) == {"pending": 3} and counts(service), what="3 idle again")
    assert final == {"pending": 3}
    assert {r.site_id for r in service.store.active("local1")} == set(ids)  # the same pilots, released
