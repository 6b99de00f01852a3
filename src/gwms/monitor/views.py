"""JSON views of indexed jobs, sections and search results (pure functions).

The API answers with these, and ``gwms logs show|search --json`` prints them, so both
say the same thing. A job whose texts are originals (indexed without anonymization)
is shown to viewers without its identifying fields (:data:`IDENTIFYING_FIELDS`):
viewers only ever see anonymized material.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from gwms.monitor.index import JobRow, SectionInfo
from gwms.monitor.search import Hit, Line
from gwms.monitor.searcher import Histogram, ResultRow, SearchPage

__all__ = [
    "IDENTIFYING_FIELDS",
    "hit_json",
    "iso",
    "job_brief",
    "job_json",
    "lines_json",
    "page_json",
    "section_json",
    "timeline",
]

#: Job fields that may identify people or nodes when a job was not anonymized.
IDENTIFYING_FIELDS = ("host", "factory_schedd")
_SUMMARY_IDENTIFYING = (
    "header",
    "host",
    "system",
    "identity",
    "user",
    "uid",
    "group",
    "gid",
    "factory_schedd",
)


def iso(epoch: float | None) -> str | None:
    """An epoch as ISO 8601 in UTC (``2024-05-01T12:00:00Z``), or None."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timeline(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The glidein's life from the ``.out`` markers, in order: started, validated,
    condor started, condor ended, ended; each with its epoch, ISO time, seconds since
    the start and what the marker says."""
    start = summary.get("start_epoch")
    events: list[tuple[str, Any, str]] = []

    def add(name: str, epoch: Any, detail: str) -> None:
        if isinstance(epoch, int):
            events.append((name, epoch, detail))

    add("started", start, "glidein_startup.sh started")
    v = summary.get("validation_seconds")
    add(
        "validated",
        summary.get("last_script_epoch"),
        f"last script starting after validating for {v} s"
        if v is not None
        else "last script starting",
    )
    add("condor_started", summary.get("condor_start_epoch"), "condor starting")
    c = summary.get("condor_seconds")
    add(
        "condor_ended",
        summary.get("condor_end_epoch"),
        f"condor ended after {c} s" if c is not None else "condor ended",
    )
    code = summary.get("exit_code")
    total = summary.get("total_seconds")
    detail = "glidein ending"
    if code is not None:
        detail += f" with code {code}"
    if total is not None:
        detail += f" after {total} s"
    add("ended", summary.get("end_epoch"), detail)
    events.sort(key=lambda e: e[1])
    return [
        {
            "event": name,
            "epoch": epoch,
            "time": iso(epoch),
            "offset_seconds": epoch - start if isinstance(start, int) else None,
            "detail": detail,
        }
        for name, epoch, detail in events
    ]


def _redacts(job: JobRow, privileged: bool) -> bool:
    return not job.info.anonymized and not privileged


def job_brief(job: JobRow, *, privileged: bool = False) -> dict[str, Any]:
    """The columns of a job as one search result shows them."""
    info = job.info
    out: dict[str, Any] = {
        "id": str(job.id),
        "ref": info.name,
        "factory_job_id": info.factory_job_id,
        "path": info.path,
        "frontend_user": info.frontend_user,
        "instance": info.instance,
        "entry": info.entry,
        "site": info.site,
        "host": info.host,
        "client_name": info.client_name,
        "client_group": info.client_group,
        "factory_schedd": info.factory_schedd,
        "glidein_uuid": info.glidein_uuid,
        "start": iso(info.start_epoch),
        "end": iso(info.end_epoch),
        "start_epoch": info.start_epoch,
        "end_epoch": info.end_epoch,
        "sort_epoch": info.sort_epoch,
        "exit_code": info.exit_code,
        "finished": info.finished,
        "jobs_run": info.jobs_run,
        "activations": info.activations,
        "validation_seconds": info.validation_seconds,
        "condor_seconds": info.condor_seconds,
        "total_seconds": info.total_seconds,
        "anonymized": info.anonymized,
        "anonymization": info.anon_mode,
        "problem_count": info.problem_count,
        "pruned": job.pruned_at is not None,
        "source": info.source,
    }
    if _redacts(job, privileged):
        for name in IDENTIFYING_FIELDS:
            out[name] = None
    return out


def section_json(section: SectionInfo) -> dict[str, Any]:
    """A section's description (no text)."""
    return {
        "name": section.name,
        "kind": section.kind,
        "ordinal": section.ordinal,
        "lines": section.lines,
        "bytes": section.bytes,
        "gzip_members": section.members,
        "base64_columns": section.columns,
        "problem": section.problem,
        "truncated": section.truncated,
    }


def job_json(
    job: JobRow, sections: Sequence[SectionInfo], *, privileged: bool = False
) -> dict[str, Any]:
    """The job view: its columns, the parsed summary, the timeline, problems, sections."""
    summary = dict(job.summary)
    if _redacts(job, privileged):
        for name in _SUMMARY_IDENTIFYING:
            summary.pop(name, None)
    return {
        "job": job_brief(job, privileged=privileged),
        "summary": summary,
        "timeline": timeline(job.summary),
        "problems": list(job.problems),
        "sections": [section_json(s) for s in sections],
        "archive": {
            "original": job.original_bytes > 0 and job.original_pruned_at is None,
            "anonymized": job.anonymized_bytes > 0 and job.pruned_at is None,
            "original_bytes": job.original_bytes,
            "anonymized_bytes": job.anonymized_bytes,
        },
        "indexed_at": iso(job.indexed_at),
    }


def _line_json(line: Line) -> dict[str, Any]:
    return {"n": line.number, "text": line.text}


def hit_json(hit: Hit) -> dict[str, Any]:
    """A hit line: number, text, match spans, context lines."""
    out: dict[str, Any] = {
        "n": hit.number,
        "text": hit.text,
        "spans": [list(s) for s in hit.spans],
        "before": [_line_json(line) for line in hit.before],
        "after": [_line_json(line) for line in hit.after],
    }
    if hit.clipped:
        out["clipped"] = True
        out["offset"] = hit.offset
    return out


def lines_json(lines: Iterable[Line]) -> list[dict[str, Any]]:
    """Numbered lines."""
    return [_line_json(line) for line in lines]


def _histogram_json(h: Histogram | None) -> dict[str, Any] | None:
    if h is None:
        return None
    return {
        "bucket_seconds": h.bucket_seconds,
        "buckets": [{"start": iso(start), "epoch": start, "count": n} for start, n in h.buckets],
    }


def _row_json(row: ResultRow, privileged: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "key": str(row.key),
        "job": job_brief(row.job, privileged=privileged),
        "section": row.section.name if row.section is not None else None,
    }
    if row.section is not None:
        out["section_lines"] = row.section.lines
        out["hit_lines"] = row.hit_lines
        out["hits_capped"] = row.hits_capped
        out["hits"] = [hit_json(h) for h in row.hits]
    return out


def page_json(page: SearchPage, *, privileged: bool = False) -> dict[str, Any]:
    """A search page as the API answers it."""
    return {
        "unit": page.unit,
        "results": [_row_json(r, privileged) for r in page.rows],
        "next_cursor": page.next_cursor,
        "total": page.total,
        "total_capped": page.total_capped,
        "complete": page.complete,
        "scanned": page.scanned,
        "histogram": _histogram_json(page.histogram),
    }
