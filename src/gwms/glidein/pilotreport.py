"""What a glidein reports: the ``.out`` statistics and XML, the ``.err`` log sections, its own log.

The pilot (:mod:`gwms.glidein.pilot`) prints, as the original's ``condor_startup.sh`` and
``glidein_startup.sh`` do, a ``=== Stats of main ===`` block counted from the agent's
JSON-lines log (:func:`job_stats`, :func:`format_stats`), the OSGTestResult XML
summary (:func:`xml_description`), and at the end of its stderr every file of the
agent's log directory as a gzip | uuencode section (:func:`log_sections`), the agent's
``StartdEvents.jsonl`` merged with the pilot's own records (:class:`PilotLog`) as
``GlideinLog``. Standard library only; Python >= 3.9.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gwms.glidein import logsections as LS

#: The most of one daemon log embedded in the ``.err`` (its end is kept).
MAX_SECTION_BYTES = 20 * 1024 * 1024

# ----------------------------------------------------------------------- statistics


@dataclass
class JobStats:
    """What the agent's JSON-lines log says about the jobs it ran."""

    claims: int = 0
    started: int = 0
    good_zero: tuple[int, float] = (0, 0.0)
    good_nonzero: tuple[int, float] = (0, 0.0)
    bad_signal: tuple[int, float] = (0, 0.0)

    @property
    def finished(self) -> int:
        """Jobs that exited (with a status or a signal)."""
        return self.good_zero[0] + self.good_nonzero[0] + self.bad_signal[0]

    @property
    def total(self) -> int:
        """Jobs started (at least those that exited)."""
        return max(self.started, self.finished)

    @property
    def bad_other(self) -> int:
        """Jobs started that did not exit (vacated, killed, lost)."""
        return self.total - self.finished

    @property
    def utilization(self) -> float:
        """Wall seconds of the jobs that exited."""
        return self.good_zero[1] + self.good_nonzero[1] + self.bad_signal[1]


def _add(pair: tuple[int, float], seconds: float) -> tuple[int, float]:
    return pair[0] + 1, pair[1] + seconds


def job_stats(records: Iterable[Mapping[str, Any]]) -> JobStats:
    """Count claims, job starts and job exits (by kind) in the agent's JSON records."""
    stats = JobStats()
    for rec in records:
        kind = rec.get("type")
        if kind == "claim":
            stats.claims += 1
        elif kind == "job_start":
            stats.started += 1
        elif kind == "job_exit":
            try:
                wall = max(float(rec.get("wall_seconds") or 0.0), 0.0)
            except (TypeError, ValueError):
                wall = 0.0
            if rec.get("exit_signal") is not None:
                stats.bad_signal = _add(stats.bad_signal, wall)
            elif rec.get("exit_code") == 0:
                stats.good_zero = _add(stats.good_zero, wall)
            else:
                stats.good_nonzero = _add(stats.good_nonzero, wall)
    return stats


def _pct(part: float, whole: float) -> int:
    return round(100.0 * part / whole) if whole else 0


def format_stats(stats: JobStats, slot: str = "main") -> str:
    """The ``=== Stats of <slot> ===`` block, as the original's condor_startup.sh prints it."""
    total, util = stats.total, round(stats.utilization)
    lines = [f"=== Stats of {slot} ===", f"Total number of activations/claims: {stats.claims}",
             f"Total     jobs {total:4d} utilization {util:6d}"]
    for label, (count, secs) in (("goodZ", stats.good_zero), ("goodNZ", stats.good_nonzero),
                                 ("badSignal", stats.bad_signal)):
        lines.append(f"Total {label} jobs {count:4d} ({_pct(count, total):3d}%) utilization "
                     f"{round(secs):6d} ({_pct(secs, stats.utilization):3d}%)")
    lines.append(f"Total badOther jobs {stats.bad_other:4d} ({_pct(stats.bad_other, total):3d}%) "
                 f"utilization {0:6d} (  0%)")
    lines.append(f"=== End Stats of {slot} ===")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------- the .out markers and XML


def date_text(epoch: float) -> str:
    """A date as ``date`` prints it (local time)."""
    return time.strftime("%a %b %d %H:%M:%S %Z %Y", time.localtime(epoch))


def _iso(epoch: float) -> str:
    when = datetime.fromtimestamp(epoch, timezone.utc)  # noqa: UP017 - datetime.UTC is Python 3.11+
    return when.replace(microsecond=0).isoformat()


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def xml_description(
    *, cwd: str, host: str, start: float, end: float, cmd: str, failure: tuple[str, str] | None = None
) -> str:
    """The OSGTestResult XML summary of the glidein's activity; ``failure`` = (category, detail)."""
    s, e = _iso(start), _iso(end)
    result = ["  <result>"]
    if failure is None:
        result += ["    <status>OK</status>",
                   f'    <metric name="TestID" ts="{e}" uri="local">{_xml_escape(cmd)}</metric>']
    else:
        result += ["    <status>ERROR</status>",
                   f'    <metric name="failure" ts="{e}" uri="local">{_xml_escape(failure[0])}</metric>',
                   f"    <detail>{_xml_escape(failure[1])}</detail>"]
    result.append("  </result>")
    return "\n".join([
        '<?xml version="1.0"?>',
        '<OSGTestResult id="glidein_startup.sh" version="4.3.1">',
        "  <operatingenvironment>",
        f'    <env name="cwd">{_xml_escape(cwd)}</env>',
        f'    <env name="hostname">{_xml_escape(host)}</env>',
        "  </operatingenvironment>",
        "  <test>",
        f"    <cmd>{_xml_escape(cmd)}</cmd>",
        f"    <tStart>{s}</tStart>",
        f"    <tEnd>{e}</tEnd>",
        "  </test>",
        *result,
        "</OSGTestResult>",
    ]) + "\n"


