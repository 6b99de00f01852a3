"""The acceptance test of gwms.net: a tiny service built with create_app, served by
ServiceServer on a free loopback port, called over real HTTP."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from gwms.net import (
    ApiError,
    Identity,
    ServiceClient,
    ServiceError,
    ServiceServer,
    SyncServiceClient,
    create_app,
    require_scopes,
)
from gwms.security import scopes
from gwms.security.tokens import TokenVerifier, generate_signing_key, issue_token

pytestmark = pytest.mark.integration

ISSUER = "test.pool"
KEY = generate_signing_key("POOL")
LIMIT = 4096


def token(subject: str, *granted: str) -> str:
    return issue_token(KEY, issuer=ISSUER, subject=subject, scopes=granted)


class Ad(BaseModel):
    name: str
    slots: int = 1


def tiny_service() -> FastAPI:
    app = create_app(
        service="tiny", verifier=TokenVerifier({"POOL": KEY}, ISSUER), max_body_bytes=LIMIT
    )
    app.state.attempts = {}

    @app.post("/ads")
    async def advertise(
        ad: Ad, who: Identity = Depends(require_scopes(scopes.ADVERTISE_STARTD))
    ) -> dict[str, Any]:
        return {"name": ad.name, "identity": who.name, "scopes": sorted(who.scopes)}

    @app.post("/blob")
    async def blob(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.get("/items/{item}")
    async def item(item: int) -> dict[str, int]:
        return {"item": item}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("do not show this")

    @app.api_route("/flaky/{key}", methods=["GET", "POST"])
    async def flaky(key: str) -> Any:
        """Fails with 503 on the first two calls for each key, then answers."""
        count = app.state.attempts[key] = app.state.attempts.get(key, 0) + 1
        if count <= 2:
            raise ApiError(503, "unavailable", f"try again (attempt {count})")
        return {"attempts": count}

    return app


@pytest.fixture(scope="module")
def server() -> Iterator[ServiceServer]:
    with ServiceServer(tiny_service()) as running:
        yield running


@pytest.fixture()
def http(server: ServiceServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def test_listens_on_loopback_on_a_free_port(server: ServiceServer) -> None:
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert server.port > 0


def test_no_token_is_401(http: httpx.Client) -> None:
    response = http.post("/ads", json={"name": "slot1"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "unauthorized"


def test_token_without_the_scope_is_403(http: httpx.Client) -> None:
    response = http.post("/ads", json={"name": "slot1"}, headers=bearer(token("bob@test.pool", "READ")))
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "forbidden",
        "message": "token of bob@test.pool lacks scope ADVERTISE_STARTD",
    }


def test_valid_token_reaches_the_handler_with_its_identity(http: httpx.Client) -> None:
    response = http.post(
        "/ads",
        json={"name": "slot1", "identity": "mallory@test.pool"},
        headers=bearer(token("glidein@test.pool", "ADVERTISE_STARTD", "READ")),
    )
    assert response.status_code == 200
    assert response.json() == {
        "name": "slot1",
        "identity": "glidein@test.pool",
        "scopes": ["ADVERTISE_STARTD", "READ"],
    }


def test_oversized_body_with_content_length_is_413(http: httpx.Client) -> None:
    response = http.post("/blob", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


def test_oversized_chunked_body_is_413(http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b"y" * 1024

    response = http.post("/blob", content=chunks())
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


def test_oversized_body_is_refused_before_authentication(http: httpx.Client) -> None:
    response = http.post("/ads", content=b"z" * (LIMIT * 2),
                         headers=bearer(token("a@test.pool", "ADVERTISE_STARTD")))
    assert response.status_code == 413


def test_body_at_the_limit_passes(http: httpx.Client) -> None:
    response = http.post("/blob", content=iter([b"k" * LIMIT]))
    assert response.json() == {"bytes": LIMIT}


def test_healthz(http: httpx.Client) -> None:
    response = http.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["service"]) == ("ok", "tiny")
    assert body["uptime_seconds"] >= 0


def test_metrics_parse_and_count_the_requests(http: httpx.Client) -> None:
    for item in (1, 2, 3, 4):
        assert http.get(f"/items/{item}").status_code == 200
    http.get("/items/not-a-number")
    response = http.get("/metrics")
    assert response.status_code == 200
    counts = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "gwms_http_requests_total":
                labels = sample.labels
                counts[(labels["method"], labels["route"], labels["status"])] = sample.value
    assert counts[("GET", "/items/{item}", "200")] == 4
    assert counts[("GET", "/items/{item}", "422")] == 1


def test_error_shape_for_404_422_500(http: httpx.Client) -> None:
    response = http.get("/no/such/thing")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "no such path: GET /no/such/thing"}}

    response = http.post("/ads", json={"slots": "x"}, headers=bearer(token("a@test.pool", "ADVERTISE_STARTD")))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert sorted(d["loc"] for d in error["detail"]) == ["body.name", "body.slots"]

    response = http.get("/boom")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "do not show this" not in response.text


def test_client_retries_a_server_that_fails_twice(server: ServiceServer) -> None:
    with SyncServiceClient(server.url, service="tiny", backoff=0.01, retries=3) as client:
        assert client.get("/flaky/sync-get") == {"attempts": 3}


def test_async_client_retries_a_server_that_fails_twice(server: ServiceServer) -> None:
    async def go() -> Any:
        async with ServiceClient(server.url, service="tiny", backoff=0.01) as client:
            return await client.get("/flaky/async-get")

    assert asyncio.run(go()) == {"attempts": 3}


def test_client_does_not_retry_post_by_default(server: ServiceServer) -> None:
    with SyncServiceClient(server.url, service="tiny", backoff=0.01) as client:
        with pytest.raises(ServiceError) as info:
            client.post("/flaky/post-once", {})
        assert info.value.status == 503
        assert str(info.value) == f"tiny at {server.url}: 503 unavailable: try again (attempt 1)"
        # the server saw exactly one attempt: the next call is its second
        with pytest.raises(ServiceError, match=r"attempt 2\)$"):
            client.post("/flaky/post-once", {})
        assert client.post("/flaky/post-once", {}) == {"attempts": 3}


def test_client_carries_the_server_error(server: ServiceServer) -> None:
    with SyncServiceClient(server.url, service="tiny", token=token("b@test.pool", "READ")) as client:
        with pytest.raises(ServiceError) as info:
            client.post("/ads", {"name": "slot1"})
    assert str(info.value) == (
        f"tiny at {server.url}: 403 forbidden: token of b@test.pool lacks scope ADVERTISE_STARTD"
    )


def test_client_says_clearly_when_nothing_listens() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with SyncServiceClient(url, service="collector", retries=1, backoff=0.01) as client:
        with pytest.raises(ServiceError) as info:
            client.get("/healthz")
    assert str(info.value) == f"cannot reach collector at {url}: connection refused (after 2 attempts)"
