"""The codec of the daemon logs embedded at the end of a glidein's ``.err`` file.

The original glidein appends each HTCondor daemon log to its stderr as::

    MasterLog
    ======== gzip | uuencode =============
    begin-base64 644 -
    H4sICAAAAAAAA01hc3RlckxvZwCtVW1v2zYQ/u5fcR8DbJZEvVoCPGxNsrXDmgWxgxUY9oGW
    ...
    ====

(the header may carry a prefix such as ``tail -c 100000 |``; the base64 is 60 or 76
columns; the gzip stream may hold several members, one per file), and the XML summary
of the glidein's activity between ``=== Encoded XML description of glidein activity ===``
and ``=== End encoded XML description of glidein activity ===`` (whose trailer may read
``==== }``).

:func:`split_err` cuts an ``.err`` text into its plain parts and its :class:`Section`\\ s,
decoding every gzip member; :func:`join_err` puts it back together exactly. Problems
(truncated base64, a gzip member cut short, a bad CRC, corrupt data) are reported in
:attr:`Section.problem`, never raised: whatever could be decoded is kept.

:func:`encode_section` and :func:`encode_xml_section` write the same format, so sections
we write decode again here and in the original's tools. :func:`reencode_section` writes
new contents in exactly the format of a decoded section (same name, header, begin and
trailer lines, column width, gzip header fields and compression level), which is how the
anonymizer replaces a section.

Text is handled as ``str``; bytes given to :func:`split_err` are decoded as UTF-8 with
``surrogateescape`` so that :meth:`ErrFile.to_bytes` gives back the very same bytes.
"""

from __future__ import annotations

import binascii
import re
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Literal

try:  # zlib-ng inflates about three times as fast as zlib, with the same results and API
    from zlib_ng import zlib_ng as _FAST_INFLATE
except ImportError:  # pragma: no cover - zlib-ng is a dependency; zlib still does the work
    _FAST_INFLATE = zlib

__all__ = [
    "DEFAULT_BEGIN",
    "DEFAULT_HEADER",
    "DEFAULT_TRAILER",
    "KNOWN_SECTION_NAMES",
    "XML_END_MARKER",
    "XML_SECTION_NAME",
    "XML_START_MARKER",
    "ErrFile",
    "GzipHeader",
    "GzipMember",
    "Section",
    "base64_lines",
    "bytes_of",
    "decode_gzip_members",
    "encode_section",
    "encode_xml_section",
    "gzip_member_bytes",
    "join_err",
    "layout_section",
    "reencode_section",
    "section_from_text",
    "section_reproducible",
    "split_err",
    "text_of",
    "with_raw",
]

#: The header line the original writes before the base64 of a daemon log.
DEFAULT_HEADER = "======== gzip | uuencode ============="
#: The first line of the base64 block (``uuencode -m``'s ``begin-base64 MODE NAME``).
DEFAULT_BEGIN = "begin-base64 644 -"
#: The line that ends the base64 block.
DEFAULT_TRAILER = "===="
#: The name this module gives the XML summary section.
XML_SECTION_NAME = "XML"
XML_START_MARKER = "=== Encoded XML description of glidein activity ==="
XML_END_MARKER = "=== End encoded XML description of glidein activity ==="
#: The section names the original writes (``StarterLog.<slot>`` stands for any slot).
KNOWN_SECTION_NAMES = (
    "MasterLog",
    "StartdLog",
    "StarterLog",
    "StarterLog.<slot>",
    "MasterLog.monitor",
    "StartdLog.monitor",
    "StarterLog.monitor",
    "StartdHistoryLog",
    "GlideinLog",
    XML_SECTION_NAME,
)

_FTEXT, _FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 1, 2, 4, 8, 16

