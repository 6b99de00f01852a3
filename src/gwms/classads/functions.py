"""The ClassAd built-in functions gwms evaluates itself (see :data:`FUNCTIONS`).

Each mirrors the HTCondor library's behaviour, measured against classad2: how it
treats ``undefined``/``error`` arguments, wrong types, and C conversions
(``int("12abc")`` is 12 because the library uses ``strtod``). Cases Python cannot
reproduce exactly (regular expressions outside a common subset, non-ASCII
regexp input, lists turned into strings, hexadecimal strings) raise
:class:`~gwms.classads.operators.FallbackToNative` so classad2 answers instead.
``ifThenElse`` is lazy and lives in the compiler.
"""

from __future__ import annotations

import math
import re
import time as _time
from typing import Any, Callable, Final

from gwms.classads.operators import FallbackToNative, eq
from gwms.classads.values import (
    ERROR,
    UNDEFINED,
    ascii_lower,
    ascii_upper,
    real_to_int,
    real_to_string,
)

Value = Any
_C_SPACE: Final = " \t\n\v\f\r"
DEFAULT_DELIMITERS: Final = " ,\t\r\n"
"""stringListMember's delimiters when none are given: space, comma, tab, CR, LF."""


def _is(cls: type, name: str) -> Callable[[Value], bool]:
    def check(v: Value) -> bool:
        return v.__class__ is cls

    check.__name__ = check.__qualname__ = name
    check.__doc__ = f"``{name}(v)``: whether v is a ClassAd {cls.__name__} value."
    return check


def is_undefined(v: Value) -> bool:
    """``isUndefined(v)``."""
    return v is UNDEFINED


def is_error(v: Value) -> bool:
    """``isError(v)``."""
    return v is ERROR


is_string = _is(str, "isString")
is_integer = _is(int, "isInteger")
is_real = _is(float, "isReal")
is_boolean = _is(bool, "isBoolean")
is_list = _is(tuple, "isList")
is_classad = _is(dict, "isClassAd")


def to_string(v: Value) -> Value:
    """A value as ``strcat`` and ``toLower`` see it (undefined and error pass through)."""
    c = v.__class__
    if c is str:
        return v
    if c is bool:
        return "true" if v else "false"
    if c is int:
        return str(v)
    if c is float:
        return real_to_string(v)
    if v is UNDEFINED or v is ERROR:
        return v
    raise FallbackToNative("a list or record turned into a string")


def strcat(*values: Value) -> Value:
    """``strcat(a, b, ...)``: the first undefined or error argument is the result."""
    parts = []
    for v in values:
        s = to_string(v)
        if s is UNDEFINED or s is ERROR:
            return s
        parts.append(s)
    return "".join(parts)


def to_lower(v: Value) -> Value:
    """``toLower(v)`` (ASCII letters only)."""
    s = to_string(v)
    return s if s is UNDEFINED or s is ERROR else ascii_lower(s)


def to_upper(v: Value) -> Value:
    """``toUpper(v)`` (ASCII letters only)."""
    s = to_string(v)
    return s if s is UNDEFINED or s is ERROR else ascii_upper(s)


def size(v: Value) -> Value:
    """``size(v)``: bytes of a string (UTF-8), items of a list, attributes of a record."""
    c = v.__class__
    if c is str:
        return len(v) if v.isascii() else len(v.encode("utf-8", "surrogateescape"))
    if c is tuple or c is dict:
        return len(v)
    return UNDEFINED if v is UNDEFINED else ERROR


_STRTOD = re.compile(
    r"[ \t\n\v\f\r]*([+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan(?:\([0-9A-Za-z_]*\))?))",
    re.IGNORECASE,
)
_HEX = re.compile(r"[ \t\n\v\f\r]*[+-]?0[xX]")


def _strtod(s: str) -> float | None:
    """C ``strtod`` on a prefix of ``s`` (None if no number starts it)."""
    if _HEX.match(s):
        raise FallbackToNative("hexadecimal number in a string")
    m = _STRTOD.match(s)
    if m is None:
        return None
    number = m.group(1)
    paren = number.find("(")
    return float(number[:paren] if paren >= 0 else number)


