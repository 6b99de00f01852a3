"""Which credentials serve an entry, how a request is split over them, and the glideins' tokens.

A group's credentials are the frontend's and the group's (``security.credentials`` and
``groups.<g>.credentials``). Each glideclient request names one credential (its
``ReqCredentialId``); the factory submits the glideins of that request with it.

- :func:`group_credentials`: the group's credentials as :class:`Credential` s; a group
  without any gets one implicit credential ``default`` of kind ``none`` (its glideins
  get no token: only useful with pilots that do not join the pool, as in tests).
- :func:`credentials_for_entry`: those that fit the entry: the same trust domain
  (the entry's ``GLIDEIN_TrustDomain``, ``grid`` when it publishes none) and, when the
  entry lists ``GLIDEIN_SupportedAuthenticationMethod``, a method the credential
  provides (a pool token is an ``idtoken``, a token file a ``scitoken``; ``token``
  fits both).
- :func:`split_request`: min idle and max run over the fitting credentials, by the
  group's ``credential_selection``: ``all`` and ``per_user`` split evenly (the first
  credentials get the remainder, so the parts add up to the whole request), ``first``
  gives everything to the first, ``round_robin`` to one credential per cycle in turn.
- :class:`GlideinTokens`: the token each glidein joins the user pool with. A
  ``pool_token`` credential mints one per entry, signed with the pool key (subject
  ``glidein-<entry>.<instance>.<factory>@<trust domain>``, scopes READ,
  ADVERTISE_STARTD, ADVERTISE_MASTER, ``token_lifetime``), minted again when an eighth
  of its lifetime has passed; a ``token_file`` credential's file is read as it is.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gwms.errors import GwmsError
from gwms.frontend import adnames as N
from gwms.frontend.classify import ad_value
from gwms.frontend.config import CredentialConfig, FrontendConfig
from gwms.frontend.matching import Entry
from gwms.security import scopes
from gwms.security.tokens import (
    SigningKey,
    issue_token,
    load_signing_key,
    load_trust_domain,
    read_token_file,
)

__all__ = [
    "DEFAULT_CREDENTIAL",
    "DEFAULT_TRUST_DOMAIN",
    "Credential",
    "CredentialError",
    "CredentialShare",
    "GlideinTokens",
    "credentials_for_entry",
    "glidein_subject",
    "group_credentials",
    "split_request",
]

#: The implicit credential of a group that configures none.
DEFAULT_CREDENTIAL = "default"
#: The trust domain of an entry that publishes no GLIDEIN_TrustDomain (GlideinWMS's default).
DEFAULT_TRUST_DOMAIN = "grid"
#: Authentication methods each kind of credential provides.
_METHODS: dict[str, frozenset[str]] = {
    "pool_token": frozenset({"idtoken", "token"}),
    "token_file": frozenset({"scitoken", "token"}),
    "none": frozenset(),
}


class CredentialError(GwmsError):
    """A credential cannot be used: a missing signing key, trust domain or token file."""


@dataclass(frozen=True)
class Credential:
    """One credential as a cycle uses it: its id (``ReqCredentialId``), security class,
    trust domain and kind (``pool_token``, ``token_file`` or ``none``); ``config`` is
    the configured credential (None for the implicit ``default``)."""

    id: str
    security_class: str
    trust_domain: str
    kind: str
    config: CredentialConfig | None = None


@dataclass(frozen=True)
class CredentialShare:
    """The part of an entry's request one credential asks for."""

    credential: Credential
    min_idle: int
    max_run: int


def group_credentials(config: FrontendConfig, group: str) -> list[Credential]:
    """The group's credentials in configuration order (the implicit ``default`` if none)."""
    creds = [
        Credential(c.name, c.security_class, c.trust_domain, c.type, c)
        for c in config.credentials_of(group)
    ]
    if not creds:
        creds = [Credential(DEFAULT_CREDENTIAL, "frontend", DEFAULT_TRUST_DOMAIN, "none")]
    return creds