# A section starts at one of these lines.
_START = re.compile(
    r"^(?:(?P<log>={3,}[^\n]*?gzip \| uuencode =+)|(?P<xml>"
    + re.escape(XML_START_MARKER)
    + r"))[ \t]*\r?$",
    re.MULTILINE,
)
_BEGIN = re.compile(r"begin-base64 [0-7]{3,4}(?: [^\r\n]*)?\r?(?:\n|\Z)")
# Payload lines: base64 alphabet, never starting with '=' (that is the trailer), and not
# the name line of the next section (a line followed by a section header).
_PAYLOAD = re.compile(
    r"(?:[A-Za-z0-9+/][A-Za-z0-9+/=]*\r?(?:\n|\Z)(?!={3,}[^\n]*?gzip \| uuencode))*"
)
_TRAILER = re.compile(r"====[^\n]*(?:\n|\Z)")
_XML_END = re.compile(re.escape(XML_END_MARKER) + r"[ \t]*\r?(?:\n|\Z)")


def text_of(data: bytes) -> str:
    """Bytes as text, losslessly: UTF-8 with ``surrogateescape`` (see :func:`bytes_of`)."""
    return data.decode("utf-8", "surrogateescape")


def bytes_of(text: str) -> bytes:
    """The exact bytes of a text made by :func:`text_of`."""
    return text.encode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class GzipHeader:
    """The fields of one gzip member's header (RFC 1952), kept so a member can be rewritten alike.

    ``level`` is the compression level the ``xfl`` byte implies (9 for 2, 1 for 4, else 6).
    """

    mtime: int = 0
    xfl: int = 0
    os: int = 255
    ftext: bool = False
    fhcrc: bool = False
    extra: bytes | None = None
    fname: bytes | None = None
    comment: bytes | None = None

    @property
    def level(self) -> int:
        """The compression level implied by ``xfl``."""
        return 9 if self.xfl == 2 else 1 if self.xfl == 4 else 6

    def to_bytes(self) -> bytes:
        """The header as it appears at the start of the member."""
        flags = (
            (_FTEXT if self.ftext else 0)
            | (_FHCRC if self.fhcrc else 0)
            | (_FEXTRA if self.extra is not None else 0)
            | (_FNAME if self.fname is not None else 0)
            | (_FCOMMENT if self.comment is not None else 0)
        )
        out = bytearray(b"\x1f\x8b\x08")
        out.append(flags)
        out += struct.pack("<I", self.mtime & 0xFFFFFFFF)
        out.append(self.xfl & 0xFF)
        out.append(self.os & 0xFF)
        if self.extra is not None:
            out += struct.pack("<H", len(self.extra)) + self.extra
        if self.fname is not None:
            out += self.fname.replace(b"\x00", b"") + b"\x00"
        if self.comment is not None:
            out += self.comment.replace(b"\x00", b"") + b"\x00"
        if self.fhcrc:
            out += struct.pack("<H", zlib.crc32(out) & 0xFFFF)
        return bytes(out)


@dataclass(frozen=True)
class GzipMember:
    """One decoded gzip member: its header and its (possibly partial) content.

    ``complete`` is false when the member was cut short or failed its CRC/size check;
    ``data`` then holds what could be decompressed.
    """

    header: GzipHeader
    data: bytes
    complete: bool = True
    #: The member's bytes as found (header, deflate data, trailer); empty if not known.
    compressed: bytes = field(default=b"", repr=False, compare=False)

    def reproducible(self) -> bool:
        """True if :func:`gzip_member_bytes` rebuilds exactly :attr:`compressed` from the data.

        Members written by zlib-based tools at the level their header implies are;
        GNU gzip's output usually is not. Stops at the first differing byte.
        """
        if not self.complete or not self.compressed:
            return False
        original = self.compressed
        head = self.header.to_bytes()
        if not original.startswith(head):
            return False
        pos = len(head)
        comp = zlib.compressobj(self.header.level, zlib.DEFLATED, -15)
        data = memoryview(self.data)
        step = 1 << 16
        for i in range(0, len(data), step):
            out = comp.compress(data[i : i + step])
            if out:
                if original[pos : pos + len(out)] != out:
                    return False
                pos += len(out)
        out = comp.flush()
        if original[pos : pos + len(out)] != out:
            return False
        pos += len(out)
        trailer = struct.pack(
            "<II", zlib.crc32(self.data) & 0xFFFFFFFF, len(self.data) & 0xFFFFFFFF
        )
        return original[pos:] == trailer


