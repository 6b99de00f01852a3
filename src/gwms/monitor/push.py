"""The log server: glideins push their logs here while they run (``PUT /v1/push/...``).

::

    PUT /v1/push/{entry}/{glidein}/{name}     body: the file (application/octet-stream)

``glidein`` is ``job.<cluster>.<proc>`` and ``name`` one of its files,
``job.<cluster>.<proc>.out`` or ``.err``. The bearer token is a log-push token of the
factory (:mod:`gwms.security.logtoken`), checked against the factories' public keys the
monitor was given: signature, audience (this server's upload URL), expiry; its entry
must be the path's and its cluster the glidein's. A request is refused with

- 401: no token, or a bad one (tampered, expired, another server's, unknown key);
- 403: a token for another entry or another pilot batch;
- 400: a name outside the glidein's own files (``..``, ``/``, other kinds);
- 413: a body larger than the limit (counted as it streams in; nothing is kept).

An accepted file is written atomically (a temporary file, then a rename) at
``<push root>/client/user_<user>/glidein_<instance>/entry_<entry>/<name>``: the
factory's client log layout, which the indexer walks like the factory's tree and
marks ``source = push`` (:class:`gwms.monitor.indexer.Indexer`); a copy the factory
delivers later supersedes it. The answer is ``201 {"path", "bytes", "source": "push"}``.

:func:`prune_pushed` (run by ``gwms logs index`` after each pass) removes pushed files
whose job the factory delivered finished, and pushed files older than the retention age.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from gwms.security.logtoken import LogGrant, LogTokenVerifier
from gwms.monitor.index import LogIndex
from gwms.net.auth import bearer_token
from gwms.net.errors import ApiError
from gwms.security.tokens import TokenError

__all__ = [
    "DEFAULT_MAX_PUSH_BYTES",
    "PUSH_PREFIX",
    "PushReceiver",
    "PushTarget",
    "mount_push",
    "prune_pushed",
    "push_target",
]

#: Where the upload URLs start (the tokens' audience is ``<server>/v1/push``).
PUSH_PREFIX = "/v1/push"
#: The largest file accepted by default.
DEFAULT_MAX_PUSH_BYTES = 64 * 1024 * 1024

_GLIDEIN = re.compile(r"job\.([0-9]{1,18})\.([0-9]{1,9})")
_KINDS = (".out", ".err")


@dataclass(frozen=True)
class PushTarget:
    """Where an accepted upload goes, relative to the push tree's ``client`` directory."""

    directory: str
    name: str

    @property
    def relative(self) -> str:
        """``user_<u>/glidein_<i>/entry_<e>/job.C.P.out``."""
        return f"{self.directory}/{self.name}"


def push_target(grant: LogGrant, entry: str, glidein: str, name: str) -> PushTarget:
    """Decide where an upload goes, or refuse it (pure: no I/O).

    Raises :class:`~gwms.net.errors.ApiError`: 403 when the token is for another entry or
    batch, 400 when ``glidein`` or ``name`` is not one of the glidein's own files.
    """
    if entry != grant.entry:
        raise ApiError(403, "wrong_entry", f"the token is for entry {grant.entry!r}, not {entry!r}")
    m = _GLIDEIN.fullmatch(glidein)
    if m is None:
        raise ApiError(
            400, "bad_glidein", f"{glidein!r} is not a glidein id (job.<cluster>.<proc>)"
        )
    if int(m.group(1)) != grant.cluster or not grant.allows_proc(int(m.group(2))):
        raise ApiError(
            403,
            "wrong_batch",
            f"the token is for the pilots of cluster {grant.cluster}"
            + (f" (procs 0-{grant.procs - 1})" if grant.procs is not None else "")
            + f", not {glidein}",
        )
    allowed = [glidein + kind for kind in _KINDS]
    if name not in allowed:
        raise ApiError(
            400,
            "bad_name",
            f"{name!r} is not a file of {glidein} (accepted: {', '.join(allowed)})",
        )
    return PushTarget(grant.directory, name)


