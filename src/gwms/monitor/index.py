"""The log index: what is stored about each glidein job, and the interface to the store.

The indexer hands :class:`JobRecord`\\ s to a :class:`LogIndex`; searches and the API
read :class:`JobRow`, :class:`SectionInfo` and section texts back. :class:`LogIndex` is
a small protocol so that stores can sit side by side: SQLite with FTS5
(:mod:`gwms.monitor.index_sqlite`, the default) and PostgreSQL with tsvector
(:mod:`gwms.monitor.index_pg`, for a shared deployment). :func:`open_index` picks one
by URL.

Keys are time-ordered integers (see :func:`make_job_id`):

- a job's id is ``start_epoch << 19 | seq`` (``seq`` tells apart jobs that started in
  the same second), so ordering by id is ordering by start time;
- a section's id is ``job_id << 11 | (2047 - ordinal)``: descending ids list the newest
  job first with its sections in file order, and a job's sections are one id range.

Keyset pagination ("the rows after key K") and time ranges are then plain comparisons
on the primary key (and on the rowid of the FTS table).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from gwms.errors import GwmsError
from gwms.monitor.search import JobRef, Order, SearchQuery

if TYPE_CHECKING:
    from gwms.monitor.archive import ArchiveItem

__all__ = [
    "MAX_ORDINAL",
    "MAX_SEQ",
    "SECTION_BITS",
    "SEQ_BITS",
    "TIME_SHIFT",
    "Checkpoint",
    "FileState",
    "IndexRow",
    "JobInfo",
    "JobRecord",
    "JobRow",
    "LogIndex",
    "LogIndexError",
    "RetentionEntry",
    "SectionInfo",
    "SectionKind",
    "SectionRecord",
    "as_mapping",
    "job_epoch",
    "job_id_range",
    "make_job_id",
    "open_index",
    "section_id",
    "section_id_range",
    "section_job_id",
    "section_ordinal",
]

SEQ_BITS = 19
SECTION_BITS = 11
TIME_SHIFT = SEQ_BITS + SECTION_BITS
MAX_SEQ = (1 << SEQ_BITS) - 1
MAX_ORDINAL = (1 << SECTION_BITS) - 1
MAX_EPOCH = (1 << 32) - 1

SectionKind = Literal["out", "err", "log", "xml"]


class LogIndexError(GwmsError):
    """The index cannot be opened or written (wrong schema, unknown URL, no room for an id)."""


# ----------------------------------------------------------------------------------
# keys


def make_job_id(epoch: int, seq: int) -> int:
    """The id of the ``seq``-th job that started at ``epoch``."""
    if not 0 <= epoch <= MAX_EPOCH:
        raise ValueError(f"epoch out of range: {epoch}")
    if not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"sequence out of range: {seq}")
    return (epoch << SEQ_BITS) | seq


def job_epoch(job_id: int) -> int:
    """The start epoch a job id was made from."""
    return job_id >> SEQ_BITS


def job_id_range(lo: int | None, hi: int | None) -> tuple[int, int]:
    """The job ids of jobs that started from ``lo`` to ``hi`` (inclusive epochs)."""
    first = 0 if lo is None else min(max(0, lo), MAX_EPOCH + 1) << SEQ_BITS
    top = MAX_EPOCH if hi is None else min(max(-1, hi), MAX_EPOCH)
    return first, ((top + 1) << SEQ_BITS) - 1


def section_id(job_id: int, ordinal: int) -> int:
    """The id of a job's ``ordinal``-th section (0 is the ``.out``)."""
    if not 0 <= ordinal <= MAX_ORDINAL:
        raise ValueError(f"section ordinal out of range: {ordinal}")
    return (job_id << SECTION_BITS) | (MAX_ORDINAL - ordinal)


def section_job_id(sid: int) -> int:
    """The job a section id belongs to."""
    return sid >> SECTION_BITS


def section_ordinal(sid: int) -> int:
    """The ordinal of a section within its job."""
    return MAX_ORDINAL - (sid & MAX_ORDINAL)


def section_id_range(job_id: int) -> tuple[int, int]:
    """The ids every section of a job falls in (inclusive)."""
    return job_id << SECTION_BITS, (job_id << SECTION_BITS) | MAX_ORDINAL


