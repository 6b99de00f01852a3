"""The local CA: files and permissions, certificate contents, real TLS on 127.0.0.1."""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given
from hypothesis import strategies as st

from gwms.errors import GwmsError
from gwms.security.ca import (
    CertificateAuthority,
    CertificateError,
    ServiceCertificate,
    certificate_hosts,
    client_ssl_context,
    create_ca,
    issue_service_cert,
    load_ca,
    load_or_create_ca,
    load_service_cert,
    normalize_hosts,
)
from gwms.security.keyfiles import KeyFileError


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> tuple[CertificateAuthority, ServiceCertificate]:
    d = tmp_path_factory.mktemp("pki")
    ca = create_ca(d, "test CA")
    cert = issue_service_cert(ca, d, "service", ["127.0.0.1", "localhost", "Node1.Example.org"])
    return ca, cert


@pytest.fixture(scope="module")
def foreign(tmp_path_factory) -> tuple[CertificateAuthority, ServiceCertificate]:
    d = tmp_path_factory.mktemp("foreign")
    ca = create_ca(d, "someone else's CA")
    return ca, issue_service_cert(ca, d, "service", ["127.0.0.1", "localhost"])


# --------------------------------------------------------------------------- a tiny TLS server


class OneShotTLSServer:
    """Accepts TLS connections on 127.0.0.1 (a free port) and answers each with a line."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.port = self.sock.getsockname()[1]
        self.context = context
        self.errors: list[BaseException] = []
        self.peers: list[dict | None] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    self.peers.append(tls.getpeercert())
                    tls.sendall(b"hello over tls\n")
            except (ssl.SSLError, OSError) as exc:
                self.errors.append(exc)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        self.sock.close()
        self.thread.join(timeout=5)


def fetch(port: int, context: ssl.SSLContext, server_hostname: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_hostname) as tls:
            return tls.recv(100)


@pytest.fixture()
def server(pki):
    _, cert = pki
    srv = OneShotTLSServer(cert.server_context())
    yield srv
    srv.close()


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "node1.example.org"])
def test_tls_connection_verifies_with_the_ca(pki, server, name):
    ca, _ = pki
    assert fetch(server.port, client_ssl_context(ca.ca_cert_path), name) == b"hello over tls\n"


def test_tls_client_built_from_paths_only(pki, server):
    """The paths are what ssl needs: a stock context with cafile= works too."""
    ca, _ = pki
    ctx = ssl.create_default_context(cafile=str(ca.ca_cert_path))
    assert fetch(server.port, ctx, "localhost") == b"hello over tls\n"


def test_tls_refuses_a_name_not_in_the_certificate(pki, server):
    ca, _ = pki
    with pytest.raises(ssl.SSLCertVerificationError, match="(?i)hostname|IP address mismatch"):
        fetch(server.port, client_ssl_context(ca.ca_cert_path), "other.example.org")


def test_tls_refuses_a_certificate_from_another_ca(pki, foreign):
    ca, _ = pki
    _, foreign_cert = foreign
    srv = OneShotTLSServer(foreign_cert.server_context())
    try:
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            fetch(srv.port, client_ssl_context(ca.ca_cert_path), "127.0.0.1")
        # while a client trusting that other CA accepts it: the refusal is about trust
        assert fetch(srv.port, foreign_cert.client_context(), "127.0.0.1") == b"hello over tls\n"
    finally:
        srv.close()


def test_mutual_tls_with_the_service_certificate(pki, foreign):
    ca, cert = pki
    srv = OneShotTLSServer(cert.server_context(require_client_cert=True))
    try:
        ok = fetch(srv.port, cert.client_context(present_certificate=True), "127.0.0.1")
        assert ok == b"hello over tls\n"
        assert srv.peers and srv.peers[-1] is not None  # the server saw our certificate
        _, foreign_cert = foreign
        stranger = client_ssl_context(
            ca.ca_cert_path, foreign_cert.cert_path, foreign_cert.key_path
        )
        with pytest.raises((ssl.SSLError, ConnectionError)):
            fetch(srv.port, stranger, "127.0.0.1")
            fetch(srv.port, stranger, "127.0.0.1")  # TLS 1.3 may report on the first read
    finally:
        srv.close()


# --------------------------------------------------------------------------- files and contents


def test_files_and_permissions(pki):
    ca, cert = pki
    assert mode(ca.key_path) == 0o600 and mode(cert.key_path) == 0o600
    assert mode(ca.ca_cert_path) == 0o644 and mode(cert.cert_path) == 0o644
    assert ca.ca_cert_path.name == "ca.pem" and cert.cert_path.name == "service.pem"
    assert cert.ca_cert_path == ca.ca_cert_path
    assert ca.name == "test CA"


def test_ca_certificate_is_a_ca(pki):
    ca, _ = pki
    bc = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = ca.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign
    assert isinstance(ca.private_key, ec.EllipticCurvePrivateKey)
    assert ca.private_key.curve.name == "secp256r1"


def test_service_certificate_contents(pki):
    ca, cert = pki
    c = x509.load_pem_x509_certificate(cert.cert_path.read_bytes())
    assert not c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    eku = c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "node1.example.org"]
    assert cert.hosts == ("127.0.0.1", "localhost", "node1.example.org")
    assert certificate_hosts(c) == cert.hosts
    c.verify_directly_issued_by(ca.certificate)
    assert c.not_valid_after_utc <= ca.certificate.not_valid_after_utc


def test_rsa_keys_on_request(tmp_path):
    ca = create_ca(tmp_path, "rsa CA", key_type="rsa")
    cert = issue_service_cert(ca, tmp_path, "svc", ["::1"], key_type="rsa")
    assert isinstance(ca.private_key, rsa.RSAPrivateKey)
    assert cert.hosts == ("::1",)
    assert load_service_cert(tmp_path, "svc").hosts == ("::1",)


def test_load_round_trip(pki):
    ca, cert = pki
    again = load_ca(ca.directory)
    assert again.certificate == ca.certificate
    loaded = load_service_cert(ca.directory, "service")
    assert loaded == cert


def test_create_never_overwrites(tmp_path):
    ca = create_ca(tmp_path, "one")
    with pytest.raises(CertificateError, match="already holds a CA"):
        create_ca(tmp_path, "two")
    again, created = load_or_create_ca(tmp_path, "three")
    assert not created and again.certificate == ca.certificate
    issue_service_cert(ca, tmp_path, "svc")
    with pytest.raises(CertificateError, match="already exists"):
        issue_service_cert(ca, tmp_path, "svc")
    issue_service_cert(ca, tmp_path, "svc", ["localhost"], overwrite=True)
    assert load_service_cert(tmp_path, "svc").hosts == ("localhost",)


def test_loading_refuses_open_keys_and_mismatches(tmp_path, foreign):
    ca = create_ca(tmp_path, "one")
    issue_service_cert(ca, tmp_path, "svc")
    os.chmod(ca.key_path, 0o640)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_ca(tmp_path)
    os.chmod(ca.key_path, 0o600)
    _, foreign_cert = foreign
    with pytest.raises(CertificateError, match="not issued by"):
        load_service_cert(foreign_cert.cert_path.parent, "service", ca_cert_path=ca.ca_cert_path)
    (tmp_path / "svc.key").write_bytes(foreign_cert.key_path.read_bytes())
    os.chmod(tmp_path / "svc.key", 0o600)
    with pytest.raises(CertificateError, match="does not belong"):
        load_service_cert(tmp_path, "svc")
    with pytest.raises(CertificateError, match="no CA"):
        load_ca(tmp_path / "empty")


@pytest.mark.parametrize("bad", ["", "exa mple.org", "-bad.org", "a/b", "x" * 64 + ".org", "a..b"])
def test_invalid_hosts(bad):
    with pytest.raises(CertificateError, match="invalid host"):
        normalize_hosts([bad])


def test_reserved_and_invalid_certificate_names(tmp_path, pki):
    ca, _ = pki
    with pytest.raises(CertificateError, match="reserved"):
        issue_service_cert(ca, tmp_path, "ca")
    with pytest.raises(GwmsError):
        issue_service_cert(ca, tmp_path, "../escape")
    with pytest.raises(CertificateError):
        create_ca(tmp_path / "x", "")


def test_normalize_hosts():
    assert normalize_hosts(["LOCALHOST", "127.0.0.1", "localhost", "0:0::1", "a.b."]) == (
        "localhost",
        "127.0.0.1",
        "::1",
        "a.b",
    )
    with pytest.raises(CertificateError, match="at least one"):
        normalize_hosts([])


@given(
    st.lists(
        st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True), min_size=1, max_size=4
    )
)
def test_normalize_hosts_accepts_dns_names(labels):
    name = ".".join(labels)
    assert normalize_hosts([name.upper()]) == (name,)
