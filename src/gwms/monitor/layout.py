"""Where the log monitor keeps its data: one directory (``--data DIR``).

::

    DIR/index.sqlite        the log index (SQLite with FTS5), unless another is named:
    DIR/monitor.yaml        the monitor's settings: ``index: postgresql://...`` puts the
                            index in PostgreSQL (``--index URL`` does too, and wins)
    DIR/archive/archive.sqlite  each job's original and anonymized files (tar + zstd), 0600
    DIR/audit.log           accesses to originals (JSON lines, 0600)
    DIR/anon-keys/          anonymization keys, unless --key-dir names others
    DIR/push/client/...     logs pushed by running glideins (the factory's client layout)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from gwms.monitor.archive import Archive
from gwms.monitor.audit import AuditLog
from gwms.monitor.index import LogIndex, LogIndexError, open_index

__all__ = ["MonitorLayout"]


@dataclass(frozen=True)
class MonitorLayout:
    """The paths of a monitor data directory (nothing is touched until asked)."""

    root: Path
    #: the index's URL when given (``--index``); else :attr:`index_url` reads the settings
    index: str | None = None

    @classmethod
    def at(cls, root: str | os.PathLike[str], index: str | None = None) -> MonitorLayout:
        """The layout of directory ``root`` (``index``: the index URL, if not the default)."""
        return cls(Path(root), index or None)

    @property
    def config_path(self) -> Path:
        """The monitor's settings file (optional)."""
        return self.root / "monitor.yaml"

    @property
    def index_url(self) -> str:
        """Where the index is: the URL given, else ``index:`` of ``monitor.yaml``, else
        ``DIR/index.sqlite``."""
        if self.index:
            return self.index
        if self.config_path.exists():
            try:
                settings = yaml.safe_load(self.config_path.read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise LogIndexError(f"cannot read {self.config_path}: {exc}") from None
            if not isinstance(settings, dict):
                raise LogIndexError(f"{self.config_path}: expected a mapping of settings")
            url = settings.get("index")
            if url is not None:
                if not isinstance(url, str) or not url.strip():
                    raise LogIndexError(f"{self.config_path}: 'index' must be a URL or a path")
                return url.strip()
        return str(self.index_path)

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
    def push_dir(self) -> Path:
        """The tree of logs pushed by glideins (``gwms.monitor.push``)."""
        return self.root / "push"

    @property
    def key_dir(self) -> Path:
        """The default anonymization key directory."""
        return self.root / "anon-keys"

    def open_index(self, *, create: bool = True) -> LogIndex:
        """Open (or create) the index."""
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        return open_index(self.index_url, create=create)

    def archive(self) -> Archive:
        """The archive."""
        return Archive(self.archive_dir)

    def audit(self) -> AuditLog:
        """The audit log."""
        return AuditLog(self.audit_path)
