"""The log monitor's HTML pages: search, job view, login (served beside the JSON API).

::

    GET  /                         search: filters, full text / regex, hits with context,
                                   histogram over time, keyset pages (?cursor=)
    GET  /jobs/{ref}               a job: summary, timeline, the `out` section
    GET  /jobs/{ref}/{section}     the same with another section (?from=N, ?original=1)
    GET  /login                    sign in: paste a pool token, or a local user's password
    POST /login, POST /logout      set / clear the session cookie (HttpOnly, SameSite=Strict)
    GET  /static/{name}            the pages' CSS and JavaScript (no CDN)

Pages are rendered on the server with Jinja2, **autoescape on** for every template, so
log text is always HTML-escaped (a ``<script>`` in a log is shown as text); each page
also sends a ``Content-Security-Policy`` allowing only the monitor's own script and
style files. Line permalinks are ``/jobs/{id}/{section}?from=N#L123``: the line is
highlighted and scrolled to (by ``:target`` and by ``monitor.js``).

Who may see what is :mod:`gwms.monitor.webauth`: viewers (READ, the anonymous viewer)
see anonymized texts; ``?original=1`` needs ``LOGS_ORIGINAL`` or ``ADMINISTRATOR``, is
answered with a 403 page otherwise, and is written to the audit log before anything is
shown. Downloads link to the JSON API (``v1/...``), which reads the same cookie.

Mounting: :func:`create_monitor_site` is the app ``gwms logs serve`` runs (API and
pages); :func:`mount_monitor` mounts the same under a prefix of another app (the
``gwms up`` web UI mounts it at ``/logs``); links are relative to the mount point.
"""

from __future__ import annotations

import time as _time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

import gwms
from gwms.errors import GwmsError
from gwms.monitor.api import create_monitor_app
from gwms.monitor.archive import Archive
from gwms.monitor.audit import AuditLog
from gwms.monitor.index import LogIndex
from gwms.monitor.search import parse_query, slice_lines
from gwms.monitor.searcher import Searcher
from gwms.monitor.views import iso, job_json, page_json
from gwms.monitor.webauth import (
    ANONYMOUS,
    COOKIE_NAME,
    WebAccess,
    identify,
    make_session,
    same_origin,
)
from gwms.net.auth import Identity
from gwms.net.errors import ApiError
from gwms.security.scopes import LOGS_ORIGINAL, has_scopes
from gwms.security.tokens import TokenError, TokenVerifier

__all__ = [
    "LINES_PER_PAGE",
    "SEARCH_FIELDS",
    "Bar",
    "create_monitor_site",
    "format_duration",
    "highlight_segments",
    "histogram_bars",
    "line_window_start",
    "make_environment",
    "mount_monitor",
    "pages_router",
    "safe_next",
    "snippet_lines",
]

#: Lines of a section one page shows (``?from=`` moves the window).
LINES_PER_PAGE = 5000
#: The search form's list filters (name, label, placeholder); each maps to the API parameter.
SEARCH_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("entry", "Entry", "CMS_T2_US_Nebraska_Red"),
    ("site", "Site", "unl.edu"),
    ("user", "Frontend user", "fe_cms"),
    ("group", "Frontend group", "main"),
    ("job", "Factory job id", "job.1234.0, 1234.0 or 1234"),
    ("uuid", "Glidein uuid", "8a1c…"),
    ("section", "Section", "StartdLog, StarterLog*"),
)
_STATIC = {"monitor.css": "text/css; charset=utf-8", "monitor.js": "text/javascript; charset=utf-8"}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


# ----------------------------------------------------------------------------------
# pure helpers (tested on their own)


def highlight_segments(text: str, spans: Iterable[Sequence[int]]) -> list[tuple[str, bool]]:
    """``text`` cut into ``(piece, is_match)`` runs by match ``spans`` ([start, end) offsets).

    Overlapping or out-of-range spans are merged and clipped; the pieces joined give
    ``text`` back.
    """
    merged: list[list[int]] = []
    for span in sorted((max(0, s[0]), min(len(text), s[1])) for s in spans):
        start, end = span
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out: list[tuple[str, bool]] = []
    pos = 0
    for start, end in merged:
        if start > pos:
            out.append((text[pos:start], False))
        out.append((text[start:end], True))
        pos = end
    if pos < len(text) or not out:
        out.append((text[pos:], False))
    return out


