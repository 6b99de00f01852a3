"""The pilot store: every pilot the factory ever submitted, in SQLite (WAL).

A pilot's record is written *before* it is submitted (state ``unsubmitted``) and gets
its site id right after, each in its own transaction, so a factory killed at any
moment (even ``kill -9``) finds every pilot again on restart: those with a site id are
polled, those without are submitted again with the same pilot id, which backends treat
idempotently (see :mod:`gwms.factory.backends.base`). Every state change is appended
to ``history``. Operator controls (pause, downtimes) and each entry's failure health
are kept in ``entry_control``, so they survive restarts too.

The store is shared by the entry workers of one factory: one connection, one lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from gwms.factory.limits import PilotView
from gwms.factory.states import TERMINAL_STATES, PilotState

__all__ = ["NewPilot", "PilotRecord", "PilotStore", "StateChange"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pilots (
    pilot_id        TEXT PRIMARY KEY,
    entry           TEXT NOT NULL,
    client_key      TEXT NOT NULL,
    client_name     TEXT NOT NULL,
    credential_id   TEXT NOT NULL,
    frontend        TEXT NOT NULL,
    security_class  TEXT NOT NULL,
    user            TEXT NOT NULL,
    request_name    TEXT NOT NULL DEFAULT '',
    cluster         INTEGER NOT NULL,
    proc            INTEGER NOT NULL,
    site_id         TEXT,
    state           TEXT NOT NULL,
    active          INTEGER NOT NULL DEFAULT 1,
    exit_code       INTEGER,
    reason          TEXT NOT NULL DEFAULT '',
    created         REAL NOT NULL,
    submitted       REAL,
    state_since     REAL NOT NULL,
    running_since   REAL,
    finished        REAL,
    holds           INTEGER NOT NULL DEFAULT 0,
    releases        INTEGER NOT NULL DEFAULT 0,
    remove_requested REAL,
    remove_reason   TEXT NOT NULL DEFAULT '',
    unknown_since   REAL,
    idle_lifetime   REAL NOT NULL DEFAULT 0,
    stdout          TEXT NOT NULL,
    stderr          TEXT NOT NULL,
    output_collected INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS pilots_entry_active ON pilots(entry, active);
CREATE TABLE IF NOT EXISTS history (
    pilot_id TEXT NOT NULL,
    time     REAL NOT NULL,
    state    TEXT NOT NULL,
    note     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS history_pilot ON history(pilot_id);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS entry_control (entry TEXT PRIMARY KEY, data TEXT NOT NULL);
"""


@dataclass(frozen=True)
class NewPilot:
    """A pilot about to be submitted (its record is written first)."""

    pilot_id: str
    entry: str
    client_key: str
    client_name: str
    credential_id: str
    frontend: str
    security_class: str
    user: str
    request_name: str
    cluster: int
    proc: int
    idle_lifetime: float
    stdout: str
    stderr: str


