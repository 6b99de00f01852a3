"""Typed clients of the collector service, for the other services and the command line.

::

    with CollectorClient(url, token=token) as collector:
        collector.advertise([slot_ad, ...])
        slots = collector.query("Machine", constraint="Cpus >= 4", projection=["Name"])
        collector.invalidate("Machine", name="slot1@host")

:class:`AsyncCollectorClient` has the same methods as coroutines. Advertise and
invalidate are idempotent (an ad replaces itself), so both clients retry them on
connection errors and 502/503/504 like reads. More ads than one call may carry are sent
in several calls. Failures raise :class:`gwms.net.ServiceError`.
"""

from __future__ import annotations

import random
import ssl
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

from gwms.net import ServiceClient, ServiceError, SyncServiceClient
from gwms.pool.collector.limits import DEFAULT_MAX_ADS_PER_CALL, LONG_CONSTRAINT
from gwms.pool.collector.store import AdvertiseReport, InvalidateReport, Refusal

__all__ = ["AsyncCollectorClient", "CollectorClient"]

Ad = Mapping[str, Any]
Token = str | Callable[[], str] | None


def _batches(ads: Ad | Sequence[Ad], size: int) -> Iterator[list[Ad]]:
    if isinstance(ads, Mapping):
        yield [ads]
        return
    items = list(ads)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _merge(total: AdvertiseReport, answer: Mapping[str, Any], offset: int) -> None:
    total.accepted += int(answer.get("accepted", 0))
    for r in answer.get("refused", []):
        total.refused.append(
            Refusal(int(r["index"]) + offset, r.get("my_type"), r.get("name"), str(r["reason"]))
        )


def _query_request(
    my_type: str | None,
    constraint: str | None,
    projection: Sequence[str] | None,
    limit: int | None,
) -> tuple[str, str, dict[str, Any]]:
    """(method, path, params-or-body) for a query."""
    if constraint is not None and len(constraint) > LONG_CONSTRAINT:
        body: dict[str, Any] = {"my_type": my_type, "constraint": constraint}
        if projection:
            body["projection"] = list(projection)
        if limit is not None:
            body["limit"] = limit
        return "POST", "/v1/ads/query", body
    params: dict[str, Any] = {}
    if my_type:
        params["type"] = my_type
    if constraint:
        params["constraint"] = constraint
    if projection:
        params["projection"] = ",".join(projection)
    if limit is not None:
        params["limit"] = limit
    return "GET", "/v1/ads", params


def _ad_path(my_type: str, name: str) -> str:
    return f"/v1/ads/{quote(my_type, safe='')}/{quote(name, safe='')}"


