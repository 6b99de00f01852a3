"""The log index in SQLite: jobs, sections, their texts (compressed) and an FTS5 index.

Tables (schema version 1)::

    meta(key, value)                      schema version, creation time
    jobs(id, path UNIQUE, columns..., summary JSON, problems JSON, checkpoint, sizes)
    sections(id, name, kind, lines, bytes, members, columns, problem, truncated)
    section_text(id, codec, body)         each section's text, compressed
    section_fts(body)                     FTS5, contentless: rowid = sections.id

Ids are the time-ordered keys of :mod:`gwms.monitor.index`: a section's rowid in
``section_fts`` is its id, so a full-text query ordered by ``rowid`` is ordered by job
start time, and keyset pages and time ranges are rowid ranges that FTS5 handles itself.
The FTS table keeps no copy of the text (``content=''``) nor token counts (``columnsize=0``:
results are ordered by key, never ranked, so nothing reads them); the text lives compressed in
``section_text`` and is given back to FTS5 when a row is deleted (re-index, prune).

Every value reaches SQL as a bound parameter; the only text put together is the list
of fixed clauses and ``?`` marks.

Connections are per thread (WAL mode: one writer, readers never blocked), so the web
API and a ``--follow`` indexer can share a file.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from gwms.monitor.compression import Codec, codec_named, default_codec
from gwms.monitor.index import (
    MAX_ORDINAL,
    MAX_SEQ,
    SECTION_BITS,
    SEQ_BITS,
    TIME_SHIFT,
    IndexRow,
    JobRecord,
    LogIndexError,
    job_id_range,
    make_job_id,
    section_id_range,
)
from gwms.monitor.index_rows import (
    JOB_COLS,
    JOB_SELECT,
    SECTION_COLS,
    SECTION_SELECT,
    TEXT_COLS,
    assign_ids,
    batch_rows,
    decode_text,
    distinct_paths,
    epochs_needing_ids,
    index_row,
)
from gwms.monitor.index_sql import (
    JOB_INDEXES,
    SqlLogIndex,
    job_conditions,
    section_name_condition,
    section_of_jobs,
    sql_order,
    where_sql,
)
from gwms.monitor.search import Order, SearchQuery
from gwms.monitor.thread_connections import PerThreadConnections

__all__ = ["SCHEMA_VERSION", "SQLiteIndex"]

SCHEMA_VERSION = 1

#: The page size of a new index file (bytes).
PAGE_SIZE = 16384

#: The FTS5 tokenizer: unicode61 without diacritics folding (faster; logs rarely have any).
TOKENIZER = "unicode61 remove_diacritics 0"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    frontend_user TEXT NOT NULL,
    instance TEXT NOT NULL,
    entry TEXT NOT NULL,
    cluster INTEGER NOT NULL,
    proc INTEGER NOT NULL,
    sort_epoch INTEGER NOT NULL,
    glidein_uuid TEXT,
    client_name TEXT,
    client_group TEXT,
    factory_schedd TEXT,
    site TEXT,
    host TEXT,
    start_epoch INTEGER,
    end_epoch INTEGER,
    last_script_epoch INTEGER,
    validation_seconds INTEGER,
    condor_start_epoch INTEGER,
    condor_end_epoch INTEGER,
    condor_seconds INTEGER,
    total_seconds INTEGER,
    exit_code INTEGER,
    jobs_run INTEGER,
    activations INTEGER,
    finished INTEGER NOT NULL DEFAULT 0,
    anonymized INTEGER NOT NULL DEFAULT 0,
    anon_mode TEXT,
    key_id TEXT,
    problem_count INTEGER NOT NULL DEFAULT 0,
    summary TEXT NOT NULL DEFAULT '{{}}',
    problems TEXT NOT NULL DEFAULT '[]',
    out_size INTEGER,
    out_mtime_ns INTEGER,
    err_size INTEGER,
    err_mtime_ns INTEGER,
    indexed_at REAL NOT NULL,
    original_bytes INTEGER NOT NULL DEFAULT 0,
    anonymized_bytes INTEGER NOT NULL DEFAULT 0,
    text_bytes INTEGER NOT NULL DEFAULT 0,
    pruned_at REAL,
    original_pruned_at REAL,
    source TEXT NOT NULL DEFAULT 'factory'
);
CREATE TABLE IF NOT EXISTS sections (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    lines INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    members INTEGER NOT NULL DEFAULT 0,
    columns INTEGER NOT NULL DEFAULT 0,
    problem TEXT,
    truncated INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS section_text (
    id INTEGER PRIMARY KEY,
    codec TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS section_fts USING fts5(
    body, content='', columnsize=0, tokenize='{TOKENIZER}'
);
"""


