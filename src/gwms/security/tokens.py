"""Pool tokens: JWTs signed with HS256 under a pool signing key, like HTCondor IDTOKENs.

A token names who holds it (``sub``, an identity ``user@domain``), who made it (``iss``,
the pool's trust domain), what it may do (``scope``, space separated, see
:mod:`gwms.security.scopes`), when it is valid (``iat``, ``nbf``, ``exp``), a unique id
(``jti``) and, in its header, the id of the signing key (``kid``).

Signing keys live one per file, ``<directory>/<kid>.key``, mode 0600; a key file that
group or others can read is refused. :class:`TokenVerifier` checks a token and tells
each way it can be wrong apart with its own :class:`TokenError` subclass.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jwt

from gwms.errors import GwmsError
from gwms.security.identity import Identity, InvalidIdentity
from gwms.security.keyfiles import (
    KeyFileError,
    ensure_private_dir,
    read_private_file,
    validate_key_id,
    write_private_file,
)
from gwms.security.scopes import InvalidScope, format_scopes, missing_scopes, parse_scopes

ALGORITHM = "HS256"
DEFAULT_LIFETIME = timedelta(hours=24)
#: Secrets shorter than this are refused (RFC 7518 asks at least the hash size for HS256).
MIN_SECRET_BYTES = 32
#: Size of the secrets :func:`generate_signing_key` makes.
SECRET_BYTES = 64
#: Tokens longer than this are refused before any parsing.
MAX_TOKEN_LENGTH = 8192
KEY_SUFFIX = ".key"
TRUST_DOMAIN_FILE = "trust-domain"
REGISTERED_CLAIMS = frozenset({"iss", "sub", "scope", "iat", "nbf", "exp", "jti", "aud"})


# --------------------------------------------------------------------------- errors


class TokenError(GwmsError):
    """A token was refused. Subclasses say why."""

    http_status = 401


class TokenMalformed(TokenError):
    """Not a JWT, a wrong algorithm, or a claim missing or of the wrong type."""


class TokenExpired(TokenError):
    """The token's ``exp`` (plus the leeway) has passed."""


class TokenNotYetValid(TokenError):
    """The token's ``nbf`` or ``iat`` lies in the future (beyond the leeway)."""


class TokenWrongIssuer(TokenError):
    """The token was issued by a trust domain this verifier does not accept."""


class TokenUnknownKey(TokenError):
    """The token's ``kid`` names no key this verifier holds."""


class TokenBadSignature(TokenError):
    """The signature does not match: the token was altered or signed with another secret."""


class TokenWrongAudience(TokenError):
    """The token's ``aud`` does not name this service (or names one where none is accepted)."""


class TokenMissingScope(TokenError):
    """The token is valid but lacks a required scope; ``.missing`` lists which."""

    http_status = 403

    def __init__(self, missing: Iterable[str], *, subject: str = "") -> None:
        self.missing: frozenset[str] = frozenset(missing)
        who = f" of {subject}" if subject else ""
        super().__init__(f"token{who} lacks scope {' '.join(sorted(self.missing))}")


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class SigningKey:
    """A pool signing key: an id and a shared HMAC secret (never shown in repr)."""

    kid: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        validate_key_id(self.kid)
        if not isinstance(self.secret, bytes) or len(self.secret) < MIN_SECRET_BYTES:
            raise KeyFileError(
                f"signing key {self.kid!r} is too short (need at least {MIN_SECRET_BYTES} bytes)"
            )


def generate_signing_key(kid: str) -> SigningKey:
    """Make a new random signing key with id ``kid`` (64 random bytes)."""
    return SigningKey(kid, secrets.token_bytes(SECRET_BYTES))


def _key_path(directory: Path, kid: str) -> Path:
    return directory / f"{validate_key_id(kid)}{KEY_SUFFIX}"


def _encode_secret(secret: bytes) -> bytes:
    return base64.urlsafe_b64encode(secret).rstrip(b"=") + b"\n"


def _load_key_file(path: Path, kid: str) -> SigningKey:
    text = read_private_file(path).strip()
    try:
        secret = base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{path} does not hold a base64 signing key") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise KeyFileError(
            f"{path} holds a key of {len(secret)} bytes; at least {MIN_SECRET_BYTES} are needed"
        )
    return SigningKey(kid, secret)


def save_signing_key(directory: str | os.PathLike[str], key: SigningKey) -> Path:
    """Write ``key`` to ``<directory>/<kid>.key`` (0600); refuse to overwrite an existing file."""
    path = _key_path(ensure_private_dir(directory), key.kid)
    try:
        return write_private_file(path, _encode_secret(key.secret))
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; not overwriting a signing key") from None


