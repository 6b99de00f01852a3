"""create_app and require_scopes, in process: health, metrics, and who may call what."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from gwms.net import AuthenticatedIdentity, Identity, create_app, require_scopes
from gwms.security import scopes
from gwms.security.tokens import TokenVerifier, generate_signing_key, issue_token

ISSUER = "test.pool"
KEY = generate_signing_key("POOL")
OTHER_KEY = generate_signing_key("POOL")
VERIFIER = TokenVerifier({"POOL": KEY}, ISSUER)


def token(subject: str = "alice@test.pool", *granted: str, key: Any = KEY, **kw: Any) -> str:
    return issue_token(key, issuer=ISSUER, subject=subject, scopes=granted, **kw)


class InProcessClient:
    """Requests straight into an ASGI app, without a server or a socket."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, url: str, *, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                return await http.request(method, url, headers=headers, **kw)

        return asyncio.run(go())


class Ad(BaseModel):
    name: str
    owner: str | None = None


def make_app(**options: Any) -> FastAPI:
    app = create_app(service="collector", verifier=VERIFIER, version="1.2.3", **options)

    @app.post("/ads")
    async def advertise(
        ad: Ad, who: Identity = Depends(require_scopes(scopes.ADVERTISE_STARTD))
    ) -> dict[str, Any]:
        return {"ad": ad.name, "who": who.name, "scopes": sorted(who.scopes), "jti": who.token_id}

    @app.get("/whoami")
    async def whoami(who: AuthenticatedIdentity) -> dict[str, str]:
        return {"who": who.name}

    @app.get("/ads/{name}")
    async def get_ad(name: str) -> dict[str, str]:
        return {"name": name}

    return app


@pytest.fixture(scope="module")
def client() -> InProcessClient:
    return InProcessClient(make_app())


def test_healthz_needs_no_token(client: InProcessClient) -> None:
    body = client.request("GET", "/healthz").json()
    assert body["status"] == "ok"
    assert body["service"] == "collector"
    assert body["version"] == "1.2.3"
    assert body["uptime_seconds"] >= 0


def test_the_verifier_is_on_app_state() -> None:
    assert make_app().state.verifier is VERIFIER


def test_no_token_is_401_with_a_bearer_challenge(client: InProcessClient) -> None:
    response = client.request("POST", "/ads", json={"name": "slot1"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert response.json()["error"]["code"] == "unauthorized"
    assert "missing bearer token" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Basic dXNlcjpwdw==", "missing bearer token"),
        ("Bearer", "missing bearer token"),
        ("Bearer not-a-jwt", "malformed token"),
        (f"Bearer {token('alice@test.pool', 'ADVERTISE_STARTD', key=OTHER_KEY)}", "signature"),
        (f"Bearer {token('alice@test.pool', 'ADVERTISE_STARTD', lifetime=1, now=1000)}", "expired"),
    ],
)
def test_invalid_token_is_401(client: InProcessClient, header: str, message: str) -> None:
    response = client.request("POST", "/ads", json={"name": "x"}, headers={"Authorization": header})
    assert response.status_code == 401
    assert "Bearer" in response.headers["www-authenticate"]
    assert message in response.json()["error"]["message"]


def test_valid_token_without_the_scope_is_403(client: InProcessClient) -> None:
    response = client.request("POST", "/ads", json={"name": "x"}, token=token("bob@test.pool", "READ"))
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "forbidden",
        "message": "token of bob@test.pool lacks scope ADVERTISE_STARTD",
    }
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_identity_comes_from_the_token_not_the_body(client: InProcessClient) -> None:
    response = client.request(
        "POST",
        "/ads",
        json={"name": "slot1", "owner": "mallory@test.pool", "who": "mallory@test.pool"},
        token=token("alice@test.pool", "ADVERTISE_STARTD", "READ"),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["who"] == "alice@test.pool"
    assert body["scopes"] == ["ADVERTISE_STARTD", "READ"]
    assert len(body["jti"]) == 32


def test_administrator_may_do_everything(client: InProcessClient) -> None:
    response = client.request(
        "POST", "/ads", json={"name": "x"}, token=token("root@test.pool", "ADMINISTRATOR")
    )
    assert response.status_code == 200


def test_authenticated_identity_admits_any_valid_token(client: InProcessClient) -> None:
    assert client.request("GET", "/whoami").status_code == 401
    response = client.request("GET", "/whoami", token=token("carol@test.pool"))
    assert response.json() == {"who": "carol@test.pool"}


def test_an_app_without_verifier_refuses_protected_routes_clearly() -> None:
    app = create_app(service="x", verifier=None)

    @app.get("/secret")
    async def secret(who: AuthenticatedIdentity) -> str:
        return who.name

    response = InProcessClient(app).request("GET", "/secret", token=token())
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "auth_not_configured"


def test_invalid_scope_names_are_refused_when_declaring() -> None:
    with pytest.raises(Exception, match="invalid scope"):
        require_scopes("has space")


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_metrics_count_requests_by_route_template_and_status() -> None:
    client = InProcessClient(make_app())
    for name in ("a", "b", "c"):
        assert client.request("GET", f"/ads/{name}").status_code == 200
    client.request("GET", "/nope")
    client.request("POST", "/ads", json={"name": "x"})
    response = client.request("GET", "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    counts = samples(response.text, "gwms_http_requests_total")
    assert counts[(("method", "GET"), ("route", "/ads/{name}"), ("status", "200"))] == 3
    assert counts[(("method", "GET"), ("route", "<unmatched>"), ("status", "404"))] == 1
    assert counts[(("method", "POST"), ("route", "/ads"), ("status", "401"))] == 1
    durations = samples(response.text, "gwms_http_request_duration_seconds_count")
    assert durations[(("method", "GET"), ("route", "/ads/{name}"), ("status", "200"))] == 3
    info = samples(response.text, "gwms_service_info")
    assert info == {(("service", "collector"), ("version", "1.2.3")): 1.0}


def test_each_app_counts_in_its_own_registry() -> None:
    first, second = InProcessClient(make_app()), InProcessClient(make_app())
    first.request("GET", "/ads/x")
    text = second.request("GET", "/metrics").text
    assert not any(labels for labels in samples(text, "gwms_http_requests_total")
                   if ("route", "/ads/{name}") in labels)


def test_a_given_registry_is_used() -> None:
    registry = CollectorRegistry()
    client = InProcessClient(make_app(registry=registry))
    client.request("GET", "/ads/x")
    value = registry.get_sample_value(
        "gwms_http_requests_total", {"method": "GET", "route": "/ads/{name}", "status": "200"}
    )
    assert value == 1.0


def test_metrics_can_require_a_scope() -> None:
    client = InProcessClient(make_app(metrics_scopes=[scopes.READ]))
    assert client.request("GET", "/metrics").status_code == 401
    assert client.request("GET", "/metrics", token=token("a@test.pool", "READ")).status_code == 200
    assert client.request("GET", "/healthz").status_code == 200
