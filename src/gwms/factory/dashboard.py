"""The factory's dashboard numbers per entry and client (JSON and ``/metrics``).

``GET /v1/dashboard`` answers ``{"factory", "entries": [{"name", "backend", "paused",
"reason", "in_downtime", "clients": [COUNTS | {"client"}], "totals": COUNTS,
"lifetime": {"count", "mean_seconds", "max_seconds"}, "validation": {"count",
"mean_seconds"}, "wasted_seconds"}]}`` where COUNTS is ``{"idle", "running", "held",
"requested_idle", "requested_max", "submitted", "removed", "failed", "completed"}``:

- idle, running, held: active pilots now (idle = unsubmitted + pending + staging);
- requested_idle, requested_max: the frontends' current requests;
- submitted, removed, failed (failed + lost), completed: pilots ever, from the store;
- lifetime: wall seconds from running to finished, of finished pilots that ran;
- validation: seconds the glidein spent validating the node, read from the pilots'
  ``.out`` files (the ``=== Last script starting ... after validating for N ===`` line);
- wasted_seconds: wall seconds of pilots that ran and then ended failed or lost.

``/metrics`` has the ``gwms_factory_*`` families from the same document.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client.core import Metric

from gwms.net.dashboard import gauge

__all__ = ["COUNT_FIELDS", "FactoryDashboard", "factory_families", "pilot_counts"]

COUNT_FIELDS = ("idle", "running", "held", "requested_idle", "requested_max",
                "submitted", "removed", "failed", "completed")
_IDLE = {"unsubmitted", "pending", "staging"}
_MAX_OUT_BYTES = 1 << 20
_MAX_VALIDATION_CACHE = 20000


def pilot_counts(rows: Iterable[tuple[str, str, str, int, int, int]]) -> dict[tuple[str, str], dict[str, int]]:
    """``(entry, client, state, active, submitted, n)`` rows -> counts per (entry, client) (pure)."""
    out: dict[tuple[str, str], dict[str, int]] = {}
    for entry, client, state, active, submitted, n in rows:
        c = out.setdefault((entry, client), dict.fromkeys(COUNT_FIELDS, 0))
        c["submitted"] += submitted
        if active:
            if state in _IDLE:
                c["idle"] += n
            elif state == "running":
                c["running"] += n
            elif state == "held":
                c["held"] += n
        if state == "removed":
            c["removed"] += n
        elif state in ("failed", "lost"):
            c["failed"] += n
        elif state == "completed":
            c["completed"] += n
    return out


class FactoryDashboard:
    """Computes the factory's dashboard document (reads the pilot store read-only)."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._validation: dict[str, int | None] = {}

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            path = Path(self.service.store.path)
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False,
                                       timeout=30)
        return self._db

    def _validation_seconds(self, pilot_id: str, stdout: str) -> int | None:
        if pilot_id in self._validation:
            return self._validation[pilot_id]
        from gwms.monitor.outfile import parse_out

        value: int | None = None
        try:
            with open(stdout, "rb") as fh:
                value = parse_out(fh.read(_MAX_OUT_BYTES)).validation_seconds
        except (OSError, ValueError):
            value = None
        if len(self._validation) >= _MAX_VALIDATION_CACHE:
            self._validation.clear()
        self._validation[pilot_id] = value
        return value

    def __call__(self) -> dict[str, Any]:
        """The dashboard document now."""
        with self._lock:
            db = self._conn()
            rows = db.execute(
                "SELECT entry, client_name, state, active, SUM(submitted IS NOT NULL), COUNT(*) "
                "FROM pilots GROUP BY entry, client_name, state, active").fetchall()
            ran = db.execute(
                "SELECT entry, pilot_id, state, finished - running_since, stdout, output_collected "
                "FROM pilots WHERE running_since IS NOT NULL AND finished IS NOT NULL "
                "ORDER BY finished DESC LIMIT 5000").fetchall()
            counts = pilot_counts(rows)
            lifetimes: dict[str, list[float]] = {}
            wasted: dict[str, float] = {}
            validation: dict[str, list[int]] = {}
            for entry, pilot_id, state, seconds, stdout, collected in ran:
                seconds = max(0.0, float(seconds))
                lifetimes.setdefault(entry, []).append(seconds)
                if state in ("failed", "lost"):
                    wasted[entry] = wasted.get(entry, 0.0) + seconds
                if collected:
                    v = self._validation_seconds(pilot_id, stdout)
                    if v is not None:
                        validation.setdefault(entry, []).append(v)
        entries = []
        for info in self.service.entries():
            name = info["name"]
            clients: dict[str, dict[str, int]] = {
                client: dict(c) for (e, client), c in counts.items() if e == name}
            for req in info["requests"]:
                c = clients.setdefault(req["client"], dict.fromkeys(COUNT_FIELDS, 0))
                c["requested_idle"] += int(req["idle"])
                c["requested_max"] += int(req["max"])
            totals = dict.fromkeys(COUNT_FIELDS, 0)
            for c in clients.values():
                for k in COUNT_FIELDS:
                    totals[k] += c[k]
            life = lifetimes.get(name, [])
            val = validation.get(name, [])
            entries.append({
                "name": name,
                "backend": info["backend"],
                "paused": bool(info["paused"]),
                "reason": info["reason"],
                "in_downtime": bool(info["in_downtime"]),
                "clients": [{"client": k, **v} for k, v in sorted(clients.items())],
                "totals": totals,
                "lifetime": {"count": len(life),
                             "mean_seconds": round(sum(life) / len(life), 3) if life else 0.0,
                             "max_seconds": round(max(life), 3) if life else 0.0},
                "validation": {"count": len(val),
                               "mean_seconds": round(sum(val) / len(val), 3) if val else 0.0},
                "wasted_seconds": round(wasted.get(name, 0.0), 3),
            })
        return {"factory": self.service.config.name, "entries": entries}


