"""The SQLite layout of the job queue, its version, and the job key.

Tables:

- ``meta(key, value)``: ``next_cluster_id`` (the next cluster id to hand out).
- ``jobs``: one row per queued job (status idle, running or held): the whole ad as JSON
  text ``ad``, and its hot attributes mirrored in columns (``cluster, proc, owner,
  status, qdate, entered``). The indexes on ``status`` and on ``owner`` hold row ids in
  order, so "all idle jobs" and "jobs of alice" come out in (cluster, proc) order with
  no sort; the owner one ignores case, as ClassAd ``Owner == "alice"`` does (an exact
  owner match adds a case-sensitive test on top). The index on ``(owner, status)``
  answers the per-owner counts by itself.
- ``history``: the same shape, for completed and removed jobs, newest first by
  ``entered`` (the time the job left the queue).
- ``events``: the job event log, ``(seq, job, time, type, details JSON)``.

The row id of ``jobs`` and ``history`` is the *job key* ``cluster * 2**24 + proc``, so the
table's own B-tree is the (cluster, proc) lookup and id order is (cluster, proc) order.

The schema version is SQLite's ``user_version``; :func:`ensure_schema` creates a new file
and refuses one written by another version.
"""

from __future__ import annotations

import sqlite3

from gwms.pool.schedd.queue_errors import QueueSchemaError

SCHEMA_VERSION = 1

PROC_BITS = 24
#: Procs per cluster are numbered 0 .. MAX_PROCS - 1.
MAX_PROCS = 1 << PROC_BITS
MAX_CLUSTER_ID = (1 << (63 - PROC_BITS)) - 1


def job_key(cluster: int, proc: int) -> int:
    """The row id of job ``cluster.proc``."""
    return (cluster << PROC_BITS) | proc


def split_key(key: int) -> tuple[int, int]:
    """``(cluster, proc)`` of a job key."""
    return key >> PROC_BITS, key & (MAX_PROCS - 1)


_JOB_COLUMNS = """
    id INTEGER PRIMARY KEY,
    cluster INTEGER NOT NULL,
    proc INTEGER NOT NULL,
    owner TEXT NOT NULL,
    status INTEGER NOT NULL,
    qdate INTEGER NOT NULL,
    entered INTEGER NOT NULL,
    ad TEXT NOT NULL
"""

_DDL = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('next_cluster_id', 1);
CREATE TABLE jobs ({_JOB_COLUMNS});
CREATE INDEX jobs_status ON jobs (status);
CREATE INDEX jobs_owner ON jobs (owner COLLATE NOCASE);
CREATE INDEX jobs_owner_status ON jobs (owner, status);
CREATE TABLE history ({_JOB_COLUMNS});
CREATE INDEX history_entered ON history (entered);
CREATE INDEX history_owner ON history (owner COLLATE NOCASE);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    job INTEGER NOT NULL,
    time REAL NOT NULL,
    type TEXT NOT NULL,
    details TEXT
);
CREATE INDEX events_job ON events (job);
PRAGMA user_version = {SCHEMA_VERSION};
"""


def ensure_schema(conn: sqlite3.Connection, path: str) -> None:
    """Create the schema in an empty database, or check the version of an existing one.

    ``conn`` must be in autocommit mode (``isolation_level=None``).
    """
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise QueueSchemaError(f"{path} is not a job queue: {exc}") from exc
    if version == 0 and tables == 0:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _DDL.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return
    if version == 0:
        raise QueueSchemaError(f"{path} is an SQLite file but not a gwms job queue")
    if version > SCHEMA_VERSION:
        raise QueueSchemaError(
            f"{path} has job queue schema {version}; this gwms reads up to {SCHEMA_VERSION}",
            hint="upgrade gwms",
        )
    if version < SCHEMA_VERSION:  # pragma: no cover - no older schema exists yet
        raise QueueSchemaError(f"{path} has job queue schema {version}, which has no migration")