def to_int(v: Value) -> Value:
    """``int(v)``: truncates reals; parses strings like C (``strtod`` then a cast)."""
    c = v.__class__
    if c is int:
        return v
    if c is bool:
        return int(v)
    if c is float:
        return real_to_int(v)
    if c is str:
        r = _strtod(v)
        return ERROR if r is None else real_to_int(r)
    return UNDEFINED if v is UNDEFINED else ERROR


def to_real(v: Value) -> Value:
    """``real(v)``."""
    c = v.__class__
    if c is float:
        return v
    if c is int or c is bool:
        return float(v)
    if c is str:
        r = _strtod(v)
        return ERROR if r is None else r
    return UNDEFINED if v is UNDEFINED else ERROR


def member(item: Value, items: Value) -> Value:
    """``member(x, list)``: x equals (``==``) an element of the list."""
    if item is UNDEFINED or items is UNDEFINED:
        return UNDEFINED
    if item is ERROR or items is ERROR:
        return ERROR
    c = item.__class__
    if c is tuple or c is dict or items.__class__ is not tuple:
        return ERROR
    for element in items:
        if eq(item, element) is True:
            return True
    return False


_SPLITTERS: dict[str, re.Pattern[str]] = {}


def string_list_tokens(items: str, delimiters: str) -> list[str]:
    """The items of a string list: split at any delimiter, whitespace trimmed, empties dropped."""
    if not delimiters:
        parts = [items]
    else:
        splitter = _SPLITTERS.get(delimiters)
        if splitter is None:
            splitter = re.compile("[" + re.escape(delimiters) + "]")
            if len(_SPLITTERS) > 256:
                _SPLITTERS.clear()
            _SPLITTERS[delimiters] = splitter
        parts = splitter.split(items)
    return [t for t in (p.strip(_C_SPACE) for p in parts) if t]


def _string_list_member(item: Value, items: Value, delimiters: Value, ignore_case: bool) -> Value:
    for a in (item, items, delimiters):
        if a.__class__ is not str and a is not UNDEFINED:
            return ERROR
    if item is UNDEFINED or items is UNDEFINED:
        return UNDEFINED if item is items else False
    tokens_of = DEFAULT_DELIMITERS if delimiters is UNDEFINED else delimiters
    if ignore_case:
        wanted = ascii_lower(item)
        if wanted not in ascii_lower(items):  # every token is a substring of the list
            return False
        return any(ascii_lower(t) == wanted for t in string_list_tokens(items, tokens_of))
    if item not in items:
        return False
    return item in string_list_tokens(items, tokens_of)


def string_list_member(item: Value, items: Value, delimiters: Value = UNDEFINED) -> Value:
    """``stringListMember(item, list [, delimiters])`` (default delimiters: space, comma, tab, CR, LF)."""
    return _string_list_member(item, items, delimiters, False)


def string_list_imember(item: Value, items: Value, delimiters: Value = UNDEFINED) -> Value:
    """``stringListIMember(item, list [, delimiters])``: like stringListMember ignoring ASCII case."""
    return _string_list_member(item, items, delimiters, True)


def current_time() -> int:
    """``time()``: seconds since the epoch."""
    return int(_time.time())


def _rounding(name: str, rounder: Callable[[float], int]) -> Callable[[Value], Value]:
    def rounded(v: Value) -> Value:
        c = v.__class__
        if c is int:
            return v
        if c is bool:
            return int(v)
        if c is str:
            r = _strtod(v)
            if r is None:
                return ERROR
            v = r
        elif c is not float:
            return ERROR  # the library gives error for undefined too
        return real_to_int(rounder(v) if math.isfinite(v) else v)

    rounded.__name__ = rounded.__qualname__ = name
    rounded.__doc__ = f"``{name}(v)``: an integer; strings are read as numbers; undefined is an error."
    return rounded


floor = _rounding("floor", math.floor)
ceiling = _rounding("ceiling", math.ceil)
round_ = _rounding("round", round)  # round half to even, like C's rint()


# -- regexp ----------------------------------------------------------------------

_QUANTIFIER_BRACE = re.compile(r"\{\d+(?:,\d*)?\}")
_SAFE_ESCAPES: Final = frozenset("dDwWsSbBntr")
_SAFE_CLASS_ESCAPES: Final = frozenset("dDwWsSntr")
_OPTION_FLAGS: Final = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}
_PATTERNS: dict[tuple[str, str], re.Pattern[str] | None] = {}


