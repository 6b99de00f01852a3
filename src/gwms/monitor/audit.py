"""The audit log of accesses to original (not anonymized) glidein logs.

Every time someone reads an original through the API or ``gwms logs show --original``,
one JSON line is appended *before* the data is handed out (if the record cannot be
written, the access is refused)::

    {"time": "2024-05-01T12:00:00.123Z", "epoch": 1714564800.123, "who": "alice@pool.example",
     "token_id": "...", "action": "section", "job": "1852...", "path": "user_fe/.../job.1.0",
     "section": "StartdLog", "client": "127.0.0.1"}

The file is created 0600 and only ever appended to (``O_APPEND``, one ``write`` per
record, flushed to disk), so concurrent writers do not interleave records.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gwms.errors import GwmsError

__all__ = ["AuditError", "AuditLog"]


class AuditError(GwmsError):
    """The audit log cannot be written: the access it would record is refused."""

    http_status = 503


class AuditLog:
    """Append-only JSON-lines audit log at ``path``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def record(
        self,
        *,
        who: str,
        action: str,
        job: str | None = None,
        path: str | None = None,
        section: str | None = None,
        token_id: str | None = None,
        client: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Append one record and make it durable; the record written."""
        now = time.time()
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(now, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "epoch": round(now, 3),
            "who": who,
            "token_id": token_id,
            "action": action,
            "job": job,
            "path": path,
            "section": section,
            "client": client,
        }
        entry.update(extra)
        line = (json.dumps(entry, separators=(",", ":"), sort_keys=False) + "\n").encode()
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise AuditError(
                    f"cannot write the audit log {self.path}: {exc.strerror or exc}"
                ) from None
        return entry

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record, oldest first (lines that do not parse are skipped)."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue
        except FileNotFoundError:
            return
