"""The FastAPI application factory every gwms service starts from.

``create_app(service="collector", verifier=verifier)`` gives an app that already has:

- the one JSON error shape for every error (see :mod:`gwms.net.errors`), including
  validation errors (422 with field paths) and unexpected exceptions (a logged 500);
- a request body size limit (413), enforced while the body streams in;
- ``GET /healthz`` (no auth): service name, version, uptime;
- ``GET /metrics``: Prometheus text from the app's own registry, with request counts
  and latency histograms by route template and status (no auth unless
  ``metrics_scopes`` is given);
- ``app.state.verifier``, used by :func:`gwms.net.auth.require_scopes`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

import gwms
from gwms.net.auth import require_scopes
from gwms.net.errors import CatchAllMiddleware, install_error_handlers
from gwms.net.limits import DEFAULT_MAX_BODY_BYTES, BodySizeLimitMiddleware
from gwms.net.metrics import HttpMetrics, MetricsMiddleware
from gwms.security.tokens import TokenVerifier


def create_app(
    *,
    service: str,
    verifier: TokenVerifier | None,
    version: str = gwms.__version__,
    max_body_bytes: int | None = DEFAULT_MAX_BODY_BYTES,
    registry: CollectorRegistry | None = None,
    metrics_scopes: Sequence[str] | None = None,
    **fastapi_options: Any,
) -> FastAPI:
    """Make the FastAPI app of a gwms service.

    Args:
        service: the service's name (``collector``, ``factory``, ...).
        verifier: checks bearer tokens for :func:`~gwms.net.auth.require_scopes`;
            None for an app with no authenticated endpoints.
        version: reported by ``/healthz`` and the ``gwms_service_info`` metric.
        max_body_bytes: the largest request body accepted (None: no limit).
        registry: the Prometheus registry for this app's metrics (default: a new one,
            so several apps in one process keep separate counts).
        metrics_scopes: if given, ``/metrics`` requires a token with these scopes.
        fastapi_options: passed to :class:`FastAPI` (e.g. ``lifespan``).
    """
    fastapi_options.setdefault("title", f"gwms {service}")
    fastapi_options.setdefault("version", version)
    app = FastAPI(**fastapi_options)
    registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
    metrics = HttpMetrics(registry, service=service, version=version)

    app.state.service = service
    app.state.version = version
    app.state.verifier = verifier
    app.state.metrics = metrics
    app.state.metrics_registry = registry
    app.state.started_monotonic = time.monotonic()
    app.state.max_body_bytes = max_body_bytes

    install_error_handlers(app)
    # add_middleware puts each new layer outside the previous ones, so the order of
    # requests through them is: metrics -> catch-all 500 -> body limit -> app.
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=max_body_bytes)
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.get("/healthz", tags=["service"], summary="Liveness and identity of the service")
    async def healthz(request: Request) -> dict[str, Any]:
        state = request.app.state
        return {
            "status": "ok",
            "service": state.service,
            "version": state.version,
            "uptime_seconds": round(time.monotonic() - state.started_monotonic, 3),
        }

    metrics_dependencies = (
        [Depends(require_scopes(*metrics_scopes))] if metrics_scopes is not None else []
    )

    @app.get(
        "/metrics",
        tags=["service"],
        summary="Prometheus metrics",
        dependencies=metrics_dependencies,
        response_class=Response,
    )
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