# ----------------------------------------------------------------------- the .err sections

_SECTION_ORDER = ("MasterLog", "StartdLog", "StarterLog")
EVENTS_FILE = "StartdEvents.jsonl"
GLIDEIN_LOG = "GlideinLog"


def _read_tail(path: Path, limit: int) -> tuple[bytes, bool]:
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size > limit:
            f.seek(size - limit)
            return f.read(), True
        return f.read(), False


def _json_lines(data: bytes) -> list[tuple[str, bytes]]:
    """(timestamp, line) of every line; a line without a timestamp takes the one before it."""
    out: list[tuple[str, bytes]] = []
    last = ""
    for line in data.splitlines(keepends=True):
        try:
            stamp = json.loads(line).get("timestamp")
        except (ValueError, AttributeError):
            stamp = None
        if isinstance(stamp, str):
            last = stamp
        if not line.endswith(b"\n"):
            line += b"\n"
        out.append((last, line))
    return out


def merge_json_logs(*logs: bytes) -> bytes:
    """JSON-lines logs merged by their ``timestamp`` (a stable merge: equal times keep their order)."""
    items: list[tuple[str, int, int, bytes]] = []
    for n, data in enumerate(logs):
        for i, (stamp, line) in enumerate(_json_lines(data)):
            items.append((stamp, n, i, line))
    items.sort(key=lambda t: (t[0], t[1], t[2]))
    return b"".join(t[3] for t in items)


def _section_rank(name: str) -> tuple[int, str]:
    if name == GLIDEIN_LOG:
        return (9, name)
    for i, base in enumerate(_SECTION_ORDER):
        if name == base:
            return (2 * i, name)
        if name.startswith(base + "."):
            return (2 * i + 1, name)
    return (8, name)


def log_sections(log_dir: Path | None, pilot_log: bytes = b"", *, max_bytes: int = MAX_SECTION_BYTES) -> list[str]:
    """Every log of ``log_dir`` as an encoded section, in the original's order.

    ``X.old`` (a rotated file) goes in the same section as ``X``, as an earlier gzip
    member. The agent's ``StartdEvents.jsonl`` is merged with ``pilot_log`` and written
    as ``GlideinLog``. A file larger than ``max_bytes`` keeps its end, and its header
    says ``tail -c <max_bytes>``.
    """
    groups: dict[str, list[Path]] = {}
    if log_dir is not None and log_dir.is_dir():
        for path in sorted(log_dir.iterdir()):
            if not path.is_file():
                continue
            base = path.name.removesuffix(".old")
            groups.setdefault(base, []).append(path)
    sections: list[tuple[tuple[int, str], str]] = []
    events: list[bytes] = []
    for base, paths in groups.items():
        paths.sort(key=lambda p: (not p.name.endswith(".old"), p.name))  # the rotated file first
        if base == EVENTS_FILE:
            for p in paths:
                data, _ = _read_tail(p, max_bytes)
                events.append(data)
            continue
        name = base if base.strip() and not base.startswith("=") else f"Log.{base}"
        members: list[LS.Member] = []
        cut = False
        for p in paths:
            data, truncated = _read_tail(p, max_bytes)
            cut = cut or truncated
            members.append(LS.Member(data, fname=p.name, mtime=int(p.stat().st_mtime)))
        prefix = f"tail -c {max_bytes}" if cut else ""
        sections.append((_section_rank(name), LS.encode_section(name, members, prefix=prefix)))
    if events or pilot_log:
        merged = merge_json_logs(pilot_log, *events)
        sections.append((_section_rank(GLIDEIN_LOG),
                         LS.encode_section(GLIDEIN_LOG, [LS.Member(merged, fname=GLIDEIN_LOG,
                                                                   mtime=int(time.time()))])))
    sections.sort(key=lambda t: t[0])
    return [text for _, text in sections]


def read_events(log_dir: Path | None) -> list[dict[str, Any]]:
    """The agent's JSON records (rotated file first)."""
    out: list[dict[str, Any]] = []
    if log_dir is None:
        return out
    for name in (EVENTS_FILE + ".old", EVENTS_FILE):
        try:
            data = (log_dir / name).read_bytes()
        except OSError:
            continue
        for line in data.splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
    return out


# ----------------------------------------------------------------------- the pilot's own log and output


class PilotLog:
    """The pilot's own structured records (embedded in ``GlideinLog``); warnings also on stderr."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self.pid = os.getpid()

    def write(self, content: str, *, severity: str = "info", type: str = "log", **fields: Any) -> None:
        """Append one record."""
        now = self.clock()
        record = {
            "invoker": "glidein", "pid": self.pid,
            "timestamp": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds"),  # noqa: UP017
            "severity": severity, "type": type, "filename": GLIDEIN_LOG, "content": content,
        }
        record.update(fields)
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")
        except OSError:
            pass
        if severity in ("warning", "error"):
            err(f"{severity.upper()}: {content}")

    def data(self) -> bytes:
        """Everything written so far."""
        try:
            return self.path.read_bytes()
        except OSError:
            return b""


def out(text: str) -> None:
    """Write to the glidein's stdout (the ``.out``) now."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def err(text: str) -> None:
    """Write to the glidein's stderr (the ``.err``) now."""
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()
