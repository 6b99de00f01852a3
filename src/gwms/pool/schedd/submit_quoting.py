"""The two quoting syntaxes of ``arguments`` and ``environment``, as HTCondor documents them.

Arguments
    *Old syntax* (no surrounding double quotes): arguments are separated by spaces or tabs;
    ``\\"`` is a literal double quote; there is no way to put a space inside an argument.
    Single quotes have no special meaning. Kept in the job ad as ``Args`` exactly as given.

    *New syntax* (the whole value in double quotes): spaces and tabs separate arguments; a
    single-quoted section keeps spaces and tabs; inside it ``''`` is a literal single quote;
    ``""`` is a literal double quote anywhere; backslash has no special meaning; ``''`` on
    its own is an empty argument. Kept in the job ad as ``Arguments`` in the *raw* form:
    the same rules without the surrounding double quotes and with ``"`` written once
    (checked, otherwise as the user wrote it).

Environment
    *Old syntax*: ``NAME=value`` entries separated by ``;``; spaces are literal.
    *New syntax*: the value in double quotes, ``NAME=value`` entries separated by spaces or
    tabs, single quotes and doubled quotes as for arguments, e.g. ``"A=1 B='x y'"``.
    Both are kept in the job ad as one ``Environment`` attribute in the raw new form.

All functions are pure. Errors raise :class:`SubmitValueError` (the caller adds the file
and line).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from gwms.pool.schedd.submit_errors import SubmitValueError

_NEEDS_QUOTES = frozenset(" \t'")


def is_new_syntax(value: str) -> bool:
    """Whether a submit value uses the new syntax (surrounded by double quotes)."""
    v = value.strip()
    return len(v) >= 2 and v[0] == '"' and v[-1] == '"'


_DQ_RUN = re.compile(r'"+')
_WS = re.compile(r"[ \t]+")
_WORD = re.compile(r"(?:[^ \t']+|'(?:[^']|'')*')+")
_QUOTED = re.compile(r"'((?:[^']|'')*)'")
_NEEDS_QUOTING = re.compile(r"[ \t']")
# One word: unquoted characters and '...' sections (possessive: no catastrophic backtracking).
_V2_WORD = r"(?:[^ \t']|'(?:[^']|'')*+')++"
_VALID_RAW_V2 = re.compile(rf"[ \t]*+(?:{_V2_WORD}(?:[ \t]++{_V2_WORD})*+)?+[ \t]*+")


def _unwrap_new_syntax(value: str, what: str) -> str:
    """The raw form of a new-syntax submit value: outer quotes removed, ``""`` -> ``"``."""
    v = value.strip()
    if not is_new_syntax(v):
        raise SubmitValueError(f"{what} in the new syntax must be enclosed in double quotes")
    inner = v[1:-1]
    if '"' not in inner:
        return inner
    for m in _DQ_RUN.finditer(inner):
        if len(m.group()) % 2:
            pos = m.end()  # the unpaired quote, as an offset in the submit value
            raise SubmitValueError(
                f'{what}: a double quote inside the quoted value must be doubled ("") '
                f"(position {pos})",
                position=pos,
            )
    return inner.replace('""', '"')


def _unquote_word(word: str) -> str:
    if "'" not in word:
        return word
    return _QUOTED.sub(lambda m: m.group(1).replace("''", "'"), word)


def split_raw_v2(raw: str, what: str = "arguments") -> list[str]:
    """Split a raw new-syntax string (no outer quotes, ``"`` written once) into words."""
    if "'" not in raw:
        return [w for w in _WS.split(raw) if w]
    words: list[str] = []
    pos = 0
    n = len(raw)
    while pos < n:
        c = raw[pos]
        if c == " " or c == "\t":
            pos += 1
            continue
        m = _WORD.match(raw, pos)
        end = m.end() if m is not None else pos
        if end < n and raw[end] == "'":
            raise SubmitValueError(
                f"{what}: unterminated single quote (opened at position {end})", position=end
            )
        assert m is not None
        words.append(_unquote_word(m.group()))
        pos = end
    return words


def quote_word_v2(word: str) -> str:
    """One word in the raw new syntax: single-quoted when it is empty or holds a space,
    tab or single quote (``'`` doubled inside the quotes)."""
    if word and _NEEDS_QUOTING.search(word) is None:
        return word
    return "'" + word.replace("'", "''") + "'"


# ------------------------------------------------------------------------------ arguments


def parse_args_old(value: str) -> list[str]:
    """The argument list of an old-syntax ``arguments`` value (``\\"`` is a literal ``"``)."""
    return [w.replace('\\"', '"') for w in value.replace("\t", " ").split(" ") if w]