class _SQLiteDialect:
    """SQLite's value lists (``IN (?, ...)``) and globs (``GLOB``): a
    :class:`~gwms.monitor.index_sql.SqlDialect`."""

    mark = "?"

    def one_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column IN (?, ...)``."""
        return f"{column} IN ({_marks(len(values))})", list(values)

    def none_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column NOT IN (?, ...)``."""
        return f"{column} NOT IN ({_marks(len(values))})", list(values)

    def glob(self, column: str, pattern: str) -> tuple[str, list[Any]]:
        """``column GLOB ?``."""
        return f"{column} GLOB ?", [pattern]


_DIALECT = _SQLiteDialect()


def _marks(n: int) -> str:
    return ", ".join("?" * n)


_MAX_PARAMS = 30_000  # below SQLite's 32,766 bound parameters per statement


def _insert_rows(
    conn: sqlite3.Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert ``rows`` with as few statements as the parameter limit allows (values bound,
    never spliced into the SQL)."""
    if not rows:
        return
    per = max(1, _MAX_PARAMS // len(columns))
    row_marks = "(" + ", ".join("?" * len(columns)) + ")"
    head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    for i in range(0, len(rows), per):
        chunk = rows[i : i + per]
        conn.execute(head + ", ".join([row_marks] * len(chunk)), [v for row in chunk for v in row])


class _Plan:
    """How to run one search: the tables, the conditions and their parameters.

    Two strategies. Normally the key table drives (FTS5 in rowid order for full text,
    else ``sections`` or ``jobs``), and rows are joined to the job and section rows a
    filter or a page needs; pages stop after ``limit`` rows. When the job filters leave
    only a few jobs (:attr:`job_driven`, decided by the index from a capped count), the
    jobs drive instead: each job's section rows are one key range, which FTS5 seeks
    directly, so a common word with a rare filter does not walk the whole index.
    """

    def __init__(self, query: SearchQuery, anonymized_only: bool) -> None:
        self.sections = query.has_text or bool(query.sections)
        self.fts = query.fts()
        self.key = "f.rowid" if self.fts is not None else ("s.id" if self.sections else "j.id")
        self.shift = TIME_SHIFT if self.sections else SEQ_BITS
        self.job_driven = False
        self.job_range: tuple[int, int] | None = None
        if query.time_from is not None or query.time_to is not None:
            self.job_range = job_id_range(query.time_from, query.time_to)
        self.job_where, self.job_params = job_conditions(query, anonymized_only, _DIALECT)
        rw: list[str] = []
        rp: list[Any] = []
        if self.fts is not None:
            rw.append("section_fts MATCH ?")
            rp.append(self.fts)
        if self.sections and query.sections:
            clause, names_params = section_name_condition(query.sections, _DIALECT)
            rw.append(clause)
            rp += names_params
        self.row_where, self.row_params = rw, rp
        self.needs_sections = bool(query.sections)

    @property
    def needs_jobs(self) -> bool:
        """True if a condition is on the job rows."""
        return bool(self.job_where)

    @property
    def key_range(self) -> tuple[int, int] | None:
        """The keys the time range allows (None: any)."""
        if self.job_range is None:
            return None
        lo, hi = self.job_range
        if self.sections:
            return lo << SECTION_BITS, (hi << SECTION_BITS) | MAX_ORDINAL
        return lo, hi

    def from_(self, *, rows: bool) -> str:
        """The FROM clause: everything a page shows (``rows``), or what the filters need."""
        per_job = "BETWEEN (j.id << 11) AND ((j.id << 11) | 2047)"
        if self.fts is not None:
            if self.job_driven:
                out = f"jobs j CROSS JOIN section_fts f ON f.rowid {per_job}"
                if rows or self.needs_sections:
                    out += " JOIN sections s ON s.id = f.rowid"
                return out
            out = "section_fts f"
            if rows or self.needs_sections:
                out += " JOIN sections s ON s.id = f.rowid"
            if rows:
                out += " JOIN jobs j ON j.id = (f.rowid >> 11)"
            return out
        if self.sections:
            if self.job_driven:
                return f"jobs j CROSS JOIN sections s ON s.id {per_job}"
            if rows:
                return "sections s JOIN jobs j ON j.id = (s.id >> 11)"
            return "sections s"
        return "jobs j"

    def where(self, extra: Sequence[tuple[str, Sequence[Any]]] = ()) -> tuple[str, list[Any]]:
        """The WHERE clause and its parameters, in order.

        When sections drive, the job filters become a set of job ids each key is looked
        up in (built once; cheaper per row than joining the job rows, which pages join
        only for the rows they show).
        """
        clauses = list(self.row_where)
        params = list(self.row_params)
        keys = self.key_range
        if keys is not None:
            clauses.append(f"{self.key} BETWEEN ? AND ?")
            params += list(keys)
            if self.job_driven and self.key != "j.id":
                clauses.append("j.id BETWEEN ? AND ?")
                params += list(self.job_range or ())
        if self.job_where and not self.job_driven and self.key != "j.id":
            inner = list(self.job_where)
            inner_params = list(self.job_params)
            if self.job_range is not None:
                inner.append("j.id BETWEEN ? AND ?")
                inner_params += list(self.job_range)
            clauses.append(section_of_jobs(self.key, inner))
            params += inner_params
        else:
            clauses += self.job_where
            params += self.job_params
        return where_sql(clauses, params, extra)

    def jobs_where(self) -> tuple[str, list[Any]]:
        """The conditions on jobs alone (job filters and time range)."""
        clauses = list(self.job_where)
        params = list(self.job_params)
        if self.job_range is not None:
            clauses.append("j.id BETWEEN ? AND ?")
            params += list(self.job_range)
        return where_sql(clauses, params)

    @property
    def select(self) -> str:
        """The columns of a page's rows."""
        if self.sections:
            return f"SELECT {self.key}, {SECTION_SELECT}, {JOB_SELECT}"
        return f"SELECT {self.key}, {JOB_SELECT}"


class SQLiteIndex(SqlLogIndex[_Plan], PerThreadConnections[sqlite3.Connection]):
    """The :class:`~gwms.monitor.index.LogIndex` in one SQLite file (FTS5 for full text).

    Args:
        path: the database file (created with its directory when ``create``).
        create: make the file and schema if missing (else a missing file is an error).
        codec: how section texts are compressed when a record does not bring them so.
    """

    mark = _DIALECT.mark
    #: SQLite VM steps between two checks of a query's deadline.
    progress_steps = 10_000

    def __init__(self, path: Path, *, create: bool = True, codec: Codec | None = None) -> None:
        self.path = Path(path)
        self.url = f"sqlite://{self.path.resolve()}"
        self.codec = codec or default_codec()
        self._init_connections(sqlite3.Error)
        if not self.path.exists():
            if not create:
                raise LogIndexError(f"no log index at {self.path}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._conn()
        version = self._schema_version(conn)
        if version is None:
            conn.executescript(_SCHEMA)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?), ('created', ?)",
                (str(SCHEMA_VERSION), str(time.time())),
            )
            conn.execute("COMMIT")
        elif version != SCHEMA_VERSION:
            raise LogIndexError(
                f"{self.path} has log index schema {version}; this gwms uses {SCHEMA_VERSION}"
            )
        else:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
            if "source" not in columns:  # an index made before pushed logs existed
                conn.execute("ALTER TABLE jobs ADD COLUMN source TEXT NOT NULL DEFAULT 'factory'")
        conn.executescript(JOB_INDEXES)
        self._tune_fts(conn)

    #: FTS5 settings (stored in the table): ``hashsize``, the bytes of new index data
    #: buffered before a segment is written (FTS5's default, 1 MB, makes dozens of small
    #: segments per batch, merged again and again); ``automerge``, how many segments of a
    #: level are merged at once (default 4: 8 rewrites the index about half as often,
    #: for at most 7 segments per level to read).
    fts_settings: ClassVar[dict[str, int]] = {"hashsize": 64 * 1024 * 1024, "automerge": 8}

    def _tune_fts(self, conn: sqlite3.Connection) -> None:
        """Apply :attr:`fts_settings` where they differ (written once; readers never write)."""
        have = dict(conn.execute("SELECT k, v FROM section_fts_config"))
        for key, value in self.fts_settings.items():
            if have.get(key) is None or int(have[key]) != value:
                conn.execute(
                    "INSERT INTO section_fts(section_fts, rank) VALUES (?, ?)", (key, value)
                )

    # -- connections ---------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = self._thread_conn()
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=30, isolation_level=None, check_same_thread=False
                )
                # a new file only (an existing one keeps its page size): FTS5 writes its
                # segments about 15% faster on 16 KB pages than on the default 4 KB
                conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA temp_store=MEMORY")
                conn.execute("PRAGMA cache_size=-65536")
            except sqlite3.Error as exc:
                raise LogIndexError(f"cannot open the log index {self.path}: {exc}") from None
            self._adopt_conn(conn)
        return conn

    @staticmethod
    def _schema_version(conn: sqlite3.Connection) -> int | None:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError:
            return None
        except sqlite3.DatabaseError as exc:
            raise LogIndexError(f"not a log index: {exc}") from None
        return int(row[0]) if row else None

    # -- writing -------------------------------------------------------------------
    def store(self, records: Sequence[JobRecord]) -> list[int]:
        """Insert or replace jobs with their sections, all in one transaction; their ids.

        A job keeps its id when it is re-indexed with the same start time, so links
        to it stay valid.

        Rows go in as a few multi-row INSERT statements rather than one per row:
        the sqlite3 module gives up Python's GIL for each statement it runs, and taking
        it back thousands of times per batch, while the indexer's parsing thread holds
        it, would make the two threads take turns instead of working at once.
        """
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids = self._store_batch(conn, records)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return ids

    def _store_batch(self, conn: sqlite3.Connection, records: Sequence[JobRecord]) -> list[int]:
        paths = distinct_paths(records)
        old: dict[str, tuple[int, int]] = {}
        for i in range(0, len(paths), 900):
            chunk = paths[i : i + 900]
            for path, jid, epoch in conn.execute(
                f"SELECT path, id, sort_epoch FROM jobs WHERE path IN ({_marks(len(chunk))})", chunk
            ):
                old[path] = (jid, epoch)
        self._delete_texts(conn, [jid for jid, _epoch in old.values()])
        if old:
            old_ids = [jid for jid, _e in old.values()]
            for i in range(0, len(old_ids), 900):
                chunk = old_ids[i : i + 900]
                conn.execute(f"DELETE FROM jobs WHERE id IN ({_marks(len(chunk))})", chunk)
        # ids: kept when the start is the same, else the next free one of that second
        ids = assign_ids(records, old, self._next_seqs(conn, epochs_needing_ids(records, old)))
        rows = batch_rows(ids, records, self.codec)
        _insert_rows(conn, "jobs", JOB_COLS, rows.jobs)
        _insert_rows(conn, "sections", SECTION_COLS, rows.sections)
        _insert_rows(conn, "section_text", TEXT_COLS, rows.texts)
        # FTS5 buffers a transaction's rows in memory only while rowids ascend (a
        # smaller one makes it write out what it holds), so they go in sorted
        _insert_rows(conn, "section_fts", ("rowid", "body"), sorted(rows.searchable))
        return ids

    @staticmethod
    def _next_seqs(conn: sqlite3.Connection, epochs: Sequence[int]) -> dict[int, int]:
        """The next free sequence number of each start epoch."""
        out: dict[int, int] = {}
        for i in range(0, len(epochs), 500):
            chunk = list(epochs[i : i + 500])
            for epoch in chunk:
                make_job_id(epoch, 0)  # checks the range
            rows = conn.execute(
                f"WITH e(epoch) AS (VALUES {', '.join(['(?)'] * len(chunk))})"
                f" SELECT epoch, (SELECT max(id) FROM jobs WHERE id BETWEEN epoch << {SEQ_BITS}"
                f" AND (epoch << {SEQ_BITS}) | {MAX_SEQ}) FROM e",
                chunk,
            )
            for epoch, top in rows:
                out[epoch] = 0 if top is None else (top & MAX_SEQ) + 1
        return out

    def _delete_texts(self, conn: sqlite3.Connection, job_ids: Sequence[int]) -> None:
        """Remove the sections, texts and full-text rows of jobs."""
        for job_id in job_ids:
            lo, hi = section_id_range(job_id)
            rows = conn.execute(
                "SELECT id, codec, body FROM section_text WHERE id BETWEEN ? AND ?", (lo, hi)
            ).fetchall()
            # a contentless FTS5 table forgets a row only when given its very text again
            _insert_rows(
                conn,
                "section_fts",
                ("section_fts", "rowid", "body"),
                [
                    ("delete", sid, codec_named(codec).decompress(body).decode("utf-8"))
                    for sid, codec, body in rows
                ],
            )
            conn.execute("DELETE FROM section_text WHERE id BETWEEN ? AND ?", (lo, hi))
            conn.execute("DELETE FROM sections WHERE id BETWEEN ? AND ?", (lo, hi))

    def section_texts(self, section_ids: Sequence[int]) -> dict[int, str]:
        """The texts of sections, by id."""
        out: dict[int, str] = {}
        ids = list(section_ids)
        conn = self._conn()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            rows = conn.execute(
                f"SELECT id, codec, body FROM section_text WHERE id IN ({_marks(len(chunk))})",
                chunk,
            )
            for sid, codec, body in rows:
                out[sid] = decode_text(codec, body)
        return out

    # -- searching -----------------------------------------------------------------
    #: Job filters leaving at most this many jobs may make the jobs drive a section
    #: search: each one costs FTS5 a seek in every segment, which pays only when the
    #: key table would otherwise walk far more rows (``job_driven_ratio`` jobs in the
    #: time range per job passing the filters).
    job_driven_max = 50
    job_driven_ratio = 200
    #: Jobs taken at first when they drive a page (then four times more each time).
    job_chunk = 64

    def _plan(self, query: SearchQuery, anonymized_only: bool) -> _Plan:
        plan = _Plan(query, anonymized_only)
        if plan.sections and plan.needs_jobs:
            conn = self._conn()
            where, params = plan.jobs_where()
            sql = f"SELECT count(*) FROM (SELECT 1 FROM jobs j{where} LIMIT ?)"
            (n,) = conn.execute(sql, [*params, self.job_driven_max + 1]).fetchone()
            if n <= self.job_driven_max:
                if plan.job_range is None:
                    plan.job_driven = True
                else:
                    enough = max(1, n) * self.job_driven_ratio
                    (in_range,) = conn.execute(
                        "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE id BETWEEN ? AND ? LIMIT ?)",
                        [*plan.job_range, enough + 1],
                    ).fetchone()
                    plan.job_driven = in_range > enough
        return plan

    def _page(self, plan: _Plan, *, after: int | None, order: Order, limit: int) -> list[IndexRow]:
        """One page of ``plan``'s rows, after key ``after``."""
        direction, beyond = sql_order(order)
        conn = self._conn()
        if not plan.job_driven:
            extra = [(f"{plan.key} {beyond} ?", [after])] if after is not None else []
            where, params = plan.where(extra)
            sql = f"{plan.select} FROM {plan.from_(rows=True)}{where} ORDER BY {plan.key} {direction} LIMIT ?"
            return [index_row(plan.sections, r) for r in conn.execute(sql, [*params, limit])]
        # the jobs drive: take them in key order, a growing chunk at a time, and sort
        # only the matching section rows of each chunk
        jobs_where, jobs_params = plan.jobs_where()
        job_after = None if after is None else (after >> SECTION_BITS)
        out: list[IndexRow] = []
        chunk = self.job_chunk
        while len(out) < limit:
            extra_jobs = ""
            extra_params: list[Any] = []
            if job_after is not None:
                extra_jobs = f"{' AND' if jobs_where else ' WHERE'} j.id {beyond}= ?"
                extra_params = [job_after]
            ids = [
                r[0]
                for r in conn.execute(
                    f"SELECT j.id FROM jobs j{jobs_where}{extra_jobs} ORDER BY j.id {direction} LIMIT ?",
                    [*jobs_params, *extra_params, chunk],
                )
            ]
            if not ids:
                break
            extra = [(f"j.id IN ({_marks(len(ids))})", ids)]
            if after is not None:
                extra.append((f"{plan.key} {beyond} ?", [after]))
            where, params = plan.where(extra)
            sql = (
                f"{plan.select} FROM {plan.from_(rows=True)}{where}"
                f" ORDER BY {plan.key} {direction} LIMIT ?"
            )
            out.extend(
                index_row(plan.sections, r) for r in conn.execute(sql, [*params, limit - len(out)])
            )
            if len(ids) < chunk:
                break
            job_after = ids[-1] + (-1 if order == "desc" else 1)
            chunk = min(chunk * 4, 4096)
        return out

    def _run(self, sql: str, params: Sequence[Any], timeout: float | None) -> list[Any] | None:
        """All rows of a statement; None if it ran past ``timeout`` seconds (interrupted)."""
        conn = self._conn()
        if timeout is None:
            return conn.execute(sql, params).fetchall()
        deadline = time.monotonic() + timeout
        conn.set_progress_handler(
            lambda: 1 if time.monotonic() > deadline else 0, self.progress_steps
        )
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                return None
            raise
        finally:
            conn.set_progress_handler(None, 0)

    def explain(self, query: SearchQuery, *, anonymized_only: bool = False) -> list[str]:
        """SQLite's plan for a page of ``query`` (for tuning and tests)."""
        plan = self._plan(query, anonymized_only)
        where, params = plan.where()
        sql = (
            f"EXPLAIN QUERY PLAN {plan.select} FROM {plan.from_(rows=True)}{where}"
            f" ORDER BY {plan.key} DESC LIMIT 50"
        )
        return [str(r[-1]) for r in self._conn().execute(sql, params)]

    # -- retention -----------------------------------------------------------------
    def drop_data(self, job_ids: Sequence[int], *, original_only: bool = False) -> None:
        """Record pruned archives; drop the texts of fully pruned jobs (rows stay)."""
        conn = self._conn()
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for job_id in job_ids:
                if original_only:
                    conn.execute(
                        "UPDATE jobs SET original_pruned_at = ?, original_bytes = 0 WHERE id = ?",
                        (now, job_id),
                    )
                    continue
                self._delete_texts(conn, [job_id])
                conn.execute(
                    "UPDATE jobs SET pruned_at = ?, original_pruned_at = coalesce(original_pruned_at, ?),"
                    " original_bytes = 0, anonymized_bytes = 0, text_bytes = 0 WHERE id = ?",
                    (now, now, job_id),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- maintenance ---------------------------------------------------------------
    def maintain(self) -> None:
        """Refresh the planner's statistics where they are stale (``PRAGMA optimize``)."""
        self._conn().execute("PRAGMA optimize")

    def optimize(self) -> None:
        """Merge the FTS5 index into one segment and refresh the planner's statistics."""
        conn = self._conn()
        conn.execute("INSERT INTO section_fts(section_fts) VALUES ('optimize')")
        conn.execute("PRAGMA optimize")

    def _database_bytes(self) -> int:
        """The size of the database file with its write-ahead log."""
        size = 0
        for suffix in ("", "-wal"):
            p = Path(f"{self.path}{suffix}")
            if p.exists():
                size += os.path.getsize(p)
        return size
