"""The dashboards' documents: what each page shows, as JSON-able dicts.

Each ``*_page`` function reads the services through a :class:`~gwms.web.sources.ServiceReader`
and returns the page's document; the same document is the page's JSON form
(``/pool.json``) and what its template renders. The numbers come from the services'
``GET /v1/dashboard`` answers, which are also what their ``/metrics`` export, so a page
and the services' metrics agree. A service that cannot be read leaves an entry in the
document's ``errors`` and the rest of the page is still shown.

Each ``*_charts`` function turns a document into the page's plotly charts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from gwms.errors import GwmsError
from gwms.net.timeseries import RANGES
from gwms.pool import jobattrs as A
from gwms.web.charts import Chart, bar_chart, line_chart, sum_series
from gwms.web.sources import ServiceReader

log = logging.getLogger("gwms.web")

__all__ = [
    "JOB_COLUMNS",
    "PageError",
    "factory_charts",
    "factory_page",
    "frontend_charts",
    "frontend_page",
    "job_page",
    "jobs_page",
    "overview_page",
    "pool_charts",
    "pool_page",
]

#: The job list's columns (job attributes).
JOB_COLUMNS = ("ClusterId", "ProcId", "Owner", "JobStatus", "QDate", "RequestCpus", "RequestMemory",
               "RemoteHost", "Cmd", "HoldReason")
_STATUS_BY_NAME = {name.lower(): code for code, name in A.JOB_STATUS_NAMES.items()}


class PageError(GwmsError):
    """A page was asked for with bad parameters (unknown range, bad job id)."""

    http_status = 400


def check_range(range_: str) -> str:
    """``range_`` if it is a history view (hour, day, week, year)."""
    if range_ not in RANGES:
        raise PageError(f"unknown range {range_!r} (ranges: {', '.join(RANGES)})")
    return range_


def _attempt(errors: list[str], what: str, fn: Callable[[], Any], default: Any = None) -> Any:
    try:
        return fn()
    except GwmsError as exc:
        errors.append(f"{what}: {exc}")
        return default
    except Exception as exc:
        log.exception("reading %s failed", what)
        errors.append(f"{what}: {exc}")
        return default


def _history(reader: ServiceReader, urls: Sequence[str], service: str, metric: str, range_: str,
             errors: list[str]) -> list[dict[str, Any]]:
    series: list[dict[str, Any]] = []
    for url in urls:
        answer = _attempt(errors, f"{service} history at {url}",
                          lambda u=url: reader.get(u, "/api/v1/history", service,
                                                   {"metric": metric, "range": range_}))
        if answer:
            series.extend(answer.get("series") or [])
    return series


def _as_lists(traces: Mapping[str, list[tuple[int, float]]]) -> dict[str, list[list[float]]]:
    return {k: [[t, v] for t, v in p] for k, p in traces.items()}


# --------------------------------------------------------------------------- overview


def overview_page(reader: ServiceReader) -> dict[str, Any]:
    """The start page: which services the UI reads."""
    s = reader.sources
    return {
        "pages": {"pool": "/pool", "jobs": "/pool/jobs", "factory": "/factory",
                  "frontend": "/frontend", "logs": "/logs/" if s.monitor_data else None},
        "services": {"collector": s.collector, "wms": s.wms, "schedds": list(s.schedds),
                     "negotiator": s.negotiator, "factories": list(s.factories),
                     "frontends": list(s.frontends)},
    }


# --------------------------------------------------------------------------- pool


def pool_page(reader: ServiceReader, range_: str = "day") -> dict[str, Any]:
    """Pool: jobs by status and owner, slots by state and entry, negotiation, fair share."""
    check_range(range_)
    errors: list[str] = []
    collector = None
    if reader.sources.collector:
        collector = _attempt(errors, f"collector at {reader.sources.collector}",
                             lambda: reader.get(reader.sources.collector, "/v1/dashboard", "collector"))
    schedd_urls = _attempt(errors, "the schedd list", reader.schedd_urls, [])
    schedds = []
    for url in schedd_urls:
        doc = _attempt(errors, f"schedd at {url}", lambda u=url: reader.get(u, "/v1/dashboard", "schedd"))
        if doc is not None:
            schedds.append({"url": url, **doc})
    neg_url = _attempt(errors, "the negotiator's address", reader.negotiator_url)
    negotiator = None
    if neg_url:
        negotiator = _attempt(errors, f"negotiator at {neg_url}",
                              lambda: reader.get(neg_url, "/v1/dashboard", "negotiator"))
        if negotiator is not None:
            negotiator = {"url": neg_url, **negotiator}

    by_owner: dict[str, dict[str, int]] = {}
    by_status: dict[str, int] = {}
    for doc in schedds:
        for owner, counts in doc["by_owner"].items():
            mine = by_owner.setdefault(owner, {})
            for status, n in counts.items():
                mine[status] = mine.get(status, 0) + n
                by_status[status] = by_status.get(status, 0) + n
    slot_rows = (collector or {}).get("slots") or []
    slots_by_state: dict[str, int] = {}
    slots_by_entry: dict[str, int] = {}
    for row in slot_rows:
        slots_by_state[row["state"]] = slots_by_state.get(row["state"], 0) + row["slots"]
        slots_by_entry[row["entry"]] = slots_by_entry.get(row["entry"], 0) + row["slots"]

    history = {
        "jobs_by_status": _as_lists(sum_series(
            _history(reader, schedd_urls, "schedd", "gwms_schedd_jobs", range_, errors), ["status"])),
        "slots_by_state": _as_lists(sum_series(
            _history(reader, [reader.sources.collector] if reader.sources.collector else [],
                     "collector", "gwms_collector_slots", range_, errors), ["state"])),
        "cycle_seconds": _as_lists(sum_series(
            _history(reader, [neg_url] if neg_url else [], "negotiator",
                     "gwms_negotiator_last_cycle_seconds", range_, errors), [])),
    }
    return {
        "range": range_,
        "now": time.time(),
        "jobs": {"by_status": dict(sorted(by_status.items())), "by_owner": dict(sorted(by_owner.items()))},
        "slots": {"by_state": dict(sorted(slots_by_state.items())),
                  "by_entry": dict(sorted(slots_by_entry.items())), "rows": slot_rows},
        "collector": collector,
        "schedds": schedds,
        "negotiator": negotiator,
        "history": history,
        "errors": errors,
    }


def _points(lists: Mapping[str, list[list[float]]]) -> dict[str, list[tuple[int, float]]]:
    return {k: [(int(t), float(v)) for t, v in p] for k, p in lists.items()}


def _window(doc: Mapping[str, Any]) -> tuple[float, float] | None:
    """The time axis of a page's history charts: the view's span up to the page's time."""
    now = doc.get("now")
    if now is None:
        return None
    return float(now) - RANGES[doc["range"]][0], float(now)


