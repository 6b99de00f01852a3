"""Where the log monitor keeps its data: one directory (``--data DIR``).

::

    DIR/index.sqlite        the log index (SQLite with FTS5)
    DIR/archive/archive.sqlite  each job's original and anonymized files (tar + zstd), 0600
    DIR/audit.log           accesses to originals (JSON lines, 0600)
    DIR/anon-keys/          anonymization keys, unless --key-dir names others
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gwms.monitor.archive import Archive
from gwms.monitor.audit import AuditLog
from gwms.monitor.index import LogIndex, open_index

__all__ = ["MonitorLayout"]


@dataclass(frozen=True)
class MonitorLayout:
    """The paths of a monitor data directory (nothing is touched until asked)."""

    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike[str]) -> MonitorLayout:
        """The layout of directory ``root``."""
        return cls(Path(root))

    @property
    def index_path(self) -> Path:
        """The SQLite index file."""
        return self.root / "index.sqlite"

    @property
    def archive_dir(self) -> Path:
        """The archive root."""
        return self.root / "archive"

    @property
    def audit_path(self) -> Path:
        """The audit log."""
        return self.root / "audit.log"

    @property
    def key_dir(self) -> Path:
        """The default anonymization key directory."""
        return self.root / "anon-keys"

    def open_index(self, *, create: bool = True) -> LogIndex:
        """Open (or create) the index."""
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        return open_index(self.index_path, create=create)

    def archive(self) -> Archive:
        """The archive."""
        return Archive(self.archive_dir)

    def audit(self) -> AuditLog:
        """The audit log."""
        return AuditLog(self.audit_path)