def _methods(value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    else:
        items = re.split(r"[,\s]+", str(value))
    found = frozenset(i.strip().lower() for i in items if i.strip())
    return found or None


def credentials_for_entry(credentials: Sequence[Credential], entry: Entry) -> list[Credential]:
    """The credentials that fit ``entry`` (trust domain and authentication method)."""
    domain = ad_value(entry.attrs, N.GLIDEIN_TRUST_DOMAIN, DEFAULT_TRUST_DOMAIN)
    domain = str(domain) if domain not in (None, "") else DEFAULT_TRUST_DOMAIN
    methods = _methods(ad_value(entry.attrs, N.GLIDEIN_AUTH_METHOD))
    out = []
    for cred in credentials:
        if cred.kind != "none" and cred.trust_domain != domain:
            continue
        if methods is not None and cred.kind != "none" and not (_METHODS[cred.kind] & methods):
            continue
        out.append(cred)
    return out


def _even(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def split_request(
    min_idle: int,
    max_run: int,
    credentials: Sequence[Credential],
    selection: str,
    turn: int = 0,
) -> list[CredentialShare]:
    """Split one entry's request over ``credentials`` (see the module docstring).

    The parts always add up to ``min_idle`` and ``max_run``; no credentials, no shares.
    """
    if not credentials:
        return []
    if selection == "first":
        return [CredentialShare(credentials[0], min_idle, max_run)]
    if selection == "round_robin":
        return [CredentialShare(credentials[turn % len(credentials)], min_idle, max_run)]
    idles = _even(min_idle, len(credentials))
    runs = _even(max_run, len(credentials))
    return [CredentialShare(c, i, r) for c, i, r in zip(credentials, idles, runs)]


_SUBJECT_BAD = re.compile(r"[^A-Za-z0-9._+-]")


def glidein_subject(entry_name: str, domain: str) -> str:
    """The identity of an entry's glideins: ``glidein-<entry>.<instance>.<factory>@<domain>``."""
    user = _SUBJECT_BAD.sub("_", "glidein-" + entry_name.replace("@", "."))
    while ".." in user:
        user = user.replace("..", ".")
    return f"{user[:200]}@{domain}"


@dataclass
class _Minted:
    token: str
    at: float


class GlideinTokens:
    """The token the glideins of one entry get, per credential (see the module docstring).

    Args:
        clock: epoch seconds (tokens are issued at this time).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[SigningKey, str]] = {}
        self._minted: dict[tuple[str, str], _Minted] = {}

    def _key(self, cred: CredentialConfig) -> tuple[SigningKey, str]:
        assert cred.signing_key_dir is not None
        directory = Path(cred.signing_key_dir)
        cache_key = f"{directory}|{cred.key_id}"
        found = self._keys.get(cache_key)
        if found is not None:
            return found
        # the pool's keys directory itself, or a data/security directory holding keys/
        for candidate in (directory, directory / "keys"):
            if (candidate / f"{cred.key_id}.key").exists():
                directory = candidate
                break
        else:
            raise CredentialError(
                f"credential {cred.name}: no signing key {cred.key_id}.key in {cred.signing_key_dir}"
            )
        domain = load_trust_domain(directory)
        if domain is None:
            raise CredentialError(f"credential {cred.name}: {directory} records no trust domain")
        found = (load_signing_key(directory, cred.key_id), domain)
        self._keys[cache_key] = found
        return found

    def token(self, credential: Credential, entry_name: str) -> str | None:
        """The token for the glideins of ``entry_name`` under ``credential`` (None for ``none``).

        Raises:
            CredentialError: the signing key, trust domain or token file is unusable.
        """
        cred = credential.config
        if cred is None or credential.kind == "none":
            return None
        if cred.type == "token_file":
            assert cred.path is not None
            try:
                return read_token_file(cred.path)
            except GwmsError as exc:
                raise CredentialError(f"credential {cred.name}: {exc.message}") from None
        now = self.clock()
        with self._lock:
            minted = self._minted.get((cred.name, entry_name))
            if minted is not None and now - minted.at < cred.token_lifetime / 8:
                return minted.token
            key, domain = self._key(cred)
            token = issue_token(
                key,
                issuer=domain,
                subject=glidein_subject(entry_name, domain),
                scopes=sorted(scopes.GLIDEIN_SCOPES),
                lifetime=cred.token_lifetime,
                now=now,
            )
            self._minted[(cred.name, entry_name)] = _Minted(token, now)
            return token

    def forget(self, keep: Mapping[tuple[str, str], object] | set[tuple[str, str]]) -> None:
        """Drop cached tokens of (credential, entry) pairs not in ``keep``."""
        with self._lock:
            for key in list(self._minted):
                if key not in keep:
                    del self._minted[key]
