"""The .err section codec: every section decodes, damage is reported, our sections read back."""

from __future__ import annotations

import base64
import gzip
import shutil
import subprocess
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.monitor.samples import ALL_SECTION_NAMES, make_job, make_world
from gwms.monitor.sections import (
    XML_END_MARKER,
    XML_SECTION_NAME,
    XML_START_MARKER,
    GzipHeader,
    base64_lines,
    bytes_of,
    decode_gzip_members,
    encode_section,
    encode_xml_section,
    gzip_member_bytes,
    join_err,
    reencode_section,
    section_reproducible,
    split_err,
    text_of,
)

WORLD = make_world(11)


def test_every_section_name_decodes_with_every_member() -> None:
    job = make_job(WORLD, 1, lines=60, multi_member=True)
    err = split_err(job.err)
    assert err.names() == list(ALL_SECTION_NAMES)
    for section in err.sections:
        assert section.ok, (section.name, section.problem)
        assert [m.data for m in section.members] == job.sections[section.name], section.name
    multi = [s for s in err.sections if len(s.members) > 1]
    assert multi, "the sample must hold multi-member sections"
    assert err.section(XML_SECTION_NAME).kind == "xml"
    assert "OSGTestResult" in err.section("XML").text()


@pytest.mark.parametrize("columns", [60, 76])
def test_both_base64_widths(columns: int) -> None:
    job = make_job(WORLD, 2, lines=50, columns=columns)
    err = split_err(job.err)
    assert {s.columns for s in err.sections} == {columns}
    for section in err.sections:
        lines = section.raw.splitlines()
        body = lines[lines.index("begin-base64 644 -") + 1 : -1]
        if section.kind == "xml":
            body = body[:-1]  # the end marker follows the trailer
        assert all(len(line) == columns for line in body[:-1])
        assert 0 < len(body[-1]) <= columns


def test_truncated_sections_are_reported_and_keep_what_decodes() -> None:
    job = make_job(WORLD, 3, lines=80, truncate={"StartdLog", "StarterLog.slot1_1", "XML"})
    err = split_err(job.err)
    assert err.names() == list(ALL_SECTION_NAMES)  # the name after a cut section is not lost
    for section in err.sections:
        full = b"".join(job.sections[section.name])
        if section.name in job.truncated:
            assert section.problem and "truncated" in section.problem
            assert section.truncated and section.trailer_line is None
            assert full.startswith(section.data) and len(section.data) < len(full)
        else:
            assert section.ok, (section.name, section.problem)
            assert section.data == full
    assert join_err(err) == job.err


def test_header_prefix_and_curly_trailer() -> None:
    job = make_job(WORLD, 4, lines=20, header_prefix=True)
    err = split_err(job.err)
    logs = [s for s in err.sections if s.kind == "log"]
    assert all(
        s.header_line == "======== tail -c 100000 | gzip | uuencode =============" for s in logs
    )
    xml = encode_xml_section(b"<x/>", trailer="==== }")
    parsed = split_err("noise\n" + xml)
    assert parsed.sections[0].trailer_line == "==== }"
    assert parsed.sections[0].end_line == XML_END_MARKER
    assert parsed.sections[0].data == b"<x/>"


def test_corrupt_base64_and_gzip_are_reported_not_raised() -> None:
    good = encode_section("MasterLog", b"line one\nline two\n" * 50)
    lines = good.splitlines(keepends=True)
    lines[4] = "!!!!" + lines[4][4:]  # not base64: ends the block early
    damaged = split_err("".join(lines)).sections[0]
    assert damaged.problem is not None
    # a flipped byte inside the deflate data
    gz = bytearray(gzip_member_bytes(b"x" * 5000 + bytes(range(256)) * 40))
    gz[200] ^= 0xFF
    section = f"StartdLog\n======== gzip | uuencode =============\nbegin-base64 644 -\n{base64_lines(bytes(gz))}====\n"
    parsed = split_err(section).sections[0]
    assert parsed.problem is not None and "gzip" in parsed.problem
    # a bad CRC
    gz = bytearray(gzip_member_bytes(b"hello world\n"))
    gz[-8] ^= 1
    members, problem = decode_gzip_members(bytes(gz))
    assert problem and "CRC" in problem and members[0].data == b"hello world\n"
    # not gzip at all, and a header with nothing after it
    assert decode_gzip_members(b"plain text")[1] == "not gzip data"
    assert split_err("MasterLog\n======== gzip | uuencode =============").sections[0].problem


def test_split_and_join_are_exact_on_bytes_that_are_not_utf8() -> None:
    raw = (
        b"warning \xff\xfe odd bytes\n"
        + encode_section("GlideinLog", b'{"a": 1}\n').encode()
        + b"\ntrail \x80\n"
    )
    err = split_err(raw)
    assert err.to_bytes() == raw
    assert err.sections[0].data == b'{"a": 1}\n'
    assert "odd bytes" in err.plain_text


def test_crlf_sections_decode_and_rebuild() -> None:
    text = encode_section("MasterLog", b"abc\n" * 100).replace("\n", "\r\n")
    section = split_err(text).sections[0]
    assert section.ok and section.data == b"abc\n" * 100
    assert reencode_section(section, [m.data for m in section.members]) == text