def load_signing_key(directory: str | os.PathLike[str], kid: str = "POOL") -> SigningKey:
    """Load the key ``<directory>/<kid>.key``; refuse a file group or others can read."""
    return _load_key_file(_key_path(Path(directory), kid), kid)


def load_or_create_signing_key(directory: str | os.PathLike[str], kid: str = "POOL") -> SigningKey:
    """Load ``<directory>/<kid>.key``, creating it (mode 0600, atomically) if it is missing.

    Two processes racing to create the key end up with the same key: the file is linked
    into place only if absent, and the loser loads the winner's file.
    """
    path = _key_path(ensure_private_dir(directory), kid)
    if path.exists():
        return _load_key_file(path, kid)
    key = generate_signing_key(kid)
    try:
        write_private_file(path, _encode_secret(key.secret))
    except FileExistsError:
        return _load_key_file(path, kid)
    return key


def load_signing_keys(directory: str | os.PathLike[str]) -> dict[str, SigningKey]:
    """Load every ``*.key`` file of ``directory`` as ``{kid: SigningKey}``.

    Raises:
        KeyFileError: the directory is missing, or any key file is unreadable or too open.
    """
    path = Path(directory)
    if not path.is_dir():
        raise KeyFileError(f"key directory {path} does not exist")
    keys: dict[str, SigningKey] = {}
    for entry in sorted(path.iterdir()):
        if entry.name.startswith(".") or not entry.name.endswith(KEY_SUFFIX):
            continue
        kid = entry.name[: -len(KEY_SUFFIX)]
        try:
            validate_key_id(kid)
        except GwmsError:
            raise KeyFileError(f"{entry}: file name is not a valid key id") from None
        keys[kid] = _load_key_file(entry, kid)
    return keys


def save_trust_domain(directory: str | os.PathLike[str], trust_domain: str) -> Path:
    """Record the pool's trust domain (the tokens' issuer) in ``<directory>/trust-domain``."""
    _validate_issuer(trust_domain)
    path = ensure_private_dir(directory) / TRUST_DOMAIN_FILE
    return write_private_file(path, trust_domain.encode() + b"\n", overwrite=True)


def load_trust_domain(directory: str | os.PathLike[str]) -> str | None:
    """The trust domain recorded in ``<directory>/trust-domain``, or None if there is none."""
    path = Path(directory) / TRUST_DOMAIN_FILE
    if not path.exists():
        return None
    text = path.read_text(encoding="utf-8").strip()
    _validate_issuer(text)
    return text


# --------------------------------------------------------------------------- token files


def write_token_file(path: str | os.PathLike[str], token: str, *, overwrite: bool = True) -> Path:
    """Write a token to ``path`` with mode 0600 (atomically; one line)."""
    return write_private_file(path, token.encode("ascii") + b"\n", overwrite=overwrite)


def read_token_file(path: str | os.PathLike[str]) -> str:
    """Read a token file written by :func:`write_token_file` (refused if group/others can read)."""
    data = read_private_file(path, max_bytes=MAX_TOKEN_LENGTH + 64)
    try:
        token = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise KeyFileError(f"{path} does not hold a token") from None
    if not token:
        raise KeyFileError(f"{path} is empty")
    return token


# --------------------------------------------------------------------------- issuing


def _validate_issuer(issuer: str) -> str:
    if not isinstance(issuer, str) or not issuer or len(issuer) > 255:
        raise GwmsError(f"invalid issuer {issuer!r}")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in issuer):
        raise GwmsError(f"invalid issuer {issuer!r}: no spaces or control characters")
    return issuer


