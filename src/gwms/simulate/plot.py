"""The report of a simulation as one self-contained HTML page.

Four charts over simulated time — jobs (idle, running, done), glideins by state, the
frontend's request and over-provisioning, paused entries — and the summary figures.
With ``plotly`` installed the charts are plotly's, its JavaScript inlined (offline, no
CDN); otherwise they are inline SVG drawn here. Either way the page loads nothing from
the network.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["CHARTS", "render_html", "svg_chart"]

#: (title, [(series name, label, colour)]) of each chart.
CHARTS: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...] = (
    ("Jobs", (("jobs_idle", "idle", "#d62728"), ("jobs_running", "running", "#2ca02c"),
              ("jobs_done", "done", "#7f7f7f"))),
    ("Glideins by state", (("glideins_queued", "queued at site", "#9467bd"),
                           ("glideins_starting", "starting", "#bcbd22"),
                           ("glideins_idle", "idle", "#ff7f0e"), ("glideins_busy", "busy", "#1f77b4"),
                           ("glideins_retiring", "retiring", "#8c564b"))),
    ("Requests and over-provisioning", (("requested_idle", "frontend ReqIdleGlideins", "#17becf"),
                                        ("factory_idle", "factory idle pilots", "#9467bd"),
                                        ("over_provisioned", "over-provisioned glideins", "#d62728"))),
    ("Paused entries", (("paused_entries", "entries paused", "#e377c2"),)),
)

_W, _H, _L, _R, _T, _B = 820, 240, 60, 200, 24, 34


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    mag = 10 ** len(str(int(v))) / 10
    for step in (1, 2, 2.5, 5, 10):
        if v <= step * mag:
            return step * mag
    return v


def svg_chart(title: str, t: Sequence[float], lines: Sequence[tuple[str, Sequence[float], str]]) -> str:
    """One line chart as an inline ``<svg>`` (x: hours of simulated time)."""
    xmax = max(t[-1] if t else 0.0, 1.0)
    ymax = _nice_max(max((max(v) if v else 0) for _, v, _ in lines) if lines else 1)
    pw, ph = _W - _L - _R, _H - _T - _B

    def x(v: float) -> float:
        return _L + pw * v / xmax

    def y(v: float) -> float:
        return _T + ph * (1 - v / ymax)

    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" role="img" '
           f'aria-label="{html.escape(title)}">'),
           f'<text x="{_L}" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>',
           f'<rect x="{_L}" y="{_T}" width="{pw}" height="{ph}" fill="none" stroke="#ccc"/>']
    for i in range(5):
        v = ymax * i / 4
        out.append(f'<line x1="{_L}" x2="{_L + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{_L - 4}" y="{y(v) + 4:.1f}" font-size="10" text-anchor="end">{v:g}</text>')
    hours = xmax / 3600
    step = max(1, round(hours / 8))
    h = 0
    while h <= hours + 1e-9:
        out.append(f'<text x="{x(h * 3600):.1f}" y="{_T + ph + 14}" font-size="10" text-anchor="middle">{h}h</text>')
        h += step
    for k, (label, values, colour) in enumerate(lines):
        if values:
            pts = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in zip(t, values, strict=False))
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{pts}"/>')
        ly = _T + 12 + 16 * k
        out.append(f'<line x1="{_L + pw + 10}" x2="{_L + pw + 26}" y1="{ly - 4}" y2="{ly - 4}" '
                   f'stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{_L + pw + 30}" y="{ly}" font-size="11">{html.escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _plotly_charts(report: Mapping[str, Any]) -> str | None:
    try:
        import plotly.graph_objects as go
        import plotly.io as pio
    except ImportError:
        return None
    series = report["series"]
    hours = [v / 3600 for v in series["t"]]
    parts = []
    first = True
    for title, lines in CHARTS:
        fig = go.Figure()
        for name, label, colour in lines:
            fig.add_trace(go.Scatter(x=hours, y=series[name], name=label, mode="lines", line={"color": colour}))
        fig.update_layout(title=title, xaxis_title="simulated hours", height=320,
                          margin={"l": 50, "r": 20, "t": 40, "b": 40})
        parts.append(pio.to_html(fig, include_plotlyjs=bool(first), full_html=False))
        first = False
    return "\n".join(parts)


def render_html(report: Mapping[str, Any], *, use_plotly: bool = True) -> str:
    """The whole page for a report (see the module docstring)."""
    charts = _plotly_charts(report) if use_plotly else None
    if charts is None:
        series = report["series"]
        charts = "\n".join(
            svg_chart(title, series["t"], [(label, series[name], colour) for name, label, colour in lines])
            for title, lines in CHARTS
        )
    rows = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(json.dumps(v))}</td></tr>"
        for k, v in report["summary"].items()
    )
    entry_rows = "\n".join(
        f"<tr><td>{html.escape(name)}</td><td>{e['submitted']}</td><td>{e['pilots_started']}</td>"
        f"<td>{e['pilots_failed_at_start']}</td><td>{e['black_hole_pilots']}</td><td>{e['pauses']}</td>"
        f"<td>{e['paused_hours']}</td><td>{html.escape(e['pause_reason'])}</td></tr>"
        for name, e in report["entries"].items()
    )
    title = f"gwms simulate: {report['scenario']} (seed {report['seed']})"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ddd;padding:2px 8px;text-align:left;font-size:13px}}</style></head>
<body><h1>{html.escape(title)}</h1><p>{html.escape(report.get('description', ''))}</p>
{charts}
<h2>Summary</h2><table>{rows}</table>
<h2>Entries</h2><table><tr><th>entry</th><th>submitted</th><th>started</th><th>failed at start</th>
<th>black-hole pilots</th><th>pauses</th><th>paused h</th><th>last pause reason</th></tr>
{entry_rows}</table>
</body></html>
"""
