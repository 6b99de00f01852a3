"""An in-memory pilot store with the factory's :class:`~gwms.factory.pilotstore.PilotStore`
semantics, so the real :class:`~gwms.factory.entry.EntryWorker` runs unchanged in the
simulation at 100k-pilot scale (SQLite per cycle would dominate the run time).

Only storage is reimplemented here, never a decision: every method does what the SQL of
the same method in ``pilotstore.py`` does (the unit tests run the same operations on
both and compare). History rows are counted, not kept.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from gwms.factory.limits import PilotView
from gwms.factory.pilotstore import NewPilot, PilotRecord, StateChange
from gwms.factory.states import TERMINAL_STATES, PilotState

__all__ = ["MemoryPilotStore", "StoredPilot"]


class StoredPilot(PilotRecord):
    """A :class:`PilotRecord` that builds its :meth:`view` once (records are immutable;
    a change makes a new record). The entry cycle asks for each pilot's view several
    times per cycle, which dominated the factory's share of a large simulation."""

    def view(self) -> PilotView:
        """What the decisions need of this pilot (built on first use)."""
        cached = self.__dict__.get("_view")
        if cached is None:
            cached = PilotRecord.view(self)
            object.__setattr__(self, "_view", cached)
        return cached  # type: ignore[no-any-return]


