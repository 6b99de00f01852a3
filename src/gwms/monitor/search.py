"""The search query model of the log monitor: pure parsing, paging and highlighting.

Nothing here touches an index or a file: a :class:`SearchQuery` is built from a query
string and/or explicit parameters, turned into an FTS5 expression and highlight
patterns, and results are cut into lines with hits and context. The index modules
(:mod:`gwms.monitor.index`) execute queries; :mod:`gwms.monitor.searcher` puts the two
together.

The query string (what a search box or ``gwms logs search`` takes)::

    entry:CMS_T2_US_Nebraska_Red job:1234.0 "connection refused" OR timeout -debug

- ``field:value`` filters (repeat a field for OR; different fields combine with AND):
  ``entry:``, ``site:``, ``user:`` (frontend user), ``group:`` (frontend group),
  ``client:`` (``<frontend>.<group>``), ``host:``, ``job:`` (``job.C.P``, ``C.P`` or
  ``C``), ``uuid:``, ``exit:`` (``0``, ``1,2``, ``!0``), ``section:`` (``StartdLog``,
  ``StarterLog*``), ``time:`` (a range, see :func:`parse_time_range`), ``from:``, ``to:``,
  ``finished:yes|no``, ``problems:yes|no``. Values may be quoted.
- everything else is full text: words must all appear (AND), ``"a phrase"`` its words in
  order, ``OR`` between alternatives, ``-word`` or ``NOT word`` excludes, ``word*`` is a
  prefix. Words are what SQLite's unicode61 tokenizer makes of the text: runs of letters
  and digits, case-insensitive; so ``wn001.unl.edu`` looks for the three words in a row.

A regular expression (Python :mod:`re`, per line) is a separate parameter.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from gwms.errors import GwmsError

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "MAX_REGEX_LENGTH",
    "ExitFilter",
    "Hit",
    "HitLines",
    "JobRef",
    "Line",
    "Order",
    "SearchQuery",
    "SearchSyntaxError",
    "Term",
    "TextQuery",
    "choose_bucket",
    "compile_regex",
    "count_lines",
    "decode_cursor",
    "encode_cursor",
    "fill_histogram",
    "find_hits",
    "parse_exit_filter",
    "parse_job_ref",
    "parse_query",
    "parse_text_query",
    "parse_time",
    "parse_time_range",
    "parse_uuid",
    "slice_lines",
    "term_pattern",
    "to_fts5",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
MAX_REGEX_LENGTH = 1000
MAX_QUERY_LENGTH = 4000

Order = Literal["desc", "asc"]


class SearchSyntaxError(GwmsError):
    """A search query, time, job id, cursor or regular expression cannot be understood."""

    error_code = "bad_query"


# ----------------------------------------------------------------------------------
# job ids, uuids, exit codes


@dataclass(frozen=True, order=True)
class JobRef:
    """A factory job id: ``cluster`` and, unless the whole cluster is meant, ``proc``."""

    cluster: int
    proc: int | None = None

    def __str__(self) -> str:
        return f"{self.cluster}" if self.proc is None else f"{self.cluster}.{self.proc}"


_JOB_REF = re.compile(r"(?:job\.)?(\d{1,18})(?:\.(\d{1,9}))?(?:\.(?:out|err))?", re.IGNORECASE)


def parse_job_ref(text: str) -> JobRef:
    """Parse ``job.C.P``, ``C.P`` or ``C`` (a file name ``job.C.P.out`` works too)."""
    m = _JOB_REF.fullmatch(text.strip())
    if m is None:
        raise SearchSyntaxError(
            f"not a factory job id: {text!r}", hint="use job.CLUSTER.PROC, CLUSTER.PROC or CLUSTER"
        )
    proc = m.group(2)
    return JobRef(int(m.group(1)), int(proc) if proc is not None else None)


_UUID = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,63}")


def parse_uuid(text: str) -> str:
    """A glidein uuid, lowercased (letters, digits and dashes, as uuids are)."""
    value = text.strip()
    if not _UUID.fullmatch(value):
        raise SearchSyntaxError(f"not a glidein uuid: {text!r}")
    return value.lower()


@dataclass(frozen=True)
class ExitFilter:
    """Exit codes to match (``codes``), or to exclude when ``negate``."""

    codes: tuple[int, ...]
    negate: bool = False

    def matches(self, code: int | None) -> bool:
        """True if a job with exit ``code`` (None: unfinished) passes the filter."""
        if code is None:
            return False
        return (code in self.codes) != self.negate

    def __str__(self) -> str:
        return ("!" if self.negate else "") + ",".join(str(c) for c in self.codes)


def parse_exit_filter(text: str) -> ExitFilter:
    """``0``, ``1,2,137``, ``!0`` / ``!=0`` (anything but), ``nonzero``, ``failed``."""
    value = text.strip().lower()
    if value in ("nonzero", "failed", "fail"):
        return ExitFilter((0,), True)
    negate = False
    if value.startswith("!="):
        negate, value = True, value[2:]
    elif value.startswith("!"):
        negate, value = True, value[1:]
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts:
        raise SearchSyntaxError(f"no exit code in {text!r}")
    try:
        codes = tuple(sorted({int(p) for p in parts}))
    except ValueError:
        raise SearchSyntaxError(
            f"not an exit code filter: {text!r}", hint="e.g. 0, 1,2 or !0"
        ) from None
    if any(abs(c) > 2**31 for c in codes):
        raise SearchSyntaxError(f"exit code out of range in {text!r}")
    return ExitFilter(codes, negate)


# ----------------------------------------------------------------------------------
# times

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RELATIVE = re.compile(
    r"(?:now)?\s*-\s*(\d{1,9})\s*([smhdw])|(\d{1,9})\s*([smhdw])\s*ago", re.IGNORECASE
)
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _relative(value: str, now: float) -> int | None:
    m = _RELATIVE.fullmatch(value)
    if m is None:
        return None
    n, unit = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    return int(now) - int(n) * _UNITS[unit.lower()]


def parse_time(text: str, now: float, *, end: bool = False) -> int:
    """A point in time as a Unix epoch (UTC unless the text names a zone).

    Accepts ``now``, ``now-2h`` / ``-2h`` / ``2h ago`` (s, m, h, d, w), an epoch in
    seconds (or milliseconds, 13 digits), and ISO 8601 (``2024-05-01``,
    ``2024-05-01T12:30``, ``2024-05-01 12:30:00+02:00``, ``...Z``). A bare date means
    its first second, or with ``end`` its last one.
    """
    value = text.strip()
    if not value:
        raise SearchSyntaxError("empty time")
    if value.lower() == "now":
        return int(now)
    rel = _relative(value, now)
    if rel is not None:
        return rel
    if value.isdigit():
        number = int(value)
        return number // 1000 if len(value) >= 13 else number
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise SearchSyntaxError(
            f"not a time: {text!r}", hint="use ISO 8601 (2024-05-01T12:00), an epoch, or -2h"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if end and _DAY.fullmatch(value):
        parsed += timedelta(days=1, seconds=-1)
    return int(parsed.timestamp())


def parse_time_range(text: str, now: float) -> tuple[int | None, int | None]:
    """A time range ``(from, to)``, both inclusive epochs, either may be None (open).

    ``A..B`` (either side may be empty), ``last 24h`` / ``24h`` / ``-24h`` (until now),
    a bare date (that whole day), or one time (from then on).
    """
    value = text.strip()
    if ".." in value:
        left, _, right = value.partition("..")
        lo = parse_time(left, now) if left.strip() else None
        hi = parse_time(right, now, end=True) if right.strip() else None
    else:
        last = re.fullmatch(r"(?:last\s+)?(\d{1,9})\s*([smhdw])", value, re.IGNORECASE)
        if last:
            lo, hi = int(now) - int(last.group(1)) * _UNITS[last.group(2).lower()], int(now)
        elif _DAY.fullmatch(value):
            lo, hi = parse_time(value, now), parse_time(value, now, end=True)
        else:
            lo, hi = parse_time(value, now), None
    if lo is not None and hi is not None and lo > hi:
        raise SearchSyntaxError(f"the time range {text!r} ends before it starts")
    return lo, hi


# ----------------------------------------------------------------------------------
# full text

_WORD = re.compile(r"[^\W_]+")
_SEP = r"[\W_]+"
_BEFORE = r"(?<![^\W_])"
_AFTER = r"(?![^\W_])"


@dataclass(frozen=True)
class Term:
    """One text term: the words it stands for, in order (a phrase if more than one)."""

    words: tuple[str, ...]
    prefix: bool = False

    @property
    def text(self) -> str:
        """The term as typed back: words, ``"quoted"`` if several, ``*`` if a prefix."""
        body = " ".join(self.words)
        body = f'"{body}"' if len(self.words) > 1 else body
        return body + ("*" if self.prefix else "")


@dataclass(frozen=True)
class TextQuery:
    """Full-text search: any of ``groups`` (each: all its terms), minus ``excluded`` terms."""

    groups: tuple[tuple[Term, ...], ...]
    excluded: tuple[Term, ...] = ()

    @property
    def terms(self) -> tuple[Term, ...]:
        """Every positive term (the ones to highlight)."""
        return tuple(t for g in self.groups for t in g)

    def __str__(self) -> str:
        text = " OR ".join(" ".join(t.text for t in g) for g in self.groups)
        return " ".join([text, *(f"-{t.text}" for t in self.excluded)])


def _words(text: str) -> tuple[str, ...]:
    return tuple(w.lower() for w in _WORD.findall(text))


def _lex(text: str) -> list[tuple[str, str, bool]]:
    """Split a query into ``(kind, value, quoted)``: kind is ``word`` or ``field:NAME``."""
    out: list[tuple[str, str, bool]] = []
    i, n = 0, len(text)
    field_start = re.compile(r"([A-Za-z_]+):")
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        m = field_start.match(text, i)
        if m and m.group(1).lower() in _FIELDS:
            j = m.end()
            if j < n and text[j] == '"':
                value, i = _quoted(text, j)
                out.append((f"field:{m.group(1).lower()}", value, True))
            else:
                k = j
                while k < n and not text[k].isspace():
                    k += 1
                out.append((f"field:{m.group(1).lower()}", text[j:k], False))
                i = k
            continue
        negated = ""
        if c == "-" and i + 1 < n and not text[i + 1].isspace():
            negated, i = "-", i + 1
            c = text[i]
        if c == '"':
            value, i = _quoted(text, i)
            star = i < n and text[i] == "*"
            if star:
                i += 1
            out.append((negated + "phrase", value + ("*" if star else ""), True))
            continue
        k = i
        while k < n and not text[k].isspace():
            k += 1
        out.append((negated + "word", text[i:k], False))
        i = k
    return out


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The value of a ``"..."`` starting at ``start`` (``\\"`` and ``\\\\`` escape) and the end."""
    out: list[str] = []
    i, n = start + 1, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            out.append(text[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    return "".join(out), n  # an unterminated quote runs to the end


def _term(value: str) -> Term | None:
    prefix = value.endswith("*")
    words = _words(value[:-1] if prefix else value)
    return Term(words, prefix) if words else None


def parse_text_query(text: str) -> TextQuery | None:
    """Parse full-text syntax only (no fields): None when it holds no word to look for.

    Raises :class:`SearchSyntaxError` when there are only excluded words.
    """
    query, _ = _parse_text_tokens(
        [(k, v, q) for k, v, q in _lex(text) if not k.startswith("field:")]
    )
    return query


def _parse_text_tokens(tokens: list[tuple[str, str, bool]]) -> tuple[TextQuery | None, list[str]]:
    groups: list[list[Term]] = [[]]
    excluded: list[Term] = []
    ignored: list[str] = []
    negate_next = False
    for kind, value, _quoted_value in tokens:
        if kind == "word" and value == "OR":
            if groups[-1]:
                groups.append([])
            continue
        if kind == "word" and value == "AND":
            continue
        if kind == "word" and value == "NOT":
            negate_next = True
            continue
        negated = kind.startswith("-") or negate_next
        negate_next = False
        term = _term(value)
        if term is None:
            ignored.append(value)
            continue
        (excluded if negated else groups[-1]).append(term)
    kept = tuple(tuple(g) for g in groups if g)
    if not kept:
        if excluded:
            raise SearchSyntaxError(
                "a text search needs a word to look for, not only words to exclude"
            )
        return None, ignored
    return TextQuery(kept, tuple(excluded)), ignored


def _fts_term(term: Term) -> str:
    # words hold only letters and digits, so they need no escaping inside the quotes
    phrase = '"' + " ".join(term.words) + '"'
    return phrase + " *" if term.prefix else phrase


def to_fts5(query: TextQuery) -> str:
    """The FTS5 MATCH expression of ``query`` (every term a quoted phrase: no injection)."""
    groups = [" AND ".join(_fts_term(t) for t in g) for g in query.groups]
    expr = groups[0] if len(groups) == 1 else " OR ".join(f"({g})" for g in groups)
    for t in query.excluded:
        expr = f"({expr}) NOT {_fts_term(t)}"
    return expr


def term_pattern(terms: Iterable[Term]) -> re.Pattern[str] | None:
    """A regex finding the terms the way the tokenizer does (case-insensitive, whole words)."""
    alternatives = []
    for t in terms:
        body = _SEP.join(re.escape(w) for w in t.words)
        alternatives.append(_BEFORE + body + (r"[^\W_]*" if t.prefix else _AFTER))
    if not alternatives:
        return None
    # longest first, so a phrase wins over a word it starts with
    alternatives.sort(key=len, reverse=True)
    return re.compile("|".join(alternatives), re.IGNORECASE)


def compile_regex(pattern: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    """Compile a user's regular expression (per line: ``^``/``$`` are line ends)."""
    if not pattern:
        raise SearchSyntaxError("empty regular expression")
    if len(pattern) > MAX_REGEX_LENGTH:
        raise SearchSyntaxError(
            f"regular expression too long ({len(pattern)} > {MAX_REGEX_LENGTH} characters)"
        )
    flags = re.MULTILINE | (re.IGNORECASE if ignore_case else 0)
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise SearchSyntaxError(f"bad regular expression: {exc}") from None


# ----------------------------------------------------------------------------------
# the query


_FIELDS = {
    "entry": "entries",
    "site": "sites",
    "user": "frontend_users",
    "frontend": "frontend_users",
    "group": "groups",
    "client": "clients",
    "host": "hosts",
    "job": "jobs",
    "uuid": "uuids",
    "exit": "exit",
    "code": "exit",
    "section": "sections",
    "time": "time",
    "from": "time_from",
    "to": "time_to",
    "finished": "finished",
    "problems": "problems",
}
_YES = {"yes", "y", "true", "1", "on"}
_NO = {"no", "n", "false", "0", "off"}


def _flag(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in _YES:
        return True
    if v in _NO:
        return False
    raise SearchSyntaxError(f"{name}: expects yes or no, not {value!r}")


@dataclass(frozen=True)
class SearchQuery:
    """What to find. Empty tuples and None mean "no condition".

    Times are epochs (inclusive) compared with a job's start time (the ``Starting
    glidein_startup.sh`` line; its files' time when the ``.out`` lacks it).
    """

    text: TextQuery | None = None
    regex: str | None = None
    ignore_case: bool = False
    time_from: int | None = None
    time_to: int | None = None
    entries: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    frontend_users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    clients: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    jobs: tuple[JobRef, ...] = ()
    uuids: tuple[str, ...] = ()
    exit: ExitFilter | None = None
    sections: tuple[str, ...] = ()
    finished: bool | None = None
    problems: bool | None = None
    #: words of the query that hold no letter or digit (so cannot be searched)
    ignored: tuple[str, ...] = field(default=(), compare=False)

    @property
    def has_text(self) -> bool:
        """True if the query looks inside the logs (full text or regex)."""
        return self.text is not None or self.regex is not None

    def pattern(self) -> re.Pattern[str] | None:
        """The pattern whose matches are the hits: the regex if any, else the text terms."""
        if self.regex is not None:
            return compile_regex(self.regex, ignore_case=self.ignore_case)
        if self.text is not None:
            return term_pattern(self.text.terms)
        return None

    def fts(self) -> str | None:
        """The FTS5 expression, or None without full text."""
        return to_fts5(self.text) if self.text is not None else None

    def to_json(self) -> dict[str, Any]:
        """A canonical JSON form (also what a cursor's fingerprint is made of)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "ignored" or value is None or value == ():
                continue
            if f.name == "ignore_case" and not value:
                continue
            if f.name in ("text", "exit"):
                value = str(value)
            elif f.name == "jobs":
                value = [str(j) for j in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def fingerprint(self, order: Order = "desc") -> str:
        """A short hash of the query and order: a cursor is only valid for its own search."""
        data = json.dumps([self.to_json(), order], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(data.encode()).hexdigest()[:12]


def parse_query(
    text: str = "",
    *,
    now: float,
    regex: str | None = None,
    ignore_case: bool = False,
    params: Mapping[str, Any] | None = None,
) -> SearchQuery:
    """Build a :class:`SearchQuery` from a query string and explicit parameters.

    ``params`` uses the field names of the query string (``entry``, ``site``, ``user``,
    ``group``, ``client``, ``host``, ``job``, ``uuid``, ``exit``, ``section``, ``time``,
    ``from``, ``to``, ``finished``, ``problems``); a value may be a string or a list of
    strings; None and empty values are ignored.
    """
    if len(text) > MAX_QUERY_LENGTH:
        raise SearchSyntaxError(f"query too long ({len(text)} > {MAX_QUERY_LENGTH} characters)")
    tokens = _lex(text)
    values: dict[str, list[str]] = {}
    text_tokens = []
    for kind, value, _q in tokens:
        if kind.startswith("field:"):
            values.setdefault(kind[6:], []).append(value)
        else:
            text_tokens.append((kind, value, _q))
    for name, given in (params or {}).items():
        if given is None:
            continue
        if name not in _FIELDS:
            raise SearchSyntaxError(f"unknown search field {name!r}")
        items = [given] if isinstance(given, (str, int)) else list(given)
        values.setdefault(name, []).extend(str(v) for v in items if str(v).strip() != "")
    text_query, ignored = _parse_text_tokens(text_tokens)
    built: dict[str, Any] = {"text": text_query, "ignored": tuple(ignored)}
    lists: dict[str, list[Any]] = {}
    for name, items in values.items():
        target = _FIELDS[name]
        for raw in items:
            value = raw.strip()
            if not value:
                raise SearchSyntaxError(f"{name}: needs a value")
            if target == "jobs":
                lists.setdefault("jobs", []).append(parse_job_ref(value))
            elif target == "uuids":
                lists.setdefault("uuids", []).append(parse_uuid(value))
            elif target == "exit":
                if "exit" in built:
                    raise SearchSyntaxError("give one exit code filter (e.g. exit:1,2)")
                built["exit"] = parse_exit_filter(value)
            elif target == "time":
                lo, hi = parse_time_range(value, now)
                _narrow(built, lo, hi)
            elif target == "time_from":
                _narrow(built, parse_time(value, now), None)
            elif target == "time_to":
                _narrow(built, None, parse_time(value, now, end=True))
            elif target in ("finished", "problems"):
                built[target] = _flag(name, value)
            else:
                lists.setdefault(target, []).append(value)
    for target, items in lists.items():
        built[target] = tuple(dict.fromkeys(items))
    if regex is not None and regex != "":
        compile_regex(regex, ignore_case=ignore_case)  # refuse a bad one now
        built["regex"] = regex
        built["ignore_case"] = ignore_case
    query = SearchQuery(**built)
    if (
        query.time_from is not None
        and query.time_to is not None
        and query.time_from > query.time_to
    ):
        raise SearchSyntaxError("the time range ends before it starts")
    return query


def _narrow(built: dict[str, Any], lo: int | None, hi: int | None) -> None:
    if lo is not None:
        built["time_from"] = max(lo, built.get("time_from") or lo)
    if hi is not None:
        built["time_to"] = min(hi, built["time_to"]) if built.get("time_to") is not None else hi


# ----------------------------------------------------------------------------------
# paging


def encode_cursor(key: int, fingerprint: str) -> str:
    """An opaque cursor: the last key of a page, bound to its query's fingerprint."""
    raw = f"{key}:{fingerprint}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, fingerprint: str) -> int:
    """The key in a cursor made by :func:`encode_cursor` for the same query and order."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key_text, _, fp = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        key = int(key_text)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise SearchSyntaxError("invalid cursor") from None
    if fp != fingerprint:
        raise SearchSyntaxError(
            "this cursor belongs to another search", hint="start again without a cursor"
        )
    return key


# ----------------------------------------------------------------------------------
# histogram

_BUCKETS = (
    1,
    5,
    10,
    30,
    60,
    300,
    600,
    900,
    1800,
    3600,
    2 * 3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86400,
    2 * 86400,
    7 * 86400,
    14 * 86400,
    30 * 86400,
    90 * 86400,
    365 * 86400,
)


def choose_bucket(span_seconds: int, max_buckets: int = 60) -> int:
    """The smallest round bucket width that shows ``span_seconds`` in at most ``max_buckets``."""
    if max_buckets < 1:
        raise ValueError("max_buckets must be at least 1")
    need = max(1, -(-max(0, span_seconds) // max_buckets))
    for width in _BUCKETS:
        if width >= need:
            return width
    years = -(-need // _BUCKETS[-1])
    return years * _BUCKETS[-1]


def fill_histogram(
    counts: Mapping[int, int], bucket: int, lo: int, hi: int
) -> list[tuple[int, int]]:
    """``(bucket start, count)`` for every bucket from ``lo`` to ``hi`` (zeros filled in).

    ``counts`` maps a bucket index (``epoch // bucket``) to its count; indexes outside
    the range are still included, so no count is lost.
    """
    first, last = lo // bucket, hi // bucket
    if counts:
        first, last = min(first, min(counts)), max(last, max(counts))
    return [(k * bucket, counts.get(k, 0)) for k in range(first, last + 1)]


# ----------------------------------------------------------------------------------
# lines and hits


@dataclass(frozen=True)
class Line:
    """One line of a text: its 1-based number and its content (without the newline)."""

    number: int
    text: str


@dataclass(frozen=True)
class Hit:
    """A line holding matches: ``spans`` are ``(start, end)`` offsets in ``text``.

    ``before``/``after`` are the context lines. ``clipped`` is true when a very long
    line was cut to a window around its first match (``offset`` is the window's start).
    """

    number: int
    text: str
    spans: tuple[tuple[int, int], ...]
    before: tuple[Line, ...] = ()
    after: tuple[Line, ...] = ()
    clipped: bool = False
    offset: int = 0


@dataclass(frozen=True)
class HitLines:
    """The hits of one text: the first ones in full, and how many lines matched."""

    hits: tuple[Hit, ...]
    lines: int
    capped: bool = False


MAX_LINE_CHARS = 4000


def _line_text(line: str) -> str:
    return line.removesuffix("\r")


def _context_before(text: str, line_start: int, number: int, count: int) -> tuple[Line, ...]:
    out: list[Line] = []
    end = line_start - 1  # the newline ending the previous line
    n = number
    while count > 0 and end >= 0:
        start = text.rfind("\n", 0, end) + 1
        n -= 1
        out.append(Line(n, _line_text(text[start:end])))
        end = start - 1
        count -= 1
    out.reverse()
    return tuple(out)


def _context_after(text: str, line_end: int, number: int, count: int) -> tuple[Line, ...]:
    out: list[Line] = []
    start = line_end + 1
    n = number
    length = len(text)
    while count > 0 and start < length:
        end = text.find("\n", start)
        if end < 0:
            end = length
        n += 1
        out.append(Line(n, _line_text(text[start:end])))
        start = end + 1
        count -= 1
    return tuple(out)


def find_hits(
    text: str,
    pattern: re.Pattern[str],
    *,
    context: int = 2,
    max_hits: int = 5,
    count_limit: int = 10_000,
) -> HitLines:
    """The lines of ``text`` where ``pattern`` matches, with ``context`` lines around.

    The first ``max_hits`` lines come in full (every match in them as a span); matching
    lines are counted up to ``count_limit`` (``capped`` if there were more). Empty
    matches are not hits.
    """
    hits: list[Hit] = []
    lines = 0
    capped = False
    pos = 0
    number = 1  # line number at `counted`
    counted = 0
    length = len(text)
    while pos <= length:
        m = pattern.search(text, pos)
        if m is None:
            break
        if m.start() == m.end():
            # an empty match: look for a real one in the rest of this line only
            line_end = text.find("\n", m.start())
            line_end = length if line_end < 0 else line_end
            real = next(
                (x for x in pattern.finditer(text, m.start(), line_end) if x.end() > x.start()),
                None,
            )
            if real is None:
                pos = line_end + 1
                continue
            m = real
        line_start = text.rfind("\n", 0, m.start()) + 1
        line_end = text.find("\n", m.start())
        line_end = length if line_end < 0 else line_end
        number += text.count("\n", counted, line_start)
        counted = line_start
        lines += 1
        if lines > count_limit:
            lines = count_limit
            capped = True
            break
        if len(hits) < max_hits:
            spans = [
                (x.start() - line_start, x.end() - line_start)
                for x in pattern.finditer(text, line_start, line_end)
                if x.end() > x.start()
            ]
            line = _line_text(text[line_start:line_end])
            spans = [(s, min(e, len(line))) for s, e in spans if s < len(line)] or [(0, 0)]
            clipped, offset = False, 0
            if len(line) > MAX_LINE_CHARS:
                offset = max(0, spans[0][0] - MAX_LINE_CHARS // 4)
                line = line[offset : offset + MAX_LINE_CHARS]
                spans = [
                    (s - offset, min(e - offset, len(line)))
                    for s, e in spans
                    if offset <= s < offset + len(line)
                ]
                clipped = True
            hits.append(
                Hit(
                    number=number,
                    text=line,
                    spans=tuple(spans),
                    before=_context_before(text, line_start, number, context),
                    after=_context_after(text, line_end, number, context),
                    clipped=clipped,
                    offset=offset,
                )
            )
        pos = line_end + 1
    return HitLines(tuple(hits), lines, capped)


def count_lines(text: str) -> int:
    """The number of lines of ``text`` (a last line without a newline counts)."""
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def slice_lines(text: str, first: int = 1, last: int | None = None) -> tuple[list[Line], int]:
    """Lines ``first`` to ``last`` (1-based, inclusive; clamped) and the total line count."""
    all_lines = text.split("\n")
    if all_lines[-1] == "":
        all_lines.pop()
    total = len(all_lines)
    first = max(1, first)
    last = total if last is None else min(total, last)
    return [Line(n, _line_text(all_lines[n - 1])) for n in range(first, last + 1)], total
