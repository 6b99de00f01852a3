"""Tokenizer for the ClassAd language (expressions and whole ads).

It follows the lexical rules of the HTCondor ClassAd library as the htcondor
wheel's classad2 applies them: ``1.`` and ``010`` are not numbers, strings take
C escapes (octal up to ``\\377``, an unknown escape is the character itself,
``\\0`` is refused), adjacent string literals are joined by the parser,
``/* */`` and ``//`` are comments, and names are ``[A-Za-z_][A-Za-z0-9_]*`` or
``'quoted'``. Every token carries its 0-based offset for error messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from gwms.classads.errors import ClassAdSyntaxError
from gwms.classads.values import INT_MAX

INT: Final = "int"
REAL: Final = "real"
STRING: Final = "string"
NAME: Final = "name"
QNAME: Final = "qname"
OP: Final = "op"
EOF: Final = "eof"

_OPERATORS: Final = (
    ">>>",
    "=?=",
    "=!=",
    "==",
    "!=",
    "<=",
    ">=",
    "&&",
    "||",
    "<<",
    ">>",
    "+",
    "-",
    "*",
    "/",
    "%",
    "<",
    ">",
    "!",
    "~",
    "&",
    "|",
    "^",
    "?",
    ":",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ";",
    ".",
    "=",
)
_OPS_BY_FIRST: dict[str, tuple[str, ...]] = {}
for _op in _OPERATORS:
    _OPS_BY_FIRST.setdefault(_op[0], ())
    _OPS_BY_FIRST[_op[0]] += (_op,)

_WHITESPACE: Final = frozenset(" \t\n\r\f\v")
_DIGITS: Final = frozenset("0123456789")
_NAME_START: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NAME_CHARS: Final = _NAME_START | _DIGITS
_OCTAL: Final = frozenset("01234567")
_ESCAPES: Final = {
    "n": 0x0A,
    "t": 0x09,
    "r": 0x0D,
    "b": 0x08,
    "f": 0x0C,
    "v": 0x0B,
    "a": 0x07,
}


@dataclass(frozen=True, slots=True)
class Token:
    """One token: ``kind`` (INT, REAL, STRING, NAME, QNAME, OP, EOF), its value and span.

    ``exact`` is False for values Python cannot hold as the ClassAd library does
    (an integer beyond 64 bits, a string that is not valid UTF-8).
    """

    kind: str
    value: Any
    pos: int
    end: int
    exact: bool = True


def describe(token: Token, text: str) -> str:
    """How an error message names ``token``."""
    if token.kind == EOF:
        return "end of input"
    raw = text[token.pos : token.end]
    if len(raw) > 24:
        raw = raw[:21] + "..."
    return f"{raw!r}" if token.kind in (OP, NAME) else f"{token.kind} {raw}"


def tokenize(text: str, start: int = 0, stop: int | None = None) -> list[Token]:
    """Split ``text[start:stop]`` into tokens (offsets relative to ``text``), ending with EOF.

    Raises :class:`ClassAdSyntaxError` for characters that start no token,
    malformed numbers, unterminated strings or comments.
    """
    end = len(text) if stop is None else stop
    tokens: list[Token] = []
    append = tokens.append
    i = start
    while i < end:
        ch = text[i]
        if ch in _WHITESPACE:
            i += 1
            continue
        if ch == "/" and i + 1 < end and text[i + 1] in "*/":
            if text[i + 1] == "/":
                nl = text.find("\n", i, end)
                i = end if nl < 0 else nl + 1
            else:
                close = text.find("*/", i + 2, end)
                if close < 0:
                    raise ClassAdSyntaxError(text, i, "unterminated comment")
                i = close + 2
            continue
        if ch in _NAME_START:
            j = i + 1
            while j < end and text[j] in _NAME_CHARS:
                j += 1
            append(Token(NAME, text[i:j], i, j))
            i = j
            continue
        if ch in _DIGITS or (ch == "." and i + 1 < end and text[i + 1] in _DIGITS):
            token = _number(text, i, end)
            append(token)
            i = token.end
            continue
        if ch == '"' or ch == "'":
            token = _quoted(text, i, end)
            last = tokens[-1] if tokens else None
            if last is not None and last.kind == token.kind and not text[last.end : token.pos].strip():
                # Adjacent literals of the same kind are one: "a" "b" is "ab", 'a' 'b' is 'ab'.
                token = Token(
                    token.kind, last.value + token.value, last.pos, token.end, last.exact and token.exact
                )
                tokens[-1] = token
            else:
                append(token)
            i = token.end
            continue
        if ch == "." and text.startswith("..", i, end):
            # The library reads two adjacent dots as one ("a..b" is "a.b").
            append(Token(OP, ".", i, i + 2))
            i += 2
            continue
        ops = _OPS_BY_FIRST.get(ch)
        if ops is not None:
            for op in ops:
                if text.startswith(op, i, end):
                    append(Token(OP, op, i, i + len(op)))
                    i += len(op)
                    break
            continue
        raise ClassAdSyntaxError(text, i, f"unexpected character {ch!r}")
    append(Token(EOF, None, end, end))
    return tokens


def _number(text: str, i: int, end: int) -> Token:
    start = i
    while i < end and text[i] in _DIGITS:
        i += 1
    is_real = False
    if i < end and text[i] == ".":
        if i + 1 < end and text[i + 1] in _DIGITS:
            i += 1
            while i < end and text[i] in _DIGITS:
                i += 1
            is_real = True
        else:
            raise ClassAdSyntaxError(text, start, f"malformed number {text[start:i + 1]!r}")
    if i < end and text[i] in "eE":
        j = i + 1
        if j < end and text[j] in "+-":
            j += 1
        if j < end and text[j] in _DIGITS:
            while j < end and text[j] in _DIGITS:
                j += 1
            i = j
            is_real = True
        else:
            raise ClassAdSyntaxError(text, start, f"malformed number {text[start:j]!r}")
    raw = text[start:i]
    if is_real:
        return Token(REAL, float(raw), start, i)
    if len(raw) > 1 and raw[0] == "0":
        raise ClassAdSyntaxError(text, start, f"malformed number {raw!r} (no leading zeros)")
    value = int(raw)
    if value > INT_MAX:
        # The ClassAd library reads such literals as 0; leave them to it.
        return Token(INT, 0, start, i, exact=False)
    return Token(INT, value, start, i)


def _quoted(text: str, i: int, end: int) -> Token:
    quote = text[i]
    start = i
    i += 1
    out = bytearray()
    while True:
        if i >= end:
            what = "string" if quote == '"' else "quoted name"
            raise ClassAdSyntaxError(text, start, f"unterminated {what}")
        ch = text[i]
        if ch == quote:
            i += 1
            break
        if ch != "\\":
            j = i
            while j < end and text[j] != quote and text[j] != "\\":
                j += 1
            chunk = text[i:j]
            if "\0" in chunk:
                raise ClassAdSyntaxError(text, i + chunk.index("\0"), "a string cannot contain NUL")
            out += chunk.encode("utf-8", "surrogatepass")
            i = j
            continue
        if i + 1 >= end:
            what = "string" if quote == '"' else "quoted name"
            raise ClassAdSyntaxError(text, start, f"unterminated {what}")
        esc = text[i + 1]
        if esc in _OCTAL:
            j = i + 1
            limit = j + (3 if esc in "0123" else 2)
            while j < end and j < limit and text[j] in _OCTAL:
                j += 1
            code = int(text[i + 1 : j], 8)
            if code == 0:
                raise ClassAdSyntaxError(text, i, "a string cannot contain \\0")
            out.append(code)
            i = j
            continue
        code = _ESCAPES.get(esc)
        out += bytes((code,)) if code is not None else esc.encode("utf-8", "surrogatepass")
        i += 2
    try:
        value = out.decode("utf-8")
        exact = True
    except UnicodeDecodeError:
        value = out.decode("utf-8", "surrogateescape")
        exact = False
    return Token(STRING if quote == '"' else QNAME, value, start, i, exact)
