"""The SQL both log index stores share: :class:`SqlLogIndex`, the search filters, indexes.

The SQLite store (:mod:`gwms.monitor.index_sqlite`) and the PostgreSQL store
(:mod:`gwms.monitor.index_pg`) share their tables' shapes and the time-ordered keys of
:mod:`gwms.monitor.index`, so looking jobs up, counting, time bounds, histograms and
retention are the same statements in both, but for the parameter mark (``?`` /
``%s``); the conditions a search puts on jobs and section names differ only in how
a value list and a glob are written (a :class:`SqlDialect`). Each store keeps its own
SQL for what differs: schema, writes, full text, the plan's tables and pages, timeouts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from gwms.monitor.index import (
    SECTION_BITS,
    Checkpoint,
    IndexRow,
    JobRow,
    RetentionEntry,
    SectionInfo,
    section_id_range,
)
from gwms.monitor.index_rows import (
    JOB_SELECT,
    SECTION_SELECT,
    checkpoint_of,
    job_from_row,
    section_from_row,
)
from gwms.monitor.search import JobRef, Order, SearchQuery

__all__ = [
    "JOB_INDEXES",
    "SearchPlan",
    "SqlDialect",
    "SqlLogIndex",
    "job_conditions",
    "section_name_condition",
    "section_of_jobs",
    "sql_order",
    "where_sql",
]


#: The indexes on ``jobs`` and ``sections`` (the same in both stores; made on every open,
#: so an index added later appears).
JOB_INDEXES = """
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


class SqlDialect(Protocol):
    """How a store writes the few conditions whose SQL differs between the stores."""

    #: the parameter mark of the store's driver
    mark: str

    def one_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column`` equals one of ``values``: the condition and its parameters."""
        ...

    def none_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column`` equals none of ``values`` (NULL aside): the condition and parameters."""
        ...

    def glob(self, column: str, pattern: str) -> tuple[str, list[Any]]:
        """``column`` matches the glob ``pattern`` (``*``, ``?``, ``[...]``)."""
        ...


def job_conditions(
    query: SearchQuery, anonymized_only: bool, dialect: SqlDialect
) -> tuple[list[str], list[Any]]:
    """The conditions ``query`` puts on the job rows (alias ``j``), and their parameters
    in order: the column filters, factory ids, exit codes, finished, problems, and
    (``anonymized_only``) anonymized jobs only. The time range is left to the plan."""
    m = dialect.mark
    clauses: list[str] = []
    params: list[Any] = []
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
            clause, values_params = dialect.one_of(column, list(values))
            clauses.append(clause)
            params += values_params
    if query.jobs:
        parts = []
        for ref in query.jobs:
            if ref.proc is None:
                parts.append(f"j.cluster = {m}")
                params.append(ref.cluster)
            else:
                parts.append(f"(j.cluster = {m} AND j.proc = {m})")
                params += [ref.cluster, ref.proc]
        clauses.append("(" + " OR ".join(parts) + ")")
    if query.exit is not None:
        codes = list(query.exit.codes)
        if query.exit.negate:
            clause, codes_params = dialect.none_of("j.exit_code", codes)
            clauses.append(f"j.exit_code IS NOT NULL AND {clause}")
        else:
            clause, codes_params = dialect.one_of("j.exit_code", codes)
            clauses.append(clause)
        params += codes_params
    if query.finished is not None:  # literal, so the partial index serves finished = 0
        clauses.append("j.finished = 1" if query.finished else "j.finished = 0")
    if query.problems is not None:
        clauses.append("j.problem_count > 0" if query.problems else "j.problem_count = 0")
    if anonymized_only:
        clauses.append("j.anonymized = 1")
    return clauses, params


def section_name_condition(names: Sequence[str], dialect: SqlDialect) -> tuple[str, list[Any]]:
    """The condition that a section (alias ``s``) has one of ``names`` (a name with
    ``*``, ``?`` or ``[`` is a glob), and its parameters."""
    parts = []
    params: list[Any] = []
    for name in names:
        if any(ch in name for ch in "*?["):
            clause, glob_params = dialect.glob("s.name", name)
            parts.append(clause)
            params += glob_params
        else:
            parts.append(f"s.name = {dialect.mark}")
            params.append(name)
    return "(" + " OR ".join(parts) + ")", params


def where_sql(
    clauses: Sequence[str], params: Sequence[Any], extra: Sequence[tuple[str, Sequence[Any]]] = ()
) -> tuple[str, list[Any]]:
    """A WHERE clause (empty without conditions) of ``clauses`` and then ``extra``
    (condition, its parameters), and all their parameters in order."""
    clauses = list(clauses)
    params = list(params)
    for clause, values in extra:
        clauses.append(clause)
        params += list(values)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def section_of_jobs(key: str, job_clauses: Sequence[str]) -> str:
    """The condition that the section with key ``key`` belongs to a job (alias ``j``)
    meeting ``job_clauses``: its job id is looked up in the set of those jobs' ids."""
    return (
        f"({key} >> {SECTION_BITS}) IN (SELECT j.id FROM jobs j WHERE "
        + " AND ".join(job_clauses)
        + ")"
    )


def sql_order(order: Order) -> tuple[str, str]:
    """The ``ORDER BY`` direction of a page in ``order``, and the comparison that keeps
    the keys beyond a page's last key: ``("DESC", "<")`` or ``("ASC", ">")``."""
    return ("DESC", "<") if order == "desc" else ("ASC", ">")


