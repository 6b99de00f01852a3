"""How operator commands reach a running service: its URL from ``DIR/<service>/endpoint.json``
(written by ``gwms <service> run``) unless given, and a token.

The token is, in order: ``--token FILE``; one minted from ``DIR/keys`` (the pool's signing
key, when the command runs beside the service) with the scope the command needs; the
client file's token (``DIR/client.json``); none. A CA at ``DIR/ca/ca.pem`` verifies HTTPS.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gwms.errors import GwmsError

#: The file ``gwms <service> run`` writes into ``DIR/<service>/`` with its URL.
ENDPOINT_FILE = "endpoint.json"


def data_dir(explicit: Path | None) -> Path:
    """``--data`` if given, else the pool directory ($GWMS_POOL, then ./gwms-data)."""
    from gwms.pool.clientfile import pool_dir

    return Path(explicit) if explicit else pool_dir(None)


def service_url(service: str, data: Path) -> str:
    """The URL a running ``gwms <service> run`` recorded under ``data``."""
    endpoint = data / service / ENDPOINT_FILE
    try:
        return str(json.loads(endpoint.read_text())["url"])
    except (OSError, ValueError, KeyError):
        raise GwmsError(f"no running {service} found ({endpoint} is missing)",
                        hint=f"give --{service} URL, or --data DIR of `gwms {service} run`") from None


def service_client(service: str, url: str | None, data: Path | None, token_file: Path | None,
                   scope: str) -> Any:
    """A :class:`~gwms.net.SyncServiceClient` for ``service`` (see the module docstring);
    ``scope`` is what a minted token carries."""
    from gwms.net import SyncServiceClient
    from gwms.security.tokens import read_token_file

    data = data_dir(data)
    url = url or service_url(service, data)
    token: str | None = None
    if token_file:
        token = read_token_file(token_file)
    elif (data / "keys").is_dir():
        from gwms.security.layout import SecurityLayout

        token = SecurityLayout(data).mint_token("admin", [scope])
    else:
        from gwms.pool.clientfile import load_client_file

        try:
            token = load_client_file(str(data)).token
        except GwmsError:
            token = None
    ca = data / "ca" / "ca.pem"
    verify: bool | str = str(ca) if ca.exists() else True
    return SyncServiceClient(url, token=token, verify=verify, service=service, timeout=30)
