"""The pool client file: how ``gwms submit/q/status`` find a pool and prove who they are.

Whoever starts the services (``gwms up``) writes ``<DIR>/client.json`` (mode 0600) with
the service URLs, the CA file for TLS, and a token for the user. Commands find the pool
directory from ``--pool DIR``, then ``$GWMS_POOL``, then ``./gwms-data``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from gwms.errors import GwmsError

CLIENT_FILE = "client.json"
ENV_VAR = "GWMS_POOL"
DEFAULT_DIR = "gwms-data"


class PoolNotFound(GwmsError):
    """No usable client file where the commands looked."""


@dataclass(frozen=True)
class PoolClientInfo:
    """What a client needs to talk to a pool."""

    collector: str
    schedd: str | None = None
    token: str | None = None
    ca_file: str | None = None
    wms_collector: str | None = None
    web: str | None = None

    def require_schedd(self) -> str:
        if not self.schedd:
            raise PoolNotFound("the pool's client file names no schedd")
        return self.schedd


def pool_dir(explicit: str | os.PathLike[str] | None = None, *, cwd: Path | None = None) -> Path:
    """The pool directory: ``explicit``, else ``$GWMS_POOL``, else ``./gwms-data``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return (cwd or Path.cwd()) / DEFAULT_DIR


def write_client_file(directory: Path, info: PoolClientInfo) -> Path:
    """Write ``client.json`` atomically with 0600 permissions (it holds a token)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CLIENT_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({k: v for k, v in asdict(info).items() if v is not None}, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def load_client_file(explicit: str | os.PathLike[str] | None = None) -> PoolClientInfo:
    """Read the client file of the pool the user means, with a clear error if there is none."""
    directory = pool_dir(explicit)
    path = directory / CLIENT_FILE
    if not path.exists():
        raise PoolNotFound(
            f"no pool at {directory} (no {CLIENT_FILE})",
            hint=f"start one with `gwms up --data {directory}`, or point to one with --pool DIR or ${ENV_VAR}",
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PoolNotFound(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict) or "collector" not in data:
        raise PoolNotFound(f"{path} is not a gwms client file (no 'collector' URL)")
    known = set(PoolClientInfo.__dataclass_fields__)
    return PoolClientInfo(**{k: v for k, v in data.items() if k in known})