def gzip_member_bytes(
    data: bytes, header: GzipHeader | None = None, level: int | None = None
) -> bytes:
    """One complete gzip member holding ``data``, with ``header``'s fields.

    The level defaults to the one the header's ``xfl`` implies; zlib's default memory
    level and strategy are used, so the same inputs always give the same bytes.
    """
    header = header or GzipHeader()
    comp = zlib.compressobj(header.level if level is None else level, zlib.DEFLATED, -15)
    body = comp.compress(data) + comp.flush()
    trailer = struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return header.to_bytes() + body + trailer


def _parse_header(buf: bytes, pos: int) -> tuple[GzipHeader, int] | str:
    """Parse a gzip header at ``pos``; the header and where the deflate data starts, or a problem."""
    n = len(buf)
    if n - pos < 10:
        return "truncated gzip header"
    if buf[pos + 2] != 8:
        return f"unknown gzip compression method {buf[pos + 2]}"
    flags = buf[pos + 3]
    mtime = struct.unpack_from("<I", buf, pos + 4)[0]
    xfl, os_byte = buf[pos + 8], buf[pos + 9]
    p = pos + 10
    extra = fname = comment = None
    if flags & _FEXTRA:
        if n - p < 2:
            return "truncated gzip header"
        (xlen,) = struct.unpack_from("<H", buf, p)
        p += 2
        if n - p < xlen:
            return "truncated gzip header"
        extra = bytes(buf[p : p + xlen])
        p += xlen
    if flags & _FNAME:
        z = buf.find(b"\x00", p)
        if z < 0:
            return "truncated gzip header"
        fname = bytes(buf[p:z])
        p = z + 1
    if flags & _FCOMMENT:
        z = buf.find(b"\x00", p)
        if z < 0:
            return "truncated gzip header"
        comment = bytes(buf[p:z])
        p = z + 1
    if flags & _FHCRC:
        if n - p < 2:
            return "truncated gzip header"
        p += 2
    header = GzipHeader(
        mtime=mtime,
        xfl=xfl,
        os=os_byte,
        ftext=bool(flags & _FTEXT),
        fhcrc=bool(flags & _FHCRC),
        extra=extra,
        fname=fname,
        comment=comment,
    )
    return header, p


def decode_gzip_members(
    buf: bytes, *, inflate: ModuleType = _FAST_INFLATE
) -> tuple[list[GzipMember], str | None]:
    """Decode every member of a (possibly multi-member, possibly damaged) gzip stream.

    Returns the members (the last one partial if the stream was cut or corrupt) and the
    first problem met, or None. Zero padding after the last member is accepted silently.
    ``inflate`` is the zlib-compatible module that decompresses (zlib-ng when installed;
    the tests check it agrees with :mod:`zlib` on damaged streams too).
    """
    members: list[GzipMember] = []
    view = memoryview(buf)
    pos, n = 0, len(buf)
    problem: str | None = None
    while pos < n:
        if buf[pos : pos + 2] != b"\x1f\x8b":
            if not buf[pos:].strip(b"\x00"):
                break
            problem = (
                f"unexpected bytes after gzip member {len(members)}" if members else "not gzip data"
            )
            break
        parsed = _parse_header(buf, pos)
        if isinstance(parsed, str):
            problem = parsed
            break
        header, p = parsed
        dec = inflate.decompressobj(-15)
        chunks: list[bytes] = []
        failed: str | None = None
        # Decompress in pieces so corrupt data still yields what came before it: on an
        # error, go back to the state before the piece and feed it in small steps.
        step = 1 << 18
        q = p
        while q < n and not dec.eof:
            saved = dec.copy()
            try:
                chunks.append(dec.decompress(view[q : q + step]))
            except inflate.error as exc:
                failed = f"corrupt gzip data in member {len(members) + 1}: {exc}"
                dec = saved
                r = q
                try:
                    while r < min(n, q + step) and not dec.eof:
                        chunks.append(dec.decompress(view[r : r + 512]))
                        r += 512
                except inflate.error:
                    pass
                break
            q += step
        data = b"".join(chunks)
        if failed or not dec.eof:
            if not failed:
                try:
                    data += dec.flush()
                except inflate.error:
                    pass
            members.append(GzipMember(header, data, complete=False))
            problem = failed or f"gzip member {len(members)} is truncated"
            break
        rest = len(dec.unused_data)
        end = n - rest
        if rest < 8:
            members.append(GzipMember(header, data, complete=False))
            problem = f"gzip member {len(members)} is missing its CRC trailer (truncated)"
            break
        crc, isize = struct.unpack_from("<II", buf, end)
        if crc != zlib.crc32(data) & 0xFFFFFFFF or isize != len(data) & 0xFFFFFFFF:
            members.append(GzipMember(header, data, complete=False))
            problem = f"gzip member {len(members)} fails its CRC/size check"
            pos = end + 8
            continue
        members.append(GzipMember(header, data, compressed=bytes(view[pos : end + 8])))
        pos = end + 8
    return members, problem