def _to_epoch(now: datetime | float | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return now.timestamp()
    return float(now)


def _to_seconds(lifetime: timedelta | float) -> int:
    seconds = lifetime.total_seconds() if isinstance(lifetime, timedelta) else float(lifetime)
    if seconds <= 0:
        raise GwmsError(f"token lifetime must be positive, got {seconds:g} s")
    return int(seconds)


def _audience_set(audience: str | Iterable[str] | None) -> frozenset[str] | None:
    if audience is None:
        return None
    if isinstance(audience, str):
        return frozenset({audience})
    values = frozenset(audience)
    return values or None


def issue_token(
    key: SigningKey,
    *,
    issuer: str,
    subject: str,
    scopes: Iterable[str],
    lifetime: timedelta | float = DEFAULT_LIFETIME,
    audience: str | Iterable[str] | None = None,
    extra_claims: Mapping[str, Any] | None = None,
    now: datetime | float | None = None,
) -> str:
    """Sign a new token for ``subject`` with ``scopes``, valid for ``lifetime`` from ``now``.

    Args:
        key: the signing key; its id goes into the header as ``kid``.
        issuer: the pool's trust domain (``iss``).
        subject: the holder's identity ``user@domain`` (``sub``).
        scopes: scope names (``scope``, space separated).
        lifetime: a timedelta or seconds; default 24 hours.
        audience: optional service name(s) the token is for (``aud``).
        extra_claims: other claims to include; may not replace the registered ones.
        now: the issue time (aware datetime or epoch seconds); default the clock.

    Raises:
        GwmsError: an invalid subject, issuer, scope, lifetime or extra claim.
    """
    try:
        Identity.parse(subject)
    except InvalidIdentity as exc:
        raise GwmsError(f"cannot issue token: {exc}") from None
    _validate_issuer(issuer)
    scope_text = format_scopes(scopes)
    iat = int(_to_epoch(now))
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "scope": scope_text,
        "iat": iat,
        "nbf": iat,
        "exp": iat + _to_seconds(lifetime),
        "jti": secrets.token_hex(16),
    }
    aud = _audience_set(audience)
    if aud is not None:
        claims["aud"] = next(iter(aud)) if len(aud) == 1 else sorted(aud)
    for name, value in (extra_claims or {}).items():
        if name in REGISTERED_CLAIMS:
            raise GwmsError(f"extra claim {name!r} would replace a registered claim")
        claims[name] = value
    return jwt.encode(claims, key.secret, algorithm=ALGORITHM, headers={"kid": key.kid})


