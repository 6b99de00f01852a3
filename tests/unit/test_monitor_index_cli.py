"""`gwms logs index|search|show|prune` on a generated factory log tree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from monitor_trees import planted, varied_jobs, write_jobs

from gwms.cli.main import cli
from gwms.monitor.audit import AuditLog

JOBS = varied_jobs(5, seed=8, lines=16)


def run(*args: str, ok: bool = True) -> str:
    result = CliRunner().invoke(cli, list(args))
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
        return result.output
    assert result.exit_code != 0, result.output
    from gwms.errors import GwmsError

    if result.exception is not None and not isinstance(result.exception, SystemExit):
        assert isinstance(result.exception, GwmsError), repr(result.exception)
        return result.output + str(result.exception)
    return result.output


@pytest.fixture()
def indexed(tmp_path: Path) -> tuple[Path, Path]:
    src = write_jobs(tmp_path / "factory", JOBS)
    data = tmp_path / "data"
    out = run("logs", "index", "--source", str(src), "--data", str(data))
    assert "indexed 5 job(s)" in out and "0 error(s)" in out
    return src, data


def test_index_twice_reads_nothing_new(indexed: tuple[Path, Path]) -> None:
    src, data = indexed
    assert (data / "anon-keys" / "keyring.json").exists()  # made on first use
    out = run("logs", "index", "--source", str(src), "--data", str(data))
    assert "indexed 0 job(s)" in out and "5 unchanged" in out


def test_search_text_and_json(indexed: tuple[Path, Path]) -> None:
    _src, data = indexed
    job = JOBS[1]
    out = run(
        "logs",
        "search",
        "--data",
        str(data),
        "--job",
        job.job_id,
        "--section",
        "StartdLog",
        "condor",
    )
    assert f"job.{job.job_id}" in out and "[StartdLog]" in out and "sections match" in out
    body = json.loads(
        run("logs", "search", "--data", str(data), "--json", "--limit", "2", "condor").splitlines()[
            0
        ]
    )
    assert body["unit"] == "sections" and len(body["results"]) == 2 and body["next_cursor"]
    pages = run(
        "logs", "search", "--data", str(data), "--json", "--limit", "2", "--all", "condor"
    ).splitlines()
    keys = [r["key"] for p in pages for r in json.loads(p)["results"]]
    assert len(keys) == len(set(keys)) == body["total"]
    hist = run("logs", "search", "--data", str(data), "--histogram", "exit:0")
    assert "#" in hist
    # nothing planted can be found: the index holds anonymized text
    user = min(planted(JOBS).users)
    assert "0 sections match" in run("logs", "search", "--data", str(data), f'"{user}"')
    assert "bad regular expression" in run(
        "logs", "search", "--data", str(data), "--regex", "(", ok=False
    )


def test_show_summary_section_and_audited_original(indexed: tuple[Path, Path]) -> None:
    _src, data = indexed
    job = JOBS[2]
    out = run("logs", "show", f"job.{job.job_id}", "--data", str(data))
    assert job.entry in out and "timeline:" in out and "StartdHistoryLog" in out
    view = json.loads(run("logs", "show", job.job_id, "--data", str(data), "--json"))
    assert view["job"]["glidein_uuid"] == job.expected["glidein_uuid"]
    anon = run("logs", "show", job.job_id, "--data", str(data), "--section", "StartdHistoryLog")
    original = b"".join(job.sections["StartdHistoryLog"]).decode()
    assert anon != original
    assert not list(AuditLog(data / "audit.log").records())
    orig = run(
        "logs",
        "show",
        job.job_id,
        "--data",
        str(data),
        "--section",
        "StartdHistoryLog",
        "--original",
    )
    assert orig == original
    (record,) = AuditLog(data / "audit.log").records()
    assert record["who"].startswith("local:") and record["section"] == "StartdHistoryLog"
    numbered = run(
        "logs",
        "show",
        job.job_id,
        "--data",
        str(data),
        "--section",
        "out",
        "-n",
        "--from",
        "2",
        "--to",
        "3",
    )
    assert [line.split()[0] for line in numbered.splitlines()] == ["2", "3"]
    assert "has no section" in run(
        "logs", "show", job.job_id, "--data", str(data), "--section", "Nope", ok=False
    )
    assert "no job" in run("logs", "show", "77777.0", "--data", str(data), ok=False)


def test_prune(indexed: tuple[Path, Path]) -> None:
    _src, data = indexed
    assert "would drop 5 job(s)" in run(
        "logs", "prune", "--data", str(data), "--max-size", "1", "--dry-run"
    )
    assert "dropped 0 job(s) and 5 original(s)" in run(
        "logs", "prune", "--data", str(data), "--original-max-age", "0"
    )
    out = run("logs", "prune", "--data", str(data), "--max-size", "1")
    assert "dropped 5 job(s)" in out
    assert "give --max-age" in run("logs", "prune", "--data", str(data), ok=False)


def test_usage_errors(tmp_path: Path) -> None:
    src = write_jobs(tmp_path / "factory", JOBS[:1])
    assert "for --anonymize" in run(
        "logs",
        "index",
        "--source",
        str(src),
        "--data",
        str(tmp_path / "d"),
        "--no-anonymize",
        "--key-dir",
        str(tmp_path / "k"),
        ok=False,
    )
    assert "no log index" in run("logs", "search", "--data", str(tmp_path / "none"), "x", ok=False)
    assert "not a size" in run(
        "logs",
        "index",
        "--source",
        str(src),
        "--data",
        str(tmp_path / "d"),
        "--max-size",
        "big",
        ok=False,
    )


def test_index_follow_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    src = write_jobs(tmp_path / "factory", JOBS[:2])
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gwms",
            "logs",
            "index",
            "--source",
            str(src),
            "--data",
            str(data),
            "--follow",
            "--interval",
            "1",
            "--no-anonymize",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        assert "indexed 2 job(s)" in proc.stdout.readline()
        write_jobs(src, JOBS[2:3])  # picked up by a later pass
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline and "indexed 1 job(s)" not in line:
            line = proc.stdout.readline()
        assert "indexed 1 job(s)" in line
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def test_index_in_postgresql_by_option_and_by_settings(tmp_path: Path, pg_cluster) -> None:  # type: ignore[no-untyped-def]
    """``--index postgresql://...`` or ``index:`` in DATA/monitor.yaml: the same commands."""
    src = write_jobs(tmp_path / "factory", JOBS[:3])
    url, schema = pg_cluster.new_url()
    try:
        data = tmp_path / "data"
        out = run(
            "logs",
            "index",
            "--source",
            str(src),
            "--data",
            str(data),
            "--index",
            url,
            "--workers",
            "2",
        )  # (two worker processes parse)
        assert "indexed 3 job(s)" in out
        assert not (data / "index.sqlite").exists()
        (data / "monitor.yaml").write_text(f"index: '{url}'\n")
        out = run("logs", "search", "--data", str(data), "--json", "--all", "condor")
        results = [r for page in out.splitlines() for r in json.loads(page)["results"]]
        assert len({r["job"]["id"] for r in results}) == 3
        out = run("logs", "index", "--source", str(src), "--data", str(data))
        assert "indexed 0 job(s)" in out and "3 unchanged" in out
        (data / "monitor.yaml").write_text("index: [1, 2]\n")
        assert "'index' must be a URL" in run("logs", "search", "--data", str(data), "x", ok=False)
    finally:
        pg_cluster.drop(schema)
