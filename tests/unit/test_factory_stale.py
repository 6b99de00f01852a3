"""The stale rules: glideins whose slots sat unclaimed too long, and glideins the site lost.

The decision (:func:`gwms.factory.limits.stale_unclaimed`) is pure and described by
properties; the gathering (:mod:`gwms.factory.slotwatch`) and the entry's use of both
are checked against a scripted site and a scripted user pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.factory.backends.base import BackendError, PilotSpec, SiteState, SiteStatus
from gwms.factory.config import CyclePolicy, FactoryConfig, RemovalLevel
from gwms.factory.entry import EntryWorker, env_command
from gwms.factory.limits import PilotView, SlotView, stale_unclaimed
from gwms.factory.pilotstore import PilotStore
from gwms.factory.requests import ValidRequest
from gwms.factory.slotwatch import slot_constraint, slots_by_pilot
from gwms.factory.states import PilotState

NOW = 1_000_000.0
TWO_HOURS = CyclePolicy().stale_unclaimed_s

slot_states = st.sampled_from(["Unclaimed", "Claimed", "Owner", "Drained"])


@st.composite
def pilots_and_slots(draw):
    n = draw(st.integers(0, 6))
    pilots: list[PilotView] = []
    slots: dict[str, list[SlotView]] = {}
    for i in range(n):
        pid = f"p{i}"
        state = draw(st.sampled_from([PilotState.RUNNING, PilotState.RUNNING, PilotState.PENDING, PilotState.HELD]))
        pilots.append(PilotView(pid, state, submitted=NOW - 10_000 - i, state_since=NOW - 9_000,
                                running_since=NOW - 9_000, removing=draw(st.booleans())))
        if draw(st.booleans()):
            views = []
            for j in range(draw(st.integers(1, 3))):
                s = draw(slot_states)
                age = draw(st.floats(0, 3 * TWO_HOURS))
                views.append(SlotView(f"slot{j}@{pid}", s, NOW - age if s == "Unclaimed" else None))
            slots[pid] = views
    return pilots, slots


@given(pilots_and_slots(), st.floats(1, 4 * TWO_HOURS))
@settings(max_examples=300, deadline=None)
def test_exactly_the_running_glideins_whose_every_slot_sat_unclaimed_too_long(data, limit):
    pilots, slots = data
    chosen = dict(stale_unclaimed(pilots, slots, NOW, max_unclaimed_s=limit))
    for p in pilots:
        views = slots.get(p.pilot_id, [])
        unclaimed = [v for v in views if v.state == "Unclaimed"]
        expected = (
            p.state is PilotState.RUNNING and not p.removing and bool(unclaimed)
            and not any(v.state == "Claimed" for v in views)
            and min(NOW - v.unclaimed_since for v in unclaimed) > limit
        )
        assert (p.pilot_id in chosen) == expected, (p, views)


@given(pilots_and_slots(), st.floats(1, 2 * TWO_HOURS), st.floats(0, 2 * TWO_HOURS))
@settings(max_examples=200, deadline=None)
def test_a_longer_limit_never_removes_more(data, limit, extra):
    pilots, slots = data
    strict = {pid for pid, _ in stale_unclaimed(pilots, slots, NOW, max_unclaimed_s=limit)}
    lax = {pid for pid, _ in stale_unclaimed(pilots, slots, NOW, max_unclaimed_s=limit + extra)}
    assert lax <= strict


@given(pilots_and_slots())
@settings(max_examples=100, deadline=None)
def test_no_news_is_no_judgement(data):
    pilots, _ = data
    assert stale_unclaimed(pilots, {}, NOW, max_unclaimed_s=1) == []


def test_the_originals_two_hours_pinned():
    assert TWO_HOURS == 7200
    p = PilotView("p", PilotState.RUNNING, NOW - 9000, NOW - 9000, NOW - 9000)
    assert stale_unclaimed([p], {"p": [SlotView("slot1@g", "Unclaimed", NOW - 7201)]}, NOW,
                           max_unclaimed_s=TWO_HOURS)[0][0] == "p"
    assert stale_unclaimed([p], {"p": [SlotView("slot1@g", "Unclaimed", NOW - 7199)]}, NOW,
                           max_unclaimed_s=TWO_HOURS) == []
    # a glidein running a job on another slot is never stale
    busy = [SlotView("slot1@g", "Unclaimed", NOW - 9999), SlotView("slot2@g", "Claimed")]
    assert stale_unclaimed([p], {"p": busy}, NOW, max_unclaimed_s=TWO_HOURS) == []


def test_slot_ads_map_to_pilots_and_unclaimed_time_is_measured():
    first: dict[str, float] = {}
    ads = [
        # an HTCondor startd: EnteredCurrentState, against its LastHeardFrom
        {"Name": "slot1@a", "State": "Unclaimed", "GLIDEIN_ClusterId": 7, "GLIDEIN_ProcId": 0,
         "EnteredCurrentState": 5_000, "LastHeardFrom": 5_600},
        # the gwms agent: no EnteredCurrentState, first seen now
        {"Name": "slot1@b", "State": "Unclaimed", "GLIDEIN_ClusterId": 7, "GLIDEIN_ProcId": 1},
        {"Name": "slot1@c", "State": "Claimed", "GLIDEIN_ClusterId": 7, "GLIDEIN_ProcId": 2},
        {"Name": "slot1@x", "State": "Unclaimed", "GLIDEIN_ClusterId": 99, "GLIDEIN_ProcId": 0},  # not ours
        {"Name": "slot1@y", "State": "Unclaimed"},  # no ids
    ]
    pilot_of = {(7, 0): "gf.v1.7.0", (7, 1): "gf.v1.7.1", (7, 2): "gf.v1.7.2"}
    got = slots_by_pilot(ads, pilot_of, NOW, first)
    assert got["gf.v1.7.0"] == [SlotView("slot1@a", "Unclaimed", NOW - 600)]
    assert got["gf.v1.7.1"] == [SlotView("slot1@b", "Unclaimed", NOW)]
    assert got["gf.v1.7.2"] == [SlotView("slot1@c", "Claimed", None)]
    assert set(got) == set(pilot_of.values())
    # seen again later: the first sighting counts; once claimed, the clock resets
    later = slots_by_pilot(ads, pilot_of, NOW + 50, first)
    assert later["gf.v1.7.1"][0].unclaimed_since == NOW
    ads[1]["State"] = "Claimed"
    slots_by_pilot(ads, pilot_of, NOW + 60, first)
    ads[1]["State"] = "Unclaimed"
    assert slots_by_pilot(ads, pilot_of, NOW + 70, first)["gf.v1.7.1"][0].unclaimed_since == NOW + 70


def test_the_constraint_selects_one_entrys_glideins():
    assert slot_constraint("gf", "v1", "e1") == (
        'GLIDEIN_Factory =?= "gf" && GLIDEIN_Name =?= "v1" && GLIDEIN_Entry_Name =?= "e1"')


# --------------------------------------------------------------------------- in the entry's cycle


class Site:
    """A scripted site: pilots stay where the test puts them."""

    name = "fake"

    def __init__(self) -> None:
        self.jobs: dict[str, SiteStatus] = {}
        self.removed: list[str] = []

    def submit(self, pilots: Sequence[PilotSpec]) -> list[str | BackendError]:
        for p in pilots:
            self.jobs.setdefault(p.pilot_id, SiteStatus(SiteState.RUNNING))
        return [p.pilot_id for p in pilots]

    def poll(self, site_ids):
        return {s: self.jobs.get(s, SiteStatus(SiteState.UNKNOWN)) for s in site_ids}

    def remove(self, site_ids):
        self.removed.extend(site_ids)
        for s in site_ids:
            if s in self.jobs:
                self.jobs[s] = SiteStatus(SiteState.REMOVED)

    def release(self, site_ids):
        pass

    def collect_output(self, site_id, pilot):
        pass


class Clock:
    def __init__(self) -> None:
        self.t = NOW

    def __call__(self) -> float:
        return self.t


class Pool:
    """A scripted user pool: slot ads by (cluster, proc), and what was asked."""

    def __init__(self) -> None:
        self.state: dict[tuple[int, int], str] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.down = False

    def __call__(self, url, token, constraint, projection):
        self.calls.append((url, token, constraint))
        if self.down:
            raise ConnectionError("connection refused")
        return [{"Name": f"slot1@g{c}.{p}", "State": s, "GLIDEIN_ClusterId": c, "GLIDEIN_ProcId": p}
                for (c, p), s in self.state.items()]


def request(idle: int) -> ValidRequest:
    return ValidRequest(
        name="default_e1@v1@gf@fe.main", entry="e1", client_name="fe.main", credential_id="default",
        identity="fe@pool", frontend="fe", security_class="main", user="feuser", req_idle=idle, req_max=10,
        remove_level=RemovalLevel.NO,
        remove_margin=0, idle_lifetime=0.0,
        secrets={"GLIDEIN_Token": "glidein-token", "GLIDEIN_Collector": "http://pool:9618"},
    )


@pytest.fixture()
def entry(tmp_path: Path):
    cfg = FactoryConfig.model_validate({
        "name": "gf", "wms_collector": "http://127.0.0.1:1",
        "frontends": {"fe": {"identity": "fe@pool", "security_classes": {"main": "feuser"}}},
        "entries": [{"name": "e1", "pilot_command": ["/bin/true"], "cycle": {"slot_check_s": 60}}],
    }).resolved(tmp_path, tmp_path / "data")
    store = PilotStore(tmp_path / "pilots.db")
    site, pool, clock = Site(), Pool(), Clock()
    worker = EntryWorker(cfg, cfg.entries[0], site, store, env_command(["/bin/true"]), slot_source=pool,
                         clock=clock)
    yield worker, site, pool, clock, store
    store.close()


def test_a_running_glidein_unclaimed_for_two_hours_is_removed(entry):
    worker, site, pool, clock, store = entry
    worker.cycle([request(2)])
    idle_one, busy_one = sorted(store.active("e1"), key=lambda r: r.proc)
    pool.state = {(idle_one.cluster, 0): "Unclaimed", (busy_one.cluster, 1): "Claimed"}
    clock.t += 10
    worker.cycle([request(0)])
    assert [r.state for r in store.active("e1")] == [PilotState.RUNNING, PilotState.RUNNING]
    assert pool.calls[-1] == ("http://pool:9618", "glidein-token",
                              'GLIDEIN_Factory =?= "gf" && GLIDEIN_Name =?= "v1" && GLIDEIN_Entry_Name =?= "e1"')
    asked = len(pool.calls)
    clock.t += 30
    worker.cycle([request(0)])
    assert len(pool.calls) == asked  # at most every slot_check_s
    clock.t += TWO_HOURS - 100
    assert worker.cycle([request(0)]).removed == 0  # not yet: unclaimed for less than 2 h
    clock.t += 200
    report = worker.cycle([request(0)])
    assert report.removed == 1 and site.removed == [idle_one.site_id]
    assert store.get(idle_one.pilot_id).remove_reason.startswith("stale: 1 slot(s) unclaimed")
    assert store.get(busy_one.pilot_id).remove_requested is None


def test_an_unreadable_pool_removes_nothing(entry):
    worker, site, pool, clock, store = entry
    worker.cycle([request(1)])
    pool.down = True
    for _ in range(5):
        clock.t += 3 * TWO_HOURS
        worker.cycle([request(0)])
    assert pool.calls and site.removed == []
    assert [r.state for r in store.active("e1")] == [PilotState.RUNNING]


def test_a_pilot_the_site_lost_is_removed_there_too(entry):
    worker, site, _pool, clock, store = entry
    worker.cycle([request(1)])
    [rec] = store.active("e1")
    site.jobs.clear()  # the site forgets it
    clock.t += 10
    worker.cycle([request(0)])
    assert site.removed == [] and store.get(rec.pilot_id).state is PilotState.PENDING  # kept for the grace
    clock.t += CyclePolicy().unknown_grace_s
    worker.cycle([request(0)])
    assert store.get(rec.pilot_id).state is PilotState.LOST
    assert site.removed == [rec.site_id]
