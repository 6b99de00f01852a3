"""The collector's dashboard numbers: slots by state and entry (JSON and ``/metrics``).

``GET /v1/dashboard`` answers ``{"collector", "ads": {MyType: n}, "slots": [{"state",
"entry", "slots", "cpus"}]}``; ``/metrics`` has ``gwms_collector_slots{state,entry}`` and
``gwms_collector_slot_cpus{state,entry}`` from the same document. A slot's entry is its
``GLIDEIN_Entry_Name`` (``"-"`` for slots not started by a glidein).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.core import Metric

from gwms.net.dashboard import gauge

__all__ = ["ENTRY_ATTR", "NO_ENTRY", "collector_dashboard", "collector_families", "slot_counts"]

ENTRY_ATTR = "GLIDEIN_Entry_Name"
NO_ENTRY = "-"


def _get(ad: Mapping[str, Any], name: str, default: Any = None) -> Any:
    if name in ad:
        return ad[name]
    lower = name.lower()
    for key, value in ad.items():
        if key.lower() == lower:
            return value
    return default


def slot_counts(ads: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Machine ads counted by (State, entry): ``[{"state", "entry", "slots", "cpus"}]`` (pure)."""
    counts: dict[tuple[str, str], list[float]] = {}
    for ad in ads:
        state = str(_get(ad, "State", "Unknown") or "Unknown")
        entry = str(_get(ad, ENTRY_ATTR, NO_ENTRY) or NO_ENTRY)
        cpus = _get(ad, "Cpus", 0)
        acc = counts.setdefault((state, entry), [0, 0])
        acc[0] += 1
        acc[1] += cpus if isinstance(cpus, (int, float)) and not isinstance(cpus, bool) else 0
    return [{"state": s, "entry": e, "slots": int(v[0]), "cpus": v[1]}
            for (s, e), v in sorted(counts.items())]


def collector_dashboard(store: Any, name: str) -> dict[str, Any]:
    """The collector's dashboard document from its ad store."""
    return {
        "collector": name,
        "ads": dict(sorted(store.counts().items())),
        "slots": slot_counts(store.query("Machine", projection=["State", ENTRY_ATTR, "Cpus"])),
    }


def collector_families(doc: Mapping[str, Any]) -> Iterable[Metric]:
    """The Prometheus families of a collector dashboard document."""
    slots = doc["slots"]
    yield gauge("gwms_collector_slots", "Slot ads by State and glidein entry.", ["state", "entry"],
                (((s["state"], s["entry"]), s["slots"]) for s in slots))
    yield gauge("gwms_collector_slot_cpus", "CPUs of slot ads by State and glidein entry.",
                ["state", "entry"], (((s["state"], s["entry"]), s["cpus"]) for s in slots))