def factory_families(doc: Mapping[str, Any]) -> Iterable[Metric]:
    """The Prometheus families of a factory dashboard document."""
    entries = doc["entries"]
    for f in COUNT_FIELDS:
        yield gauge(f"gwms_factory_{f}", f"Glideins: {f.replace('_', ' ')}, per entry and client.",
                    ["entry", "client"],
                    (((e["name"], c["client"]), c[f]) for e in entries for c in e["clients"]))
    yield gauge("gwms_factory_entry_paused", "1 if the entry is paused (by an operator or failures).",
                ["entry", "reason"], (((e["name"], e["reason"]), int(e["paused"])) for e in entries))
    yield gauge("gwms_factory_entry_in_downtime", "1 if the entry is in a downtime.", ["entry"],
                (((e["name"],), int(e["in_downtime"])) for e in entries))
    yield gauge("gwms_factory_glidein_lifetime_mean_seconds",
                "Mean wall time of finished glideins that ran.", ["entry"],
                (((e["name"],), e["lifetime"]["mean_seconds"]) for e in entries))
    yield gauge("gwms_factory_glidein_lifetime_max_seconds",
                "Longest wall time of finished glideins that ran.", ["entry"],
                (((e["name"],), e["lifetime"]["max_seconds"]) for e in entries))
    yield gauge("gwms_factory_glideins_finished", "Finished glideins that ran (lifetime sample).",
                ["entry"], (((e["name"],), e["lifetime"]["count"]) for e in entries))
    yield gauge("gwms_factory_validation_mean_seconds", "Mean node validation time of glideins.",
                ["entry"], (((e["name"],), e["validation"]["mean_seconds"]) for e in entries))
    yield gauge("gwms_factory_wasted_seconds",
                "Wall seconds of glideins that ran and then failed or were lost.", ["entry"],
                (((e["name"],), e["wasted_seconds"]) for e in entries))
