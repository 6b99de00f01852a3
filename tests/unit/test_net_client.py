"""ServiceClient and SyncServiceClient against scripted answers (httpx mock transports)."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import httpx
import pytest

from gwms.errors import GwmsError
from gwms.net import ServiceClient, ServiceError, SyncServiceClient

BASE = "http://127.0.0.1:9618"


class Script:
    """Answers requests from a list of responses/exceptions, recording each request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}})


def sync_client(script: Script, **kw: Any) -> SyncServiceClient:
    kw.setdefault("service", "collector")
    kw.setdefault("backoff", 0.0)
    return SyncServiceClient(BASE, transport=httpx.MockTransport(script), rng=random.Random(1), **kw)


def run_async(script: Script, method: str, path: str, *args: Any, **kw: Any) -> Any:
    client_kw = {k: kw.pop(k) for k in list(kw) if k in ("token", "retries", "retry_unsafe", "timeout")}

    async def go() -> Any:
        async with ServiceClient(
            BASE,
            service="collector",
            backoff=0.0,
            transport=httpx.MockTransport(script),
            rng=random.Random(1),
            **client_kw,
        ) as client:
            return await getattr(client, method)(path, *args, **kw)

    return asyncio.run(go())


def test_get_returns_parsed_json_and_sends_the_token() -> None:
    script = Script(httpx.Response(200, json={"ads": [1, 2]}))
    with sync_client(script, token="tok123") as client:
        assert client.get("/ads", params={"type": "Machine"}) == {"ads": [1, 2]}
    (request,) = script.requests
    assert request.url == "http://127.0.0.1:9618/ads?type=Machine"
    assert request.headers["authorization"] == "Bearer tok123"
    assert request.headers["user-agent"].startswith("gwms/")


def test_a_token_function_is_called_per_request() -> None:
    tokens = iter(["t1", "t2"])
    script = Script(httpx.Response(200, json={}))
    with sync_client(script, token=lambda: next(tokens)) as client:
        client.get("/a")
        client.get("/b")
    assert [r.headers["authorization"] for r in script.requests] == ["Bearer t1", "Bearer t2"]


def test_post_put_delete_send_json() -> None:
    script = Script(httpx.Response(200, json={"ok": True}))
    with sync_client(script) as client:
        client.post("/ads", {"name": "slot1"})
        client.put("/ads/slot1", {"name": "slot1"})
        client.delete("/ads/slot1")
    assert [r.method for r in script.requests] == ["POST", "PUT", "DELETE"]
    assert json.loads(script.requests[0].content) == {"name": "slot1"}


def test_empty_answer_is_none() -> None:
    with sync_client(Script(httpx.Response(204))) as client:
        assert client.delete("/ads/x") is None


def test_server_error_is_a_service_error_with_code_and_message() -> None:
    script = Script(error(403, "forbidden", "token lacks scope ADVERTISE_STARTD"))
    with sync_client(script) as client, pytest.raises(ServiceError) as info:
        client.post("/ads", {"name": "x"})
    err = info.value
    assert isinstance(err, GwmsError)
    assert str(err) == f"collector at {BASE}: 403 forbidden: token lacks scope ADVERTISE_STARTD"
    assert (err.status, err.code, err.server_message) == (403, "forbidden", "token lacks scope ADVERTISE_STARTD")
    assert (err.method, err.path, err.attempts) == ("POST", "/ads", 1)


def test_a_non_gwms_error_answer_is_still_readable() -> None:
    script = Script(httpx.Response(404, text="<html>\n<b>gone</b></html>"))
    with sync_client(script) as client, pytest.raises(ServiceError) as info:
        client.get("/x")
    assert str(info.value) == f"collector at {BASE}: 404 not_found: <html> <b>gone</b></html>"


