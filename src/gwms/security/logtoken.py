"""Log-push tokens: what lets a glidein upload its own logs to the log monitor.

Glideins that are killed (walltime, preemption, ``kill -9``) never hand their
``.out``/``.err`` back to the factory. So the factory gives each glidein a token with
which it pushes checkpoints of its logs to the monitor while it runs
(:mod:`gwms.glidein.logpush`), and the monitor (:mod:`gwms.monitor.push`) accepts
uploads only under the log directory the token names.

A token is a JWT signed with the factory's own key (RS256 with its RSA key pair, or
EdDSA with an Ed25519 key), one per entry and pilot batch (cluster)::

    header  {"alg": "RS256", "kid": "<factory key id>", "typ": "JWT"}
    claims  {"iss": "<factory>", "sub": "user_<u>/glidein_<instance>/entry_<e>/job.<cluster>",
             "aud": "<the upload URL>", "iat", "nbf", "exp", "jti",
             "scope": "logs:push", "factory", "instance", "entry", "user", "cluster",
             "procs"?: <the batch's size: procs 0 .. procs-1>}

``aud`` is the monitor's upload URL (``https://monitor.example:8090/v1/push``), so a
token made for one monitor is refused by another. ``exp`` covers the pilot's time in
the queue and its walltime. The monitor holds the public keys of the factories it
accepts (several may push), by key id; the factory writes its public key next to its
private key as ``<key dir>/<kid>.pub.pem`` (:func:`write_public_key`) for that.

:class:`LogTokenMinter` (factory side) mints and caches tokens;
:class:`LogTokenVerifier` (monitor side) checks them and gives a :class:`LogGrant`.
Refusals are the pool tokens' errors (:class:`~gwms.security.tokens.TokenError`
subclasses: expired, bad signature, unknown key, wrong audience, malformed).
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from gwms.errors import GwmsError
from gwms.security.hybrid import RsaKeyPair
from gwms.security.keyfiles import KeyFileError, validate_key_id
from gwms.security.tokens import (
    MAX_TOKEN_LENGTH,
    TokenExpired,
    TokenMalformed,
    TokenNotYetValid,
    TokenUnknownKey,
    TokenWrongAudience,
    decode_signed,
)

__all__ = [
    "DEFAULT_QUEUE_MARGIN_S",
    "LOG_PUSH_SCOPE",
    "LOG_TOKEN_ENV",
    "LogGrant",
    "LogPushSettings",
    "LogTokenMinter",
    "LogTokenVerifier",
    "load_public_keys",
    "mint_log_token",
    "normalize_url",
    "public_key_path",
    "write_public_key",
]

#: The ``scope`` claim of a log-push token (no other token of the factory carries it).
LOG_PUSH_SCOPE = "logs:push"
#: The environment variable that carries the token to the glidein (never the command line).
LOG_TOKEN_ENV = "GLIDEIN_LOG_TOKEN"
#: Time a pilot may wait in the site's queue, added to its walltime for the token's expiry.
DEFAULT_QUEUE_MARGIN_S = 2 * 86400.0
#: Lifetime when the entry sets no walltime.
DEFAULT_LIFETIME_S = 7 * 86400.0
PUBLIC_KEY_SUFFIX = ".pub.pem"

#: Names that become directory names on the monitor (as the factory's own names).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_ALGORITHMS = {"RS256": rsa.RSAPublicKey, "EdDSA": ed25519.Ed25519PublicKey}

PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey
PrivateKey = RsaKeyPair | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def _safe_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        raise TokenMalformed(f"malformed token: {what} {value!r} is not a safe name")
    return value


def normalize_url(url: str) -> str:
    """The upload URL as tokens name it: no trailing ``/``; only ``http(s)://``."""
    text = url.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", text):
        raise GwmsError(f"log server URL {url!r} is not an http:// or https:// URL")
    return text


# --------------------------------------------------------------------------- the grant