def _portable_pattern(pattern: str) -> bool:
    """Whether Python's ``re`` reads ``pattern`` exactly as PCRE2 does (a common subset)."""
    if not pattern.isascii():
        return False
    i, n = 0, len(pattern)
    previous_quantifier = False
    while i < n:
        ch = pattern[i]
        quantifier = False
        if ch == "\\":
            if i + 1 >= n:
                return False
            e = pattern[i + 1]
            if e.isalnum() and e not in _SAFE_ESCAPES:
                return False
            i += 2
        elif ch == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            if i < n and pattern[i] == "]":
                return False
            while i < n and pattern[i] != "]":
                if pattern[i] == "[":
                    return False
                if pattern[i] == "\\":
                    if i + 1 >= n:
                        return False
                    e = pattern[i + 1]
                    if e.isalnum() and e not in _SAFE_CLASS_ESCAPES:
                        return False
                    i += 2
                    continue
                i += 1
            if i >= n:
                return False
            i += 1
        elif ch == "(":
            if pattern.startswith("(?", i) and not pattern.startswith("(?:", i):
                return False
            i += 1
        elif ch == "{":
            m = _QUANTIFIER_BRACE.match(pattern, i)
            if m is None:
                return False
            i = m.end()
            quantifier = True
        elif ch in "*+?":
            if previous_quantifier and ch == "+":
                return False  # possessive
            i += 1
            quantifier = ch != "?" or not previous_quantifier
        else:
            i += 1
        previous_quantifier = quantifier
    return True


def compiled_pattern(pattern: str, options: str) -> re.Pattern[str]:
    """Python's compiled form of a regexp() pattern and options (cached).

    Raises FallbackToNative when Python's ``re`` might read the pattern
    differently from the library's PCRE2.
    """
    key = (pattern, options)
    try:
        compiled = _PATTERNS[key]
    except KeyError:
        compiled = None
        flags = re.ASCII
        portable = _portable_pattern(pattern)
        for option in options:
            if option == "x":
                portable = False  # PCRE's extended syntax differs from Python's re.VERBOSE
            flags |= _OPTION_FLAGS.get(option, 0)  # the library ignores other letters
        if portable:
            try:
                compiled = re.compile(pattern, flags)
            except re.error:
                compiled = None
        if len(_PATTERNS) > 1024:
            _PATTERNS.clear()
        _PATTERNS[key] = compiled
    if compiled is None:
        raise FallbackToNative("regular expression outside the portable subset")
    return compiled


def regexp(*args: Value) -> Value:
    """``regexp(pattern, target [, options])``; options ``i``, ``m``, ``s`` (others ignored)."""
    for a in args:
        if a is ERROR:
            return ERROR
    for a in args:
        if a is UNDEFINED:
            return UNDEFINED
    for a in args:
        if a.__class__ is not str:
            return ERROR
    target = args[1]
    if not target.isascii():
        raise FallbackToNative("regexp on non-ASCII text")
    compiled = compiled_pattern(args[0], args[2] if len(args) > 2 else "")
    return compiled.search(target) is not None


FUNCTIONS: Final[dict[str, tuple[int, int, Callable[..., Value]]]] = {
    "isundefined": (1, 1, is_undefined),
    "iserror": (1, 1, is_error),
    "isstring": (1, 1, is_string),
    "isinteger": (1, 1, is_integer),
    "isreal": (1, 1, is_real),
    "isboolean": (1, 1, is_boolean),
    "islist": (1, 1, is_list),
    "isclassad": (1, 1, is_classad),
    "stringlistmember": (2, 3, string_list_member),
    "stringlistimember": (2, 3, string_list_imember),
    "regexp": (2, 3, regexp),
    "size": (1, 1, size),
    "strcat": (0, 255, strcat),
    "tolower": (1, 1, to_lower),
    "toupper": (1, 1, to_upper),
    "int": (1, 1, to_int),
    "real": (1, 1, to_real),
    "member": (2, 2, member),
    "time": (0, 0, current_time),
    "floor": (1, 1, floor),
    "ceiling": (1, 1, ceiling),
    "round": (1, 1, round_),
}
"""Lower-cased function name -> (min args, max args, implementation over values)."""

VOLATILE: Final = frozenset({"time"})
"""Functions whose result changes between calls (never folded into constants)."""
