"""Which attributes matter to matching a job with a slot, seen from either side.

A job's matching expressions (Requirements, Rank, the resource requests) read slot
attributes as ``TARGET.x`` or as bare names the job does not define; a slot's constraint
(START, Requirements) and Rank read job attributes the same way. The negotiator groups
slots by the attributes jobs read and asks the schedds to group jobs by the attributes
slots read; the schedd compares jobs for claim reuse with them.

Names are lower-cased. Expressions are followed transitively within their own ad
(``Requirements = MY.Big && ...`` with ``Big = TARGET.Memory > 4096`` reads Memory).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from gwms.classads import ClassAdSyntaxError, References, references
from gwms.pool.resources import RESOURCE_ATTRS

#: What a job's matching starts from.
JOB_SEEDS: tuple[str, ...] = ("requirements", "rank", *(r[0].lower() for r in RESOURCE_ATTRS))
#: What a slot's matching starts from.
SLOT_SEEDS: tuple[str, ...] = ("requirements", "start", "rank")

_EMPTY = References(frozenset(), frozenset(), frozenset())


@lru_cache(maxsize=4096)
def _refs_of_text(text: str) -> References:
    try:
        return references(text)
    except ClassAdSyntaxError:
        return _EMPTY


def _refs(value: Any) -> References:
    """The references of an attribute value (an expression string, or a list of values)."""
    if isinstance(value, str):
        if value.startswith("/Expr(") and value.endswith(")/"):
            return _refs_of_text(value[6:-2])
        return _EMPTY
    if isinstance(value, list):
        my: set[str] = set()
        target: set[str] = set()
        bare: set[str] = set()
        for item in value:
            r = _refs(item)
            my |= r.my
            target |= r.target
            bare |= r.bare
        return References(frozenset(my), frozenset(target), frozenset(bare))
    return _EMPTY


def reached(ad: Mapping[str, Any], seeds: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
    """Follow ``seeds`` through ``ad``'s expressions.

    Returns (names of ``ad`` reached via MY/bare references, including the seeds;
    names read from the other ad: ``TARGET.x`` and bare names ``ad`` does not define).
    """
    values = {k.lower(): v for k, v in ad.items()}
    mine: set[str] = set()
    other: set[str] = set()
    pending = [s.lower() for s in seeds]
    while pending:
        name = pending.pop()
        if name in mine:
            continue
        mine.add(name)
        refs = _refs(values.get(name))
        other |= refs.target
        for ref in refs.my:
            if ref not in mine:
                pending.append(ref)
        for ref in refs.bare:
            if ref in values:
                if ref not in mine:
                    pending.append(ref)
            else:
                other.add(ref)
    return frozenset(mine), frozenset(other)


def job_reads(job: Mapping[str, Any]) -> frozenset[str]:
    """Slot attributes a job's Requirements, Rank and requests read."""
    return reached(job, JOB_SEEDS)[1]


def slot_reads(slot: Mapping[str, Any]) -> frozenset[str]:
    """Job attributes a slot's START, Requirements and Rank read."""
    return reached(slot, SLOT_SEEDS)[1]
