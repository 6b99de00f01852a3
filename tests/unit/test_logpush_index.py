"""Pushed logs in the index: indexed like the factory's, marked ``source = push``, and
superseded by the factory's copy when it arrives."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from monitor_trees import WORLD

from gwms.monitor.index import open_index
from gwms.monitor.indexer import Indexer
from gwms.monitor.samples import make_job, write_job
from gwms.monitor.views import job_json

JOB = make_job(WORLD, 7, cluster=4100, proc=2, lines=20, exit_code=0)
PATH = f"user_{JOB.frontend_user}/glidein_{JOB.instance}/entry_{JOB.entry}/job.4100.2"


def cut(job_text: str, marker: str) -> str:
    """The text before a marker: what a glidein killed at that point had written."""
    return job_text.split(marker)[0]


def test_pushed_logs_are_indexed_then_superseded_by_the_factory(tmp_path: Path) -> None:
    factory, push = tmp_path / "factory", tmp_path / "push"
    (factory / "client").mkdir(parents=True)
    # the glidein pushed its .out up to the condor end, and an .err, then was killed
    out_path, err_path = write_job(push, JOB)
    out_path.write_text(cut(JOB.out, "=== Glidein ending"))
    index = open_index(tmp_path / "index.sqlite")
    try:
        indexer = Indexer(index, factory, push_source=push)
        report = indexer.run_pass()
        assert (report.indexed, report.errors) == (1, [])
        row = index.job_by_path(PATH)
        assert row is not None and row.info.source == "push" and not row.info.finished
        assert job_json(row, index.sections(row.id))["job"]["source"] == "push"
        assert [s.name for s in index.sections(row.id)][:2] == ["out", "err"]

        # nothing changed: nothing to do; the push grows: indexed again, still pushed
        assert indexer.run_pass().indexed == 0
        with open(err_path, "a") as f:
            f.write("one more warning\n")
        assert indexer.run_pass().indexed == 1
        assert index.job_by_path(PATH).info.source == "push"

        # the factory's final copy arrives: it wins, now and later
        write_job(factory, JOB)
        assert indexer.run_pass().indexed == 1
        row = index.job_by_path(PATH)
        assert row.info.source == "factory" and row.info.finished and row.info.exit_code == 0
        with open(err_path, "a") as f:
            f.write("a late push\n")
        report = indexer.run_pass()
        assert report.indexed == 0 and report.seen == 1
    finally:
        index.close()


def test_only_pushed_logs_without_a_factory_tree(tmp_path: Path) -> None:
    write_job(tmp_path / "push", JOB)
    index = open_index(tmp_path / "index.sqlite")
    try:
        report = Indexer(index, None, push_source=tmp_path / "push").run_pass()
        assert report.indexed == 1 and index.job_by_path(PATH).info.source == "push"
        assert Indexer(index, None, push_source=tmp_path / "missing").run_pass().seen == 0
    finally:
        index.close()


def test_an_index_made_before_pushes_gets_the_source_column(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    open_index(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE jobs DROP COLUMN source")
        assert "source" not in {r[1] for r in conn.execute("PRAGMA table_info(jobs)")}
    write_job(tmp_path / "factory", JOB)
    index = open_index(path)
    try:
        assert Indexer(index, tmp_path / "factory").run_pass().indexed == 1
        assert index.job_by_path(PATH).info.source == "factory"
    finally:
        index.close()
    assert os.path.getsize(path) > 0


def test_the_index_command_takes_the_pushed_tree(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gwms.cli.logs import logs

    data = tmp_path / "data"
    write_job(data / "push", JOB)
    runner = CliRunner()
    refused = runner.invoke(logs, ["index", "--data", str(data), "--no-pushed"])
    assert refused.exit_code != 0 and "give --source" in str(refused.exception)
    done = runner.invoke(logs, ["index", "--data", str(data), "--no-anonymize"])
    assert done.exit_code == 0, done.output
    assert "indexed 1 job(s)" in done.output
    index = open_index(data / "index.sqlite")
    try:
        assert index.job_by_path(PATH).info.source == "push"
    finally:
        index.close()


def test_pushed_files_go_once_superseded_or_too_old(tmp_path: Path) -> None:
    import time

    from gwms.monitor.push import prune_pushed

    factory, push = tmp_path / "factory", tmp_path / "push"
    (factory / "client").mkdir(parents=True)
    other = make_job(WORLD, 8, cluster=4200, proc=0, lines=10, exit_code=1)
    running = make_job(WORLD, 9, cluster=4300, proc=0, lines=10)
    out_path, err_path = write_job(push, JOB)
    write_job(push, other)
    live_out, _ = write_job(push, running)
    write_job(factory, running)  # a live factory copy (local backend): not finished yet
    (factory / "client" / live_out.relative_to(push / "client")).write_text(cut(running.out, "=== Glidein ending"))
    index = open_index(tmp_path / "index.sqlite")
    try:
        indexer = Indexer(index, factory, push_source=push)
        indexer.run_pass()
        now = time.time()
        assert prune_pushed(push, index, now=now) == 0  # nothing superseded by a finished copy yet
        write_job(factory, JOB)  # the factory's final copy of JOB arrives
        indexer.run_pass()
        assert prune_pushed(push, index, now=now) == 1
        assert not out_path.exists() and not err_path.exists() and live_out.exists()
        assert index.job_by_path(PATH).info.source == "factory"  # the index keeps the job
        # a month later, with a retention of a week, the never-superseded pushes go too
        assert prune_pushed(push, index, now=now + 30 * 86400, max_age_seconds=7 * 86400) == 2
        assert not list((push / "client").rglob("job.*"))
        assert prune_pushed(tmp_path / "nowhere", index, now=now) == 0
    finally:
        index.close()
