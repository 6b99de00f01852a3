"""ClassAd operator semantics over evaluated values (see :mod:`gwms.classads.values`).

Each function mirrors what the HTCondor ClassAd library (classad2) computes,
including the corner cases measured against it:

* ``error`` wins over ``undefined``, which wins over type errors;
* booleans count as 0/1 in binary arithmetic and comparisons, but ``-true`` is an error;
* 64-bit integers wrap; ``/`` truncates towards zero; ``%`` takes the dividend's sign;
  ``INT_MIN / -1`` is ``INT_MAX``; integer division by zero is an error;
* reals follow IEEE 754 except that a result of +infinity is an error,
  and ``%`` on reals is an error;
* string comparisons ignore ASCII case; ``=?=`` is case-sensitive and never undefined;
* ``&&``/``||`` are three-valued: ``false && x`` is false, ``true || x`` is true,
  ``undefined && false`` is false, ``undefined || true`` is true; a string operand is an error.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable, Final

from gwms.classads.values import ERROR, INT_MAX, INT_MIN, UNDEFINED, ascii_lower, wrap_int

Value = Any
_INF: Final = math.inf

ADD, SUB, MUL, DIV, MOD = range(5)


class FallbackToNative(Exception):
    """Raised while evaluating when only classad2 can give the exact answer.

    Callers catch it and evaluate the whole expression with classad2 instead.
    """


def truth(v: Value) -> Value:
    """A value as an operand of ``&&``, ``||``, ``!``, ``?:``: True/False/UNDEFINED/ERROR."""
    if v is True or v is False:
        return v
    c = v.__class__
    if c is int or c is float:
        return v != 0
    if v is UNDEFINED:
        return UNDEFINED
    return ERROR


def is_true(v: Value) -> bool:
    """Whether a result counts as a match: boolean true or a non-zero number."""
    if v is True:
        return True
    c = v.__class__
    return (c is int or c is float) and v != 0


# -- arithmetic ------------------------------------------------------------------


def _arith(a: Value, b: Value, op: int) -> Value:
    if a is ERROR or b is ERROR:
        return ERROR
    if a is UNDEFINED or b is UNDEFINED:
        return UNDEFINED
    ca, cb = a.__class__, b.__class__
    if ca is bool:
        a, ca = int(a), int
    if cb is bool:
        b, cb = int(b), int
    if ca is int and cb is int:
        if op == ADD:
            return wrap_int(a + b)
        if op == SUB:
            return wrap_int(a - b)
        if op == MUL:
            return wrap_int(a * b)
        if b == 0:
            return ERROR
        if a == INT_MIN and b == -1:
            return INT_MAX if op == DIV else 0
        if op == DIV:
            q = abs(a) // abs(b)
            return -q if (a < 0) != (b < 0) else q
        r = abs(a) % abs(b)
        return -r if a < 0 else r
    if (ca is not int and ca is not float) or (cb is not int and cb is not float):
        return ERROR
    x, y = float(a), float(b)
    if op == ADD:
        r = x + y
    elif op == SUB:
        r = x - y
    elif op == MUL:
        r = x * y
    elif op == DIV:
        if y == 0.0:
            if x == 0.0 or x != x:
                r = math.nan
            else:
                r = math.copysign(_INF, x) * math.copysign(1.0, y)
        else:
            r = x / y
    else:
        return ERROR
    return ERROR if r == _INF else r


def add(a: Value, b: Value) -> Value:
    """``a + b``."""
    if a.__class__ is int and b.__class__ is int:
        r = a + b
        return r if INT_MIN <= r <= INT_MAX else wrap_int(r)
    return _arith(a, b, ADD)


def sub(a: Value, b: Value) -> Value:
    """``a - b``."""
    if a.__class__ is int and b.__class__ is int:
        r = a - b
        return r if INT_MIN <= r <= INT_MAX else wrap_int(r)
    return _arith(a, b, SUB)


def mul(a: Value, b: Value) -> Value:
    """``a * b``."""
    if a.__class__ is int and b.__class__ is int:
        r = a * b
        return r if INT_MIN <= r <= INT_MAX else wrap_int(r)
    return _arith(a, b, MUL)


def div(a: Value, b: Value) -> Value:
    """``a / b``."""
    return _arith(a, b, DIV)


def mod(a: Value, b: Value) -> Value:
    """``a % b``."""
    return _arith(a, b, MOD)


def neg(v: Value) -> Value:
    """Unary ``-``."""
    c = v.__class__
    if c is int:
        return wrap_int(-v)
    if c is float:
        return -v
    return UNDEFINED if v is UNDEFINED else ERROR


def pos(v: Value) -> Value:
    """Unary ``+``."""
    c = v.__class__
    if c is int or c is float:
        return v
    return UNDEFINED if v is UNDEFINED else ERROR


def not_(v: Value) -> Value:
    """Unary ``!``."""
    if v is True:
        return False
    if v is False:
        return True
    c = v.__class__
    if c is int or c is float:
        return v == 0
    return UNDEFINED if v is UNDEFINED else ERROR


# -- comparisons -----------------------------------------------------------------


def _compare(a: Value, b: Value, fn: Callable[[Any, Any], bool]) -> Value:
    if a is ERROR or b is ERROR:
        return ERROR
    if a is UNDEFINED or b is UNDEFINED:
        return UNDEFINED
    ca, cb = a.__class__, b.__class__
    if ca is str and cb is str:
        return fn(ascii_lower(a), ascii_lower(b))
    if ca is bool:
        a, ca = int(a), int
    if cb is bool:
        b, cb = int(b), int
    if ca is int and cb is int:
        return fn(a, b)
    if (ca is int or ca is float) and (cb is int or cb is float):
        return fn(float(a), float(b))
    return ERROR


def _make_compare(fn: Callable[[Any, Any], bool], name: str) -> Callable[[Value, Value], Value]:
    def compare(a: Value, b: Value) -> Value:
        ca, cb = a.__class__, b.__class__
        if ca is cb and (ca is int or ca is float):
            return fn(a, b)
        return _compare(a, b, fn)

    compare.__name__ = compare.__qualname__ = name
    compare.__doc__ = f"ClassAd comparison {name} (strings ignore ASCII case)."
    return compare


lt = _make_compare(operator.lt, "lt")
le = _make_compare(operator.le, "le")
gt = _make_compare(operator.gt, "gt")
ge = _make_compare(operator.ge, "ge")
ne = _make_compare(operator.ne, "ne")


def eq(a: Value, b: Value) -> Value:
    """ClassAd ``==`` (strings ignore ASCII case)."""
    ca, cb = a.__class__, b.__class__
    if ca is cb:
        if ca is int or ca is float:
            return a == b
        if ca is str:
            return a == b or (len(a) == len(b) and ascii_lower(a) == ascii_lower(b))
    return _compare(a, b, operator.eq)


def identical(a: Value, b: Value) -> Value:
    """ClassAd ``=?=`` / ``is``: same type and same value; strings case-sensitive.

    Never undefined; comparing two lists or two records is an error.
    """
    ca = a.__class__
    if ca is not b.__class__:
        return False
    if ca is tuple or ca is dict:
        return ERROR
    if a is UNDEFINED or a is ERROR or b is UNDEFINED or b is ERROR:
        return a is b
    return a == b


def not_identical(a: Value, b: Value) -> Value:
    """ClassAd ``=!=`` / ``isnt``."""
    r = identical(a, b)
    return r if r is ERROR else not r


COMPARISONS: Final[dict[str, Callable[[Value, Value], Value]]] = {
    "<": lt,
    "<=": le,
    ">": gt,
    ">=": ge,
    "==": eq,
    "!=": ne,
    "=?=": identical,
    "=!=": not_identical,
}
ARITHMETIC: Final[dict[str, Callable[[Value, Value], Value]]] = {
    "+": add,
    "-": sub,
    "*": mul,
    "/": div,
    "%": mod,
}
PYTHON_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
FLIPPED: Final = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!=", "=?=": "=?=", "=!=": "=!="}
"""``a OP b`` is ``b FLIPPED[OP] a``."""
