"""The indexer on generated factory log trees: everything indexes, incrementally, safely."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from monitor_trees import (
    expected_names,
    leaks,
    planted,
    untar,
    varied_jobs,
    write_jobs,
)

import gwms.monitor.indexer as indexer_module
from gwms.monitor.anonymize import Anonymizer, KeyRing
from gwms.monitor.archive import Archive
from gwms.monitor.index import job_epoch, open_index
from gwms.monitor.indexer import Indexer, find_client_dir, scan_tree, site_of
from gwms.monitor.search import parse_query
from gwms.monitor.searcher import Searcher
from gwms.monitor.sections import split_err

JOBS = varied_jobs(9)


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    return write_jobs(tmp_path / "factory-logs", JOBS)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A tree indexed without anonymization: (index, archive, report, data dir)."""
    root = tmp_path_factory.mktemp("plain")
    src = write_jobs(root / "src", JOBS)
    index = open_index(root / "data" / "index.sqlite")
    archive = Archive(root / "data" / "archive")
    report = Indexer(index, src, archive=archive).run_pass()
    yield index, archive, report, src
    index.close()


def by_path(index, job):  # type: ignore[no-untyped-def]
    return index.job_by_path(
        f"{job.relative_dir.removeprefix('client/')}/job.{job.cluster}.{job.proc}"
    )


def test_every_job_section_and_column_is_indexed(plain) -> None:  # type: ignore[no-untyped-def]
    index, _archive, report, _src = plain
    assert report.errors == [] and report.indexed == len(JOBS) == report.seen
    for job in JOBS:
        row = by_path(index, job)
        assert row is not None, job.job_id
        info = row.info
        exp = job.expected
        assert info.entry == job.entry and info.frontend_user == job.frontend_user
        assert info.instance == job.instance and (info.cluster, info.proc) == (
            job.cluster,
            job.proc,
        )
        assert info.glidein_uuid == exp["glidein_uuid"]
        assert info.client_name == exp["client_name"] and info.client_group == exp["client_group"]
        assert info.host == exp["host"] and info.factory_schedd == exp["factory_schedd"]
        for name in (
            "start_epoch",
            "end_epoch",
            "validation_seconds",
            "last_script_epoch",
            "condor_start_epoch",
            "condor_end_epoch",
            "condor_seconds",
            "exit_code",
            "total_seconds",
            "jobs_run",
            "activations",
        ):
            assert getattr(info, name) == exp[name], name
        assert info.finished and not info.anonymized
        assert job_epoch(row.id) == exp["start_epoch"] == info.sort_epoch
        sections = index.sections(row.id)
        assert [s.name for s in sections] == expected_names(job)
        texts = index.section_texts([s.id for s in sections])
        for s in sections:
            if s.name in job.sections:
                decoded = b"".join(job.sections[s.name]).decode()
                if s.name in job.truncated:
                    assert s.truncated and s.problem and "truncated" in s.problem
                    assert decoded.startswith(texts[s.id])  # what could be decoded
                    assert any(s.name in p for p in row.problems)
                else:
                    assert texts[s.id] == decoded and s.problem is None, s.name
                    assert s.columns == job.columns[s.name]
                    assert s.members == len(job.sections[s.name])
                assert s.lines == texts[s.id].count("\n") + (0 if texts[s.id].endswith("\n") else 1)
        assert texts[sections[0].id] == job.out


def test_the_original_archive_holds_the_files_byte_for_byte(plain) -> None:  # type: ignore[no-untyped-def]
    index, archive, _report, _src = plain
    assert stat.S_IMODE(archive.path.stat().st_mode) == 0o600  # it holds originals
    for job in JOBS[:3]:
        row = by_path(index, job)
        item = archive.get(row.info.path, "original")
        assert item is not None and item.suffix == ".tar.zst" and item.size == row.original_bytes
        files = untar(item.blob, item.codec)
        assert files == {job.out_name: job.out.encode(), job.err_name: job.err.encode()}
        assert archive.read(row.info.path, "original") == files
        # nothing anonymized was made
        assert archive.get(row.info.path, "anonymized") is None