def test_success_that_is_not_json_is_a_bad_response() -> None:
    with sync_client(Script(httpx.Response(200, text="hello"))) as client, pytest.raises(ServiceError) as info:
        client.get("/x")
    assert info.value.code == "bad_response"


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gets_are_retried_on_gateway_answers_then_succeed(status: int) -> None:
    script = Script(error(status, "unavailable", "busy"), error(status, "unavailable", "busy"),
                    httpx.Response(200, json={"n": 1}))
    with sync_client(script, retries=3) as client:
        assert client.get("/ads") == {"n": 1}
    assert len(script.requests) == 3


def test_retries_are_bounded() -> None:
    script = Script(error(503, "unavailable", "still busy"))
    with sync_client(script, retries=2) as client, pytest.raises(ServiceError) as info:
        client.get("/ads")
    assert len(script.requests) == 3
    assert info.value.attempts == 3
    assert str(info.value).endswith("503 unavailable: still busy (after 3 attempts)")


def test_other_errors_are_not_retried() -> None:
    script = Script(error(500, "internal_error", "oops"), httpx.Response(200, json={}))
    with sync_client(script) as client, pytest.raises(ServiceError):
        client.get("/ads")
    assert len(script.requests) == 1


def test_post_is_not_retried_by_default() -> None:
    script = Script(error(503, "unavailable", "busy"), httpx.Response(200, json={}))
    with sync_client(script) as client, pytest.raises(ServiceError):
        client.post("/ads", {})
    assert len(script.requests) == 1


def test_post_is_retried_when_asked() -> None:
    script = Script(error(503, "unavailable", "busy"), httpx.Response(200, json={"ok": 1}))
    with sync_client(script) as client:
        assert client.post("/ads", {}, retry_unsafe=True) == {"ok": 1}
    assert len(script.requests) == 2
    script = Script(error(503, "unavailable", "busy"), httpx.Response(200, json={"ok": 1}))
    with sync_client(script, retry_unsafe=True) as client:
        assert client.post("/ads", {}) == {"ok": 1}


def test_connection_refused_is_retried_then_clear() -> None:
    script = Script(httpx.ConnectError("[Errno 111] Connection refused"))
    with sync_client(script, retries=2) as client, pytest.raises(ServiceError) as info:
        client.get("/ads")
    assert len(script.requests) == 3
    assert str(info.value) == f"cannot reach collector at {BASE}: connection refused (after 3 attempts)"
    assert info.value.code == "unreachable" and info.value.status is None


def test_timeouts_are_retried() -> None:
    script = Script(httpx.ReadTimeout("slow"), httpx.Response(200, json=[1]))
    with sync_client(script) as client:
        assert client.get("/ads") == [1]
    script = Script(httpx.ReadTimeout("slow"))
    with sync_client(script, retries=0, timeout=2.5) as client, pytest.raises(ServiceError) as info:
        client.get("/ads")
    assert str(info.value) == f"collector at {BASE} did not answer GET /ads within 2.5s"


def test_async_client_behaves_the_same() -> None:
    script = Script(error(503, "unavailable", "busy"), httpx.Response(200, json={"ok": True}))
    assert run_async(script, "get", "/ads", token="t") == {"ok": True}
    assert len(script.requests) == 2
    assert script.requests[0].headers["authorization"] == "Bearer t"

    script = Script(error(503, "unavailable", "busy"))
    with pytest.raises(ServiceError):
        run_async(script, "post", "/ads", {"a": 1})
    assert len(script.requests) == 1

    script = Script(error(403, "forbidden", "no"))
    with pytest.raises(ServiceError, match=r"^collector at .*: 403 forbidden: no$"):
        run_async(script, "put", "/ads/x", {"a": 1})

    script = Script(httpx.ConnectError("Connection refused"))
    with pytest.raises(ServiceError, match="cannot reach collector"):
        run_async(script, "delete", "/ads/x", retries=1)
    assert len(script.requests) == 2


def test_service_error_answers_502_when_raised_in_a_service() -> None:
    assert ServiceError.http_status == 502
