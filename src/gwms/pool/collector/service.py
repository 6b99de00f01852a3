"""The collector's HTTP service: advertise, invalidate and query ads over JSON.

Endpoints (all need a bearer token; see :mod:`gwms.pool.collector.policy` for scopes):

``POST /v1/ads``
    Body ``{"ads": [ad, ...]}`` (JSON-form ads, at most ``max_ads_per_call``). Every ad
    is stamped with the token's subject as ``AuthenticatedIdentity``. If the token may
    not advertise one of the ad types, nothing is stored and the answer is 403. Answer:
    ``{"accepted": n, "refused": [{"index", "my_type", "name", "reason"}, ...]}``.
``POST /v1/ads/invalidate``
    Body ``{"my_type": T, "name"?: N, "constraint"?: C}``; removes the caller's own ads
    of type T that match (any owner's for ADMINISTRATOR). Answer ``{"removed", "refused"}``.
``GET /v1/ads?type=T&constraint=C&projection=a,b&limit=N``
    Live ads (``READ``). Answer ``{"count": n, "ads": [...]}``.
``POST /v1/ads/query``
    The same query with a JSON body ``{"my_type"?, "constraint"?, "projection"?: [..],
    "limit"?}``, for constraints too long for a URL.
``GET /v1/ads/{my_type}/{name}``
    One ad, or 404.
``GET /v1/types``
    ``{"counts": {MyType: n}}``.

A constraint that does not parse is answered with 400, code ``bad_constraint``, the
message naming the position, and ``detail`` holding ``position``, ``line`` and
``column``. A background task drops expired ads every ``expiry_interval`` seconds;
``/metrics`` has the gauge ``gwms_collector_ads{my_type}`` and counters of updates.

The service keeps its ads in memory only (soft state): a restarted collector starts
empty and is refilled as daemons re-advertise (each at least once per lifetime).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gwms.errors import GwmsError
from gwms.net import ApiError, Identity, create_app, require_scopes
from gwms.net.dashboard import install_dashboard
from gwms.pool.collector import policy
from gwms.pool.collector.dashboard import collector_dashboard, collector_families
from gwms.pool.collector.limits import (
    DEFAULT_EXPIRY_INTERVAL,
    DEFAULT_MAX_ADS_PER_CALL,
    DEFAULT_MAX_BODY_BYTES,
    MAX_CONSTRAINT_LENGTH,
)
from gwms.pool.collector.store import AdStore, Predicate, ad_type
from gwms.security import scopes
from gwms.security.tokens import TokenVerifier

__all__ = [
    "ConstraintCompiler",
    "create_collector_app",
]

logger = logging.getLogger("gwms.collector")

#: Turns constraint text into a predicate; raises a GwmsError (with ``position``) if bad.
ConstraintCompiler = Callable[[str], Predicate]

_JSON = "application/json"


def _classads_compiler(text: str) -> Predicate:
    """:func:`gwms.classads.compile_constraint`, imported when first needed."""
    from gwms.classads import compile_constraint

    return compile_constraint(text)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _decode_body(body: bytes) -> Any:
    """The JSON of a request body, or a 400 naming where it is broken."""
    if not body:
        raise ApiError(400, "bad_json", "the request body is empty; send a JSON object")
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            "bad_json",
            f"the request body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            detail={"position": exc.pos, "line": exc.lineno, "column": exc.colno},
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_json", f"the request body is not JSON: {exc}") from None


def _json_response(data: bytes, status: int = 200) -> Response:
    return Response(content=data, status_code=status, media_type=_JSON)


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class _StoreMetrics(Collector):
    """Reports ``gwms_collector_ads{my_type}`` and ``gwms_collector_ads_expired_total``
    from the store at each scrape."""

    def __init__(self, store: AdStore) -> None:
        self._store = store

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "gwms_collector_ads", "Ads held by the collector, by MyType.", labels=["my_type"]
        )
        for my_type, count in sorted(self._store.counts().items()):
            family.add_metric([my_type], count)
        yield family
        yield CounterMetricFamily(
            "gwms_collector_ads_expired",
            "Ads removed because their lifetime passed.",
            value=self._store.expired_total,
        )

    def describe(self) -> Iterable[Metric]:
        return []


class _Counters:
    """The collector's own counters, in the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.updates = Counter(
            "gwms_collector_ad_updates", "Ads stored by advertise calls.", registry=registry
        )
        self.refused = Counter(
            "gwms_collector_ad_refusals", "Ads refused by advertise calls.", registry=registry
        )
        self.invalidated = Counter(
            "gwms_collector_ads_invalidated", "Ads removed by invalidate calls.", registry=registry
        )


