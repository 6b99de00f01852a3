"""The schedd's job queue store: submit, read back, query, counts, cluster ids, reopen."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gwms.pool.schedd.queue import JobQueue
from gwms.pool.schedd.queue_errors import (
    InvalidConstraintError,
    InvalidJobError,
    QueueError,
    QueueLockedError,
    QueueSchemaError,
)
from gwms.pool.schedd.queue_schema import SCHEMA_VERSION


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def job(**attrs: Any) -> dict[str, Any]:
    ad: dict[str, Any] = {
        "Cmd": "/bin/sleep",
        "Arguments": "60",
        "RequestMemory": 1024,
        "Requirements": '/Expr(TARGET.OpSys == "LINUX" && TARGET.Memory >= RequestMemory)/',
    }
    ad.update(attrs)
    return ad


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def queue(tmp_path: Path, clock: FakeClock) -> JobQueue:
    q = JobQueue.open(tmp_path / "queue.db", clock=clock)
    yield q
    q.close()


def all_rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# ---------------------------------------------------------------- submit and read back


def test_submit_assigns_ids_and_hot_attributes(queue: JobQueue, clock: FakeClock) -> None:
    cluster = queue.submit([job(Arguments="1"), job(Arguments="2")], "alice")
    ad = queue.get(cluster, 1)
    assert ad is not None
    assert ad["ClusterId"] == cluster
    assert ad["ProcId"] == 1
    assert ad["Owner"] == "alice"
    assert ad["JobStatus"] == 1
    assert ad["QDate"] == int(clock.now)
    assert ad["EnteredCurrentStatus"] == int(clock.now)
    assert ad["Arguments"] == "2"
    assert ad["Requirements"] == job()["Requirements"]
    assert queue.get(cluster, 2) is None


def test_submit_does_not_modify_the_callers_ads(queue: JobQueue) -> None:
    ads = [job(Owner="mallory", ClusterId=77)]
    queue.submit(ads, "alice")
    assert ads == [job(Owner="mallory", ClusterId=77)]


def test_queue_sets_owner_and_ids_whatever_the_ad_says(queue: JobQueue) -> None:
    cluster = queue.submit([job(owner="mallory", CLUSTERID=77, procid=9)], "alice")
    ad = queue.get(cluster, 0)
    assert ad is not None
    assert (ad["ClusterId"], ad["ProcId"], ad["Owner"]) == (cluster, 0, "alice")
    lowered = [key.lower() for key in ad]
    assert lowered.count("owner") == 1 and lowered.count("clusterid") == 1


def test_cluster_ids_are_monotonic_and_survive_restart(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with JobQueue.open(path) as q:
        first = q.submit([job()], "alice")
        reserved = q.new_cluster_id()
        second = q.submit([job()], "alice")
    with JobQueue.open(path) as q:
        third = q.submit([job()], "alice")
        assert first < reserved < second < third
        assert q.get(first, 0) is not None


def test_submit_into_a_reserved_cluster_id(queue: JobQueue) -> None:
    reserved = queue.new_cluster_id()
    later = queue.submit([job()], "bob")
    assert queue.submit([job(), job()], "alice", cluster_id=reserved) == reserved
    assert [a["ProcId"] for a in queue.query(owner="alice")] == [0, 1]
    with pytest.raises(QueueError, match="already has jobs"):
        queue.submit([job()], "alice", cluster_id=reserved)
    with pytest.raises(QueueError, match="not handed out"):
        queue.submit([job()], "alice", cluster_id=later + 5)


def test_failed_submit_stores_nothing_and_takes_no_cluster_id(
    queue: JobQueue, tmp_path: Path
) -> None:
    first = queue.submit([job()], "alice")
    good = [job(Arguments=str(i)) for i in range(1000)]
    bad = good[:500] + [job(Requirements="/Expr(Memory >= )/")] + good[500:]
    with pytest.raises(InvalidJobError) as info:
        queue.submit(bad, "alice")
    assert info.value.index == 500
    assert "Requirements" in str(info.value)
    assert all_rows(tmp_path / "queue.db", "jobs") == 1
    assert all_rows(tmp_path / "queue.db", "events") == 1
    assert queue.submit([job()], "alice") == first + 1


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"not an identifier": 1}, "not a valid attribute name"),
        ({"true": 1}, "not a valid attribute name"),
        ({"Cmd": "a", "CMD": "b"}, "given twice"),
        ({"X": float("nan")}, "finite"),
        ({"X": 1 << 70}, "64 bits"),
        ({"X": {1, 2}}, "not a JSON-form"),
        ({"X": b"bytes"}, "not a JSON-form"),
        ({"X": ["/Expr(((()/"]}, "not a valid ClassAd expression"),
        ({"X": "/Expr(1 +"}, "malformed expression"),
        ({"Nested": {"bad key": 1}}, "not a valid attribute name"),
        ({"JobStatus": 2}, r"idle \(1\) or held \(5\)"),
        ({"JobStatus": "1"}, "JobStatus must be an integer"),
    ],
)
def test_invalid_jobs_are_refused(queue: JobQueue, bad: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidJobError, match=message):
        queue.submit([job(), bad], "alice")
    assert queue.query() == []


def test_json_form_values_round_trip(queue: JobQueue) -> None:
    values = {
        "I": -5,
        "F": 2.5,
        "S": "text with \"quotes\" and unicode é",
        "B": False,
        "U": None,
        "L": [1, "two", None, "/Expr(a + b)/"],
        "Nested": {"Inner": 1, "E": "/Expr(x < 3)/"},
    }
    cluster = queue.submit([job(**values)], "alice")
    ad = queue.get(cluster, 0)
    assert ad is not None
    assert {k: ad[k] for k in values} == values
    tuple_cluster = queue.submit([job(T=(1, "/Expr(x)/"))], "alice")
    assert queue.get(tuple_cluster, 0)["T"] == [1, "/Expr(x)/"]  # type: ignore[index]


def test_submit_refuses_non_lists_and_empty_clusters(queue: JobQueue) -> None:
    with pytest.raises(InvalidJobError):
        queue.submit(job(), "alice")  # type: ignore[arg-type]
    with pytest.raises(InvalidJobError, match="at least one"):
        queue.submit([], "alice")
    with pytest.raises(InvalidJobError, match="must be an object"):
        queue.submit([job(), "Cmd = x"], "alice")  # type: ignore[list-item]
    with pytest.raises(QueueError, match="owner"):
        queue.submit([job()], "")


def test_submit_on_hold(queue: JobQueue) -> None:
    cluster = queue.submit([job(JobStatus=5), job(JobStatus=5, HoldReason="wait", HoldReasonCode=3)], "a")
    first, second = queue.get(cluster, 0), queue.get(cluster, 1)
    assert first is not None and second is not None
    assert (first["JobStatus"], first["HoldReasonCode"]) == (5, 15)
    assert (second["HoldReason"], second["HoldReasonCode"]) == ("wait", 3)
    assert [e.type for e in queue.events(cluster, 1)] == ["submit", "held"]
    assert queue.events(cluster, 1)[1].details["reason"] == "wait"


# ---------------------------------------------------------------- queries


@pytest.fixture()
def populated(queue: JobQueue) -> tuple[JobQueue, int, int]:
    a = queue.submit([job(RequestMemory=512 * (i + 1)) for i in range(4)], "alice")
    b = queue.submit([job(RequestMemory=100), job(RequestMemory=4000)], "bob")
    queue.hold([(a, 1), (b, 0)], "check input")
    queue.start(a, 2, remote_host="slot1@wn1", claim_id="<1.2.3.4>#1#1")
    return queue, a, b


def ids(ads: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [(ad["ClusterId"], ad["ProcId"]) for ad in ads]


def test_query_all_in_cluster_proc_order(populated: tuple[JobQueue, int, int]) -> None:
    queue, a, b = populated
    assert ids(queue.query()) == [(a, 0), (a, 1), (a, 2), (a, 3), (b, 0), (b, 1)]


def test_query_by_owner_status_and_constraint(populated: tuple[JobQueue, int, int]) -> None:
    queue, a, b = populated
    assert ids(queue.query(owner="bob")) == [(b, 0), (b, 1)]
    assert ids(queue.query(owner="carol")) == []
    assert ids(queue.query(owner="BOB")) == []  # the owner filter is exact
    assert ids(queue.query("JobStatus == 1")) == [(a, 0), (a, 3), (b, 1)]
    assert ids(queue.query("JobStatus == 1", owner="alice")) == [(a, 0), (a, 3)]
    assert ids(queue.query(status=[2, 5])) == [(a, 1), (a, 2), (b, 0)]
    assert ids(queue.query("RequestMemory > 1000 && JobStatus =!= 5")) == [(a, 2), (a, 3), (b, 1)]
    assert ids(queue.query('Owner == "ALICE" && ProcId >= 2')) == [(a, 2), (a, 3)]
    assert ids(queue.query('Owner =?= "ALICE"')) == []
    assert ids(queue.query("RemoteHost =?= \"slot1@wn1\"")) == [(a, 2)]
    assert ids(queue.query("HoldReason =!= undefined || RequestMemory == 100")) == [(a, 1), (b, 0)]
    assert ids(queue.query("true")) == ids(queue.query())


def test_query_projection_and_limit(populated: tuple[JobQueue, int, int]) -> None:
    queue, a, _ = populated
    rows = queue.query(projection=["procid", "REQUESTMEMORY", "NoSuchAttr"], owner="alice", limit=2)
    assert rows == [{"ProcId": 0, "RequestMemory": 512}, {"ProcId": 1, "RequestMemory": 1024}]
    hot_only = queue.query("JobStatus == 1", projection=["ClusterId", "ProcId"], limit=1)
    assert hot_only == [{"ClusterId": a, "ProcId": 0}]
    assert queue.query(limit=0) == []
    with pytest.raises(QueueError, match="limit"):
        queue.query(limit=-1)


def test_query_with_residual_constraint_respects_limit(populated: tuple[JobQueue, int, int]) -> None:
    queue, a, b = populated
    assert ids(queue.query("RequestMemory >= 1000", limit=2)) == [(a, 1), (a, 2)]


def test_bad_constraint_is_an_error(queue: JobQueue) -> None:
    queue.submit([job()], "alice")
    with pytest.raises(InvalidConstraintError):
        queue.query("JobStatus == ")


def test_iter_query_streams_a_snapshot(queue: JobQueue) -> None:
    cluster = queue.submit([job() for _ in range(5000)], "alice")
    stream = queue.iter_query(projection=["ProcId"])
    first = next(stream)
    queue.remove([(cluster, p) for p in range(5000)])
    rest = list(stream)
    assert first == {"ProcId": 0}
    assert len(rest) == 4999  # the snapshot taken at the first row
    assert queue.query() == []


def test_counts_by_status_and_owner(populated: tuple[JobQueue, int, int]) -> None:
    queue, _, _ = populated
    assert queue.counts_by_status() == {1: 3, 2: 1, 5: 2}
    assert queue.counts_by_status(owner="bob") == {1: 1, 2: 0, 5: 1}
    assert queue.counts_by_owner() == {"alice": {1: 2, 2: 1, 5: 1}, "bob": {1: 1, 2: 0, 5: 1}}


# ---------------------------------------------------------------- file handling


def test_file_is_wal_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with JobQueue.open(path):
        pass
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_second_open_is_refused_while_open(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with JobQueue.open(path):
        with pytest.raises(QueueLockedError):
            JobQueue.open(path)
    with JobQueue.open(path):
        pass


def test_newer_schema_and_foreign_files_are_refused(tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    with JobQueue.open(newer):
        pass
    with sqlite3.connect(newer) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(QueueSchemaError, match="upgrade"):
        JobQueue.open(newer)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(QueueSchemaError, match="not a gwms job queue"):
        JobQueue.open(other)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(QueueSchemaError):
        JobQueue.open(garbage)
    # A refused open leaves the queue free for a good one later.
    with pytest.raises(QueueSchemaError):
        JobQueue.open(garbage)


def test_closed_queue_refuses_work(tmp_path: Path) -> None:
    q = JobQueue.open(tmp_path / "q.db")
    q.close()
    q.close()
    with pytest.raises(QueueError, match="closed"):
        q.submit([job()], "alice")


def test_synchronous_mode_is_checked(tmp_path: Path) -> None:
    with pytest.raises(QueueError, match="synchronous"):
        JobQueue.open(tmp_path / "q.db", synchronous="OFF")  # type: ignore[arg-type]


def test_query_as_json_text_matches_the_dicts(populated: tuple[JobQueue, int, int]) -> None:
    queue, a, _ = populated
    for args in [(), ("JobStatus == 1",), ("RequestMemory > 1000",), (None, ["ProcId", "Owner"])]:
        texts = list(queue.iter_query_json(*args))
        assert [json.loads(t) for t in texts] == queue.query(*args)
    assert [json.loads(t) for t in queue.iter_query_json(limit=1, owner="bob")] == queue.query(owner="bob", limit=1)
    queue.remove([(a, 0), (a, 3)])
    assert [json.loads(t) for t in queue.iter_history_json()] == queue.history()
    assert [json.loads(t) for t in queue.iter_history_json(projection=["ProcId"], limit=1)] == [{"ProcId": 3}]


@pytest.mark.parametrize(
    ("constraint", "owner", "projection", "index"),
    [
        ("JobStatus == 1", None, None, "jobs_status"),
        ("JobStatus == 1", None, ["ClusterId", "ProcId"], "COVERING INDEX jobs_status"),
        (None, "alice", None, "jobs_owner (owner=?)"),
        ('Owner == "ALICE"', None, None, "jobs_owner (owner=?)"),
        ('Owner =?= "alice" && ProcId > 2', None, None, "jobs_owner (owner=?)"),
        ("JobStatus == 5", "alice", None, "jobs_owner_status"),
        ("ClusterId == 3 && ProcId == 0", None, None, "INTEGER PRIMARY KEY"),
    ],
)
def test_common_queries_use_an_index_and_no_sort(
    queue: JobQueue, constraint: str | None, owner: str | None, projection: list[str] | None, index: str
) -> None:
    """White-box: the SQL behind the common queries searches an index, in order, unsorted."""
    scan = queue._scan("jobs", "ORDER BY id", constraint, projection, owner, None, None)
    with sqlite3.connect(queue.path) as conn:
        plan = " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + scan.sql, scan.params))
    assert index in plan
    assert "TEMP B-TREE" not in plan and not plan.startswith("SCAN")


def test_owner_filter_is_exact_but_classad_equality_ignores_case(queue: JobQueue) -> None:
    upper = queue.submit([job()], "Alice")
    lower = queue.submit([job(), job()], "alice")
    assert ids(queue.query(owner="Alice")) == [(upper, 0)]
    assert ids(queue.query(owner="alice")) == [(lower, 0), (lower, 1)]
    assert ids(queue.query('Owner == "ALICE"')) == [(upper, 0), (lower, 0), (lower, 1)]
    assert ids(queue.query('Owner =?= "alice"')) == [(lower, 0), (lower, 1)]
    assert ids(queue.query('Owner != "alice"')) == []
    assert queue.counts_by_owner() == {"Alice": {1: 1, 2: 0, 5: 0}, "alice": {1: 2, 2: 0, 5: 0}}
    assert queue.counts_by_status(owner="Alice") == {1: 1, 2: 0, 5: 0}
    queue.remove([(lower, 0)])
    assert ids(queue.history(owner="ALICE")) == []
    assert ids(queue.history(owner="alice")) == [(lower, 0)]
