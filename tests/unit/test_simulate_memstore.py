"""The simulation's in-memory pilot store behaves as the factory's SQLite store."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gwms.factory.pilotstore import NewPilot, PilotStore, StateChange
from gwms.factory.states import PilotState
from gwms.simulate.memstore import MemoryPilotStore


def new(cluster: int, proc: int, entry: str = "e1") -> NewPilot:
    pid = f"gf.v1.{cluster}.{proc}"
    return NewPilot(
        pilot_id=pid, entry=entry, client_key="fe/c/default", client_name="c", credential_id="default",
        frontend="fe", security_class="main", user="u", request_name="r", cluster=cluster, proc=proc,
        idle_lifetime=0.0, stdout=f"/l/{pid}.out", stderr=f"/l/{pid}.err",
    )


# one operation: (kind, pilot index, argument)
_OPS = st.lists(
    st.tuples(
        st.sampled_from(["submitted", "refused", "abandon", "running", "held", "completed", "removal",
                         "released", "unknown", "clear", "collected"]),
        st.integers(0, 5),
    ),
    max_size=40,
)


def _apply(store, ops, pilots: list[NewPilot]) -> None:
    store.add_unsubmitted(pilots[:3], 10.0)
    store.add_unsubmitted(pilots[3:], 11.0)
    now = 12.0
    for kind, i in ops:
        now += 1.0
        pid = pilots[i].pilot_id
        if kind == "submitted":
            store.record_submitted([(pid, f"s{i}", "")], now)
        elif kind == "refused":
            store.record_submitted([(pid, None, "no")], now)
        elif kind == "abandon":
            store.abandon([pid], "gone", now)
        elif kind == "running":
            store.apply([StateChange(pid, state=PilotState.RUNNING, running_since=now)], now)
        elif kind == "held":
            store.apply([StateChange(pid, state=PilotState.HELD, reason="temporary", holds=2)], now)
        elif kind == "completed":
            store.apply([StateChange(pid, state=PilotState.COMPLETED, exit_code=0, reason="")], now)
        elif kind == "removal":
            store.request_removal([(pid, "excess")], now)
        elif kind == "released":
            store.record_released([pid], now)
        elif kind == "unknown":
            store.apply([StateChange(pid, unknown_since=now)], now)
        elif kind == "clear":
            store.apply([StateChange(pid, clear_unknown=True)], now)
        elif kind == "collected":
            store.mark_output_collected(pid)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS)
def test_same_answers_as_the_sqlite_store(tmp_path_factory, ops) -> None:
    pilots = [new(1, p) for p in range(3)] + [new(2, p) for p in range(3)]
    sql = PilotStore(Path(tmp_path_factory.mktemp("store")) / "p.db")
    mem = MemoryPilotStore()
    try:
        _apply(sql, ops, pilots)
        _apply(mem, ops, pilots)
        assert [asdict(r) for r in mem.active("e1")] == [asdict(r) for r in sql.active("e1")]
        assert [r.view() for r in mem.active("e1")] == [r.view() for r in sql.active("e1")]
        assert [asdict(r) for r in mem.uncollected("e1")] == [asdict(r) for r in sql.uncollected("e1")]
        for p in pilots:
            assert asdict(mem.get(p.pilot_id)) == asdict(sql.get(p.pilot_id))
        assert mem.count_active("e1") == sql.count_active("e1")
    finally:
        sql.close()


def test_control_and_clusters() -> None:
    mem = MemoryPilotStore()
    assert mem.next_cluster() == 1 and mem.next_cluster() == 2
    assert mem.control("e") == {}
    data = mem.update_control("e", lambda d: {**d, "health": {"pauses": 1}})
    assert data == {"health": {"pauses": 1}} == mem.control("e")
    got = mem.control("e")
    got["health"]["pauses"] = 9  # a copy: changing it changes nothing stored
    assert mem.control("e") == {"health": {"pauses": 1}}
