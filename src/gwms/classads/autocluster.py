"""Auto-clusters: jobs that look the same to the matchmaker share a signature.

HTCondor's schedd groups idle jobs whose *significant attributes* have equal
values, so the negotiator (and the frontend) evaluate one job per group. The
significant attributes of a job are its resource requests, its Requirements and
Rank, the job attributes those expressions read (transitively), and the job
attributes the slots read as ``TARGET.x``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Iterable, Mapping

from gwms.classads.compiler import key_index
from gwms.classads.errors import ClassAdSyntaxError
from gwms.classads.refs import references
from gwms.classads.values import expr_text, is_expr_string

JsonAd = Mapping[str, Any]

REQUEST_ATTRIBUTES = ("RequestCpus", "RequestMemory", "RequestDisk", "RequestGpus")
"""The resource requests that are always significant."""
MATCH_EXPRESSIONS = ("Requirements", "Rank")
"""The job's matchmaking expressions, significant themselves."""


def _lower_map(job: JsonAd) -> dict[str, Any]:
    return {k.lower(): v for k, v in job.items()}


def _job_reads(value: Any) -> frozenset[str]:
    """Attributes of the job an attribute's value reads (MY. and bare names)."""
    if isinstance(value, list):
        out: frozenset[str] = frozenset()
        for v in value:
            out |= _job_reads(v)
        return out
    if not is_expr_string(value):
        return frozenset()
    try:
        refs = references(expr_text(value))
    except ClassAdSyntaxError:
        return frozenset()
    return refs.my | refs.bare


def significant_attributes(job: JsonAd, slot_refs: Iterable[str] = ()) -> frozenset[str]:
    """The lower-cased names of the job's attributes that matter for matching.

    That is RequestCpus/RequestMemory/RequestDisk/RequestGpus, Requirements and
    Rank, every job attribute they read as ``MY.x`` or as a bare name, the
    attributes named in ``slot_refs`` (what slots read as ``TARGET.x``), and,
    transitively, what those attributes' expressions read in turn.
    """
    values = _lower_map(job)
    result: set[str] = set()
    pending = [n.lower() for n in (*REQUEST_ATTRIBUTES, *MATCH_EXPRESSIONS)]
    pending.extend(n.lower() for n in slot_refs)
    while pending:
        name = pending.pop()
        if name in result:
            continue
        result.add(name)
        if name in values:
            pending.extend(_job_reads(values[name]) - result)
    return frozenset(result)


@lru_cache(maxsize=1024)
def _ordered(attrs: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted({a.lower() for a in attrs}))


def _encode(value: Any) -> str:
    c = value.__class__
    if c is str or c is int or c is bool or value is None:
        return repr(value)
    if c is float:
        return repr(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


def autocluster_signature(job: JsonAd, attrs: Iterable[str]) -> str:
    """A stable string of the job's (lower-cased name, value) pairs for ``attrs``.

    Jobs with equal values for those attributes (names compared ignoring case, a
    missing attribute equal to ``null``) get the same signature; ints and reals
    differ (``1`` is not ``1.0``), as in the ClassAd language.
    """
    names = _ordered(attrs if isinstance(attrs, frozenset) else frozenset(attrs))
    index = key_index(job)  # type: ignore[arg-type]
    parts = []
    for name in names:
        key = index.get(name)
        parts.append(f"{name}={_encode(None if key is None else job[key])}")
    return ";".join(parts)
