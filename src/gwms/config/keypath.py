"""Key paths: where a setting sits inside a nested configuration document.

A key path is a sequence of mapping keys (``str``) and list indexes (``int``). It is
written the way a reader would point at the setting: ``entries[2].limits.max_idle``.
Keys that are not plain names (empty, containing dots, spaces, brackets, quotes, or
starting with a digit) are written quoted in brackets: ``sites["a.b"].name``.
:func:`parse_key_path` reads that form back, so the two functions round-trip.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from gwms.errors import GwmsError

KeyPart = str | int
"""One step of a key path: a mapping key or a list index."""

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


class KeyPathError(GwmsError):
    """A key path in text form could not be read."""


def format_key_path(parts: Sequence[KeyPart]) -> str:
    """Write a key path as text, e.g. ``("entries", 2, "limits")`` -> ``entries[2].limits``.

    The empty path (the top level of the document) is the empty string.
    """
    out: list[str] = []
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, (int, str)):
            raise TypeError(f"a key path holds str keys and int indexes, not {part!r}")
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _PLAIN_KEY.match(part):
            out.append(f".{part}" if out else part)
        else:
            out.append(f"[{json.dumps(part, ensure_ascii=False)}]")
    return "".join(out)


def parse_key_path(text: str) -> tuple[KeyPart, ...]:
    """Read a key path written by :func:`format_key_path` back into its parts."""
    parts: list[KeyPart] = []
    pos = 0
    decoder = json.JSONDecoder()
    while pos < len(text):
        char = text[pos]
        if char == "[":
            if text.startswith('"', pos + 1):
                try:
                    key, end = decoder.raw_decode(text, pos + 1)
                except json.JSONDecodeError as exc:
                    raise KeyPathError(f"bad quoted key at offset {pos} in key path {text!r}") from exc
                parts.append(key)
                pos = end
            else:
                match = re.compile(r"-?\d+").match(text, pos + 1)
                if match is None:
                    raise KeyPathError(f"expected an index at offset {pos + 1} in key path {text!r}")
                parts.append(int(match.group()))
                pos = match.end()
            if not text.startswith("]", pos):
                raise KeyPathError(f"expected ']' at offset {pos} in key path {text!r}")
            pos += 1
            continue
        if char == ".":
            if not parts:
                raise KeyPathError(f"a key path cannot start with '.': {text!r}")
            pos += 1
        elif parts:
            raise KeyPathError(f"expected '.' or '[' at offset {pos} in key path {text!r}")
        match = _PLAIN_KEY_AT.match(text, pos)
        if match is None:
            raise KeyPathError(f"expected a key name at offset {pos} in key path {text!r}")
        parts.append(match.group())
        pos = match.end()
    return tuple(parts)


_PLAIN_KEY_AT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def describe_key_path(parts: Sequence[KeyPart]) -> str:
    """Like :func:`format_key_path`, but the empty path reads ``(top level)``."""
    return format_key_path(parts) or "(top level)"
