"""The schedd's durable job queue: job ads in SQLite, every change one committed transaction.

:class:`JobQueue` is the storage engine under the schedd service. Jobs are JSON-form ads
(see docs/contracts.md). What it keeps:

- the queue (jobs that are idle, running or held): each ad as JSON text, with the hot
  attributes ClusterId, ProcId, Owner, JobStatus, QDate and EnteredCurrentStatus
  mirrored in indexed columns; the ads live in SQLite, not in Python memory;
- the history (completed and removed jobs move there), pruned by count and/or age;
- a per-job event log (submit, execute, evicted, held, released, terminated, removed,
  edited), written in the same transaction as the change it records.

Durability. The file is in WAL mode and every public operation that changes anything is
one transaction, committed before the method returns: a returned ``submit`` is an
acknowledged submit. The requirement is surviving ``kill -9`` of the schedd process.
Once SQLite's COMMIT returns, the WAL frames have been handed to the kernel with
``write()``; a killed process cannot lose them, and the next open replays the WAL. That
holds with ``synchronous=NORMAL`` already. ``synchronous=FULL`` (the default here)
additionally ``fsync``\\ s the WAL at each commit, so an acknowledged submit also survives
power loss or a kernel crash; it costs one fsync per transaction, which a batch submit
pays once for the whole cluster. ``JobQueue.open(..., synchronous="NORMAL")`` drops it.

Concurrency. One process owns a queue file (an exclusive ``flock`` on ``<path>.lock``;
a second open raises :class:`QueueLockedError`). Within the process, writes are
serialized by a lock; ``query``/``iter_query*``/``history``/``iter_events`` read through
their own short-lived connection, so a long query sees one consistent snapshot and does
not block submits.

Speed (benchmarks/bench_schedd_queue.py): a 100,000-job submit is one ``executemany``
in one transaction, with attribute names checked once per distinct name list and
expressions parsed once per distinct text; reads decode with orjson, answer
hot-attribute conditions from indexes (see :mod:`gwms.pool.schedd.queue_constraint`),
and :meth:`JobQueue.iter_query_json` hands out the stored JSON text without decoding.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple, TextIO

from gwms.pool import jobattrs as A
from gwms.pool.schedd.queue_ads import (
    ENTERED_CURRENT_STATUS,
    HOT_ATTRS,
    HOT_ATTRS_LOWER,
    JOB_STATUS,
    AdValidator,
    CaseBlindAd,
    decode_json,
    encode_json,
    find_key,
    get_attr,
    is_attr_name,
    new_ad,
)
from gwms.pool.schedd.queue_constraint import compile_job_constraint, plan_constraint
from gwms.pool.schedd.queue_errors import (
    InvalidJobError,
    QueueError,
    QueueLockedError,
    QueueSchemaError,
    TransitionError,
)
from gwms.pool.schedd.queue_events import JobEvent, JobEventType
from gwms.pool.schedd.queue_schema import (
    MAX_CLUSTER_ID,
    MAX_PROCS,
    ensure_schema,
    job_key,
    split_key,
)
from gwms.pool.schedd.queue_transitions import (
    COMPLETED,
    FINAL_STATUSES,
    HELD,
    IDLE,
    QUEUED_STATUSES,
    REMOVED,
    RUNNING,
    STATUS_NAMES,
    status_name,
    transition_event,
)

JobId = tuple[int, int]

# Attributes the queue writes that gwms.pool.jobattrs does not name (yet).
CLAIM_ID = "ClaimId"
LAST_REMOTE_HOST = "LastRemoteHost"
LAST_HOLD_REASON = "LastHoldReason"
LAST_HOLD_REASON_CODE = "LastHoldReasonCode"
NUM_HOLDS = "NumHolds"

_FETCH = 2000
_BATCH = 1000
_RECOVERY_BATCH = 10_000
_COLUMNS = "cluster, proc, owner, status, qdate, entered"
_HISTORY_ORDER = "ORDER BY entered DESC, id DESC"
_ID_ATTRS = frozenset({"clusterid", "procid"})


@dataclass(frozen=True)
class _Scan:
    """A planned read: the SQL, and what to do with each row it returns."""

    sql: str
    params: tuple[Any, ...]
    predicate: Callable[[Mapping[str, Any]], bool] | None
    wanted: set[str] | None
    need_ad: bool
    limit: int | None


@dataclass(frozen=True)
class HistoryRetention:
    """How much history :meth:`JobQueue.prune_history` keeps: at most ``max_count`` jobs
    and none older than ``max_age`` (measured from when the job left the queue).
    ``None`` means no limit of that kind."""

    max_count: int | None = None
    max_age: timedelta | None = None

    @classmethod
    def of(cls, value: HistoryRetention | timedelta | int | None) -> HistoryRetention:
        """Accept a retention, a :class:`timedelta` (by age), an int (by count) or ``None``."""
        if value is None:
            return cls()
        if isinstance(value, HistoryRetention):
            return value
        if isinstance(value, timedelta):
            return cls(max_age=value)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return cls(max_count=value)
        raise QueueError(f"history retention must be a count >= 0 or a timedelta, not {value!r}")


class ActionResult(NamedTuple):
    """What happened to one job of a batch action: ``error`` is ``None`` when it was done.

    (A named tuple: batches of 100,000 results are made quickly.)
    """

    cluster: int
    proc: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the action was applied to this job."""
        return self.error is None


