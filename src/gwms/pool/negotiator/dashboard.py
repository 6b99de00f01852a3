"""The negotiator's dashboard numbers: cycle times and fair share (JSON and ``/metrics``).

``GET /v1/dashboard`` answers ``{"negotiator", "cycles", "interval", "last": {started,
seconds, match_seconds, schedds, slots, idle_jobs, matches, accepted, refused, errors},
"submitters": [{name, effective_priority, real_priority, factor, usage_hours,
in_use}]}``; ``/metrics`` has the ``gwms_negotiator_*`` families from the same document.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric

from gwms.net.dashboard import gauge

__all__ = ["CYCLE_FIELDS", "SUBMITTER_FIELDS", "negotiator_dashboard", "negotiator_families"]

#: Numbers of the last cycle exported as ``gwms_negotiator_last_cycle_<field>``.
CYCLE_FIELDS = ("seconds", "match_seconds", "schedds", "slots", "idle_jobs", "matches",
                "accepted", "refused")
#: Per-submitter numbers exported as ``gwms_negotiator_submitter_<field>``.
SUBMITTER_FIELDS = ("effective_priority", "real_priority", "factor", "usage_hours", "in_use")


def negotiator_dashboard(negotiator: Any) -> dict[str, Any]:
    """The negotiator's dashboard document."""
    last = asdict(negotiator.last)
    prio = negotiator.userprio()
    return {
        "negotiator": negotiator.config.name,
        "cycles": negotiator.cycles,
        "interval": negotiator.config.interval,
        "last": {k: last.get(k) for k in ("started", "trigger", "errors", *CYCLE_FIELDS)},
        "submitters": [{"name": s["name"], **{f: s.get(f) for f in SUBMITTER_FIELDS}}
                       for s in prio["submitters"]],
    }


def negotiator_families(doc: Mapping[str, Any]) -> Iterable[Metric]:
    """The Prometheus families of a negotiator dashboard document."""
    yield CounterMetricFamily("gwms_negotiator_cycles", "Negotiation cycles run.", value=doc["cycles"])
    last = doc["last"]
    yield gauge("gwms_negotiator_last_cycle_started_seconds",
                "When the last cycle started (epoch seconds).", [], [((), last["started"] or 0)])
    for f in CYCLE_FIELDS:
        yield gauge(f"gwms_negotiator_last_cycle_{f}", f"The last negotiation cycle's {f}.", [],
                    [((), last[f] or 0)])
    for f in SUBMITTER_FIELDS:
        yield gauge(f"gwms_negotiator_submitter_{f}", f"Fair share: each submitter's {f}.",
                    ["submitter"], (((s["name"],), s[f] or 0) for s in doc["submitters"]))