def snippet_lines(hits: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The lines to show for a result's hits (the API's ``hits``), in order, each once.

    Context lines shared by neighbouring hits are shown once, a hit line that is also
    another hit's context is shown as a hit, and ``{"gap": True}`` separates runs that
    are not adjacent. Each line is ``{"n", "text", "spans", "hit"}``.
    """
    by_number: dict[int, dict[str, Any]] = {}
    for h in hits:
        for c in (*h.get("before", ()), *h.get("after", ())):
            by_number.setdefault(
                int(c["n"]), {"n": int(c["n"]), "text": c["text"], "spans": [], "hit": False}
            )
        by_number[int(h["n"])] = {
            "n": int(h["n"]),
            "text": h["text"],
            "spans": [list(sp) for sp in h.get("spans", ())],
            "hit": True,
        }
    out: list[dict[str, Any]] = []
    previous: int | None = None
    for n in sorted(by_number):
        if previous is not None and n != previous + 1:
            out.append({"gap": True})
        out.append(by_number[n])
        previous = n
    return out


def format_duration(seconds: float | None) -> str:
    """``3725`` -> ``1h 02m 05s``; ``None`` -> ``—``."""
    if seconds is None:
        return "—"
    s = round(seconds)
    sign = "-" if s < 0 else ""
    s = abs(s)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{sign}{days}d {hours:02d}h {minutes:02d}m"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m {s:02d}s"
    if minutes:
        return f"{sign}{minutes}m {s:02d}s"
    return f"{sign}{s}s"


def line_window_start(line: int, window: int = LINES_PER_PAGE) -> int:
    """The first line of the page of ``window`` lines that holds ``line`` (1-based)."""
    if line < 1:
        return 1
    return (line - 1) // window * window + 1


@dataclass(frozen=True)
class Bar:
    """One bar of the histogram as drawn: position and size in SVG units, and its bucket."""

    x: float
    y: float
    width: float
    height: float
    start: int
    end: int
    count: int


def histogram_bars(
    buckets: Sequence[Mapping[str, Any]],
    bucket_seconds: int,
    *,
    width: float = 720.0,
    height: float = 90.0,
    gap: float = 1.0,
    max_bar_width: float = 48.0,
) -> list[Bar]:
    """The bars of a histogram (``[{"epoch", "count"}, ...]``) scaled into ``width`` x ``height``.

    Each bucket gets an equal slot with its bar centred in it (at most ``max_bar_width``
    wide). The tallest bar is ``height`` high; a bucket with results is at least 1 unit
    high, so it stays visible beside a large one.
    """
    if not buckets:
        return []
    top = max(int(b["count"]) for b in buckets) or 1
    step = width / len(buckets)
    bar_width = max(min(step - gap, max_bar_width), 0.5)
    bars = []
    for i, b in enumerate(buckets):
        count = int(b["count"])
        h = 0.0 if count == 0 else max(1.0, height * count / top)
        bars.append(
            Bar(
                x=round(i * step + (step - bar_width) / 2, 2),
                y=round(height - h, 2),
                width=round(bar_width, 2),
                height=round(h, 2),
                start=int(b["epoch"]),
                end=int(b["epoch"]) + bucket_seconds,
                count=count,
            )
        )
    return bars


def safe_next(target: str | None, base: str) -> str:
    """Where to go after signing in: ``target`` if it is a path under ``base``, else ``base``."""
    home = base + "/"
    if not target or not target.startswith(home if base else "/"):
        return home
    if target.startswith("//") or "\\" in target or any(ord(c) < 32 for c in target):
        return home
    return target


def _time_label(epoch: int | None) -> str:
    if epoch is None:
        return "—"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


# ----------------------------------------------------------------------------------
# templates


def make_environment() -> jinja2.Environment:
    """The Jinja2 environment of the pages: templates from ``web/templates``, autoescape on."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gwms.monitor", "web/templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = format_duration
    env.filters["when"] = _time_label
    env.filters["segments"] = highlight_segments
    env.filters["snippet"] = snippet_lines
    env.filters["thousands"] = lambda n: f"{n:,}" if isinstance(n, int) else n
    return env


_ENV: jinja2.Environment | None = None


