"""Job status changes in the queue: legal transitions, per-job results, events, qedit.

The state machine test drives the real queue and a plain dict model side by side and
checks after every step that the queue's statuses, counts, history and event logs agree
with the model's.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gwms.pool.schedd.queue import JobQueue
from gwms.pool.schedd.queue_errors import InvalidJobError, QueueError, TransitionError
from gwms.pool.schedd.queue_events import JobEventType
from gwms.pool.schedd.queue_transitions import transition_event

IDLE, RUNNING, REMOVED, COMPLETED, HELD = 1, 2, 3, 4, 5

# The model's own table: (from, to) -> event logged. Everything else is refused.
LEGAL = {
    (IDLE, RUNNING): "execute",
    (IDLE, HELD): "held",
    (IDLE, REMOVED): "removed",
    (RUNNING, IDLE): "evicted",
    (RUNNING, HELD): "held",
    (RUNNING, REMOVED): "removed",
    (RUNNING, COMPLETED): "terminated",
    (HELD, IDLE): "released",
    (HELD, REMOVED): "removed",
}
STATUSES = (IDLE, RUNNING, REMOVED, COMPLETED, HELD)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def queue(tmp_path: Path, clock: FakeClock) -> JobQueue:
    q = JobQueue.open(tmp_path / "queue.db", clock=clock)
    yield q
    q.close()


def job(**attrs: Any) -> dict[str, Any]:
    return {"Cmd": "/bin/true", **attrs}


# ---------------------------------------------------------------- the pure decision


@pytest.mark.parametrize("current", STATUSES)
@pytest.mark.parametrize("target", STATUSES)
def test_transition_table(current: int, target: int) -> None:
    expected = LEGAL.get((current, target))
    if expected is None:
        with pytest.raises(TransitionError):
            transition_event(current, target)
    else:
        assert transition_event(current, target) == JobEventType(expected)


@pytest.mark.parametrize(
    ("current", "target", "message"),
    [
        (IDLE, IDLE, "job is not held"),
        (COMPLETED, REMOVED, "job is already completed"),
        (REMOVED, IDLE, "job is already removed"),
        (HELD, HELD, "job is already held"),
        (IDLE, COMPLETED, "job is not running"),
        (IDLE, 7, "unsupported job status 7"),
    ],
)
def test_refusals_say_why(current: int, target: int, message: str) -> None:
    with pytest.raises(TransitionError, match=message):
        transition_event(current, target)


# ---------------------------------------------------------------- set_status details


def test_hold_and_release_keep_the_reasons(queue: JobQueue, clock: FakeClock) -> None:
    cluster = queue.submit([job(), job()], "alice")
    clock.now += 5
    results = queue.hold([(cluster, 0), (cluster, 1)], "input missing", code=13, subcode=2)
    assert [r.ok for r in results] == [True, True]
    ad = queue.get(cluster, 0)
    assert ad is not None
    assert (ad["JobStatus"], ad["HoldReason"], ad["HoldReasonCode"], ad["HoldReasonSubCode"]) == (
        HELD,
        "input missing",
        13,
        2,
    )
    assert ad["EnteredCurrentStatus"] == int(clock.now)
    assert ad["NumHolds"] == 1
    clock.now += 5
    assert queue.release([(cluster, 0)], reason="fixed")[0].ok
    ad = queue.get(cluster, 0)
    assert ad is not None
    assert ad["JobStatus"] == IDLE
    assert "HoldReason" not in ad and "HoldReasonSubCode" not in ad
    assert (ad["LastHoldReason"], ad["LastHoldReasonCode"], ad["ReleaseReason"]) == (
        "input missing",
        13,
        "fixed",
    )
    events = queue.events(cluster, 0)
    assert [e.type for e in events] == ["submit", "held", "released"]
    assert events[1].details == {"reason": "input missing", "code": 13, "subcode": 2}
    assert events[2].details == {"reason": "fixed"}
    assert [e.time for e in events] == [clock.now - 10, clock.now - 5, clock.now]


def test_run_evict_and_complete(queue: JobQueue, clock: FakeClock) -> None:
    cluster = queue.submit([job()], "alice")
    assert queue.start(cluster, 0, remote_host="slot1@wn1", claim_id="<10.0.0.1:9618>#1").ok
    ad = queue.get(cluster, 0)
    assert ad is not None
    assert (ad["JobStatus"], ad["RemoteHost"], ad["NumJobStarts"]) == (RUNNING, "slot1@wn1", 1)
    assert queue.evict([(cluster, 0)], reason="claim lost")[0].ok
    ad = queue.get(cluster, 0)
    assert ad is not None
    assert ad["JobStatus"] == IDLE and "RemoteHost" not in ad and "ClaimId" not in ad
    assert ad["LastRemoteHost"] == "slot1@wn1"
    assert queue.start(cluster, 0, remote_host="slot2@wn2", claim_id="c2").ok
    clock.now += 60
    done = queue.complete(cluster, 0, exit_code=2, attrs={"RemoteWallClockTime": 60.0})
    assert done.ok
    assert queue.query() == []
    (ad,) = queue.history()
    assert (ad["JobStatus"], ad["ExitCode"], ad["RemoteWallClockTime"]) == (COMPLETED, 2, 60.0)
    assert ad["NumJobStarts"] == 2 and ad["CompletionDate"] == int(clock.now)
    assert [e.type for e in queue.events(cluster, 0)] == [
        "submit",
        "execute",
        "evicted",
        "execute",
        "terminated",
    ]
    assert queue.events(cluster, 0)[-1].details == {"exit_code": 2}
    # The claim id is a capability: the event log does not carry it.
    assert "c2" not in json.dumps([e.as_dict() for e in queue.events(cluster, 0)])


def test_results_are_per_job_and_in_order(queue: JobQueue) -> None:
    cluster = queue.submit([job(), job(JobStatus=HELD), job()], "alice")
    queue.start(cluster, 2, remote_host="h", claim_id="c")
    queue.complete(cluster, 2, exit_code=0)
    results = queue.release([(cluster, 0), (cluster, 1), (cluster, 2), (cluster, 9), (0, 0)])
    assert [(r.proc, r.error) for r in results] == [
        (0, "job is not held"),
        (1, None),
        (2, "job is already completed"),
        (9, "no such job"),
        (0, "no such job"),
    ]
    removed = queue.remove([(cluster, 2), (cluster, 0), (cluster, 0)])
    assert [r.error for r in removed] == ["job is already completed", None, "job is already removed"]


def test_release_and_evict_only_touch_their_own_jobs(queue: JobQueue) -> None:
    cluster = queue.submit([job(), job(JobStatus=HELD)], "alice")
    queue.start(cluster, 0, remote_host="h", claim_id="c")
    assert [r.error for r in queue.release([(cluster, 0), (cluster, 1)])] == ["job is not held", None]
    assert queue.get(cluster, 0)["JobStatus"] == RUNNING  # type: ignore[index]
    queue.hold([(cluster, 1)], "again")
    assert [r.error for r in queue.evict([(cluster, 0), (cluster, 1)])] == [None, "job is not running"]
    assert queue.get(cluster, 1)["JobStatus"] == HELD  # type: ignore[index]


def test_status_change_arguments_are_checked(queue: JobQueue) -> None:
    cluster = queue.submit([job()], "alice")
    ids = [(cluster, 0)]
    with pytest.raises(QueueError, match="RemoteHost"):
        queue.set_status(ids, RUNNING, attrs={"ClaimId": "c"})
    with pytest.raises(QueueError, match="ExitCode"):
        queue.set_status(ids, COMPLETED)
    with pytest.raises(QueueError, match="reason"):
        queue.set_status(ids, HELD)
    with pytest.raises(QueueError, match="maintained by the schedd"):
        queue.set_status(ids, HELD, reason="x", attrs={"owner": "mallory"})
    with pytest.raises(QueueError, match="unsupported"):
        queue.set_status(ids, 7)
    with pytest.raises(QueueError, match="pair of ints"):
        queue.set_status([cluster], REMOVED)  # type: ignore[list-item]
    assert queue.get(cluster, 0)["JobStatus"] == IDLE  # type: ignore[index]


def test_failed_ids_do_not_undo_the_others(queue: JobQueue) -> None:
    cluster = queue.submit([job(), job()], "alice")
    results = queue.hold([(cluster, 0), (cluster, 5), (cluster, 1)], "x")
    assert [r.ok for r in results] == [True, False, True]
    assert queue.counts_by_status() == {IDLE: 0, RUNNING: 0, HELD: 2}


# ---------------------------------------------------------------- edit


def test_edit_sets_attribute_and_logs(queue: JobQueue) -> None:
    cluster = queue.submit([job(requestmemory=100), job()], "alice")
    results = queue.edit([(cluster, 0), (cluster, 1)], "RequestMemory", 4096)
    assert all(r.ok for r in results)
    ad = queue.get(cluster, 0)
    assert ad is not None
    assert ad["RequestMemory"] == 4096 and "requestmemory" not in ad
    assert queue.events(cluster, 1)[-1].type == "edited"
    assert queue.events(cluster, 1)[-1].details == {"attr": "RequestMemory", "value": 4096}
    queue.edit([(cluster, 1)], "Requirements", "/Expr(RequestMemory > 5)/")
    assert queue.get(cluster, 1)["Requirements"] == "/Expr(RequestMemory > 5)/"  # type: ignore[index]
    # Stored as an expression, not a string: a constraint can evaluate it.
    assert queue.query("Requirements", projection=["ProcId"]) == [{"ProcId": 1}]


@pytest.mark.parametrize("attr", ["ClusterId", "ProcId", "Owner", "JobStatus", "jobstatus", "QDate"])
def test_edit_refuses_maintained_attributes(queue: JobQueue, attr: str) -> None:
    cluster = queue.submit([job()], "alice")
    with pytest.raises(QueueError, match="cannot be edited"):
        queue.edit([(cluster, 0)], attr, 3)


def test_edit_refuses_bad_values_and_finished_jobs(queue: JobQueue) -> None:
    cluster = queue.submit([job(), job()], "alice")
    with pytest.raises(InvalidJobError):
        queue.edit([(cluster, 0)], "X", "/Expr(1 +)/")
    with pytest.raises(QueueError, match="attribute name"):
        queue.edit([(cluster, 0)], "not valid", 1)
    queue.remove([(cluster, 1)])
    results = queue.edit([(cluster, 0), (cluster, 1)], "X", 1)
    assert [r.error for r in results] == [None, "job is already removed"]


def test_events_export_as_json_lines(queue: JobQueue) -> None:
    a = queue.submit([job(), job()], "alice")
    b = queue.submit([job()], "bob")
    queue.hold([(b, 0)], "because")
    out = io.StringIO()
    assert queue.export_events(out) == 4
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(ln["cluster"], ln["proc"], ln["type"]) for ln in lines] == [
        (a, 0, "submit"),
        (a, 1, "submit"),
        (b, 0, "submit"),
        (b, 0, "held"),
    ]
    assert lines[3]["details"]["reason"] == "because"
    one = io.StringIO()
    assert queue.export_events(one, cluster=a) == 2
    assert queue.export_events(io.StringIO(), cluster=a, proc=1) == 1
    assert queue.events(a, 7) == []


# ---------------------------------------------------------------- the state machine


class QueueTransitions(RuleBasedStateMachine):
    """The real queue against a dict model of statuses and event logs."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="gwms-queue-")
        self.clock = FakeClock()
        self.queue = JobQueue.open(Path(self.dir) / "q.db", clock=self.clock)
        self.status: dict[tuple[int, int], int] = {}
        self.log: dict[tuple[int, int], list[str]] = {}
        self.entered: dict[tuple[int, int], int] = {}

    def teardown(self) -> None:
        self.queue.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def known(self) -> list[tuple[int, int]]:
        return sorted(self.status)

    @rule(size=st.integers(1, 3), held=st.booleans())
    def submit(self, size: int, held: bool) -> None:
        self.clock.now += 1
        extra = {"JobStatus": HELD} if held else {}
        cluster = self.queue.submit([job(**extra) for _ in range(size)], "alice")
        for proc in range(size):
            self.status[(cluster, proc)] = HELD if held else IDLE
            self.log[(cluster, proc)] = ["submit", "held"] if held else ["submit"]
            self.entered[(cluster, proc)] = int(self.clock.now)

    @rule(
        target_status=st.sampled_from(STATUSES),
        picks=st.lists(st.integers(0, 40), max_size=4),
        unknown=st.booleans(),
    )
    def change(self, target_status: int, picks: list[int], unknown: bool) -> None:
        known = self.known()
        chosen = [known[i % len(known)] for i in picks] if known else []
        if unknown:
            chosen.append((999_999, 0))
        self.clock.now += 1
        kwargs: dict[str, Any] = {}
        if target_status == RUNNING:
            kwargs["attrs"] = {"RemoteHost": "slot1@wn", "ClaimId": "claim"}
        elif target_status == COMPLETED:
            kwargs["attrs"] = {"ExitCode": 0}
        elif target_status == HELD:
            kwargs["reason"] = "test hold"
        results = self.queue.set_status(chosen, target_status, **kwargs)
        assert len(results) == len(chosen)
        for jid, result in zip(chosen, results):
            current = self.status.get(jid)
            event = None if current is None else LEGAL.get((current, target_status))
            assert result.ok == (event is not None), (jid, current, target_status, result)
            if event is not None:
                self.status[jid] = target_status
                self.log[jid].append(event)
                self.entered[jid] = int(self.clock.now)

    @rule(picks=st.lists(st.integers(0, 40), min_size=1, max_size=3), value=st.integers())
    def edit(self, picks: list[int], value: int) -> None:
        known = self.known()
        if not known:
            return
        chosen = [known[i % len(known)] for i in picks]
        results = self.queue.edit(chosen, "Tag", value % 1000)
        for jid, result in zip(chosen, results):
            in_queue = self.status[jid] in (IDLE, RUNNING, HELD)
            assert result.ok == in_queue
            if in_queue:
                self.log[jid].append("edited")

    @rule()
    def reopen(self) -> None:
        self.queue.close()
        self.queue = JobQueue.open(Path(self.dir) / "q.db", clock=self.clock)

    @invariant()
    def queue_matches_model(self) -> None:
        queued = {
            (ad["ClusterId"], ad["ProcId"]): (ad["JobStatus"], ad["EnteredCurrentStatus"])
            for ad in self.queue.query()
        }
        expected = {
            jid: (s, self.entered[jid]) for jid, s in self.status.items() if s in (IDLE, RUNNING, HELD)
        }
        assert queued == expected
        history = {(ad["ClusterId"], ad["ProcId"]): ad["JobStatus"] for ad in self.queue.history()}
        assert history == {jid: s for jid, s in self.status.items() if s in (REMOVED, COMPLETED)}

    @invariant()
    def counts_match_model(self) -> None:
        counts = {IDLE: 0, RUNNING: 0, HELD: 0}
        for s in self.status.values():
            if s in counts:
                counts[s] += 1
        assert self.queue.counts_by_status() == counts
        assert self.queue.counts_by_status(owner="alice") == counts

    @invariant()
    def event_logs_match_model(self) -> None:
        for jid, expected in self.log.items():
            assert [e.type for e in self.queue.events(*jid)] == expected


QueueTransitions.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestQueueTransitions = QueueTransitions.TestCase