def base64_lines(data: bytes, columns: int = 76) -> str:
    """``data`` in base64, ``columns`` characters per line, each line ending in a newline."""
    if columns < 4 or columns % 4:
        raise ValueError(f"base64 line width must be a positive multiple of 4, not {columns}")
    if not data:
        return ""
    text = binascii.b2a_base64(data, newline=False).decode("ascii")
    return "".join(text[i : i + columns] + "\n" for i in range(0, len(text), columns))


@dataclass(frozen=True)
class Section:
    """One embedded section of an ``.err`` file, decoded.

    Attributes:
        name: the log's name (``MasterLog``, ``StarterLog.slot1_1`` ...) or ``XML``.
        kind: ``"log"`` for daemon logs, ``"xml"`` for the XML summary.
        raw: the exact text of the section in the file (name line through trailer).
        members: every gzip member decoded (the last may be partial).
        problem: why the section is not whole, or None.
        header_line: ``======== ... gzip | uuencode =============`` or the XML start marker.
        begin_line: ``begin-base64 644 -`` (None if missing).
        columns: width of the base64 lines (0 if there were none).
        trailer_line: ``====`` or ``==== }``; None when the section was cut off.
        end_line: the XML end marker line, if present.
        start, end: offsets of ``raw`` in the ``.err`` text.
        name_line: the exact line naming a log section (``None`` for XML or when missing).
        newline: the line ending the section used (``"\\n"`` or ``"\\r\\n"``).
    """

    name: str
    kind: Literal["log", "xml"]
    raw: str
    members: tuple[GzipMember, ...] = ()
    problem: str | None = None
    header_line: str = DEFAULT_HEADER
    begin_line: str | None = DEFAULT_BEGIN
    columns: int = 76
    trailer_line: str | None = DEFAULT_TRAILER
    end_line: str | None = None
    start: int = 0
    end: int = 0
    name_line: str | None = None
    newline: str = "\n"

    @property
    def data(self) -> bytes:
        """The decoded content: every member's data, concatenated."""
        if len(self.members) == 1:
            return self.members[0].data
        return b"".join(m.data for m in self.members)

    @property
    def ok(self) -> bool:
        """True when the section decoded whole, without any problem."""
        return self.problem is None

    @property
    def truncated(self) -> bool:
        """True when the section (or its last gzip member) was cut short."""
        return self.trailer_line is None or any(not m.complete for m in self.members)

    def text(self, errors: str = "replace") -> str:
        """The decoded content as text (UTF-8; ``errors`` as in :meth:`bytes.decode`)."""
        return self.data.decode("utf-8", errors)


@dataclass
class ErrFile:
    """An ``.err`` file cut into plain text and sections.

    ``parts`` has one more item than ``sections``: the file is
    ``parts[0] + sections[0].raw + parts[1] + ... + sections[-1].raw + parts[-1]``.
    """

    parts: list[str]
    sections: list[Section] = field(default_factory=list)

    @property
    def plain_text(self) -> str:
        """The text outside the sections (warnings, environment dumps ...), joined."""
        return "".join(self.parts)

    def section(self, name: str) -> Section | None:
        """The first section called ``name`` (case-sensitive), or None."""
        for s in self.sections:
            if s.name == name:
                return s
        return None

    def names(self) -> list[str]:
        """The names of the sections, in file order."""
        return [s.name for s in self.sections]

    def to_text(self) -> str:
        """The whole file as text (the same as :func:`join_err`)."""
        return join_err(self)

    def to_bytes(self) -> bytes:
        """The whole file as bytes (lossless for files read by :func:`split_err` from bytes)."""
        return bytes_of(join_err(self))


