"""The values of the ClassAd language as gwms represents them in Python.

=====================  ==========================================
ClassAd type           Python value
=====================  ==========================================
undefined              :data:`UNDEFINED`
error                  :data:`ERROR`
boolean                ``bool``
integer (64 bit)       ``int``
real                   ``float``
string                 ``str``
list                   ``tuple`` while evaluating, ``list`` in results
record (nested ad)     ``dict`` in JSON form
=====================  ==========================================

In JSON form (see docs/contracts.md) an attribute whose value is an expression is
held as the string ``"/Expr(<text>)/"``; :func:`is_expr_string` and
:func:`expr_string` convert.
"""

from __future__ import annotations

import math
from typing import Final

INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**63 - 1

EXPR_PREFIX: Final = "/Expr("
EXPR_SUFFIX: Final = ")/"


class _Special:
    """One of the two special ClassAd values; singletons, falsy, compared by identity."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    __str__ = __repr__

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return self._name


UNDEFINED: Final = _Special("UNDEFINED")
"""The ClassAd ``undefined`` value (a missing attribute, or ``null`` in JSON form)."""

ERROR: Final = _Special("ERROR")
"""The ClassAd ``error`` value (a type error, a division by zero, ...)."""


def is_expr_string(value: object) -> bool:
    """True if ``value`` is a JSON-form expression string ``"/Expr(...)/"``."""
    return (
        value.__class__ is str
        and value.startswith(EXPR_PREFIX)  # type: ignore[union-attr]
        and value.endswith(EXPR_SUFFIX)  # type: ignore[union-attr]
        and len(value) >= len(EXPR_PREFIX) + len(EXPR_SUFFIX)  # type: ignore[arg-type]
    )


def expr_string(text: str) -> str:
    """The JSON-form string for the expression ``text``: ``"/Expr(text)/"``."""
    return f"{EXPR_PREFIX}{text}{EXPR_SUFFIX}"


def expr_text(value: str) -> str:
    """The expression text inside a JSON-form expression string."""
    return value[len(EXPR_PREFIX) : -len(EXPR_SUFFIX)]


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_ASCII_UPPER = {c: c - 32 for c in range(ord("a"), ord("z") + 1)}


def ascii_lower(s: str) -> str:
    """Lower-case ASCII letters only, as the C library does for ClassAds."""
    return s.lower() if s.isascii() else s.translate(_ASCII_LOWER)


def ascii_upper(s: str) -> str:
    """Upper-case ASCII letters only, as the C library does for ClassAds."""
    return s.upper() if s.isascii() else s.translate(_ASCII_UPPER)


def wrap_int(value: int) -> int:
    """Wrap an integer to 64-bit two's complement, as ClassAd integer arithmetic does."""
    if INT_MIN <= value <= INT_MAX:
        return value
    return ((value - INT_MIN) % 2**64) + INT_MIN


def real_to_int(value: float) -> int:
    """Convert a real to an integer like a C cast: truncate; NaN and out of range give INT_MIN."""
    if value != value or value >= 9.223372036854775808e18 or value < -9.223372036854775808e18:
        return INT_MIN
    return int(value)


def real_to_string(value: float) -> str:
    """Format a real the way the ClassAd library prints it (``%.15E``, with special forms)."""
    if value != value:
        return 'real("NaN")'
    if value == math.inf:
        return 'real("INF")'
    if value == -math.inf:
        return 'real("-INF")'
    if value == 0.0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    return "%.15E" % value