def pool_charts(doc: Mapping[str, Any]) -> list[Chart]:
    """The pool page's charts."""
    owners = list(doc["jobs"]["by_owner"])
    statuses = sorted({s for c in doc["jobs"]["by_owner"].values() for s in c})
    rows = doc["slots"]["rows"]
    entries = sorted({r["entry"] for r in rows})
    states = sorted({r["state"] for r in rows})

    def slots_of(state: str, entry: str) -> int:
        return sum(r["slots"] for r in rows if r["state"] == state and r["entry"] == entry)

    h = doc["history"]
    return [
        bar_chart("jobs-by-owner", "Jobs by owner and status", owners,
                  {s: [doc["jobs"]["by_owner"][o].get(s, 0) for o in owners] for s in statuses}, "jobs"),
        bar_chart("slots-by-entry", "Slots by entry and state", entries,
                  {st: [slots_of(st, e) for e in entries] for st in states}, "slots"),
        line_chart("jobs-history", f"Jobs by status (last {doc['range']})",
                   _points(h["jobs_by_status"]), "jobs", window=_window(doc)),
        line_chart("slots-history", f"Slots by state (last {doc['range']})",
                   _points(h["slots_by_state"]), "slots", window=_window(doc)),
        line_chart("cycle-history", f"Negotiation cycle time (last {doc['range']})",
                   _points(h["cycle_seconds"]), "seconds", window=_window(doc)),
    ]


