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
The FTS table keeps no copy of the text (``content=''``); the text lives compressed in
``section_text`` and is given back to FTS5 when a row is deleted (re-index, prune).

Every value reaches SQL as a bound parameter; the only text put together is the list
of fixed clauses and ``?`` marks.

Connections are per thread (WAL mode: one writer, readers never blocked), so the web
API and a ``--follow`` indexer can share a file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

from gwms.monitor.compression import Codec, codec_named, default_codec
from gwms.monitor.index import (
    MAX_ORDINAL,
    MAX_SEQ,
    SECTION_BITS,
    SEQ_BITS,
    TIME_SHIFT,
    Checkpoint,
    FileState,
    IndexRow,
    JobInfo,
    JobRecord,
    JobRow,
    LogIndexError,
    RetentionEntry,
    SectionInfo,
    job_id_range,
    make_job_id,
    section_id,
    section_id_range,
)
from gwms.monitor.search import JobRef, Order, SearchQuery, count_lines

__all__ = ["SCHEMA_VERSION", "SQLiteIndex"]

SCHEMA_VERSION = 1

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
    original_pruned_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_entry ON jobs(entry);
CREATE INDEX IF NOT EXISTS jobs_site ON jobs(site);
CREATE INDEX IF NOT EXISTS jobs_frontend_user ON jobs(frontend_user);
CREATE INDEX IF NOT EXISTS jobs_client_group ON jobs(client_group);
CREATE INDEX IF NOT EXISTS jobs_client_name ON jobs(client_name);
CREATE INDEX IF NOT EXISTS jobs_host ON jobs(host);
CREATE INDEX IF NOT EXISTS jobs_uuid ON jobs(glidein_uuid);
CREATE INDEX IF NOT EXISTS jobs_cluster ON jobs(cluster, proc);
CREATE INDEX IF NOT EXISTS jobs_exit ON jobs(exit_code);
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
CREATE INDEX IF NOT EXISTS sections_name ON sections(name);
CREATE TABLE IF NOT EXISTS section_text (
    id INTEGER PRIMARY KEY,
    codec TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS section_fts USING fts5(
    body, content='', tokenize='{TOKENIZER}'
);
"""

# the job columns, in the order of JobInfo's fields (path first)
_INFO_FIELDS = tuple(JobInfo.__dataclass_fields__)
_BOOL_FIELDS = frozenset({"finished", "anonymized"})
_JOB_EXTRA = (
    "summary",
    "problems",
    "out_size",
    "out_mtime_ns",
    "err_size",
    "err_mtime_ns",
    "indexed_at",
    "original_bytes",
    "anonymized_bytes",
    "text_bytes",
    "pruned_at",
    "original_pruned_at",
)
_JOB_COLS = ("id", *_INFO_FIELDS, *_JOB_EXTRA)
_JOB_SELECT = ", ".join(f"j.{c}" for c in _JOB_COLS)
_SECTION_COLS = ("id", "name", "kind", "lines", "bytes", "members", "columns", "problem", "truncated")
_SECTION_SELECT = ", ".join(f"s.{c}" for c in _SECTION_COLS)


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _job_from_row(row: Sequence[Any], offset: int = 0) -> JobRow:
    values = dict(zip(_JOB_COLS, row[offset : offset + len(_JOB_COLS)], strict=True))
    info_values = {k: values[k] for k in _INFO_FIELDS}
    for k in _BOOL_FIELDS:
        info_values[k] = bool(info_values[k])
    out = FileState(values["out_size"], values["out_mtime_ns"]) if values["out_size"] is not None else None
    err = FileState(values["err_size"], values["err_mtime_ns"]) if values["err_size"] is not None else None
    return JobRow(
        id=values["id"],
        info=JobInfo(**info_values),
        summary=json.loads(values["summary"]),
        problems=json.loads(values["problems"]),
        checkpoint=Checkpoint(out, err),
        indexed_at=values["indexed_at"],
        original_bytes=values["original_bytes"],
        anonymized_bytes=values["anonymized_bytes"],
        text_bytes=values["text_bytes"],
        pruned_at=values["pruned_at"],
        original_pruned_at=values["original_pruned_at"],
    )


def _section_from_row(row: Sequence[Any], offset: int = 0) -> SectionInfo:
    sid, name, kind, lines, size, members, columns, problem, truncated = row[
        offset : offset + len(_SECTION_COLS)
    ]
    return SectionInfo(
        id=sid,
        job_id=sid >> SECTION_BITS,
        ordinal=MAX_ORDINAL - (sid & MAX_ORDINAL),
        name=name,
        kind=kind,
        lines=lines,
        bytes=size,
        members=members,
        columns=columns,
        problem=problem,
        truncated=bool(truncated),
    )


class _Plan:
    """The FROM, WHERE and parameters of one search, and the column its rows are keyed by.

    Pages join the job and section rows they show; counts and histograms join only
    the tables a filter needs (a full-text count then reads the FTS5 index alone).
    """

    def __init__(self, query: SearchQuery, anonymized_only: bool) -> None:
        self.sections = query.has_text or bool(query.sections)
        self.fts = query.fts()
        where: list[str] = []
        params: list[Any] = []
        if self.fts is not None:
            self.key = "f.rowid"
            where.append("section_fts MATCH ?")
            params.append(self.fts)
        elif self.sections:
            self.key = "s.id"
        else:
            self.key = "j.id"
        self.needs_jobs = anonymized_only or any(
            (
                query.entries, query.sites, query.frontend_users, query.groups, query.clients,
                query.hosts, query.uuids, query.jobs, query.exit is not None,
                query.finished is not None, query.problems is not None,
            )
        )
        self.needs_sections = bool(query.sections)
        self.shift = TIME_SHIFT if self.sections else SEQ_BITS
        if query.time_from is not None or query.time_to is not None:
            lo, hi = job_id_range(query.time_from, query.time_to)
            if self.sections:
                lo, hi = lo << SECTION_BITS, (hi << SECTION_BITS) | MAX_ORDINAL
            where.append(f"{self.key} BETWEEN ? AND ?")
            params += [lo, hi]
        for column, values in (
            ("j.entry", query.entries),
            ("j.site", query.sites),
            ("j.frontend_user", query.frontend_users),
            ("j.client_group", query.groups),
            ("j.client_name", query.clients),
            ("j.host", query.hosts),
            ("j.glidein_uuid", query.uuids),
        ):
            if values:
                where.append(f"{column} IN ({_marks(len(values))})")
                params += list(values)
        if query.jobs:
            parts = []
            for ref in query.jobs:
                if ref.proc is None:
                    parts.append("j.cluster = ?")
                    params.append(ref.cluster)
                else:
                    parts.append("(j.cluster = ? AND j.proc = ?)")
                    params += [ref.cluster, ref.proc]
            where.append("(" + " OR ".join(parts) + ")")
        if query.exit is not None:
            codes = list(query.exit.codes)
            if query.exit.negate:
                where.append(f"j.exit_code IS NOT NULL AND j.exit_code NOT IN ({_marks(len(codes))})")
            else:
                where.append(f"j.exit_code IN ({_marks(len(codes))})")
            params += codes
        if query.finished is not None:
            where.append("j.finished = ?")
            params.append(1 if query.finished else 0)
        if query.problems is not None:
            where.append("j.problem_count > 0" if query.problems else "j.problem_count = 0")
        if anonymized_only:
            where.append("j.anonymized = 1")
        if self.sections and query.sections:
            parts = []
            for name in query.sections:
                if any(ch in name for ch in "*?["):
                    parts.append("s.name GLOB ?")
                else:
                    parts.append("s.name = ?")
                params.append(name)
            where.append("(" + " OR ".join(parts) + ")")
        self.where = where
        self.params = params

    def from_(self, *, rows: bool) -> str:
        """The FROM clause: everything a page shows (``rows``), or what the filters need."""
        if self.fts is not None:
            out = "section_fts f"
            if rows or self.needs_sections:
                out += " JOIN sections s ON s.id = f.rowid"
            if rows or self.needs_jobs:
                out += " JOIN jobs j ON j.id = (f.rowid >> 11)"
            return out
        if self.sections:
            return "sections s JOIN jobs j ON j.id = (s.id >> 11)" if rows or self.needs_jobs else "sections s"
        return "jobs j"

    @property
    def source(self) -> str:
        """The FROM clause of a page."""
        return self.from_(rows=True)

    @property
    def count_source(self) -> str:
        """The FROM clause of counts and histograms."""
        return self.from_(rows=False)

    def sql_where(self, extra: Sequence[str] = ()) -> str:
        clauses = [*self.where, *extra]
        return (" WHERE " + " AND ".join(clauses)) if clauses else ""

    @property
    def select(self) -> str:
        if self.sections:
            return f"SELECT {self.key}, {_SECTION_SELECT}, {_JOB_SELECT}"
        return f"SELECT {self.key}, {_JOB_SELECT}"


class SQLiteIndex:
    """The :class:`~gwms.monitor.index.LogIndex` in one SQLite file (FTS5 for full text).

    Args:
        path: the database file (created with its directory when ``create``).
        create: make the file and schema if missing (else a missing file is an error).
        codec: how section texts are compressed when a record does not bring them so.
    """

    #: SQLite VM steps between two checks of a query's deadline.
    progress_steps = 10_000

    def __init__(self, path: Path, *, create: bool = True, codec: Codec | None = None) -> None:
        self.path = Path(path)
        self.url = f"sqlite://{self.path.resolve()}"
        self.codec = codec or default_codec()
        self._local = threading.local()
        self._all: dict[int, sqlite3.Connection] = {}  # by thread
        self._lock = threading.Lock()
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

    # -- connections ---------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=30, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA temp_store=MEMORY")
                conn.execute("PRAGMA cache_size=-65536")
            except sqlite3.Error as exc:
                raise LogIndexError(f"cannot open the log index {self.path}: {exc}") from None
            self._local.conn = conn
            with self._lock:
                # threads come and go (a writer per pass, a server's pool): close the
                # connections of the threads that ended
                alive = {t.ident for t in threading.enumerate()}
                for ident in [i for i in self._all if i not in alive]:
                    try:
                        self._all.pop(ident).close()
                    except sqlite3.Error:
                        pass
                self._all[threading.get_ident()] = conn
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

    def close(self) -> None:
        """Close every connection this object opened (in any thread)."""
        with self._lock:
            conns, self._all = list(self._all.values()), {}
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------
    def checkpoints(self) -> dict[str, Checkpoint]:
        """The checkpoint of every indexed job, by path."""
        out: dict[str, Checkpoint] = {}
        rows = self._conn().execute(
            "SELECT path, out_size, out_mtime_ns, err_size, err_mtime_ns FROM jobs"
        )
        for path, osz, omt, esz, emt in rows:
            out[path] = Checkpoint(
                FileState(osz, omt) if osz is not None else None,
                FileState(esz, emt) if esz is not None else None,
            )
        return out

    def store(self, records: Sequence[JobRecord]) -> list[int]:
        """Insert or replace jobs with their sections, all in one transaction; their ids.

        A job keeps its id when it is re-indexed with the same start time, so links
        to it stay valid.
        """
        conn = self._conn()
        ids: list[int] = []
        fts_rows: list[tuple[int, str]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for record in records:
                ids.append(self._store_one(conn, record, fts_rows))
            # FTS5 buffers a transaction's rows in memory only while rowids ascend (a
            # smaller one makes it write out what it holds), so insert them sorted
            fts_rows.sort()
            conn.executemany("INSERT INTO section_fts (rowid, body) VALUES (?, ?)", fts_rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return ids

    def _store_one(
        self, conn: sqlite3.Connection, record: JobRecord, fts_rows: list[tuple[int, str]]
    ) -> int:
        info = record.info
        old = conn.execute(
            "SELECT id, sort_epoch FROM jobs WHERE path = ?", (info.path,)
        ).fetchone()
        if old is not None:
            self._delete_texts(conn, old[0])
            conn.execute("DELETE FROM jobs WHERE id = ?", (old[0],))
        job_id = old[0] if old is not None and old[1] == info.sort_epoch else self._allocate(conn, info.sort_epoch)
        problems = list(record.problems)
        sections = record.sections
        if len(sections) > MAX_ORDINAL + 1:
            problems.append(
                f"{len(sections)} sections: only the first {MAX_ORDINAL + 1} are indexed"
            )
            sections = sections[: MAX_ORDINAL + 1]
        text_bytes = 0
        section_rows = []
        text_rows = []
        for ordinal, sec in enumerate(sections):
            sid = section_id(job_id, ordinal)
            if sec.blob is not None and sec.codec is not None:
                blob, codec_name = sec.blob, sec.codec
            else:
                blob, codec_name = self.codec.compress(sec.text.encode("utf-8")), self.codec.name
            text_bytes += len(blob)
            section_rows.append(
                (
                    sid,
                    sec.name,
                    sec.kind,
                    count_lines(sec.text),
                    len(sec.text),
                    sec.members,
                    sec.columns,
                    sec.problem,
                    1 if sec.truncated else 0,
                )
            )
            text_rows.append((sid, codec_name, blob))
            fts_rows.append((sid, sec.text))
        cp = record.checkpoint
        values: dict[str, Any] = {"id": job_id}
        for name in _INFO_FIELDS:
            value = getattr(info, name)
            values[name] = int(value) if name in _BOOL_FIELDS else value
        values["problem_count"] = len(problems)
        values.update(
            summary=json.dumps(record.summary, separators=(",", ":"), default=str),
            problems=json.dumps(problems),
            out_size=cp.out.size if cp.out else None,
            out_mtime_ns=cp.out.mtime_ns if cp.out else None,
            err_size=cp.err.size if cp.err else None,
            err_mtime_ns=cp.err.mtime_ns if cp.err else None,
            indexed_at=record.indexed_at or time.time(),
            original_bytes=record.original_bytes,
            anonymized_bytes=record.anonymized_bytes,
            text_bytes=text_bytes,
            pruned_at=None,
            original_pruned_at=None,
        )
        conn.execute(
            f"INSERT INTO jobs ({', '.join(_JOB_COLS)}) VALUES ({_marks(len(_JOB_COLS))})",
            [values[c] for c in _JOB_COLS],
        )
        conn.executemany(
            f"INSERT INTO sections ({', '.join(_SECTION_COLS)}) VALUES ({_marks(len(_SECTION_COLS))})",
            section_rows,
        )
        conn.executemany("INSERT INTO section_text (id, codec, body) VALUES (?, ?, ?)", text_rows)
        return job_id

    @staticmethod
    def _allocate(conn: sqlite3.Connection, epoch: int) -> int:
        lo = make_job_id(epoch, 0)  # checks the epoch's range
        hi = lo | MAX_SEQ
        row = conn.execute("SELECT max(id) FROM jobs WHERE id BETWEEN ? AND ?", (lo, hi)).fetchone()
        if row[0] is None:
            return lo
        if row[0] < hi:
            return row[0] + 1
        raise LogIndexError(f"more than {MAX_SEQ + 1} jobs start at epoch {epoch}")

    def _delete_texts(self, conn: sqlite3.Connection, job_id: int) -> None:
        lo, hi = section_id_range(job_id)
        rows = conn.execute(
            "SELECT id, codec, body FROM section_text WHERE id BETWEEN ? AND ?", (lo, hi)
        ).fetchall()
        # a contentless FTS5 table forgets a row only when given its very text again
        conn.executemany(
            "INSERT INTO section_fts (section_fts, rowid, body) VALUES ('delete', ?, ?)",
            [(sid, codec_named(codec).decompress(body).decode("utf-8")) for sid, codec, body in rows],
        )
        conn.execute("DELETE FROM section_text WHERE id BETWEEN ? AND ?", (lo, hi))
        conn.execute("DELETE FROM sections WHERE id BETWEEN ? AND ?", (lo, hi))

    # -- reading jobs --------------------------------------------------------------
    def _jobs(self, where: str, params: Sequence[Any], limit: int) -> list[JobRow]:
        rows = self._conn().execute(
            f"SELECT {_JOB_SELECT} FROM jobs j WHERE {where} ORDER BY j.id DESC LIMIT ?",
            [*params, limit],
        )
        return [_job_from_row(r) for r in rows]

    def job(self, job_id: int) -> JobRow | None:
        """The job with this id."""
        found = self._jobs("j.id = ?", [job_id], 1)
        return found[0] if found else None

    def job_by_path(self, path: str) -> JobRow | None:
        """The job with this path."""
        found = self._jobs("j.path = ?", [path], 1)
        return found[0] if found else None

    def jobs_by_ref(self, ref: JobRef, *, limit: int = 20) -> list[JobRow]:
        """Jobs with this factory id (``C`` alone: every proc of the cluster), newest first."""
        if ref.proc is None:
            return self._jobs("j.cluster = ?", [ref.cluster], limit)
        return self._jobs("j.cluster = ? AND j.proc = ?", [ref.cluster, ref.proc], limit)

    def jobs_by_uuid(self, uuid: str, *, limit: int = 20) -> list[JobRow]:
        """Jobs with this glidein uuid (lowercase)."""
        return self._jobs("j.glidein_uuid = ?", [uuid.lower()], limit)

    def sections(self, job_id: int) -> list[SectionInfo]:
        """The sections of a job, in file order."""
        lo, hi = section_id_range(job_id)
        rows = self._conn().execute(
            f"SELECT {_SECTION_SELECT} FROM sections s WHERE s.id BETWEEN ? AND ? ORDER BY s.id DESC",
            (lo, hi),
        )
        return [_section_from_row(r) for r in rows]

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
                out[sid] = codec_named(codec).decompress(body).decode("utf-8", "replace")
        return out

    # -- searching -----------------------------------------------------------------
    def rows(
        self,
        query: SearchQuery,
        *,
        after: int | None = None,
        order: Order = "desc",
        limit: int = 50,
        anonymized_only: bool = False,
    ) -> list[IndexRow]:
        """One page of rows matching ``query`` (its regex excepted), after key ``after``."""
        plan = _Plan(query, anonymized_only)
        extra: list[str] = []
        params = list(plan.params)
        if after is not None:
            extra.append(f"{plan.key} {'<' if order == 'desc' else '>'} ?")
            params.append(after)
        direction = "DESC" if order == "desc" else "ASC"
        sql = f"{plan.select} FROM {plan.source}{plan.sql_where(extra)} ORDER BY {plan.key} {direction} LIMIT ?"
        params.append(limit)
        out: list[IndexRow] = []
        for row in self._conn().execute(sql, params):
            if plan.sections:
                section = _section_from_row(row, 1)
                job = _job_from_row(row, 1 + len(_SECTION_COLS))
                out.append(IndexRow(row[0], job, section))
            else:
                out.append(IndexRow(row[0], _job_from_row(row, 1)))
        return out

    def count(self, query: SearchQuery, *, cap: int, anonymized_only: bool = False) -> int:
        """How many rows match (at most ``cap``)."""
        plan = _Plan(query, anonymized_only)
        sql = f"SELECT count(*) FROM (SELECT 1 FROM {plan.count_source}{plan.sql_where()} LIMIT ?)"
        return int(self._conn().execute(sql, [*plan.params, cap]).fetchone()[0])

    def time_bounds(
        self, query: SearchQuery, *, anonymized_only: bool = False
    ) -> tuple[int, int] | None:
        """The earliest and latest start epoch among the matching rows."""
        plan = _Plan(query, anonymized_only)
        conn = self._conn()
        ends = []
        for direction in ("ASC", "DESC"):
            sql = (
                f"SELECT {plan.key} FROM {plan.count_source}{plan.sql_where()}"
                f" ORDER BY {plan.key} {direction} LIMIT 1"
            )
            row = conn.execute(sql, plan.params).fetchone()
            if row is None:
                return None
            ends.append(row[0] >> plan.shift)
        return ends[0], ends[1]

    def histogram(
        self,
        query: SearchQuery,
        bucket: int,
        *,
        anonymized_only: bool = False,
        timeout: float | None = None,
    ) -> dict[int, int] | None:
        """Matching rows per bucket of start time (``epoch // bucket`` -> count); None if
        counting takes longer than ``timeout`` seconds."""
        if bucket < 1:
            raise ValueError("bucket must be at least one second")
        plan = _Plan(query, anonymized_only)
        sql = (
            f"SELECT ({plan.key} >> {plan.shift}) / ? AS b, count(*) FROM {plan.count_source}"
            f"{plan.sql_where()} GROUP BY b"
        )
        conn = self._conn()
        if timeout is not None:
            deadline = time.monotonic() + timeout
            conn.set_progress_handler(
                lambda: 1 if time.monotonic() > deadline else 0, self.progress_steps
            )
        try:
            return {int(b): int(n) for b, n in conn.execute(sql, [bucket, *plan.params])}
        except sqlite3.OperationalError as exc:
            if timeout is not None and "interrupted" in str(exc):
                return None
            raise
        finally:
            if timeout is not None:
                conn.set_progress_handler(None, 0)

    def explain(self, query: SearchQuery, *, anonymized_only: bool = False) -> list[str]:
        """SQLite's plan for a page of ``query`` (for tuning and tests)."""
        plan = _Plan(query, anonymized_only)
        sql = f"EXPLAIN QUERY PLAN {plan.select} FROM {plan.source}{plan.sql_where()} ORDER BY {plan.key} DESC LIMIT 50"
        return [str(r[-1]) for r in self._conn().execute(sql, plan.params)]

    # -- retention -----------------------------------------------------------------
    def retention_entries(self) -> Iterator[RetentionEntry]:
        """Every job still holding data, oldest first (age: end time, else start time)."""
        rows = self._conn().execute(
            "SELECT id, path, coalesce(end_epoch, sort_epoch) AS age, original_bytes,"
            " anonymized_bytes, text_bytes, original_pruned_at IS NULL AND original_bytes > 0,"
            " pruned_at IS NULL FROM jobs"
            " WHERE pruned_at IS NULL ORDER BY age, id"
        ).fetchall()
        for jid, path, age, ob, ab, tb, has_original, has_data in rows:
            yield RetentionEntry(jid, path, age, ob, ab, tb, bool(has_original), bool(has_data))

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
                self._delete_texts(conn, job_id)
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
    def optimize(self) -> None:
        """Merge the FTS5 index into one segment and refresh the planner's statistics."""
        conn = self._conn()
        conn.execute("INSERT INTO section_fts(section_fts) VALUES ('optimize')")
        conn.execute("PRAGMA optimize")

    def stats(self) -> dict[str, Any]:
        """Counts and sizes: jobs, sections, pruned jobs, bytes archived and stored."""
        conn = self._conn()
        jobs, pruned, ob, ab, tb = conn.execute(
            "SELECT count(*), count(pruned_at), coalesce(sum(original_bytes), 0),"
            " coalesce(sum(anonymized_bytes), 0), coalesce(sum(text_bytes), 0) FROM jobs"
        ).fetchone()
        sections = conn.execute("SELECT count(*) FROM sections").fetchone()[0]
        size = 0
        for suffix in ("", "-wal"):
            p = Path(f"{self.path}{suffix}")
            if p.exists():
                size += os.path.getsize(p)
        return {
            "url": self.url,
            "jobs": jobs,
            "pruned_jobs": pruned,
            "sections": sections,
            "original_bytes": ob,
            "anonymized_bytes": ab,
            "text_bytes": tb,
            "database_bytes": size,
        }