class CollectorClient:
    """A blocking client of one collector.

    Args:
        base_url: the collector's URL, e.g. ``http://127.0.0.1:9618``.
        token: a bearer token (or a function returning one) with the scopes the calls need.
        timeout: seconds per request.
        retries: how many times a failed request is sent again.
        verify: TLS verification (True, False, a CA file, or an ``ssl.SSLContext``).
        batch_size: the most ads per advertise call.
        client: an already made :class:`~gwms.net.SyncServiceClient` to use instead.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: Token = None,
        timeout: float = 30.0,
        retries: int = 3,
        verify: bool | str | ssl.SSLContext = True,
        batch_size: int = DEFAULT_MAX_ADS_PER_CALL,
        rng: random.Random | None = None,
        client: SyncServiceClient | None = None,
    ) -> None:
        self._http = client or SyncServiceClient(
            base_url,
            token=token,
            timeout=timeout,
            retries=retries,
            verify=verify,
            service="collector",
            retry_unsafe=True,
            rng=rng,
        )
        self._batch = max(1, batch_size)

    @property
    def base_url(self) -> str:
        """The collector's URL."""
        return self._http.base_url

    def advertise(self, ads: Ad | Sequence[Ad]) -> AdvertiseReport:
        """Store one ad or many; refusal indexes count over all the ads given."""
        total = AdvertiseReport()
        offset = 0
        for batch in _batches(ads, self._batch):
            _merge(total, self._http.post("/v1/ads", {"ads": batch}), offset)
            offset += len(batch)
        return total

    def invalidate(
        self, my_type: str, name: str | None = None, constraint: str | None = None
    ) -> InvalidateReport:
        """Remove own ads of ``my_type`` by name and/or constraint (all of the type if
        neither)."""
        answer = self._http.post(
            "/v1/ads/invalidate", {"my_type": my_type, "name": name, "constraint": constraint}
        )
        return InvalidateReport(int(answer["removed"]), int(answer["refused"]))

    def query(
        self,
        my_type: str | None = None,
        constraint: str | None = None,
        projection: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Live ads of ``my_type`` (all types if None) matching ``constraint``."""
        method, path, args = _query_request(my_type, constraint, projection, limit)
        if method == "POST":
            answer = self._http.post(path, args)
        else:
            answer = self._http.get(path, params=args)
        return list(answer["ads"])

    def get(self, my_type: str, name: str) -> dict[str, Any] | None:
        """One ad, or None if the collector has no such ad."""
        try:
            return dict(self._http.get(_ad_path(my_type, name)))
        except ServiceError as exc:
            if exc.status == 404:
                return None
            raise

    def counts(self) -> dict[str, int]:
        """Ads held per MyType."""
        return dict(self._http.get("/v1/types")["counts"])

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> CollectorClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncCollectorClient:
    """The asyncio twin of :class:`CollectorClient` (same arguments and methods)."""

    def __init__(
        self,
        base_url: str,
        *,
        token: Token = None,
        timeout: float = 30.0,
        retries: int = 3,
        verify: bool | str | ssl.SSLContext = True,
        batch_size: int = DEFAULT_MAX_ADS_PER_CALL,
        rng: random.Random | None = None,
        client: ServiceClient | None = None,
    ) -> None:
        self._http = client or ServiceClient(
            base_url,
            token=token,
            timeout=timeout,
            retries=retries,
            verify=verify,
            service="collector",
            retry_unsafe=True,
            rng=rng,
        )
        self._batch = max(1, batch_size)

    @property
    def base_url(self) -> str:
        """The collector's URL."""
        return self._http.base_url

    async def advertise(self, ads: Ad | Sequence[Ad]) -> AdvertiseReport:
        """Store one ad or many; refusal indexes count over all the ads given."""
        total = AdvertiseReport()
        offset = 0
        for batch in _batches(ads, self._batch):
            _merge(total, await self._http.post("/v1/ads", {"ads": batch}), offset)
            offset += len(batch)
        return total

    async def invalidate(
        self, my_type: str, name: str | None = None, constraint: str | None = None
    ) -> InvalidateReport:
        """Remove own ads of ``my_type`` by name and/or constraint (all of the type if
        neither)."""
        answer = await self._http.post(
            "/v1/ads/invalidate", {"my_type": my_type, "name": name, "constraint": constraint}
        )
        return InvalidateReport(int(answer["removed"]), int(answer["refused"]))

    async def query(
        self,
        my_type: str | None = None,
        constraint: str | None = None,
        projection: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Live ads of ``my_type`` (all types if None) matching ``constraint``."""
        method, path, args = _query_request(my_type, constraint, projection, limit)
        if method == "POST":
            answer = await self._http.post(path, args)
        else:
            answer = await self._http.get(path, params=args)
        return list(answer["ads"])

    async def get(self, my_type: str, name: str) -> dict[str, Any] | None:
        """One ad, or None if the collector has no such ad."""
        try:
            return dict(await self._http.get(_ad_path(my_type, name)))
        except ServiceError as exc:
            if exc.status == 404:
                return None
            raise

    async def counts(self) -> dict[str, int]:
        """Ads held per MyType."""
        return dict((await self._http.get("/v1/types"))["counts"])

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncCollectorClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