# --------------------------------------------------------------------------- jobs


def _status_code(text: str) -> int:
    text = text.strip()
    if text.isdigit():
        return int(text)
    code = _STATUS_BY_NAME.get(text.lower())
    if code is None:
        raise PageError(f"unknown job status {text!r} (statuses: {', '.join(A.JOB_STATUS_NAMES.values())})")
    return code


def job_constraint(owner: str = "", status: str = "", constraint: str = "") -> str | None:
    """The ClassAd constraint of the job list's filters (None: all jobs; pure)."""
    parts: list[str] = []
    if owner:
        quoted = owner.replace("\\", "\\\\").replace('"', '\\"')
        parts.append(f'Owner == "{quoted}"')
    if status:
        parts.append(f"JobStatus == {_status_code(status)}")
    if constraint.strip():
        parts.append(f"({constraint.strip()})")
    return " && ".join(parts) or None


def jobs_page(reader: ServiceReader, *, owner: str = "", status: str = "", constraint: str = "",
              schedd: str = "", limit: int = 200) -> dict[str, Any]:
    """The job list, filtered by owner, status, schedd and a ClassAd constraint."""
    errors: list[str] = []
    where = job_constraint(owner, status, constraint)
    urls = _attempt(errors, "the schedd list", reader.schedd_urls, [])
    if schedd:
        urls = [u for u in urls if u == schedd]
    rows: list[dict[str, Any]] = []
    for url in urls:
        def query(u: str = url) -> list[dict[str, Any]]:
            with reader.schedd(u) as client:
                return client.query(where, projection=list(JOB_COLUMNS), limit=limit)

        for ad in _attempt(errors, f"schedd at {url}", query, []):
            row = {c: ad.get(c) for c in JOB_COLUMNS}
            row["id"] = f"{row['ClusterId']}.{row['ProcId']}"
            row["status"] = A.JOB_STATUS_NAMES.get(row["JobStatus"], str(row["JobStatus"]))
            row["schedd"] = url
            rows.append(row)
    return {"filters": {"owner": owner, "status": status, "constraint": constraint, "schedd": schedd,
                        "limit": limit},
            "constraint": where, "count": len(rows), "jobs": rows[:limit], "schedds": urls,
            "errors": errors}


def _job_id(text: str) -> tuple[int, int]:
    try:
        c, p = text.split(".", 1)
        return int(c), int(p)
    except ValueError:
        raise PageError(f"{text!r} is not a job id (CLUSTER.PROC)") from None


def job_page(reader: ServiceReader, job_id: str, schedd: str = "") -> dict[str, Any]:
    """One job: its attributes, its events, and why it does (not) run (``q -analyze``)."""
    from gwms.pool.negotiator.analyze import analyze_job, render_analysis

    cluster, proc = _job_id(job_id)
    errors: list[str] = []
    urls = [schedd] if schedd else _attempt(errors, "the schedd list", reader.schedd_urls, [])
    ad = None
    where = None
    for url in urls:
        def fetch(u: str = url) -> Any:
            with reader.schedd(u) as client:
                return client.job(cluster, proc)

        ad = _attempt([], f"schedd at {url}", fetch)
        if ad is not None:
            where = url
            break
    if ad is None or where is None:
        return {"id": job_id, "schedd": schedd or None, "found": False, "ad": None, "events": [],
                "analysis": None, "errors": errors or [f"no job {job_id} in any schedd"]}

    def events() -> list[dict[str, Any]]:
        with reader.schedd(where) as client:
            return client.events(cluster, proc)

    evs = _attempt(errors, "events", events, [])
    slots = _attempt(errors, "slots", lambda: reader.collector_ads("Machine"), [])
    analysis = analyze_job(ad, slots)
    worst = analysis.worst
    return {
        "id": job_id,
        "schedd": where,
        "found": True,
        "status": A.JOB_STATUS_NAMES.get(ad.get("JobStatus"), str(ad.get("JobStatus"))),
        "ad": dict(sorted(ad.items(), key=lambda kv: kv[0].lower())),
        "events": evs,
        "analysis": asdict(analysis) | {"worst": asdict(worst) if worst else None,
                                        "text": render_analysis(analysis)},
        "errors": errors,
    }


