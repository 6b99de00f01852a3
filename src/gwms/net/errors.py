"""The one JSON error shape every gwms service answers with, and the handlers that produce it.

Every error response has the body::

    {"error": {"code": "not_found", "message": "no such path: GET /nope", "detail": ...}}

``code`` is a short machine-readable word, ``message`` one line for a person, and
``detail`` (optional) holds structured extra information, e.g. the field paths of a
request that failed validation. :func:`install_error_handlers` makes a FastAPI app
answer this way for HTTP exceptions, validation errors and :class:`~gwms.errors.GwmsError`;
:class:`CatchAllMiddleware` turns unexpected exceptions into a logged 500.
"""

from __future__ import annotations

import http
import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gwms.errors import GwmsError

logger = logging.getLogger("gwms.net")

_MISSING: Any = object()

# Codes for the statuses gwms answers with; others are derived from the status phrase.
_STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
    504: "gateway_timeout",
}


def status_code_name(status: int) -> str:
    """The machine code for an HTTP status: ``404`` -> ``not_found``."""
    if status in _STATUS_CODES:
        return _STATUS_CODES[status]
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        return f"http_{status}"
    return re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")


def error_code_for(exc: GwmsError) -> str:
    """The machine code for a :class:`GwmsError`: its ``error_code`` attribute if it has
    one, else its class name in snake case (``ConfigError`` -> ``config_error``)."""
    code = getattr(exc, "error_code", None)
    if isinstance(code, str) and code:
        return code
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def error_body(code: str, message: str, detail: Any = _MISSING) -> dict[str, Any]:
    """The JSON body of an error: ``{"error": {"code", "message", "detail"?}}``."""
    inner: dict[str, Any] = {"code": code, "message": message}
    if detail is not _MISSING and detail is not None:
        inner["detail"] = detail
    return {"error": inner}


def error_response(
    status: int,
    code: str,
    message: str,
    detail: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A JSON response in the error shape."""
    return JSONResponse(
        error_body(code, message, detail), status_code=status, headers=dict(headers or {})
    )


class ApiError(StarletteHTTPException):
    """An HTTP error with a chosen machine code, for handlers to raise.

    ``raise ApiError(404, "no_such_ad", "no ad named slot1@host")``
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status, detail=message, headers=dict(headers or {}) or None)
        self.code = code
        self.message = message
        self.extra_detail = detail


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def format_location(loc: Sequence[Any]) -> str:
    """A validation error's location as a path: ``("body", "items", 0, "name")`` ->
    ``body.items[0].name``."""
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


async def _http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    headers = getattr(exc, "headers", None)
    if isinstance(exc, ApiError):
        return error_response(status, exc.code, exc.message, exc.extra_detail, headers)
    detail = exc.detail
    code = status_code_name(status)
    extra: Any = None
    if isinstance(detail, Mapping) and "message" in detail:
        code = str(detail.get("code") or code)
        message = _one_line(detail["message"])
        extra = detail.get("detail")
    elif isinstance(detail, str) and detail and detail != _phrase(status):
        message = _one_line(detail)
    elif status == 404:
        message = f"no such path: {request.method} {request.url.path}"
    elif status == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = _phrase(status).lower() or code
        if detail is not None and not isinstance(detail, str):
            extra = detail
    return error_response(status, code, message, extra, headers)


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        problems.append(
            {
                "loc": format_location(error.get("loc", ())),
                "message": str(error.get("msg", "invalid")),
                "type": str(error.get("type", "")),
            }
        )
    if problems:
        first = problems[0]
        message = f"invalid request: {first['loc']}: {first['message']}"
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more)"
    else:
        message = "invalid request"
    return error_response(422, "invalid_request", _one_line(message), problems)


async def _gwms_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GwmsError)
    status = getattr(exc, "http_status", 400)
    if not isinstance(status, int) or not 400 <= status <= 599:
        status = 400
    return error_response(status, error_code_for(exc), _one_line(str(exc)))


def install_error_handlers(app: FastAPI) -> None:
    """Make ``app`` answer HTTP errors, validation errors and GwmsErrors in the error shape."""
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(GwmsError, _gwms_error_handler)


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Send an error response straight over ASGI (for middleware below the app)."""
    response = error_response(status, code, message, headers=headers)
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": response.raw_headers,
        }
    )
    await send({"type": "http.response.body", "body": response.body})


class CatchAllMiddleware:
    """ASGI middleware: an exception nothing else handled becomes a 500 in the error shape.

    The traceback goes to the log with a short error id; the response says only that
    id, never the traceback.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            error_id = secrets.token_hex(4)
            logger.exception(
                "unhandled error %s in %s %s", error_id, scope.get("method"), scope.get("path")
            )
            if started:
                raise
            await send_error(
                send, 500, "internal_error", f"internal error; the service log has error {error_id}"
            )
