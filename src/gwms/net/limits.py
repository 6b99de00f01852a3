"""A request body size limit enforced as ASGI middleware.

A request whose ``Content-Length`` exceeds the limit is refused with 413 before the
application sees it. A body without a length (chunked transfer) is counted as it is
received; the moment it passes the limit the read fails with 413, so the service
never buffers more than the limit.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gwms.net.errors import ApiError, send_error

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


class BodyTooLarge(ApiError):
    """Raised from ``receive`` when a request body passes the size limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            "body_too_large",
            f"request body is larger than the limit of {limit} bytes",
            headers={"Connection": "close"},
        )
        self.limit = limit


class BodySizeLimitMiddleware:
    """Refuse request bodies larger than ``max_body_bytes`` with 413 (None: no limit)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int | None = DEFAULT_MAX_BODY_BYTES) -> None:
        if max_body_bytes is not None and max_body_bytes < 0:
            raise ValueError("max_body_bytes must not be negative")
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_body_bytes
        if scope["type"] != "http" or limit is None:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            error = BodyTooLarge(limit)
            await send_error(send, 413, error.code, error.message, headers=error.headers)
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as error:
            if started:
                raise
            await send_error(send, 413, error.code, error.message, headers=error.headers)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
