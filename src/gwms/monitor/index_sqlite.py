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

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

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

# indexes: made with the tables, and on every open (so an index added later appears)
_INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_entry ON jobs(entry);
CREATE INDEX IF NOT EXISTS jobs_site ON jobs(site);
CREATE INDEX IF NOT EXISTS jobs_frontend_user ON jobs(frontend_user);
CREATE INDEX IF NOT EXISTS jobs_client_group ON jobs(client_group);
CREATE INDEX IF NOT EXISTS jobs_client_name ON jobs(client_name);
CREATE INDEX IF NOT EXISTS jobs_host ON jobs(host);
CREATE INDEX IF NOT EXISTS jobs_uuid ON jobs(glidein_uuid);
CREATE INDEX IF NOT EXISTS jobs_cluster ON jobs(cluster, proc);
CREATE INDEX IF NOT EXISTS jobs_exit ON jobs(exit_code);
CREATE INDEX IF NOT EXISTS jobs_problems ON jobs(problem_count) WHERE problem_count > 0;
CREATE INDEX IF NOT EXISTS jobs_unfinished ON jobs(finished) WHERE finished = 0;
CREATE INDEX IF NOT EXISTS sections_name ON sections(name);
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
_SECTION_COLS = (
    "id",
    "name",
    "kind",
    "lines",
    "bytes",
    "members",
    "columns",
    "problem",
    "truncated",
)
_SECTION_SELECT = ", ".join(f"s.{c}" for c in _SECTION_COLS)


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _job_from_row(row: Sequence[Any], offset: int = 0) -> JobRow:
    values = dict(zip(_JOB_COLS, row[offset : offset + len(_JOB_COLS)], strict=True))
    info_values = {k: values[k] for k in _INFO_FIELDS}
    for k in _BOOL_FIELDS:
        info_values[k] = bool(info_values[k])
    out = (
        FileState(values["out_size"], values["out_mtime_ns"])
        if values["out_size"] is not None
        else None
    )
    err = (
        FileState(values["err_size"], values["err_mtime_ns"])
        if values["err_size"] is not None
        else None
    )
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
        jw: list[str] = []
        jp: list[Any] = []
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
                jw.append(f"{column} IN ({_marks(len(values))})")
                jp += list(values)
        if query.jobs:
            parts = []
            for ref in query.jobs:
                if ref.proc is None:
                    parts.append("j.cluster = ?")
                    jp.append(ref.cluster)
                else:
                    parts.append("(j.cluster = ? AND j.proc = ?)")
                    jp += [ref.cluster, ref.proc]
            jw.append("(" + " OR ".join(parts) + ")")
        if query.exit is not None:
            codes = list(query.exit.codes)
            if query.exit.negate:
                jw.append(f"j.exit_code IS NOT NULL AND j.exit_code NOT IN ({_marks(len(codes))})")
            else:
                jw.append(f"j.exit_code IN ({_marks(len(codes))})")
            jp += codes
        if query.finished is not None:  # literal, so the partial index serves finished = 0
            jw.append("j.finished = 1" if query.finished else "j.finished = 0")
        if query.problems is not None:
            jw.append("j.problem_count > 0" if query.problems else "j.problem_count = 0")
        if anonymized_only:
            jw.append("j.anonymized = 1")
        self.job_where, self.job_params = jw, jp
        rw: list[str] = []
        rp: list[Any] = []
        if self.fts is not None:
            rw.append("section_fts MATCH ?")
            rp.append(self.fts)
        if self.sections and query.sections:
            parts = []
            for name in query.sections:
                parts.append("s.name GLOB ?" if any(ch in name for ch in "*?[") else "s.name = ?")
                rp.append(name)
            rw.append("(" + " OR ".join(parts) + ")")
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
            clauses.append(
                f"({self.key} >> {SECTION_BITS}) IN (SELECT j.id FROM jobs j WHERE "
                + " AND ".join(inner)
                + ")"
            )
            params += inner_params
        else:
            clauses += self.job_where
            params += self.job_params
        for clause, values in extra:
            clauses.append(clause)
            params += list(values)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def jobs_where(self) -> tuple[str, list[Any]]:
        """The conditions on jobs alone (job filters and time range)."""
        clauses = list(self.job_where)
        params = list(self.job_params)
        if self.job_range is not None:
            clauses.append("j.id BETWEEN ? AND ?")
            params += list(self.job_range)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    @property
    def select(self) -> str:
        """The columns of a page's rows."""
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
        else:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
            if "source" not in columns:  # an index made before pushed logs existed
                conn.execute("ALTER TABLE jobs ADD COLUMN source TEXT NOT NULL DEFAULT 'factory'")
        conn.executescript(_INDEXES)
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
        paths = [r.info.path for r in records]
        if len(set(paths)) != len(paths):
            raise ValueError("a batch names the same job twice")
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
        ids: list[int] = []
        need = sorted(
            {
                r.info.sort_epoch
                for r in records
                if old.get(r.info.path, (0, None))[1] != r.info.sort_epoch
            }
        )
        next_seq = self._next_seqs(conn, need)
        for r in records:
            prior = old.get(r.info.path)
            if prior is not None and prior[1] == r.info.sort_epoch:
                ids.append(prior[0])
                continue
            epoch = r.info.sort_epoch
            seq = next_seq[epoch]
            if seq > MAX_SEQ:
                raise LogIndexError(f"more than {MAX_SEQ + 1} jobs start at epoch {epoch}")
            next_seq[epoch] = seq + 1
            ids.append(make_job_id(epoch, seq))
        job_rows: list[list[Any]] = []
        section_rows: list[tuple[Any, ...]] = []
        text_rows: list[tuple[Any, ...]] = []
        fts_rows: list[tuple[int, str]] = []
        for job_id, record in zip(ids, records, strict=True):
            info = record.info
            problems = list(record.problems)
            sections = record.sections
            if len(sections) > MAX_ORDINAL + 1:
                problems.append(
                    f"{len(sections)} sections: only the first {MAX_ORDINAL + 1} are indexed"
                )
                sections = sections[: MAX_ORDINAL + 1]
            text_bytes = 0
            for ordinal, sec in enumerate(sections):
                sid = section_id(job_id, ordinal)
                if sec.blob is not None and sec.codec is not None:
                    blob, codec_name = sec.blob, sec.codec
                else:
                    blob, codec_name = (
                        self.codec.compress(sec.text.encode("utf-8")),
                        self.codec.name,
                    )
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
            job_rows.append([values[c] for c in _JOB_COLS])
        _insert_rows(conn, "jobs", _JOB_COLS, job_rows)
        _insert_rows(conn, "sections", _SECTION_COLS, section_rows)
        _insert_rows(conn, "section_text", ("id", "codec", "body"), text_rows)
        # FTS5 buffers a transaction's rows in memory only while rowids ascend (a
        # smaller one makes it write out what it holds), so they go in sorted
        fts_rows.sort()
        _insert_rows(conn, "section_fts", ("rowid", "body"), fts_rows)
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

    def _row(self, plan: _Plan, row: Sequence[Any]) -> IndexRow:
        if plan.sections:
            section = _section_from_row(row, 1)
            return IndexRow(row[0], _job_from_row(row, 1 + len(_SECTION_COLS)), section)
        return IndexRow(row[0], _job_from_row(row, 1))

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
        plan = self._plan(query, anonymized_only)
        direction = "DESC" if order == "desc" else "ASC"
        beyond = "<" if order == "desc" else ">"
        conn = self._conn()
        if not plan.job_driven:
            extra = [(f"{plan.key} {beyond} ?", [after])] if after is not None else []
            where, params = plan.where(extra)
            sql = f"{plan.select} FROM {plan.from_(rows=True)}{where} ORDER BY {plan.key} {direction} LIMIT ?"
            return [self._row(plan, r) for r in conn.execute(sql, [*params, limit])]
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
            out.extend(self._row(plan, r) for r in conn.execute(sql, [*params, limit - len(out)]))
            if len(ids) < chunk:
                break
            job_after = ids[-1] + (-1 if order == "desc" else 1)
            chunk = min(chunk * 4, 4096)
        return out

    def count(
        self,
        query: SearchQuery,
        *,
        cap: int,
        anonymized_only: bool = False,
        timeout: float | None = None,
    ) -> int | None:
        """How many rows match (at most ``cap``); None if counting takes over ``timeout`` s."""
        plan = self._plan(query, anonymized_only)
        where, params = plan.where()
        sql = f"SELECT count(*) FROM (SELECT 1 FROM {plan.from_(rows=False)}{where} LIMIT ?)"
        rows = self._run(sql, [*params, cap], timeout)
        return None if rows is None else int(rows[0][0])

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

    def time_bounds(
        self, query: SearchQuery, *, anonymized_only: bool = False
    ) -> tuple[int, int] | None:
        """The earliest and latest start epoch among the matching rows."""
        plan = self._plan(query, anonymized_only)
        where, params = plan.where()
        conn = self._conn()
        if plan.job_driven:
            row = conn.execute(
                f"SELECT min({plan.key}), max({plan.key}) FROM {plan.from_(rows=False)}{where}",
                params,
            ).fetchone()
            return None if row[0] is None else (row[0] >> plan.shift, row[1] >> plan.shift)
        ends = []
        for direction in ("ASC", "DESC"):
            sql = (
                f"SELECT {plan.key} FROM {plan.from_(rows=False)}{where}"
                f" ORDER BY {plan.key} {direction} LIMIT 1"
            )
            row = conn.execute(sql, params).fetchone()
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
        plan = self._plan(query, anonymized_only)
        where, params = plan.where()
        sql = (
            f"SELECT ({plan.key} >> {plan.shift}) / ? AS b, count(*) FROM {plan.from_(rows=False)}"
            f"{where} GROUP BY b"
        )
        rows = self._run(sql, [bucket, *params], timeout)
        return None if rows is None else {int(b): int(n) for b, n in rows}

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
    def retention_entries(self) -> Iterator[RetentionEntry]:
        """Every job still holding data, oldest first (age: end time, else start time)."""
        rows = (
            self._conn()
            .execute(
                "SELECT id, path, coalesce(end_epoch, sort_epoch) AS age, original_bytes,"
                " anonymized_bytes, text_bytes, original_pruned_at IS NULL AND original_bytes > 0,"
                " pruned_at IS NULL FROM jobs"
                " WHERE pruned_at IS NULL ORDER BY age, id"
            )
            .fetchall()
        )
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