def _constraint_error(text: str, exc: GwmsError) -> ApiError:
    position = getattr(exc, "position", None)
    line = getattr(exc, "line", None)
    column = getattr(exc, "column", None)
    where = f" at position {position}" if isinstance(position, int) else ""
    reason = " ".join(str(exc).split())
    detail: dict[str, Any] = {"constraint": text[:1000]}
    for key, value in (("position", position), ("line", line), ("column", column)):
        if value is not None:
            detail[key] = value
    return ApiError(
        400, "bad_constraint", f"bad constraint{where}: {reason}", detail=detail
    )


def _parse_projection(value: Any) -> list[str] | None:
    """A projection from ``"a,b"`` or ``["a", "b"]``; None for none."""
    if value is None:
        return None
    if isinstance(value, str):
        names = [part.strip() for part in value.split(",")]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        names = [v.strip() for v in value]
    else:
        raise ApiError(
            400, "bad_request", "projection must be a list of attribute names or 'a,b,c'"
        )
    names = [n for n in names if n]
    return names or None


def _check_limit(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ApiError(400, "bad_request", f"limit must be a non-negative integer, not {value!r}")
    return value


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, "bad_request", f"{key!r} must be a string, not {value!r}")
    return value


def create_collector_app(
    store: AdStore,
    verifier: TokenVerifier | None,
    *,
    name: str,
    expiry_interval: float = DEFAULT_EXPIRY_INTERVAL,
    max_ads_per_call: int = DEFAULT_MAX_ADS_PER_CALL,
    max_body_bytes: int | None = DEFAULT_MAX_BODY_BYTES,
    compile_constraint: ConstraintCompiler | None = None,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    """Make the collector's FastAPI app serving ``store``.

    Args:
        store: where the ads live (the app only reads and writes through it).
        verifier: checks bearer tokens (None: every endpoint answers 500, for tests only).
        name: this collector's name (e.g. ``user-pool`` or ``wms``), shown by
            ``/v1/types`` and in log lines.
        expiry_interval: seconds between sweeps of expired ads.
        max_ads_per_call: the most ads one advertise call may carry.
        max_body_bytes: the largest request body.
        compile_constraint: constraint compiler (default
            :func:`gwms.classads.compile_constraint`).
        registry: the Prometheus registry (default: a new one).
    """
    compiler = compile_constraint or _classads_compiler
    cached_compile = functools.lru_cache(maxsize=512)(compiler)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_expiry_loop(), name=f"collector-{name}-expiry")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = create_app(
        service="collector",
        verifier=verifier,
        max_body_bytes=max_body_bytes,
        registry=registry,
        lifespan=lifespan,
    )
    app.state.collector_name = name
    app.state.store = store
    counters = _Counters(app.state.metrics_registry)
    app.state.metrics_registry.register(_StoreMetrics(store))
    app.state.history_name = f"collector-{name}"
    install_dashboard(app, lambda: collector_dashboard(store, name), collector_families)

    async def _expiry_loop() -> None:
        while True:
            await asyncio.sleep(expiry_interval)
            try:
                removed = store.expire()
            except Exception:  # keep sweeping; a bug here must not stop expiry
                logger.exception("collector %s: expiry sweep failed", name)
                continue
            if removed:
                logger.debug("collector %s: %d ads expired", name, removed)

    def constraint_of(text: str | None) -> Predicate | None:
        if text is None or not text.strip():
            return None
        if len(text) > MAX_CONSTRAINT_LENGTH:
            raise ApiError(
                400, "bad_constraint", f"constraint longer than {MAX_CONSTRAINT_LENGTH} characters"
            )
        try:
            return cached_compile(text)
        except GwmsError as exc:
            raise _constraint_error(text, exc) from None

    def run_query(
        my_type: str | None, constraint: str | None, projection: Any, limit: Any
    ) -> Response:
        predicate = constraint_of(constraint)
        count, data = store.query_encoded(
            my_type or None, predicate, _parse_projection(projection), _check_limit(limit)
        )
        return _json_response(b'{"count":%d,"ads":%s}' % (count, data))

    @app.post("/v1/ads", tags=["ads"], summary="Advertise ads (stamped with your identity)")
    async def advertise(request: Request, who: Identity = Depends(require_scopes())) -> Response:
        body = _decode_body(await request.body())
        ads = body.get("ads") if isinstance(body, dict) else None
        if not isinstance(ads, list):
            raise ApiError(400, "bad_request", 'the body must be {"ads": [ad, ...]}')
        if len(ads) > max_ads_per_call:
            raise ApiError(
                413,
                "too_many_ads",
                f"{len(ads)} ads in one call; at most {max_ads_per_call} are accepted",
            )
        types = [t for t in (ad_type(ad) for ad in ads if isinstance(ad, dict)) if t]
        refused = policy.refused_types(who.scopes, types)
        if refused:
            needed = sorted({policy.advertise_scope(t) for t in refused})
            raise ApiError(
                403,
                "forbidden",
                f"{who.name} may not advertise {', '.join(refused)} ads "
                f"(needs scope {' or '.join(needed)})",
            )
        report = store.advertise(ads, who.name, admin=policy.is_administrator(who.scopes))
        counters.updates.inc(report.accepted)
        if report.refused:
            counters.refused.inc(len(report.refused))
        return _json_response(_encode(report.to_json()))

    @app.post("/v1/ads/invalidate", tags=["ads"], summary="Remove your ads of one type")
    async def invalidate(request: Request, who: Identity = Depends(require_scopes())) -> Response:
        body = _decode_body(await request.body())
        if not isinstance(body, dict):
            raise ApiError(400, "bad_request", "the body must be a JSON object")
        my_type = _optional_str(body, "my_type")
        if not my_type:
            raise ApiError(400, "bad_request", "'my_type' is required")
        if not policy.may_invalidate(who.scopes, my_type):
            raise ApiError(
                403,
                "forbidden",
                f"{who.name} may not invalidate {my_type} ads "
                f"(needs scope {policy.advertise_scope(my_type)})",
            )
        ad_name = _optional_str(body, "name")
        predicate = constraint_of(_optional_str(body, "constraint"))
        report = store.invalidate(
            my_type,
            ad_name,
            predicate,
            identity=who.name,
            admin=policy.is_administrator(who.scopes),
        )
        counters.invalidated.inc(report.removed)
        return _json_response(_encode(report.to_json()))

    @app.get("/v1/ads", tags=["ads"], summary="Query ads")
    async def query(
        type: str | None = Query(None, description="MyType; all types if absent"),  # noqa: A002
        constraint: str | None = Query(None, description="ClassAd expression ads must match"),
        projection: str | None = Query(None, description="attributes to return, a,b,c"),
        limit: int | None = Query(None, ge=0, description="the most ads to return"),
        who: Identity = Depends(require_scopes(scopes.READ)),
    ) -> Response:
        return run_query(type, constraint, projection, limit)

    @app.post("/v1/ads/query", tags=["ads"], summary="Query ads (JSON body)")
    async def query_post(
        request: Request, who: Identity = Depends(require_scopes(scopes.READ))
    ) -> Response:
        body = _decode_body(await request.body())
        if not isinstance(body, dict):
            raise ApiError(400, "bad_request", "the body must be a JSON object")
        return run_query(
            _optional_str(body, "my_type"),
            _optional_str(body, "constraint"),
            body.get("projection"),
            body.get("limit"),
        )

    @app.get("/v1/ads/{my_type}/{ad_name:path}", tags=["ads"], summary="One ad")
    async def get_ad(
        my_type: str, ad_name: str, who: Identity = Depends(require_scopes(scopes.READ))
    ) -> Response:
        ad = store.get(my_type, ad_name)
        if ad is None:
            raise ApiError(404, "no_such_ad", f"no {my_type} ad named {ad_name!r}")
        return _json_response(_encode(ad))

    @app.get("/v1/types", tags=["ads"], summary="Ads per MyType")
    async def types_summary(who: Identity = Depends(require_scopes(scopes.READ))) -> Response:
        store.expire()
        return _json_response(_encode({"collector": name, "counts": store.counts()}))

    return app
