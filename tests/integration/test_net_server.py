"""ServiceServer: binding first, starting and stopping, HTTPS, and `serve_forever` in a
real process that announces one line and exits cleanly on SIGTERM or SIGINT."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from gwms.net import ServerError, ServiceError, ServiceServer, SyncServiceClient, create_app
from gwms.security.ca import create_ca, issue_service_cert

pytestmark = pytest.mark.integration

SCRIPT = textwrap.dedent(
    """
    import sys
    from contextlib import asynccontextmanager
    from gwms.net import ServiceServer, create_app

    @asynccontextmanager
    async def lifespan(app):
        yield
        print("shutdown hook ran", flush=True)

    app = create_app(service="tiny", verifier=None, lifespan=lifespan)
    ServiceServer(app).serve_forever()
    print("serve_forever returned", flush=True)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_forever_announces_one_line_and_stops_cleanly(tmp_path: Path, sig: int) -> None:
    script = tmp_path / "tiny_service.py"
    script.write_text(SCRIPT)
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(r"gwms tiny listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        url = match.group(1)
        assert httpx.get(f"{url}/healthz", timeout=10).json()["service"] == "tiny"
        process.send_signal(sig)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert out.splitlines() == ["shutdown hook ran", "serve_forever returned"]
    assert "Traceback" not in err
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=5)


def test_url_is_known_before_serving_and_connections_wait() -> None:
    server = ServiceServer(create_app(service="early", verifier=None))
    url = server.url  # bound, not yet serving
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    try:
        server.start()
        assert httpx.get(f"{url}/healthz", timeout=10).json()["service"] == "early"
    finally:
        server.stop()
    assert not server.running


def test_two_servers_get_different_free_ports() -> None:
    with ServiceServer(create_app(service="a", verifier=None)) as a, ServiceServer(
        create_app(service="b", verifier=None)
    ) as b:
        assert a.port != b.port
        assert httpx.get(f"{b.url}/healthz").json()["service"] == "b"


def test_a_port_in_use_is_a_clear_error() -> None:
    with ServiceServer(create_app(service="first", verifier=None)) as first:
        second = ServiceServer(create_app(service="second", verifier=None), port=first.port)
        with pytest.raises(ServerError, match=rf"gwms second: cannot listen on 127.0.0.1:{first.port}"):
            second.start()


def test_a_failing_startup_is_reported() -> None:
    @asynccontextmanager
    async def broken(app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    server = ServiceServer(create_app(service="broken", verifier=None, lifespan=broken))
    with pytest.raises(ServerError, match="gwms broken failed to start"):
        server.start()


def test_https_with_a_local_ca(tmp_path: Path) -> None:
    ca = create_ca(tmp_path / "ca", "test CA")
    cert = issue_service_cert(ca, tmp_path / "certs", "tiny", ["127.0.0.1", "localhost"])
    app = create_app(service="secure", verifier=None)
    with ServiceServer(
        app, ssl_certfile=str(cert.cert_path), ssl_keyfile=str(cert.key_path)
    ) as server:
        assert server.url.startswith("https://127.0.0.1:")
        with SyncServiceClient(server.url, verify=str(ca.ca_cert_path), service="secure") as client:
            assert client.get("/healthz")["service"] == "secure"
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{server.url}/healthz")


def test_https_with_optional_client_certificates(tmp_path: Path) -> None:
    ca = create_ca(tmp_path / "ca", "test CA")
    server_cert = issue_service_cert(ca, tmp_path / "certs", "tiny", ["127.0.0.1"])
    client_cert = issue_service_cert(ca, tmp_path / "certs", "client", ["127.0.0.1"])
    app = create_app(service="mtls", verifier=None)
    with ServiceServer(
        app,
        ssl_certfile=str(server_cert.cert_path),
        ssl_keyfile=str(server_cert.key_path),
        ssl_ca=str(ca.ca_cert_path),
    ) as server:
        ca_file = str(ca.ca_cert_path)
        with SyncServiceClient(server.url, verify=ca_file) as client:
            assert client.get("/healthz")["service"] == "mtls"
        pair = (str(client_cert.cert_path), str(client_cert.key_path))
        with SyncServiceClient(server.url, verify=ca_file, client_cert=pair) as client:
            assert client.get("/healthz")["service"] == "mtls"
        rogue_ca = create_ca(tmp_path / "rogue", "rogue CA")
        rogue = issue_service_cert(rogue_ca, tmp_path / "rogue-certs", "client", ["127.0.0.1"])
        rogue_pair = (str(rogue.cert_path), str(rogue.key_path))
        with SyncServiceClient(
            server.url, verify=ca_file, client_cert=rogue_pair, retries=0
        ) as client, pytest.raises(ServiceError):
            client.get("/healthz")  # the server refuses a certificate its CA did not sign


def test_https_needs_both_files() -> None:
    with pytest.raises(ServerError, match="both a certificate file and a key file"):
        ServiceServer(create_app(service="x", verifier=None), ssl_certfile="cert.pem")