@dataclass(frozen=True)
class LogGrant:
    """What a verified token allows: pushing the logs of one pilot batch.

    The logs go to ``user_<user>/glidein_<instance>/entry_<entry>/job.<cluster>.<proc>.*``
    (the factory's own client log layout), for ``proc`` below ``procs`` (None: any).
    """

    factory: str
    instance: str
    entry: str
    user: str
    cluster: int
    key_id: str
    token_id: str
    expires: float
    procs: int | None = None

    def allows_proc(self, proc: int) -> bool:
        """True if the batch has a pilot ``proc``."""
        return proc >= 0 and (self.procs is None or proc < self.procs)

    @property
    def directory(self) -> str:
        """``user_<user>/glidein_<instance>/entry_<entry>``: where the batch's logs go."""
        return f"user_{self.user}/glidein_{self.instance}/entry_{self.entry}"

    @property
    def subject(self) -> str:
        """The token's ``sub``: the directory and the batch."""
        return f"{self.directory}/job.{self.cluster}"


def _claims_of(grant_like: Mapping[str, Any]) -> LogGrant:
    """A :class:`LogGrant` from verified claims (types and names checked)."""
    cluster = grant_like.get("cluster")
    if isinstance(cluster, bool) or not isinstance(cluster, int) or cluster < 0:
        raise TokenMalformed(
            "malformed token: claim 'cluster' missing or not a non-negative integer"
        )
    procs = grant_like.get("procs")
    if procs is not None and (isinstance(procs, bool) or not isinstance(procs, int) or procs < 1):
        raise TokenMalformed("malformed token: claim 'procs' is not a positive integer")
    grant = LogGrant(
        factory=_safe_name(grant_like.get("factory"), "factory"),
        instance=_safe_name(grant_like.get("instance"), "instance"),
        entry=_safe_name(grant_like.get("entry"), "entry"),
        user=_safe_name(grant_like.get("user"), "user"),
        cluster=cluster,
        key_id=str(grant_like.get("_kid", "")),
        token_id=str(grant_like.get("jti", "")),
        expires=float(grant_like.get("exp", 0)),
        procs=procs,
    )
    if grant_like.get("sub") != grant.subject:
        raise TokenMalformed("malformed token: 'sub' does not match its claims")
    if grant_like.get("iss") != grant.factory:
        raise TokenMalformed("malformed token: 'iss' does not match its 'factory' claim")
    return grant


# --------------------------------------------------------------------------- minting


def _private(key: PrivateKey) -> tuple[str, Any, str]:
    """(algorithm, private key object, key id) of a signing key."""
    if isinstance(key, RsaKeyPair):
        return "RS256", key.private_key, key.kid
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256", key, ""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA", key, ""
    raise GwmsError(
        f"cannot sign log tokens with a {type(key).__name__}: use an RSA or Ed25519 key"
    )


def mint_log_token(
    key: PrivateKey,
    *,
    factory: str,
    instance: str,
    entry: str,
    user: str,
    cluster: int,
    audience: str,
    lifetime_s: float,
    procs: int | None = None,
    kid: str | None = None,
    now: float | None = None,
) -> str:
    """A signed log-push token for one pilot batch (see the module docstring).

    ``procs`` bounds the batch's proc ids (None: any); ``kid`` defaults to the key
    pair's id (required for a bare private key).
    """
    algorithm, private, own_kid = _private(key)
    kid = kid or own_kid
    validate_key_id(kid)
    for value, what in (
        (factory, "factory"),
        (instance, "instance"),
        (entry, "entry"),
        (user, "user"),
    ):
        try:
            _safe_name(value, what)
        except TokenMalformed:
            raise GwmsError(f"log token: {what} {value!r} is not a safe name") from None
    if isinstance(cluster, bool) or not isinstance(cluster, int) or cluster < 0:
        raise GwmsError(f"log token: cluster must be a non-negative integer, not {cluster!r}")
    if lifetime_s <= 0:
        raise GwmsError("log token: the lifetime must be positive")
    if procs is not None and (isinstance(procs, bool) or not isinstance(procs, int) or procs < 1):
        raise GwmsError(f"log token: procs must be a positive integer, not {procs!r}")
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": factory,
        "sub": f"user_{user}/glidein_{instance}/entry_{entry}/job.{cluster}",
        "aud": normalize_url(audience),
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(lifetime_s),
        "jti": secrets.token_hex(12),
        "scope": LOG_PUSH_SCOPE,
        "factory": factory,
        "instance": instance,
        "entry": entry,
        "user": user,
        "cluster": cluster,
    }
    if procs is not None:
        claims["procs"] = procs
    return jwt.encode(claims, private, algorithm=algorithm, headers={"kid": kid, "typ": "JWT"})


