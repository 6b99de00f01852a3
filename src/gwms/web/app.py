"""The web UI: dashboards for the pool, the factory and the frontend, and the log monitor.

:func:`create_web_app` makes one FastAPI app (from :func:`gwms.net.create_app`, so it
has ``/healthz``, ``/metrics`` and ``/api/v1/history`` too) with these pages; each is
also JSON at the same URL with ``.json`` (or with ``Accept: application/json``):

==========================  =====================================================
``/``                       which services the UI reads, links to the pages
``/pool``                   jobs by status and owner, slots by state and entry,
                            negotiation cycles, fair share; history charts
``/pool/jobs``              the job list (filters: owner, status, schedd, constraint)
``/pool/jobs/{C.P}``        one job: attributes, events, the ``-analyze`` explanation
``/factory``                per entry and client: glideins, requests, pauses and why,
                            lifetimes, validation and wasted time; links to the logs
``/frontend``               per group and entry: idle jobs, running, glideins,
                            requests, the limits and curbs that fired
``/logs/``                  the log monitor (when a monitor data directory is given)
==========================  =====================================================

History pages take ``?range=hour|day|week|year``. Charts are plotly figures drawn by
``/static/plotly.min.js``, the copy inside the plotly package (no CDN).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from gwms.net import create_app
from gwms.net.errors import ApiError
from gwms.security.tokens import TokenVerifier
from gwms.web import pages
from gwms.web.charts import Chart, plotly_js_path
from gwms.web.sources import ServiceReader, WebSources

__all__ = ["create_web_app", "wants_json"]

_HERE = Path(__file__).parent
_STATIC = {"web.css": "text/css; charset=utf-8", "web.js": "text/javascript; charset=utf-8"}
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'")


def wants_json(request: Request, suffix: bool) -> bool:
    """Whether the JSON form was asked for: a ``.json`` URL, or an Accept header that
    prefers ``application/json`` to HTML."""
    if suffix:
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(_HERE / "templates")),
                      autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)

    def seconds(value: Any) -> str:
        try:
            v = float(value)
        except (TypeError, ValueError):
            return "-"
        if v >= 3600:
            return f"{v / 3600:.1f} h"
        if v >= 60:
            return f"{v / 60:.1f} min"
        return f"{v:.2f} s" if v < 10 else f"{v:.0f} s"

    def number(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        return "-" if value is None else str(value)

    def as_json(value: Any) -> str:
        return json.dumps(value, default=str)

    def when(value: Any) -> str:
        try:
            return dt.datetime.fromtimestamp(float(value), tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        except (TypeError, ValueError, OverflowError, OSError):
            return "" if value is None else str(value)

    env.filters.update(seconds=seconds, number=number, as_json=as_json, when=when)
    return env


def create_web_app(
    sources: WebSources,
    *,
    verifier: TokenVerifier | None = None,
    monitor_anonymous: bool = False,
) -> FastAPI:
    """Make the web UI over the services named in ``sources``.

    ``verifier`` checks tokens for the mounted log monitor (needed to mount it, with
    ``sources.monitor_data``); ``monitor_anonymous`` lets visitors read anonymized logs
    there without logging in.
    """
    app = create_app(service="web", verifier=verifier)
    app.state.sources = sources
    reader = ServiceReader(sources)
    env = _environment()
    monitor_mounted = _mount_logs(app, sources, verifier, monitor_anonymous)
    nav = [("Pool", "/pool"), ("Jobs", "/pool/jobs"), ("Factory", "/factory"), ("Frontend", "/frontend")]
    if monitor_mounted:
        nav.append(("Logs", "/logs/"))

    def render(request: Request, template: str, doc: dict[str, Any], json_form: bool,
               charts: list[Chart] | None = None, title: str = "") -> Response:
        if wants_json(request, json_form):
            return JSONResponse(doc)
        html = env.get_template(template).render(
            doc=doc, charts=charts or [], title=title, nav=nav, path=request.url.path,
            ranges=list(pages.RANGES), logs=monitor_mounted)
        return HTMLResponse(html, headers={"Content-Security-Policy": _CSP,
                                           "X-Content-Type-Options": "nosniff"})

    def page_error(exc: pages.PageError) -> ApiError:
        return ApiError(400, "bad_request", str(exc))

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(plotly_js_path(), media_type="text/javascript; charset=utf-8",
                            headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        if name not in _STATIC:
            raise ApiError(404, "not_found", f"no static file {name!r}")
        return FileResponse(_HERE / "static" / name, media_type=_STATIC[name])

    @app.get("/", include_in_schema=False)
    @app.get("/index.json", include_in_schema=False)
    def index(request: Request) -> Response:
        doc = pages.overview_page(reader)
        doc["pages"]["logs"] = "/logs/" if monitor_mounted else None
        return render(request, "index.html", doc, request.url.path.endswith(".json"), title="gwms")

    def history_range(range_: str) -> str:
        try:
            return pages.check_range(range_)
        except pages.PageError as exc:
            raise page_error(exc) from None

    @app.get("/pool", summary="Pool dashboard")
    @app.get("/pool.json", summary="Pool dashboard (JSON)")
    def pool(request: Request, range: str = "day") -> Response:
        doc = pages.pool_page(reader, history_range(range))
        return render(request, "pool.html", doc, request.url.path.endswith(".json"),
                      pages.pool_charts(doc), "Pool")

    @app.get("/pool/jobs", summary="Job list")
    @app.get("/pool/jobs.json", summary="Job list (JSON)")
    def jobs(request: Request, owner: str = "", status: str = "", constraint: str = "",
             schedd: str = "", limit: int = Query(default=200, ge=1, le=10000)) -> Response:
        try:
            doc = pages.jobs_page(reader, owner=owner, status=status, constraint=constraint,
                                  schedd=schedd, limit=limit)
        except pages.PageError as exc:
            raise page_error(exc) from None
        return render(request, "jobs.html", doc, request.url.path.endswith(".json"), title="Jobs")

    @app.get("/pool/jobs/{job_id}", summary="One job")
    def job(request: Request, job_id: str, schedd: str = "") -> Response:
        json_form = job_id.endswith(".json")
        if json_form:
            job_id = job_id[: -len(".json")]
        try:
            doc = pages.job_page(reader, job_id, schedd)
        except pages.PageError as exc:
            raise page_error(exc) from None
        response = render(request, "job.html", doc, json_form, title=f"Job {job_id}")
        if not doc["found"]:
            response.status_code = 404
        return response

    @app.get("/factory", summary="Factory dashboard")
    @app.get("/factory.json", summary="Factory dashboard (JSON)")
    def factory(request: Request, range: str = "day") -> Response:
        doc = pages.factory_page(reader, history_range(range))
        doc["logs"] = monitor_mounted
        return render(request, "factory.html", doc, request.url.path.endswith(".json"),
                      pages.factory_charts(doc), "Factory")

    @app.get("/frontend", summary="Frontend dashboard")
    @app.get("/frontend.json", summary="Frontend dashboard (JSON)")
    def frontend(request: Request, range: str = "day") -> Response:
        doc = pages.frontend_page(reader, history_range(range))
        return render(request, "frontend.html", doc, request.url.path.endswith(".json"),
                      pages.frontend_charts(doc), "Frontend")

    return app


def _mount_logs(app: FastAPI, sources: WebSources, verifier: TokenVerifier | None,
                anonymous: bool) -> bool:
    """Mount the log monitor's pages at /logs; False when there is nothing to mount."""
    if sources.monitor_data is None or verifier is None:
        return False
    from gwms.monitor.layout import MonitorLayout
    from gwms.monitor.pages import mount_monitor
    from gwms.monitor.webauth import WebAccess

    layout = MonitorLayout.at(sources.monitor_data)
    layout.root.mkdir(parents=True, exist_ok=True)
    index = layout.open_index()
    mount_monitor(app, "/logs", index=index, verifier=verifier, audit=layout.audit(),
                  archive=layout.archive(), access=WebAccess(anonymous=anonymous))
    app.state.monitor_index = index
    return True
