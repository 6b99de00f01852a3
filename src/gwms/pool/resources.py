"""What a job asks for and what a slot offers: Cpus, Memory (MiB), Disk (KiB), Gpus.

The negotiator carves partitionable slots with these numbers and the schedd tells the
startd agent how much of a slot a claim takes, so both use this one module. A job's
requests (``RequestCpus`` ...) may be expressions; they are evaluated with the job as MY
and the slot as TARGET, as HTCondor does. A request that is missing or not a number
counts as the default (1 CPU, nothing else).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gwms.pool import jobattrs as A

#: Slot attribute that makes a slot partitionable (it takes several jobs while resources remain).
PARTITIONABLE_SLOT = "PartitionableSlot"

#: (request attribute of the job, resource attribute of the slot, default request)
RESOURCE_ATTRS: tuple[tuple[str, str, int], ...] = (
    (A.REQUEST_CPUS, A.CPUS, 1),
    (A.REQUEST_MEMORY, A.MEMORY, 0),
    (A.REQUEST_DISK, A.DISK, 0),
    (A.REQUEST_GPUS, A.GPUS, 0),
)
#: The slot's resource attribute names, lower-cased.
SLOT_RESOURCE_NAMES: frozenset[str] = frozenset(r[1].lower() for r in RESOURCE_ATTRS)


@dataclass(frozen=True, slots=True)
class Resources:
    """An amount of each resource: ``cpus``, ``memory`` (MiB), ``disk`` (KiB), ``gpus``."""

    cpus: float = 0
    memory: float = 0
    disk: float = 0
    gpus: float = 0

    def fits_in(self, other: Resources) -> bool:
        """True if every amount here is at most the one in ``other``."""
        return (
            self.cpus <= other.cpus
            and self.memory <= other.memory
            and self.disk <= other.disk
            and self.gpus <= other.gpus
        )

    def minus(self, other: Resources) -> Resources:
        """What is left of these resources after ``other`` is taken."""
        return Resources(
            self.cpus - other.cpus, self.memory - other.memory,
            self.disk - other.disk, self.gpus - other.gpus,
        )

    def plus(self, other: Resources) -> Resources:
        """The sum of two amounts."""
        return Resources(
            self.cpus + other.cpus, self.memory + other.memory,
            self.disk + other.disk, self.gpus + other.gpus,
        )

    def as_ad(self) -> dict[str, int | float]:
        """The amounts under the slot attribute names (``{"Cpus": 2, "Memory": 2048, ...}``)."""
        return {A.CPUS: _tidy(self.cpus), A.MEMORY: _tidy(self.memory),
                A.DISK: _tidy(self.disk), A.GPUS: _tidy(self.gpus)}

    @classmethod
    def from_ad(cls, data: Mapping[str, Any] | None) -> Resources:
        """Read ``{"Cpus", "Memory", "Disk", "Gpus"}`` (any case; missing or bad values are 0)."""
        if not data:
            return cls()
        lower = {str(k).lower(): v for k, v in data.items()}
        return cls(*(_number(lower.get(name.lower()), 0) for _req, name, _d in RESOURCE_ATTRS))


def _tidy(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _number(value: Any, default: float) -> float:
    """A finite, non-negative number from a JSON value, else ``default``."""
    if value.__class__ in (int, float) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and number >= 0:
            return number
    return default


def _lookup(ad: Mapping[str, Any], name: str) -> Any:
    value = ad.get(name)
    if value is None:
        low = name.lower()
        for key, candidate in ad.items():
            if key.lower() == low:
                return candidate
    return value


def slot_resources(slot: Mapping[str, Any]) -> Resources:
    """What a slot ad offers now (its Cpus, Memory, Disk and Gpus; missing ones are 0)."""
    return Resources(*(_number(_lookup(slot, name), 0) for _req, name, _d in RESOURCE_ATTRS))


def job_request(job: Mapping[str, Any], slot: Mapping[str, Any] | None = None) -> Resources:
    """What a job asks for, its request expressions evaluated against ``slot`` (TARGET)."""
    values = []
    for request, _name, default in RESOURCE_ATTRS:
        raw = _lookup(job, request)
        if isinstance(raw, str):
            from gwms.classads import evaluate, is_expr_string

            raw = evaluate(raw, job, slot) if is_expr_string(raw) else None
        values.append(_number(raw, default))
    return Resources(*values)


def carving(request: Resources) -> Resources:
    """What a job takes from a partitionable slot: its request, with at least one CPU."""
    if request.cpus >= 1:
        return request
    return Resources(1, request.memory, request.disk, request.gpus)


def is_partitionable(slot: Mapping[str, Any]) -> bool:
    """True if the slot ad says ``PartitionableSlot = true``."""
    return _lookup(slot, PARTITIONABLE_SLOT) is True


def with_resources(slot: Mapping[str, Any], amounts: Resources) -> dict[str, Any]:
    """A copy of a slot ad whose Cpus/Memory/Disk/Gpus are ``amounts`` (a carved or remaining slot)."""
    out = {k: v for k, v in slot.items() if k.lower() not in SLOT_RESOURCE_NAMES}
    out.update(amounts.as_ad())
    return out