def _decode_payload(payload: str) -> tuple[bytes, str | None]:
    """Base64 payload text to bytes; a problem if it had to be cut to a whole quantum."""
    # a2b_base64 skips the line breaks itself; only a cut-off last quantum needs care
    chars = len(payload) - payload.count("\n") - payload.count("\r")
    problem = None
    data = payload
    if chars % 4:
        compact = "".join(payload.split())
        data = compact[: len(compact) - len(compact) % 4]
        problem = "base64 ends mid-quantum (truncated)"
    try:
        return binascii.a2b_base64(data.encode("ascii")), problem
    except (binascii.Error, UnicodeEncodeError) as exc:
        return b"", f"corrupt base64: {exc}"


_WIDTH_RX: dict[int, re.Pattern[str]] = {}


def _whole_lines(payload: str) -> tuple[str, int]:
    """The base64 block's lines up to its last (shorter) line, and the line width.

    Every line of a block has the same width except the last; a cut-off block may be
    followed by text that happens to use the base64 alphabet, which this leaves out.
    """
    if not payload:
        return "", 0
    first_nl = payload.find("\n")
    if first_nl < 0:
        return payload, len(payload.rstrip("\r"))
    width = len(payload[:first_nl].rstrip("\r"))
    rx = _WIDTH_RX.get(width)
    if rx is None:
        rx = _WIDTH_RX[width] = re.compile(
            rf"(?:[A-Za-z0-9+/=]{{{width}}}\r?\n)*[A-Za-z0-9+/=]{{0,{width}}}(?:\r?\n)?"
        )
    if rx.fullmatch(payload):  # the common case: every line as wide as the first
        return payload, width
    offset = 0
    for line in payload.splitlines(keepends=True):
        length = len(line.rstrip("\r\n"))
        if length > width:
            return payload[:offset], width
        offset += len(line)
        if length < width:
            return payload[:offset], width
    return payload, width


def _name_line_before(text: str, header_start: int, floor: int) -> tuple[int, str | None]:
    """Start offset and text of the line just before a header (the log's name), if any."""
    if header_start <= floor:
        return header_start, None
    line_end = header_start - 1  # the '\n' ending the name line
    line_start = text.rfind("\n", floor, line_end) + 1
    line_start = max(line_start, floor)
    line = text[line_start:line_end]
    line = line.removesuffix("\r")
    if not line.strip() or line.startswith("===="):
        return header_start, None
    return line_start, line


def section_from_text(text: str, start: int, *, floor: int = 0) -> Section | None:
    """Decode the section whose header (or XML start marker) line begins at ``start``.

    ``floor`` is the earliest offset the section's name line may begin at. Returns None
    if no section header starts at ``start``.
    """
    m = _START.match(text, start)
    if m is None:
        return None
    return _section_at(text, m, floor)


