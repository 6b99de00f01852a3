"""Charts for the dashboards: plotly figures built on the server, drawn in the browser.

The figures are plain plotly JSON (``plotly.io.to_json``); the pages embed them in
``<script type="application/json" class="gwms-chart">`` elements and the web app's own
``/static/plotly.min.js`` (the copy inside the ``plotly`` package; no CDN) draws them.

The series arithmetic is pure: :func:`sum_series` adds the series of a history answer
(``GET /api/v1/history``) by some of their labels, aligning points on their times.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "Chart",
    "bar_chart",
    "line_chart",
    "plotly_js_path",
    "sum_series",
]

Points = list[tuple[int, float]]


def sum_series(series: Sequence[Mapping[str, Any]], by: Sequence[str]) -> dict[str, Points]:
    """Add series that agree on the labels ``by``; keys are those label values joined
    by ``/`` (``"total"`` when ``by`` is empty). Points at the same time are added;
    the result's points are ordered by time; series without points add no key (a pure
    function)."""
    acc: dict[str, dict[int, float]] = {}
    for s in series:
        if not s.get("points"):
            continue
        labels = s.get("labels") or {}
        key = "/".join(str(labels.get(k, "")) for k in by) if by else "total"
        points = acc.setdefault(key, {})
        for t, v in s.get("points") or []:
            points[int(t)] = points.get(int(t), 0.0) + float(v)
    return {k: sorted(p.items()) for k, p in sorted(acc.items())}


def _iso(t: int) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


class Chart(dict[str, Any]):
    """A chart for a page: ``{"id", "title", "figure"}`` (the figure as plotly JSON text)."""


#: Fixed colours for the states the pages show, so a state looks the same in every chart.
STATE_COLOURS = {
    "Running": "#2ca02c", "running": "#2ca02c", "Claimed": "#1f77b4",
    "Idle": "#ff7f0e", "idle": "#ff7f0e", "Unclaimed": "#9aa5b1",
    "Held": "#d62728", "held": "#d62728", "Completed": "#8c564b", "Removed": "#7f7f7f",
}


def _layout(title: str, y_title: str, barmode: str | None = None) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "title": {"text": title, "font": {"size": 14}},
        "margin": {"l": 50, "r": 20, "t": 40, "b": 40},
        "height": 280,
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero"},
        "legend": {"orientation": "h"},
        "template": "plotly_white",
    }
    if barmode:
        layout["barmode"] = barmode
    return layout


def _to_json(fig: Any) -> str:
    import plotly.io as pio

    # "</" must not end the <script> element the JSON is embedded in
    return str(pio.to_json(fig, validate=True)).replace("</", "<\\/")


def line_chart(chart_id: str, title: str, traces: Mapping[str, Points], y_title: str = "",
               window: tuple[float, float] | None = None) -> Chart:
    """A time-series line chart, one trace per ``traces`` item; ``window`` (epoch
    seconds) fixes the time axis to the view shown."""
    import plotly.graph_objects as go

    fig = go.Figure(layout=_layout(title, y_title))
    for name, points in traces.items():
        colour = STATE_COLOURS.get(name)
        fig.add_trace(go.Scatter(x=[_iso(t) for t, _ in points], y=[v for _, v in points],
                                 mode="lines+markers", name=name,
                                 line={"color": colour} if colour else None))
    if window is not None:
        fig.update_xaxes(range=[_iso(int(window[0])), _iso(int(window[1]))], type="date")
    if not traces:
        fig.add_annotation(text="no history yet", showarrow=False, xref="paper", yref="paper",
                           x=0.5, y=0.5)
    return Chart(id=chart_id, title=title, figure=_to_json(fig))


def bar_chart(chart_id: str, title: str, categories: Sequence[str],
              stacks: Mapping[str, Sequence[float]], y_title: str = "") -> Chart:
    """A stacked bar chart: one bar per category, one colour per ``stacks`` item."""
    import plotly.graph_objects as go

    fig = go.Figure(layout=_layout(title, y_title, barmode="stack"))
    for name, values in stacks.items():
        colour = STATE_COLOURS.get(name)
        fig.add_trace(go.Bar(x=list(categories), y=list(values), name=name,
                             marker={"color": colour} if colour else None))
    if not categories:
        fig.add_annotation(text="nothing now", showarrow=False, xref="paper", yref="paper",
                           x=0.5, y=0.5)
        fig.update_xaxes(visible=False)
    return Chart(id=chart_id, title=title, figure=_to_json(fig))


def plotly_js_path() -> Path:
    """The ``plotly.min.js`` shipped inside the plotly package."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.exists():
        from gwms.errors import GwmsError

        raise GwmsError(f"plotly.min.js is not where the plotly package keeps it ({path})")
    return path
