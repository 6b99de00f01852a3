"""The log monitor's JSON API (FastAPI, OpenAPI at ``/openapi.json``, docs at ``/docs``).

::

    GET /v1/search                               search (filters, full text, regex), keyset pages, histogram
    GET /v1/jobs/{ref}                           summary, timeline from the markers, sections
    GET /v1/jobs/{ref}/sections/{name}?from=&to= numbered lines of one section
    GET /v1/jobs/{ref}/sections/{name}/text      one section as a text file
    GET /v1/jobs/{ref}/archive                   the job's archive (.tar.zst / .tar.gz)
    GET /v1/jobs/{ref}/bundle                    the job as one JSON document (summary + every section)
    GET /v1/stats                                index counts and sizes
    GET /v1/audit                                the audit log (ADMINISTRATOR)
    PUT /v1/push/{entry}/{glidein}/{name}        a glidein pushes its logs (log-push token; see gwms.monitor.push)

``{ref}`` is a job's id (as search results give it), ``job.C.P`` / ``C.P`` (when one
job has it) or a glidein uuid. Every endpoint needs a pool token with ``READ``, which
shows anonymized texts only. ``?original=true`` asks for the originals and needs
``LOGS_ORIGINAL`` (or ``ADMINISTRATOR``); each such access is appended to the audit log
before any data is sent (no audit record, no data). Jobs indexed without anonymization
hold originals only: their texts need the same scope, and are audited the same way.

Log text only ever leaves as JSON strings or ``text/plain`` with ``nosniff``, never as
HTML, so nothing in a log can run in a browser.
"""

from __future__ import annotations

import re
import time as _time
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, Field

from gwms.monitor.archive import Archive, ArchiveError
from gwms.monitor.audit import AuditLog
from gwms.monitor.index import JobRow, LogIndex, SectionInfo
from gwms.monitor.indexer import job_texts
from gwms.monitor.push import PushReceiver, mount_push
from gwms.monitor.search import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    parse_query,
    slice_lines,
)
from gwms.monitor.searcher import AmbiguousJob, Searcher, resolve_job
from gwms.monitor.sections import split_err
from gwms.monitor.views import job_json, lines_json, page_json
from gwms.monitor.webauth import require_monitor_scopes
from gwms.net.auth import Identity
from gwms.net.errors import ApiError
from gwms.security.scopes import ADMINISTRATOR, LOGS_ORIGINAL, READ, has_scopes
from gwms.security.tokens import TokenVerifier

__all__ = ["MAX_LINES_PER_REQUEST", "create_monitor_app"]

#: The most lines one ``/sections/{name}`` answer holds (``next_from`` says where to go on).
MAX_LINES_PER_REQUEST = 10_000

# Bearer tokens, and (see gwms.monitor.webauth) the pages' session cookie and the
# anonymous viewer when the app's ``state.monitor_access`` enables them.
Reader = Annotated[Identity, Depends(require_monitor_scopes(READ))]
Admin = Annotated[Identity, Depends(require_monitor_scopes(ADMINISTRATOR))]


# ----------------------------------------------------------------------------------
# response models (what OpenAPI documents)


class LineModel(BaseModel):
    """A numbered line."""

    n: int
    text: str


class HitModel(BaseModel):
    """A line with matches: spans are [start, end) offsets in ``text``."""

    n: int
    text: str
    spans: list[list[int]]
    before: list[LineModel]
    after: list[LineModel]
    clipped: bool = False
    offset: int = 0


class JobBrief(BaseModel):
    """A job's columns."""

    id: str
    ref: str
    factory_job_id: str
    path: str
    frontend_user: str
    instance: str
    entry: str
    site: str | None
    host: str | None
    client_name: str | None
    client_group: str | None
    factory_schedd: str | None
    glidein_uuid: str | None
    start: str | None
    end: str | None
    start_epoch: int | None
    end_epoch: int | None
    sort_epoch: int
    exit_code: int | None
    finished: bool
    jobs_run: int | None
    activations: int | None
    validation_seconds: int | None
    condor_seconds: int | None
    total_seconds: int | None
    anonymized: bool
    anonymization: str | None
    problem_count: int
    pruned: bool
    source: str = Field(
        default="factory", description="'factory', or 'push' for logs the glidein pushed while it ran"
    )