# --------------------------------------------------------------------------- verifying


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says."""

    subject: str
    issuer: str
    scopes: frozenset[str]
    issued_at: datetime
    expires_at: datetime
    key_id: str
    token_id: str
    audience: tuple[str, ...]
    extra: dict[str, Any]


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def _fmt(epoch: float) -> str:
    return _utc(epoch).strftime("%Y-%m-%d %H:%M:%SZ")


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(header, claims)`` of a token WITHOUT checking anything; for display only.

    Raises:
        TokenMalformed: the text is not a JWT.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise TokenMalformed("token is not a string of at most 8 KiB")
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise TokenMalformed(f"malformed token: {exc}") from None
    if not isinstance(claims, dict):
        raise TokenMalformed("malformed token: the payload is not a JSON object")
    return header, claims


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TokenMalformed(f"malformed token: claim {name!r} missing or not a number")
    return float(value)


def _string(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise TokenMalformed(f"malformed token: claim {name!r} missing or not a string")
    return value


#: how many verified tokens a verifier remembers (then it starts over)
SIGNATURE_CACHE_SIZE = 4096


def decode_signed(token: str, key: Any, algorithm: str, bad_signature: str) -> dict[str, Any]:
    """The claims of ``token`` once its signature verifies with ``key`` (``algorithm``
    only); no claim is checked here (callers check them and name what failed).

    Raises :class:`TokenBadSignature` (with the message ``bad_signature``) or
    :class:`TokenMalformed`. Shared by pool tokens and the log-push tokens.
    """
    try:
        return jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            options={
                "verify_signature": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
                "verify_sub": False,
                "verify_jti": False,
                "require": [],
            },
        )
    except jwt.InvalidSignatureError:
        raise TokenBadSignature(bad_signature) from None
    except jwt.PyJWTError as exc:
        raise TokenMalformed(f"malformed token: {exc}") from None


class TokenVerifier:
    """Checks pool tokens against a set of signing keys and accepted issuers.

    Args:
        keys: the signing keys by id (or a single key).
        issuer: the accepted issuer(s) (trust domains).
        leeway_seconds: clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
        audience: if given, the token's ``aud`` must name one of these; if None, a token
            that carries an ``aud`` is refused (it was meant for a particular service).
        clock: returns the current epoch seconds (injectable for tests).
    """

    def __init__(
        self,
        keys: Mapping[str, SigningKey] | SigningKey,
        issuer: str | Iterable[str],
        *,
        leeway_seconds: float = 60,
        audience: str | Iterable[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys: dict[str, SigningKey] = (
            {keys.kid: keys} if isinstance(keys, SigningKey) else dict(keys)
        )
        if not self._keys:
            raise GwmsError("a token verifier needs at least one signing key")
        issuers = frozenset({issuer}) if isinstance(issuer, str) else frozenset(issuer)
        if not issuers:
            raise GwmsError("a token verifier needs at least one accepted issuer")
        self._issuers = frozenset(_validate_issuer(i) for i in issuers)
        if leeway_seconds < 0:
            raise GwmsError("leeway_seconds must not be negative")
        self._leeway = float(leeway_seconds)
        self._audience = _audience_set(audience)
        self._clock = clock
        # Tokens whose signature already checked out: a service sees the same few tokens
        # thousands of times, and the signature check is most of the verification cost.
        # Claims (expiry, issuer, scopes) are still checked on every call.
        self._signature_ok: dict[str, tuple[dict[str, Any], str]] = {}

    @property
    def issuers(self) -> frozenset[str]:
        """The accepted issuers."""
        return self._issuers

    @property
    def key_ids(self) -> frozenset[str]:
        """The ids of the keys this verifier holds."""
        return frozenset(self._keys)

    def verify(self, token: str, required_scopes: Iterable[str] = ()) -> TokenClaims:
        """Verify ``token`` and return its claims; raise a :class:`TokenError` subclass if not.

        Checked in order: form, key id, signature, claim types, issuer, audience, expiry,
        not-before/issued-at (each with the leeway), then ``required_scopes``.
        """
        if isinstance(token, str):
            token = token.strip()
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise TokenMalformed("malformed token: empty or longer than 8 KiB")
        cached = self._signature_ok.get(token)
        if cached is not None:
            return self._check_claims(cached[0], cached[1], frozenset(required_scopes))
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenMalformed(f"malformed token: {exc}") from None
        if header.get("alg") != ALGORITHM:
            raise TokenMalformed(
                f"malformed token: algorithm {header.get('alg')!r} is not {ALGORITHM}"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenMalformed("malformed token: no key id (kid) in the header")
        key = self._keys.get(kid)
        if key is None:
            raise TokenUnknownKey(f"token signed with unknown key {kid!r}")
        claims = decode_signed(token, key.secret, ALGORITHM, f"token signature does not match key {kid!r}")
        verified = self._check_claims(claims, kid, frozenset(required_scopes))
        if len(self._signature_ok) >= SIGNATURE_CACHE_SIZE:
            self._signature_ok.clear()
        self._signature_ok[token] = (claims, kid)
        return verified

    def _check_claims(
        self, claims: dict[str, Any], kid: str, required: frozenset[str]
    ) -> TokenClaims:
        issuer = _string(claims, "iss")
        subject = _string(claims, "sub")
        token_id = _string(claims, "jti")
        scope_text = claims.get("scope", "")
        if not isinstance(scope_text, str):
            raise TokenMalformed("malformed token: claim 'scope' is not a string")
        try:
            scopes = parse_scopes(scope_text)
        except InvalidScope as exc:
            raise TokenMalformed(f"malformed token: {exc}") from None
        iat = _number(claims, "iat")
        nbf = _number(claims, "nbf") if "nbf" in claims else iat
        exp = _number(claims, "exp")
        if not Identity.is_valid(subject):
            raise TokenMalformed(f"malformed token: subject {subject!r} is not user@domain")

        if issuer not in self._issuers:
            raise TokenWrongIssuer(
                f"token issued by {issuer!r}; accepted: {', '.join(sorted(self._issuers))}"
            )

        aud_claim = claims.get("aud")
        if aud_claim is None:
            audience: tuple[str, ...] = ()
        elif isinstance(aud_claim, str):
            audience = (aud_claim,)
        elif isinstance(aud_claim, list) and all(isinstance(a, str) for a in aud_claim):
            audience = tuple(aud_claim)
        else:
            raise TokenMalformed("malformed token: claim 'aud' is not a string or list")
        if self._audience is None:
            if audience:
                raise TokenWrongAudience(
                    f"token is for {', '.join(audience)}; this service accepts no audience"
                )
        elif not self._audience.intersection(audience):
            raise TokenWrongAudience(
                f"token is for {', '.join(audience) or 'no audience'}; "
                f"this service is {', '.join(sorted(self._audience))}"
            )

        now = self._clock()
        if now >= exp + self._leeway:
            raise TokenExpired(f"token of {subject} expired at {_fmt(exp)}")
        if now + self._leeway < nbf:
            raise TokenNotYetValid(f"token of {subject} is not valid before {_fmt(nbf)}")
        if now + self._leeway < iat:
            raise TokenNotYetValid(f"token of {subject} was issued in the future ({_fmt(iat)})")

        missing = missing_scopes(scopes, required)
        if missing:
            raise TokenMissingScope(missing, subject=subject)

        return TokenClaims(
            subject=subject,
            issuer=issuer,
            scopes=scopes,
            issued_at=_utc(iat),
            expires_at=_utc(exp),
            key_id=kid,
            token_id=token_id,
            audience=audience,
            extra={k: v for k, v in claims.items() if k not in REGISTERED_CLAIMS},
        )
