"""One summary, two views: a service's dashboard numbers as JSON and as Prometheus metrics.

A service calls :func:`install_dashboard` with a ``summary`` function (the JSON document
its dashboard shows) and a ``families`` function (the Prometheus metric families made
from that same document). The app then serves ``GET /v1/dashboard`` (READ) and exports
the families at ``/metrics``, both computed from one call of ``summary`` each time, so
the two can never disagree by construction (the test checks it end to end).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from fastapi import Depends, FastAPI
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gwms.net.auth import require_scopes
from gwms.security import scopes

log = logging.getLogger("gwms.net.dashboard")

__all__ = ["DashboardCollector", "gauge", "install_dashboard"]

Summary = Callable[[], Mapping[str, Any]]
Families = Callable[[Mapping[str, Any]], Iterable[Metric]]


def gauge(
    name: str, doc: str, labels: Sequence[str], rows: Iterable[tuple[Sequence[str], float]]
) -> GaugeMetricFamily:
    """A gauge family ``name`` with one sample per ``(label values, value)`` row."""
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    for values, value in rows:
        family.add_metric([str(v) for v in values], float(value))
    return family


class DashboardCollector(Collector):
    """A Prometheus collector computing ``families(summary())`` at each scrape."""

    def __init__(self, summary: Summary, families: Families) -> None:
        self._summary = summary
        self._families = families

    def collect(self) -> Iterable[Metric]:
        """The families of the current summary (none, and a logged warning, if it fails:
        a broken dashboard must not take the service's other metrics down)."""
        try:
            families = list(self._families(self._summary()))
        except Exception as exc:
            log.warning("dashboard metrics failed: %s", exc, exc_info=True)
            return
        yield from families

    def describe(self) -> Iterable[Metric]:
        """Nothing up front: the families depend on the data."""
        return []


def install_dashboard(app: FastAPI, summary: Summary, families: Families) -> None:
    """Serve ``GET /v1/dashboard`` from ``summary`` and export ``families`` at ``/metrics``."""
    app.state.metrics_registry.register(DashboardCollector(summary, families))
    app.state.dashboard = summary

    @app.get("/v1/dashboard", tags=["service"], summary="The numbers this service's dashboard shows",
             dependencies=[Depends(require_scopes(scopes.READ))])
    def dashboard() -> Mapping[str, Any]:
        return summary()