class ResultModel(BaseModel):
    """One search result: a job, or a section of a job with its hit lines."""

    key: str
    job: JobBrief
    section: str | None
    section_lines: int | None = None
    hit_lines: int | None = None
    hits_capped: bool = False
    hits: list[HitModel] = []


class BucketModel(BaseModel):
    """One bar of the histogram."""

    start: str | None
    epoch: int
    count: int


class HistogramModel(BaseModel):
    """Results per bucket of job start time."""

    bucket_seconds: int
    buckets: list[BucketModel]


class SearchResponse(BaseModel):
    """A page of search results (pass ``next_cursor`` as ``cursor`` for the next one)."""

    unit: str = Field(description="'jobs' or 'sections': what one result is")
    results: list[ResultModel]
    next_cursor: str | None
    total: int | None
    total_capped: bool
    complete: bool = Field(description="false when a regex scan stopped on its budget")
    scanned: int
    histogram: HistogramModel | None


class TimelineEvent(BaseModel):
    """One marker of the glidein's life."""

    event: str
    epoch: int
    time: str | None
    offset_seconds: int | None
    detail: str


class SectionModel(BaseModel):
    """A section of a job (without its text)."""

    name: str
    kind: str
    ordinal: int
    lines: int
    bytes: int
    gzip_members: int
    base64_columns: int
    problem: str | None
    truncated: bool


class ArchiveModel(BaseModel):
    """What the archive holds of a job."""

    original: bool
    anonymized: bool
    original_bytes: int
    anonymized_bytes: int


class JobView(BaseModel):
    """A job: columns, parsed ``.out`` summary, timeline, problems, sections."""

    job: JobBrief
    summary: dict[str, Any]
    timeline: list[TimelineEvent]
    problems: list[str]
    sections: list[SectionModel]
    archive: ArchiveModel
    indexed_at: str | None


class SectionLines(BaseModel):
    """Lines ``from`` to ``to`` of a section."""

    job: str
    section: str
    original: bool
    from_: int = Field(alias="from")
    to: int
    total_lines: int
    next_from: int | None
    lines: list[LineModel]

    model_config = {"populate_by_name": True}


class BundleSection(BaseModel):
    """A section with its whole text."""

    name: str
    kind: str
    problem: str | None
    truncated: bool
    text: str


class Bundle(BaseModel):
    """Everything about a job in one document."""

    format: str = "gwms-log-bundle/1"
    original: bool
    view: JobView
    sections: list[BundleSection]


# ----------------------------------------------------------------------------------

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._#-]+")


def _filename(*parts: str) -> str:
    return _SAFE_NAME.sub("_", ".".join(parts))