def test_a_second_pass_reads_nothing_and_grown_files_are_indexed_again(
    tree: Path, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    index = open_index(tmp_path / "index.sqlite")
    ix = Indexer(index, tree, archive=Archive(tmp_path / "archive"))
    assert ix.run_pass().indexed == len(JOBS)
    grown = JOBS[2]
    row = by_path(index, grown)

    reads: list[str] = []
    real_read = indexer_module._read

    def spy(path: Path):  # type: ignore[no-untyped-def]
        reads.append(path.name)
        return real_read(path)

    monkeypatch.setattr(indexer_module, "_read", spy)
    second = ix.run_pass()
    assert (second.indexed, second.changed, second.unchanged, reads) == (0, 0, len(JOBS), [])

    # the .err of one job grows; a new job appears; the rest is untouched
    err_path = tree / grown.relative_dir / grown.err_name
    with open(err_path, "a") as fh:
        fh.write("WARNING: late line with Zanzibarian marker\n")
    new = varied_jobs(1, seed=77)[0]
    write_jobs(tree, [new])
    third = ix.run_pass()
    assert third.indexed == 2 and third.changed == 2 and third.errors == []
    assert sorted(reads) == sorted([grown.out_name, grown.err_name, new.out_name, new.err_name])
    assert by_path(index, grown).id == row.id  # same start: same id, links stay valid
    hits = Searcher(index).search(parse_query("zanzibarian", now=time.time()))
    assert [(r.job.id, r.section.name) for r in hits.rows] == [(row.id, "err")]
    assert hits.rows[0].hits[0].text == "WARNING: late line with Zanzibarian marker"

    # shrinking the file again leaves no stale text in the full-text index
    err_path.write_text(grown.err)
    assert ix.run_pass().indexed == 1
    assert Searcher(index).search(parse_query("zanzibarian", now=time.time())).total == 0
    index.close()


def test_errors_in_one_job_are_reported_and_skipped(tree: Path, tmp_path: Path) -> None:
    entry_dir = tree / JOBS[0].relative_dir
    (entry_dir / "job.9000.0.err").mkdir()  # unreadable as a file
    (entry_dir / "job.9000.0.out").write_text("Starting glidein_startup.sh at x (1700000000)\n")
    os.symlink(tree / "nowhere", entry_dir / "job.9001.0.out")  # vanished
    (entry_dir / "notes.txt").write_text("not a job")
    index = open_index(tmp_path / "index.sqlite")
    report = Indexer(index, tree).run_pass()
    paths = sorted(p for p, _m in report.errors)
    assert (
        len(paths) == 2
        and any("job.9000.0" in p for p in paths)
        and any("job.9001.0" in p for p in paths)
    )
    assert report.indexed == len(JOBS)
    assert "error(s)" in report.line()
    index.close()


def test_a_job_with_only_an_err_file_is_indexed_by_its_mtime(tmp_path: Path) -> None:
    job = JOBS[1]
    d = tmp_path / "logs" / "client" / job.relative_dir.removeprefix("client/")
    d.mkdir(parents=True)
    (d / job.err_name).write_text(job.err)
    os.utime(d / job.err_name, (1_700_000_123, 1_700_000_123))
    index = open_index(tmp_path / "index.sqlite")
    assert Indexer(index, tmp_path / "logs").run_pass().indexed == 1
    (row,) = index.jobs_by_ref(parse_query("job:" + job.job_id, now=0).jobs[0])
    assert row.info.sort_epoch == 1_700_000_123 and row.info.start_epoch is None
    assert "no .out file" in row.problems
    assert [s.name for s in index.sections(row.id)][:1] == ["err"]
    index.close()


def test_anonymized_index_and_archive_hold_no_planted_value(tree: Path, tmp_path: Path) -> None:
    index = open_index(tmp_path / "index.sqlite")
    archive = Archive(tmp_path / "archive")
    anon = Anonymizer(KeyRing.generate("k1"))
    report = Indexer(index, tree, archive=archive, anonymizer=anon).run_pass()
    assert report.errors == [] and report.indexed == len(JOBS)
    p = planted(JOBS)
    texts: list[str] = []
    for job in JOBS:
        row = by_path(index, job)
        assert (
            row.info.anonymized and row.info.anon_mode == "reversible" and row.info.key_id == "k1"
        )
        # what the index knows: columns, summary, every section's text
        texts.append(json.dumps(row.summary))
        texts.append(json.dumps([row.info.host, row.info.factory_schedd, row.problems]))
        sections = index.sections(row.id)
        assert [s.name for s in sections] == expected_names(job)
        texts.extend(index.section_texts([s.id for s in sections]).values())
        # the truncated sections stay reported as such, though re-encoded whole
        assert {s.name for s in sections if s.truncated} == job.truncated
        # the anonymized archive: both files, and every section decoded again
        anon = archive.get(row.info.path, "anonymized")
        assert anon is not None and anon.size == row.anonymized_bytes
        files = untar(anon.blob, anon.codec)
        assert set(files) == {job.out_name, job.err_name}
        texts.append(files[job.out_name].decode())
        err = split_err(files[job.err_name])
        texts.append(err.plain_text)
        texts.extend(s.text() for s in err.sections)
        # kept: entry, uuid, factory job id, times, exit code
        assert row.info.glidein_uuid == job.expected["glidein_uuid"]
        assert row.info.exit_code == job.expected["exit_code"] and row.info.entry == job.entry
        # the original is still archived as it was
        assert archive.read(row.info.path, "original")[job.err_name] == job.err.encode()
        assert (
            row.info.site
            and row.info.site in job.expected["host"]
            or "." not in str(job.expected["host"])
        )
    assert leaks("\n".join(texts), p) == []
    # and searching the index for a planted host or user finds nothing
    searcher = Searcher(index)
    for value in sorted(p.hosts)[:5] + sorted(p.users)[:5]:
        assert searcher.search(parse_query(f'"{value}"', now=time.time())).total == 0, value
    index.close()


def test_client_dir_and_scan() -> None:
    with pytest.raises(Exception, match="no log directory"):
        find_client_dir("/nonexistent/factory")


def test_scan_reports_stats_without_reading(tree: Path) -> None:
    found = list(scan_tree(tree))
    assert len(found) == len(JOBS)
    f = next(x for x in found if x.cluster == JOBS[0].cluster)
    assert f.out is not None and f.out.size == len(JOBS[0].out.encode())
    assert (
        f.path
        == f"{JOBS[0].relative_dir.removeprefix('client/')}/job.{JOBS[0].cluster}.{JOBS[0].proc}"
    )
    # the client directory itself works as the source too
    assert len(list(scan_tree(tree / "client"))) == len(JOBS)


@pytest.mark.parametrize(
    ("host", "header", "site"),
    [
        ("wn001.grid.unl.edu", {}, "unl.edu"),
        ("node-7.hep.ph.ac.uk", {}, "ph.ac.uk"),
        ("c123-45", {}, None),
        ("10.0.0.1", {}, None),
        (None, {}, None),
        ("wn1.cern.ch", {"GLIDEIN_Site": "CERN"}, "CERN"),
    ],
)
def test_site_of(host: str | None, header: dict[str, str], site: str | None) -> None:
    assert site_of(host, header) == site


def test_follow_runs_passes_until_stopped(tree: Path, tmp_path: Path) -> None:
    import threading

    index = open_index(tmp_path / "index.sqlite")
    ix = Indexer(index, tree)
    stop = threading.Event()
    seen: list[int] = []

    def on_pass(report) -> None:  # type: ignore[no-untyped-def]
        seen.append(report.indexed)
        if len(seen) == 1:
            write_jobs(tree, varied_jobs(1, seed=55))
        if len(seen) >= 3:
            stop.set()

    passes = ix.follow(0.05, stop, on_pass=on_pass)
    assert passes == 3 and seen == [len(JOBS), 1, 0]
    index.close()


def test_worker_processes_build_the_same_index(tmp_path: Path) -> None:
    """Records built in worker processes (a big pass) equal the in-process ones."""
    src = write_jobs(tmp_path / "src", JOBS)
    (Path(find_client_dir(src)) / "user_x" / "glidein_y" / "entry_z").mkdir(parents=True)
    bad = Path(find_client_dir(src)) / "user_x" / "glidein_y" / "entry_z" / "job.1.0.out"
    bad.write_bytes(b"")
    bad.chmod(0)  # unreadable (unless root): one error, the others indexed
    keys = KeyRing.from_secret(bytes(range(32)), "k1")
    seen = {}
    for workers in (1, 2):
        data = tmp_path / f"data{workers}"
        index = open_index(data / "index.sqlite")
        archive = Archive(data / "archive")
        ix = Indexer(index, src, archive=archive, anonymizer=Anonymizer(keys), workers=workers)
        ix.pool_chunk = 2
        report = ix.run_pass()
        assert report.indexed == len(JOBS) + (os.geteuid() == 0)
        assert len(report.errors) == (os.geteuid() != 0)
        rows = {}
        for job in JOBS:
            row = by_path(index, job)
            texts = index.section_texts([s.id for s in index.sections(row.id)])
            info = dict(vars(row.info))
            rows[row.info.path] = (info, row.summary, sorted(texts.values()))
            assert archive.exists(row.info.path, "anonymized")
        seen[workers] = rows
        index.close()
        archive.close()
    assert seen[1] == seen[2]


def _worker_report(_: object) -> tuple[int, int]:
    return os.getpid(), os.nice(0)


def test_parsing_workers_run_at_a_lower_priority_than_the_storing_process() -> None:
    import concurrent.futures
    import multiprocessing

    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=indexer_module._worker_init,
        initargs=(None, None, "zstd"),
    )
    with pool:
        pid, nice = pool.submit(_worker_report, None).result(timeout=60)
    assert pid != os.getpid()
    assert nice == os.nice(0) + indexer_module.WORKER_NICE


def test_a_pass_raises_the_gc_threshold_and_restores_it(tmp_path: Path) -> None:
    import gc

    before = gc.get_threshold()
    seen: list[int] = []
    src = write_jobs(tmp_path / "src", JOBS[:2])
    index = open_index(tmp_path / "data" / "index.sqlite")
    ix = Indexer(index, src, archive=Archive(tmp_path / "data" / "archive"), workers=1)
    report = ix.run_pass(progress=lambda *a: seen.append(gc.get_threshold()[0]))
    assert report.indexed == 2
    assert seen and all(t == indexer_module.GC_THRESHOLD for t in seen)
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), indexer_module.fewer_gc_passes(50_000):
        assert gc.get_threshold()[0] == 50_000
        raise RuntimeError("boom")
    assert gc.get_threshold() == before
    index.close()
