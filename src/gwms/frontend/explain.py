"""The frontend's view of one job, for ``gwms q -analyze``.

Every frontend group publishes one ``glideresource`` ad per entry in the user pool's
collector (see :mod:`gwms.frontend.advertise`): the entry's attributes, the group's
matching (``match_expr``, ``start_expr``, job ``query_expr``, constant attributes) and
what the group saw and asked for in its last cycle, with the limits that fired. From
those ads alone, :func:`explain_job` replays the group's matching for one job and says,
per entry, whether the job matches it and, when it does and no glidein was requested,
why not. Pure functions: the caller fetches the ads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from gwms.classads import UNDEFINED, evaluate, parse_expr
from gwms.classads.constraint import compile_constraint
from gwms.classads.operators import is_true
from gwms.factory import attributes as FA
from gwms.frontend import advertise as A
from gwms.frontend.matchexpr import MatchExpr, compile_match_expr
from gwms.frontend.matching import CaseBlindDict

__all__ = ["EntryView", "explain_job", "render_frontend_view"]

#: Attributes of a glideresource ad that are the frontend's, not the entry's.
_OWN_PREFIXES = ("glideclient", "glidefactory", "frontendname", "groupname")


@dataclass(frozen=True)
class EntryView:
    """One (frontend group, entry) pair as the frontend sees the job.

    ``considered``: the group's job ``query_expr`` selects the job. ``matches``: the job
    passes match_expr and start_expr for this entry. ``reason``: one line, why the job
    does not match, or (if it matches) why no glidein is asked for; empty when glideins
    are requested.
    """

    frontend: str
    group: str
    entry: str
    site: str | None
    considered: bool
    matches: bool
    requested_idle: int
    max_run: int
    glideins_running: int
    limits: tuple[str, ...] = ()
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@lru_cache(maxsize=256)
def _match_expr(source: str) -> MatchExpr:
    return compile_match_expr(source)


@lru_cache(maxsize=256)
def _start(source: str) -> Any:
    return parse_expr(source)


@lru_cache(maxsize=256)
def _query(source: str) -> Any:
    return compile_constraint(source)


def _ci(ad: Mapping[str, Any], name: str, default: Any = None) -> Any:
    lower = name.lower()
    for key, value in ad.items():
        if key.lower() == lower:
            return value
    return default


def _entry_attrs(ad: Mapping[str, Any]) -> CaseBlindDict:
    attrs = CaseBlindDict()
    for key, value in ad.items():
        low = key.lower()
        if low.startswith(_OWN_PREFIXES) or low in ("mytype", "name", "authenticatedidentity",
                                                     "lastheardfrom", "classadlifetime"):
            continue
        attrs[key] = value
    return attrs


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _why_not_requested(ad: Mapping[str, Any], limits: tuple[str, ...]) -> str:
    """Why a matching entry gets no new idle glidein (or "" when some are asked for)."""
    if _int(_ci(ad, A.RES_MONITOR_PREFIX + "GlideinsRequestIdle")) > 0:
        return ""
    if _ci(ad, A.RES_IN_DOWNTIME) is True:
        return "the entry is in downtime"
    skipped = _ci(ad, A.RES_SKIPPED)
    if skipped:
        return f"the request was skipped: {skipped}"
    if _ci(ad, A.RES_COMPLETE) is False:
        return "the group's last cycle was incomplete (a query failed), so it asked for nothing new"
    if limits:
        return "limits fired: " + ", ".join(limits)
    if _int(_ci(ad, A.RES_MONITOR_PREFIX + "JobsIdle")) == 0:
        return "the group saw no idle job for this entry in its last cycle (wait for the next one)"
    if _int(_ci(ad, A.RES_MONITOR_PREFIX + "GlideinsIdle")) > 0:
        return "idle glideins are already there for the idle jobs"
    return "no idle glidein requested in the last cycle"


def _view(job: CaseBlindDict, ad: Mapping[str, Any]) -> EntryView:
    attrs = _entry_attrs(ad)
    limits = tuple(x for x in str(_ci(ad, A.RES_LIMITS, "") or "").split(",") if x)
    base: dict[str, Any] = {
        "frontend": str(_ci(ad, FA.FRONTEND_NAME, "?")),
        "group": str(_ci(ad, A.GROUP_NAME, "?")),
        "entry": str(_ci(ad, A.RES_FACTORY_ENTRY, _ci(ad, "Name", "?"))),
        "site": _ci(attrs, "GLIDEIN_Site"),
        "requested_idle": _int(_ci(ad, A.RES_MONITOR_PREFIX + "GlideinsRequestIdle")),
        "max_run": _int(_ci(ad, A.RES_MONITOR_PREFIX + "GlideinsRequestMaxRun")),
        "glideins_running": _int(_ci(ad, A.RES_MONITOR_PREFIX + "GlideinsRunning")),
        "limits": limits,
    }
    query = str(_ci(ad, A.RES_JOB_QUERY, "True") or "True")
    try:
        considered = bool(_query(query)(dict(job)))
    except Exception as exc:  # noqa: BLE001 - an expression the job cannot be tested with
        return EntryView(**base, considered=False, matches=False,
                         reason=f"the group's job query_expr fails on this job: {exc}")
    if not considered:
        return EntryView(**base, considered=False, matches=False,
                         reason=f"the group does not consider this job (job query_expr: {query})")
    try:
        attr_dict = json.loads(str(_ci(ad, A.RES_ATTR_DICT, "{}") or "{}"))
    except ValueError:
        attr_dict = {}
    source = str(_ci(ad, A.RES_MATCH_EXPR, "True") or "True")
    try:
        matched = bool(_match_expr(source).evaluate(job, {"attrs": attrs}, attr_dict))
        error = ""
    except Exception as exc:  # noqa: BLE001 - a user expression that raises is no match
        matched, error = False, f"{type(exc).__name__}: {exc}"
    if not matched:
        why = f"match_expr is false for this job: {source}"
        if error:
            why = f"match_expr raised {error} (counted as no match): {source}"
        return EntryView(**base, considered=True, matches=False, reason=why)
    start = str(_ci(ad, A.RES_START_EXPR, "True") or "True")
    if start.strip().lower() != "true":
        value = evaluate(_start(start), dict(attrs), dict(job))
        if not (value is UNDEFINED or value is True or is_true(value)):
            return EntryView(**base, considered=True, matches=False,
                             reason=f"the glideins' start_expr refuses this job: {start}")
    return EntryView(**base, considered=True, matches=True, reason=_why_not_requested(ad, limits))


def explain_job(job: Mapping[str, Any], resources: Sequence[Mapping[str, Any]]) -> list[EntryView]:
    """Per ``glideresource`` ad (one per frontend group and entry): whether the job
    matches, and why no glidein is requested if none is. Sorted: matching entries first."""
    blind = CaseBlindDict(job)
    views = [_view(blind, ad) for ad in resources
             if str(_ci(ad, "MyType", "")).lower() == A.TYPE_GLIDERESOURCE]
    views.sort(key=lambda v: (not v.matches, v.frontend, v.group, v.entry))
    return views


def render_frontend_view(job_id: str, views: Sequence[EntryView]) -> str:
    """The text ``gwms q -analyze`` prints under "The frontend's view"."""
    lines = [f"The frontend's view of job {job_id}:"]
    if not views:
        lines.append("  no frontend advertises glideresource ads in this pool's collector "
                     "(no frontend running, or its first cycle has not finished)")
        return "\n".join(lines)
    matching = [v for v in views if v.matches]
    lines.append(f"  matches {len(matching)} of {len(views)} entries")
    for v in views:
        where = f"{v.frontend}.{v.group} -> {v.entry}" + (f" (site {v.site})" if v.site else "")
        if v.matches:
            ask = f"requested idle {v.requested_idle}, max run {v.max_run}, running {v.glideins_running}"
            lines.append(f"  MATCH    {where}: {ask}" + (f"; none requested: {v.reason}" if v.reason else ""))
        else:
            lines.append(f"  no match {where}: {v.reason}")
    if views and not matching:
        lines.append("  No entry can run this job: no glidein will be requested for it.")
    elif matching and all(v.reason for v in matching):
        lines.append("  The job matches, but no glidein is being requested for it now (see the reasons above).")
    return "\n".join(lines)
