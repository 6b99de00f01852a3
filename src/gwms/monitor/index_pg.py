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

import json
import re
import threading
import time
from collections.abc import Iterator, Sequence
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
)

# The row shapes are the SQLite index's (same columns, same order): shared on purpose.
from gwms.monitor.index_sqlite import (
    _BOOL_FIELDS,
    _INFO_FIELDS,
    _JOB_COLS,
    _SECTION_COLS,
    _job_from_row,
    _section_from_row,
)
from gwms.monitor.search import JobRef, Order, SearchQuery, Term, count_lines

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

_INDEXES = """
CREATE INDEX IF NOT EXISTS section_fts_tsv ON section_fts USING gin (tsv);
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

_JOB_SELECT = ", ".join(f"j.{c}" for c in _JOB_COLS)
_SECTION_SELECT = ", ".join(f"s.{c}" for c in _SECTION_COLS)


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
        clauses: list[str] = []  # on the key table
        params: list[Any] = []
        jclauses: list[str] = []  # on jobs
        jparams: list[Any] = []
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
            parts = []
            for name in query.sections:
                if any(ch in name for ch in "*?["):
                    parts.append("s.name ~ %s")
                    params.append(glob_to_regex(name))
                else:
                    parts.append("s.name = %s")
                    params.append(name)
            clauses.append("(" + " OR ".join(parts) + ")")
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
                jclauses.append(f"{column} = ANY(%s)")
                jparams.append(list(values))
        if query.jobs:
            parts = []
            for ref in query.jobs:
                if ref.proc is None:
                    parts.append("j.cluster = %s")
                    jparams.append(ref.cluster)
                else:
                    parts.append("(j.cluster = %s AND j.proc = %s)")
                    jparams += [ref.cluster, ref.proc]
            jclauses.append("(" + " OR ".join(parts) + ")")
        if query.exit is not None:
            codes = list(query.exit.codes)
            if query.exit.negate:
                jclauses.append("j.exit_code IS NOT NULL AND NOT (j.exit_code = ANY(%s))")
            else:
                jclauses.append("j.exit_code = ANY(%s)")
            jparams.append(codes)
        if query.finished is not None:
            jclauses.append("j.finished = 1" if query.finished else "j.finished = 0")
        if query.problems is not None:
            jclauses.append("j.problem_count > 0" if query.problems else "j.problem_count = 0")
        if anonymized_only:
            jclauses.append("j.anonymized = 1")
        if query.time_from is not None or query.time_to is not None:
            lo, hi = job_id_range(query.time_from, query.time_to)
            if self.sections:
                lo, hi = lo << SECTION_BITS, (hi << SECTION_BITS) | MAX_ORDINAL
            clauses.append(f"{self.key} BETWEEN %s AND %s")
            params += [lo, hi]
        if not self.sections:
            clauses, params = jclauses + clauses, jparams + params
        elif jclauses:
            clauses.append(
                f"(s.id >> {SECTION_BITS}) IN (SELECT j.id FROM jobs j WHERE "
                + " AND ".join(jclauses)
                + ")"
            )
            params += jparams
        self.clauses, self.params = clauses, params

    @property
    def from_(self) -> str:
        """The key table: sections, or jobs."""
        return "sections s" if self.sections else "jobs j"

    def where(self, extra: Sequence[tuple[str, Sequence[Any]]] = ()) -> tuple[str, list[Any]]:
        """The WHERE clause and its parameters."""
        clauses = list(self.clauses)
        params = list(self.params)
        for clause, values in extra:
            clauses.append(clause)
            params += list(values)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def page_sql(self, where: str, direction: str) -> str:
        """A page: the keys in order (``LIMIT %s`` last), with their job (and section)."""
        if self.sections:
            return (
                f"SELECT s.id, {_SECTION_SELECT}, {_JOB_SELECT} FROM (SELECT * FROM sections s"
                f"{where} ORDER BY s.id {direction} LIMIT %s) AS s"
                f" JOIN jobs j ON j.id = (s.id >> {SECTION_BITS}) ORDER BY s.id {direction}"
            )
        return f"SELECT j.id, {_JOB_SELECT} FROM jobs j{where} ORDER BY j.id {direction} LIMIT %s"


class PostgresIndex:
    """The :class:`~gwms.monitor.index.LogIndex` in a PostgreSQL database.

    Args:
        url: a libpq URL (``postgresql://user:password@host:port/dbname?...``).
        create: make the tables if missing (else a database without them is an error).
        codec: how section texts are compressed when a record does not bring them so.
    """

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
        self._local = threading.local()
        self._all: dict[int, Any] = {}
        self._lock = threading.Lock()
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
                for name in _INFO_FIELDS:  # columns added since the index was made
                    if name not in have:
                        conn.execute(f"ALTER TABLE jobs ADD COLUMN {_info_column_sql(name)}")
            conn.execute(_INDEXES)

    # -- connections ---------------------------------------------------------------
    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            try:
                conn = self._psycopg.connect(self._dsn, autocommit=True)
            except self._psycopg.Error as exc:
                message = (
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                )
                raise LogIndexError(f"cannot open the log index {self.url}: {message}") from None
            self._local.conn = conn
            with self._lock:
                alive = {t.ident for t in threading.enumerate()}
                for ident in [i for i in self._all if i not in alive]:
                    try:
                        self._all.pop(ident).close()
                    except self._psycopg.Error:
                        pass
                self._all[threading.get_ident()] = conn
        return conn

    def _schema_version(self, conn: Any) -> int | None:
        row = conn.execute("SELECT to_regclass('meta')").fetchone()
        if row[0] is None:
            return None
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else None

    def close(self) -> None:
        """Close every connection this object opened (in any thread)."""
        with self._lock:
            conns, self._all = list(self._all.values()), {}
        for conn in conns:
            try:
                conn.close()
            except self._psycopg.Error:
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

        A job keeps its id when it is re-indexed with the same start time. Rows go in
        with ``COPY``; the full text is made by the server from the words of each part.
        """
        paths = [r.info.path for r in records]
        if len(set(paths)) != len(paths):
            raise ValueError("a batch names the same job twice")
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
        need = sorted(
            {
                r.info.sort_epoch
                for r in records
                if old.get(r.info.path, (0, None))[1] != r.info.sort_epoch
            }
        )
        next_seq = self._next_seqs(conn, need)
        ids: list[int] = []
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
        fts_ids: list[int] = []
        fts_parts: list[int] = []
        fts_words: list[str] = []
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
                for part, words in enumerate(text_parts(sec.text)):
                    fts_ids.append(sid)
                    fts_parts.append(part)
                    fts_words.append(words)
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
        cur = conn.cursor()
        for table, columns, rows in (
            ("jobs", _JOB_COLS, job_rows),
            ("sections", _SECTION_COLS, section_rows),
            ("section_text", ("id", "codec", "body"), text_rows),
        ):
            if not rows:
                continue
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
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

    # -- reading jobs --------------------------------------------------------------
    def _jobs(self, where: str, params: Sequence[Any], limit: int) -> list[JobRow]:
        rows = self._conn().execute(
            f"SELECT {_JOB_SELECT} FROM jobs j WHERE {where} ORDER BY j.id DESC LIMIT %s",
            [*params, limit],
        )
        return [_job_from_row(r) for r in rows]

    def job(self, job_id: int) -> JobRow | None:
        """The job with this id."""
        found = self._jobs("j.id = %s", [job_id], 1)
        return found[0] if found else None

    def job_by_path(self, path: str) -> JobRow | None:
        """The job with this path."""
        found = self._jobs("j.path = %s", [path], 1)
        return found[0] if found else None

    def jobs_by_ref(self, ref: JobRef, *, limit: int = 20) -> list[JobRow]:
        """Jobs with this factory id (``C`` alone: every proc of the cluster), newest first."""
        if ref.proc is None:
            return self._jobs("j.cluster = %s", [ref.cluster], limit)
        return self._jobs("j.cluster = %s AND j.proc = %s", [ref.cluster, ref.proc], limit)

    def jobs_by_uuid(self, uuid: str, *, limit: int = 20) -> list[JobRow]:
        """Jobs with this glidein uuid (lowercase)."""
        return self._jobs("j.glidein_uuid = %s", [uuid.lower()], limit)

    def sections(self, job_id: int) -> list[SectionInfo]:
        """The sections of a job, in file order."""
        lo = job_id << SECTION_BITS
        rows = self._conn().execute(
            f"SELECT {_SECTION_SELECT} FROM sections s WHERE s.id BETWEEN %s AND %s"
            " ORDER BY s.id DESC",
            (lo, lo | MAX_ORDINAL),
        )
        return [_section_from_row(r) for r in rows]

    def section_texts(self, section_ids: Sequence[int]) -> dict[int, str]:
        """The texts of sections, by id (missing ids are left out)."""
        out: dict[int, str] = {}
        if not section_ids:
            return out
        rows = self._conn().execute(
            "SELECT id, codec, body FROM section_text WHERE id = ANY(%s)", (list(section_ids),)
        )
        for sid, codec, body in rows:
            out[sid] = codec_named(codec).decompress(bytes(body)).decode("utf-8", "replace")
        return out

    # -- searching -----------------------------------------------------------------
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
        plan = _Plan(query, anonymized_only)
        direction = "DESC" if order == "desc" else "ASC"
        beyond = "<" if order == "desc" else ">"
        extra = [(f"{plan.key} {beyond} %s", [after])] if after is not None else []
        where, params = plan.where(extra)
        sql = plan.page_sql(where, direction)
        return [self._row(plan, r) for r in self._conn().execute(sql, [*params, limit])]

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

    def count(
        self,
        query: SearchQuery,
        *,
        cap: int,
        anonymized_only: bool = False,
        timeout: float | None = None,
    ) -> int | None:
        """How many rows match (at most ``cap``); None if counting takes over ``timeout`` s."""
        plan = _Plan(query, anonymized_only)
        where, params = plan.where()
        sql = f"SELECT count(*) FROM (SELECT 1 FROM {plan.from_}{where} LIMIT %s) AS c"
        rows = self._run(sql, [*params, cap], timeout)
        return None if rows is None else int(rows[0][0])

    def time_bounds(
        self, query: SearchQuery, *, anonymized_only: bool = False
    ) -> tuple[int, int] | None:
        """The earliest and latest start epoch among the matching rows."""
        plan = _Plan(query, anonymized_only)
        where, params = plan.where()
        conn = self._conn()
        ends = []
        for direction in ("ASC", "DESC"):
            row = conn.execute(
                f"SELECT {plan.key} FROM {plan.from_}{where} ORDER BY {plan.key} {direction} LIMIT 1",
                params,
            ).fetchone()
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
        where, params = plan.where()
        sql = (
            f"SELECT ({plan.key} >> {plan.shift}) / %s AS b, count(*) FROM {plan.from_}"
            f"{where} GROUP BY b"
        )
        rows = self._run(sql, [bucket, *params], timeout)
        return None if rows is None else {int(b): int(n) for b, n in rows}

    def explain(self, query: SearchQuery, *, anonymized_only: bool = False) -> list[str]:
        """PostgreSQL's plan for a page of ``query`` (for tuning and tests)."""
        plan = _Plan(query, anonymized_only)
        where, params = plan.where()
        sql = "EXPLAIN " + plan.page_sql(where, "DESC")
        return [str(r[0]) for r in self._conn().execute(sql, [*params, 50])]

    # -- retention -----------------------------------------------------------------
    def retention_entries(self) -> Iterator[RetentionEntry]:
        """Every job still holding data, oldest first (age: end time, else start time)."""
        rows = (
            self._conn()
            .execute(
                "SELECT id, path, coalesce(end_epoch, sort_epoch) AS age, original_bytes,"
                " anonymized_bytes, text_bytes,"
                " original_pruned_at IS NULL AND original_bytes > 0, pruned_at IS NULL"
                " FROM jobs WHERE pruned_at IS NULL ORDER BY age, id"
            )
            .fetchall()
        )
        for jid, path, age, ob, ab, tb, has_original, has_data in rows:
            yield RetentionEntry(jid, path, age, ob, ab, tb, bool(has_original), bool(has_data))

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

    def stats(self) -> dict[str, Any]:
        """Counts and sizes: jobs, sections, pruned jobs, bytes archived and stored."""
        conn = self._conn()
        jobs, pruned, ob, ab, tb = conn.execute(
            "SELECT count(*), count(pruned_at), coalesce(sum(original_bytes), 0),"
            " coalesce(sum(anonymized_bytes), 0), coalesce(sum(text_bytes), 0) FROM jobs"
        ).fetchone()
        sections = conn.execute("SELECT count(*) FROM sections").fetchone()[0]
        (size,) = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c)), 0) FROM unnest("
            "ARRAY['meta', 'jobs', 'sections', 'section_text', 'section_fts']::regclass[]) AS c"
        ).fetchone()
        return {
            "url": self.url,
            "jobs": jobs,
            "pruned_jobs": pruned,
            "sections": sections,
            "original_bytes": int(ob),
            "anonymized_bytes": int(ab),
            "text_bytes": int(tb),
            "database_bytes": int(size),
        }