@dataclass(frozen=True)
class LogPushSettings:
    """What a glidein needs to push its logs: where, with which token, how often."""

    url: str
    token: str
    interval_s: float = 60.0
    ca_file: str | None = None


class LogTokenMinter:
    """The factory's log-token source: one token per (entry, user, cluster), cached.

    Args:
        key: the factory's signing key (its :class:`RsaKeyPair`, or an Ed25519 key with ``kid``).
        factory / instance: the factory's name and glidein instance name.
        url: the monitor's upload URL (the tokens' audience).
        lifetime_s: the tokens' lifetime; None: each entry's pilot walltime plus
            ``queue_margin_s`` (7 days when the entry sets no walltime).
        interval_s: how often glideins push a checkpoint.
        ca_file: the CA bundle's path on the worker node, for an ``https`` URL.
    """

    def __init__(
        self,
        key: PrivateKey,
        *,
        factory: str,
        instance: str,
        url: str,
        lifetime_s: float | None = None,
        queue_margin_s: float = DEFAULT_QUEUE_MARGIN_S,
        interval_s: float = 60.0,
        ca_file: str | None = None,
        kid: str | None = None,
        clock: Callable[[], float] = time.time,
        cache_size: int = 1024,
    ) -> None:
        self.key = key
        self.kid = kid
        _private(key)
        self.factory = factory
        self.instance = instance
        self.url = normalize_url(url)
        self.lifetime_s = lifetime_s
        self.queue_margin_s = queue_margin_s
        self.interval_s = interval_s
        self.ca_file = ca_file
        self.clock = clock
        self._cache: OrderedDict[tuple[str, str, int, int | None], tuple[str, float]] = (
            OrderedDict()
        )
        self._cache_size = max(1, cache_size)

    def lifetime_for(self, walltime_s: float | None) -> float:
        """A token's lifetime for an entry whose pilots run at most ``walltime_s`` (0/None: no limit)."""
        if self.lifetime_s is not None:
            return float(self.lifetime_s)
        if walltime_s:
            return float(walltime_s) + self.queue_margin_s
        return DEFAULT_LIFETIME_S

    def token(
        self,
        *,
        entry: str,
        user: str,
        cluster: int,
        walltime_s: float | None = None,
        procs: int | None = None,
    ) -> str:
        """The token of one pilot batch of ``procs`` pilots (a cached one while it has
        most of its life left)."""
        now = self.clock()
        key = (entry, user, cluster, procs)
        lifetime = self.lifetime_for(walltime_s)
        cached = self._cache.get(key)
        if cached is not None and cached[1] - now > 0.9 * lifetime:
            self._cache.move_to_end(key)
            return cached[0]
        token = mint_log_token(
            self.key,
            factory=self.factory,
            instance=self.instance,
            entry=entry,
            user=user,
            cluster=cluster,
            audience=self.url,
            lifetime_s=lifetime,
            procs=procs,
            kid=self.kid,
            now=now,
        )
        self._cache[key] = (token, now + lifetime)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return token

    def settings(
        self,
        *,
        entry: str,
        user: str,
        cluster: int,
        walltime_s: float | None = None,
        procs: int | None = None,
    ) -> LogPushSettings:
        """What one glidein of that batch is given."""
        return LogPushSettings(
            url=self.url,
            token=self.token(
                entry=entry, user=user, cluster=cluster, walltime_s=walltime_s, procs=procs
            ),
            interval_s=self.interval_s,
            ca_file=self.ca_file,
        )


def public_key_path(key_dir: str | os.PathLike[str], kid: str) -> Path:
    """Where the factory's public key for log tokens is written: ``<key_dir>/<kid>.pub.pem``."""
    return Path(key_dir) / f"{kid}{PUBLIC_KEY_SUFFIX}"


def write_public_key(key: RsaKeyPair, key_dir: str | os.PathLike[str]) -> Path:
    """Write the factory's public key (PEM) next to its private key, for the monitor's
    configuration; rewritten only when it changed. Returns its path."""
    path = public_key_path(key_dir, key.kid)
    pem = key.public_pem.encode()
    try:
        if path.read_bytes() == pem:
            return path
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(pem)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- verifying


