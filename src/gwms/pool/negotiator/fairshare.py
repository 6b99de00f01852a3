"""Fair share: per-submitter usage that decays with a half-life, and priorities.

As in HTCondor's accountant, each submitter (an AccountingGroup, else the Owner) has a
*real priority* that follows the CPUs it uses: every update moves it toward the CPUs in
use, by the fraction the half-life says::

    beta = 0.5 ** (elapsed / half_life)
    real = max(MIN_PRIORITY, beta * real + (1 - beta) * cpus_in_use)

so a submitter that stops using the pool falls back to the best priority, halving the
distance each half-life. The *effective priority* is ``real * factor`` (the priority
factor, default 1; a larger factor is a worse priority); lower is better. *Usage* counts
CPU-hours, decayed with the same half-life, for people to read (``gwms userprio``).

:class:`Accountant` is pure state (times are passed in); :func:`load_accountant` and
:func:`save_accountant` keep it in a small JSON file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gwms.errors import GwmsError

#: The best (lowest) real priority, HTCondor's minimum.
MIN_PRIORITY = 0.5
#: Default half-life of usage and real priority: one day.
DEFAULT_HALF_LIFE = 86_400.0
#: Default priority factor.
DEFAULT_FACTOR = 1.0
STATE_VERSION = 1


class AccountantError(GwmsError):
    """A bad priority factor, or a state file that cannot be read."""


def decay(elapsed: float, half_life: float) -> float:
    """The fraction of the past that remains after ``elapsed`` seconds (1 for none)."""
    if elapsed <= 0:
        return 1.0
    return 0.5 ** (elapsed / half_life)


def next_real_priority(real: float, in_use: float, elapsed: float, half_life: float) -> float:
    """The real priority ``elapsed`` seconds later, with ``in_use`` CPUs used meanwhile."""
    beta = decay(elapsed, half_life)
    return max(MIN_PRIORITY, beta * real + (1.0 - beta) * max(0.0, in_use))


def next_usage(usage_hours: float, in_use: float, elapsed: float, half_life: float) -> float:
    """Decayed CPU-hours ``elapsed`` seconds later, with ``in_use`` CPUs used meanwhile."""
    if elapsed <= 0:
        return usage_hours
    return usage_hours * decay(elapsed, half_life) + max(0.0, in_use) * elapsed / 3600.0


@dataclass
class SubmitterRecord:
    """What the accountant knows of one submitter."""

    name: str
    real_priority: float = MIN_PRIORITY
    factor: float = DEFAULT_FACTOR
    usage_hours: float = 0.0
    in_use: float = 0.0
    last_update: float = 0.0
    last_usage: float | None = None

    @property
    def effective_priority(self) -> float:
        """``real_priority * factor``; lower is better."""
        return self.real_priority * self.factor

    def as_json(self) -> dict[str, Any]:
        """The record with its effective priority, for the HTTP answer and the file."""
        return asdict(self) | {"effective_priority": self.effective_priority}


@dataclass
class Accountant:
    """Every submitter's usage and priority, updated once per negotiation cycle."""

    half_life: float = DEFAULT_HALF_LIFE
    submitters: dict[str, SubmitterRecord] = field(default_factory=dict)
    default_factor: float = DEFAULT_FACTOR

    def __post_init__(self) -> None:
        if not self.half_life > 0:
            raise AccountantError(f"the half-life must be positive, not {self.half_life!r}")

    def record(self, name: str, now: float) -> SubmitterRecord:
        """The record of ``name`` (made, with the default factor, if new)."""
        rec = self.submitters.get(name)
        if rec is None:
            rec = SubmitterRecord(name, factor=self.default_factor, last_update=now)
            self.submitters[name] = rec
        return rec

    def update(self, in_use: Mapping[str, float], now: float) -> None:
        """Account for the time since the last update: each submitter used what it used
        then (``in_use`` at the last update); from now on it uses ``in_use`` (CPUs)."""
        for name in set(self.submitters) | {n for n, v in in_use.items() if v > 0}:
            rec = self.record(name, now)
            elapsed = max(0.0, now - rec.last_update)
            rec.real_priority = next_real_priority(rec.real_priority, rec.in_use, elapsed, self.half_life)
            rec.usage_hours = next_usage(rec.usage_hours, rec.in_use, elapsed, self.half_life)
            rec.in_use = float(max(0.0, in_use.get(name, 0.0)))
            if rec.in_use > 0:
                rec.last_usage = now
            rec.last_update = now

    def set_factor(self, name: str, factor: float, now: float) -> SubmitterRecord:
        """Set a submitter's priority factor (>= 1 is the HTCondor convention; > 0 required)."""
        if not isinstance(factor, (int, float)) or isinstance(factor, bool) or not factor > 0:
            raise AccountantError(f"a priority factor must be a number > 0, not {factor!r}")
        rec = self.record(name, now)
        rec.factor = float(factor)
        return rec

    def priorities(self) -> dict[str, float]:
        """Effective priority per known submitter."""
        return {name: rec.effective_priority for name, rec in self.submitters.items()}

    def priority_of(self, name: str) -> float:
        """Effective priority of ``name`` (a newcomer: the minimum times the default factor)."""
        rec = self.submitters.get(name)
        return rec.effective_priority if rec else MIN_PRIORITY * self.default_factor

    def as_json(self) -> dict[str, Any]:
        """The whole state (what the state file holds)."""
        return {
            "version": STATE_VERSION,
            "half_life": self.half_life,
            "default_factor": self.default_factor,
            "submitters": {name: rec.as_json() for name, rec in sorted(self.submitters.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, half_life: float | None = None) -> Accountant:
        """Read a state written by :meth:`as_json` (``half_life`` overrides the stored one)."""
        if not isinstance(data, Mapping) or data.get("version") != STATE_VERSION:
            raise AccountantError("not an accountant state of this version")
        acct = cls(half_life=float(half_life or data.get("half_life", DEFAULT_HALF_LIFE)),
                   default_factor=float(data.get("default_factor", DEFAULT_FACTOR)))
        names = {f for f in SubmitterRecord.__dataclass_fields__}
        for name, raw in dict(data.get("submitters", {})).items():
            fields = {k: v for k, v in dict(raw).items() if k in names}
            fields["name"] = name
            acct.submitters[name] = SubmitterRecord(**fields)
        return acct


def load_accountant(path: Path, *, half_life: float = DEFAULT_HALF_LIFE, default_factor: float = DEFAULT_FACTOR) -> Accountant:
    """The accountant kept in ``path``, or a new one if the file does not exist."""
    if not path.exists():
        return Accountant(half_life=half_life, default_factor=default_factor)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AccountantError(f"cannot read the accountant state {path}: {exc}") from exc
    try:
        acct = Accountant.from_json(data, half_life=half_life)
    except (AccountantError, TypeError, ValueError) as exc:
        raise AccountantError(f"{path}: {exc}") from exc
    acct.default_factor = default_factor
    return acct


def save_accountant(acct: Accountant | Mapping[str, Any], path: Path) -> None:
    """Write the state (an accountant, or its :meth:`~Accountant.as_json` snapshot)
    atomically: a crash leaves the old file or the new one."""
    data = acct.as_json() if isinstance(acct, Accountant) else acct
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)
