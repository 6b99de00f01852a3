"""A local certificate authority and the service certificates it issues, for TLS.

A pool that runs on its own machines needs no public CA: ``gwms security init`` makes a
CA and one service certificate whose subject alternative names list the addresses and
host names the services answer on. Clients trust the CA file; servers present the
service certificate (it carries both the server and client auth purposes, so the same
certificate serves for mutual TLS between services).

Layout of a CA directory::

    ca.pem, ca.key            the CA certificate (0644) and key (0600)
    <name>.pem, <name>.key    a service certificate (0644) and key (0600)

All keys are EC P-256 by default (RSA 3072 on request). Everything here returns paths
that :mod:`ssl`, uvicorn (``ssl_certfile``/``ssl_keyfile``) and httpx (``verify=``) use.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gwms.errors import GwmsError
from gwms.security.keyfiles import read_private_file, validate_key_id, write_private_file

KeyType = Literal["ec", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
DEFAULT_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost")
CA_VALID_DAYS = 3650
SERVICE_VALID_DAYS = 825
#: Certificates start this long before "now", so a peer whose clock is a little behind accepts them.
BACKDATE = dt.timedelta(minutes=5)

_DNS_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


class CertificateError(GwmsError):
    """A CA or certificate cannot be created or loaded as asked."""


# --------------------------------------------------------------------------- helpers


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise CertificateError(f"unknown key type {key_type!r}; use 'ec' or 'rsa'")


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_key(path: Path) -> PrivateKey:
    data = read_private_file(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise CertificateError(f"{path} holds neither an EC nor an RSA key")
    return key


def _load_cert(path: Path) -> x509.Certificate:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CertificateError(f"{path} does not exist") from None
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise CertificateError(f"{path} is not a PEM certificate: {exc}") from None


def _write_public(path: Path, data: bytes) -> None:
    write_private_file(path, data, overwrite=True)
    os.chmod(path, 0o644)


def _same_public_key(cert: x509.Certificate, key: PrivateKey) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def normalize_hosts(hosts: Iterable[str]) -> tuple[str, ...]:
    """Validate host names and IP addresses for a certificate; lowercase, dedupe, keep order.

    Raises:
        CertificateError: an entry is neither an IP address nor a valid DNS name.
    """
    out: list[str] = []
    for raw in hosts:
        host = raw.strip().lower() if isinstance(raw, str) else ""
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            labels = host.rstrip(".").split(".")
            host = ".".join(labels)
            if not host or len(host) > 253 or not all(_DNS_LABEL.fullmatch(x) for x in labels):
                raise CertificateError(
                    f"invalid host {raw!r}: not an IP address or DNS name"
                ) from None
        if host not in out:
            out.append(host)
    if not out:
        raise CertificateError("a service certificate needs at least one host")
    return tuple(out)


def _san_entries(hosts: Sequence[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    for host in hosts:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return entries


def certificate_hosts(cert: x509.Certificate) -> tuple[str, ...]:
    """The IP addresses and DNS names in a certificate's subject alternative names."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return tuple(ips + list(san.get_values_for_type(x509.DNSName)))


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        raise CertificateError(f"invalid certificate name {name!r}: 1-64 characters")
    if any(ord(c) < 0x20 for c in name):
        raise CertificateError(f"invalid certificate name {name!r}: control characters")
    return name


# --------------------------------------------------------------------------- the CA


@dataclass(frozen=True, eq=False)
class CertificateAuthority:
    """A CA loaded from (or created in) a directory."""

    directory: Path
    certificate: x509.Certificate = field(repr=False)
    private_key: PrivateKey = field(repr=False)

    @property
    def name(self) -> str:
        """The CA's common name."""
        attrs = self.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(attrs[0].value) if attrs else ""

    @property
    def ca_cert_path(self) -> Path:
        """The CA certificate file: what clients trust (``cafile=``, ``verify=``)."""
        return self.directory / CA_CERT_FILE

    @property
    def key_path(self) -> Path:
        """The CA private key file (0600)."""
        return self.directory / CA_KEY_FILE


def create_ca(
    directory: str | os.PathLike[str],
    name: str,
    *,
    key_type: KeyType = "ec",
    valid_days: int = CA_VALID_DAYS,
) -> CertificateAuthority:
    """Create a CA named ``name`` in ``directory`` (``ca.pem`` and ``ca.key``, 0600).

    Raises:
        CertificateError: the directory already holds a CA, or ``name`` is invalid.
    """
    _check_name(name)
    path = Path(directory)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if (path / CA_CERT_FILE).exists() or (path / CA_KEY_FILE).exists():
        raise CertificateError(f"{path} already holds a CA; not overwriting it")
    key = _new_key(key_type)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gwms"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    try:
        write_private_file(path / CA_KEY_FILE, _key_pem(key))
    except FileExistsError:
        raise CertificateError(f"{path} already holds a CA; not overwriting it") from None
    _write_public(path / CA_CERT_FILE, cert.public_bytes(serialization.Encoding.PEM))
    return CertificateAuthority(path, cert, key)


def load_ca(directory: str | os.PathLike[str]) -> CertificateAuthority:
    """Load the CA of ``directory``; refuse a key file group or others can read.

    Raises:
        CertificateError: files missing or not matching; KeyFileError: key too open.
    """
    path = Path(directory)
    if not (path / CA_CERT_FILE).exists():
        raise CertificateError(f"no CA in {path} ({CA_CERT_FILE} is missing)")
    cert = _load_cert(path / CA_CERT_FILE)
    key = _load_key(path / CA_KEY_FILE)
    if not _same_public_key(cert, key):
        raise CertificateError(f"{path / CA_KEY_FILE} does not belong to {path / CA_CERT_FILE}")
    return CertificateAuthority(path, cert, key)


