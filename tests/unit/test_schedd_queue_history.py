"""The queue's history (retention by count and age) and recovery after a restart."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gwms.pool.schedd.queue import HistoryRetention, JobQueue
from gwms.pool.schedd.queue_errors import QueueError

IDLE, RUNNING, REMOVED, COMPLETED, HELD = 1, 2, 3, 4, 5


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def job(**attrs: Any) -> dict[str, Any]:
    return {"Cmd": "/bin/true", **attrs}


def finish(queue: JobQueue, cluster: int, proc: int, exit_code: int = 0) -> None:
    assert queue.start(cluster, proc, remote_host="slot@wn", claim_id="c").ok
    assert queue.complete(cluster, proc, exit_code=exit_code).ok


def event_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]


# ---------------------------------------------------------------- history


def test_finished_jobs_move_to_history_newest_first(tmp_path: Path) -> None:
    clock = FakeClock()
    with JobQueue.open(tmp_path / "q.db", clock=clock) as queue:
        a = queue.submit([job(), job(), job()], "alice")
        b = queue.submit([job()], "bob")
        finish(queue, a, 1, exit_code=7)
        clock.now += 10
        queue.remove([(a, 0)], reason="not needed")
        clock.now += 10
        finish(queue, b, 0)
        assert [(ad["ClusterId"], ad["ProcId"]) for ad in queue.query()] == [(a, 2)]
        history = queue.history()
        assert [(ad["ClusterId"], ad["ProcId"], ad["JobStatus"]) for ad in history] == [
            (b, 0, COMPLETED),
            (a, 0, REMOVED),
            (a, 1, COMPLETED),
        ]
        assert history[1]["RemoveReason"] == "not needed"
        assert [ad["ProcId"] for ad in queue.history(owner="alice")] == [0, 1]
        assert queue.history("ExitCode == 7", projection=["ProcId"]) == [{"ProcId": 1}]
        assert queue.history("JobStatus == 3", projection=["ProcId"]) == [{"ProcId": 0}]
        assert len(queue.history(limit=2)) == 2
        # get() finds a job wherever it is
        ad = queue.get(a, 1)
        assert ad is not None and ad["ExitCode"] == 7
        # history jobs are not counted as queued
        assert queue.counts_by_status() == {IDLE: 1, RUNNING: 0, HELD: 0}


def test_retention_by_count_prunes_oldest_and_their_events(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "q.db"
    with JobQueue.open(path, clock=clock, history_retention=2) as queue:
        cluster = queue.submit([job() for _ in range(4)], "alice")
        for proc in range(4):
            clock.now += 1
            queue.remove([(cluster, proc)])
        before = event_rows(path)
        assert queue.prune_history() == 2
        assert [ad["ProcId"] for ad in queue.history()] == [3, 2]
        assert queue.events(cluster, 0) == [] and queue.events(cluster, 1) == []
        assert [e.type for e in queue.events(cluster, 3)] == ["submit", "removed"]
        assert event_rows(path) == before - 4
        assert queue.prune_history() == 0


def test_retention_by_age(tmp_path: Path) -> None:
    clock = FakeClock()
    with JobQueue.open(tmp_path / "q.db", clock=clock, history_retention=timedelta(hours=1)) as queue:
        cluster = queue.submit([job(), job(), job()], "alice")
        queue.remove([(cluster, 0)])
        clock.now += 1800
        queue.remove([(cluster, 1)])
        clock.now += 1801
        assert queue.prune_history() == 1
        assert [ad["ProcId"] for ad in queue.history()] == [1]
        # queued jobs are never pruned, however old
        assert [ad["ProcId"] for ad in queue.query()] == [2]
        assert queue.prune_history(now=clock.now + 1800) == 1
        assert queue.history() == []


def test_retention_by_count_and_age(tmp_path: Path) -> None:
    clock = FakeClock()
    retention = HistoryRetention(max_count=3, max_age=timedelta(seconds=100))
    with JobQueue.open(tmp_path / "q.db", clock=clock, history_retention=retention) as queue:
        cluster = queue.submit([job() for _ in range(6)], "alice")
        for proc in range(6):
            clock.now += 30
            queue.remove([(cluster, proc)])
        # ages 150, 120, 90, 60, 30, 0 s: age drops procs 0 and 1, count drops proc 2
        assert queue.prune_history() == 3
        assert [ad["ProcId"] for ad in queue.history()] == [5, 4, 3]


def test_no_retention_keeps_everything(tmp_path: Path) -> None:
    clock = FakeClock()
    with JobQueue.open(tmp_path / "q.db", clock=clock) as queue:
        cluster = queue.submit([job(), job()], "alice")
        queue.remove([(cluster, 0), (cluster, 1)])
        clock.now += 10**8
        assert queue.prune_history() == 0
        assert len(queue.history()) == 2


@pytest.mark.parametrize("bad", [-1, "10", 1.5, True])
def test_bad_retention_is_refused(tmp_path: Path, bad: object) -> None:
    with pytest.raises(QueueError, match="retention"):
        JobQueue.open(tmp_path / "q.db", history_retention=bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------- recovery


def test_recover_sets_running_jobs_back_to_idle(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "q.db"
    with JobQueue.open(path, clock=clock) as queue:
        cluster = queue.submit([job() for _ in range(4)], "alice")
        queue.start(cluster, 0, remote_host="slot1@wn1", claim_id="alive")
        queue.start(cluster, 1, remote_host="slot2@wn1", claim_id="dead")
        queue.start(cluster, 2, remote_host="slot3@wn1", claim_id="dead")
        queue.hold([(cluster, 3)], "x")
    # the schedd "crashed"; a new one opens the queue
    clock.now += 100
    with JobQueue.open(path, clock=clock) as queue:
        seen: list[str] = []

        def claim_alive(ad: dict[str, Any]) -> bool:
            seen.append(ad["ClaimId"])
            return ad["ClaimId"] == "alive"

        report = queue.recover(claim_alive=claim_alive)
        assert (report.running, report.evicted, report.kept) == (3, 2, 1)
        assert sorted(seen) == ["alive", "dead", "dead"]
        statuses = {ad["ProcId"]: ad["JobStatus"] for ad in queue.query()}
        assert statuses == {0: RUNNING, 1: IDLE, 2: IDLE, 3: HELD}
        last = queue.events(cluster, 1)[-1]
        assert (last.type, last.details, last.time) == ("evicted", {"reason": "schedd restarted"}, clock.now)
        assert queue.get(cluster, 1)["LastRemoteHost"] == "slot2@wn1"  # type: ignore[index]
        # without a callback every running job goes back to idle; a second pass finds none
        assert queue.recover().evicted == 1
        assert queue.recover().running == 0


def test_recover_with_failing_callback_changes_nothing(tmp_path: Path) -> None:
    with JobQueue.open(tmp_path / "q.db") as queue:
        cluster = queue.submit([job()], "alice")
        queue.start(cluster, 0, remote_host="h", claim_id="c")

        def broken(ad: dict[str, Any]) -> bool:
            raise RuntimeError("startd unreachable")

        with pytest.raises(RuntimeError):
            queue.recover(claim_alive=broken)
        assert queue.get(cluster, 0)["JobStatus"] == RUNNING  # type: ignore[index]
