"""The history store (gwms.net.timeseries): buckets, downsampling, views, pruning, sampling, HTTP."""

from __future__ import annotations

import asyncio
import itertools
import math

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gwms.net import create_app
from gwms.net.timeseries import (
    HOUR,
    MINUTE,
    RANGES,
    HistoryError,
    RegistrySampler,
    TimeSeriesStore,
    bucket_start,
    downsample,
    history_interval,
    parse_label_filter,
    registry_samples,
)

T0 = 1_700_000_000  # a fixed epoch (a multiple of 3600 is not needed: buckets are computed)

times = st.floats(min_value=1e9, max_value=2e9, allow_nan=False)
samples = st.lists(
    st.tuples(st.integers(min_value=0, max_value=3 * 3600), st.floats(min_value=-1e6, max_value=1e6)),
    min_size=1, max_size=60,
)


@given(times, st.sampled_from([60, 3600]))
def test_bucket_start_holds_the_time(t: float, step: int) -> None:
    b = bucket_start(t, step)
    assert b % step == 0
    assert b <= t < b + step


@given(samples)
def test_downsample_is_the_mean_per_bucket(items: list[tuple[int, float]]) -> None:
    pts = [(T0 + dt, v) for dt, v in items]
    out = downsample(pts, 60)
    assert [b for b, _ in out] == sorted({bucket_start(t, 60) for t, _ in pts})
    for b, mean in out:
        inside = [v for t, v in pts if bucket_start(t, 60) == b]
        assert math.isclose(mean, sum(inside) / len(inside), rel_tol=1e-9, abs_tol=1e-6)
        assert min(inside) - 1e-6 <= mean <= max(inside) + 1e-6


@settings(max_examples=40, deadline=None)
@given(samples)
def test_store_points_equal_downsample_at_both_resolutions(items: list[tuple[int, float]]) -> None:
    """What the store computes incrementally is the pure downsampling of the samples."""
    store = TimeSeriesStore()
    pts = sorted((T0 + dt, v) for dt, v in items)
    for t, v in pts:
        store.record([("gwms_x", {"a": "1"}, v)], now=t)
    now = pts[-1][0]
    for view, res in (("day", MINUTE), ("week", HOUR)):
        series = store.query("gwms_x", view, now=now)
        assert len(series) == 1 and series[0].labels == {"a": "1"}
        want = downsample(pts, res.step)
        got = series[0].points
        assert [t for t, _ in got] == [t for t, _ in want]
        for (_, g), (_, w) in zip(got, want, strict=True):
            assert math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-6)


def test_views_read_their_resolution_and_window() -> None:
    store = TimeSeriesStore()
    for i in range(0, 3 * 3600, 30):  # every 30 s for three hours
        store.record([("gwms_jobs", {}, float(i))], now=T0 + i)
    now = T0 + 3 * 3600 - 1
    hour = store.query("gwms_jobs", "hour", now=now)[0].points
    day = store.query("gwms_jobs", "day", now=now)[0].points
    week = store.query("gwms_jobs", "week", now=now)[0].points
    assert all(b - a == 60 for (a, _), (b, _) in itertools.pairwise(hour))
    assert 60 <= len(hour) <= 61  # the last hour at 1-minute points
    assert len(day) == 180  # three hours of 1-minute points
    assert len(week) in (3, 4)  # hourly points
    assert all(t % 3600 == 0 for t, _ in week)


def test_old_points_are_pruned() -> None:
    store = TimeSeriesStore()
    store.record([("gwms_a", {}, 1.0)], now=T0)
    store.record([("gwms_a", {}, 2.0)], now=T0 + 2 * 86400)  # two days later: minute point gone
    with store._lock:
        rows = store._db.execute("SELECT step, t FROM points ORDER BY step, t").fetchall()
    assert rows == [(60, bucket_start(T0 + 2 * 86400, 60)), (3600, bucket_start(T0, 3600)),
                    (3600, bucket_start(T0 + 2 * 86400, 3600))]
    store.prune(now=T0 + 400 * 86400)
    assert store.query("gwms_a", "year", now=T0 + 400 * 86400) == []


