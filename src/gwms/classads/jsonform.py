"""Ads in JSON form (docs/contracts.md) and their conversion to and from classad2.

In JSON form literal values are JSON values (``null`` is ``undefined``) and an
expression is the string ``"/Expr(<text>)/"``. A string *literal* that itself
looks like ``/Expr(...)/`` is written as an expression whose text is the quoted
string, so every ClassAd value survives a round trip.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final, Mapping

import classad2

from gwms.classads import native
from gwms.classads.errors import ClassAdSyntaxError, ClassAdValueError
from gwms.classads.parser import RESERVED_NAMES, parse_new_ad, parse_old_ad, parse_tree
from gwms.classads.values import (
    ERROR,
    EXPR_PREFIX,
    EXPR_SUFFIX,
    INT_MAX,
    INT_MIN,
    UNDEFINED,
    expr_string,
    is_expr_string,
)

JsonAd = dict[str, Any]

_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MARK: Final = "\x00Expr("  # stands in for an expression's "/Expr(" while decoding printJson
_STRING_ESCAPES: Final = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_VALID_EXPRESSIONS: dict[str, None] = {}


def quote_string(value: str) -> str:
    """A ClassAd string literal for ``value``."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    out = []
    for ch in value:
        esc = _STRING_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch == "\0":
            raise ClassAdValueError("a ClassAd string cannot contain the NUL character")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\%03o" % ord(ch))
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            raise ClassAdValueError(f"string {value!r} is not valid Unicode text")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def quote_name(name: str) -> str:
    """An attribute name as ClassAd text (quoted with ``'...'`` unless a plain identifier)."""
    if _IDENTIFIER.match(name) and name.lower() not in RESERVED_NAMES:
        return name
    if "\0" in name:
        raise ClassAdValueError("an attribute name cannot contain the NUL character")
    return "'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _checked_expression(value: str, name: str) -> str:
    text = value[len(EXPR_PREFIX) : -len(EXPR_SUFFIX)]
    if text not in _VALID_EXPRESSIONS:
        try:
            parse_tree(text)
        except ClassAdSyntaxError as exc:
            raise ClassAdSyntaxError(
                text, exc.position, f"{exc.reason} (attribute {name!r})"
            ) from None
        if len(_VALID_EXPRESSIONS) > 20_000:
            _VALID_EXPRESSIONS.clear()
        _VALID_EXPRESSIONS[text] = None
    return text


def unparse_value(value: Any, name: str = "value") -> str:
    """ClassAd text for a JSON-form value (``name`` is used in error messages)."""
    c = value.__class__
    if c is str:
        if is_expr_string(value):
            return _checked_expression(value, name)
        return quote_string(value)
    if c is bool:
        return "true" if value else "false"
    if c is int:
        if not INT_MIN <= value <= INT_MAX:
            raise ClassAdValueError(f"attribute {name!r}: integer {value} does not fit in 64 bits")
        return str(value)
    if c is float:
        if math.isfinite(value):
            return repr(value)
        if value != value:
            return 'real("NaN")'
        return 'real("INF")' if value > 0 else 'real("-INF")'
    if value is None or value is UNDEFINED:
        return "undefined"
    if value is ERROR:
        return "error"
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(unparse_value(v, name) for v in value) + "}"
    if isinstance(value, Mapping):
        return unparse_ad(value)
    raise ClassAdValueError(f"attribute {name!r}: {c.__name__} is not a JSON-form ClassAd value")


def unparse_ad(ad: Mapping[str, Any]) -> str:
    """New-syntax ClassAd text ``[a = 1; b = x + 1]`` for a JSON-form ad."""
    parts = []
    for key, value in ad.items():
        if not isinstance(key, str):
            raise ClassAdValueError(f"attribute names must be strings, not {key!r}")
        parts.append(f"{quote_name(key)} = {unparse_value(value, key)}")
    return "[" + "; ".join(parts) + "]"


def ad_from_json(ad: Mapping[str, Any]) -> classad2.ClassAd:
    """A classad2 ClassAd from a JSON-form ad.

    Raises :class:`ClassAdSyntaxError` for a malformed ``/Expr(...)/`` and
    :class:`ClassAdValueError` for values with no ClassAd form.
    """
    text = unparse_ad(ad)
    try:
        return native.native_ad(text)
    except classad2.ClassAdException as exc:  # pragma: no cover - gwms's checks come first
        raise ClassAdValueError(f"classad2 refused the ad: {exc}") from None


def _decode(value: Any) -> Any:
    c = value.__class__
    if c is str:
        if value.startswith(_MARK):
            return EXPR_PREFIX + value[len(_MARK) :]
        if is_expr_string(value):
            return expr_string(quote_string(value))
        return value
    if c is list:
        return [_decode(v) for v in value]
    if c is dict:
        return {k: _decode(v) for k, v in value.items()}
    return value


def _exact_reals(decoded: Any, native: Any) -> Any:
    """Put back the exact reals: classad2's JSON printer keeps only 15-16 digits."""
    c = decoded.__class__
    if c is float:
        return native if native.__class__ is float else decoded
    if c is dict and isinstance(native, classad2.ClassAd):
        for key, value in decoded.items():
            if value.__class__ in (float, dict, list):
                decoded[key] = _exact_reals(value, native.get(key))
    elif c is list and native.__class__ is list and len(native) == len(decoded):
        for i, value in enumerate(decoded):
            if value.__class__ in (float, dict, list):
                decoded[i] = _exact_reals(value, native[i])
    return decoded


def ad_to_json(ad: classad2.ClassAd) -> JsonAd:
    """The JSON form of a classad2 ClassAd (expressions as ``"/Expr(text)/"``).

    Expression texts are classad2's (compact) spelling; literal reals are exact.
    """
    raw = ad.printJson().replace('"\\/Expr(', '"\\u0000Expr(')
    return _exact_reals(_decode(json.loads(raw)), ad)


def native_value_to_json(value: Any) -> Any:
    """Convert a value read from classad2 (``ad[key]`` or ``ExprTree.eval``) to gwms's form.

    ``classad2.Value.Undefined``/``Error`` become :data:`UNDEFINED`/:data:`ERROR`,
    records become JSON-form dicts, and unevaluated expressions (inside lists)
    become ``"/Expr(text)/"`` strings.
    """
    if isinstance(value, classad2.Value):
        return UNDEFINED if value == classad2.Value.Undefined else ERROR
    if isinstance(value, classad2.ClassAd):
        return ad_to_json(value)
    if isinstance(value, classad2.ExprTree):
        holder = classad2.ClassAd()
        holder["x"] = value
        return ad_to_json(holder)["x"]
    if isinstance(value, list):
        return [native_value_to_json(v) for v in value]
    return value


def parse_ad(text: str) -> JsonAd:
    """Parse ClassAd text into JSON form.

    New syntax (``[a = 1; b = "x"]``) if the text starts with ``[``, else old
    syntax: one ``Name = expression`` per line, blank lines and ``#`` comment
    lines ignored. Raises :class:`ClassAdSyntaxError` with the position of the
    offending token.
    """
    stripped = text.lstrip()
    if stripped.startswith("[") or stripped.startswith("/*"):
        parse_new_ad(text)
        body = text
    else:
        parts = []
        for name, _node, start, end in parse_old_ad(text):
            parts.append(f"{quote_name(name)} = {text[start:end]}\n")
        body = "[" + ";".join(parts) + "]"
    try:
        return ad_to_json(native.native_ad(body))
    except classad2.ClassAdException:  # pragma: no cover - gwms's parser is at least as strict
        raise ClassAdSyntaxError(text, 0, "classad2 refused the ad") from None
