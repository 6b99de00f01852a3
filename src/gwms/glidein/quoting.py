"""The argument and environment syntaxes of HTCondor job ads, read on the execute side.

``Arguments`` (new syntax, raw form as stored in a job ad): words separated by spaces or
tabs; a single-quoted section keeps spaces and tabs; inside it ``''`` is a literal single
quote; ``''`` on its own is an empty argument; double quotes and backslashes are ordinary
characters. ``Args`` (old syntax): words separated by spaces or tabs, ``\\"`` is a
literal double quote.

``Environment`` (new syntax, raw form): ``NAME=value`` words split as above, e.g.
``A=1 B='x y'``. ``Env`` (old syntax): ``NAME=value`` entries separated by ``;``.

Pure functions; malformed text raises :class:`gwms.glidein.errors.JobSpecError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gwms.glidein.errors import JobSpecError
from gwms.glidein.jobad import CaseBlindAd

_BLANKS = " \t"


def split_v2(raw: str, what: str = "Arguments") -> list[str]:
    """Split a raw new-syntax string into words (see the module docstring)."""
    words: list[str] = []
    current: list[str] = []
    in_word = False
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        if c in _BLANKS:
            if in_word:
                words.append("".join(current))
                current = []
                in_word = False
            i += 1
            continue
        in_word = True
        if c != "'":
            current.append(c)
            i += 1
            continue
        opened = i
        i += 1  # inside a quoted section
        while True:
            if i >= n:
                raise JobSpecError(f"{what}: unterminated single quote (opened at position {opened})")
            c = raw[i]
            if c == "'":
                if i + 1 < n and raw[i + 1] == "'":
                    current.append("'")
                    i += 2
                    continue
                i += 1
                break
            current.append(c)
            i += 1
    if in_word:
        words.append("".join(current))
    return words


def parse_args_v1(text: str) -> list[str]:
    """The words of an old-syntax ``Args`` value."""
    return [w.replace('\\"', '"') for w in text.replace("\t", " ").split(" ") if w]


def parse_args_v2(raw: str) -> list[str]:
    """The words of a raw new-syntax ``Arguments`` value."""
    return split_v2(raw, "Arguments")


def _entry(word: str, what: str) -> tuple[str, str]:
    name, eq, value = word.partition("=")
    if not eq or not name:
        raise JobSpecError(f'{what}: entry "{word}" is not of the form NAME=value')
    return name, value


def parse_env_v2(raw: str) -> dict[str, str]:
    """The variables of a raw new-syntax ``Environment`` value."""
    env: dict[str, str] = {}
    for word in split_v2(raw, "Environment"):
        name, value = _entry(word, "Environment")
        env[name] = value
    return env


def parse_env_v1(text: str) -> dict[str, str]:
    """The variables of an old-syntax ``Env`` value (``A=1;B=2``)."""
    env: dict[str, str] = {}
    for part in text.strip().split(";"):
        if not part.strip():
            continue
        name, value = _entry(part, "Env")
        env[name] = value
    return env


def job_arguments(ad: Mapping[str, Any] | CaseBlindAd) -> list[str]:
    """A job's arguments: ``Arguments`` (new syntax) if set, else ``Args`` (old), else none."""
    view = ad if isinstance(ad, CaseBlindAd) else CaseBlindAd(ad)
    raw = view.get("Arguments")
    if isinstance(raw, str):
        return parse_args_v2(raw)
    old = view.get("Args")
    if isinstance(old, str):
        return parse_args_v1(old)
    return []


def job_environment(ad: Mapping[str, Any] | CaseBlindAd) -> dict[str, str]:
    """A job's environment: ``Environment`` (new syntax) if set, else ``Env`` (old), else empty."""
    view = ad if isinstance(ad, CaseBlindAd) else CaseBlindAd(ad)
    raw = view.get("Environment")
    if isinstance(raw, str):
        return parse_env_v2(raw)
    old = view.get("Env")
    if isinstance(old, str):
        return parse_env_v1(old)
    return {}
