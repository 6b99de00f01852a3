"""Values of submit commands: quantities with units, booleans, integers, ClassAd expressions.

Pure functions; they raise :class:`SubmitValueError` with what is wrong, and the parser
adds the file and line.

Expressions are checked with :func:`check_expr` and stored in the JSON form of
docs/contracts.md: a literal (number, string, boolean, ``undefined``) as the JSON value,
anything else as the string ``"/Expr(<text>)/"``.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

import classad2

from gwms.pool.schedd.submit_errors import SubmitValueError

EXPR_PREFIX = "/Expr("
EXPR_SUFFIX = ")/"

KIB = 1 << 10
MIB = 1 << 20

# --------------------------------------------------------------------------- expressions
#
# Whether an expression is valid is decided by classad2 (fast: a few microseconds, which
# matters for per-job expressions), in one small function, _classad_parses(). classad2 does
# not say *where* a syntax error is, so for a refused expression _locate_error() asks
# gwms.classads.parse_expr (which reports the position), or else a light tokenizer here.

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<qattr>'(?:[^'\\]|\\.)*')
  | (?P<op>=\?=|=!=|>>>|<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%<>!~&|^?:()\[\]{},;.=])
    """,
    re.VERBOSE | re.DOTALL,
)
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = {")": "(", "]": "[", "}": "{"}
_UNARY = frozenset({"-", "+", "!", "~"})
_KEYWORD_OPS = frozenset({"is", "isnt"})


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, position) tokens of an expression; raises at a character that cannot
    start a token (an unterminated string, a stray ``$``...)."""
    out: list[tuple[str, str, int]] = []
    pos = 0
    n = len(text)
    while pos < n:
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            if ch in "\"'":
                raise SubmitValueError(
                    f"unterminated quoted string starting at column {pos + 1}", position=pos
                )
            raise SubmitValueError(
                f"unexpected character {ch!r} at column {pos + 1}", position=pos
            )
        kind = m.lastgroup or ""
        if kind != "ws":
            tok = m.group()
            if kind == "ident" and tok.lower() in _KEYWORD_OPS:
                kind = "op"
            out.append((kind, tok, pos))
        pos = m.end()
    return out


def _is_operand(kind: str, tok: str) -> bool:
    return kind in ("num", "ident", "str", "qattr")


def _ends_operand(kind: str, tok: str) -> bool:
    return _is_operand(kind, tok) or tok in (")", "]", "}")


def _classads_locate(text: str) -> SubmitValueError | None:
    """The syntax error gwms.classads.parse_expr finds in ``text``, if it finds one."""
    try:
        from gwms.classads import ClassAdSyntaxError, parse_expr
    except ImportError:
        return None
    try:
        parse_expr(text)
    except ClassAdSyntaxError as err:
        if err.line == 1:
            where = f"column {err.column}"
        else:
            where = f"line {err.line}, column {err.column}"
        return SubmitValueError(f"{err.reason} at {where}", position=err.position)
    except Exception:  # any other failure of that parser: use the local one
        return None
    return None


def _locate_error(text: str) -> SubmitValueError:
    """A SubmitValueError for an expression classad2 refused, with the best position."""
    return _classads_locate(text) or _locate_error_locally(text)


def _locate_error_locally(text: str) -> SubmitValueError:
    """Find the position of a syntax error with the tokenizer above."""
    try:
        toks = _tokens(text)
    except SubmitValueError as err:
        return err
    if not toks:
        return SubmitValueError("the expression is empty", position=0)
    stack: list[tuple[str, int]] = []
    for kind, tok, pos in toks:
        if kind == "op" and tok in _OPENERS:
            stack.append((tok, pos))
        elif kind == "op" and tok in _CLOSERS:
            if not stack or stack[-1][0] != _CLOSERS[tok]:
                return SubmitValueError(f"unmatched {tok!r} at column {pos + 1}", position=pos)
            stack.pop()
    if stack:
        tok, pos = stack[-1]
        return SubmitValueError(f"unclosed {tok!r} opened at column {pos + 1}", position=pos)
    prev: tuple[str, str, int] | None = None
    for kind, tok, pos in toks:
        if prev is None:
            if kind == "op" and tok not in _UNARY and tok not in _OPENERS:
                return SubmitValueError(f"unexpected {tok!r} at column {pos + 1}", position=pos)
        else:
            pk, pt, _ = prev
            after_operator = pk == "op" and not _ends_operand(pk, pt)
            if (
                after_operator
                and kind == "op"
                and tok not in _UNARY
                and tok not in _OPENERS
                and pt not in ("[", "{")
            ):
                return SubmitValueError(f"unexpected {tok!r} at column {pos + 1}", position=pos)
            if _ends_operand(pk, pt) and _is_operand(kind, tok):
                return SubmitValueError(f"unexpected {tok!r} at column {pos + 1}", position=pos)
        prev = (kind, tok, pos)
    last_kind, last_tok, _ = toks[-1]
    if last_kind == "op" and not _ends_operand(last_kind, last_tok):
        return SubmitValueError(
            f"the expression ends after {last_tok!r} (column {len(text)})", position=len(text)
        )
    # Fall back: the first token after the longest prefix that parses.
    good = -1
    for i, (_kind, tok, pos) in enumerate(toks):
        if _classad_parses(text[: pos + len(tok)]):
            good = i
    nxt = good + 1
    if nxt < len(toks):
        _k, tok, pos = toks[nxt]
        return SubmitValueError(f"syntax error near {tok!r} at column {pos + 1}", position=pos)
    return SubmitValueError("syntax error", position=0)


def _classad_parses(text: str) -> bool:
    """Whether ``text`` is one ClassAd expression (the single switch point of the backend)."""
    try:
        classad2.ExprTree(text)
    except Exception:  # classad2 raises its own ClassAdException type
        return False
    return True


_MATCH_TIME = re.compile(r"\$\$\((?:[^()]|\([^()]*\))*\)")
_checked: dict[str, SubmitValueError | None] = {}
_CHECK_CACHE_MAX = 50_000


def _mask_match_time(text: str) -> str:
    """``$$(...)`` (expanded at match time) replaced by a placeholder identifier of the same
    length, so positions stay right and the rest can be checked."""
    return _MATCH_TIME.sub(lambda m: "x" + "_" * (len(m.group()) - 1), text)


def check_expr(text: str) -> None:
    """Raise :class:`SubmitValueError` (with ``position``) unless ``text`` is a valid ClassAd
    expression. ``$$(...)`` match-time macros are allowed anywhere."""
    hit = _checked.get(text, False)
    if hit is None:
        return
    if hit is not False:
        raise hit  # type: ignore[misc]
    masked = _mask_match_time(text) if "$$(" in text else text
    err: SubmitValueError | None = None
    if not masked.strip():
        err = SubmitValueError("the expression is empty", position=0)
    elif not _classad_parses(masked):
        err = _locate_error(masked)
    if len(_checked) >= _CHECK_CACHE_MAX:
        _checked.clear()
    _checked[text] = err
    if err is not None:
        raise err


_INT_LITERAL = re.compile(r"[+-]?(?:0|[1-9]\d*)\Z")
_FLOAT_LITERAL = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+(?=[eE]))(?:[eE][+-]?\d+)?\Z")
_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"\Z', re.DOTALL)


def expr_json(text: str) -> Any:
    """The JSON form of an expression: its literal value for a number, string, boolean or
    ``undefined``, else ``"/Expr(text)/"`` after checking the syntax."""
    t = text.strip()
    first = t[:1]
    if first == '"':
        if _STRING_LITERAL.match(t):
            body = t[1:-1]
            if "\\" not in body:
                return body
            if "$$(" not in body:
                value = classad2.ExprTree(t).eval()
                if isinstance(value, str):
                    return value
            return _unescape_classad_string(body)
    elif first.isdigit() or first in ("+", "-", "."):
        if _INT_LITERAL.match(t):
            return int(t)
        if _FLOAT_LITERAL.match(t):
            value = float(t)
            if math.isfinite(value):
                return value
    else:
        low = t.lower()
        if low == "true":
            return True
        if low == "false":
            return False
        if low == "undefined":
            return None
    check_expr(t)
    return EXPR_PREFIX + t + EXPR_SUFFIX


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "\\": "\\", '"': '"', "'": "'"}


def _unescape_classad_string(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            out.append(_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def as_expr(text: str) -> str:
    """``"/Expr(text)/"`` after checking the syntax (for attributes that are always
    expressions, such as Requirements)."""
    t = text.strip()
    check_expr(t)
    return EXPR_PREFIX + t + EXPR_SUFFIX


def expr_text(value: Any) -> str:
    """The ClassAd text of a JSON-form value (inverse of :func:`expr_json`)."""
    if isinstance(value, str) and value.startswith(EXPR_PREFIX) and value.endswith(EXPR_SUFFIX):
        return value[len(EXPR_PREFIX) : -len(EXPR_SUFFIX)]
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return classad2.quote(value)
    return repr(value)


def referenced_attributes(text: str) -> set[str]:
    """Lower-cased names of the target (machine) attributes an expression refers to:
    bare names and ``TARGET.name``, not ``MY.name``; names inside strings are ignored."""
    masked = _mask_match_time(text) if "$$(" in text else text
    try:
        toks = _tokens(masked)
    except SubmitValueError:
        return set()
    names: set[str] = set()
    for i, (kind, tok, _pos) in enumerate(toks):
        if kind != "ident":
            continue
        if i + 1 < len(toks) and toks[i + 1][1] == ".":
            continue  # a scope prefix such as MY or TARGET
        if i >= 2 and toks[i - 1][1] == ".":
            if toks[i - 2][1].lower() == "my":
                continue
        names.add(tok.lower())
    return names


# ----------------------------------------------------------------------------- quantities

_QUANTITY = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*\Z")
_UNITS: dict[str, int] = {
    "k": KIB,
    "kb": KIB,
    "kib": KIB,
    "m": MIB,
    "mb": MIB,
    "mib": MIB,
    "g": 1 << 30,
    "gb": 1 << 30,
    "gib": 1 << 30,
    "t": 1 << 40,
    "tb": 1 << 40,
    "tib": 1 << 40,
}


def parse_quantity(value: str, *, base: int, what: str) -> int | str:
    """A size in units of ``base`` bytes (``MIB`` for memory, ``KIB`` for disk).

    ``"2GB"`` and ``"2 g"`` are 2 GiB; a bare number is already in ``base`` units; K/KB,
    M/MB, G/GB, T/TB (case-insensitive, powers of 1024) convert; a fraction rounds up.
    Anything that is not a number with a unit must be a ClassAd expression: a constant one
    is evaluated (``2048 + 1024``), others are kept as ``"/Expr(...)/"``.
    """
    m = _QUANTITY.match(value)
    if m is not None:
        number = Fraction(m.group(1))
        unit = m.group(2)
        if unit:
            factor = _UNITS.get(unit.lower())
            if factor is None:
                raise SubmitValueError(
                    f'unknown unit "{unit}" in {what} (use K, M, G or T, optionally with B)'
                )
            return math.ceil(number * factor / base)
        return math.ceil(number)
    text = value.strip()
    try:
        check_expr(text)
    except SubmitValueError as err:
        raise SubmitValueError(
            f"{what} is neither a size (a number with an optional unit) nor a valid "
            f"expression: {err.reason}",
            position=err.position,
        ) from None
    return _constant_or_expr(text, what)


def _constant_or_expr(text: str, what: str) -> int | str:
    try:
        value = classad2.ExprTree(_mask_match_time(text)).eval()
    except Exception:
        value = None
    if type(value) not in (int, float):  # not bool, not classad2.Value (an IntEnum)
        return EXPR_PREFIX + text + EXPR_SUFFIX
    assert isinstance(value, (int, float))
    if not math.isfinite(value) or value < 0:
        raise SubmitValueError(f"{what} must not be negative (got {value})")
    return math.ceil(value)


def parse_count(value: str, *, what: str) -> int | str:
    """A non-negative count (CPUs, GPUs): an integer, a constant expression, or an
    expression kept as ``"/Expr(...)/"``."""
    text = value.strip()
    if _INT_LITERAL.match(text):
        n = int(text)
        if n < 0:
            raise SubmitValueError(f"{what} must not be negative (got {n})")
        return n
    if _QUANTITY.match(text) is not None:
        raise SubmitValueError(f'{what} must be a whole number, not "{text}"')
    try:
        check_expr(text)
    except SubmitValueError as err:
        raise SubmitValueError(
            f"{what} is neither a number nor a valid expression: {err.reason}",
            position=err.position,
        ) from None
    return _constant_or_expr(text, what)


_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


def parse_bool(value: str, *, what: str) -> bool:
    """A boolean: true/false, yes/no, t/f, y/n, 1/0 (case-insensitive)."""
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise SubmitValueError(f'{what} must be true or false, not "{value.strip()}"')


def parse_int(value: str, *, what: str, minimum: int | None = None) -> int:
    """A whole number (optionally signed), at least ``minimum`` when given."""
    text = value.strip()
    if not re.fullmatch(r"[+-]?\d+", text):
        raise SubmitValueError(f'{what} must be a whole number, not "{text}"')
    n = int(text)
    if minimum is not None and n < minimum:
        raise SubmitValueError(f"{what} must be at least {minimum} (got {n})")
    return n
