"""Prometheus metrics of a service's HTTP traffic, kept in the app's own registry.

Every request is counted in ``gwms_http_requests_total`` and timed in
``gwms_http_request_duration_seconds``, both labelled by method, route template
(``/ads/{name}``, never the raw path, so label values stay few) and status.
Requests that match no route are labelled ``<unmatched>``.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED_ROUTE = "<unmatched>"
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)


class HttpMetrics:
    """The HTTP metrics of one service, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry, *, service: str, version: str) -> None:
        self.registry = registry
        self.requests = Counter(
            "gwms_http_requests",
            "HTTP requests handled, by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "gwms_http_request_duration_seconds",
            "Time to handle an HTTP request, by method, route template and status.",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_progress = Gauge(
            "gwms_http_requests_in_progress",
            "HTTP requests being handled now.",
            registry=registry,
        )
        info = Gauge(
            "gwms_service_info",
            "Which gwms service this is (always 1).",
            ["service", "version"],
            registry=registry,
        )
        info.labels(service=service, version=version).set(1)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        labels = (method if method in _KNOWN_METHODS else "OTHER", route, str(status))
        self.requests.labels(*labels).inc()
        self.duration.labels(*labels).observe(seconds)


def route_template(scope: Scope) -> str:
    """The template of the route that handled a request (set by the router), if any."""
    route = scope.get("route")
    if route is None:
        return UNMATCHED_ROUTE
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str) or not template:
        return UNMATCHED_ROUTE
    return scope.get("root_path", "").rstrip("/") + template


class MetricsMiddleware:
    """ASGI middleware that feeds :class:`HttpMetrics` (the outermost gwms layer)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, tracking_send)
        finally:
            self.metrics.in_progress.dec()
            self.metrics.observe(
                scope.get("method", "GET"),
                route_template(scope),
                status,
                time.perf_counter() - start,
            )
