"""The rows both log index stores hold: column orders, rows to and from records, new ids.

The SQLite store (:mod:`gwms.monitor.index_sqlite`) and the PostgreSQL store
(:mod:`gwms.monitor.index_pg`) have the same tables with the same columns in the same
order; what differs is their SQL. This module holds what does not: the column lists,
turning a fetched row back into a :class:`~gwms.monitor.index.JobRow` /
:class:`~gwms.monitor.index.SectionInfo` / :class:`~gwms.monitor.index.IndexRow`, and
turning a batch of :class:`~gwms.monitor.index.JobRecord`\\ s into the rows to insert
(with their ids: kept on re-index with the same start time, else the next free one).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gwms.monitor.compression import Codec, codec_named
from gwms.monitor.index import (
    MAX_ORDINAL,
    MAX_SEQ,
    SECTION_BITS,
    Checkpoint,
    FileState,
    IndexRow,
    JobInfo,
    JobRecord,
    JobRow,
    LogIndexError,
    SectionInfo,
    make_job_id,
    section_id,
)
from gwms.monitor.search import count_lines

__all__ = [
    "BOOL_FIELDS",
    "INFO_FIELDS",
    "JOB_COLS",
    "JOB_EXTRA",
    "JOB_SELECT",
    "SECTION_COLS",
    "SECTION_SELECT",
    "TEXT_COLS",
    "BatchRows",
    "assign_ids",
    "batch_rows",
    "checkpoint_of",
    "decode_text",
    "distinct_paths",
    "epochs_needing_ids",
    "index_row",
    "job_from_row",
    "section_from_row",
]

#: The job columns from :class:`JobInfo`, in the order of its fields (path first).
INFO_FIELDS = tuple(JobInfo.__dataclass_fields__)
#: Info columns stored as 0/1 integers.
BOOL_FIELDS = frozenset({"finished", "anonymized"})
#: The job columns after the info ones.
JOB_EXTRA = (
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
#: Every column of ``jobs``, in the order rows are written and read.
JOB_COLS = ("id", *INFO_FIELDS, *JOB_EXTRA)
#: The ``jobs`` columns of alias ``j``, for a SELECT list.
JOB_SELECT = ", ".join(f"j.{c}" for c in JOB_COLS)
#: Every column of ``sections``, in the order rows are written and read.
SECTION_COLS = (
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
#: The ``sections`` columns of alias ``s``, for a SELECT list.
SECTION_SELECT = ", ".join(f"s.{c}" for c in SECTION_COLS)
#: The columns of ``section_text``.
TEXT_COLS = ("id", "codec", "body")


# ----------------------------------------------------------------------------------
# reading


def checkpoint_of(
    out_size: int | None, out_mtime_ns: int | None, err_size: int | None, err_mtime_ns: int | None
) -> Checkpoint:
    """The checkpoint stored in a job's four size and mtime columns (no size: no file)."""
    return Checkpoint(
        FileState(out_size, out_mtime_ns) if out_size is not None else None,  # type: ignore[arg-type]
        FileState(err_size, err_mtime_ns) if err_size is not None else None,  # type: ignore[arg-type]
    )


def job_from_row(row: Sequence[Any], offset: int = 0) -> JobRow:
    """The job in ``row[offset:]`` (the columns of :data:`JOB_COLS`, in order)."""
    values = dict(zip(JOB_COLS, row[offset : offset + len(JOB_COLS)], strict=True))
    info_values = {k: values[k] for k in INFO_FIELDS}
    for k in BOOL_FIELDS:
        info_values[k] = bool(info_values[k])
    return JobRow(
        id=values["id"],
        info=JobInfo(**info_values),
        summary=json.loads(values["summary"]),
        problems=json.loads(values["problems"]),
        checkpoint=checkpoint_of(
            values["out_size"], values["out_mtime_ns"], values["err_size"], values["err_mtime_ns"]
        ),
        indexed_at=values["indexed_at"],
        original_bytes=values["original_bytes"],
        anonymized_bytes=values["anonymized_bytes"],
        text_bytes=values["text_bytes"],
        pruned_at=values["pruned_at"],
        original_pruned_at=values["original_pruned_at"],
    )


def section_from_row(row: Sequence[Any], offset: int = 0) -> SectionInfo:
    """The section in ``row[offset:]`` (the columns of :data:`SECTION_COLS`, in order)."""
    sid, name, kind, lines, size, members, columns, problem, truncated = row[
        offset : offset + len(SECTION_COLS)
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


def index_row(sections: bool, row: Sequence[Any]) -> IndexRow:
    """A search result from a page's row: the key, then the section's columns when rows
    are ``sections``, then the job's."""
    if sections:
        section = section_from_row(row, 1)
        return IndexRow(row[0], job_from_row(row, 1 + len(SECTION_COLS)), section)
    return IndexRow(row[0], job_from_row(row, 1))


def decode_text(codec: str, body: bytes) -> str:
    """A section's text from its stored (compressed) body."""
    return codec_named(codec).decompress(bytes(body)).decode("utf-8", "replace")


# ----------------------------------------------------------------------------------
# writing


def distinct_paths(records: Sequence[JobRecord]) -> list[str]:
    """The paths of a batch's jobs; ValueError if one is named twice."""
    paths = [r.info.path for r in records]
    if len(set(paths)) != len(paths):
        raise ValueError("a batch names the same job twice")
    return paths


def epochs_needing_ids(
    records: Sequence[JobRecord], old: Mapping[str, tuple[int, int]]
) -> list[int]:
    """The start epochs (sorted) of the jobs that need a new id: new jobs, and jobs whose
    start time changed (``old``: path -> (id, start epoch) of the jobs already stored)."""
    return sorted(
        {
            r.info.sort_epoch
            for r in records
            if old.get(r.info.path, (0, None))[1] != r.info.sort_epoch
        }
    )


def assign_ids(
    records: Sequence[JobRecord],
    old: Mapping[str, tuple[int, int]],
    next_seq: dict[int, int],
) -> list[int]:
    """The id of each record: its old one when its start time is the same, else the next
    free one of its start second (``next_seq``: epoch -> next free sequence; updated)."""
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
    return ids


@dataclass
class BatchRows:
    """The rows a batch of records becomes, in the column orders of this module.

    ``searchable`` pairs each section id with its text, for the store's full-text table.
    """

    jobs: list[list[Any]] = field(default_factory=list)
    sections: list[tuple[Any, ...]] = field(default_factory=list)
    texts: list[tuple[Any, ...]] = field(default_factory=list)
    searchable: list[tuple[int, str]] = field(default_factory=list)


def batch_rows(ids: Sequence[int], records: Sequence[JobRecord], codec: Codec) -> BatchRows:
    """The rows of ``records`` stored under ``ids``.

    A job keeps its first ``MAX_ORDINAL + 1`` sections (a problem says so when it has
    more); a section's text is compressed with ``codec`` unless the record brings it
    compressed already.
    """
    out = BatchRows()
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
                blob, codec_name = codec.compress(sec.text.encode("utf-8")), codec.name
            text_bytes += len(blob)
            out.sections.append(
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
            out.texts.append((sid, codec_name, blob))
            out.searchable.append((sid, sec.text))
        cp = record.checkpoint
        values: dict[str, Any] = {"id": job_id}
        for name in INFO_FIELDS:
            value = getattr(info, name)
            values[name] = int(value) if name in BOOL_FIELDS else value
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
        out.jobs.append([values[c] for c in JOB_COLS])
    return out