class MemoryPilotStore:
    """The pilot store of one simulated factory (see the module docstring)."""

    def __init__(self) -> None:
        self._active: dict[str, dict[str, PilotRecord]] = {}
        self._ended: dict[str, PilotRecord] = {}
        self._uncollected: dict[str, dict[str, None]] = {}
        self._entry_of: dict[str, str] = {}
        self._control: dict[str, str] = {}
        self._cluster = 0
        self.history_rows = 0

    def close(self) -> None:
        """Nothing to close (the PilotStore interface)."""

    # ------------------------------------------------------------------ helpers

    def _get(self, pilot_id: str) -> PilotRecord | None:
        entry = self._entry_of.get(pilot_id)
        if entry is None:
            return None
        rec = self._active.get(entry, {}).get(pilot_id)
        return rec if rec is not None else self._ended.get(pilot_id)

    def _put(self, rec: PilotRecord) -> None:
        active = self._active.setdefault(rec.entry, {})
        if rec.active:
            active[rec.pilot_id] = rec
            return
        active.pop(rec.pilot_id, None)
        self._ended[rec.pilot_id] = rec
        if rec.site_id is not None and not rec.output_collected:
            self._uncollected.setdefault(rec.entry, {})[rec.pilot_id] = None

    def next_cluster(self) -> int:
        """A new cluster number (a per-factory counter, starting at 1)."""
        self._cluster += 1
        return self._cluster

    # ------------------------------------------------------------------ writes

    def add_unsubmitted(self, pilots: Sequence[NewPilot], now: float) -> None:
        """Write the records of pilots about to be submitted."""
        for p in pilots:
            if p.pilot_id in self._entry_of:
                raise ValueError(f"pilot {p.pilot_id} exists")  # the PRIMARY KEY would refuse it
            self._entry_of[p.pilot_id] = p.entry
            self._put(StoredPilot(
                pilot_id=p.pilot_id, entry=p.entry, client_key=p.client_key, client_name=p.client_name,
                credential_id=p.credential_id, frontend=p.frontend, security_class=p.security_class,
                user=p.user, request_name=p.request_name, cluster=p.cluster, proc=p.proc, site_id=None,
                state=PilotState.UNSUBMITTED, active=True, exit_code=None, reason="", created=now,
                submitted=None, state_since=now, running_since=None, finished=None, holds=0,
                releases=0, remove_requested=None, remove_reason="", unknown_since=None,
                idle_lifetime=p.idle_lifetime, stdout=p.stdout, stderr=p.stderr, output_collected=False,
            ))
            self.history_rows += 1

    def record_submitted(self, results: Sequence[tuple[str, str | None, str]], now: float) -> None:
        """Results of a submit call: ``(pilot_id, site_id or None, refusal reason)``."""
        for pilot_id, site_id, reason in results:
            rec = self._get(pilot_id)
            if rec is None or rec.state is not PilotState.UNSUBMITTED:
                continue
            if site_id is not None:
                self._put(replace(rec, site_id=site_id, state=PilotState.PENDING, submitted=now, state_since=now))
            else:
                self._put(replace(rec, state=PilotState.FAILED, active=False, reason=reason,
                                  state_since=now, finished=now))
            self.history_rows += 1

    def abandon(self, pilot_ids: Iterable[str], reason: str, now: float) -> None:
        """Mark unsubmitted records lost."""
        for pilot_id in pilot_ids:
            rec = self._get(pilot_id)
            if rec is None or rec.state is not PilotState.UNSUBMITTED:
                continue
            self._put(replace(rec, state=PilotState.LOST, active=False, reason=reason,
                              state_since=now, finished=now))
            self.history_rows += 1

    def apply(self, changes: Sequence[StateChange], now: float) -> None:
        """Apply state changes from a poll."""
        for ch in changes:
            rec = self._get(ch.pilot_id)
            if rec is None:
                continue
            upd: dict[str, Any] = {}
            if ch.state is not None:
                upd["state"] = ch.state
                upd["state_since"] = now
                if ch.state in TERMINAL_STATES:
                    upd["active"] = False
                    upd["finished"] = now
            if ch.exit_code is not None:
                upd["exit_code"] = ch.exit_code
            if ch.reason is not None:
                upd["reason"] = ch.reason
            if ch.running_since is not None:
                upd["running_since"] = ch.running_since
            if ch.holds is not None:
                upd["holds"] = ch.holds
            if ch.clear_unknown:
                upd["unknown_since"] = None
            elif ch.unknown_since is not None:
                upd["unknown_since"] = ch.unknown_since
            if not upd:
                continue
            self._put(replace(rec, **upd))
            if ch.state is not None:
                self.history_rows += 1

    def request_removal(self, removals: Sequence[tuple[str, str]], now: float) -> None:
        """Note that the factory asked the site to remove these ``(pilot_id, reason)``."""
        for pilot_id, reason in removals:
            rec = self._get(pilot_id)
            if rec is None:
                continue
            if rec.remove_requested is None:
                self._put(replace(rec, remove_requested=now, remove_reason=reason))
            self.history_rows += 1

    def record_released(self, pilot_ids: Sequence[str], now: float) -> None:
        """Count a release of each held pilot."""
        for pilot_id in pilot_ids:
            rec = self._get(pilot_id)
            if rec is not None:
                self._put(replace(rec, releases=rec.releases + 1))
                self.history_rows += 1

    def mark_output_collected(self, pilot_id: str) -> None:
        """The pilot's stdout/stderr are complete at their paths."""
        rec = self._get(pilot_id)
        if rec is None:
            return
        new = replace(rec, output_collected=True)
        if new.active:
            self._active[new.entry][pilot_id] = new
        else:
            self._ended[pilot_id] = new
            self._uncollected.get(new.entry, {}).pop(pilot_id, None)

    # ------------------------------------------------------------------ reads

    def active(self, entry: str) -> list[PilotRecord]:
        """The entry's pilots in an active state, by cluster and proc."""
        recs = list(self._active.get(entry, {}).values())
        # records are added in cluster order; a re-sorted list only when that ever differs
        for a, b in itertools.pairwise(recs):
            if (a.cluster, a.proc) > (b.cluster, b.proc):
                return sorted(recs, key=lambda r: (r.cluster, r.proc))
        return recs

    def uncollected(self, entry: str, limit: int = 100) -> list[PilotRecord]:
        """Ended pilots of the entry whose output was not collected yet (by end time)."""
        ids = list(self._uncollected.get(entry, {}))
        recs = [self._ended[i] for i in ids]
        recs.sort(key=lambda r: r.finished or 0.0)
        return recs[:limit]

    def get(self, pilot_id: str) -> PilotRecord | None:
        """One pilot, or None."""
        return self._get(pilot_id)

    def count_active(self, entry: str | None = None) -> dict[str, int]:
        """Active pilots by state (of one entry, or all)."""
        out: dict[str, int] = {}
        groups = [self._active.get(entry, {})] if entry is not None else list(self._active.values())
        for recs in groups:
            for rec in recs.values():
                out[rec.state.value] = out.get(rec.state.value, 0) + 1
        return out

    def ended(self) -> list[PilotRecord]:
        """Every pilot no longer active (for the report)."""
        return list(self._ended.values())

    # ------------------------------------------------------------------ entry control

    def control(self, entry: str) -> dict[str, Any]:
        """The stored control data of an entry (``{}`` if none)."""
        text = self._control.get(entry)
        return dict(json.loads(text)) if text else {}

    def update_control(self, entry: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        """Read, change and write an entry's control data; returns the new data."""
        current = self.control(entry)
        new = change(dict(current))
        if new != current:
            self._control[entry] = json.dumps(new, sort_keys=True)
        return new

    def set_control(self, entry: str, data: dict[str, Any]) -> None:
        """Replace the control data of an entry."""
        self._control[entry] = json.dumps(data, sort_keys=True)