@settings(max_examples=40, deadline=None)
@given(
    members=st.lists(st.binary(max_size=3000), min_size=1, max_size=3),
    columns=st.sampled_from([60, 76, 64]),
    name=st.sampled_from(["MasterLog", "StarterLog.slot1_2", "StartdHistoryLog", "GlideinLog"]),
    prefix=st.text(alphabet="abc \n", max_size=30),
)
def test_encoded_sections_decode_again(
    members: list[bytes], columns: int, name: str, prefix: str
) -> None:
    text = (prefix.rstrip() + "\n" if prefix.strip() else "") + encode_section(
        name, members=members, columns=columns
    )
    err = split_err(text)
    assert len(err.sections) == 1
    section = err.sections[0]
    assert section.ok, section.problem
    assert section.name == name
    assert [m.data for m in section.members] == members
    assert join_err(err) == text
    assert section_reproducible(section)
    assert reencode_section(section, [m.data for m in section.members]) == section.raw


def test_our_sections_read_with_independent_decoders() -> None:
    data = [b"first file\n" * 300, b"second file\n" * 200]
    text = encode_section("StarterLog", members=data, columns=60)
    payload = "".join(text.splitlines(keepends=True)[3:-1])
    raw = base64.b64decode(payload)
    assert gzip.decompress(raw) == b"".join(data)  # Python's multi-member gzip reader
    # the tools the original's users decode with (coreutils base64, GNU gzip)
    assert shutil.which("base64") and shutil.which("gzip")
    out = subprocess.run(
        "base64 -d | gzip -dc", shell=True, input=payload.encode(), capture_output=True, check=True
    ).stdout
    assert out == b"".join(data)


def test_gnu_gzip_output_decodes_but_is_not_reproducible() -> None:
    data = b"".join(
        f"05/12/24 10:{i % 60:02d}:00 (pid:{i}) some line {i * 7}\n".encode() for i in range(20000)
    )
    gz = subprocess.run(["gzip", "-c", "-n"], input=data, capture_output=True, check=True).stdout
    text = f"MasterLog\n======== gzip | uuencode =============\nbegin-base64 644 -\n{base64_lines(gz)}====\n"
    section = split_err(text).sections[0]
    assert section.ok and section.data == data
    assert not section_reproducible(section)


def test_gzip_header_fields_survive_reencoding() -> None:
    header = GzipHeader(
        mtime=1715500000, xfl=2, os=3, fname=b"MasterLog", comment=b"note", fhcrc=True
    )
    raw = gzip_member_bytes(b"payload\n" * 10, header)
    assert gzip.decompress(raw) == b"payload\n" * 10
    members, problem = decode_gzip_members(raw)
    assert problem is None and members[0].header == header
    assert members[0].header.level == 9 and members[0].reproducible()


def test_xml_section_markers() -> None:
    xml = encode_xml_section("<OSGTestResult/>\n")
    assert xml.startswith(XML_START_MARKER + "\nbegin-base64 644 -\n")
    assert xml.endswith("====\n" + XML_END_MARKER + "\n")
    err = split_err("before\n" + xml + "after\n")
    assert err.parts == ["before\n", "after\n"]
    assert err.sections[0].text() == "<OSGTestResult/>\n"


def test_text_of_and_bytes_of_are_inverse() -> None:
    blob = bytes(range(256)) * 3
    assert bytes_of(text_of(blob)) == blob


def test_zlib_level_follows_the_header() -> None:
    fast = GzipHeader(xfl=4)
    data = b"abc" * 1000
    raw = gzip_member_bytes(data, fast)
    body = raw[10:-8]
    comp = zlib.compressobj(1, zlib.DEFLATED, -15)
    assert body == comp.compress(data) + comp.flush()


def _members_as_tuples(buf: bytes, inflate) -> tuple[list[tuple[bytes, bool]], str | None]:  # type: ignore[no-untyped-def]
    members, problem = decode_gzip_members(buf, inflate=inflate)
    return [(m.data, m.complete) for m in members], problem


@settings(max_examples=150, deadline=None)
@given(
    members=st.lists(st.binary(max_size=4000), min_size=1, max_size=3),
    damage=st.sampled_from(["none", "cut", "flip", "crc", "junk"]),
    where=st.floats(0.0, 1.0),
)
def test_fast_inflate_agrees_with_zlib_on_whole_and_damaged_streams(
    members: list[bytes], damage: str, where: float
) -> None:
    """zlib-ng decodes what zlib decodes: the same members, the same partial data and the
    same problem, also for cut, corrupt, bad-CRC and junk-trailed streams."""
    from zlib_ng import zlib_ng

    buf = bytearray(b"".join(gzip_member_bytes(m) for m in members))
    at = min(len(buf) - 1, int(where * len(buf)))
    if damage == "cut":
        del buf[at:]
    elif damage == "flip":
        buf[at] ^= 0x5A
    elif damage == "crc":
        buf[-8] ^= 1
    elif damage == "junk":
        buf += b"junk after the stream"
    assert _members_as_tuples(bytes(buf), zlib_ng) == _members_as_tuples(bytes(buf), zlib)
