"""Running a service app with uvicorn on a socket gwms binds itself.

Binding first means port 0 picks a free port and :attr:`ServiceServer.url` is known
before the server serves, which tests and the embedded deployment rely on::

    with ServiceServer(app) as server:      # starts in a background thread
        client = SyncServiceClient(server.url)

``gwms <service> run`` uses :meth:`ServiceServer.serve_forever`, which prints exactly
one line ``gwms <service> listening on <url>`` and stops cleanly on SIGINT or SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

import uvicorn

from gwms.errors import GwmsError

logger = logging.getLogger("gwms.net")

DEFAULT_HOST = "127.0.0.1"


class ServerError(GwmsError):
    """A service could not bind its address or start."""


class ServiceServer:
    """One ASGI app served by uvicorn on ``host:port`` (port 0: a free port).

    Args:
        app: the ASGI app (normally from :func:`gwms.net.app.create_app`).
        host: the address to listen on; services default to loopback.
        port: the port; 0 picks a free one.
        ssl_certfile, ssl_keyfile: serve HTTPS with this certificate and key.
        ssl_ca: CA bundle used to verify client certificates when a client sends one.
        service: the name in the announce line (default ``app.state.service``).
        access_log: log every request (off by default; ``/metrics`` counts them).
        graceful_shutdown_seconds: how long :meth:`stop` waits for open requests.
    """

    def __init__(
        self,
        app: Any,
        host: str = DEFAULT_HOST,
        port: int = 0,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        ssl_ca: str | None = None,
        *,
        service: str | None = None,
        access_log: bool = False,
        graceful_shutdown_seconds: float = 5.0,
    ) -> None:
        if (ssl_certfile is None) != (ssl_keyfile is None):
            raise ServerError("HTTPS needs both a certificate file and a key file")
        self.app = app
        self.host = host
        self.service = service or getattr(getattr(app, "state", None), "service", None) or "service"
        self._requested_port = port
        self._ssl_certfile = ssl_certfile
        self._ssl_keyfile = ssl_keyfile
        self._ssl_ca = ssl_ca
        self._access_log = access_log
        self._graceful = graceful_shutdown_seconds
        self._socket: socket.socket | None = None
        self._bound_port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    # ------------------------------------------------------------------ address

    def bind(self) -> socket.socket:
        """Bind and listen on the address now (done by :attr:`url` and :meth:`start`)."""
        if self._stopped:
            raise ServerError(f"gwms {self.service}: this server was stopped; make a new one")
        if self._socket is not None:
            return self._socket
        try:
            infos = socket.getaddrinfo(
                self.host, self._requested_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        except socket.gaierror as exc:
            raise ServerError(f"gwms {self.service}: cannot resolve {self.host!r}: {exc}") from None
        family, socktype, proto, _, address = infos[0]
        sock = socket.socket(family, socktype, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(2048)
        except OSError as exc:
            sock.close()
            raise ServerError(
                f"gwms {self.service}: cannot listen on {self.host}:{self._requested_port}: "
                f"{exc.strerror or exc}"
            ) from None
        sock.setblocking(False)
        self._socket = sock
        self._bound_port = int(sock.getsockname()[1])
        return sock

    @property
    def port(self) -> int:
        """The port actually bound (binds the socket if not yet done)."""
        if self._bound_port is None:
            self.bind()
        assert self._bound_port is not None
        return self._bound_port

    @property
    def scheme(self) -> str:
        """``https`` with a certificate, else ``http``."""
        return "https" if self._ssl_certfile else "http"

    @property
    def url(self) -> str:
        """The base URL clients use, e.g. ``http://127.0.0.1:40123``."""
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}"

    # ------------------------------------------------------------------ running

    def _make_server(self) -> uvicorn.Server:
        options: dict[str, Any] = {
            "log_config": None,
            "access_log": self._access_log,
            "lifespan": "on",
            "timeout_graceful_shutdown": self._graceful,
            "server_header": False,
        }
        if self._ssl_certfile:
            options["ssl_certfile"] = self._ssl_certfile
            options["ssl_keyfile"] = self._ssl_keyfile
            if self._ssl_ca:
                options["ssl_ca_certs"] = self._ssl_ca
                options["ssl_cert_reqs"] = ssl.CERT_OPTIONAL
        config = uvicorn.Config(self.app, **options)
        return uvicorn.Server(config)

    def start(self, timeout: float = 30.0) -> ServiceServer:
        """Serve in a background thread; return once the server accepts requests."""
        if self._thread is not None:
            raise ServerError(f"gwms {self.service}: already started")
        sock = self.bind()
        server = self._make_server()
        self._server = server
        failure: list[BaseException] = []

        def run() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                failure.append(exc)

        thread = threading.Thread(target=run, name=f"gwms-{self.service}-server", daemon=True)
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive():
                self._close_socket()
                self._stopped = True
                reason = f": {failure[0]!r}" if failure and not isinstance(failure[0], SystemExit) else ""
                raise ServerError(f"gwms {self.service} failed to start{reason} (see the log)")
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(f"gwms {self.service} did not start within {timeout:g}s")
            time.sleep(0.005)
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop serving: finish open requests (up to the grace time), run shutdown, join."""
        self._stopped = True
        server, thread = self._server, self._thread
        if server is not None and thread is not None and thread.is_alive():
            server.should_exit = True
            thread.join(timeout if timeout is not None else self._graceful + 5.0)
            if thread.is_alive():
                server.force_exit = True
                thread.join(5.0)
        self._close_socket()

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    @property
    def running(self) -> bool:
        """True while the background server thread serves."""
        return self._thread is not None and self._thread.is_alive() and not self._stopped

    def __enter__(self) -> ServiceServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def serve_forever(self, announce: Callable[[str], object] = print) -> None:
        """Serve until SIGINT or SIGTERM, for ``gwms <service> run``.

        Announces exactly one line, ``gwms <service> listening on <url>``, once the
        server accepts requests, then returns after a clean shutdown.
        """
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if stop.is_set() and self._server is not None:
                self._server.force_exit = True  # a second signal: stop waiting
            stop.set()

        previous = {
            sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self.start()
            announce(f"gwms {self.service} listening on {self.url}")
            if announce is print:
                sys.stdout.flush()
            while not stop.wait(0.5):
                if not self.running:
                    raise ServerError(f"gwms {self.service} stopped unexpectedly (see the log)")
            logger.info("gwms %s: shutting down", self.service)
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve(
    app: Any,
    *,
    host: str = DEFAULT_HOST,
    port: int = 0,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    ssl_ca: str | None = None,
    announce: Callable[[str], object] = print,
) -> None:
    """Serve ``app`` in the foreground until SIGINT/SIGTERM (``gwms <service> run``)."""
    ServiceServer(
        app,
        host=host,
        port=port,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        ssl_ca=ssl_ca,
    ).serve_forever(announce)
