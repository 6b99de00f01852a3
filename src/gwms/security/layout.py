"""The on-disk layout of a pool's security directory, and how to set one up.

::

    DIR/keys/POOL.key          pool signing key (0600)
    DIR/keys/trust-domain      the pool's trust domain: the issuer of its tokens
    DIR/ca/ca.pem, ca.key      the local CA
    DIR/ca/service.pem, .key   the services' certificate (127.0.0.1, localhost, more hosts)
    DIR/tokens/admin.token     an ADMINISTRATOR token for admin@<trust domain> (0600)

:func:`init_security` makes what is missing and keeps what exists (it never overwrites a
key), so it is safe to run on every start; ``gwms security init`` and the embedded
deployment both use it. :class:`SecurityLayout` finds the pieces again.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

from gwms.errors import GwmsError, UsageError
from gwms.security import scopes
from gwms.security.ca import (
    DEFAULT_HOSTS,
    ServiceCertificate,
    issue_service_cert,
    load_or_create_ca,
    load_service_cert,
    normalize_hosts,
)
from gwms.security.identity import Identity, InvalidIdentity
from gwms.security.keyfiles import ensure_private_dir
from gwms.security.tokens import (
    TokenError,
    TokenVerifier,
    issue_token,
    load_or_create_signing_key,
    load_signing_keys,
    load_trust_domain,
    read_token_file,
    save_trust_domain,
    write_token_file,
)

POOL_KEY_ID = "POOL"
SERVICE_CERT_NAME = "service"
ADMIN_USER = "admin"
DEFAULT_ADMIN_LIFETIME = timedelta(days=365)


@dataclass(frozen=True)
class SecurityLayout:
    """Paths of a security directory (nothing is read until a method asks)."""

    root: Path

    @property
    def keys_dir(self) -> Path:
        """Directory of the pool signing keys."""
        return self.root / "keys"

    @property
    def ca_dir(self) -> Path:
        """Directory of the CA and the service certificate."""
        return self.root / "ca"

    @property
    def tokens_dir(self) -> Path:
        """Directory of issued tokens."""
        return self.root / "tokens"

    @property
    def signing_key_path(self) -> Path:
        """The pool signing key file."""
        return self.keys_dir / f"{POOL_KEY_ID}.key"

    @property
    def admin_token_path(self) -> Path:
        """The administrator token file."""
        return self.tokens_dir / "admin.token"

    @property
    def ca_cert_path(self) -> Path:
        """The CA certificate clients trust."""
        return self.ca_dir / "ca.pem"

    def trust_domain(self) -> str:
        """The recorded trust domain; raise GwmsError if the directory was never initialized."""
        td = load_trust_domain(self.keys_dir)
        if td is None:
            raise GwmsError(f"{self.root} has no trust domain", hint="run: gwms security init DIR")
        return td

    def verifier(self, *, leeway_seconds: float = 60) -> TokenVerifier:
        """A token verifier with this directory's signing keys and trust domain."""
        return TokenVerifier(
            load_signing_keys(self.keys_dir), self.trust_domain(), leeway_seconds=leeway_seconds
        )

    def service_cert(self) -> ServiceCertificate:
        """The service certificate (paths for ssl, uvicorn and httpx)."""
        return load_service_cert(self.ca_dir, SERVICE_CERT_NAME)

    def admin_token(self) -> str:
        """The administrator token."""
        return read_token_file(self.admin_token_path)

    def mint_token(
        self,
        user: str,
        token_scopes: Iterable[str],
        *,
        lifetime: timedelta = timedelta(days=1),
        audience: str | None = None,
    ) -> str:
        """Issue a token for ``user@<trust domain>`` with the pool signing key.

        Services started on the pool's own machine use this to get their daemon tokens
        (``schedd@domain`` with ADVERTISE_SCHEDD, ...) instead of reading token files.
        """
        key = load_or_create_signing_key(self.keys_dir, POOL_KEY_ID)
        domain = self.trust_domain()
        return issue_token(
            key,
            issuer=domain,
            subject=f"{user}@{domain}",
            scopes=sorted(token_scopes),
            lifetime=lifetime,
            audience=audience,
        )


def ensure_pool_keys(directory: str | os.PathLike[str]) -> SecurityLayout:
    """Make sure ``directory`` has a pool signing key and trust domain; return its layout.

    What a service started with ``--data DIR`` calls before it verifies tokens: missing
    pieces are created (the trust domain is this host's name), existing ones are kept.
    """
    layout = SecurityLayout(Path(directory))
    if not layout.signing_key_path.exists():
        load_or_create_signing_key(layout.keys_dir, POOL_KEY_ID)
    if load_trust_domain(layout.keys_dir) is None:
        save_trust_domain(layout.keys_dir, default_trust_domain())
    return layout


