"""The FastAPI application factory every gwms service starts from.

``create_app(service="collector", verifier=verifier)`` gives an app that already has:

- the one JSON error shape for every error (see :mod:`gwms.net.errors`), including
  validation errors (422 with field paths) and unexpected exceptions (a logged 500);
- a request body size limit (413), enforced while the body streams in;
- ``GET /healthz`` (no auth): service name, version, uptime;
- ``GET /metrics``: Prometheus text from the app's own registry, with request counts
  and latency histograms by route template and status (no auth unless
  ``metrics_scopes`` is given);
- ``app.state.verifier``, used by :func:`gwms.net.auth.require_scopes`;
- ``GET /api/v1/history``: time series of the app's ``gwms_*`` gauges and counters,
  sampled every ``$GWMS_HISTORY_INTERVAL`` s while the app runs (see
  :mod:`gwms.net.timeseries`; same auth as ``/metrics``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

import gwms
from gwms.net.auth import require_scopes
from gwms.net.errors import CatchAllMiddleware, install_error_handlers
from gwms.net.limits import DEFAULT_MAX_BODY_BYTES, BodySizeLimitMiddleware
from gwms.net.metrics import HttpMetrics, MetricsMiddleware
from gwms.net.timeseries import (
    RegistrySampler,
    TimeSeriesStore,
    history_dir_configured,
    history_interval,
    install_history,
    store_for,
)
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
    inner_lifespan = fastapi_options.pop("lifespan", None)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        # The history sampler runs while the app runs, around the service's own lifespan.
        state = app.state
        if history_dir_configured():
            state.history = store_for(service, getattr(state, "history_name", None))
        sampler = RegistrySampler(state.metrics_registry, state.history, history_interval())
        sampler.start()
        try:
            if inner_lifespan is None:
                yield None
            else:
                async with inner_lifespan(app) as inner_state:
                    yield inner_state
        finally:
            sampler.stop()

    app = FastAPI(lifespan=lifespan, **fastapi_options)
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

    app.state.history = TimeSeriesStore()  # in memory until the lifespan starts
    install_history(app, metrics_dependencies)

    return app
