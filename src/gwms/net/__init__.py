"""gwms.net: what every service and client shares to talk HTTP(S) + JSON.

- :func:`create_app` — the FastAPI app factory (error shape, body limit, /healthz, /metrics).
- :func:`require_scopes`, :class:`Identity` — bearer-token authentication for endpoints.
- :class:`ServiceServer` — run an app with uvicorn on a socket bound first (port 0 works).
- :class:`ServiceClient`, :class:`SyncServiceClient`, :class:`ServiceError` — clients
  with bounded, jittered retries and the server's error in the exception.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gwms.net.app import create_app
    from gwms.net.auth import AuthenticatedIdentity, Identity, require_scopes
    from gwms.net.client import ServiceClient, ServiceError, SyncServiceClient
    from gwms.net.errors import ApiError, error_body
    from gwms.net.retry import retry_delays
    from gwms.net.server import ServerError, ServiceServer

# Loaded on first use, so that clients (the CLI) do not import FastAPI and uvicorn.
_WHERE = {
    "create_app": "gwms.net.app",
    "AuthenticatedIdentity": "gwms.net.auth",
    "Identity": "gwms.net.auth",
    "require_scopes": "gwms.net.auth",
    "ServiceClient": "gwms.net.client",
    "ServiceError": "gwms.net.client",
    "SyncServiceClient": "gwms.net.client",
    "ApiError": "gwms.net.errors",
    "error_body": "gwms.net.errors",
    "retry_delays": "gwms.net.retry",
    "ServerError": "gwms.net.server",
    "ServiceServer": "gwms.net.server",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'gwms.net' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ApiError",
    "AuthenticatedIdentity",
    "Identity",
    "ServerError",
    "ServiceClient",
    "ServiceError",
    "ServiceServer",
    "SyncServiceClient",
    "create_app",
    "error_body",
    "require_scopes",
    "retry_delays",
    "serve",
]