def _env() -> jinja2.Environment:
    global _ENV
    if _ENV is None:
        _ENV = make_environment()
    return _ENV


def _static_text(name: str) -> bytes:
    return resources.files("gwms.monitor").joinpath("web/static", name).read_bytes()


# ----------------------------------------------------------------------------------
# the router


class _Page:
    """What one request renders with: the identity, the link base and helpers."""

    def __init__(
        self, request: Request, base: str, who: Identity | None, access: WebAccess
    ) -> None:
        self.request = request
        self.base = base
        self.who = who
        self.access = access

    def url(self, path: str = "/", **query: Any) -> str:
        """A link to ``path`` under the monitor, with ``query`` (None values left out)."""
        items = []
        for k, v in query.items():
            if v is None or v == "" or v is False:
                continue
            if isinstance(v, (list, tuple)):
                items.extend((k, str(x)) for x in v if x not in (None, ""))
            else:
                items.append((k, "1" if v is True else str(v)))
        qs = urlencode(items)
        return self.base + path + (f"?{qs}" if qs else "")

    def job_url(self, job_id: str, section: str | None = None, **query: Any) -> str:
        """A link to a job page (or one of its sections)."""
        path = f"/jobs/{quote(job_id, safe='')}"
        if section is not None:
            path += "/" + quote(section, safe="")
        return self.url(path, **query)

    def line_url(self, job_id: str, section: str, line: int, original: bool = False) -> str:
        """The permalink of one line of a section."""
        start = line_window_start(line)
        return (
            self.job_url(
                job_id, section, **{"from": start if start > 1 else None, "original": original}
            )
            + f"#L{line}"
        )

    def download_url(self, job_id: str, what: str, section: str | None, original: bool) -> str:
        """A download link of the JSON API beside the pages: one ``section``'s text,
        the ``archive`` or the JSON ``bundle``."""
        path = f"/v1/jobs/{quote(job_id, safe='')}"
        if what == "section" and section is not None:
            path += f"/sections/{quote(section, safe='')}/text"
        else:
            path += f"/{what}"
        return self.url(path, original="true" if original else None)


