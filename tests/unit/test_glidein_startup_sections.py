"""The .err sections the pilot writes: the original's gzip | uuencode layout, decoded two ways."""

from __future__ import annotations

import base64
import gzip
import io
import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms.glidein import logsections as LS
from gwms.glidein import pilotreport as R
from gwms.monitor.sections import split_err

SECTION = re.compile(
    r"^(?P<name>[^\n]+)\n(?P<header>======== (?:[^\n]*\| )?gzip \| uuencode =============)\n"
    r"begin-base64 644 -\n(?P<b64>(?:[A-Za-z0-9+/=]+\n)*)====\n\n",
    re.MULTILINE,
)


def decode_gzip(data: bytes) -> list[bytes]:
    """Every member of a multi-member gzip stream, with the standard library only."""
    members = []
    rest = data
    while rest:
        d = __import__("zlib").decompressobj(31)
        members.append(d.decompress(rest))
        rest = d.unused_data
    return members


def test_layout_is_exact() -> None:
    text = LS.encode_section("StartdLog", b"hello\n" * 100)
    lines = text.split("\n")
    assert lines[:3] == ["StartdLog", "======== gzip | uuencode =============", "begin-base64 644 -"]
    assert text.endswith("\n====\n\n")
    body = lines[3:lines.index("====")]
    assert all(len(line) == 76 for line in body[:-1]) and 0 < len(body[-1]) <= 76
    assert gzip.decompress(base64.b64decode("".join(body))) == b"hello\n" * 100


def test_members_carry_name_and_mtime() -> None:
    text = LS.encode_section("StartdLog", [LS.Member(b"old\n", fname="StartdLog.old", mtime=1700000000),
                                           LS.Member(b"new\n", fname="StartdLog", mtime=1700000100)])
    raw = base64.b64decode("".join(SECTION.search(text).group("b64").split()))
    assert decode_gzip(raw) == [b"old\n", b"new\n"]
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as g:
        assert g.read() == b"old\nnew\n"
    assert raw[3] & 0x08 and b"StartdLog.old\x00" in raw[:40]
    assert int.from_bytes(raw[4:8], "little") == 1700000000
    err = split_err(text)
    [section] = err.sections
    assert section.name == "StartdLog" and section.ok and [m.data for m in section.members] == [b"old\n", b"new\n"]
    assert section.members[0].header.fname == b"StartdLog.old" and section.members[0].header.mtime == 1700000000


def test_xml_section_and_prefix() -> None:
    xml = '<?xml version="1.0"?>\n<OSGTestResult/>\n'
    text = LS.encode_xml_section(xml)
    assert text.startswith(LS.XML_START_MARKER + "\nbegin-base64 644 -\n") and text.endswith("\n====\n" + LS.XML_END_MARKER + "\n")
    [section] = split_err(text).sections
    assert section.kind == "xml" and section.text() == xml
    cut = LS.encode_section("StartdLog", b"x", prefix="tail -c 100")
    assert "\n======== tail -c 100 | gzip | uuencode =============\n" in cut
    assert split_err(cut).sections[0].ok
    with pytest.raises(ValueError):
        LS.encode_section("====bad", b"")
    with pytest.raises(ValueError):
        LS.base64_lines(b"x", 30)


@given(st.lists(st.tuples(st.sampled_from(["StartdLog", "StarterLog.slot1_1", "GlideinLog", "MasterLog"]),
                          st.lists(st.binary(max_size=400), min_size=1, max_size=3)), max_size=4),
       st.sampled_from([60, 76]))
def test_sections_decode_with_stdlib_and_the_monitor(sections: list[tuple[str, list[bytes]]], columns: int) -> None:
    text = "some warning\n" + "".join(LS.encode_section(n, m, columns=columns) for n, m in sections)
    found = list(SECTION.finditer(text))
    assert [m.group("name") for m in found] == [n for n, _ in sections]
    for match, (_, members) in zip(found, sections):
        assert decode_gzip(base64.b64decode("".join(match.group("b64").split()))) == members
    err = split_err(text)
    assert err.parts[0] == "some warning\n" and err.to_text() == text
    assert [(s.name, [m.data for m in s.members]) for s in err.sections] == [(n, m) for n, m in sections]
    for match, section in zip(found, err.sections):
        assert section.ok
        if len(match.group("b64")) > columns + 1:  # more than one line: the width shows
            assert section.columns == columns


def test_log_sections_from_a_log_dir(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.mkdir()
    (log / "StarterLog.slot2").write_text("slot2\n")
    (log / "StartdLog").write_text("startd now\n")
    (log / "StartdLog.old").write_text("startd before\n")
    (log / "StarterLog").write_text("starter\n")
    (log / "StarterLog.slot1").write_text("slot1\n" * 5000)
    (log / "Other").write_text("other\n")
    (log / "StartdEvents.jsonl").write_text('{"timestamp":"2024-01-01T00:00:02.000+00:00","who":"agent"}\n')
    os.mkdir(log / "subdir")
    pilot_log = b'{"timestamp":"2024-01-01T00:00:01.000+00:00","who":"pilot"}\n'
    text = "".join(R.log_sections(log, pilot_log, max_bytes=1000))
    err = split_err(text)
    assert err.names() == ["StartdLog", "StarterLog", "StarterLog.slot1", "StarterLog.slot2", "Other", "GlideinLog"]
    assert [m.data for m in err.section("StartdLog").members] == [b"startd before\n", b"startd now\n"]
    slot1 = err.section("StarterLog.slot1")
    assert slot1.header_line == "======== tail -c 1000 | gzip | uuencode =============" and len(slot1.data) == 1000
    assert err.section("GlideinLog").text().splitlines() == [pilot_log.decode().strip(),
                                                             '{"timestamp":"2024-01-01T00:00:02.000+00:00","who":"agent"}']
    assert all(s.ok for s in err.sections)
    assert R.log_sections(None) == [] and R.log_sections(tmp_path / "missing") == []


def test_the_agent_log_names_agree_with_the_agent() -> None:
    from gwms.glidein import daemonlog

    assert daemonlog.EVENTS_LOG == R.EVENTS_FILE
    assert (daemonlog.STARTD_LOG, daemonlog.STARTER_LOG) == R._SECTION_ORDER[1:]
