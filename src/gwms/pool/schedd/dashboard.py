"""The schedd's dashboard numbers: jobs by status and owner (JSON and ``/metrics``).

``GET /v1/dashboard`` answers ``{"schedd", "max_jobs_running", "totals": {Status: n},
"by_owner": {owner: {Status: n}}}`` (status names as ``condor_q``'s: Idle, Running,
Held, ...); ``/metrics`` has ``gwms_schedd_jobs{owner,status}`` and
``gwms_schedd_max_jobs_running`` from the same document.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.core import Metric

from gwms.net.dashboard import gauge
from gwms.pool import jobattrs as A

__all__ = ["schedd_dashboard", "schedd_families"]


def schedd_dashboard(state: Any) -> dict[str, Any]:
    """The schedd's dashboard document from its state (queue and limits)."""
    by_owner = {
        owner: {A.JOB_STATUS_NAMES.get(s, str(s)): n for s, n in sorted(counts.items())}
        for owner, counts in sorted(state.queue.counts_by_owner().items())
    }
    totals: dict[str, int] = {}
    for counts in by_owner.values():
        for status, n in counts.items():
            totals[status] = totals.get(status, 0) + n
    return {"schedd": state.name, "max_jobs_running": state.limits.max_jobs_running,
            "totals": totals, "by_owner": by_owner}


def schedd_families(doc: Mapping[str, Any]) -> Iterable[Metric]:
    """The Prometheus families of a schedd dashboard document."""
    yield gauge("gwms_schedd_jobs", "Queued jobs by owner and status.", ["owner", "status"],
                (((o, s), n) for o, counts in doc["by_owner"].items() for s, n in counts.items()))
    yield gauge("gwms_schedd_max_jobs_running", "The schedd's MaxJobsRunning.", [],
                [((), doc["max_jobs_running"])])