@dataclass(frozen=True)
class PilotRecord:
    """One pilot as stored."""

    pilot_id: str
    entry: str
    client_key: str
    client_name: str
    credential_id: str
    frontend: str
    security_class: str
    user: str
    request_name: str
    cluster: int
    proc: int
    site_id: str | None
    state: PilotState
    active: bool
    exit_code: int | None
    reason: str
    created: float
    submitted: float | None
    state_since: float
    running_since: float | None
    finished: float | None
    holds: int
    releases: int
    remove_requested: float | None
    remove_reason: str
    unknown_since: float | None
    idle_lifetime: float
    stdout: str
    stderr: str
    output_collected: bool

    @property
    def group(self) -> str:
        """``frontend:security_class``."""
        return f"{self.frontend}:{self.security_class}"

    def view(self) -> PilotView:
        """What the decisions need of this pilot."""
        return PilotView(
            pilot_id=self.pilot_id,
            state=self.state,
            submitted=self.submitted if self.submitted is not None else self.created,
            state_since=self.state_since,
            running_since=self.running_since,
            holds=self.holds,
            releases=self.releases,
            hold_reason=self.reason if self.state is PilotState.HELD else "",
            removing=self.remove_requested is not None,
            idle_lifetime=self.idle_lifetime,
        )

    def as_json(self) -> dict[str, Any]:
        """A JSON-able dict (what ``gwms factory q -json`` prints)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["state"] = self.state.value
        return out


@dataclass(frozen=True)
class StateChange:
    """A change to one pilot's record from what the site said.

    Fields left None are not changed; ``state`` None keeps the state (e.g. only
    ``unknown_since`` is set). ``clear_unknown`` resets ``unknown_since``.
    """

    pilot_id: str
    state: PilotState | None = None
    exit_code: int | None = None
    reason: str | None = None
    running_since: float | None = None
    holds: int | None = None
    unknown_since: float | None = None
    clear_unknown: bool = False
    note: str = ""


_COLUMNS = [f.name for f in fields(PilotRecord)]


def _record(row: sqlite3.Row) -> PilotRecord:
    data = dict(zip(_COLUMNS, row, strict=True))
    data["state"] = PilotState(data["state"])
    data["active"] = bool(data["active"])
    data["output_collected"] = bool(data["output_collected"])
    return PilotRecord(**data)


class PilotStore:
    """The factory's SQLite store of pilots (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None, timeout=30
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ helpers

    def _tx(self) -> _Transaction:
        return _Transaction(self)

    def next_cluster(self) -> int:
        """A new cluster number (a per-factory counter, starting at 1)."""
        with self._tx() as db:
            row = db.execute("SELECT value FROM counters WHERE name='cluster'").fetchone()
            value = (row[0] if row else 0) + 1
            db.execute(
                "INSERT INTO counters(name, value) VALUES('cluster', ?) "
                "ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                (value,),
            )
        return int(value)

    # ------------------------------------------------------------------ writes

    def add_unsubmitted(self, pilots: Sequence[NewPilot], now: float) -> None:
        """Write the records of pilots about to be submitted (one transaction)."""
        with self._tx() as db:
            db.executemany(
                "INSERT INTO pilots(pilot_id, entry, client_key, client_name, credential_id, "
                "frontend, security_class, user, request_name, cluster, proc, state, created, "
                "state_since, idle_lifetime, stdout, stderr) "
                "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (p.pilot_id, p.entry, p.client_key, p.client_name, p.credential_id,
                     p.frontend, p.security_class, p.user, p.request_name, p.cluster, p.proc,
                     PilotState.UNSUBMITTED.value, now, now, p.idle_lifetime, p.stdout, p.stderr)
                    for p in pilots
                ],
            )
            db.executemany(
                "INSERT INTO history(pilot_id, time, state, note) VALUES(?,?,?,?)",
                [(p.pilot_id, now, PilotState.UNSUBMITTED.value, "record written") for p in pilots],
            )

    def record_submitted(
        self, results: Sequence[tuple[str, str | None, str]], now: float
    ) -> None:
        """Results of a submit call: ``(pilot_id, site_id or None, refusal reason)``.

        With a site id the pilot becomes pending; without, failed (never at the site).
        """
        with self._tx() as db:
            for pilot_id, site_id, reason in results:
                if site_id is not None:
                    db.execute(
                        "UPDATE pilots SET site_id=?, state=?, submitted=?, state_since=? "
                        "WHERE pilot_id=? AND state=?",
                        (site_id, PilotState.PENDING.value, now, now, pilot_id,
                         PilotState.UNSUBMITTED.value),
                    )
                    self._history(db, pilot_id, now, PilotState.PENDING, f"submitted as {site_id}")
                else:
                    db.execute(
                        "UPDATE pilots SET state=?, active=0, reason=?, state_since=?, finished=? "
                        "WHERE pilot_id=? AND state=?",
                        (PilotState.FAILED.value, reason, now, now, pilot_id,
                         PilotState.UNSUBMITTED.value),
                    )
                    self._history(db, pilot_id, now, PilotState.FAILED, f"refused: {reason}")

    def abandon(self, pilot_ids: Iterable[str], reason: str, now: float) -> None:
        """Mark unsubmitted records lost (the site never confirmed them)."""
        with self._tx() as db:
            for pilot_id in pilot_ids:
                cur = db.execute(
                    "UPDATE pilots SET state=?, active=0, reason=?, state_since=?, finished=? "
                    "WHERE pilot_id=? AND state=?",
                    (PilotState.LOST.value, reason, now, now, pilot_id,
                     PilotState.UNSUBMITTED.value),
                )
                if cur.rowcount:
                    self._history(db, pilot_id, now, PilotState.LOST, reason)

    def apply(self, changes: Sequence[StateChange], now: float) -> None:
        """Apply state changes from a poll (one transaction)."""
        if not changes:
            return
        with self._tx() as db:
            for ch in changes:
                sets: list[str] = []
                args: list[Any] = []
                if ch.state is not None:
                    sets += ["state=?", "state_since=?"]
                    args += [ch.state.value, now]
                    if ch.state in TERMINAL_STATES:
                        sets += ["active=0", "finished=?"]
                        args.append(now)
                if ch.exit_code is not None:
                    sets.append("exit_code=?")
                    args.append(ch.exit_code)
                if ch.reason is not None:
                    sets.append("reason=?")
                    args.append(ch.reason)
                if ch.running_since is not None:
                    sets.append("running_since=?")
                    args.append(ch.running_since)
                if ch.holds is not None:
                    sets.append("holds=?")
                    args.append(ch.holds)
                if ch.clear_unknown:
                    sets.append("unknown_since=NULL")
                elif ch.unknown_since is not None:
                    sets.append("unknown_since=?")
                    args.append(ch.unknown_since)
                if not sets:
                    continue
                db.execute(f"UPDATE pilots SET {', '.join(sets)} WHERE pilot_id=?", [*args, ch.pilot_id])
                if ch.state is not None:
                    self._history(db, ch.pilot_id, now, ch.state, ch.note or (ch.reason or ""))

    def request_removal(self, removals: Sequence[tuple[str, str]], now: float) -> None:
        """Note that the factory asked the site to remove these ``(pilot_id, reason)``."""
        with self._tx() as db:
            for pilot_id, reason in removals:
                db.execute(
                    "UPDATE pilots SET remove_requested=?, remove_reason=? "
                    "WHERE pilot_id=? AND remove_requested IS NULL",
                    (now, reason, pilot_id),
                )
                db.execute(
                    "INSERT INTO history(pilot_id, time, state, note) "
                    "SELECT pilot_id, ?, state, ? FROM pilots WHERE pilot_id=?",
                    (now, f"removal asked: {reason}", pilot_id),
                )

    def record_released(self, pilot_ids: Sequence[str], now: float) -> None:
        """Count a release of each held pilot."""
        with self._tx() as db:
            for pilot_id in pilot_ids:
                db.execute("UPDATE pilots SET releases=releases+1 WHERE pilot_id=?", (pilot_id,))
                db.execute(
                    "INSERT INTO history(pilot_id, time, state, note) "
                    "SELECT pilot_id, ?, state, 'released' FROM pilots WHERE pilot_id=?",
                    (now, pilot_id),
                )

    def mark_output_collected(self, pilot_id: str) -> None:
        """The pilot's stdout/stderr are complete at their paths."""
        with self._tx() as db:
            db.execute("UPDATE pilots SET output_collected=1 WHERE pilot_id=?", (pilot_id,))

    @staticmethod
    def _history(db: sqlite3.Connection, pilot_id: str, now: float, state: PilotState, note: str) -> None:
        db.execute(
            "INSERT INTO history(pilot_id, time, state, note) VALUES(?,?,?,?)",
            (pilot_id, now, state.value, note),
        )

    # ------------------------------------------------------------------ reads

    def active(self, entry: str) -> list[PilotRecord]:
        """The entry's pilots in an active state."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM pilots WHERE entry=? AND active=1 "
                "ORDER BY cluster, proc",
                (entry,),
            ).fetchall()
        return [_record(r) for r in rows]

    def uncollected(self, entry: str, limit: int = 100) -> list[PilotRecord]:
        """Ended pilots of the entry whose output was not collected yet."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM pilots WHERE entry=? AND active=0 "
                "AND output_collected=0 AND site_id IS NOT NULL ORDER BY finished LIMIT ?",
                (entry, limit),
            ).fetchall()
        return [_record(r) for r in rows]

    def get(self, pilot_id: str) -> PilotRecord | None:
        """One pilot, or None."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM pilots WHERE pilot_id=?", (pilot_id,)
            ).fetchone()
        return _record(row) if row else None

    def query(
        self,
        *,
        entry: str | None = None,
        client: str | None = None,
        states: Iterable[PilotState] | None = None,
        active_only: bool = True,
        limit: int = 10000,
    ) -> list[PilotRecord]:
        """Pilots by entry, client (key or client name), states; newest clusters last."""
        where: list[str] = []
        args: list[Any] = []
        if entry is not None:
            where.append("entry=?")
            args.append(entry)
        if client is not None:
            where.append("(client_key=? OR client_name=?)")
            args += [client, client]
        if states is not None:
            wanted = [s.value for s in states]
            where.append(f"state IN ({','.join('?' * len(wanted))})" if wanted else "0")
            args += wanted
        if active_only:
            where.append("active=1")
        sql = f"SELECT {', '.join(_COLUMNS)} FROM pilots"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY cluster DESC, proc DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_record(r) for r in reversed(rows)]

    def history(self, pilot_id: str) -> list[tuple[float, str, str]]:
        """``(time, state, note)`` of one pilot, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT time, state, note FROM history WHERE pilot_id=? ORDER BY rowid",
                (pilot_id,),
            ).fetchall()
        return [(float(t), str(s), str(n)) for t, s, n in rows]

    def count_active(self, entry: str | None = None) -> dict[str, int]:
        """Active pilots by state (of one entry, or all)."""
        sql = "SELECT state, COUNT(*) FROM pilots WHERE active=1"
        args: list[Any] = []
        if entry is not None:
            sql += " AND entry=?"
            args.append(entry)
        with self._lock:
            rows = self._db.execute(sql + " GROUP BY state", args).fetchall()
        return {str(s): int(n) for s, n in rows}

    # ------------------------------------------------------------------ entry control

    def control(self, entry: str) -> dict[str, Any]:
        """The stored control data of an entry (``{}`` if none)."""
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM entry_control WHERE entry=?", (entry,)
            ).fetchone()
        return dict(json.loads(row[0])) if row else {}

    def update_control(
        self, entry: str, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        """Read, change and write an entry's control data in one transaction; returns
        the new data (``change`` gets a copy it may modify and return)."""
        with self._tx() as db:
            row = db.execute("SELECT data FROM entry_control WHERE entry=?", (entry,)).fetchone()
            current = dict(json.loads(row[0])) if row else {}
            new = change(dict(current))
            if new != current:
                db.execute(
                    "INSERT INTO entry_control(entry, data) VALUES(?, ?) "
                    "ON CONFLICT(entry) DO UPDATE SET data=excluded.data",
                    (entry, json.dumps(new, sort_keys=True)),
                )
        return new

    def set_control(self, entry: str, data: dict[str, Any]) -> None:
        """Replace the control data of an entry."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO entry_control(entry, data) VALUES(?, ?) "
                "ON CONFLICT(entry) DO UPDATE SET data=excluded.data",
                (entry, json.dumps(data, sort_keys=True)),
            )


class _Transaction:
    """``with store._tx() as db:`` — one IMMEDIATE transaction under the store's lock."""

    def __init__(self, store: PilotStore) -> None:
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        self.store._lock.acquire()
        try:
            self.store._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.store._lock.release()
            raise
        return self.store._db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.store._db.execute("COMMIT")
            else:
                self.store._db.execute("ROLLBACK")
        finally:
            self.store._lock.release()

