"""Matchmaking between a job ad and a slot ad, both in JSON form.

As in HTCondor: a job matches a slot when the job's ``Requirements`` (MY = job,
TARGET = slot) is true and the slot's constraint (MY = slot, TARGET = job) is
true. The slot's constraint is its ``Requirements`` if it has one, else its
``START``, else true. ``undefined`` and ``error`` are no match; non-zero numbers
count as true.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from gwms.classads.compiler import find, is_missing
from gwms.classads.constraint import compile_constraint
from gwms.classads.expr import evaluate

JsonAd = Mapping[str, Any]

_REQUIREMENTS = compile_constraint("MY.Requirements")
_START = compile_constraint("MY.START")


def _defined(ad: JsonAd, name: str) -> bool:
    raw = find(ad, name, name.lower())  # type: ignore[arg-type]
    return not is_missing(raw) and raw is not None


def slot_accepts(slot: JsonAd, job: JsonAd) -> bool:
    """Whether the slot's Requirements (else START, else true) holds with MY = slot, TARGET = job."""
    if _defined(slot, "Requirements"):
        return _REQUIREMENTS(slot, job)
    if _defined(slot, "START"):
        return _START(slot, job)
    return True


def job_accepts(job: JsonAd, slot: JsonAd) -> bool:
    """Whether the job's Requirements holds with MY = job, TARGET = slot (no Requirements: False)."""
    return _REQUIREMENTS(job, slot)


def symmetric_match(job: JsonAd, slot: JsonAd) -> bool:
    """Whether ``job`` and ``slot`` match each other (see the module docstring)."""
    return _REQUIREMENTS(job, slot) and slot_accepts(slot, job)


def rank(job: JsonAd, slot: JsonAd) -> float:
    """The job's ``Rank`` of the slot (MY = job, TARGET = slot) as a float.

    Booleans count as 1.0/0.0; anything else that is not a number (undefined,
    error, strings, NaN, a missing Rank) is 0.0.
    """
    value = evaluate("MY.Rank", job, slot)
    c = value.__class__
    if c is int or c is float or c is bool:
        result = float(value)
        return result if not math.isnan(result) else 0.0
    return 0.0