# ----------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class FileState:
    """Size and modification time of a file when it was read."""

    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Checkpoint:
    """What the index last read of a job's files (None: the file did not exist)."""

    out: FileState | None
    err: FileState | None


@dataclass
class JobInfo:
    """The searchable columns of a job.

    ``path`` (``user_<frontend>/glidein_<instance>/entry_<entry>/job.C.P``, relative to
    the factory's ``client`` directory) identifies the job. Identifying columns
    (``host``) hold anonymized values when the job was anonymized.
    """

    path: str
    frontend_user: str
    instance: str
    entry: str
    cluster: int
    proc: int
    sort_epoch: int
    glidein_uuid: str | None = None
    client_name: str | None = None
    client_group: str | None = None
    factory_schedd: str | None = None
    site: str | None = None
    host: str | None = None
    start_epoch: int | None = None
    end_epoch: int | None = None
    last_script_epoch: int | None = None
    validation_seconds: int | None = None
    condor_start_epoch: int | None = None
    condor_end_epoch: int | None = None
    condor_seconds: int | None = None
    total_seconds: int | None = None
    exit_code: int | None = None
    jobs_run: int | None = None
    activations: int | None = None
    finished: bool = False
    anonymized: bool = False
    anon_mode: str | None = None
    key_id: str | None = None
    problem_count: int = 0
    #: where the files came from: the factory's log tree, or pushed by the glidein
    source: str = "factory"

    @property
    def factory_job_id(self) -> str:
        """``C.P``."""
        return f"{self.cluster}.{self.proc}"

    @property
    def name(self) -> str:
        """``job.C.P``: the file name stem of the job's logs."""
        return f"job.{self.cluster}.{self.proc}"


@dataclass
class SectionRecord:
    """One searchable text of a job: the ``.out`` (kind ``out``), the ``.err`` without its
    embedded sections (``err``), or a decoded section (``log`` / ``xml``).

    ``blob`` is ``text`` compressed with ``codec`` (the indexer compresses; None lets
    the index do it). ``problem`` says why a section is damaged (truncated, corrupt).
    """

    name: str
    kind: SectionKind
    text: str
    problem: str | None = None
    truncated: bool = False
    members: int = 0
    columns: int = 0
    blob: bytes | None = None
    codec: str | None = None


@dataclass
class JobRecord:
    """Everything the indexer learned about one job, ready to be stored.

    ``archive`` holds the job's packed archives (original, anonymized), which the
    indexer stores in the archive alongside the record.
    """

    info: JobInfo
    checkpoint: Checkpoint
    sections: list[SectionRecord]
    summary: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    original_bytes: int = 0
    anonymized_bytes: int = 0
    indexed_at: float = 0.0
    archive: list[ArchiveItem] = field(default_factory=list)


@dataclass(frozen=True)
class SectionInfo:
    """A stored section (without its text)."""

    id: int
    job_id: int
    ordinal: int
    name: str
    kind: str
    lines: int
    bytes: int
    members: int = 0
    columns: int = 0
    problem: str | None = None
    truncated: bool = False


@dataclass
class JobRow:
    """A stored job: its id, columns, parsed summary, and what is archived of it."""

    id: int
    info: JobInfo
    summary: dict[str, Any]
    problems: list[str]
    checkpoint: Checkpoint
    indexed_at: float
    original_bytes: int = 0
    anonymized_bytes: int = 0
    text_bytes: int = 0
    pruned_at: float | None = None
    original_pruned_at: float | None = None


@dataclass(frozen=True)
class IndexRow:
    """One row of a search: ``key`` orders and pages; ``section`` is None for job rows."""

    key: int
    job: JobRow
    section: SectionInfo | None = None


@dataclass(frozen=True)
class RetentionEntry:
    """What retention decides on for one job: its age and what it holds."""

    job_id: int
    path: str
    epoch: int
    original_bytes: int
    anonymized_bytes: int
    text_bytes: int
    has_original: bool
    has_data: bool


