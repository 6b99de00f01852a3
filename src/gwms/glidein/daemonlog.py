"""The agent's daemon logs: HTCondor-style text files plus one JSON-lines log.

Text lines read ``MM/DD/YY HH:MM:SS message`` in local time, as HTCondor's daemons
write them; the glidein embeds the files (StartdLog, StarterLog, StarterLog.slotN) in its
``.err`` and the log monitor decodes them. Every record also goes, with its fields, to
``StartdEvents.jsonl`` as ``{"invoker", "pid", "timestamp", "severity", "type",
"filename", "content", ...}`` (the structured-logging shape of the glidein).

Files are opened in append mode and written a whole line per ``write`` call, so lines
from several threads never interleave; a file past ``max_bytes`` is renamed to
``<name>.old`` and started again.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

STARTD_LOG = "StartdLog"
STARTER_LOG = "StarterLog"
EVENTS_LOG = "StartdEvents.jsonl"

#: A daemon log line: date, time, optional ``(pid:N)``, message.
LINE_RE = re.compile(r"^(\d\d)/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d) (?:\(pid:(\d+)\) )?(.*)$")


def format_line(timestamp: float, message: str) -> str:
    """Daemon log text for one message: a ``MM/DD/YY HH:MM:SS message`` line per line of it."""
    stamp = time.strftime("%m/%d/%y %H:%M:%S", time.localtime(timestamp))
    lines = message.splitlines() or [""]
    return "".join(f"{stamp} {line}\n" for line in lines)


def parse_line(line: str) -> tuple[datetime, str] | None:
    """The local time and message of a daemon log line, or None if it is not one."""
    m = LINE_RE.match(line.rstrip("\n"))
    if m is None:
        return None
    month, day, year, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        when = datetime(2000 + year, month, day, hour, minute, second)
    except ValueError:
        return None
    return when, m.group(8)


class LogFile:
    """One append-only log file with size-based rotation to ``<name>.old``."""

    def __init__(self, path: Path, *, max_bytes: int = 10 * 1024 * 1024) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._fd = -1
        self._size = 0

    def _open(self) -> None:
        self._fd = os.open(str(self.path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size

    def write(self, text: str) -> None:
        """Append ``text`` (whole lines) in one write."""
        data = text.encode("utf-8", "replace")
        with self._lock:
            if self._fd < 0:
                self._open()
            if self.max_bytes and self._size + len(data) > self.max_bytes and self._size > 0:
                os.close(self._fd)
                os.replace(str(self.path), str(self.path) + ".old")
                self._open()
            os.write(self._fd, data)
            self._size += len(data)

    def close(self) -> None:
        """Close the file (a later write opens it again)."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


class DaemonLogs:
    """The agent's log directory: StartdLog, StarterLog, StarterLog.<slot> and the JSON log.

    Without a directory, records go nowhere (tests and ``--log-dir`` unset still work).
    ``echo`` receives every StartdLog line too (the CLI prints them on stderr).
    """

    def __init__(
        self,
        log_dir: Path | None,
        *,
        invoker: str = "startd",
        clock: Callable[[], float] = time.time,
        max_bytes: int = 10 * 1024 * 1024,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.log_dir = log_dir
        self.invoker = invoker
        self.clock = clock
        self.max_bytes = max_bytes
        self.echo = echo
        self.pid = os.getpid()
        self._files: dict[str, LogFile] = {}
        self._lock = threading.Lock()
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)

    def _file(self, name: str) -> LogFile | None:
        if self.log_dir is None:
            return None
        f = self._files.get(name)
        if f is None:
            with self._lock:
                f = self._files.get(name)
                if f is None:
                    f = LogFile(self.log_dir / name, max_bytes=self.max_bytes)
                    self._files[name] = f
        return f

    def write(
        self,
        filename: str,
        message: str,
        *,
        severity: str = "info",
        type: str = "log",
        structured: bool = True,
        **fields: Any,
    ) -> None:
        """Write one record to the text log ``filename`` and (``structured``) to the JSON-lines log."""
        now = self.clock()
        text = format_line(now, message if severity == "info" else f"{severity.upper()}: {message}")
        f = self._file(filename)
        if f is not None:
            f.write(text)
        if self.echo is not None and filename == STARTD_LOG:
            self.echo(text.rstrip("\n"))
        events = self._file(EVENTS_LOG) if structured else None
        if events is not None:
            record = {
                "invoker": self.invoker,
                "pid": self.pid,
                # timezone.utc, not datetime.UTC: the agent runs on Python 3.9
                "timestamp": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds"),  # noqa: UP017
                "severity": severity,
                "type": type,
                "filename": filename,
                "content": message,
            }
            record.update(fields)
            events.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")

    def startd(self, message: str, **kw: Any) -> None:
        """A StartdLog record."""
        self.write(STARTD_LOG, message, **kw)

    def starter(self, slot: str, message: str, **kw: Any) -> None:
        """A record of the starter of ``slot`` (short name, e.g. ``slot1_1``): StarterLog.<slot>."""
        self.write(f"{STARTER_LOG}.{slot}", message, **kw)

    def starter_summary(self, message: str, **kw: Any) -> None:
        """A one-line summary in the shared StarterLog (job start and end on any slot)."""
        self.write(STARTER_LOG, message, structured=False, **kw)

    def close(self) -> None:
        """Close every open file."""
        with self._lock:
            for f in self._files.values():
                f.close()