# --------------------------------------------------------------------------- factory


def factory_page(reader: ServiceReader, range_: str = "day") -> dict[str, Any]:
    """Factory: per entry and client counts, pauses and why, lifetimes, waste."""
    check_range(range_)
    errors: list[str] = []
    factories = []
    for url in reader.sources.factories:
        doc = _attempt(errors, f"factory at {url}", lambda u=url: reader.get(u, "/v1/dashboard", "factory"))
        if doc is not None:
            factories.append({"url": url, **doc})
    urls = list(reader.sources.factories)
    history = {
        "idle_by_entry": _as_lists(sum_series(
            _history(reader, urls, "factory", "gwms_factory_idle", range_, errors), ["entry"])),
        "running_by_entry": _as_lists(sum_series(
            _history(reader, urls, "factory", "gwms_factory_running", range_, errors), ["entry"])),
        "requested_idle_by_entry": _as_lists(sum_series(
            _history(reader, urls, "factory", "gwms_factory_requested_idle", range_, errors), ["entry"])),
    }
    return {"range": range_, "now": time.time(), "factories": factories, "history": history,
            "logs": bool(reader.sources.monitor_data), "errors": errors}


def factory_charts(doc: Mapping[str, Any]) -> list[Chart]:
    """The factory page's charts."""
    entries = [(f["factory"], e) for f in doc["factories"] for e in f["entries"]]
    names = [e["name"] for _, e in entries]
    h = doc["history"]
    return [
        bar_chart("glideins-by-entry", "Glideins by entry", names,
                  {k: [e["totals"][k] for _, e in entries] for k in ("idle", "running", "held")},
                  "glideins"),
        line_chart("running-history", f"Running glideins by entry (last {doc['range']})",
                   _points(h["running_by_entry"]), "glideins", window=_window(doc)),
        line_chart("idle-history", f"Idle glideins by entry (last {doc['range']})",
                   _points(h["idle_by_entry"]), "glideins", window=_window(doc)),
    ]


# --------------------------------------------------------------------------- frontend


def frontend_page(reader: ServiceReader, range_: str = "day") -> dict[str, Any]:
    """Frontend: per group and entry, idle jobs (matched, unique, old), running, glideins,
    requests, and the limits and curbs that fired."""
    check_range(range_)
    errors: list[str] = []
    frontends = []
    for url in reader.sources.frontends:
        doc = _attempt(errors, f"frontend at {url}", lambda u=url: reader.get(u, "/v1/dashboard", "frontend"))
        if doc is not None:
            frontends.append({"url": url, **doc})
    urls = list(reader.sources.frontends)
    history = {
        "idle_by_entry": _as_lists(sum_series(
            _history(reader, urls, "frontend", "gwms_frontend_idle_jobs", range_, errors), ["group", "entry"])),
        "requested_idle_by_entry": _as_lists(sum_series(
            _history(reader, urls, "frontend", "gwms_frontend_requested_idle", range_, errors),
            ["group", "entry"])),
    }
    return {"range": range_, "now": time.time(), "frontends": frontends, "history": history, "errors": errors}


def frontend_charts(doc: Mapping[str, Any]) -> list[Chart]:
    """The frontend page's charts."""
    pairs = [(g, e) for f in doc["frontends"] for g in f["groups"] for e in g["entries"]]
    names = [f"{g['name']}/{e['entry']}" for g, e in pairs]
    h = doc["history"]
    return [
        bar_chart("idle-by-entry", "Idle jobs matched per group/entry", names,
                  {"unique": [e["unique_idle"] or 0 for _, e in pairs],
                   "shared": [(e["idle"] or 0) - (e["unique_idle"] or 0) for _, e in pairs]}, "jobs"),
        line_chart("idle-history", f"Idle jobs per group/entry (last {doc['range']})",
                   _points(h["idle_by_entry"]), "jobs", window=_window(doc)),
        line_chart("request-history", f"Requested idle glideins (last {doc['range']})",
                   _points(h["requested_idle_by_entry"]), "glideins", window=_window(doc)),
    ]
