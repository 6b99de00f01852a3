"""A small HTTP + JSON client for the agent: keep-alive, bearer token, bounded retries.

Built on :mod:`http.client` (standard library only). Each thread gets its own
keep-alive connection per client, so a long poll in one thread never blocks another's
calls. A request that fails on the connection level is retried: once at once on a fresh
connection (the server may have closed an idle keep-alive connection), then with a
growing pause, ``attempts`` times in all. HTTP errors are not retried; they raise
:class:`HttpError` carrying the service's ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from gwms.glidein.errors import StartdConfigError

USER_AGENT = "gwms-startd/1"


class HttpError(Exception):
    """The service answered with an error status."""

    def __init__(self, status: int, code: str, message: str, url: str) -> None:
        super().__init__(f"{url}: HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.url = url


class TransportError(Exception):
    """The service could not be reached (after the retries)."""


@dataclass(frozen=True)
class Response:
    """An HTTP answer: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON (None when empty)."""
        return json.loads(self.body) if self.body else None


class TokenFile:
    """A bearer token read from a file, read again when the file changes (renewal)."""

    def __init__(self, path: Path, *, check_every: float = 10.0) -> None:
        self.path = path
        self.check_every = check_every
        self._lock = threading.Lock()
        self._token = ""
        self._mtime: float | None = None
        self._checked = 0.0
        self.get()

    def get(self) -> str:
        """The current token; raises :class:`StartdConfigError` when it cannot be read."""
        now = time.monotonic()
        if self._token and now - self._checked < self.check_every:
            return self._token
        with self._lock:
            self._checked = now
            try:
                mtime = os.stat(self.path).st_mtime
                if mtime != self._mtime or not self._token:
                    token = self.path.read_text().strip()
                    if not token:
                        raise StartdConfigError(f"token file {self.path} is empty")
                    self._token, self._mtime = token, mtime
            except OSError as exc:
                if not self._token:
                    raise StartdConfigError(f"cannot read token file {self.path}: {exc.strerror}") from None
            return self._token


class StaticToken:
    """A fixed bearer token (tests and embedding)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get(self) -> str:
        """The token."""
        return self.token


_RETRYABLE = (
    ConnectionError,
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    http.client.IncompleteRead,
    BrokenPipeError,
    socket.timeout,
    OSError,
)


class HttpClient:
    """A client of one service base URL (``http://host:port`` or ``https://...``)."""

    def __init__(
        self,
        base_url: str,
        token: Any = None,
        *,
        timeout: float = 30.0,
        ca_file: str | None = None,
        attempts: int = 4,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StartdConfigError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.attempts = max(attempts, 1)
        self._ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._ssl = ssl.create_default_context(cafile=ca_file)
        self._local = threading.local()
        self._all: set[http.client.HTTPConnection] = set()
        self._all_lock = threading.Lock()
        self._closed = False

    # -- connections ------------------------------------------------------------------
    def _new_conn(self, timeout: float) -> http.client.HTTPConnection:
        if self._ssl is not None:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=self._ssl
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        with self._all_lock:
            self._all.add(conn)
        return conn

    def _conn(self, timeout: float) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._new_conn(timeout)
            self._local.conn = conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def _drop_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            with self._all_lock:
                self._all.discard(conn)
            conn.close()

    def abort(self) -> None:
        """Close every connection of this client now, in all threads (ends long polls)."""
        self._closed = True
        with self._all_lock:
            conns = list(self._all)
            self._all.clear()
        for conn in conns:
            sock = conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            conn.close()

    def close(self) -> None:
        """Close this thread's connection."""
        self._drop_conn()

    # -- requests ---------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | None = None,
        file: IO[bytes] | None = None,
        content_type: str | None = None,
        timeout: float | None = None,
        attempts: int | None = None,
        ok: tuple[int, ...] = (),
        sink: IO[bytes] | None = None,
    ) -> Response:
        """Send one request; :class:`HttpError` for a status >= 400 not in ``ok``.

        ``file`` streams a request body from a seekable file; ``sink`` receives a
        successful answer's body instead of :attr:`Response.body` (which is then empty).
        """
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token.get()}"
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":")).encode()
            content_type = content_type or "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        if file is not None:
            file.seek(0, os.SEEK_END)
            headers["Content-Length"] = str(file.tell())
        elif body is not None or method in ("POST", "PUT"):
            headers["Content-Length"] = str(len(body or b""))
        url_path = self.prefix + path
        t = self.timeout if timeout is None else timeout
        tries = self.attempts if attempts is None else max(attempts, 1)
        last: BaseException | None = None
        for attempt in range(tries):
            if self._closed:
                raise TransportError(f"{self.base_url}: client closed")
            if attempt >= 2:
                time.sleep(min(0.25 * 2 ** (attempt - 2), 5.0) * (0.5 + random.random()))
            conn = self._conn(t)
            try:
                if file is not None:
                    file.seek(0)
                conn.request(method, url_path, body=file if file is not None else body, headers=headers)
                resp = conn.getresponse()
                if sink is not None and resp.status < 400:
                    sink.seek(0)
                    sink.truncate()
                    while True:
                        chunk = resp.read(1 << 16)
                        if not chunk:
                            break
                        sink.write(chunk)
                    data = b""
                else:
                    data = resp.read()
                hdrs = {k.lower(): v for k, v in resp.getheaders()}
                if resp.will_close:
                    self._drop_conn()
            except _RETRYABLE as exc:
                self._drop_conn()
                last = exc
                continue
            if resp.status >= 400 and resp.status not in ok:
                raise _http_error(resp.status, data, self.base_url + path)
            return Response(resp.status, hdrs, data)
        raise TransportError(f"{self.base_url}{path}: {type(last).__name__}: {last}")

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        """A JSON request and its decoded JSON answer."""
        return self.request(method, path, json_body=body, **kw).json()


def _http_error(status: int, data: bytes, url: str) -> HttpError:
    code, message = "http_error", data[:300].decode("utf-8", "replace").strip() or http.client.responses.get(status, "")
    try:
        payload = json.loads(data)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        err = payload.get("error")
        if isinstance(err, dict):
            code = str(err.get("code") or code)
            message = str(err.get("message") or message)
        elif "detail" in payload:
            message = str(payload["detail"])
    return HttpError(status, code, message, url)