def load_or_create_ca(
    directory: str | os.PathLike[str], name: str, *, key_type: KeyType = "ec"
) -> tuple[CertificateAuthority, bool]:
    """Load the CA of ``directory``, or create it; returns ``(ca, created)``."""
    if (Path(directory) / CA_CERT_FILE).exists():
        return load_ca(directory), False
    return create_ca(directory, name, key_type=key_type), True


# --------------------------------------------------------------------------- service certs


@dataclass(frozen=True)
class ServiceCertificate:
    """A service certificate on disk: the paths ssl needs, and the hosts it covers."""

    name: str
    cert_path: Path
    key_path: Path
    ca_cert_path: Path
    hosts: tuple[str, ...]
    not_valid_after: dt.datetime

    def server_context(self, *, require_client_cert: bool = False) -> ssl.SSLContext:
        """An SSLContext for a server presenting this certificate (optionally mutual TLS)."""
        return server_ssl_context(
            self.cert_path,
            self.key_path,
            client_ca_path=self.ca_cert_path if require_client_cert else None,
        )

    def client_context(self, *, present_certificate: bool = False) -> ssl.SSLContext:
        """An SSLContext for a client trusting this certificate's CA (optionally presenting it)."""
        if present_certificate:
            return client_ssl_context(self.ca_cert_path, self.cert_path, self.key_path)
        return client_ssl_context(self.ca_cert_path)


def issue_service_cert(
    ca: CertificateAuthority,
    directory: str | os.PathLike[str],
    name: str,
    hosts: Iterable[str] = DEFAULT_HOSTS,
    *,
    key_type: KeyType = "ec",
    valid_days: int = SERVICE_VALID_DAYS,
    overwrite: bool = False,
) -> ServiceCertificate:
    """Issue a certificate ``<directory>/<name>.pem`` (key ``<name>.key``, 0600) signed by ``ca``.

    The subject alternative names hold every host (IP addresses as IP entries, names as
    DNS entries); the extended key usage allows both server and client authentication.

    Raises:
        CertificateError: invalid name or host, or the files exist and ``overwrite`` is false.
    """
    validate_key_id(name)
    if name == "ca":
        raise CertificateError("'ca' is reserved for the CA's own files")
    host_list = normalize_hosts(hosts)
    path = Path(directory)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_path, key_path = path / f"{name}.pem", path / f"{name}.key"
    if not overwrite and (cert_path.exists() or key_path.exists()):
        raise CertificateError(f"{cert_path} already exists; not overwriting it")
    key = _new_key(key_type)
    now = _now()
    not_after = min(now + dt.timedelta(days=valid_days), ca.certificate.not_valid_after_utc)
    is_rsa = isinstance(key, rsa.RSAPrivateKey)
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gwms"),
                    x509.NameAttribute(NameOID.COMMON_NAME, host_list[0]),
                ]
            )
        )
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=is_rsa,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(_san_entries(host_list)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca.private_key, hashes.SHA256())
    )
    write_private_file(key_path, _key_pem(key), overwrite=True)
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return ServiceCertificate(
        name, cert_path, key_path, ca.ca_cert_path, host_list, cert.not_valid_after_utc
    )


def load_service_cert(
    directory: str | os.PathLike[str],
    name: str,
    *,
    ca_cert_path: str | os.PathLike[str] | None = None,
) -> ServiceCertificate:
    """Load ``<directory>/<name>.pem`` and its key (refused if group/others can read it).

    ``ca_cert_path`` defaults to ``<directory>/ca.pem``; the certificate must be signed by it.

    Raises:
        CertificateError: missing files, a key that does not match, or another CA's certificate.
    """
    validate_key_id(name)
    path = Path(directory)
    cert_path, key_path = path / f"{name}.pem", path / f"{name}.key"
    ca_path = Path(ca_cert_path) if ca_cert_path is not None else path / CA_CERT_FILE
    cert = _load_cert(cert_path)
    key = _load_key(key_path)
    if not _same_public_key(cert, key):
        raise CertificateError(f"{key_path} does not belong to {cert_path}")
    ca_cert = _load_cert(ca_path)
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise CertificateError(
            f"{cert_path} was not issued by the CA in {ca_path}: {exc}"
        ) from None
    return ServiceCertificate(
        name, cert_path, key_path, ca_path, certificate_hosts(cert), cert.not_valid_after_utc
    )


# --------------------------------------------------------------------------- ssl contexts


def server_ssl_context(
    cert_path: str | os.PathLike[str],
    key_path: str | os.PathLike[str],
    *,
    client_ca_path: str | os.PathLike[str] | None = None,
) -> ssl.SSLContext:
    """A TLS 1.2+ server context presenting ``cert_path``; with ``client_ca_path``, mutual TLS."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(os.fspath(cert_path), os.fspath(key_path))
    if client_ca_path is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=os.fspath(client_ca_path))
    return ctx


def client_ssl_context(
    ca_cert_path: str | os.PathLike[str],
    cert_path: str | os.PathLike[str] | None = None,
    key_path: str | os.PathLike[str] | None = None,
) -> ssl.SSLContext:
    """A TLS 1.2+ client context trusting only ``ca_cert_path``, checking host names.

    With ``cert_path`` and ``key_path`` it also presents a client certificate.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=os.fspath(ca_cert_path))
    if cert_path is not None:
        if key_path is None:
            raise CertificateError("a client certificate needs its key path too")
        ctx.load_cert_chain(os.fspath(cert_path), os.fspath(key_path))
    return ctx
