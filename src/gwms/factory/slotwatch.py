"""What the user pool shows of an entry's glideins: their slots, for the unclaimed rule.

GlideinWMS's factory read the glideins' startd ads from the user pool's collector and
removed running glideins whose slots sat unclaimed longer than ``StaleAgeUnclaimed``
(:func:`gwms.factory.limits.stale_unclaimed` decides; this module only gathers).
The factory knows that collector and holds a token for it from the frontend's request
(``GLIDEIN_Collector`` and ``GLIDEIN_Token``, the glideins' own READ + ADVERTISE_STARTD
token), so :class:`SlotWatcher` asks it, at most every ``slot_check_s`` per collector,
for the slots whose ``GLIDEIN_Factory``, ``GLIDEIN_Name`` and ``GLIDEIN_Entry_Name`` are
this entry's, and maps them to pilots by ``GLIDEIN_ClusterId`` / ``GLIDEIN_ProcId``.

When a slot ad carries ``EnteredCurrentState`` (HTCondor's startds do), an unclaimed
slot has been unclaimed since then (measured against the ad's ``LastHeardFrom``, as the
original did); otherwise since the first look that saw it unclaimed (a restarted factory
starts counting again, which only delays a removal). A collector that cannot be read
gives no slots: no glidein is judged stale on missing news.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gwms.factory.limits import SLOT_UNCLAIMED, SlotView

log = logging.getLogger("gwms.factory")

__all__ = ["SlotSource", "SlotWatcher", "collector_source", "slot_constraint", "slots_by_pilot"]

#: What the watcher reads of a slot ad.
SLOT_PROJECTION = (
    "Name", "State", "GLIDEIN_ClusterId", "GLIDEIN_ProcId", "EnteredCurrentState", "LastHeardFrom",
)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def slot_constraint(factory: str, instance: str, entry: str) -> str:
    """The constraint selecting the slots of one entry's glideins."""
    return (f"GLIDEIN_Factory =?= {_quoted(factory)} && GLIDEIN_Name =?= {_quoted(instance)} "
            f"&& GLIDEIN_Entry_Name =?= {_quoted(entry)}")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def slots_by_pilot(
    ads: Iterable[Mapping[str, Any]],
    pilot_of: Mapping[tuple[int, int], str],
    now: float,
    first_seen: dict[str, float],
) -> dict[str, list[SlotView]]:
    """Slot ads grouped by pilot id (``pilot_of``: (cluster, proc) -> pilot id).

    ``first_seen`` (slot name -> when first seen unclaimed) is updated in place: slots
    seen unclaimed are added, every other slot is dropped from it.
    """
    out: dict[str, list[SlotView]] = {}
    seen_unclaimed: set[str] = set()
    for ad in ads:
        low = {str(k).lower(): v for k, v in ad.items()}
        cluster, proc = _number(low.get("glidein_clusterid")), _number(low.get("glidein_procid"))
        name = low.get("name")
        if cluster is None or proc is None or not isinstance(name, str):
            continue
        pilot = pilot_of.get((int(cluster), int(proc)))
        if pilot is None:
            continue
        state = low.get("state")
        state = state if isinstance(state, str) else ""
        since: float | None = None
        if state == SLOT_UNCLAIMED:
            entered, heard = _number(low.get("enteredcurrentstate")), _number(low.get("lastheardfrom"))
            if entered is not None:
                since = now - max(0.0, (heard if heard is not None else now) - entered)
            else:
                since = first_seen.setdefault(name, now)
            seen_unclaimed.add(name)
        out.setdefault(pilot, []).append(SlotView(name, state, since))
    for name in list(first_seen):
        if name not in seen_unclaimed:
            del first_seen[name]
    return out


#: ``source(collector_url, token, constraint, projection) -> slot ads``; raises on failure.
SlotSource = Callable[[str, str, str, Sequence[str]], list[dict[str, Any]]]


def collector_source(url: str, token: str, constraint: str, projection: Sequence[str]) -> list[dict[str, Any]]:
    """Ask a user pool's collector for slot ads (short timeout, no retries)."""
    from gwms.pool.collector.client import CollectorClient

    client = CollectorClient(url, token=token, timeout=5.0, retries=0)
    try:
        return client.query("Machine", constraint=constraint, projection=list(projection))
    finally:
        client.close()


@dataclass
class _Pool:
    checked: float = float("-inf")
    slots: dict[str, list[SlotView]] | None = None
    error: str = ""


class SlotWatcher:
    """Gathers the slots of one entry's glideins from the user pools (module docstring).

    Args:
        factory, instance, entry: whose glideins (the slot ads' GLIDEIN_* values).
        interval: seconds between looks at one collector.
        source: how to query a collector (tests inject one).
        clock: epoch seconds.
    """

    def __init__(self, factory: str, instance: str, entry: str, *, interval: float,
                 source: SlotSource = collector_source, clock: Callable[[], float] = time.time) -> None:
        self.constraint = slot_constraint(factory, instance, entry)
        self.entry = entry
        self.interval = interval
        self.source = source
        self.clock = clock
        self._pools: dict[str, _Pool] = {}
        self._first_seen: dict[str, dict[str, float]] = {}

    def slots(
        self,
        pilots: Iterable[tuple[str, int, int, str]],
        pools: Mapping[str, tuple[str, str]],
    ) -> dict[str, list[SlotView]]:
        """Slots by pilot id.

        Args:
            pilots: ``(pilot_id, cluster, proc, client_key)`` of the running glideins.
            pools: client key -> ``(collector URL, token)`` from its request; glideins of
                clients without one are not looked up.
        """
        now = self.clock()
        by_pool: dict[str, dict[tuple[int, int], str]] = {}
        tokens: dict[str, str] = {}
        for pilot_id, cluster, proc, key in pilots:
            where = pools.get(key)
            if where is None or not where[0] or not where[1]:
                continue
            by_pool.setdefault(where[0], {})[(cluster, proc)] = pilot_id
            tokens[where[0]] = where[1]
        out: dict[str, list[SlotView]] = {}
        for url, pilot_of in by_pool.items():
            pool = self._pools.setdefault(url, _Pool())
            if pool.slots is None or now - pool.checked >= self.interval:
                pool.checked = now
                try:
                    ads = self.source(url, tokens[url], self.constraint, SLOT_PROJECTION)
                except Exception as exc:  # noqa: BLE001 - no news is no judgement
                    message = f"{type(exc).__name__}: {exc}"
                    if message != pool.error:
                        log.info("entry %s: cannot read the glideins' slots from %s: %s",
                                 self.entry, url, message)
                    pool.error, pool.slots = message, {}
                else:
                    pool.error = ""
                    pool.slots = slots_by_pilot(ads, pilot_of, now, self._first_seen.setdefault(url, {}))
            wanted = set(pilot_of.values())
            for pilot_id, views in (pool.slots or {}).items():
                if pilot_id in wanted:
                    out[pilot_id] = views
        return out