class SearchPlan(Protocol):
    """What :class:`SqlLogIndex` needs of a store's plan of one search."""

    #: rows are sections (else jobs)
    sections: bool
    #: the key column (ordered like start time)
    key: str
    #: how far to shift a key right for its start epoch
    shift: int
    #: the jobs drive the search (SQLite only; see its plan)
    job_driven: bool

    def from_(self, *, rows: bool) -> str:
        """The FROM clause: everything a page shows (``rows``), or what the filters need."""
        ...

    def where(self, extra: Sequence[tuple[str, Sequence[Any]]] = ()) -> tuple[str, list[Any]]:
        """The WHERE clause and its parameters, in order."""
        ...


P = TypeVar("P", bound=SearchPlan)


class SqlLogIndex(Generic[P]):
    """The part of a :class:`~gwms.monitor.index.LogIndex` that is the same SQL in both
    stores. A store sets :attr:`mark` and gives ``_conn`` (a DB-API connection whose
    ``execute`` returns a cursor), ``_plan`` (a :class:`SearchPlan`), ``_page`` (a page of a
    plan's rows), ``_run`` (a statement's rows, or None past a timeout) and
    ``_database_bytes``."""

    #: the parameter mark of the store's driver
    mark: ClassVar[str]
    url: str

    def _conn(self) -> Any:
        raise NotImplementedError

    def _plan(self, query: SearchQuery, anonymized_only: bool) -> P:
        raise NotImplementedError

    def _page(self, plan: P, *, after: int | None, order: Order, limit: int) -> list[IndexRow]:
        raise NotImplementedError

    def _run(self, sql: str, params: Sequence[Any], timeout: float | None) -> list[Any] | None:
        raise NotImplementedError

    def _database_bytes(self) -> int:
        raise NotImplementedError

    # -- reading jobs --------------------------------------------------------------
    def checkpoints(self) -> dict[str, Checkpoint]:
        """The checkpoint of every indexed job, by path."""
        rows = self._conn().execute(
            "SELECT path, out_size, out_mtime_ns, err_size, err_mtime_ns FROM jobs"
        )
        return {path: checkpoint_of(osz, omt, esz, emt) for path, osz, omt, esz, emt in rows}

    def _jobs(self, where: str, params: Sequence[Any], limit: int) -> list[JobRow]:
        """Jobs matching ``where`` (``{m}`` stands for the parameter mark), newest first."""
        m = self.mark
        rows = self._conn().execute(
            f"SELECT {JOB_SELECT} FROM jobs j WHERE {where.format(m=m)} ORDER BY j.id DESC LIMIT {m}",
            [*params, limit],
        )
        return [job_from_row(r) for r in rows]

    def job(self, job_id: int) -> JobRow | None:
        """The job with this id."""
        found = self._jobs("j.id = {m}", [job_id], 1)
        return found[0] if found else None

    def job_by_path(self, path: str) -> JobRow | None:
        """The job with this path."""
        found = self._jobs("j.path = {m}", [path], 1)
        return found[0] if found else None

    def jobs_by_ref(self, ref: JobRef, *, limit: int = 20) -> list[JobRow]:
        """Jobs with this factory id (``C`` alone: every proc of the cluster), newest first."""
        if ref.proc is None:
            return self._jobs("j.cluster = {m}", [ref.cluster], limit)
        return self._jobs("j.cluster = {m} AND j.proc = {m}", [ref.cluster, ref.proc], limit)

    def jobs_by_uuid(self, uuid: str, *, limit: int = 20) -> list[JobRow]:
        """Jobs with this glidein uuid (lowercase)."""
        return self._jobs("j.glidein_uuid = {m}", [uuid.lower()], limit)

    def sections(self, job_id: int) -> list[SectionInfo]:
        """The sections of a job, in file order."""
        m = self.mark
        rows = self._conn().execute(
            f"SELECT {SECTION_SELECT} FROM sections s WHERE s.id BETWEEN {m} AND {m}"
            " ORDER BY s.id DESC",
            section_id_range(job_id),
        )
        return [section_from_row(r) for r in rows]

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
        return self._page(self._plan(query, anonymized_only), after=after, order=order, limit=limit)

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
        sql = (
            f"SELECT count(*) FROM (SELECT 1 FROM {plan.from_(rows=False)}{where}"
            f" LIMIT {self.mark}) AS c"
        )
        rows = self._run(sql, [*params, cap], timeout)
        return None if rows is None else int(rows[0][0])

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
            f"SELECT ({plan.key} >> {plan.shift}) / {self.mark} AS b, count(*)"
            f" FROM {plan.from_(rows=False)}{where} GROUP BY b"
        )
        rows = self._run(sql, [bucket, *params], timeout)
        return None if rows is None else {int(b): int(n) for b, n in rows}

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

    # -- status --------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counts and sizes: jobs, sections, pruned jobs, bytes archived and stored."""
        conn = self._conn()
        jobs, pruned, ob, ab, tb = conn.execute(
            "SELECT count(*), count(pruned_at), coalesce(sum(original_bytes), 0),"
            " coalesce(sum(anonymized_bytes), 0), coalesce(sum(text_bytes), 0) FROM jobs"
        ).fetchone()
        sections = conn.execute("SELECT count(*) FROM sections").fetchone()[0]
        return {
            "url": self.url,
            "jobs": jobs,
            "pruned_jobs": pruned,
            "sections": sections,
            "original_bytes": int(ob),
            "anonymized_bytes": int(ab),
            "text_bytes": int(tb),
            "database_bytes": self._database_bytes(),
        }