def parse_args_new(value: str) -> list[str]:
    """The argument list of a new-syntax ``arguments`` value (with its double quotes)."""
    return split_raw_v2(_unwrap_new_syntax(value, "arguments"), "arguments")


def parse_args_raw_v2(raw: str) -> list[str]:
    """The argument list of a job ad's ``Arguments`` attribute (raw new syntax)."""
    return split_raw_v2(raw, "arguments")


def format_args_raw_v2(args: Iterable[str]) -> str:
    """Arguments in the raw new syntax, as stored in a job ad's ``Arguments``."""
    return " ".join(quote_word_v2(a) for a in args)


def format_args_new(args: Iterable[str]) -> str:
    """Arguments as a new-syntax submit value: ``"..."`` with ``"`` doubled inside."""
    return '"' + format_args_raw_v2(args).replace('"', '""') + '"'


def arguments_attr(value: str) -> tuple[str, str]:
    """The job attribute for an ``arguments`` submit value: ``("Args", v1)`` for the old
    syntax (kept as given) or ``("Arguments", raw_v2)`` for the new (normalized)."""
    if is_new_syntax(value):
        raw = _unwrap_new_syntax(value, "arguments").strip(" \t")
        if "'" in raw and _VALID_RAW_V2.fullmatch(raw) is None:
            split_raw_v2(raw, "arguments")  # raises with the position
        return "Arguments", raw
    return "Args", value.strip()


def job_argv(ad: Mapping[str, Any]) -> list[str]:
    """The argument list of a job ad: from ``Arguments`` (new syntax) if present, else from
    ``Args`` (old syntax), else empty. Attribute names are matched case-blind."""
    lower = {k.lower(): v for k, v in ad.items()}
    raw = lower.get("arguments")
    if isinstance(raw, str):
        return parse_args_raw_v2(raw)
    old = lower.get("args")
    if isinstance(old, str):
        return parse_args_old(old)
    return []


# ---------------------------------------------------------------------------- environment


def _entry(word: str, what: str) -> tuple[str, str]:
    name, eq, val = word.partition("=")
    if not eq or not name:
        raise SubmitValueError(f'{what}: entry "{word}" is not of the form NAME=value')
    return name, val


def parse_env_old(value: str) -> dict[str, str]:
    """The variables of an old-syntax ``environment`` value (``A=1;B=2``)."""
    env: dict[str, str] = {}
    for part in value.strip().split(";"):
        if not part.strip():
            continue
        name, val = _entry(part, "environment")
        env[name] = val
    return env


def parse_env_raw_v2(raw: str) -> dict[str, str]:
    """The variables of a raw new-syntax environment string (a job ad's ``Environment``)."""
    env: dict[str, str] = {}
    for word in split_raw_v2(raw, "environment"):
        name, val = _entry(word, "environment")
        env[name] = val
    return env


def parse_env_new(value: str) -> dict[str, str]:
    """The variables of a new-syntax ``environment`` value (with its double quotes)."""
    return parse_env_raw_v2(_unwrap_new_syntax(value, "environment"))


def parse_environment(value: str) -> dict[str, str]:
    """The variables of an ``environment`` submit value in either syntax."""
    if is_new_syntax(value):
        return parse_env_new(value)
    return parse_env_old(value)


def format_env_raw_v2(env: Mapping[str, str]) -> str:
    """Variables in the raw new syntax (``A=1 B='x y'``), as stored in ``Environment``."""
    parts = []
    for name, val in env.items():
        if any(c in _NEEDS_QUOTES for c in name):
            parts.append(quote_word_v2(f"{name}={val}"))
        elif val and not any(c in _NEEDS_QUOTES for c in val):
            parts.append(f"{name}={val}")
        elif not val:
            parts.append(f"{name}=")
        else:
            parts.append(f"{name}={quote_word_v2(val)}")
    return " ".join(parts)


def format_env_new(env: Mapping[str, str]) -> str:
    """Variables as a new-syntax submit value: ``"..."`` with ``"`` doubled inside."""
    return '"' + format_env_raw_v2(env).replace('"', '""') + '"'


def job_environment(ad: Mapping[str, Any]) -> dict[str, str]:
    """The environment of a job ad: ``Environment`` (raw new syntax) if present, else
    ``Env`` (old syntax), else empty. Attribute names are matched case-blind."""
    lower = {k.lower(): v for k, v in ad.items()}
    raw = lower.get("environment")
    if isinstance(raw, str):
        return parse_env_raw_v2(raw)
    old = lower.get("env")
    if isinstance(old, str):
        return parse_env_old(old)
    return {}
