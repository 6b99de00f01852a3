"""Pure parts of the monitor's pages: highlighting, snippets, durations, histogram, redirects, escaping."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from gwms.monitor.pages import (
    LINES_PER_PAGE,
    format_duration,
    highlight_segments,
    histogram_bars,
    line_window_start,
    make_environment,
    safe_next,
    snippet_lines,
)

spans = st.lists(st.tuples(st.integers(-5, 60), st.integers(-5, 60)), max_size=6)


@given(st.text(max_size=50), spans)
def test_segments_rebuild_the_text_and_mark_exactly_the_spans(
    text: str, raw: list[tuple[int, int]]
) -> None:
    pieces = highlight_segments(text, raw)
    assert "".join(p for p, _ in pieces) == text
    marked = set()
    pos = 0
    for piece, is_match in pieces:
        if is_match:
            assert piece  # no empty marks
            marked.update(range(pos, pos + len(piece)))
        pos += len(piece)
    want = {i for a, b in raw for i in range(max(0, a), min(len(text), b))}
    assert marked == want
    # runs alternate: two marks are never adjacent (merged) and plain runs are not split
    kinds = [m for _, m in pieces]
    assert all(a != b for a, b in itertools.pairwise(kinds))


def test_segments_example() -> None:
    assert highlight_segments("condor starting", [(0, 6)]) == [
        ("condor", True),
        (" starting", False),
    ]
    assert highlight_segments("", []) == [("", False)]


def test_snippet_merges_shared_context_and_marks_gaps() -> None:
    hits = [
        {
            "n": 10,
            "text": "a",
            "spans": [[0, 1]],
            "before": [{"n": 9, "text": "x"}],
            "after": [{"n": 11, "text": "b"}],
        },
        {
            "n": 11,
            "text": "b",
            "spans": [[0, 1]],
            "before": [{"n": 10, "text": "a"}],
            "after": [{"n": 12, "text": "c"}],
        },
        {"n": 20, "text": "d", "spans": [], "before": [], "after": []},
    ]
    lines = snippet_lines(hits)
    numbers = [x.get("n", "gap") for x in lines]
    assert numbers == [9, 10, 11, 12, "gap", 20]
    assert [x["hit"] for x in lines if "n" in x] == [False, True, True, False, True]


@given(st.lists(st.integers(1, 80), min_size=1, max_size=8, unique=True), st.integers(0, 3))
def test_snippet_lines_are_sorted_unique_and_keep_every_hit(numbers: list[int], ctx: int) -> None:
    hits = [
        {
            "n": n,
            "text": f"hit {n}",
            "spans": [[0, 3]],
            "before": [{"n": k, "text": f"l{k}"} for k in range(max(1, n - ctx), n)],
            "after": [{"n": k, "text": f"l{k}"} for k in range(n + 1, n + 1 + ctx)],
        }
        for n in numbers
    ]
    lines = snippet_lines(hits)
    shown = [x["n"] for x in lines if "n" in x]
    assert shown == sorted(set(shown))
    assert {x["n"] for x in lines if x.get("hit")} == set(numbers)
    for a, b in itertools.pairwise(lines):
        if "n" in a and "n" in b:
            assert b["n"] == a["n"] + 1  # non-adjacent lines always have a gap between
    assert "gap" not in (lines[0], lines[-1])


def test_durations() -> None:
    assert format_duration(None) == "—"
    assert format_duration(0) == "0s"
    assert format_duration(59) == "59s"
    assert format_duration(61) == "1m 01s"
    assert format_duration(3725) == "1h 02m 05s"
    assert format_duration(90061) == "1d 01h 01m"
    assert format_duration(-61) == "-1m 01s"


@given(st.integers(1, 10**7), st.integers(1, 10_000))
def test_line_window_holds_the_line(line: int, window: int) -> None:
    start = line_window_start(line, window)
    assert start <= line < start + window and (start - 1) % window == 0


def test_line_window_default() -> None:
    assert line_window_start(1) == 1 and line_window_start(LINES_PER_PAGE + 1) == LINES_PER_PAGE + 1


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=60))
def test_histogram_bars_fit_and_scale(counts: list[int]) -> None:
    buckets = [{"epoch": 1000 + 60 * i, "count": c} for i, c in enumerate(counts)]
    bars = histogram_bars(buckets, 60, width=600, height=90)
    assert len(bars) == len(counts)
    for bar, c in zip(bars, counts, strict=True):
        assert 0 <= bar.x and bar.x + bar.width <= 600.01
        assert abs(bar.y + bar.height - 90) < 0.02
        assert (bar.height == 0) == (c == 0)
        assert bar.end - bar.start == 60
    top = max(counts)
    if top:
        assert max(b.height for b in bars) == 90
        heights = [b.height for b in bars]
        for (h1, c1), (h2, c2) in zip(
            zip(heights, counts, strict=True),
            zip(heights[1:], counts[1:], strict=True),
            strict=False,
        ):
            if c1 > c2:
                assert h1 >= h2


def test_safe_next_stays_on_the_monitor() -> None:
    assert safe_next("/jobs/1", "") == "/jobs/1"
    assert safe_next("/logs/jobs/1?x=1", "/logs") == "/logs/jobs/1?x=1"
    for bad in (
        "https://evil.example/",
        "//evil.example/x",
        "/other/app",
        None,
        "",
        "/\\evil",
        "/x\n",
    ):
        assert safe_next(bad, "/logs") == "/logs/", bad
    assert safe_next("//evil.example", "") == "/"


def test_templates_escape_everything() -> None:
    env = make_environment()
    assert env.autoescape is True
    out = env.from_string(
        "{{ x }}{% for p, m in x|segments([[0, 8]]) %}<b>{{ p }}</b>{% endfor %}"
    ).render(x="<script>alert(1)</script>")
    assert "<script>" not in out and "&lt;script&gt;" in out
