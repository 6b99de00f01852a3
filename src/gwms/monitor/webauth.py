"""Who is looking at the log monitor: pool tokens, browser sessions, local users, anonymous viewers.

A request to the monitor (JSON API or HTML page) is identified, in this order, by:

1. ``Authorization: Bearer <pool token>`` (scripts, ``curl``);
2. the session cookie (:data:`COOKIE_NAME`, ``HttpOnly``, ``SameSite=Strict``) set by the
   login page, which holds either the pool token a user pasted (verified on every
   request, so it expires with the token) or, for a local password user, a session
   signed with the monitor's session key (``s.<payload>.<hmac>``, see
   :func:`make_session`);
3. the anonymous viewer, when the monitor runs with anonymous read-only access on: an
   :class:`~gwms.net.auth.Identity` named ``anonymous`` with ``READ`` only, so it sees
   anonymized logs and never an original.

Local users live in a JSON file (``DATA/users.json``, 0600) managed by
``gwms logs user add|remove|list``: each has a salted ``scrypt`` hash
(:func:`hash_password`) and the scopes it is given (``READ``; ``LOGS_ORIGINAL`` or
``ADMINISTRATOR`` to read originals).

Cross-site requests: cookies are ``SameSite=Strict`` (no browser sends them with a
request started by another site), every endpoint that reads with a cookie is a ``GET``
without side effects other than the audit record, and the two that change state
(``POST`` login and logout) also refuse a request whose ``Origin`` is another site.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request

from gwms.errors import GwmsError
from gwms.net.auth import Identity, bearer_token
from gwms.net.errors import ApiError
from gwms.security.scopes import READ, has_scopes, validate_scope
from gwms.security.tokens import TokenError, TokenMissingScope, TokenVerifier

__all__ = [
    "ANONYMOUS",
    "COOKIE_NAME",
    "SESSION_PREFIX",
    "UserError",
    "UserStore",
    "WebAccess",
    "app_access",
    "check_password",
    "hash_password",
    "identify",
    "load_or_create_session_key",
    "make_session",
    "read_session",
    "require_monitor_scopes",
    "same_origin",
]

#: The browser session cookie.
COOKIE_NAME = "gwms_monitor"
#: Cookie values starting with this are local sessions; anything else is a pool token.
SESSION_PREFIX = "s."
#: The name of the anonymous viewer.
ANONYMOUS = "anonymous"

# scrypt cost: 2**15 * 8 * 128 bytes = 32 MiB of memory and ~50-100 ms per check.
_SCRYPT_N = 2**15
_SCRYPT_R = 8
_SCRYPT_P = 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024


class UserError(GwmsError):
    """A local user cannot be added, removed or found (bad name, bad file)."""


# ----------------------------------------------------------------------------------
# passwords


def hash_password(
    password: str,
    *,
    salt: bytes | None = None,
    n: int = _SCRYPT_N,
    r: int = _SCRYPT_R,
    p: int = _SCRYPT_P,
) -> dict[str, Any]:
    """A salted scrypt hash of ``password`` as a JSON-ready record (algorithm, cost, salt, hash)."""
    if not password:
        raise UserError("a password cannot be empty")
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=32
    )
    return {
        "alg": "scrypt",
        "n": n,
        "r": r,
        "p": p,
        "salt": base64.b64encode(salt).decode("ascii"),
        "hash": base64.b64encode(digest).decode("ascii"),
    }


def check_password(record: dict[str, Any], password: str) -> bool:
    """True if ``password`` is the one ``record`` (from :func:`hash_password`) was made from."""
    try:
        if record.get("alg") != "scrypt":
            return False
        salt = base64.b64decode(record["salt"])
        want = base64.b64decode(record["hash"])
        got = hashlib.scrypt(
            password.encode("utf-8"),
            salt=salt,
            n=int(record["n"]),
            r=int(record["r"]),
            p=int(record["p"]),
            maxmem=_SCRYPT_MAXMEM,
            dklen=len(want),
        )
    except (KeyError, ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def _valid_user_name(name: str) -> str:
    if not (1 <= len(name) <= 64) or not all(c.isalnum() or c in "._-@" for c in name):
        raise UserError(f"invalid user name {name!r}: 1-64 letters, digits or '._-@'")
    return name


class UserStore:
    """Local password users in a JSON file (created 0600, replaced atomically)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read the user file {self.path}: {exc}") from None
        users = data.get("users") if isinstance(data, dict) else None
        if not isinstance(users, dict):
            raise UserError(f"the user file {self.path} has no 'users' object")
        return users

    def _save(self, users: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(
                {"format": "gwms-monitor-users/1", "users": users}, fh, indent=1, sort_keys=True
            )
            fh.write("\n")
        os.replace(tmp, self.path)

    def add(self, name: str, password: str, scopes: Iterable[str] = (READ,)) -> None:
        """Add ``name`` (or replace its password and scopes)."""
        _valid_user_name(name)
        granted = sorted({validate_scope(s) for s in scopes})
        if not granted:
            raise UserError("a user needs at least one scope (e.g. READ)")
        record = hash_password(password)
        record["scopes"] = granted
        with self._lock:
            users = self._load()
            users[name] = record
            self._save(users)

    def remove(self, name: str) -> None:
        """Remove ``name`` (:class:`UserError` if there is no such user)."""
        with self._lock:
            users = self._load()
            if name not in users:
                raise UserError(f"no user {name!r} in {self.path}")
            del users[name]
            self._save(users)

    def list(self) -> dict[str, list[str]]:
        """Each user's scopes."""
        return {name: list(rec.get("scopes", [])) for name, rec in sorted(self._load().items())}

    def authenticate(self, name: str, password: str) -> frozenset[str] | None:
        """The scopes of ``name`` if ``password`` is right, else None (same time either way)."""
        try:
            record = self._load().get(name)
        except UserError:
            return None
        if record is None:
            # spend the same time as a real check so names cannot be probed by timing
            check_password(_DUMMY_RECORD, password)
            return None
        if not check_password(record, password):
            return None
        return frozenset(record.get("scopes", []))

    def __bool__(self) -> bool:
        try:
            return bool(self._load())
        except UserError:
            return False


_DUMMY_RECORD = {
    "alg": "scrypt",
    "n": _SCRYPT_N,
    "r": _SCRYPT_R,
    "p": _SCRYPT_P,
    "salt": base64.b64encode(b"\0" * 16).decode(),
    "hash": base64.b64encode(b"\0" * 32).decode(),
}


# ----------------------------------------------------------------------------------
# signed sessions (local users)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_session(key: bytes, name: str, scopes: Iterable[str], *, expires: float) -> str:
    """A session cookie value for a local user: ``s.<payload>.<HMAC-SHA256>``."""
    payload = json.dumps(
        {"sub": name, "scope": sorted(scopes), "exp": int(expires), "jti": secrets.token_hex(8)},
        separators=(",", ":"),
    ).encode()
    body = SESSION_PREFIX + _b64(payload)
    mac = hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def read_session(key: bytes, value: str, *, now: float | None = None) -> Identity | None:
    """The identity a session cookie holds, or None if it is forged, damaged or expired."""
    if not value.startswith(SESSION_PREFIX):
        return None
    body, _, mac_text = value.rpartition(".")
    try:
        mac = _unb64(mac_text)
        want = hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(mac, want):
            return None
        payload = json.loads(_unb64(body[len(SESSION_PREFIX) :]))
        name, scopes, exp = payload["sub"], payload["scope"], payload["exp"]
    except (ValueError, KeyError, TypeError, UnicodeError):
        return None
    if not isinstance(name, str) or not isinstance(scopes, list) or not isinstance(exp, int):
        return None
    if exp <= (time.time() if now is None else now):
        return None
    return Identity(
        name=f"local:{name}",
        scopes=frozenset(str(s) for s in scopes),
        token_id=str(payload.get("jti")) if payload.get("jti") else None,
    )


def load_or_create_session_key(path: str | os.PathLike[str]) -> bytes:
    """The monitor's session signing key at ``path`` (32 random bytes, made 0600 if missing)."""
    p = Path(path)
    try:
        data = p.read_bytes()
        if len(data) >= 32:
            return data
    except FileNotFoundError:
        pass
    p.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


# ----------------------------------------------------------------------------------
# identifying a request


@dataclass
class WebAccess:
    """How the monitor admits browsers.

    Args:
        anonymous: let visitors without credentials read anonymized logs (READ only).
        users: local password users (None: token login only).
        session_key: signs local users' sessions (default: random, so they end with the process).
        session_seconds: how long a local user's session lasts.
    """

    anonymous: bool = False
    users: UserStore | None = None
    session_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    session_seconds: int = 8 * 3600


_DEFAULT_ACCESS = WebAccess()


def app_access(request: Request) -> WebAccess:
    """The :class:`WebAccess` of the app serving ``request`` (``app.state.monitor_access``;
    token access only when it has none)."""
    access = getattr(request.app.state, "monitor_access", None)
    return access if isinstance(access, WebAccess) else _DEFAULT_ACCESS


def identify(
    request: Request, verifier: TokenVerifier | None, access: WebAccess
) -> Identity | None:
    """Who made ``request`` (see the module docstring), or None if nobody can be told.

    Raises :class:`~gwms.net.errors.ApiError` 401 for a bearer token or cookie that is
    present but invalid (expired, forged): a stale login is said to be one, not
    silently turned into the anonymous viewer.
    """
    token = bearer_token(request)
    source = "token"
    if token is None:
        cookie = request.cookies.get(COOKIE_NAME)
        if cookie:
            if cookie.startswith(SESSION_PREFIX):
                who = read_session(access.session_key, cookie)
                if who is None:
                    raise ApiError(
                        401, "session_expired", "your session has expired: sign in again"
                    )
                return who
            token, source = cookie, "cookie"
    if token is not None:
        if verifier is None:
            raise ApiError(
                500, "auth_not_configured", "this service has no token verifier configured"
            )
        try:
            claims = verifier.verify(token)
        except TokenError as exc:
            what = "the token you signed in with" if source == "cookie" else "the bearer token"
            raise ApiError(401, "unauthorized", f"{what} is not accepted: {exc}") from None
        return Identity.from_claims(claims)
    if access.anonymous:
        return Identity(name=ANONYMOUS, scopes=frozenset({READ}))
    return None


def require_monitor_scopes(*scopes: str) -> Callable[[Request], Awaitable[Identity]]:
    """A FastAPI dependency like :func:`gwms.net.auth.require_scopes` that also admits the
    monitor's session cookie and, when enabled, the anonymous viewer."""
    required = tuple(validate_scope(s) for s in scopes)
    challenge = {"WWW-Authenticate": 'Bearer realm="gwms"'}

    async def authenticate(request: Request) -> Identity:
        verifier = getattr(request.app.state, "verifier", None)
        who = identify(request, verifier, app_access(request))
        if who is None:
            raise ApiError(
                401,
                "unauthorized",
                "missing bearer token (send 'Authorization: Bearer <token>')",
                headers=challenge,
            )
        if not has_scopes(who.scopes, required):
            missing = TokenMissingScope(set(required) - set(who.scopes), subject=who.name)
            raise ApiError(403, "forbidden", str(missing), headers=challenge)
        request.state.identity = who
        return who

    authenticate.__qualname__ = f"require_monitor_scopes({', '.join(required)})"
    return authenticate


def same_origin(request: Request) -> bool:
    """False if the request says it comes from another site (``Origin`` or ``Sec-Fetch-Site``)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/") == host
