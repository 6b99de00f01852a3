"""Daemon logs of the startd agent: line format, files, JSON records (gwms.glidein.daemonlog)."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from gwms.glidein.daemonlog import DaemonLogs, LogFile, format_line, parse_line

LINE = re.compile(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d .*$")


@given(st.floats(min_value=946684800, max_value=4102444799), st.text(max_size=60))
def test_every_line_has_the_htcondor_prefix(ts: float, message: str) -> None:
    text = format_line(ts, message)
    lines = text.splitlines()
    assert text.endswith("\n")
    assert lines and all(LINE.match(line) for line in lines)
    stamp = datetime(*time.localtime(ts)[:6])
    for line in lines:
        parsed = parse_line(line)
        assert parsed is not None and parsed[0] == stamp


def test_local_time_and_message() -> None:
    ts = time.mktime((2024, 3, 7, 14, 5, 9, 0, 0, -1))
    assert format_line(ts, "hello world") == "03/07/24 14:05:09 hello world\n"
    assert format_line(ts, "a\nb") == "03/07/24 14:05:09 a\n03/07/24 14:05:09 b\n"
    assert parse_line("03/07/24 14:05:09 (pid:42) hi") == (datetime(2024, 3, 7, 14, 5, 9), "hi")
    assert parse_line("not a log line") is None


def test_files_and_structured_records(tmp_path: Path) -> None:
    clock = iter([1e9, 1e9 + 1, 1e9 + 2]).__next__
    logs = DaemonLogs(tmp_path, clock=clock)
    logs.startd("starting up", type="start")
    logs.starter("slot1_1", "Starting job 1.0", severity="warning", job="1.0")
    logs.starter_summary("job 1.0 started")
    logs.close()
    startd = (tmp_path / "StartdLog").read_text()
    assert startd == format_line(1e9, "starting up")
    assert (tmp_path / "StarterLog.slot1_1").read_text().endswith(" WARNING: Starting job 1.0\n")
    assert (tmp_path / "StarterLog").read_text().endswith(" job 1.0 started\n")
    records = [json.loads(line) for line in (tmp_path / "StartdEvents.jsonl").read_text().splitlines()]
    assert [r["filename"] for r in records] == ["StartdLog", "StarterLog.slot1_1"]
    first, second = records
    assert set(first) >= {"invoker", "pid", "timestamp", "severity", "type", "filename", "content"}
    assert first["type"] == "start" and first["content"] == "starting up" and first["timestamp"].startswith("2001-09-09T01:46:40")
    assert second["severity"] == "warning" and second["job"] == "1.0"


def test_rotation(tmp_path: Path) -> None:
    f = LogFile(tmp_path / "StartdLog", max_bytes=100)
    for i in range(10):
        f.write(f"line {i:02d} " + "x" * 30 + "\n")
    f.close()
    assert (tmp_path / "StartdLog.old").exists()
    assert (tmp_path / "StartdLog").stat().st_size <= 100
    assert (tmp_path / "StartdLog").read_text().endswith("line 09 " + "x" * 30 + "\n")


def test_no_directory_writes_nothing(tmp_path: Path) -> None:
    seen: list[str] = []
    logs = DaemonLogs(None, echo=seen.append)
    logs.startd("hello")
    logs.starter("slot1", "not echoed")
    assert len(seen) == 1 and seen[0].endswith(" hello")