def load_public_keys(items: Iterable[str | os.PathLike[str]]) -> dict[str, PublicKey]:
    """Public keys by key id from ``PATH`` or ``KID=PATH`` items (PEM files).

    Without ``KID=``, the id is the file name without ``.pub.pem`` / ``.pem``. A
    directory gives every ``*.pub.pem`` in it.
    """
    keys: dict[str, PublicKey] = {}
    for item in items:
        text = os.fspath(item)
        kid: str | None = None
        if "=" in text and not Path(text).exists():
            kid, _, text = text.partition("=")
        path = Path(text).expanduser()
        paths = sorted(path.glob(f"*{PUBLIC_KEY_SUFFIX}")) if path.is_dir() else [path]
        if path.is_dir() and not paths:
            raise KeyFileError(f"{path} holds no *{PUBLIC_KEY_SUFFIX} public keys")
        for p in paths:
            name = kid or p.name.removesuffix(PUBLIC_KEY_SUFFIX).removesuffix(".pem")
            try:
                validate_key_id(name)
            except KeyFileError:
                raise KeyFileError(f"{p}: {name!r} is not a usable key id (give KID={p})") from None
            try:
                key = serialization.load_pem_public_key(p.read_bytes())
            except OSError as exc:
                raise KeyFileError(
                    f"cannot read the public key {p}: {exc.strerror or exc}"
                ) from None
            except ValueError:
                raise KeyFileError(f"{p} is not a PEM public key") from None
            if not isinstance(key, (rsa.RSAPublicKey, ed25519.Ed25519PublicKey)):
                raise KeyFileError(f"{p}: only RSA and Ed25519 public keys sign log tokens")
            if name in keys:
                raise KeyFileError(f"two public keys have the id {name!r}")
            keys[name] = key
    return keys


class LogTokenVerifier:
    """Checks log-push tokens (the monitor side).

    Args:
        keys: the accepted factories' public keys by key id.
        audiences: the upload URL(s) of this monitor; a token must name one.
        leeway_seconds: clock skew tolerated on ``exp`` and ``nbf``.
    """

    def __init__(
        self,
        keys: Mapping[str, PublicKey],
        audiences: str | Iterable[str],
        *,
        leeway_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = dict(keys)
        if not self.keys:
            raise GwmsError("a log token verifier needs at least one factory public key")
        self.audiences = frozenset(
            normalize_url(a) for a in ([audiences] if isinstance(audiences, str) else audiences)
        )
        self.leeway = float(leeway_seconds)
        self.clock = clock

    def verify(self, token: str) -> LogGrant:
        """Verify ``token``: key id, algorithm, signature, audience, time, claims.

        Raises a :class:`~gwms.security.tokens.TokenError` subclass saying why not.
        """
        if isinstance(token, str):
            token = token.strip()
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise TokenMalformed("malformed token: empty or longer than 8 KiB")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenMalformed(f"malformed token: {exc}") from None
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenMalformed("malformed token: no key id (kid) in the header")
        key = self.keys.get(kid)
        if key is None:
            raise TokenUnknownKey(f"token signed with unknown key {kid!r}")
        algorithm = header.get("alg")
        expected = _ALGORITHMS.get(algorithm) if isinstance(algorithm, str) else None
        if expected is None or not isinstance(key, expected):
            raise TokenMalformed(
                f"malformed token: algorithm {algorithm!r} does not fit key {kid!r}"
            )
        claims = decode_signed(token, key, algorithm, "token signature does not verify")
        if not isinstance(claims, dict):
            raise TokenMalformed("malformed token: the payload is not a JSON object")
        if claims.get("scope") != LOG_PUSH_SCOPE:
            raise TokenMalformed(
                f"malformed token: not a log-push token (scope {LOG_PUSH_SCOPE!r})"
            )
        aud = claims.get("aud")
        if not isinstance(aud, str) or aud.rstrip("/") not in self.audiences:
            raise TokenWrongAudience(
                f"token is for {aud!r}; this log server is {', '.join(sorted(self.audiences))}"
            )
        now = self.clock()
        for name in ("exp", "nbf"):
            value = claims.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TokenMalformed(f"malformed token: claim {name!r} missing or not a number")
        if now >= claims["exp"] + self.leeway:
            raise TokenExpired("log token expired")
        if now + self.leeway < claims["nbf"]:
            raise TokenNotYetValid("log token not valid yet")
        return _claims_of({**claims, "_kid": kid})