@dataclass(frozen=True)
class RecoveryReport:
    """The outcome of :meth:`JobQueue.recover`: jobs found running, set back to idle, kept."""

    running: int
    evicted: int
    kept: int


class JobQueue:
    """The schedd's job queue in one SQLite file. Create it with :meth:`JobQueue.open`."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        lock_fd: int,
        retention: HistoryRetention,
        clock: Callable[[], float],
    ) -> None:
        """Use :meth:`JobQueue.open`; this wires an already opened connection."""
        self._path = path
        self._db: sqlite3.Connection | None = conn
        self._lock_fd = lock_fd
        self._lock = threading.RLock()
        self.retention = retention
        self._clock = clock

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        history_retention: HistoryRetention | timedelta | int | None = None,
        clock: Callable[[], float] = time.time,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        cache_mb: int = 64,
    ) -> JobQueue:
        """Open (creating if needed) the queue at ``path``.

        ``history_retention`` bounds the history (an int: by count, a timedelta: by age,
        or a :class:`HistoryRetention` for both); ``clock`` gives seconds since the epoch;
        ``synchronous`` is the WAL commit mode (see the module docstring); ``cache_mb``
        bounds SQLite's page cache. Raises :class:`QueueLockedError` if another process
        has the queue open and :class:`QueueSchemaError` for a file that is not a queue
        of this version.
        """
        if synchronous not in ("FULL", "NORMAL"):
            raise QueueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        retention = HistoryRetention.of(history_retention)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise QueueLockedError(f"job queue {path} is already open in this or another process") from None
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise QueueSchemaError(f"{path}: SQLite refused WAL mode (got {mode})")
                conn.execute(f"PRAGMA synchronous = {synchronous}")
                conn.execute("PRAGMA busy_timeout = 10000")
                conn.execute(f"PRAGMA cache_size = {-1024 * max(1, cache_mb)}")
                conn.execute("PRAGMA journal_size_limit = 67108864")
                ensure_schema(conn, str(path))
            except sqlite3.DatabaseError as exc:
                conn.close()
                raise QueueSchemaError(f"{path} is not a job queue: {exc}") from exc
            except BaseException:
                conn.close()
                raise
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(path, conn, lock_fd, retention, clock)

    @property
    def path(self) -> Path:
        """The queue's SQLite file."""
        return self._path

    def close(self) -> None:
        """Close the file and release the lock (idempotent)."""
        with self._lock:
            if self._db is None:
                return
            self._db.close()
            self._db = None
            os.close(self._lock_fd)

    def __enter__(self) -> JobQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise QueueError(f"job queue {self._path} is closed")
        return self._db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed on success and rolled back on any exception."""
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """A private read-only connection: a consistent snapshot that does not block writes."""
        self._conn()
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.execute("BEGIN")  # one snapshot for the whole read
            yield conn
        finally:
            conn.close()

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else float(now)

    # ------------------------------------------------------------------ cluster ids, submit

    def new_cluster_id(self) -> int:
        """Hand out a fresh cluster id (monotonic across restarts) for a later ``submit``."""
        with self._write() as db:
            return self._take_cluster_id(db)

    @staticmethod
    def _take_cluster_id(db: sqlite3.Connection) -> int:
        cluster = int(db.execute("SELECT value FROM meta WHERE key = 'next_cluster_id'").fetchone()[0])
        if cluster > MAX_CLUSTER_ID:
            raise QueueError("the queue has run out of cluster ids")
        db.execute("UPDATE meta SET value = ? WHERE key = 'next_cluster_id'", (cluster + 1,))
        return cluster

    def submit(
        self,
        jobs: Sequence[Mapping[str, Any]],
        owner: str,
        *,
        cluster_id: int | None = None,
    ) -> int:
        """Queue ``jobs`` as one new cluster owned by ``owner``; return the cluster id.

        All or nothing: if any job is invalid (:class:`InvalidJobError` names it), nothing
        is stored. Job ``i`` of the list becomes proc ``i``. ClusterId, ProcId, Owner,
        QDate and EnteredCurrentStatus are set by the queue (values in the ads are
        replaced); JobStatus may be given as 1 (idle, the default) or 5 (held: submitted
        on hold, HoldReasonCode 15 unless the ad says otherwise). ``cluster_id`` uses an id
        from :meth:`new_cluster_id` (for submit files that expand ``$(Cluster)``) instead
        of taking a new one. The commit is done when this returns.
        """
        if not isinstance(owner, str) or not owner.strip():
            raise QueueError("a job owner must be a non-empty string")
        if isinstance(jobs, (str, bytes, Mapping)) or not isinstance(jobs, Sequence):
            raise InvalidJobError("submit takes a list of job ads")
        count = len(jobs)
        if count == 0:
            raise InvalidJobError("a cluster needs at least one job")
        if count > MAX_PROCS:
            raise InvalidJobError(f"a cluster holds at most {MAX_PROCS} jobs, not {count}")
        now = self._clock()
        qdate = int(now)
        validator = AdValidator()
        held_events: list[tuple[int, float, str, str]] = []

        with self._write() as db:
            cluster = self._claim_cluster(db, cluster_id)
            base = job_key(cluster, 0)

            def rows() -> Iterator[tuple[Any, ...]]:
                for proc, job in enumerate(jobs):
                    stored = new_ad(cluster, proc, owner, IDLE, qdate)
                    status = validator.fill(job, stored, proc)
                    if status is None:
                        status = IDLE
                    elif status == HELD:
                        stored[JOB_STATUS] = HELD
                        details = _submitted_on_hold(stored)
                        held_events.append((base + proc, now, JobEventType.HELD.value, encode_json(details)))
                    elif status != IDLE:
                        raise InvalidJobError(
                            f"a new job is idle (1) or held (5), not JobStatus {status}", index=proc
                        )
                    yield (base + proc, cluster, proc, owner, status, qdate, qdate, encode_json(stored))

            db.executemany("INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows())
            db.execute(
                "INSERT INTO events (job, time, type) SELECT id, ?, ? FROM jobs WHERE id BETWEEN ? AND ?",
                (now, JobEventType.SUBMIT.value, base, base + count - 1),
            )
            if held_events:
                db.executemany(
                    "INSERT INTO events (job, time, type, details) VALUES (?, ?, ?, ?)", held_events
                )
        return cluster

    def _claim_cluster(self, db: sqlite3.Connection, cluster_id: int | None) -> int:
        if cluster_id is None:
            return self._take_cluster_id(db)
        next_id = int(db.execute("SELECT value FROM meta WHERE key = 'next_cluster_id'").fetchone()[0])
        if type(cluster_id) is not int or not 1 <= cluster_id < next_id:
            raise QueueError(f"cluster {cluster_id!r} was not handed out by new_cluster_id()")
        low, high = job_key(cluster_id, 0), job_key(cluster_id, MAX_PROCS - 1)
        for table in ("jobs", "history"):
            hit = db.execute(f"SELECT 1 FROM {table} WHERE id BETWEEN ? AND ? LIMIT 1", (low, high))
            if hit.fetchone() is not None:
                raise QueueError(f"cluster {cluster_id} already has jobs")
        return cluster_id

    # ------------------------------------------------------------------ reading

    def get(self, cluster: int, proc: int) -> dict[str, Any] | None:
        """The ad of job ``cluster.proc`` from the queue, else from the history, else ``None``."""
        if not _valid_id(cluster, proc):
            return None
        key = job_key(cluster, proc)
        with self._lock:
            db = self._conn()
            for table in ("jobs", "history"):
                row = db.execute(f"SELECT ad FROM {table} WHERE id = ?", (key,)).fetchone()
                if row is not None:
                    return decode_json(row[0])
        return None

    def query(
        self,
        constraint: str | None = None,
        projection: Sequence[str] | None = None,
        owner: str | None = None,
        limit: int | None = None,
        *,
        status: int | Iterable[int] | None = None,
    ) -> list[dict[str, Any]]:
        """Queued jobs (in (cluster, proc) order) matching all the filters given.

        ``constraint`` is ClassAd text evaluated on each ad (comparisons of hot attributes
        with literals are answered from indexed columns); ``projection`` lists the
        attributes to return (any case; missing ones are left out); ``owner`` and
        ``status`` filter on the columns; ``limit`` caps the number of ads.
        """
        return list(self.iter_query(constraint, projection, owner, limit, status=status))

    def iter_query(
        self,
        constraint: str | None = None,
        projection: Sequence[str] | None = None,
        owner: str | None = None,
        limit: int | None = None,
        *,
        status: int | Iterable[int] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Like :meth:`query`, streaming the ads one by one from one snapshot."""
        scan = self._scan("jobs", "ORDER BY id", constraint, projection, owner, limit, status)
        return self._rows(scan, as_text=False)

    def iter_query_json(
        self,
        constraint: str | None = None,
        projection: Sequence[str] | None = None,
        owner: str | None = None,
        limit: int | None = None,
        *,
        status: int | Iterable[int] | None = None,
    ) -> Iterator[str]:
        """Like :meth:`iter_query`, yielding each ad as compact JSON text.

        Without a projection the stored text is passed through as it is (no decoding and
        re-encoding), which is what an HTTP answer of 100k ads wants.
        """
        scan = self._scan("jobs", "ORDER BY id", constraint, projection, owner, limit, status)
        return self._rows(scan, as_text=True)

    def history(
        self,
        constraint: str | None = None,
        limit: int | None = None,
        owner: str | None = None,
        projection: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Completed and removed jobs matching the filters, the most recently finished first."""
        scan = self._scan("history", _HISTORY_ORDER, constraint, projection, owner, limit, None)
        return list(self._rows(scan, as_text=False))

    def iter_history_json(
        self,
        constraint: str | None = None,
        limit: int | None = None,
        owner: str | None = None,
        projection: Sequence[str] | None = None,
    ) -> Iterator[str]:
        """Like :meth:`history`, streaming each ad as compact JSON text."""
        scan = self._scan("history", _HISTORY_ORDER, constraint, projection, owner, limit, None)
        return self._rows(scan, as_text=True)

    def _scan(
        self,
        table: str,
        order: str,
        constraint: str | None,
        projection: Sequence[str] | None,
        owner: str | None,
        limit: int | None,
        status: int | Iterable[int] | None,
    ) -> _Scan:
        """Plan a read; everything that can fail on bad arguments fails here, before any row."""
        if limit is not None and (type(limit) is not int or limit < 0):
            raise QueueError(f"limit must be a count >= 0, not {limit!r}")
        plan = plan_constraint(constraint)
        predicate = None if plan.complete else compile_job_constraint(constraint or "true")
        where = list(plan.where)
        params: list[Any] = list(plan.params)
        if owner is not None:
            where.append("owner = ? COLLATE NOCASE AND owner = ?")  # the index, then exactly
            params.extend((owner, owner))
        if status is not None:
            statuses = [status] if isinstance(status, int) else list(status)
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params.extend(statuses)
        wanted = None if projection is None else {name.lower() for name in projection}
        need_ad = predicate is not None or wanted is None or not wanted <= HOT_ATTRS_LOWER
        if need_ad:
            columns = "ad"
        elif wanted is not None and wanted <= _ID_ATTRS:
            columns = "id"  # in every index: no row lookups at all
        else:
            columns = _COLUMNS
        sql = f"SELECT {columns} FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " " + order
        if limit is not None and predicate is None:
            sql += " LIMIT ?"
            params.append(limit)
        self._conn()  # a closed queue fails now, not at the first row
        return _Scan(sql, tuple(params), predicate, wanted, need_ad, limit)

    def _rows(self, scan: _Scan, *, as_text: bool) -> Iterator[Any]:
        """Run a planned read on a private snapshot, yielding dicts (or JSON text)."""
        if scan.limit == 0:
            return
        predicate, wanted = scan.predicate, scan.wanted
        produced = 0
        with self._reader() as conn:
            cursor = conn.execute(scan.sql, scan.params)
            while rows := cursor.fetchmany(_FETCH):
                for row in rows:
                    if not scan.need_ad:
                        item: Any = _hot_projection(row, wanted or set())
                        if as_text:
                            item = encode_json(item)
                    elif as_text and predicate is None and wanted is None:
                        item = row[0]
                    else:
                        ad = decode_json(row[0])
                        if predicate is not None and not predicate(ad):
                            continue
                        if wanted is not None:
                            ad = {k: v for k, v in ad.items() if k.lower() in wanted}
                            item = encode_json(ad) if as_text else ad
                        else:
                            item = row[0] if as_text else ad
                    yield item
                    produced += 1
                    if scan.limit is not None and produced >= scan.limit:
                        return

    def counts_by_status(self, owner: str | None = None) -> dict[int, int]:
        """Number of queued jobs per JobStatus (idle, running and held always present)."""
        sql = "SELECT status, count(*) FROM jobs"
        params: tuple[Any, ...] = ()
        if owner is not None:
            sql += " WHERE owner = ?"
            params = (owner,)
        sql += " GROUP BY status"
        counts = {status: 0 for status in sorted(QUEUED_STATUSES)}
        with self._lock:
            for status, count in self._conn().execute(sql, params):
                counts[status] = count
        return counts

    def counts_by_owner(self) -> dict[str, dict[int, int]]:
        """Number of queued jobs per owner and JobStatus (owners with no jobs are absent)."""
        result: dict[str, dict[int, int]] = {}
        with self._lock:
            rows = self._conn().execute(
                "SELECT owner, status, count(*) FROM jobs GROUP BY owner, status"
            ).fetchall()
        for owner, status, count in rows:
            per = result.setdefault(owner, {s: 0 for s in sorted(QUEUED_STATUSES)})
            per[status] = count
        return result

    # ------------------------------------------------------------------ status changes

    def set_status(
        self,
        ids: Iterable[JobId],
        status: int,
        *,
        reason: str | None = None,
        reason_code: int | None = None,
        reason_subcode: int | None = None,
        attrs: Mapping[str, Any] | None = None,
        now: float | None = None,
        only_from: int | None = None,
    ) -> list[ActionResult]:
        """Move jobs to JobStatus ``status``; one result per id, in order, one transaction.

        - 1 idle: release a held job (``released`` event) or put a running one back
          (``evicted``); an idle job is refused ("job is not held").
        - 2 running: needs ``attrs`` RemoteHost and ClaimId; ``execute`` event.
        - 3 removed: ``reason`` becomes RemoveReason; the job moves to the history.
        - 4 completed: needs ``attrs`` ExitCode (an int; other attributes such as
          RemoteWallClockTime may come along); ``terminated`` event; moves to history.
        - 5 held: needs ``reason`` (HoldReason); ``reason_code`` (HoldReasonCode, default 1,
          user request) and ``reason_subcode`` (HoldReasonSubCode, default 0).

        ``only_from`` restricts the change to jobs now in that status (a release is
        ``only_from=HELD``: releasing a running job is refused, not an eviction).
        Illegal changes (see :mod:`gwms.pool.schedd.queue_transitions`), unknown jobs and
        jobs already in the history get a result with an ``error`` and are left alone;
        the others are changed. Bad arguments raise :class:`QueueError`.
        """
        if status not in STATUS_NAMES:
            raise QueueError(f"unsupported job status {status!r}")
        extra = _checked_attrs(attrs)
        if status == RUNNING:
            for name in (A.REMOTE_HOST, CLAIM_ID):
                if not isinstance(get_attr(extra, name), str):
                    raise QueueError(f"a job set running needs {name} (a string) in attrs")
        if status == COMPLETED and type(get_attr(extra, A.EXIT_CODE)) is not int:
            raise QueueError("a completed job needs ExitCode (an int) in attrs")
        if status == HELD:
            if not isinstance(reason, str) or not reason.strip():
                raise QueueError("holding a job needs a reason")
            reason_code = A.HOLD_CODE_USER_REQUEST if reason_code is None else reason_code
            reason_subcode = 0 if reason_subcode is None else reason_subcode
            if type(reason_code) is not int or type(reason_subcode) is not int:
                raise QueueError("hold reason codes are ints")
        change = _Change(status, reason, reason_code, reason_subcode, extra, only_from)
        id_list = _checked_ids(ids)
        moment = self._now(now)
        results: list[ActionResult] = []
        with self._write() as db:
            for start in range(0, len(id_list), _BATCH):
                results.extend(_change_batch(db, id_list[start : start + _BATCH], change, moment))
        return results

    def hold(
        self, ids: Iterable[JobId], reason: str, code: int = A.HOLD_CODE_USER_REQUEST, subcode: int = 0
    ) -> list[ActionResult]:
        """Hold idle or running jobs with HoldReason ``reason`` and the given codes."""
        return self.set_status(ids, HELD, reason=reason, reason_code=code, reason_subcode=subcode)

    def release(self, ids: Iterable[JobId], reason: str | None = None) -> list[ActionResult]:
        """Release held jobs back to idle (any other job: "job is not held")."""
        return self.set_status(ids, IDLE, reason=reason, only_from=HELD)

    def remove(self, ids: Iterable[JobId], reason: str | None = None) -> list[ActionResult]:
        """Remove queued jobs (they move to the history); completed jobs are refused."""
        return self.set_status(ids, REMOVED, reason=reason)

    def evict(self, ids: Iterable[JobId], reason: str | None = None) -> list[ActionResult]:
        """Put running jobs back to idle, their claim gone (any other job: "job is not running")."""
        return self.set_status(ids, IDLE, reason=reason, only_from=RUNNING)

    def start(
        self,
        cluster: int,
        proc: int,
        *,
        remote_host: str,
        claim_id: str,
        attrs: Mapping[str, Any] | None = None,
    ) -> ActionResult:
        """Mark an idle job running on ``remote_host`` under claim ``claim_id``."""
        extra = {**(attrs or {}), A.REMOTE_HOST: remote_host, CLAIM_ID: claim_id}
        return self.set_status([(cluster, proc)], RUNNING, attrs=extra)[0]

    def complete(
        self, cluster: int, proc: int, *, exit_code: int, attrs: Mapping[str, Any] | None = None
    ) -> ActionResult:
        """Mark a running job completed with ``exit_code`` (it moves to the history)."""
        extra = {**(attrs or {}), A.EXIT_CODE: exit_code}
        return self.set_status([(cluster, proc)], COMPLETED, attrs=extra)[0]

    def edit(self, ids: Iterable[JobId], attr: str, value: Any) -> list[ActionResult]:
        """Set attribute ``attr`` to ``value`` in queued jobs (qedit); one result per id.

        ``value`` is a JSON-form value (an expression as ``"/Expr(...)/"``). The attributes
        the queue maintains (ClusterId, ProcId, Owner, JobStatus, QDate,
        EnteredCurrentStatus) cannot be edited; jobs in the history cannot be edited.
        """
        if not is_attr_name(attr):
            raise QueueError(f"{attr!r} is not a valid attribute name")
        if attr.lower() in HOT_ATTRS_LOWER:
            raise QueueError(f"{attr} is maintained by the schedd and cannot be edited")
        AdValidator().check_value(value, attr)
        id_list = _checked_ids(ids)
        now = self._clock()
        details = {"attr": attr, "value": value}
        results: list[ActionResult] = []
        with self._write() as db:
            for cluster, proc in id_list:
                key = job_key(cluster, proc) if _valid_id(cluster, proc) else None
                row = None
                if key is not None:
                    row = db.execute("SELECT ad FROM jobs WHERE id = ?", (key,)).fetchone()
                if row is None:
                    results.append(ActionResult(cluster, proc, _missing(db, key)))
                    continue
                ad = decode_json(row[0])
                CaseBlindAd(ad).set(attr, value)
                db.execute("UPDATE jobs SET ad = ? WHERE id = ?", (encode_json(ad), key))
                _log(db, key, now, JobEventType.EDITED, details)
                results.append(ActionResult(cluster, proc))
        return results

    # ------------------------------------------------------------------ events

    def events(self, cluster: int, proc: int) -> list[JobEvent]:
        """The event log of job ``cluster.proc``, oldest first (empty for an unknown job)."""
        if not _valid_id(cluster, proc):
            return []
        with self._lock:
            rows = self._conn().execute(
                "SELECT job, time, type, details FROM events WHERE job = ? ORDER BY seq",
                (job_key(cluster, proc),),
            ).fetchall()
        return [_event(*row) for row in rows]

    def iter_events(self, cluster: int | None = None, proc: int | None = None) -> Iterator[JobEvent]:
        """All events (of one cluster, or one job), in the order they happened, from one snapshot."""
        sql = "SELECT job, time, type, details FROM events"
        params: tuple[int, ...] = ()
        if cluster is not None and not _valid_id(cluster, proc or 0):
            return iter(())
        if cluster is not None:
            if proc is not None:
                sql += " WHERE job = ?"
                params = (job_key(cluster, proc),)
            else:
                sql += " WHERE job BETWEEN ? AND ?"
                params = (job_key(cluster, 0), job_key(cluster, MAX_PROCS - 1))
        sql += " ORDER BY seq"
        return self._event_rows(sql, params)

    def _event_rows(self, sql: str, params: tuple[int, ...]) -> Iterator[JobEvent]:
        with self._reader() as conn:
            cursor = conn.execute(sql, params)
            while rows := cursor.fetchmany(_FETCH):
                for row in rows:
                    yield _event(*row)

    def export_events(
        self, out: TextIO, cluster: int | None = None, proc: int | None = None
    ) -> int:
        """Write events as JSON lines (see :meth:`JobEvent.as_dict`) to ``out``; return the count."""
        count = 0
        for event in self.iter_events(cluster, proc):
            out.write(encode_json(event.as_dict()))
            out.write("\n")
            count += 1
        return count

    # ------------------------------------------------------------------ history, recovery

    def prune_history(self, now: float | None = None) -> int:
        """Drop history beyond the retention (and those jobs' events); return how many jobs."""
        retention = self.retention
        moment = self._now(now)
        removed = 0
        with self._write() as db:
            if retention.max_age is not None:
                cutoff = moment - retention.max_age.total_seconds()
                doomed = "SELECT id FROM history WHERE entered < ?"
                db.execute(f"DELETE FROM events WHERE job IN ({doomed})", (cutoff,))
                removed += db.execute("DELETE FROM history WHERE entered < ?", (cutoff,)).rowcount
            if retention.max_count is not None:
                doomed = "SELECT id FROM history ORDER BY entered DESC, id DESC LIMIT -1 OFFSET ?"
                db.execute(f"DELETE FROM events WHERE job IN ({doomed})", (retention.max_count,))
                removed += db.execute(
                    f"DELETE FROM history WHERE id IN ({doomed})", (retention.max_count,)
                ).rowcount
        return removed

    def recover(
        self,
        now: float | None = None,
        *,
        claim_alive: Callable[[dict[str, Any]], bool] | None = None,
        reason: str = "schedd restarted",
    ) -> RecoveryReport:
        """After a restart, set jobs found running back to idle (``evicted`` event, ``reason``).

        A job stays running if ``claim_alive(job_ad)`` returns true. The callback runs
        outside any transaction (it may talk to startds). The running jobs are read
        first, then set back in transactions of 10,000 jobs, so an interrupted recovery
        is finished by the next one.
        """
        moment = self._now(now)
        projection = None if claim_alive is not None else [A.CLUSTER_ID, A.PROC_ID]
        running = kept = evicted = 0
        dead: list[JobId] = []
        for ad in self.iter_query(projection=projection, status=RUNNING):
            running += 1
            if claim_alive is not None and claim_alive(ad):
                kept += 1
            else:
                dead.append((ad[A.CLUSTER_ID], ad[A.PROC_ID]))
        # The read snapshot is closed now, so the WAL can be checkpointed as we write.
        for start in range(0, len(dead), _RECOVERY_BATCH):
            batch = dead[start : start + _RECOVERY_BATCH]
            results = self.set_status(batch, IDLE, reason=reason, now=moment, only_from=RUNNING)
            evicted += sum(r.ok for r in results)
        return RecoveryReport(running=running, evicted=evicted, kept=kept)


# ---------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _Change:
    """A requested status change and what it writes into each ad."""

    status: int
    reason: str | None
    code: int | None
    subcode: int | None
    attrs: Mapping[str, Any]
    only_from: int | None = None

    def apply(self, ad: dict[str, Any], current: int, now: float) -> dict[str, Any]:
        """Update ``ad`` for the move from ``current``; return the event's details."""
        job = CaseBlindAd(ad)
        details: dict[str, Any] = {}
        if current == RUNNING:
            host = job.pop(A.REMOTE_HOST)
            job.pop(CLAIM_ID)
            if host is not None:
                job.set(LAST_REMOTE_HOST, host)
        target = self.status
        if target == RUNNING:
            job.set(A.JOB_CURRENT_START_DATE, int(now))
            job.set(A.NUM_JOB_STARTS, _count(job.get(A.NUM_JOB_STARTS)) + 1)
            details["remote_host"] = get_attr(self.attrs, A.REMOTE_HOST)
        elif target == HELD:
            job.set(A.HOLD_REASON, self.reason)
            job.set(A.HOLD_REASON_CODE, self.code)
            job.set(A.HOLD_REASON_SUB_CODE, self.subcode)
            job.set(NUM_HOLDS, _count(job.get(NUM_HOLDS)) + 1)
            details.update(reason=self.reason, code=self.code, subcode=self.subcode)
        elif target == IDLE and current == HELD:
            for name, last in ((A.HOLD_REASON, LAST_HOLD_REASON), (A.HOLD_REASON_CODE, LAST_HOLD_REASON_CODE)):
                value = job.pop(name)
                if value is not None:
                    job.set(last, value)
            job.pop(A.HOLD_REASON_SUB_CODE)
            if self.reason:
                job.set(A.RELEASE_REASON, self.reason)
        elif target == REMOVED:
            job.set(A.REMOVE_REASON, self.reason or "removed by user")
            details["reason"] = job.get(A.REMOVE_REASON)
        elif target == COMPLETED:
            job.set(A.COMPLETION_DATE, int(now))
            details["exit_code"] = get_attr(self.attrs, A.EXIT_CODE)
        if self.reason and target != HELD:
            details["reason"] = self.reason
        for name, value in self.attrs.items():
            job.set(name, value)
        job.set(JOB_STATUS, target)
        job.set(ENTERED_CURRENT_STATUS, int(now))
        return details


def _count(value: Any) -> int:
    """A counter attribute's value (0 when absent or not an int)."""
    return value if type(value) is int else 0


def _change_batch(
    db: sqlite3.Connection, ids: Sequence[JobId], change: _Change, now: float
) -> list[ActionResult]:
    """Apply ``change`` to a batch of jobs: one SELECT, then one statement per kind of write.

    A job named twice sees the first change (a second hold is "already held").
    """
    keys = [job_key(c, p) if _valid_id(c, p) else None for c, p in ids]
    present = sorted({k for k in keys if k is not None})
    rows: dict[int, list[Any]] = {}
    if present:
        marks = ", ".join("?" * len(present))
        for key, owner, status, qdate, text in db.execute(
            f"SELECT id, owner, status, qdate, ad FROM jobs WHERE id IN ({marks})", present
        ):
            rows[key] = [owner, status, qdate, text]
    target = change.status
    entered = int(now)
    final = target in FINAL_STATUSES
    moved: dict[int, int] = {}
    updated: set[int] = set()
    events: list[tuple[int, float, str, str | None]] = []
    results: list[ActionResult] = []
    for (cluster, proc), key in zip(ids, keys):
        row = rows.get(key) if key is not None else None
        if row is None:
            if key is not None and key in moved:
                error = f"job is already {status_name(moved[key])}"
            else:
                error = _missing(db, key)
            results.append(ActionResult(cluster, proc, error))
            continue
        if change.only_from is not None and row[1] != change.only_from:
            results.append(ActionResult(cluster, proc, f"job is not {status_name(change.only_from)}"))
            continue
        try:
            event = transition_event(row[1], target)
        except TransitionError as exc:
            results.append(ActionResult(cluster, proc, exc.message))
            continue
        ad = decode_json(row[3]) if isinstance(row[3], str) else row[3]
        details = change.apply(ad, row[1], now)
        row[1], row[3] = target, ad
        if final:
            moved[key] = target
        else:
            updated.add(key)
        events.append((key, now, event.value, encode_json(details) if details else None))
        results.append(ActionResult(cluster, proc))
    if updated:
        db.executemany(
            "UPDATE jobs SET status = ?, entered = ?, ad = ? WHERE id = ?",
            [(rows[k][1], entered, encode_json(rows[k][3]), k) for k in updated if k not in moved],
        )
    if moved:
        db.executemany(
            "INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (k, *split_key(k), rows[k][0], rows[k][1], rows[k][2], entered, encode_json(rows[k][3]))
                for k in moved
            ],
        )
        db.executemany("DELETE FROM jobs WHERE id = ?", [(k,) for k in moved])
        for k in moved:
            del rows[k]
    if events:
        db.executemany("INSERT INTO events (job, time, type, details) VALUES (?, ?, ?, ?)", events)
    return results


def _submitted_on_hold(stored: dict[str, Any]) -> dict[str, Any]:
    """Fill the hold attributes of a job submitted held; return the ``held`` event details."""
    if find_key(stored, A.HOLD_REASON) is None:
        stored[A.HOLD_REASON] = "submitted on hold"
    if find_key(stored, A.HOLD_REASON_CODE) is None:
        stored[A.HOLD_REASON_CODE] = A.HOLD_CODE_SUBMITTED_ON_HOLD
    if find_key(stored, A.HOLD_REASON_SUB_CODE) is None:
        stored[A.HOLD_REASON_SUB_CODE] = 0
    return {
        "reason": get_attr(stored, A.HOLD_REASON),
        "code": get_attr(stored, A.HOLD_REASON_CODE),
        "subcode": get_attr(stored, A.HOLD_REASON_SUB_CODE),
    }


def _checked_attrs(attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate extra attributes for a status change (no hot attributes, JSON-form values)."""
    if attrs is None:
        return {}
    validator = AdValidator()
    checked: dict[str, Any] = {}
    for name, value in attrs.items():
        if not is_attr_name(name):
            raise QueueError(f"{name!r} is not a valid attribute name")
        if name.lower() in HOT_ATTRS_LOWER:
            raise QueueError(f"{name} is maintained by the schedd and cannot be set")
        validator.check_value(value, name)
        checked[name] = value
    return checked


def _checked_ids(ids: Iterable[JobId]) -> list[JobId]:
    """The ids as a list of ``(cluster, proc)`` int pairs (QueueError for anything else)."""
    result: list[JobId] = []
    for item in ids:
        if (
            not isinstance(item, tuple | list)
            or len(item) != 2
            or type(item[0]) is not int
            or type(item[1]) is not int
        ):
            raise QueueError(f"a job id is a (cluster, proc) pair of ints, not {item!r}")
        result.append((item[0], item[1]))
    return result


def _valid_id(cluster: int, proc: int) -> bool:
    return 1 <= cluster <= MAX_CLUSTER_ID and 0 <= proc < MAX_PROCS


def _missing(db: sqlite3.Connection, key: int | None) -> str:
    """Why a job is not in the queue: in the history already, or unknown."""
    if key is not None:
        row = db.execute("SELECT status FROM history WHERE id = ?", (key,)).fetchone()
        if row is not None:
            return f"job is already {status_name(row[0])}"
    return "no such job"


def _log(
    db: sqlite3.Connection, key: int, now: float, event: JobEventType, details: Mapping[str, Any]
) -> None:
    db.execute(
        "INSERT INTO events (job, time, type, details) VALUES (?, ?, ?, ?)",
        (key, now, event.value, encode_json(details) if details else None),
    )


def _event(key: int, when: float, kind: str, details: str | None) -> JobEvent:
    cluster, proc = split_key(key)
    return JobEvent(cluster, proc, when, JobEventType(kind), decode_json(details) if details else {})


def _hot_projection(row: tuple[Any, ...], wanted: set[str]) -> dict[str, Any]:
    """A projection of hot attributes only, straight from the columns (or the job key)."""
    if len(row) == 1:
        row = split_key(row[0])
    return {name: value for name, value in zip(HOT_ATTRS, row) if name.lower() in wanted}