@dataclass(frozen=True)
class InitStep:
    """One thing :func:`init_security` made or found."""

    action: Literal["created", "kept"]
    what: str
    path: Path
    note: str = ""


def default_trust_domain() -> str:
    """This host's name (lowercase), or ``localhost`` if it is not a usable domain."""
    name = socket.gethostname().strip().lower()
    return name if Identity.is_valid(f"{ADMIN_USER}@{name}") else "localhost"


def init_security(
    directory: str | os.PathLike[str],
    *,
    hosts: Iterable[str] = (),
    trust_domain: str | None = None,
    admin_lifetime: timedelta = DEFAULT_ADMIN_LIFETIME,
) -> tuple[SecurityLayout, list[InitStep]]:
    """Create what is missing of a security directory; keep (never overwrite) what exists.

    Args:
        directory: the security directory.
        hosts: host names or IPs for the service certificate besides 127.0.0.1 and localhost.
        trust_domain: the pool's trust domain; default the recorded one, else this host's name.
        admin_lifetime: lifetime of a newly issued administrator token.

    Raises:
        UsageError: ``trust_domain`` differs from the one already recorded, or is invalid.
    """
    layout = SecurityLayout(Path(directory))
    steps: list[InitStep] = []
    wanted_hosts = normalize_hosts([*DEFAULT_HOSTS, *hosts])
    ensure_private_dir(layout.root)

    # trust domain
    recorded = load_trust_domain(layout.keys_dir) if layout.keys_dir.is_dir() else None
    if recorded is not None and trust_domain is not None and trust_domain != recorded:
        raise UsageError(
            f"{layout.root} already uses trust domain {recorded!r}, not {trust_domain!r}",
            hint="use a new directory for another trust domain",
        )
    domain = recorded or trust_domain or default_trust_domain()
    try:
        admin = Identity(ADMIN_USER, domain)
    except InvalidIdentity:
        raise UsageError(f"invalid trust domain {domain!r}: use a host-name-like name") from None

    # signing key
    existed = layout.signing_key_path.exists()
    key = load_or_create_signing_key(layout.keys_dir, POOL_KEY_ID)
    steps.append(
        InitStep("kept" if existed else "created", "pool signing key", layout.signing_key_path)
    )
    if recorded is None:
        save_trust_domain(layout.keys_dir, domain)
        steps.append(InitStep("created", "trust domain", layout.keys_dir / "trust-domain", domain))
    else:
        steps.append(InitStep("kept", "trust domain", layout.keys_dir / "trust-domain", domain))

    # CA and service certificate
    ca, created = load_or_create_ca(layout.ca_dir, f"gwms CA {domain}")
    steps.append(InitStep("created" if created else "kept", "CA", ca.ca_cert_path))
    service_pem = layout.ca_dir / f"{SERVICE_CERT_NAME}.pem"
    if service_pem.exists():
        cert = load_service_cert(layout.ca_dir, SERVICE_CERT_NAME)
        uncovered = [h for h in wanted_hosts if h not in cert.hosts]
        note = (
            f"does not cover {', '.join(uncovered)}; delete {SERVICE_CERT_NAME}.pem/.key "
            "and run again to reissue"
            if uncovered
            else ", ".join(cert.hosts)
        )
        steps.append(InitStep("kept", "service certificate", cert.cert_path, note))
    else:
        cert = issue_service_cert(ca, layout.ca_dir, SERVICE_CERT_NAME, wanted_hosts)
        steps.append(
            InitStep("created", "service certificate", cert.cert_path, ", ".join(cert.hosts))
        )

    # administrator token
    ensure_private_dir(layout.tokens_dir)
    if layout.admin_token_path.exists():
        try:
            claims = TokenVerifier(key, domain).verify(read_token_file(layout.admin_token_path))
            note = f"{claims.subject}, expires {claims.expires_at:%Y-%m-%d %H:%M}Z"
        except (TokenError, GwmsError) as exc:
            note = f"does not verify ({exc}); delete it and run again to issue a new one"
        steps.append(InitStep("kept", "admin token", layout.admin_token_path, note))
    else:
        token = issue_token(
            key,
            issuer=domain,
            subject=str(admin),
            scopes=[scopes.ADMINISTRATOR],
            lifetime=admin_lifetime,
        )
        try:
            write_token_file(layout.admin_token_path, token, overwrite=False)
            steps.append(
                InitStep(
                    "created", "admin token", layout.admin_token_path, f"{admin}, ADMINISTRATOR"
                )
            )
        except FileExistsError:
            steps.append(InitStep("kept", "admin token", layout.admin_token_path))
    return layout, steps
