"""Bearer-token authentication for service endpoints.

``require_scopes(*scopes)`` is a FastAPI dependency. It reads
``Authorization: Bearer <token>``, verifies the token with the app's
:class:`~gwms.security.tokens.TokenVerifier` (``app.state.verifier``) and gives the
handler an :class:`Identity` built only from the verified token — never from
anything else in the request::

    @app.post("/ads")
    async def advertise(ad: Ad, who: Identity = Depends(require_scopes(ADVERTISE_STARTD))):
        ...

A missing or invalid token is 401 (with ``WWW-Authenticate: Bearer``); a valid
token without the scopes is 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from gwms.net.errors import ApiError
from gwms.security.scopes import validate_scope
from gwms.security.tokens import TokenClaims, TokenError, TokenMissingScope, TokenVerifier

_REALM = "gwms"


@dataclass(frozen=True)
class Identity:
    """Who made a request, as a verified token says.

    ``name`` is the token's subject (``user@domain``), ``scopes`` what it grants,
    ``token_id`` its unique id (``jti``) and ``claims`` all verified claims.
    """

    name: str
    scopes: frozenset[str]
    token_id: str | None = None
    claims: TokenClaims | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_claims(cls, claims: TokenClaims) -> Identity:
        """The identity a verified token gives."""
        return cls(
            name=claims.subject,
            scopes=frozenset(claims.scopes),
            token_id=claims.token_id,
            claims=claims,
        )


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None if there is none."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _challenge(error: str | None = None, scopes: tuple[str, ...] = ()) -> dict[str, str]:
    parts = [f'Bearer realm="{_REALM}"']
    if error:
        parts.append(f'error="{error}"')
    if scopes:
        parts.append(f'scope="{" ".join(scopes)}"')
    return {"WWW-Authenticate": ", ".join(parts)}


def require_scopes(*scopes: str) -> Callable[[Request], Awaitable[Identity]]:
    """A FastAPI dependency that admits a request with a valid token holding ``scopes``.

    With no scopes, any valid token is admitted. ADMINISTRATOR grants every scope.
    """
    required = tuple(validate_scope(scope) for scope in scopes)

    async def authenticate(request: Request) -> Identity:
        verifier: TokenVerifier | None = getattr(request.app.state, "verifier", None)
        if verifier is None:
            raise ApiError(
                500, "auth_not_configured", "this service has no token verifier configured"
            )
        token = bearer_token(request)
        if token is None:
            raise ApiError(
                401,
                "unauthorized",
                "missing bearer token (send 'Authorization: Bearer <token>')",
                headers=_challenge(scopes=required),
            )
        try:
            claims = verifier.verify(token, required_scopes=required)
        except TokenMissingScope as exc:
            raise ApiError(
                403,
                "forbidden",
                str(exc),
                headers=_challenge("insufficient_scope", required),
            ) from None
        except TokenError as exc:
            raise ApiError(
                401, "unauthorized", str(exc), headers=_challenge("invalid_token", required)
            ) from None
        identity = Identity.from_claims(claims)
        request.state.identity = identity
        return identity

    authenticate.__qualname__ = f"require_scopes({', '.join(required)})"
    return authenticate


AuthenticatedIdentity = Annotated[Identity, Depends(require_scopes())]
"""A handler parameter for any request with a valid token: ``who: AuthenticatedIdentity``."""


def identity_of(request: Request) -> Identity | None:
    """The :class:`Identity` a ``require_scopes`` dependency stored on the request, or None."""
    identity = getattr(request.state, "identity", None)
    return identity if isinstance(identity, Identity) else None
