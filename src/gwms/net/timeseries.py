"""A small embedded time-series store with downsampling, fed from a service's own gauges.

Every gwms service (through :func:`gwms.net.app.create_app`) samples the ``gwms_*``
gauges and counters of its Prometheus registry every ``interval`` seconds
(``$GWMS_HISTORY_INTERVAL``, default 60) and keeps them at two resolutions:

- 1-minute points for a day (:data:`MINUTE`), shown by the ``hour`` and ``day`` views;
- 1-hour points for a year (:data:`HOUR`), shown by the ``week`` and ``year`` views.

A point is the mean of the samples that fell into its bucket: each sample is added to
its minute bucket and to its hour bucket at once (a running sum and count), so no
separate roll-up pass is needed and a restart loses nothing already written. Old
points are pruned as samples arrive.

The store is SQLite: in memory by default, or a file when ``$GWMS_HISTORY_DIR`` is set
(``DIR/<service>.sqlite``; a service may set ``app.state.history_name`` to tell two
instances apart). ``GET /api/v1/history?metric=NAME&range=day`` answers with the series
(see :func:`install_history`); without ``metric`` it lists the metrics it has.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Query, Request
from prometheus_client import CollectorRegistry

from gwms.errors import GwmsError
from gwms.net.errors import ApiError

log = logging.getLogger("gwms.net.timeseries")

__all__ = [
    "HOUR",
    "MINUTE",
    "RANGES",
    "HistoryError",
    "RegistrySampler",
    "Resolution",
    "Series",
    "TimeSeriesStore",
    "bucket_start",
    "downsample",
    "history_interval",
    "install_history",
    "registry_samples",
]

#: Environment variables: the sampling interval (seconds) and the store's directory.
INTERVAL_ENV = "GWMS_HISTORY_INTERVAL"
DIR_ENV = "GWMS_HISTORY_DIR"
DEFAULT_INTERVAL = 60.0


class HistoryError(GwmsError):
    """A bad history query (unknown range, bad label filter)."""


@dataclass(frozen=True)
class Resolution:
    """One resolution of the store: ``step`` seconds per point, kept ``keep`` seconds."""

    name: str
    step: int
    keep: int


MINUTE = Resolution("minute", 60, 86400)
HOUR = Resolution("hour", 3600, 366 * 86400)

#: The views: name -> (seconds shown, resolution read).
RANGES: dict[str, tuple[int, Resolution]] = {
    "hour": (3600, MINUTE),
    "day": (86400, MINUTE),
    "week": (7 * 86400, HOUR),
    "year": (366 * 86400, HOUR),
}


@dataclass
class Series:
    """One labelled series of a metric: ``points`` are ``(epoch seconds, value)``, oldest first."""

    metric: str
    labels: dict[str, str]
    points: list[tuple[int, float]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """``{"labels": {...}, "points": [[t, v], ...]}``."""
        return {"labels": self.labels, "points": [[t, v] for t, v in self.points]}


def bucket_start(t: float, step: int) -> int:
    """The start of the ``step``-second bucket holding time ``t`` (a pure function)."""
    return math.floor(t / step) * step


def downsample(samples: Iterable[tuple[float, float]], step: int) -> list[tuple[int, float]]:
    """Mean of the samples per ``step``-second bucket, oldest bucket first (pure).

    This is what the store computes incrementally; it is also how a reader may merge
    points to a coarser step.
    """
    sums: dict[int, list[float]] = {}
    for t, v in samples:
        acc = sums.setdefault(bucket_start(t, step), [0.0, 0.0])
        acc[0] += v
        acc[1] += 1
    return [(b, acc[0] / acc[1]) for b, acc in sorted(sums.items())]


def _labels_key(labels: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(labels.items())), separators=(",", ":"))


def parse_label_filter(text: str | None) -> dict[str, str]:
    """``"entry=a,state=running"`` -> ``{"entry": "a", "state": "running"}``."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise HistoryError(f"bad label filter {part!r}: expected name=value")
        out[key.strip()] = value.strip()
    return out