class LogIndex(Protocol):
    """A store of indexed jobs: the SQLite one or the PostgreSQL one.

    Text search follows :class:`~gwms.monitor.search.SearchQuery`: the store applies the
    column filters and full text (``query.text``); a regular expression is applied by
    the caller over the rows and texts the store returns. Rows are sections when the
    query looks into texts or names sections, else jobs. ``anonymized_only`` hides
    jobs whose texts are originals (what viewers may not read).
    """

    url: str

    def checkpoints(self) -> dict[str, Checkpoint]:
        """The checkpoint of every indexed job, by path."""
        ...

    def store(self, records: Sequence[JobRecord]) -> list[int]:
        """Insert or replace jobs (with their sections) in one transaction; their ids."""
        ...

    def job(self, job_id: int) -> JobRow | None:
        """The job with this id."""
        ...

    def job_by_path(self, path: str) -> JobRow | None:
        """The job with this path."""
        ...

    def jobs_by_ref(self, ref: JobRef, *, limit: int = 20) -> list[JobRow]:
        """Jobs with this factory id (``C`` alone: the cluster's), newest first."""
        ...

    def jobs_by_uuid(self, uuid: str, *, limit: int = 20) -> list[JobRow]:
        """Jobs with this glidein uuid."""
        ...

    def sections(self, job_id: int) -> list[SectionInfo]:
        """The sections of a job, in file order."""
        ...

    def section_texts(self, section_ids: Sequence[int]) -> dict[int, str]:
        """The texts of sections, by id (missing ids are left out)."""
        ...

    def rows(
        self,
        query: SearchQuery,
        *,
        after: int | None = None,
        order: Order = "desc",
        limit: int = 50,
        anonymized_only: bool = False,
    ) -> list[IndexRow]:
        """One page of rows matching ``query`` (not its regex), after key ``after``."""
        ...

    def count(
        self,
        query: SearchQuery,
        *,
        cap: int,
        anonymized_only: bool = False,
        timeout: float | None = None,
    ) -> int | None:
        """How many rows match, counting at most ``cap`` (so the answer is ``min(n, cap)``);
        None when counting takes longer than ``timeout`` seconds."""
        ...

    def time_bounds(
        self, query: SearchQuery, *, anonymized_only: bool = False
    ) -> tuple[int, int] | None:
        """The earliest and latest start epoch of the matching rows (None: no rows)."""
        ...

    def histogram(
        self,
        query: SearchQuery,
        bucket: int,
        *,
        anonymized_only: bool = False,
        timeout: float | None = None,
    ) -> dict[int, int] | None:
        """Matching rows per time bucket (``epoch // bucket`` -> count); None when
        counting them all takes longer than ``timeout`` seconds."""
        ...

    def retention_entries(self) -> Iterator[RetentionEntry]:
        """Every job that still holds data, oldest first."""
        ...

    def drop_data(self, job_ids: Sequence[int], *, original_only: bool = False) -> None:
        """Record that jobs' archives were pruned (all, or only originals); texts of fully
        pruned jobs are deleted. Their rows stay, so unchanged files are not re-indexed."""
        ...

    def maintain(self) -> None:
        """Cheap upkeep after a batch of writes (refresh the planner's statistics)."""
        ...

    def stats(self) -> dict[str, Any]:
        """Counts and sizes for status displays."""
        ...

    def close(self) -> None:
        """Release the store's connections."""
        ...


def open_index(url: str | os.PathLike[str], *, create: bool = True) -> LogIndex:
    """Open a log index by URL: ``sqlite:///path/to/index.sqlite``, a plain file path, or
    ``postgresql://user@host:port/dbname`` (:mod:`gwms.monitor.index_pg`)."""
    text = os.fspath(url)
    if text.startswith(("postgresql://", "postgres://")):
        from gwms.monitor.index_pg import PostgresIndex

        return PostgresIndex(text, create=create)
    if text.startswith("sqlite://"):
        path = text[len("sqlite://") :]  # sqlite:///abs/path or sqlite://relative/path
        if not path:
            raise LogIndexError(f"bad SQLite URL {text!r}", hint="use sqlite:///path/to/file")
    elif "://" in text:
        raise LogIndexError(f"unknown index URL {text!r}", hint="use sqlite:///path or a file path")
    else:
        path = text
    from gwms.monitor.index_sqlite import SQLiteIndex

    return SQLiteIndex(Path(path), create=create)


def as_mapping(info: JobInfo) -> Mapping[str, Any]:
    """The columns of a :class:`JobInfo` as a dict (for JSON answers)."""
    return {name: getattr(info, name) for name in info.__dataclass_fields__}