def _render(page: _Page, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    who = page.who
    html = (
        _env()
        .get_template(template)
        .render(
            page=page,
            base=page.base,
            who=who,
            anonymous=who is not None and who.name == ANONYMOUS,
            privileged=who is not None and has_scopes(who.scopes, [LOGS_ORIGINAL]),
            version=gwms.__version__,
            **context,
        )
    )
    return HTMLResponse(html, status_code=status_code, headers=dict(_PAGE_HEADERS))


def _error(page: _Page, status: int, title: str, message: str, **extra: Any) -> HTMLResponse:
    return _render(page, "error.html", status, status=status, title=title, message=message, **extra)


def pages_router(
    monitor: Any,
    *,
    verifier: TokenVerifier | None,
    access: WebAccess | None = None,
    prefix: str = "",
) -> APIRouter:
    """The HTML pages as a router, over ``monitor`` (the ``app.state.monitor`` of
    :func:`~gwms.monitor.api.create_monitor_app`).

    The downloads link to the JSON API under the same prefix, so include this router in
    the monitor app itself (as :func:`create_monitor_site` does) or mount that app
    (:func:`mount_monitor`). ``prefix`` is where the router's routes live in the app
    it is included in.
    """
    access = access or WebAccess()
    router = APIRouter(prefix=prefix, include_in_schema=False)
    m = monitor

    def base_of(request: Request) -> str:
        return (request.scope.get("root_path", "") or "").rstrip("/") + prefix.rstrip("/")

    def login_redirect(request: Request, base: str, message: str | None = None) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query = {"next": target}
        if message:
            query["expired"] = "1"
        return RedirectResponse(f"{base}/login?{urlencode(query)}", status_code=303)

    def start(request: Request) -> _Page | Response:
        base = base_of(request)
        try:
            who = identify(request, verifier, access)
        except ApiError as exc:
            return login_redirect(request, base, exc.message)
        if who is None:
            return login_redirect(request, base)
        return _Page(request, base, who, access)

    # -- static ----------------------------------------------------------------------
    @router.get("/static/{name}", name="monitor_static")
    def static(name: str) -> Response:
        if name not in _STATIC:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(
            _static_text(name),
            media_type=_STATIC[name],
            headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    # -- login / logout --------------------------------------------------------------
    @router.get("/login", name="monitor_login")
    def login_form(
        request: Request, next: str | None = None, expired: str | None = None
    ) -> Response:
        base = base_of(request)
        page = _Page(request, base, None, access)
        try:
            page.who = identify(request, verifier, access)
        except ApiError:
            page.who = None
        return _render(
            page,
            "login.html",
            next=safe_next(next, base),
            message="Your session has expired or its token is no longer valid: sign in again."
            if expired
            else None,
            with_users=bool(access.users),
        )

    @router.post("/login")
    async def login(request: Request) -> Response:
        base = base_of(request)
        page = _Page(request, base, None, access)
        if not same_origin(request):
            return _error(page, 403, "Refused", "sign-in requests must come from this site")
        form = {
            k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()
        }
        target = safe_next(form.get("next"), base)
        secure = request.url.scheme == "https"
        cookie_path = base + "/" if base else "/"
        token = (form.get("token") or "").strip()
        user = (form.get("user") or "").strip()
        value: str | None = None
        max_age = 0
        problem = "enter a token, or a user name and password"
        if token:
            if token.lower().startswith("bearer "):
                token = token[7:].strip()
            if verifier is None:
                problem = "this monitor has no token verifier"
            else:
                try:
                    claims = verifier.verify(token)
                except TokenError as exc:
                    problem = f"the token is not accepted: {exc}"
                else:
                    value = token
                    max_age = max(1, int(claims.expires_at.timestamp() - _time.time()))
        elif user and access.users is not None:
            scopes = access.users.authenticate(user, form.get("password") or "")
            if scopes is None:
                problem = "unknown user or wrong password"
            else:
                max_age = access.session_seconds
                value = make_session(
                    access.session_key, user, scopes, expires=_time.time() + max_age
                )
        if value is None:
            return _render(
                page, "login.html", 401, next=target, message=problem, with_users=bool(access.users)
            )
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE_NAME,
            value,
            max_age=max_age,
            path=cookie_path,
            httponly=True,
            samesite="strict",
            secure=secure,
        )
        return response

    @router.post("/logout")
    def logout(request: Request) -> Response:
        base = base_of(request)
        if not same_origin(request):
            return _error(
                _Page(request, base, None, access),
                403,
                "Refused",
                "sign-out requests must come from this site",
            )
        response = RedirectResponse(f"{base}/login", status_code=303)
        response.delete_cookie(
            COOKIE_NAME, path=base + "/" if base else "/", httponly=True, samesite="strict"
        )
        return response

    # -- search ----------------------------------------------------------------------
    @router.get("/", name="monitor_search")
    def search_page(request: Request) -> Response:
        page = start(request)
        if isinstance(page, Response):
            return page
        assert page.who is not None
        args = request.query_params
        form: dict[str, Any] = {
            "q": args.get("q", ""),
            "regex": args.get("regex", ""),
            "ignore_case": args.get("ignore_case") in ("1", "true", "on"),
            "exit": args.get("exit", ""),
            "from": args.get("from", ""),
            "to": args.get("to", ""),
            "time": args.get("time", ""),
            "order": args.get("order", "desc") if args.get("order") in ("asc", "desc") else "desc",
            "limit": _int(args.get("limit"), 20, 1, 200),
            "context": _int(args.get("context"), 2, 0, 10),
        }
        for name, _label, _ph in SEARCH_FIELDS:
            form[name] = args.get(name, "")
        cursor = args.get("cursor") or None
        page_no = _int(args.get("page"), 1, 1, 10**9)
        searched = (
            any(form[k] for k in ("q", "regex", "exit", "from", "to", "time"))
            or any(form[n] for n, _l, _p in SEARCH_FIELDS)
            or "go" in args
        )
        result: dict[str, Any] | None = None
        problem: str | None = None
        status = 200
        if searched:
            params = {
                "exit": form["exit"] or None,
                "time": form["time"] or None,
                "from": form["from"] or None,
                "to": form["to"] or None,
            }
            for name, _label, _ph in SEARCH_FIELDS:
                values = (
                    [v.strip() for v in form[name].split(",")]
                    if name not in ("job",)
                    else [v.strip() for v in form[name].replace(" ", ",").split(",")]
                )
                params[name] = [v for v in values if v] or None
            try:
                query = parse_query(
                    form["q"],
                    now=_time.time(),
                    regex=form["regex"] or None,
                    ignore_case=form["ignore_case"],
                    params=params,
                )
                privileged = m.privileged(page.who)
                found = m.searcher.search(
                    query,
                    limit=form["limit"],
                    cursor=cursor,
                    order=form["order"],
                    context=form["context"],
                    max_hits=5,
                    anonymized_only=not privileged,
                    with_total=True,
                    with_histogram=cursor is None,
                )
                shown = [r.job for r in found.rows if r.hits and not r.job.info.anonymized]
                if shown:
                    m.audit.record(
                        who=page.who.name,
                        token_id=page.who.token_id,
                        action="search",
                        jobs=[str(j.id) for j in shown],
                        query=query.to_json(),
                        client=request.client.host if request.client else None,
                    )
                result = page_json(found, privileged=privileged)
            except GwmsError as exc:
                problem = str(exc)
                status = getattr(exc, "http_status", 400) or 400
        keep = {k: v for k, v in form.items() if v not in ("", None, False)}
        keep.pop("limit", None) if form["limit"] == 20 else None
        keep.pop("context", None) if form["context"] == 2 else None
        keep.pop("order", None) if form["order"] == "desc" else None
        next_url = (
            page.url("/", **keep, go=1, cursor=result["next_cursor"], page=page_no + 1)
            if result and result["next_cursor"]
            else None
        )
        first_url = page.url("/", **keep, go=1) if cursor else None
        bars: list[Bar] = []
        hist = result.get("histogram") if result else None
        if hist:
            bars = histogram_bars(hist["buckets"], hist["bucket_seconds"])
        bar_links = [
            page.url(
                "/",
                **{k: v for k, v in keep.items() if k not in ("time", "from", "to")},
                go=1,
                **{"from": iso(b.start), "to": iso(b.end - 1)},
            )
            for b in bars
        ]
        return _render(
            page,
            "search.html",
            status,
            form=form,
            fields=SEARCH_FIELDS,
            searched=searched,
            result=result,
            problem=problem,
            next_url=next_url,
            first_url=first_url,
            page_no=page_no,
            bars=list(zip(bars, bar_links, strict=True)),
            hist=hist,
        )

    # -- job -------------------------------------------------------------------------
    def job_page(request: Request, ref: str, section: str | None) -> Response:
        page = start(request)
        if isinstance(page, Response):
            return page
        who = page.who
        assert who is not None
        args = request.query_params
        want_original = args.get("original") in ("1", "true", "on")
        first = _int(args.get("from"), 1, 1, 10**9)
        try:
            job = m.resolve(ref)
        except GwmsError as exc:
            return _error(page, getattr(exc, "http_status", 404), "No such job", str(exc))
        except ApiError as exc:
            return _error(page, exc.status_code, "No such job", exc.message)
        privileged = m.privileged(who)
        if want_original and not privileged:
            return _error(
                page,
                403,
                "Original logs need more rights",
                "403 Forbidden: original (not anonymized) logs need the LOGS_ORIGINAL or "
                "ADMINISTRATOR scope. "
                + (
                    "You are browsing anonymously: you can read the anonymized logs only."
                    if who.name == ANONYMOUS
                    else f"You are signed in as {who.name} with {', '.join(sorted(who.scopes))}."
                ),
                back=page.job_url(str(job.id), section),
                sign_in=True,
            )
        sections = m.index.sections(job.id)
        view = job_json(job, sections, privileged=privileged)
        names = [s.name for s in sections]
        name = (
            section
            if section is not None
            else ("out" if "out" in names else (names[0] if names else None))
        )
        lines: list[Any] = []
        total_lines = 0
        pane_error: str | None = None
        is_original = False
        if name is not None:
            if section is not None and name not in names and not want_original:
                return _error(
                    page,
                    404,
                    "No such section",
                    f"{job.info.name} has no section {name!r}",
                    back=page.job_url(str(job.id)),
                )
            try:
                is_original = m.check_original(job, want_original, who)
                if is_original:
                    m.audited(who, request, job, "section", name)
                _info, text = m.section_text(job, name, want_original)
                lines, total_lines = slice_lines(text, first, first + LINES_PER_PAGE - 1)
            except ApiError as exc:
                pane_error = f"{exc.status_code}: {exc.message}"
            except GwmsError as exc:
                pane_error = str(exc)
        last = lines[-1].number if lines else first - 1
        jid = str(job.id)
        return _render(
            page,
            "job.html",
            job=view["job"],
            jid=jid,
            view=view,
            sections=view["sections"],
            current=name,
            lines=lines,
            first=first,
            last=last,
            total_lines=total_lines,
            window=LINES_PER_PAGE,
            prev_url=page.job_url(
                jid, name, **{"from": max(1, first - LINES_PER_PAGE), "original": want_original}
            )
            if name and first > 1
            else None,
            next_url=page.job_url(jid, name, **{"from": last + 1, "original": want_original})
            if name and last < total_lines
            else None,
            original=is_original,
            want_original=want_original,
            pane_error=pane_error,
            timeline=view["timeline"],
            marks=_timeline_marks(view["timeline"]),
        )

    @router.get("/jobs/{ref}", name="monitor_job")
    def job_default(request: Request, ref: str) -> Response:
        return job_page(request, ref, None)

    @router.get("/jobs/{ref}/{section}", name="monitor_job_section")
    def job_section(request: Request, ref: str, section: str) -> Response:
        return job_page(request, ref, section)

    return router


def _timeline_marks(
    events: Sequence[Mapping[str, Any]], width: float = 720.0
) -> list[dict[str, Any]]:
    """Timeline events placed on a line ``width`` wide by their offset from the start."""
    offsets = [e["offset_seconds"] for e in events if isinstance(e.get("offset_seconds"), int)]
    span = max(offsets) if offsets else 0
    marks = []
    for e in events:
        off = e.get("offset_seconds")
        if not isinstance(off, int):
            continue
        x = 0.0 if span <= 0 else width * off / span
        marks.append({"x": round(x, 1), "event": e["event"], "offset": off, "detail": e["detail"]})
    return marks


def _int(text: str | None, default: int, lo: int, hi: int) -> int:
    try:
        value = int(text) if text not in (None, "") else default
    except ValueError:
        return default
    return max(lo, min(hi, value))


# ----------------------------------------------------------------------------------
# apps


def create_monitor_site(
    index: LogIndex,
    *,
    verifier: TokenVerifier | None,
    audit: AuditLog,
    archive: Archive | None = None,
    searcher: Searcher | None = None,
    access: WebAccess | None = None,
    close_index: bool = False,
    push: Any = None,
) -> FastAPI:
    """The monitor's app with its pages: the JSON API of
    :func:`~gwms.monitor.api.create_monitor_app` plus :func:`pages_router` at ``/``.

    ``access`` says how browsers get in (token login always; anonymous viewing and
    local users when set); the JSON API honours the same session cookie and anonymous
    mode. ``push`` (a :class:`gwms.monitor.push.PushReceiver`) adds the log server.
    """
    access = access or WebAccess()
    app = create_monitor_app(
        index,
        verifier=verifier,
        audit=audit,
        archive=archive,
        searcher=searcher,
        close_index=close_index,
        **({"push": push} if push is not None else {}),
    )
    app.state.monitor_access = access
    app.include_router(pages_router(app.state.monitor, verifier=verifier, access=access))
    return app


def mount_monitor(
    app: FastAPI,
    prefix: str,
    *,
    index: LogIndex,
    verifier: TokenVerifier | None,
    audit: AuditLog,
    archive: Archive | None = None,
    searcher: Searcher | None = None,
    access: WebAccess | None = None,
) -> FastAPI:
    """Mount the monitor (pages and JSON API) at ``prefix`` (e.g. ``/logs``) of ``app``.

    Returns the mounted sub-app. Pages are then at ``{prefix}/``, the API at
    ``{prefix}/v1/...``; the session cookie is scoped to ``{prefix}/``. The caller
    keeps ownership of ``index`` and ``archive`` (the sub-app does not close them).
    """
    if not prefix.startswith("/") or prefix.endswith("/") or len(prefix) < 2:
        raise GwmsError(f"a mount prefix looks like '/logs', not {prefix!r}")
    site = create_monitor_site(
        index, verifier=verifier, audit=audit, archive=archive, searcher=searcher, access=access
    )
    app.mount(prefix, site)
    return site