class _Monitor:
    """What the handlers share: the index, archive, audit log and searcher."""

    def __init__(
        self, index: LogIndex, archive: Archive | None, audit: AuditLog, searcher: Searcher
    ) -> None:
        self.index = index
        self.archive = archive
        self.audit = audit
        self.searcher = searcher

    def resolve(self, ref: str) -> JobRow:
        """The one job ``ref`` names (404 none, 409 several, listing them)."""
        try:
            return resolve_job(self.index, ref)
        except AmbiguousJob as exc:
            raise ApiError(
                409,
                "ambiguous_job",
                exc.message,
                detail=[{"id": str(j.id), "path": j.info.path} for j in exc.candidates],
            ) from None

    @staticmethod
    def privileged(who: Identity) -> bool:
        """True if ``who`` may read originals."""
        return has_scopes(who.scopes, [LOGS_ORIGINAL])

    def check_original(self, job: JobRow, original: bool, who: Identity) -> bool:
        """Whether the answer is original data; 403 if ``who`` may not have it."""
        needs = original or not job.info.anonymized
        if needs and not self.privileged(who):
            why = (
                "originals need the LOGS_ORIGINAL scope"
                if original
                else "this job was indexed without anonymization: its texts need the LOGS_ORIGINAL scope"
            )
            raise ApiError(403, "original_forbidden", why)
        return needs

    def audited(
        self, who: Identity, request: Request, job: JobRow, action: str, section: str | None
    ) -> None:
        """Append the access to the audit log (raises, refusing the access, if it cannot)."""
        self.audit.record(
            who=who.name,
            token_id=who.token_id,
            action=action,
            job=str(job.id),
            path=job.info.path,
            section=section,
            client=request.client.host if request.client else None,
        )

    def texts(self, job: JobRow, original: bool) -> list[tuple[str, str, str, str | None, bool]]:
        """``(name, kind, text, problem, truncated)`` of every section, in order."""
        infos = {s.name: s for s in self.index.sections(job.id)}
        if original and job.info.anonymized:
            if self.archive is None or job.original_pruned_at is not None:
                raise ApiError(
                    410, "original_gone", f"the original of {job.info.name} is no longer kept"
                )
            try:
                files = self.archive.read(job.info.path, "original")
            except ArchiveError as exc:
                raise ApiError(410, "original_gone", str(exc)) from None
            out = files.get(f"{job.info.name}.out")
            err = files.get(f"{job.info.name}.err")
            items = job_texts(out, split_err(err) if err is not None else None)
            result = []
            for name, kind, text, sec in items:
                info = infos.get(name)
                problem = info.problem if info else (sec.problem if sec else None)
                truncated = info.truncated if info else (sec.truncated if sec else False)
                result.append((name, kind, text, problem, truncated))
            return result
        if job.pruned_at is not None:
            raise ApiError(410, "pruned", f"the texts of {job.info.name} were pruned (retention)")
        sections = self.index.sections(job.id)
        texts = self.index.section_texts([s.id for s in sections])
        return [(s.name, s.kind, texts.get(s.id, ""), s.problem, s.truncated) for s in sections]

    def section_text(
        self, job: JobRow, name: str, original: bool
    ) -> tuple[SectionInfo | None, str]:
        """One section's text (404 if the job has no such section)."""
        sections = self.index.sections(job.id)
        info = next((s for s in sections if s.name == name), None)
        if original and job.info.anonymized:
            for sec_name, _kind, text, _p, _t in self.texts(job, True):
                if sec_name == name:
                    return info, text
            raise ApiError(404, "section_not_found", f"{job.info.name} has no section {name!r}")
        if info is None:
            if job.pruned_at is not None:
                raise ApiError(
                    410, "pruned", f"the texts of {job.info.name} were pruned (retention)"
                )
            names = ", ".join(s.name for s in sections) or "none"
            raise ApiError(
                404,
                "section_not_found",
                f"{job.info.name} has no section {name!r} (sections: {names})",
            )
        return info, self.index.section_texts([info.id]).get(info.id, "")


