"""Every error a service answers with has the one shape {"error": {code, message, detail?}}."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from gwms.errors import GwmsError
from gwms.net import ApiError, create_app, error_body
from gwms.net.errors import error_code_for, format_location, status_code_name


class Job(BaseModel):
    owner: str
    cpus: int


class QuotaExceeded(GwmsError):
    http_status = 409


class Throttled(GwmsError):
    http_status = 429
    error_code = "slow_down"


def make_app() -> FastAPI:
    app = create_app(service="test", verifier=None)

    @app.post("/jobs")
    async def submit(job: Job) -> dict[str, str]:
        return {"owner": job.owner}

    @app.get("/http/{status}")
    async def http_error(status: int) -> None:
        raise HTTPException(status_code=status, detail="the reason\nwith a second line")

    @app.get("/coded")
    async def coded() -> None:
        raise HTTPException(404, detail={"code": "no_such_ad", "message": "no ad x", "detail": {"x": 1}})

    @app.get("/api-error")
    async def api_error() -> None:
        raise ApiError(409, "already_exists", "job 1.0 exists", detail={"id": "1.0"})

    @app.get("/gwms")
    async def gwms_error() -> None:
        raise GwmsError("the pool has no such user", hint="check the token")

    @app.get("/quota")
    async def quota() -> None:
        raise QuotaExceeded("too many jobs")

    @app.get("/throttled")
    async def throttled() -> None:
        raise Throttled("try later")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals /etc/passwd")

    @app.get("/sync-boom")
    def sync_boom() -> None:
        raise KeyError("internal")

    return app


class InProcessClient:
    """Requests straight into an ASGI app, without a server or a socket."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                return await http.request(method, url, **kwargs)

        return asyncio.run(go())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)


@pytest.fixture(scope="module")
def client() -> InProcessClient:
    return InProcessClient(make_app())


def test_unknown_path_is_404_in_the_shape(client: InProcessClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "no such path: GET /nope"}}


def test_wrong_method_is_405_with_allow_header(client: InProcessClient) -> None:
    response = client.delete("/jobs")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.headers["allow"] == "POST"


def test_validation_error_is_422_with_field_paths(client: InProcessClient) -> None:
    response = client.post("/jobs", json={"owner": "alice", "cpus": "many"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith("invalid request: body.cpus: ")
    assert [d["loc"] for d in error["detail"]] == ["body.cpus"]
    assert error["detail"][0]["type"] == "int_parsing"


def test_validation_error_counts_the_other_problems(client: InProcessClient) -> None:
    error = client.post("/jobs", json={}).json()["error"]
    assert sorted(d["loc"] for d in error["detail"]) == ["body.cpus", "body.owner"]
    assert error["message"].endswith("(and 1 more)")


def test_malformed_json_is_422(client: InProcessClient) -> None:
    response = client.post("/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(("status", "code"), [(400, "bad_request"), (409, "conflict"), (418, "i_m_a_teapot")])
def test_http_exception_message_is_one_line(client: InProcessClient, status: int, code: str) -> None:
    response = client.get(f"/http/{status}")
    assert response.status_code == status
    assert response.json() == {"error": {"code": code, "message": "the reason with a second line"}}


def test_http_exception_with_a_coded_detail(client: InProcessClient) -> None:
    response = client.get("/coded")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "no_such_ad", "message": "no ad x", "detail": {"x": 1}}}


def test_api_error(client: InProcessClient) -> None:
    response = client.get("/api-error")
    assert response.status_code == 409
    assert response.json() == {
        "error": {"code": "already_exists", "message": "job 1.0 exists", "detail": {"id": "1.0"}}
    }


def test_gwms_error_is_400_with_its_message_and_hint(client: InProcessClient) -> None:
    response = client.get("/gwms")
    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "gwms_error", "message": "the pool has no such user (check the token)"}
    }


def test_gwms_error_subclasses_choose_status_and_code(client: InProcessClient) -> None:
    response = client.get("/quota")
    assert (response.status_code, response.json()["error"]["code"]) == (409, "quota_exceeded")
    response = client.get("/throttled")
    assert (response.status_code, response.json()["error"]["code"]) == (429, "slow_down")


@pytest.mark.parametrize("path", ["/boom", "/sync-boom"])
def test_unexpected_exception_is_a_logged_500_without_traceback(
    client: InProcessClient, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="gwms.net"):
        response = client.get(path)
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    assert "secret" not in response.text and "Traceback" not in response.text
    assert "internal" not in error["message"].replace("internal error", "")
    error_id = error["message"].rsplit(" ", 1)[1]
    records = [r for r in caplog.records if error_id in r.getMessage()]
    assert records and records[0].exc_info is not None  # the traceback is in the log


def test_helpers() -> None:
    assert error_body("x", "y") == {"error": {"code": "x", "message": "y"}}
    assert error_body("x", "y", [1]) == {"error": {"code": "x", "message": "y", "detail": [1]}}
    assert status_code_name(404) == "not_found"
    assert status_code_name(507) == "insufficient_storage"
    assert status_code_name(599) == "http_599"
    assert error_code_for(QuotaExceeded("x")) == "quota_exceeded"
    assert format_location(("body", "items", 0, "name")) == "body.items[0].name"
