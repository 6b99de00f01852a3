"""Encode daemon logs as the sections a glidein appends to its ``.err`` (standard library only).

The original glidein ends its stderr with every HTCondor daemon log, each written as::

    StartdLog
    ======== gzip | uuencode =============
    begin-base64 644 -
    H4sICAAAAAAAA1N0YXJ0ZExvZwCtVW1v2zYQ/u5fcR8DbJZEvVoCPGxNsrXDmgWxgxUY9oGW
    ...
    ====

followed by an empty line (``gzip`` output of the file piped through ``uuencode -m -``:
base64 in 76-column lines). The gzip stream may hold several members, one per file, as
``gzip --stdout file1 file2`` writes it; a header may carry a prefix
(``======== tail -c 100000 | gzip | uuencode =============``) when only the end of a
file was kept. The XML summary of the glidein's activity is embedded the same way
between ``=== Encoded XML description of glidein activity ===`` and
``=== End encoded XML description of glidein activity ===``.

This module only writes the format (the log monitor's :mod:`gwms.monitor.sections`
reads it); it runs on worker nodes, so it uses only the standard library.
"""

from __future__ import annotations

import binascii
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Union

__all__ = [
    "BEGIN",
    "HEADER",
    "TRAILER",
    "XML_END_MARKER",
    "XML_START_MARKER",
    "Member",
    "base64_lines",
    "encode_section",
    "encode_xml_section",
    "gzip_member",
    "section_header",
]

#: The header line of a daemon log section.
HEADER = "======== gzip | uuencode ============="
#: ``uuencode -m``'s first line.
BEGIN = "begin-base64 644 -"
#: The line that ends the base64 block.
TRAILER = "===="
XML_START_MARKER = "=== Encoded XML description of glidein activity ==="
XML_END_MARKER = "=== End encoded XML description of glidein activity ==="

_OS_UNIX = 3
_FNAME = 0x08


@dataclass(frozen=True)
class Member:
    """One file's content as one gzip member: its bytes, name and modification time."""

    data: bytes
    fname: str | None = None
    mtime: int = 0


Content = Union[bytes, str, Member]  # noqa: UP007 - evaluated at run time, on Python 3.9 too


def gzip_member(data: bytes, *, fname: str | None = None, mtime: int = 0, level: int = 9) -> bytes:
    """One complete gzip member (RFC 1952) holding ``data``, as ``gzip -<level>`` writes it.

    The header carries ``fname`` (the original file's name) when given, ``mtime`` and the
    Unix OS byte; the same inputs always give the same bytes.
    """
    flags = _FNAME if fname else 0
    xfl = 2 if level == 9 else 4 if level == 1 else 0
    head = b"\x1f\x8b\x08" + bytes([flags]) + struct.pack("<I", mtime & 0xFFFFFFFF) + bytes([xfl, _OS_UNIX])
    if fname:
        head += fname.encode("latin-1", "replace").replace(b"\x00", b"") + b"\x00"
    comp = zlib.compressobj(level, zlib.DEFLATED, -15)
    body = comp.compress(data) + comp.flush()
    trailer = struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return head + body + trailer


def base64_lines(data: bytes, columns: int = 76) -> str:
    """``data`` in base64, ``columns`` characters per line, every line ending in a newline."""
    if columns < 4 or columns % 4:
        raise ValueError(f"base64 line width must be a positive multiple of 4, not {columns}")
    text = binascii.b2a_base64(data, newline=False).decode("ascii")
    return "".join(text[i : i + columns] + "\n" for i in range(0, len(text), columns))


def section_header(prefix: str = "") -> str:
    """The header line; ``prefix`` (e.g. ``"tail -c 100000"``) says how the file was cut."""
    return f"======== {prefix} | gzip | uuencode =============" if prefix else HEADER


def _member_bytes(item: Content, level: int) -> bytes:
    if isinstance(item, Member):
        return gzip_member(item.data, fname=item.fname, mtime=item.mtime, level=level)
    data = item.encode("utf-8", "surrogateescape") if isinstance(item, str) else bytes(item)
    return gzip_member(data, level=level)


def encode_section(
    name: str,
    members: Sequence[Content] | Content,
    *,
    columns: int = 76,
    prefix: str = "",
    level: int = 9,
) -> str:
    """One daemon-log section: name line, header, ``begin-base64 644 -``, base64, ``====``.

    ``members`` is one content or a sequence of contents (bytes, text or :class:`Member`),
    one gzip member each. The result ends with the trailer's newline followed by the
    empty line the original writes after every section.
    """
    if not name.strip() or "\n" in name or name.startswith("===="):
        raise ValueError(f"not a usable section name: {name!r}")
    items: Iterable[Content] = [members] if isinstance(members, (bytes, str, Member)) else members
    gz = b"".join(_member_bytes(item, level) for item in items)
    return f"{name}\n{section_header(prefix)}\n{BEGIN}\n{base64_lines(gz, columns)}{TRAILER}\n\n"


def encode_xml_section(xml: bytes | str, *, columns: int = 76, level: int = 9) -> str:
    """The XML summary section: start marker, ``begin-base64``, base64 of gzip, trailer, end marker."""
    data = xml.encode("utf-8", "surrogateescape") if isinstance(xml, str) else bytes(xml)
    gz = gzip_member(data, level=level)
    return f"{XML_START_MARKER}\n{BEGIN}\n{base64_lines(gz, columns)}{TRAILER}\n{XML_END_MARKER}\n"