def create_monitor_app(
    index: LogIndex,
    *,
    verifier: TokenVerifier | None,
    audit: AuditLog,
    archive: Archive | None = None,
    searcher: Searcher | None = None,
    close_index: bool = False,
    push: PushReceiver | None = None,
) -> FastAPI:
    """The monitor's FastAPI app (see the module docstring for the endpoints).

    ``close_index`` closes the index (and the archive) when the app shuts down.
    ``push`` adds the log server's ``PUT /v1/push/...`` (see :mod:`gwms.monitor.push`).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        yield
        if close_index:
            index.close()
            if archive is not None:
                archive.close()

    from gwms.net.app import create_app
    from gwms.net.limits import DEFAULT_MAX_BODY_BYTES

    app = create_app(
        service="monitor",
        verifier=verifier,
        max_body_bytes=max(DEFAULT_MAX_BODY_BYTES, push.max_bytes + 1) if push else DEFAULT_MAX_BODY_BYTES,
        lifespan=lifespan,
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    m = _Monitor(index, archive, audit, searcher or Searcher(index))
    app.state.monitor = m
    if push is not None:
        mount_push(app, push)

    @app.get(
        "/v1/search", response_model=SearchResponse, tags=["search"], summary="Search glidein logs"
    )
    def search(
        who: Reader,
        request: Request,
        q: Annotated[
            str, Query(description="query string: field:value filters and full text")
        ] = "",
        regex: Annotated[
            str | None, Query(description="Python regular expression, per line")
        ] = None,
        ignore_case: bool = False,
        entry: Annotated[list[str] | None, Query()] = None,
        site: Annotated[list[str] | None, Query()] = None,
        user: Annotated[list[str] | None, Query(description="frontend user")] = None,
        group: Annotated[list[str] | None, Query(description="frontend group")] = None,
        client: Annotated[list[str] | None, Query(description="<frontend>.<group>")] = None,
        host: Annotated[list[str] | None, Query()] = None,
        job: Annotated[list[str] | None, Query(description="job.C.P, C.P or C")] = None,
        uuid: Annotated[list[str] | None, Query(description="glidein uuid")] = None,
        exit: Annotated[str | None, Query(description="0, 1,2 or !0")] = None,
        section: Annotated[list[str] | None, Query(description="section name or glob")] = None,
        time: Annotated[str | None, Query(description="A..B, 24h, a date")] = None,
        from_: Annotated[str | None, Query(alias="from")] = None,
        to: str | None = None,
        finished: bool | None = None,
        problems: bool | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        cursor: str | None = None,
        order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
        context: Annotated[int, Query(ge=0, le=50)] = 2,
        hits: Annotated[int, Query(ge=0, le=100, description="hit lines per result")] = 5,
        total: bool = True,
        histogram: bool = False,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "entry": entry,
            "site": site,
            "user": user,
            "group": group,
            "client": client,
            "host": host,
            "job": job,
            "uuid": uuid,
            "exit": exit,
            "section": section,
            "time": time,
            "from": from_,
            "to": to,
            "finished": None if finished is None else str(finished),
            "problems": None if problems is None else str(problems),
        }
        query = parse_query(
            q, now=_time.time(), regex=regex, ignore_case=ignore_case, params=params
        )
        privileged = m.privileged(who)
        page = m.searcher.search(
            query,
            limit=limit,
            cursor=cursor,
            order=order,  # type: ignore[arg-type]
            context=context,
            max_hits=hits,
            anonymized_only=not privileged,
            with_total=total,
            with_histogram=histogram,
        )
        shown_originals = [r.job for r in page.rows if r.hits and not r.job.info.anonymized]
        if shown_originals:
            m.audit.record(
                who=who.name,
                token_id=who.token_id,
                action="search",
                jobs=[str(j.id) for j in shown_originals],
                query=query.to_json(),
                client=request.client.host if request.client else None,
            )
        return page_json(page, privileged=privileged)

    @app.get(
        "/v1/jobs/{ref}",
        response_model=JobView,
        tags=["jobs"],
        summary="A job: summary, timeline, sections",
    )
    def job_view(ref: str, who: Reader) -> dict[str, Any]:
        job = m.resolve(ref)
        return job_json(job, m.index.sections(job.id), privileged=m.privileged(who))

    @app.get(
        "/v1/jobs/{ref}/sections/{name}",
        response_model=SectionLines,
        response_model_by_alias=True,
        tags=["jobs"],
        summary="Numbered lines of one section",
    )
    def section_lines(
        ref: str,
        name: str,
        who: Reader,
        request: Request,
        from_: Annotated[int, Query(alias="from", ge=1)] = 1,
        to: Annotated[int | None, Query(ge=1)] = None,
        original: bool = False,
    ) -> dict[str, Any]:
        job = m.resolve(ref)
        is_original = m.check_original(job, original, who)
        if is_original:
            m.audited(who, request, job, "section", name)
        _info, text = m.section_text(job, name, original)
        last = to if to is not None else from_ + MAX_LINES_PER_REQUEST - 1
        last = min(last, from_ + MAX_LINES_PER_REQUEST - 1)
        lines, total_lines = slice_lines(text, from_, last)
        end = lines[-1].number if lines else min(from_ - 1, total_lines)
        return {
            "job": str(job.id),
            "section": name,
            "original": is_original,
            "from": from_,
            "to": end,
            "total_lines": total_lines,
            "next_from": end + 1 if end < total_lines else None,
            "lines": lines_json(lines),
        }

    @app.get(
        "/v1/jobs/{ref}/sections/{name}/text",
        response_class=PlainTextResponse,
        tags=["downloads"],
        summary="One section as a text file",
    )
    def section_download(
        ref: str, name: str, who: Reader, request: Request, original: bool = False
    ) -> PlainTextResponse:
        job = m.resolve(ref)
        is_original = m.check_original(job, original, who)
        if is_original:
            m.audited(who, request, job, "download-section", name)
        _info, text = m.section_text(job, name, original)
        kind = "original" if is_original else "anonymized"
        filename = _filename(job.info.name, name, kind, "txt")
        return PlainTextResponse(
            text,
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "X-Content-Type-Options": "nosniff",
            },
        )

    @app.get(
        "/v1/jobs/{ref}/archive",
        response_class=Response,
        tags=["downloads"],
        summary="The job's archived files (tar, compressed)",
    )
    def archive_download(
        ref: str, who: Reader, request: Request, original: bool = False
    ) -> Response:
        job = m.resolve(ref)
        is_original = m.check_original(job, original, who)
        if m.archive is None:
            raise ApiError(404, "no_archive", "this monitor keeps no archive")
        kind = "original" if is_original else "anonymized"
        item = m.archive.get(job.info.path, kind)  # type: ignore[arg-type]
        if item is None:
            raise ApiError(410, "archive_gone", f"no {kind} archive of {job.info.name} is kept")
        if is_original:
            m.audited(who, request, job, "download-archive", None)
        filename = _filename(job.info.name, kind) + item.suffix
        return Response(
            item.blob,
            media_type=item.media_type,
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "X-Content-Type-Options": "nosniff",
            },
        )

    @app.get(
        "/v1/jobs/{ref}/bundle",
        response_model=Bundle,
        tags=["downloads"],
        summary="The job as one JSON document",
    )
    def bundle(ref: str, who: Reader, request: Request, original: bool = False) -> dict[str, Any]:
        job = m.resolve(ref)
        is_original = m.check_original(job, original, who)
        if is_original:
            m.audited(who, request, job, "download-bundle", None)
        privileged = m.privileged(who)
        texts = m.texts(job, original)
        return {
            "format": "gwms-log-bundle/1",
            "original": is_original,
            "view": job_json(job, m.index.sections(job.id), privileged=privileged),
            "sections": [
                {"name": n, "kind": k, "problem": p, "truncated": t, "text": text}
                for n, k, text, p, t in texts
            ],
        }

    @app.get("/v1/stats", tags=["service"], summary="Index counts and sizes")
    def stats(who: Reader) -> dict[str, Any]:
        data = dict(m.index.stats())
        data.pop("url", None)
        return data

    @app.get("/v1/audit", tags=["service"], summary="The audit log of accesses to originals")
    def audit_log(
        who: Admin, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
    ) -> dict[str, Any]:
        records = list(m.audit.records())
        return {"records": records[-limit:], "total": len(records)}

    return app
