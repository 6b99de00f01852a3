"""The demo's progress model and its renderings (the live run is in tests/e2e)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from gwms.embedded.demo import (
    DemoError,
    Progress,
    default_examples_dir,
    prepare_run_dir,
    render_line,
    render_table,
    where_to_look,
)


def progress(**jobs: dict[str, int]) -> Progress:
    p = Progress(jobs={k: Counter(v) for k, v in jobs.items()},
                 glideins={"siteA": Counter(running=2, queued=1), "siteC": Counter(running=1)},
                 slots={"SiteA": Counter(slots=2, busy=1)}, elapsed=12.3)
    return p


def test_finished_means_nothing_idle_or_running() -> None:
    assert not Progress().finished()  # nothing submitted yet
    assert not progress(small={"idle": 1, "done": 3}).finished()
    assert not progress(small={"running": 1}).finished()
    assert progress(small={"done": 4}, big={"done": 1}).finished()
    assert progress(small={"done": 4, "held": 1}).finished()  # held jobs wait for a person
    assert progress(small={"done": 4}, big={"idle": 2, "done": 1}).totals() == Counter(done=5, idle=2)


def test_renderings_show_jobs_and_glideins_per_entry() -> None:
    p = progress(small={"idle": 1, "running": 2, "done": 3}, big={"held": 1})
    line = render_line(p)
    assert line == "[  12s] jobs idle=1 running=2 held=1 done=3 | glideins siteA=2r/1q siteC=1r/0q"
    console = Console(width=100, record=True)
    console.print(render_table(p, {"siteA": "SiteA", "siteC": "SiteC"}, "negotiator restarted"))
    text = console.export_text()
    assert "small" in text and "big" in text and "all" in text
    assert "siteA  SiteA" in text and "1/2" in text
    assert "negotiator restarted" in text


def test_run_dirs_are_fresh_copies_of_the_examples(tmp_path: Path) -> None:
    examples = default_examples_dir()
    first = prepare_run_dir(tmp_path, examples)
    second = prepare_run_dir(tmp_path, examples)
    assert (first.name, second.name) == ("run-1", "run-2")
    assert sorted(p.name for p in first.iterdir()) == sorted(p.name for p in examples.iterdir() if p.is_file())
    assert (first / "work.sh").stat().st_mode & 0o111
    (tmp_path / "empty").mkdir()
    with pytest.raises(DemoError, match="no submit files"):
        prepare_run_dir(tmp_path, tmp_path / "empty")


def test_where_to_look_names_the_commands_and_the_web_ui(tmp_path: Path) -> None:
    lines = "\n".join(where_to_look(tmp_path, {"web": "http://127.0.0.1:9"}, tmp_path / "demo" / "run-1", True))
    for text in ("http://127.0.0.1:9/pool", "http://127.0.0.1:9/factory", "http://127.0.0.1:9/frontend",
                 "http://127.0.0.1:9/logs/", "admin.token", "gwms q --pool", "gwms status --pool", "gwms frontend status --data",
                 "gwms factory q --data", "gwms logs search --data", "run-1"):
        assert text in lines
    lines = "\n".join(where_to_look(tmp_path, {}, tmp_path, False))
    assert "web UI" in lines and "gwms web run --data" in lines and "gwms logs index --source" in lines
