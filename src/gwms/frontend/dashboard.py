"""The frontend's dashboard numbers per group and entry (JSON and ``/metrics``).

``GET /v1/dashboard`` answers ``{"frontend", "groups": [{"name", "cycles", "duration",
"idle_jobs", "running_jobs", "unmatched_idle", "error", "entries": [{"entry", "idle",
"unique_idle", "old_idle", "running", "glideins": {"total", "idle", "running",
"failed"}, "min_idle", "max_run", "limits": [...], "removal", "in_downtime"}]}]}``:
idle jobs matched to the entry (all, unique to it, old), running jobs, the entry's
glideins (slots) seen in the pool, what was requested (``min_idle``: glideins to keep
idle, ``max_run``: the most to run) and the limits and curbs that fired this cycle.
``/metrics`` has the ``gwms_frontend_*`` families from the same document.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.core import Metric

from gwms.net.dashboard import gauge

__all__ = ["ENTRY_FIELDS", "frontend_dashboard", "frontend_families"]

#: Per (group, entry) numbers exported as ``gwms_frontend_<field>``.
ENTRY_FIELDS = ("idle", "unique_idle", "old_idle", "running", "min_idle", "max_run")
_ENTRY_KEYS = (*ENTRY_FIELDS, "entry", "glideins", "limits", "removal", "in_downtime")
_GROUP_KEYS = ("cycles", "duration", "idle_jobs", "running_jobs", "unmatched_idle", "error")


def frontend_dashboard(service: Any) -> dict[str, Any]:
    """The frontend's dashboard document (a subset of its ``/v1/status``)."""
    status = service.status()
    groups = []
    for name, g in status["groups"].items():
        groups.append({"name": name, **{k: g.get(k) for k in _GROUP_KEYS},
                       "entries": [{k: e.get(k) for k in _ENTRY_KEYS} for e in g["entries"]]})
    return {"frontend": status["frontend"], "groups": groups}


def frontend_families(doc: Mapping[str, Any]) -> Iterable[Metric]:
    """The Prometheus families of a frontend dashboard document."""
    groups = doc["groups"]
    pairs = [(g, e) for g in groups for e in g["entries"]]
    names = {"idle": "gwms_frontend_idle_jobs", "unique_idle": "gwms_frontend_unique_idle_jobs",
             "old_idle": "gwms_frontend_old_idle_jobs", "running": "gwms_frontend_running_jobs",
             "min_idle": "gwms_frontend_requested_idle", "max_run": "gwms_frontend_requested_max_run"}
    for f in ENTRY_FIELDS:
        yield gauge(names[f], f"Per group and entry: {f.replace('_', ' ')}.", ["group", "entry"],
                    (((g["name"], e["entry"]), e[f] or 0) for g, e in pairs))
    yield gauge("gwms_frontend_glideins", "Glideins (slots) of the entry seen in the pool, by state.",
                ["group", "entry", "state"],
                (((g["name"], e["entry"], s), n) for g, e in pairs for s, n in (e["glideins"] or {}).items()))
    yield gauge("gwms_frontend_limit_fired", "1 for each limit or curb that fired in the last cycle.",
                ["group", "entry", "limit"],
                (((g["name"], e["entry"], str(lim)), 1) for g, e in pairs for lim in e["limits"] or []))
    yield gauge("gwms_frontend_group_idle_jobs", "Idle jobs the group considered.", ["group"],
                (((g["name"],), g["idle_jobs"] or 0) for g in groups))
    yield gauge("gwms_frontend_group_running_jobs", "Running jobs of the group.", ["group"],
                (((g["name"],), g["running_jobs"] or 0) for g in groups))
    yield gauge("gwms_frontend_group_unmatched_idle_jobs", "Idle jobs no entry matched.", ["group"],
                (((g["name"],), g["unmatched_idle"] or 0) for g in groups))
    yield gauge("gwms_frontend_group_cycles", "Cycles run by the group.", ["group"],
                (((g["name"],), g["cycles"] or 0) for g in groups))
    yield gauge("gwms_frontend_group_cycle_seconds", "Duration of the group's last cycle.", ["group"],
                (((g["name"],), g["duration"] or 0) for g in groups))