class PushReceiver:
    """Verifies and stores pushed logs under ``root`` (the monitor's ``DATA/push``).

    Args:
        root: the push tree (``client/`` is made under it).
        verifier: checks the log-push tokens (its audiences may be set after the server binds).
        max_bytes: the largest file accepted (413 above).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        verifier: LogTokenVerifier,
        *,
        max_bytes: int = DEFAULT_MAX_PUSH_BYTES,
    ) -> None:
        self.root = Path(root)
        self.client_dir = self.root / "client"
        self.verifier = verifier
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = int(max_bytes)

    def authorize(self, request: Request) -> LogGrant:
        """The grant of the request's bearer token (401 when there is none or it is refused)."""
        token = bearer_token(request)
        challenge = {"WWW-Authenticate": 'Bearer realm="gwms-logs"'}
        if token is None:
            raise ApiError(
                401, "unauthorized", "missing bearer token (a log-push token)", headers=challenge
            )
        try:
            return self.verifier.verify(token)
        except TokenError as exc:
            raise ApiError(401, "unauthorized", str(exc), headers=challenge) from None

    async def receive(self, request: Request, target: PushTarget) -> int:
        """Stream the body to a temporary file next to the target, then rename it into place.

        Returns the size; 413 (nothing kept) when the body passes :attr:`max_bytes`.
        """
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise ApiError(
                413,
                "body_too_large",
                f"{target.name} is larger than the limit of {self.max_bytes} bytes",
            )
        directory = self.client_dir / target.directory
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=directory)
        size = 0
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise ApiError(
                            413,
                            "body_too_large",
                            f"{target.name} is larger than the limit of {self.max_bytes} bytes",
                        )
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o640)
            os.replace(tmp, directory / target.name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return size


def mount_push(app: FastAPI, receiver: PushReceiver) -> None:
    """Add ``PUT /v1/push/{entry}/{glidein}/{name}`` to ``app``."""
    app.state.push = receiver

    @app.put(
        PUSH_PREFIX + "/{entry}/{glidein}/{name:path}",
        status_code=201,
        tags=["push"],
        summary="A glidein pushes one of its log files (log-push token)",
        responses={
            400: {"description": "not one of the glidein's files"},
            401: {"description": "no token, or a refused one"},
            403: {"description": "a token for another entry or batch"},
            413: {"description": "larger than the limit"},
        },
    )
    async def push_file(entry: str, glidein: str, name: str, request: Request) -> JSONResponse:
        grant = receiver.authorize(request)
        target = push_target(grant, entry, glidein, name)
        size = await receiver.receive(request, target)
        body: dict[str, Any] = {"path": target.relative, "bytes": size, "source": "push"}
        return JSONResponse(body, status_code=201)


def prune_pushed(
    root: str | os.PathLike[str],
    index: LogIndex,
    *,
    now: float,
    max_age_seconds: float | None = None,
) -> int:
    """Remove pushed files that are no longer needed; how many jobs' files went.

    A job's pushed files go when the index holds the factory's copy of it, finished (it
    superseded them), or when their newest file is older than ``max_age_seconds`` (the
    retention age: the index and archive keep what was indexed of them).
    """
    from gwms.monitor.indexer import scan_tree

    root = Path(root)
    if not root.is_dir():
        return 0
    removed = 0
    for found in scan_tree(root, origin="push"):
        row = index.job_by_path(found.path)
        superseded = row is not None and row.info.source == "factory" and row.info.finished
        newest = max(s.mtime_ns for s in (found.out, found.err) if s is not None) / 1e9
        expired = max_age_seconds is not None and newest < now - max_age_seconds
        if not (superseded or expired):
            continue
        for path in (found.out_path, found.err_path):
            path.unlink(missing_ok=True)
        removed += 1
    return removed