def _section_at(text: str, m: re.Match[str], floor: int) -> Section:
    kind: Literal["log", "xml"] = "log" if m.group("log") else "xml"
    header_line = m.group("log") or m.group("xml")
    newline = "\r\n" if text[m.end() - 1 : m.end()] == "\r" else "\n"
    if kind == "log":
        sec_start, name_line = _name_line_before(text, m.start(), floor)
        name = name_line.strip() if name_line is not None else ""
    else:
        sec_start, name_line, name = m.start(), None, XML_SECTION_NAME
    pos = m.end()
    if text.startswith("\n", pos):
        pos += 1
    else:  # the header is the file's last line
        return Section(
            name=name,
            kind=kind,
            raw=text[sec_start:pos],
            problem="section has no data",
            header_line=header_line,
            begin_line=None,
            columns=0,
            trailer_line=None,
            start=sec_start,
            end=pos,
            name_line=name_line,
            newline=newline,
        )
    b = _BEGIN.match(text, pos)
    if b is None:
        return Section(
            name=name,
            kind=kind,
            raw=text[sec_start:pos],
            problem="no 'begin-base64' line",
            header_line=header_line,
            begin_line=None,
            columns=0,
            trailer_line=None,
            start=sec_start,
            end=pos,
            name_line=name_line,
            newline=newline,
        )
    begin_line = b.group().rstrip("\r\n")
    pos = b.end()
    p = _PAYLOAD.match(text, pos)
    assert p is not None  # the pattern matches the empty string
    payload, columns = _whole_lines(p.group())
    pos = p.start() + len(payload)
    problems: list[str] = []
    t = _TRAILER.match(text, pos)
    trailer_line: str | None = None
    end_line: str | None = None
    if t is not None:
        trailer_line = t.group().rstrip("\r\n")
        pos = t.end()
        if kind == "xml":
            e = _XML_END.match(text, pos)
            if e is not None:
                end_line = e.group().rstrip("\r\n")
                pos = e.end()
    else:
        problems.append("section ends without its '====' trailer (truncated)")
    raw_gz, b64_problem = _decode_payload(payload)
    if b64_problem:
        problems.append(b64_problem)
    members: list[GzipMember] = []
    if raw_gz:
        members, gz_problem = decode_gzip_members(raw_gz)
        if gz_problem:
            problems.append(gz_problem)
    elif not payload:
        problems.append("section has no data")
    return Section(
        name=name,
        kind=kind,
        raw=text[sec_start:pos],
        members=tuple(members),
        problem="; ".join(problems) if problems else None,
        header_line=header_line,
        begin_line=begin_line,
        columns=columns,
        trailer_line=trailer_line,
        end_line=end_line,
        start=sec_start,
        end=pos,
        name_line=name_line,
        newline=newline,
    )


# What every line :data:`_START` matches contains (a log header, the XML start marker).
_START_NEEDLES = ("gzip | uuencode", XML_START_MARKER)


def _header_matches(text: str) -> list[re.Match[str]]:
    """The matches of :data:`_START` in ``text``, in order: what ``_START.finditer`` gives.

    Each match is one whole line holding one of :data:`_START_NEEDLES`, so only those
    lines are tried (``str.find`` skips the base64 between them far faster than the
    regex engine tries every line of it).
    """
    line_starts: set[int] = set()
    for needle in _START_NEEDLES:
        i = text.find(needle)
        while i >= 0:
            line_starts.add(text.rfind("\n", 0, i) + 1)
            eol = text.find("\n", i)
            i = text.find(needle, eol + 1) if eol >= 0 else -1
    out = []
    for start in sorted(line_starts):
        m = _START.match(text, start)
        if m is not None:
            out.append(m)
    return out