def test_label_filters_and_errors() -> None:
    store = TimeSeriesStore()
    store.record([("gwms_s", {"entry": "a", "state": "idle"}, 1), ("gwms_s", {"entry": "b", "state": "idle"}, 2),
                  ("gwms_s", {"entry": "a", "state": "running"}, 3), ("gwms_s", {}, float("nan"))], now=T0)
    got = store.query("gwms_s", "hour", {"entry": "a"}, now=T0)
    assert sorted((s.labels["state"], s.points[0][1]) for s in got) == [("idle", 1.0), ("running", 3.0)]
    assert store.metrics() == ["gwms_s"]
    assert parse_label_filter("entry=a, state=idle") == {"entry": "a", "state": "idle"}
    with pytest.raises(HistoryError, match="bad label filter"):
        parse_label_filter("entry")
    with pytest.raises(HistoryError, match="unknown range"):
        store.query("gwms_s", "month")
    assert set(RANGES) == {"hour", "day", "week", "year"}


def test_file_store_keeps_points_across_reopen(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "h.sqlite"
    s1 = TimeSeriesStore(path)
    s1.record([("gwms_a", {"x": "1"}, 5.0)], now=T0)
    s1.close()
    s2 = TimeSeriesStore(path)
    assert s2.query("gwms_a", "day", now=T0)[0].points == [(bucket_start(T0, 60), 5.0)]


def test_registry_samples_keep_gwms_gauges_and_counters_only() -> None:
    reg = CollectorRegistry()
    Gauge("gwms_jobs", "j", ["owner"], registry=reg).labels("alice").set(3)
    Counter("gwms_done", "d", registry=reg).inc(2)
    Histogram("gwms_latency", "l", registry=reg).observe(1)
    Gauge("other_thing", "o", registry=reg).set(1)
    Counter("gwms_http_requests", "h", registry=reg).inc()
    got = sorted((n, tuple(sorted(lab.items())), v) for n, lab, v in registry_samples(reg))
    assert got == [("gwms_done_total", (), 2.0), ("gwms_jobs", (("owner", "alice"),), 3.0)]
    store = TimeSeriesStore()
    assert RegistrySampler(reg, store, 60).sample_once(now=T0) == 2
    assert store.metrics() == ["gwms_done_total", "gwms_jobs"]


def test_history_interval_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GWMS_HISTORY_INTERVAL", raising=False)
    assert history_interval() == 60.0
    monkeypatch.setenv("GWMS_HISTORY_INTERVAL", "2.5")
    assert history_interval() == 2.5
    monkeypatch.setenv("GWMS_HISTORY_INTERVAL", "-1")
    with pytest.raises(HistoryError, match="positive"):
        history_interval()


def test_every_app_serves_its_history() -> None:
    """create_app gives /api/v1/history over the app's own gauges."""
    app = create_app(service="test", verifier=None)
    Gauge("gwms_test_things", "t", ["kind"], registry=app.state.metrics_registry).labels("a").set(7)
    RegistrySampler(app.state.metrics_registry, app.state.history, 60).sample_once()

    async def fetch() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return (await c.get("/api/v1/history"),
                    await c.get("/api/v1/history", params={"metric": "gwms_test_things", "range": "hour"}),
                    await c.get("/api/v1/history", params={"metric": "gwms_test_things", "range": "month"}))

    listing, one, bad = asyncio.run(fetch())
    assert listing.status_code == 200 and "gwms_test_things" in listing.json()["metrics"]
    body = one.json()
    assert body["step"] == 60 and body["series"][0]["labels"] == {"kind": "a"}
    assert body["series"][0]["points"][0][1] == 7.0
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_history_query"
