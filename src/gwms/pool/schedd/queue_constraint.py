"""Query constraints for the job queue: compile to a predicate, and push what can go into SQL.

Two pieces, both pure:

- :func:`compile_job_constraint` turns ClassAd constraint text into a predicate over one
  JSON-form ad with ``gwms.classads.compile_constraint``.
- :func:`plan_constraint` finds the top-level ``&&`` conjuncts that compare a hot column
  (ClusterId, ProcId, Owner, JobStatus, QDate, EnteredCurrentStatus) with a literal and
  turns them into SQL conditions, so "all idle jobs" or "Owner == \\"alice\\"" are answered
  from indexed columns without decoding every ad (ClusterId comparisons become ranges
  of the job key, the table's own B-tree). The SQL is always a *necessary*
  condition of the constraint; when every conjunct was pushed down the plan is
  ``complete`` and the queue skips the predicate altogether.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from gwms.classads import compile_constraint
from gwms.errors import GwmsError
from gwms.pool.schedd.queue_errors import InvalidConstraintError
from gwms.pool.schedd.queue_schema import MAX_CLUSTER_ID, MAX_PROCS, job_key

Predicate = Callable[[Mapping[str, Any]], bool]

#: Hot attribute (lower case) -> table column.
COLUMNS: dict[str, str] = {
    "clusterid": "cluster",
    "procid": "proc",
    "owner": "owner",
    "jobstatus": "status",
    "qdate": "qdate",
    "enteredcurrentstatus": "entered",
}
_INT_COLUMNS = frozenset({"cluster", "proc", "status", "qdate", "entered"})

_INT_OPS = {"==": "=", "=?=": "=", "!=": "<>", "=!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
# ClassAd ``==`` on strings ignores (ASCII) case, as SQLite's NOCASE does; ``=?=`` does not
# (its first, case-blind test is there to use the case-blind owner index).
_STR_OPS = {
    "==": ("{column} = ? COLLATE NOCASE", 1),
    "!=": ("{column} <> ? COLLATE NOCASE", 1),
    "=?=": ("{column} = ? COLLATE NOCASE AND {column} = ?", 2),
    "=!=": ("{column} <> ?", 1),
}

_CONJUNCT = re.compile(
    r"(?P<attr>[A-Za-z_][A-Za-z0-9_]*)\s*"
    r"(?P<op>=\?=|=!=|==|!=|<=|>=|<|>)\s*"
    r'(?P<lit>0|-?[1-9][0-9]{0,17}|"[^"\\]*")\Z'
)
_TRUE = re.compile(r"(?i:true)\Z")


@dataclass(frozen=True)
class ConstraintPlan:
    """SQL conditions (over the hot columns) implied by a constraint.

    ``where`` holds SQL fragments to AND together with ``params`` bound in order;
    ``complete`` says the fragments decide the constraint exactly.
    """

    where: tuple[str, ...] = ()
    params: tuple[Any, ...] = ()
    complete: bool = True


def split_conjuncts(text: str) -> list[str] | None:
    """The top-level ``&&`` operands of ``text`` (outer parentheses removed).

    Returns ``None`` when the text cannot be split safely (a top-level ``||`` or ``?:``,
    a comment, unbalanced brackets or quotes).
    """
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"' or ch == "'":
            i += 1
            while i < n and text[i] != ch:
                i += 2 if text[i] == "\\" else 1
            if i >= n:
                return None
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                return None
        elif ch == "/" and i + 1 < n and text[i + 1] in "/*":
            return None
        elif depth == 0:
            pair = text[i : i + 2]
            if pair == "||" or (ch == "?" and text[i - 1 : i + 2] != "=?="):
                return None  # lower precedence than && (or the ?: operator)
            if pair == "&&":
                parts.append(text[start:i])
                i += 2
                start = i
                continue
        i += 1
    if depth != 0:
        return None
    parts.append(text[start:])
    result: list[str] = []
    for part in parts:
        part = part.strip()
        inner = _strip_parens(part)
        if inner != part:
            sub = split_conjuncts(inner)
            if sub is None:
                result.append(part)
            else:
                result.extend(sub)
        else:
            result.append(part)
    return result


def _strip_parens(text: str) -> str:
    """``text`` without parentheses that enclose all of it."""
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, ch in enumerate(text):
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0 and i != len(text) - 1:
                    return text
            elif ch in "\"'":
                return text  # a quote inside: leave it to the full parser
        text = text[1:-1].strip()
    return text


def _conjunct_sql(conjunct: str) -> tuple[str, tuple[Any, ...]] | None:
    """One conjunct as ``(sql, params)`` when it compares a hot column with a literal."""
    m = _CONJUNCT.match(conjunct)
    if m is None:
        return None
    column = COLUMNS.get(m["attr"].lower())
    if column is None:
        return None
    op, lit = m["op"], m["lit"]
    if column in _INT_COLUMNS:
        if lit.startswith('"'):
            return None  # int vs string is ERROR in ClassAds; let the evaluator say so
        value = int(lit)
        if column == "cluster" and 0 <= value <= MAX_CLUSTER_ID and op not in ("!=", "=!="):
            return _cluster_range(op, value)
        return f"{column} {_INT_OPS[op]} ?", (value,)
    if not lit.startswith('"') or op not in _STR_OPS:
        return None
    text = lit[1:-1]
    if not text.isascii():
        return None  # case folding beyond ASCII: leave it to the evaluator
    template, count = _STR_OPS[op]
    return template.format(column=column), (text,) * count


def _cluster_range(op: str, cluster: int) -> tuple[str, tuple[int, ...]]:
    """A ClusterId comparison as a range of job keys (the table's own B-tree answers it)."""
    first, last = job_key(cluster, 0), job_key(cluster, MAX_PROCS - 1)
    if op in ("==", "=?="):
        return "id BETWEEN ? AND ?", (first, last)
    if op == "<":
        return "id < ?", (first,)
    if op == "<=":
        return "id <= ?", (last,)
    if op == ">":
        return "id > ?", (last,)
    return "id >= ?", (first,)


@lru_cache(maxsize=256)
def plan_constraint(text: str | None) -> ConstraintPlan:
    """The SQL part of ``text`` over the hot columns (see :class:`ConstraintPlan`)."""
    if text is None or not text.strip() or _TRUE.match(text.strip()):
        return ConstraintPlan()
    conjuncts = split_conjuncts(text)
    if conjuncts is None:
        return ConstraintPlan(complete=False)
    where: list[str] = []
    params: list[Any] = []
    complete = True
    for conjunct in conjuncts:
        if _TRUE.match(conjunct):
            continue
        pushed = _conjunct_sql(conjunct)
        if pushed is None:
            complete = False
            continue
        where.append(pushed[0])
        params.extend(pushed[1])
    return ConstraintPlan(tuple(where), tuple(params), complete)


@lru_cache(maxsize=256)
def compile_job_constraint(text: str) -> Predicate:
    """A predicate telling whether a JSON-form ad satisfies ClassAd constraint ``text``.

    Raises :class:`InvalidConstraintError` for text that does not parse.
    """
    try:
        return compile_constraint(text)
    except GwmsError as exc:
        raise InvalidConstraintError(f"invalid constraint {text!r}: {exc}") from exc
