"""The slots of one negotiation cycle, grouped by what matters to the jobs.

Slots whose match-relevant attributes are equal (the attributes the jobs read, the
slot's START/Requirements/Rank and what those read in the slot) form a :class:`SlotGroup`;
the matchmaker evaluates a job group against one representative per slot group.

A *static* slot takes one job. A *partitionable* slot (``PartitionableSlot = true``)
takes jobs while its Cpus, Memory, Disk and Gpus last: each job carves its request out
(at least one CPU), and what is left is a slot with fewer resources, which joins the
group of its new shape (the resources are always part of a partitionable slot's group).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gwms.classads import autocluster_signature
from gwms.pool import jobattrs as A
from gwms.pool.matchattrs import SLOT_SEEDS, reached
from gwms.pool.resources import (
    SLOT_RESOURCE_NAMES,
    Resources,
    carving,
    is_partitionable,
    slot_resources,
    with_resources,
)

JsonAd = Mapping[str, Any]


@dataclass
class PartitionableSlot:
    """A partitionable slot and what is still free in it this cycle."""

    name: str
    ad: JsonAd
    free: Resources
    group: str = ""

    def current_ad(self) -> dict[str, Any]:
        """The slot ad with its free resources (what a job is matched against now)."""
        return with_resources(self.ad, self.free)


@dataclass
class SlotGroup:
    """Slots that look the same to the jobs.

    ``ad`` is the representative; ``static`` the names of free static slots (taken from
    the end); ``partitionable`` the partitionable slots of this shape.
    """

    key: str
    ad: JsonAd
    is_partitionable: bool
    order: int
    static: list[str] = field(default_factory=list)
    partitionable: dict[str, PartitionableSlot] = field(default_factory=dict)

    def available(self) -> bool:
        """True while the group has a slot left to give."""
        return bool(self.static) if not self.is_partitionable else bool(self.partitionable)

    def size(self) -> int:
        """Slots in the group now."""
        return len(self.static) if not self.is_partitionable else len(self.partitionable)


def _expression_items(ad: JsonAd) -> frozenset[tuple[str, str]]:
    items = []
    for key, value in ad.items():
        c = value.__class__
        if c is str:
            if value.startswith("/Expr("):
                items.append((key.lower(), value))
        elif c is list:
            items.append((key.lower(), json.dumps(value, sort_keys=True)))
    return frozenset(items)


class SlotPool:
    """The slots of a cycle in groups; static slots are handed out, partitionable ones carved.

    Args:
        slots: slot ads (JSON form); a Name seen twice counts once (the first ad).
        job_reads: lower-cased slot attribute names the jobs read (see
            :func:`gwms.pool.matchattrs.job_reads`).
    """

    def __init__(self, slots: Iterable[JsonAd], job_reads: Iterable[str]) -> None:
        self._seeds = frozenset(job_reads) | frozenset(SLOT_SEEDS)
        self._attr_cache: dict[frozenset[tuple[str, str]], frozenset[str]] = {}
        self.groups: dict[str, SlotGroup] = {}
        self.static_ads: dict[str, JsonAd] = {}
        self.partitionable: dict[str, PartitionableSlot] = {}
        self.capacity = 0
        for ad in slots:
            name = ad.get(A.NAME)
            if not isinstance(name, str) or name in self.static_ads or name in self.partitionable:
                continue
            if is_partitionable(ad):
                pslot = PartitionableSlot(name, ad, slot_resources(ad))
                self.partitionable[name] = pslot
                if self._place(pslot) is not None:
                    self.capacity += int(pslot.free.cpus)
            else:
                self.static_ads[name] = ad
                group = self._group(self._key(ad, False), ad, False)
                group.static.append(name)
                self.capacity += 1
        for group in self.groups.values():
            group.static.reverse()  # handed out from the end: first come, first given

    # ------------------------------------------------------------------ grouping

    def _attrs(self, ad: JsonAd, partitionable: bool) -> frozenset[str]:
        fingerprint = _expression_items(ad)
        attrs = self._attr_cache.get(fingerprint)
        if attrs is None:
            attrs = reached(ad, self._seeds)[0]
            self._attr_cache[fingerprint] = attrs
        return attrs | SLOT_RESOURCE_NAMES if partitionable else attrs

    def _key(self, ad: JsonAd, partitionable: bool) -> str:
        prefix = "p|" if partitionable else "s|"
        return prefix + autocluster_signature(ad, self._attrs(ad, partitionable))

    def _group(self, key: str, ad: JsonAd, partitionable: bool) -> SlotGroup:
        group = self.groups.get(key)
        if group is None:
            group = SlotGroup(key, ad, partitionable, len(self.groups))
            self.groups[key] = group
        return group

    def _place(self, pslot: PartitionableSlot) -> SlotGroup | None:
        if pslot.free.cpus < 1:  # a dynamic slot takes at least one CPU: this one is used up
            pslot.group = ""
            return None
        current = pslot.current_ad()
        group = self._group(self._key(current, True), current, True)
        group.partitionable[pslot.name] = pslot
        pslot.group = group.key
        return group

    # ------------------------------------------------------------------ handing out

    def available_groups(self) -> Iterator[SlotGroup]:
        """Groups that still have a slot, in the order they were made."""
        for group in list(self.groups.values()):
            if group.available():
                yield group

    def take_static(self, group: SlotGroup, count: int) -> list[tuple[str, JsonAd]]:
        """Up to ``count`` static slots of ``group``, as (name, ad)."""
        out = []
        while count > 0 and group.static:
            name = group.static.pop()
            out.append((name, self.static_ads[name]))
            count -= 1
        return out

    def carve(
        self, pslot: PartitionableSlot, request: Resources
    ) -> tuple[dict[str, Any], Resources, SlotGroup | None]:
        """Carve ``request`` (at least one CPU) out of ``pslot``.

        Returns (the slot's ad as it was matched, what was taken, the group the rest of the
        slot is in now, None once it has no CPU left). The caller checks that the request
        fits first (:func:`carving`).
        """
        taken = carving(request)
        before = pslot.current_ad()
        old = self.groups[pslot.group]
        old.partitionable.pop(pslot.name, None)
        pslot.free = pslot.free.minus(taken)
        return before, taken, self._place(pslot)