def split_err(text: str | bytes) -> ErrFile:
    """Cut an ``.err`` text into plain parts and decoded sections (never raises on bad data).

    Bytes are decoded with :func:`text_of` (lossless). Every gzip member of every section
    is decoded; damaged sections carry a :attr:`Section.problem`.
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = text_of(bytes(text))
    parts: list[str] = []
    sections: list[Section] = []
    pos = 0
    for m in _header_matches(text):
        if m.start() < pos:  # inside a section already taken (cannot happen for valid data)
            continue
        sec = _section_at(text, m, pos)
        parts.append(text[pos : sec.start])
        sections.append(sec)
        pos = sec.end
    parts.append(text[pos:])
    return ErrFile(parts=parts, sections=sections)


def join_err(err: ErrFile, replacements: dict[int, str] | None = None) -> str:
    """Rebuild the ``.err`` text; ``replacements`` maps a section index to new raw text."""
    replacements = replacements or {}
    out: list[str] = []
    for i, sec in enumerate(err.sections):
        out.append(err.parts[i])
        out.append(replacements.get(i, sec.raw))
    out.append(err.parts[len(err.sections)])
    return "".join(out)


def _as_bytes(data: bytes | str) -> bytes:
    return bytes_of(data) if isinstance(data, str) else bytes(data)


def encode_section(
    name: str,
    data: bytes | str | None = None,
    columns: int = 76,
    *,
    members: Iterable[bytes | str] | None = None,
    header: str = DEFAULT_HEADER,
    begin: str = DEFAULT_BEGIN,
    trailer: str = DEFAULT_TRAILER,
    mtime: int = 0,
    fname: bytes | None = None,
    level: int = 6,
    os_byte: int = 3,
) -> str:
    """Write one daemon-log section the way the original does (name, header, base64, ``====``).

    Either ``data`` (one gzip member) or ``members`` (one member each, like
    ``gzip --stdout file1 file2``). The result ends with a newline; the original follows
    it with an empty line, which belongs to the plain text around sections.
    """
    header_obj = GzipHeader(
        mtime=mtime, xfl=2 if level == 9 else 4 if level == 1 else 0, os=os_byte, fname=fname
    )
    items = list(members) if members is not None else [data if data is not None else b""]
    gz = b"".join(gzip_member_bytes(_as_bytes(d), header_obj, level) for d in items)
    return f"{name}\n{header}\n{begin}\n{base64_lines(gz, columns)}{trailer}\n"


def encode_xml_section(
    xml: bytes | str, columns: int = 76, *, trailer: str = DEFAULT_TRAILER, end_marker: bool = True
) -> str:
    """Write the XML summary section (start marker, base64 of gzip, trailer, end marker)."""
    gz = gzip_member_bytes(_as_bytes(xml), GzipHeader(os=3))
    end = f"{XML_END_MARKER}\n" if end_marker else ""
    return f"{XML_START_MARKER}\n{DEFAULT_BEGIN}\n{base64_lines(gz, columns)}{trailer}\n{end}"


def reencode_section(
    section: Section,
    members_data: Sequence[bytes],
    *,
    headers: Sequence[GzipHeader] | None = None,
    level: int | None = None,
) -> str:
    """New contents in exactly ``section``'s format: same lines, width, gzip headers, level.

    ``members_data`` holds one bytes per gzip member (usually as many as the section had);
    ``headers`` overrides the gzip headers (defaults: the section's own, the last one
    repeated for extra members, :class:`GzipHeader` defaults if the section had none).
    ``level`` overrides the zlib level the headers imply (the headers stay as they are).
    The result is always a whole section (with a trailer), even if the original was cut.
    """
    if headers is None:
        own = [m.header for m in section.members] or [GzipHeader(os=3)]
        headers = [own[min(i, len(own) - 1)] for i in range(len(members_data))]
    gz = b"".join(
        gzip_member_bytes(d, h, level) for d, h in zip(members_data, headers, strict=True)
    )
    return layout_section(section, gz)


def layout_section(section: Section, gz: bytes) -> str:
    """The text of a section in ``section``'s format whose payload is the gzip stream ``gz``."""
    nl = section.newline
    columns = section.columns if section.columns >= 4 and section.columns % 4 == 0 else 76
    body = base64_lines(gz, columns)
    if nl != "\n":
        body = body.replace("\n", nl)
    lines: list[str] = []
    if section.kind == "log" and section.name_line is not None:
        lines.append(section.name_line + nl)
    lines.append(section.header_line + nl)
    lines.append((section.begin_line or DEFAULT_BEGIN) + nl)
    lines.append(body)
    lines.append((section.trailer_line or DEFAULT_TRAILER) + nl)
    if section.kind == "xml" and section.end_line is not None:
        lines.append(section.end_line + nl)
    return "".join(lines)


def section_reproducible(section: Section) -> bool:
    """True if :func:`reencode_section` with the decoded data gives back ``section.raw`` exactly.

    Cheap when it is not: the comparison stops at the first gzip member that differs.
    """
    if section.problem is not None or not section.members or section.truncated:
        return False
    if not all(m.reproducible() for m in section.members):
        return False
    return layout_section(section, b"".join(m.compressed for m in section.members)) == section.raw


def with_raw(section: Section, raw: str) -> Section:
    """A copy of ``section`` whose raw text is ``raw`` (for building an :class:`ErrFile`)."""
    return replace(section, raw=raw)
