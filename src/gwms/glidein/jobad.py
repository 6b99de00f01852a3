"""Reading job ads (JSON form) and writing ads in the old ClassAd text syntax.

Ads travel as JSON objects in HTCondor's JSON ClassAd form: literals are JSON values and
an expression is the string ``"/Expr(<text>)/"``. Attribute names are case-insensitive,
so every lookup here is case-blind. :func:`old_syntax` writes an ad as the
``Name = value`` lines of ``_CONDOR_JOB_AD`` / ``_CONDOR_MACHINE_AD`` files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

_NEEDS_ESCAPE = re.compile(r'["\n\r]')

EXPR_PREFIX = "/Expr("
EXPR_SUFFIX = ")/"


class CaseBlindAd:
    """A read-only, case-blind view of a JSON-form ad."""

    __slots__ = ("_lower", "ad")

    def __init__(self, ad: Mapping[str, Any]) -> None:
        self.ad = ad
        self._lower = {k.lower(): v for k, v in ad.items()}

    def get(self, name: str, default: Any = None) -> Any:
        """The value of ``name`` (any case), or ``default`` when absent."""
        return self._lower.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lower

    def string(self, name: str) -> str | None:
        """A literal string value (not an expression), else None."""
        value = self.get(name)
        if isinstance(value, str) and not is_expr(value):
            return value
        return None

    def number(self, name: str) -> float | None:
        """A literal number (booleans excluded, numeric strings not parsed), else None."""
        value = self.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            return None
        return float(value)

    def boolean(self, name: str) -> bool | None:
        """A literal boolean (``true``/``false`` also as an expression text), else None."""
        value = self.get(name)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and is_expr(value):
            text = expr_text(value).strip().lower()
            if text in ("true", "false"):
                return text == "true"
        return None


def is_expr(value: Any) -> bool:
    """Whether a JSON-form value is an expression (``"/Expr(...)/"``)."""
    return isinstance(value, str) and value.startswith(EXPR_PREFIX) and value.endswith(EXPR_SUFFIX)


def expr_text(value: str) -> str:
    """The ClassAd text inside ``"/Expr(...)/"``."""
    return value[len(EXPR_PREFIX) : -len(EXPR_SUFFIX)]


def as_expr(text: str) -> str:
    """A ClassAd expression text in JSON form."""
    return f"{EXPR_PREFIX}{text}{EXPR_SUFFIX}"


def quote_string(text: str) -> str:
    """A string literal of the old ClassAd syntax, as HTCondor's ``printOld`` writes it:
    double quotes, ``"`` escaped as ``\\"``, every other character as it is (the old
    syntax has no other escapes) except line breaks, written ``\\n`` / ``\\r`` so that one
    attribute stays on one line."""
    if _NEEDS_ESCAPE.search(text) is None:
        return f'"{text}"'
    return '"' + text.replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'


def format_value(value: Any) -> str:
    """One JSON-form value as ClassAd text (expressions unwrapped, lists and ads nested)."""
    if value is None:
        return "undefined"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return "error"
        text = repr(value)
        return text if any(c in text for c in ".eE") else text + ".0"
    if isinstance(value, str):
        return expr_text(value) if is_expr(value) else quote_string(value)
    if isinstance(value, (list, tuple)):
        return "{ " + ", ".join(format_value(v) for v in value) + " }" if value else "{ }"
    if isinstance(value, Mapping):
        inner = "; ".join(f"{k} = {format_value(v)}" for k, v in value.items())
        return "[ " + inner + " ]" if inner else "[ ]"
    return quote_string(str(value))


def old_syntax(ad: Mapping[str, Any]) -> str:
    """An ad in the old ClassAd syntax: one ``Name = value`` line per attribute."""
    lines = []
    for name, value in ad.items():
        t = type(value)
        if t is str:
            if value.startswith(EXPR_PREFIX) and value.endswith(EXPR_SUFFIX):
                text = value[len(EXPR_PREFIX) : -len(EXPR_SUFFIX)]
            elif '"' in value or "\n" in value or "\r" in value:
                text = quote_string(value)
            else:
                text = '"' + value + '"'
        elif t is int:
            text = str(value)
        else:
            text = format_value(value)
        lines.append(f"{name} = {text}\n")
    return "".join(lines)


def env_value(value: Any) -> str:
    """An attribute value as an environment variable's text (strings without quotes)."""
    if isinstance(value, str) and not is_expr(value):
        return value
    return format_value(value)
