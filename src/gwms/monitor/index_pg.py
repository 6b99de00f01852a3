"""The log index in PostgreSQL: the same store as :mod:`gwms.monitor.index_sqlite`, shared.

For a deployment where several monitors (or a monitor and remote indexers) use one
index. Selected by a ``postgresql://user@host:port/dbname`` URL (libpq's URL syntax:
``?host=/run/postgresql`` for a unix socket, ``?options=-csearch_path%3Dgwms`` for a
schema of its own); needs the ``psycopg`` package (a dependency).

Tables (schema version 1; the same ids and columns as the SQLite index)::

    meta(key, value)                    schema version, creation time
    jobs(id, path UNIQUE, columns..., summary, problems, checkpoint, sizes)
    sections(id, name, kind, lines, bytes, members, columns, problem, truncated)
    section_text(id, codec, body)       each section's text, compressed by the indexer
    section_fts(id, part, tsv)          full text: tsvector of each part of a section (GIN)

Full text is PostgreSQL's ``tsvector``/``tsquery`` with the ``simple`` configuration,
fed the words exactly as the search module splits them (runs of letters and digits,
lower-cased), so a word matches here where it matches in SQLite's FTS5. A tsvector
holds at most 16,383 positions and 1 MB, so a section's words are stored in parts of at
most :data:`PART_WORDS` words that overlap by :data:`PART_OVERLAP` words (a phrase that
long still matches across a boundary). The query is evaluated per section: a term
matches a section when one of its parts holds it, so ``a b`` finds ``a`` and ``b`` in
different parts, and ``-c`` excludes ``c`` from every part.

Ids are the time-ordered keys of :mod:`gwms.monitor.index`, so keyset pages, time
ranges and histograms are comparisons and shifts of the primary keys, as in SQLite.
Every value reaches SQL as a bound parameter. Writers take a transaction-level advisory
lock, so two indexers sharing a database never hand out the same id.

A regular expression is applied by the caller (:class:`~gwms.monitor.searcher.Searcher`)
over the rows and texts the store returns, as for SQLite.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

from gwms.monitor.compression import Codec, default_codec
from gwms.monitor.index import (
    MAX_ORDINAL,
    MAX_SEQ,
    SECTION_BITS,
    SEQ_BITS,
    TIME_SHIFT,
    IndexRow,
    JobInfo,
    JobRecord,
    LogIndexError,
    job_id_range,
    make_job_id,
)
from gwms.monitor.index_rows import (
    INFO_FIELDS,
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
from gwms.monitor.search import Order, SearchQuery, Term
from gwms.monitor.thread_connections import PerThreadConnections

__all__ = [
    "PART_OVERLAP",
    "PART_WORDS",
    "SCHEMA_VERSION",
    "PostgresIndex",
    "glob_to_regex",
    "text_parts",
    "tsquery_of",
]

SCHEMA_VERSION = 1
#: Words per tsvector part (below PostgreSQL's 16,383 positions) and the overlap of parts.
PART_WORDS = 16_000
PART_OVERLAP = 32
#: Characters of words per part (keeps a part's tsvector far below PostgreSQL's 1 MB).
PART_CHARS = 200_000
#: The advisory lock writers hold while they allocate ids and write.
_WRITE_LOCK = 0x67776D73  # "gwms"

_WORD = re.compile(r"[^\W_]+")

_JOB_TYPES = {"str": "text", "int": "bigint", "bool": "smallint", "float": "double precision"}


def _info_column_sql(name: str) -> str:
    """The DDL of one :class:`JobInfo` column (its type from the field's annotation)."""
    f = JobInfo.__dataclass_fields__[name]
    sql_type = _JOB_TYPES.get(str(f.type).split("|")[0].strip(), "text")
    if name == "path":
        return "path text NOT NULL UNIQUE"
    if isinstance(f.default, (str, int)) and not isinstance(f.default, bool | float):
        default = f"'{f.default}'" if isinstance(f.default, str) else str(f.default)
        if isinstance(f.default, str) and not re.fullmatch(r"\w*", f.default):
            raise ValueError(f"unexpected default for {name}")  # a programming error
        return f"{name} {sql_type} NOT NULL DEFAULT {default}"
    return f"{name} {sql_type}"


def _job_columns_sql() -> str:
    """The job columns' DDL, from :class:`JobInfo`'s fields (so new fields appear here)."""
    out = ["id bigint PRIMARY KEY"]
    out += [_info_column_sql(name) for name in JobInfo.__dataclass_fields__]
    out += [
        "summary text NOT NULL DEFAULT '{}'",
        "problems text NOT NULL DEFAULT '[]'",
        "out_size bigint",
        "out_mtime_ns bigint",
        "err_size bigint",
        "err_mtime_ns bigint",
        "indexed_at double precision NOT NULL",
        "original_bytes bigint NOT NULL DEFAULT 0",
        "anonymized_bytes bigint NOT NULL DEFAULT 0",
        "text_bytes bigint NOT NULL DEFAULT 0",
        "pruned_at double precision",
        "original_pruned_at double precision",
    ]
    return ",\n    ".join(out)


_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    {_job_columns_sql()}
);
CREATE TABLE IF NOT EXISTS sections (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    kind text NOT NULL,
    lines bigint NOT NULL,
    bytes bigint NOT NULL,
    members integer NOT NULL DEFAULT 0,
    columns integer NOT NULL DEFAULT 0,
    problem text,
    truncated smallint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS section_text (
    id bigint PRIMARY KEY,
    codec text NOT NULL,
    body bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS section_fts (
    id bigint NOT NULL,
    part integer NOT NULL,
    tsv tsvector NOT NULL,
    PRIMARY KEY (id, part)
);
"""

_INDEXES = (
    "CREATE INDEX IF NOT EXISTS section_fts_tsv ON section_fts USING gin (tsv);" + JOB_INDEXES
)


# ----------------------------------------------------------------------------------
# pure helpers: words, parts, queries


def text_parts(text: str) -> list[str]:
    """The words of ``text`` (as the search splits them, lower-cased) in overlapping parts.

    Each part is the space-joined words of at most :data:`PART_WORDS` words and about
    :data:`PART_CHARS` characters; consecutive parts share :data:`PART_OVERLAP` words.
    An empty text has no parts.
    """
    words = _WORD.findall(text.lower())
    if not words:
        return []
    if len(words) <= PART_WORDS and len(text) <= PART_CHARS:
        return [" ".join(words)]
    parts: list[str] = []
    start = 0
    n = len(words)
    while True:
        end = start
        chars = 0
        while end < n and end - start < PART_WORDS and chars < PART_CHARS:
            chars += len(words[end]) + 1
            end += 1
        parts.append(" ".join(words[start:end]))
        if end >= n:
            return parts
        start = max(start + 1, end - PART_OVERLAP)


def tsquery_of(term: Term) -> str:
    """The ``to_tsquery('simple', ...)`` text of one term: a phrase of quoted words.

    Words hold only letters and digits (the search's split), so quoting them is enough:
    nothing in a term can act as tsquery syntax.
    """
    words = [w for w in term.words if _WORD.fullmatch(w)]
    if not words:
        raise ValueError(f"no word in term {term!r}")
    body = " <-> ".join(f"'{w}'" for w in words)
    return body + ":*" if term.prefix else body


def glob_to_regex(pattern: str) -> str:
    """A PostgreSQL regex (``~``) matching what SQLite's ``GLOB`` matches: ``*``, ``?``,
    ``[...]`` (``[^...]`` negated), case-sensitive, the whole string."""
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:  # no closing bracket: a literal '['
                out.append(r"\[")
            else:
                body = pattern[i + 1 : j]
                negate = body.startswith("^")
                if negate:
                    body = body[1:]
                body = body.replace("\\", "\\\\")
                out.append("[" + ("^" if negate else "") + body + "]")
                i = j
        else:
            out.append(re.escape(c) if not c.isalnum() else c)
        i += 1
    out.append("$")
    return "".join(out)


def _display_url(url: str) -> str:
    """The URL without its password."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


class _PostgresDialect:
    """PostgreSQL's value lists (``= ANY(%s)``, one array parameter) and globs (as a
    regex, :func:`glob_to_regex`): a :class:`~gwms.monitor.index_sql.SqlDialect`."""

    mark = "%s"

    def one_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column = ANY(%s)``."""
        return f"{column} = ANY(%s)", [list(values)]

    def none_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``NOT (column = ANY(%s))``."""
        return f"NOT ({column} = ANY(%s))", [list(values)]

    def glob(self, column: str, pattern: str) -> tuple[str, list[Any]]:
        """``column ~ %s`` with the glob as a regex."""
        return f"{column} ~ %s", [glob_to_regex(pattern)]


_DIALECT = _PostgresDialect()


class _Plan:
    """The FROM and WHERE of one search (rows are sections when texts are searched).

    Section searches run on ``sections`` alone, the job filters as a set of job ids
    each section's job is looked up in; a page joins the jobs of its rows only. (Joining
    the jobs first made the planner misjudge how many rows the full text leaves, and
    test every section's tsvector instead of asking the GIN index.)
    """

    def __init__(self, query: SearchQuery, anonymized_only: bool) -> None:
        self.sections = query.has_text or bool(query.sections)
        self.key = "s.id" if self.sections else "j.id"
        self.shift = TIME_SHIFT if self.sections else SEQ_BITS
        self.job_driven = False  # the key table always drives (see the class docstring)
        clauses: list[str] = []  # on the key table
        params: list[Any] = []
        if query.text is not None:

            def has(term: Term) -> str:
                params.append(tsquery_of(term))
                return (
                    "s.id IN (SELECT f.id FROM section_fts f"
                    " WHERE f.tsv @@ to_tsquery('simple', %s))"
                )

            groups = []
            for group in query.text.groups:
                groups.append("(" + " AND ".join(has(t) for t in group) + ")")
            clauses.append("(" + " OR ".join(groups) + ")")
            for t in query.text.excluded:
                clauses.append("NOT " + has(t))
        if self.sections and query.sections:
            clause, names_params = section_name_condition(query.sections, _DIALECT)
            clauses.append(clause)
            params += names_params
        jclauses, jparams = job_conditions(query, anonymized_only, _DIALECT)
        if query.time_from is not None or query.time_to is not None:
            lo, hi = job_id_range(query.time_from, query.time_to)
            if self.sections:
                lo, hi = lo << SECTION_BITS, (hi << SECTION_BITS) | MAX_ORDINAL
            clauses.append(f"{self.key} BETWEEN %s AND %s")
            params += [lo, hi]
        if not self.sections:
            clauses, params = jclauses + clauses, jparams + params
        elif jclauses:
            clauses.append(section_of_jobs("s.id", jclauses))
            params += jparams
        self.clauses, self.params = clauses, params

    def from_(self, *, rows: bool = False) -> str:
        """The key table: sections, or jobs (a page joins the rest in :meth:`page_sql`)."""
        return "sections s" if self.sections else "jobs j"

    def where(self, extra: Sequence[tuple[str, Sequence[Any]]] = ()) -> tuple[str, list[Any]]:
        """The WHERE clause and its parameters."""
        return where_sql(self.clauses, self.params, extra)

    def page_sql(self, where: str, direction: str) -> str:
        """A page: the keys in order (``LIMIT %s`` last), with their job (and section)."""
        if self.sections:
            return (
                f"SELECT s.id, {SECTION_SELECT}, {JOB_SELECT} FROM (SELECT * FROM sections s"
                f"{where} ORDER BY s.id {direction} LIMIT %s) AS s"
                f" JOIN jobs j ON j.id = (s.id >> {SECTION_BITS}) ORDER BY s.id {direction}"
            )
        return f"SELECT j.id, {JOB_SELECT} FROM jobs j{where} ORDER BY j.id {direction} LIMIT %s"


class PostgresIndex(SqlLogIndex[_Plan], PerThreadConnections[Any]):
    """The :class:`~gwms.monitor.index.LogIndex` in a PostgreSQL database.

    Args:
        url: a libpq URL (``postgresql://user:password@host:port/dbname?...``).
        create: make the tables if missing (else a database without them is an error).
        codec: how section texts are compressed when a record does not bring them so.
    """

    mark = _DIALECT.mark

    def __init__(self, url: str, *, create: bool = True, codec: Codec | None = None) -> None:
        try:
            import psycopg
        except ImportError:  # pragma: no cover - a dependency
            raise LogIndexError(
                "the PostgreSQL log index needs the psycopg package",
                hint="pip install 'psycopg[binary]'",
            ) from None
        self._psycopg = psycopg
        self._dsn = url
        self.url = _display_url(url)
        self.codec = codec or default_codec()
        self._init_connections(psycopg.Error)
        conn = self._conn()
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            version = self._schema_version(conn)
            if version is None:
                if not create:
                    raise LogIndexError(f"no log index in {self.url}")
                conn.execute(_SCHEMA)
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('schema_version', %s), ('created', %s)"
                    " ON CONFLICT (key) DO NOTHING",
                    (str(SCHEMA_VERSION), str(time.time())),
                )
            elif version != SCHEMA_VERSION:
                raise LogIndexError(
                    f"{self.url} has log index schema {version}; this gwms uses {SCHEMA_VERSION}"
                )
            else:
                have = {
                    r[0]
                    for r in conn.execute(
                        "SELECT attname FROM pg_attribute WHERE attrelid = 'jobs'::regclass"
                        " AND attnum > 0 AND NOT attisdropped"
                    )
                }
                for name in INFO_FIELDS:  # columns added since the index was made
                    if name not in have:
                        conn.execute(f"ALTER TABLE jobs ADD COLUMN {_info_column_sql(name)}")
            conn.execute(_INDEXES)

    # -- connections ---------------------------------------------------------------
    def _conn(self) -> Any:
        conn = self._thread_conn()
        if conn is None or conn.closed:
            try:
                conn = self._psycopg.connect(self._dsn, autocommit=True)
            except self._psycopg.Error as exc:
                message = (
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                )
                raise LogIndexError(f"cannot open the log index {self.url}: {message}") from None
            self._adopt_conn(conn)
        return conn

    def _schema_version(self, conn: Any) -> int | None:
        row = conn.execute("SELECT to_regclass('meta')").fetchone()
        if row[0] is None:
            return None
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else None

    # -- writing -------------------------------------------------------------------
    def store(self, records: Sequence[JobRecord]) -> list[int]:
        """Insert or replace jobs with their sections, all in one transaction; their ids.

        A job keeps its id when it is re-indexed with the same start time. Rows go in
        with ``COPY``; the full text is made by the server from the words of each part.
        """
        paths = distinct_paths(records)
        conn = self._conn()
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            return self._store_batch(conn, records, paths)

    def _store_batch(self, conn: Any, records: Sequence[JobRecord], paths: list[str]) -> list[int]:
        old: dict[str, tuple[int, int]] = {
            path: (jid, epoch)
            for path, jid, epoch in conn.execute(
                "SELECT path, id, sort_epoch FROM jobs WHERE path = ANY(%s)", (paths,)
            )
        }
        if old:
            old_ids = [jid for jid, _e in old.values()]
            self._delete_texts(conn, old_ids)
            conn.execute("DELETE FROM jobs WHERE id = ANY(%s)", (old_ids,))
        ids = assign_ids(records, old, self._next_seqs(conn, epochs_needing_ids(records, old)))
        rows = batch_rows(ids, records, self.codec)
        fts_ids: list[int] = []
        fts_parts: list[int] = []
        fts_words: list[str] = []
        for sid, text in rows.searchable:
            for part, words in enumerate(text_parts(text)):
                fts_ids.append(sid)
                fts_parts.append(part)
                fts_words.append(words)
        cur = conn.cursor()
        for table, columns, table_rows in (
            ("jobs", JOB_COLS, rows.jobs),
            ("sections", SECTION_COLS, rows.sections),
            ("section_text", TEXT_COLS, rows.texts),
        ):
            if not table_rows:
                continue
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in table_rows:
                    copy.write_row(row)
        if fts_ids:
            conn.execute(
                "INSERT INTO section_fts (id, part, tsv)"
                " SELECT t.id, t.part, to_tsvector('simple', t.words)"
                " FROM unnest(%s::bigint[], %s::integer[], %s::text[]) AS t(id, part, words)",
                (fts_ids, fts_parts, fts_words),
            )
        return ids

    @staticmethod
    def _next_seqs(conn: Any, epochs: Sequence[int]) -> dict[int, int]:
        """The next free sequence number of each start epoch."""
        out: dict[int, int] = {}
        if not epochs:
            return out
        for epoch in epochs:
            make_job_id(epoch, 0)  # checks the range
        rows = conn.execute(
            f"SELECT e, (SELECT max(id) FROM jobs WHERE id BETWEEN e << {SEQ_BITS}"
            f" AND (e << {SEQ_BITS}) | {MAX_SEQ}) FROM unnest(%s::bigint[]) AS e",
            (list(epochs),),
        )
        for epoch, top in rows:
            out[int(epoch)] = 0 if top is None else (top & MAX_SEQ) + 1
        return out

    @staticmethod
    def _delete_texts(conn: Any, job_ids: Sequence[int]) -> None:
        """Remove the sections, texts and full-text rows of jobs."""
        if not job_ids:
            return
        for table in ("section_fts", "section_text", "sections"):
            conn.execute(
                f"DELETE FROM {table} t USING unnest(%s::bigint[]) AS o(jid)"
                f" WHERE t.id BETWEEN (o.jid << {SECTION_BITS})"
                f" AND ((o.jid << {SECTION_BITS}) | {MAX_ORDINAL})",
                (list(job_ids),),
            )

    def section_texts(self, section_ids: Sequence[int]) -> dict[int, str]:
        """The texts of sections, by id (missing ids are left out)."""
        out: dict[int, str] = {}
        if not section_ids:
            return out
        rows = self._conn().execute(
            "SELECT id, codec, body FROM section_text WHERE id = ANY(%s)", (list(section_ids),)
        )
        for sid, codec, body in rows:
            out[sid] = decode_text(codec, body)
        return out

    # -- searching -----------------------------------------------------------------
    def _plan(self, query: SearchQuery, anonymized_only: bool) -> _Plan:
        return _Plan(query, anonymized_only)

    def _page(self, plan: _Plan, *, after: int | None, order: Order, limit: int) -> list[IndexRow]:
        """One page of ``plan``'s rows, after key ``after``."""
        direction, beyond = sql_order(order)
        extra = [(f"{plan.key} {beyond} %s", [after])] if after is not None else []
        where, params = plan.where(extra)
        sql = plan.page_sql(where, direction)
        return [index_row(plan.sections, r) for r in self._conn().execute(sql, [*params, limit])]

    def _run(self, sql: str, params: Sequence[Any], timeout: float | None) -> list[Any] | None:
        """All rows of a statement; None if it ran past ``timeout`` seconds (cancelled)."""
        conn = self._conn()
        if timeout is None:
            return conn.execute(sql, params).fetchall()
        if timeout <= 0:
            return None
        try:
            with conn.transaction():
                conn.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
                return conn.execute(sql, params).fetchall()
        except self._psycopg.errors.QueryCanceled:
            return None

    def explain(self, query: SearchQuery, *, anonymized_only: bool = False) -> list[str]:
        """PostgreSQL's plan for a page of ``query`` (for tuning and tests)."""
        plan = self._plan(query, anonymized_only)
        where, params = plan.where()
        sql = "EXPLAIN " + plan.page_sql(where, "DESC")
        return [str(r[0]) for r in self._conn().execute(sql, [*params, 50])]

    # -- retention -----------------------------------------------------------------
    def drop_data(self, job_ids: Sequence[int], *, original_only: bool = False) -> None:
        """Record pruned archives; drop the texts of fully pruned jobs (rows stay)."""
        ids = list(job_ids)
        if not ids:
            return
        now = time.time()
        conn = self._conn()
        with conn.transaction():
            if original_only:
                conn.execute(
                    "UPDATE jobs SET original_pruned_at = %s, original_bytes = 0"
                    " WHERE id = ANY(%s)",
                    (now, ids),
                )
                return
            self._delete_texts(conn, ids)
            conn.execute(
                "UPDATE jobs SET pruned_at = %s, original_pruned_at = coalesce(original_pruned_at, %s),"
                " original_bytes = 0, anonymized_bytes = 0, text_bytes = 0 WHERE id = ANY(%s)",
                (now, now, ids),
            )

    # -- maintenance ---------------------------------------------------------------
    def maintain(self) -> None:
        """Refresh the planner's statistics (``ANALYZE``; autovacuum does it too, later)."""
        self._conn().execute("ANALYZE jobs, sections, section_fts")

    def _database_bytes(self) -> int:
        """The size of the index's tables with their indexes and TOAST."""
        conn = self._conn()
        (size,) = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c)), 0) FROM unnest("
            "ARRAY['meta', 'jobs', 'sections', 'section_text', 'section_fts']::regclass[]) AS c"
        ).fetchone()
        return int(size)
