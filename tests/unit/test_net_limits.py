"""The body size limit: refuse by Content-Length at once, and stop reading a chunked body
as soon as it passes the limit (never holding more than the limit)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import Request

from gwms.net import create_app
from gwms.net.limits import BodySizeLimitMiddleware

LIMIT = 2500


def make_app() -> Any:
    app = create_app(service="limits", verifier=None, max_body_bytes=LIMIT)

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.post("/stream")
    async def stream(request: Request) -> dict[str, int]:
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
        return {"bytes": total}

    return app


def call(app: Any, path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[str, Any], int]:
    """Send chunks over ASGI; return (status, JSON body, how many chunks the app pulled)."""
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        index = pulled - 1
        if index < len(chunks):
            return {"type": "http.request", "body": chunks[index], "more_body": index < len(chunks) - 1}
        await asyncio.sleep(3600)  # a client that sends nothing more
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"test"), (b"content-type", b"application/octet-stream"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), pulled


def test_declared_length_over_the_limit_is_refused_before_reading() -> None:
    status, body, pulled = call(make_app(), "/upload", [b"x" * 3000], [(b"content-length", b"3000")])
    assert status == 413
    assert body["error"]["code"] == "body_too_large"
    assert pulled == 0


def test_chunked_body_stops_being_read_once_past_the_limit() -> None:
    chunks = [b"x" * 1000] * 100  # 100 kB offered, 2.5 kB allowed
    for path in ("/upload", "/stream"):
        status, body, pulled = call(make_app(), path, chunks, [(b"transfer-encoding", b"chunked")])
        assert status == 413, path
        assert body["error"]["code"] == "body_too_large"
        assert pulled == 3  # 3000 bytes: the first read past the limit, and no more


def test_bodies_up_to_the_limit_pass() -> None:
    chunks = [b"x" * 1000, b"x" * 1000, b"x" * 500]
    status, body, _ = call(make_app(), "/upload", chunks, [(b"transfer-encoding", b"chunked")])
    assert (status, body) == (200, {"bytes": LIMIT})
    status, body, _ = call(make_app(), "/stream", [b"y" * LIMIT], [(b"content-length", str(LIMIT).encode())])
    assert (status, body) == (200, {"bytes": LIMIT})


def test_no_limit_passes_everything() -> None:
    app = create_app(service="nolimit", verifier=None, max_body_bytes=None)

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    status, body, _ = call(app, "/upload", [b"z" * 10_000] * 5, [(b"transfer-encoding", b"chunked")])
    assert (status, body) == (200, {"bytes": 50_000})


def test_the_middleware_answers_413_itself_for_plain_asgi_apps() -> None:
    async def plain_app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    guarded = BodySizeLimitMiddleware(plain_app, max_body_bytes=10)
    status, body, pulled = call(guarded, "/", [b"a" * 6, b"a" * 6, b"a" * 6], [])
    assert status == 413 and pulled == 2
    assert body["error"]["message"] == "request body is larger than the limit of 10 bytes"
