"""gwms.net: what every service and client shares to talk HTTP(S) + JSON.

- :func:`create_app` — the FastAPI app factory (error shape, body limit, /healthz, /metrics).
- :func:`require_scopes`, :class:`Identity` — bearer-token authentication for endpoints.
- :class:`ServiceServer` — run an app with uvicorn on a socket bound first (port 0 works).
- :class:`ServiceClient`, :class:`SyncServiceClient`, :class:`ServiceError` — clients
  with bounded, jittered retries and the server's error in the exception.
"""

from gwms.net.app import create_app
from gwms.net.auth import AuthenticatedIdentity, Identity, require_scopes
from gwms.net.client import ServiceClient, ServiceError, SyncServiceClient
from gwms.net.errors import ApiError, error_body
from gwms.net.retry import retry_delays
from gwms.net.server import ServerError, ServiceServer, serve

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
