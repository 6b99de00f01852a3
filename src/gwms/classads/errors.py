"""Errors raised by :mod:`gwms.classads` for input a user can get wrong."""

from __future__ import annotations

import json

from gwms.errors import GwmsError


class ClassAdError(GwmsError):
    """A ClassAd text or value that cannot be used."""


class ClassAdSyntaxError(ClassAdError):
    """Malformed ClassAd text (an expression or a whole ad).

    ``position`` is the 0-based offset of the offending token in ``text``;
    ``line`` and ``column`` are 1-based, for people.
    """

    def __init__(self, text: str, position: int, reason: str) -> None:
        position = max(0, min(position, len(text)))
        line = text.count("\n", 0, position) + 1
        line_start = text.rfind("\n", 0, position) + 1
        column = position - line_start + 1
        line_end = text.find("\n", position)
        snippet = text[line_start : line_end if line_end >= 0 else len(text)]
        if len(snippet) > 80:
            lo = max(0, column - 40)
            snippet = ("..." if lo else "") + snippet[lo : lo + 77] + "..."
        super().__init__(f"syntax error at line {line}, column {column}: {reason} in {json.dumps(snippet, ensure_ascii=False)}")
        self.text = text
        self.position = position
        self.line = line
        self.column = column
        self.reason = reason


class ClassAdValueError(ClassAdError):
    """A JSON-form value that has no ClassAd equivalent (say an integer beyond 64 bits)."""