_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    step   INTEGER NOT NULL,
    metric TEXT NOT NULL,
    labels TEXT NOT NULL,
    t      INTEGER NOT NULL,
    sum    REAL NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (step, metric, labels, t)
) WITHOUT ROWID;
"""


class TimeSeriesStore:
    """Time series at 1-minute (a day) and 1-hour (a year) resolution in SQLite.

    Thread-safe (one connection behind a lock). ``path`` None keeps it in memory.
    """

    resolutions: tuple[Resolution, ...] = (MINUTE, HOUR)

    def __init__(self, path: str | Path | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path) if path is not None else None
        self.clock = clock
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(self.path) if self.path else ":memory:", check_same_thread=False,
            isolation_level=None, timeout=30,
        )
        if self.path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._last_prune = 0.0

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def record(self, samples: Iterable[tuple[str, Mapping[str, str], float]], now: float | None = None) -> int:
        """Add one sample per ``(metric, labels, value)`` at time ``now``; the count added.

        Values that are not finite numbers are ignored.
        """
        now = self.clock() if now is None else now
        rows = []
        for metric, labels, value in samples:
            value = float(value)
            if not math.isfinite(value):
                continue
            key = _labels_key(labels)
            for res in self.resolutions:
                rows.append((res.step, metric, key, bucket_start(now, res.step), value))
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO points (step, metric, labels, t, sum, n) VALUES (?, ?, ?, ?, ?, 1) "
                    "ON CONFLICT (step, metric, labels, t) DO UPDATE SET sum = sum + excluded.sum, n = n + 1",
                    rows,
                )
                if now - self._last_prune >= 60 or now < self._last_prune:
                    self._prune_locked(now)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(rows) // len(self.resolutions)

    def _prune_locked(self, now: float) -> None:
        for res in self.resolutions:
            self._db.execute("DELETE FROM points WHERE step=? AND t < ?",
                             (res.step, bucket_start(now - res.keep, res.step)))
        self._last_prune = now

    def prune(self, now: float | None = None) -> None:
        """Drop points older than each resolution keeps them."""
        with self._lock:
            self._prune_locked(self.clock() if now is None else now)

    def metrics(self) -> list[str]:
        """The names of the metrics that have points."""
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT metric FROM points ORDER BY metric").fetchall()
        return [str(r[0]) for r in rows]

    def query(
        self,
        metric: str,
        range_: str = "day",
        labels: Mapping[str, str] | None = None,
        now: float | None = None,
    ) -> list[Series]:
        """The series of ``metric`` over the view ``range_`` (hour, day, week, year).

        ``labels`` keeps only series whose labels include these values. Series are
        ordered by their labels.
        """
        if range_ not in RANGES:
            raise HistoryError(f"unknown range {range_!r} (ranges: {', '.join(RANGES)})")
        seconds, res = RANGES[range_]
        now = self.clock() if now is None else now
        since = bucket_start(now - seconds, res.step)
        with self._lock:
            rows = self._db.execute(
                "SELECT labels, t, sum, n FROM points WHERE step=? AND metric=? AND t >= ? "
                "ORDER BY labels, t",
                (res.step, metric, since),
            ).fetchall()
        out: dict[str, Series] = {}
        wanted = dict(labels or {})
        for key, t, total, n in rows:
            series = out.get(key)
            if series is None:
                lab = json.loads(key)
                if any(lab.get(k) != v for k, v in wanted.items()):
                    continue
                series = out[key] = Series(metric, lab)
            series.points.append((int(t), float(total) / int(n)))
        return [s for s in out.values() if s.points]


# --------------------------------------------------------------------------- sampling


def registry_samples(
    registry: CollectorRegistry,
    prefix: str = "gwms_",
    exclude: Sequence[str] = ("gwms_http_", "gwms_service_info"),
) -> list[tuple[str, dict[str, str], float]]:
    """The gauge and counter values of ``registry`` whose names start with ``prefix``.

    Counters are kept under their ``_total`` sample name; histograms, summaries, info
    metrics and ``_created`` samples are left out, and so are names in ``exclude``.
    """
    out: list[tuple[str, dict[str, str], float]] = []
    for family in registry.collect():
        if family.type not in ("gauge", "counter"):
            continue
        for s in family.samples:
            if not s.name.startswith(prefix) or s.name.endswith("_created"):
                continue
            if any(s.name.startswith(x) for x in exclude):
                continue
            out.append((s.name, dict(s.labels), float(s.value)))
    return out


def history_interval(default: float = DEFAULT_INTERVAL) -> float:
    """The sampling interval: ``$GWMS_HISTORY_INTERVAL`` seconds, else ``default``."""
    raw = os.environ.get(INTERVAL_ENV, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise HistoryError(f"{INTERVAL_ENV} must be a number of seconds, not {raw!r}") from None
    if not value > 0:
        raise HistoryError(f"{INTERVAL_ENV} must be positive, not {raw!r}")
    return value


class RegistrySampler:
    """Samples a registry into a store every ``interval`` seconds on a daemon thread."""

    def __init__(self, registry: CollectorRegistry, store: TimeSeriesStore, interval: float) -> None:
        self.registry = registry
        self.store = store
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample_once(self, now: float | None = None) -> int:
        """Take one sample now; the number of values stored."""
        return self.store.record(registry_samples(self.registry), now)

    def start(self) -> None:
        """Start the sampling thread (first sample after ``min(interval, 2)`` s)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gwms-history", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (waits for it briefly)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        delay = min(self.interval, 2.0)
        while not self._stop.wait(delay):
            try:
                self.sample_once()
            except Exception:
                log.exception("history sample failed")
            delay = self.interval


# --------------------------------------------------------------------------- HTTP


def install_history(app: Any, dependencies: Sequence[Any] = ()) -> None:
    """Add ``GET /api/v1/history`` to a create_app-made app (reads ``app.state.history``).

    Query: ``metric`` (none: the list of metrics), ``range`` (hour, day, week, year),
    ``labels`` (``name=value,...``). Answer: ``{"metric", "range", "step", "series":
    [{"labels", "points": [[t, v], ...]}]}``.
    """
    @app.get("/api/v1/history", tags=["service"], summary="Time series of this service's metrics",
             dependencies=list(dependencies))
    def history(
        request: Request,
        metric: str | None = None,
        range: str = Query(default="day", description="hour, day, week or year"),
        labels: str | None = Query(default=None, description="name=value,..."),
    ) -> dict[str, Any]:
        store: TimeSeriesStore = request.app.state.history
        if not metric:
            return {"metrics": store.metrics(), "ranges": list(RANGES)}
        try:
            series = store.query(metric, range, parse_label_filter(labels))
        except HistoryError as exc:
            raise ApiError(400, "bad_history_query", str(exc)) from None
        return {"metric": metric, "range": range, "step": RANGES[range][1].step,
                "series": [s.as_json() for s in series]}


def history_dir_configured() -> bool:
    """Whether ``$GWMS_HISTORY_DIR`` names a directory for the history stores."""
    return bool(os.environ.get(DIR_ENV, "").strip())


def store_for(service: str, name: str | None = None) -> TimeSeriesStore:
    """The store a service should use: a file under ``$GWMS_HISTORY_DIR`` or in memory."""
    directory = os.environ.get(DIR_ENV, "").strip()
    if not directory:
        return TimeSeriesStore()
    return TimeSeriesStore(Path(directory) / f"{name or service}.sqlite")
