"""What the two log index stores share: rows to and from records, new ids, search conditions."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.monitor.compression import GzipCodec
from gwms.monitor.index import (
    Checkpoint,
    FileState,
    JobInfo,
    JobRecord,
    SectionRecord,
    job_epoch,
    make_job_id,
)
from gwms.monitor.index_rows import (
    JOB_COLS,
    SECTION_COLS,
    assign_ids,
    batch_rows,
    decode_text,
    epochs_needing_ids,
    index_row,
    job_from_row,
    section_from_row,
)
from gwms.monitor.index_sql import job_conditions, section_name_condition, sql_order
from gwms.monitor.index_sqlite import _DIALECT as SQLITE
from gwms.monitor.search import ExitFilter, JobRef, SearchQuery


def record(path: str, epoch: int, texts: dict[str, str], **info: object) -> JobRecord:
    values: dict = {
        "path": path,
        "frontend_user": "fe",
        "instance": "v1",
        "entry": "E1",
        "cluster": 1,
        "proc": 0,
        "sort_epoch": epoch,
    }
    values.update(info)
    return JobRecord(
        info=JobInfo(**values),
        checkpoint=Checkpoint(FileState(10, 1), None),
        sections=[SectionRecord(name, "log", text) for name, text in texts.items()],
        summary={"start_epoch": epoch},
        problems=["p"],
        indexed_at=5.0,
    )


def test_batch_rows_read_back_as_the_records() -> None:
    rec = record("u/g/e/job.1.0", 100, {"a": "one\ntwo\n", "b": "x"}, finished=True, host="h")
    rows = batch_rows([make_job_id(100, 0)], [rec], GzipCodec())
    assert len(rows.jobs) == 1 and all(len(r) == len(JOB_COLS) for r in rows.jobs)
    assert all(len(r) == len(SECTION_COLS) for r in rows.sections)
    job = job_from_row(rows.jobs[0])
    # the problem count is the record's problems'
    assert (
        job.info == replace(rec.info, problem_count=1)
        and job.problems == ["p"]
        and job.summary == {"start_epoch": 100}
    )
    assert job.checkpoint == rec.checkpoint and job.indexed_at == 5.0
    assert job.text_bytes == sum(len(t[2]) for t in rows.texts)
    sections = [section_from_row(r) for r in rows.sections]
    assert [(s.name, s.ordinal, s.lines, s.job_id) for s in sections] == [
        ("a", 0, 2, job.id),
        ("b", 1, 1, job.id),
    ]
    assert [decode_text(codec, body) for _sid, codec, body in rows.texts] == ["one\ntwo\n", "x"]
    assert rows.searchable == [(sections[0].id, "one\ntwo\n"), (sections[1].id, "x")]
    page_row = index_row(True, (sections[1].id, *rows.sections[1], *rows.jobs[0]))
    assert page_row.key == sections[1].id and page_row.section == sections[1]
    assert page_row.job == job


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.sampled_from([f"job{i}" for i in range(12)]),
        st.tuples(st.integers(0, 3), st.none() | st.integers(0, 3)),
    )
)
def test_ids_kept_for_the_same_start_else_next_free(jobs: dict) -> None:  # type: ignore[type-arg]
    # each job: its start now, and the start it was stored with (None: new)
    old = {
        path: (make_job_id(before, seq), before)
        for seq, (path, (_now, before)) in enumerate(jobs.items())
        if before is not None
    }
    records = [record(path, now, {}) for path, (now, _before) in jobs.items()]
    moved = {
        r.info.sort_epoch
        for r in records
        if r.info.path not in old or old[r.info.path][1] != r.info.sort_epoch
    }
    need = epochs_needing_ids(records, old)
    assert need == sorted(moved)
    taken = {jid for jid, _e in old.values()}
    next_seq = {
        e: 1 + max([j & 0x7FFFF for j in taken if job_epoch(j) == e], default=-1) for e in need
    }
    ids = assign_ids(records, old, next_seq)
    assert len(set(ids)) == len(ids)
    for r, jid in zip(records, ids, strict=True):
        assert job_epoch(jid) == r.info.sort_epoch
        before = old.get(r.info.path)
        if before is not None and before[1] == r.info.sort_epoch:
            assert jid == before[0]
        else:
            assert jid not in taken


names = st.lists(st.text("abz*?[]", min_size=1, max_size=4), max_size=3)


@given(
    entries=names,
    hosts=names,
    jobs=st.lists(st.builds(JobRef, st.integers(0, 9), st.none() | st.integers(0, 9)), max_size=3),
    codes=st.none() | st.tuples(st.lists(st.integers(0, 9), min_size=1, max_size=3), st.booleans()),
    finished=st.none() | st.booleans(),
    problems=st.none() | st.booleans(),
    anonymized_only=st.booleans(),
    sections=names,
)
def test_conditions_run_in_sqlite_with_one_parameter_per_mark(  # type: ignore[no-untyped-def]
    entries, hosts, jobs, codes, finished, problems, anonymized_only, sections
) -> None:
    query = SearchQuery(
        entries=tuple(entries),
        hosts=tuple(hosts),
        jobs=tuple(jobs),
        exit=None if codes is None else ExitFilter(tuple(codes[0]), codes[1]),
        finished=finished,
        problems=problems,
    )
    clauses, params = job_conditions(query, anonymized_only, SQLITE)
    sql = " AND ".join(clauses) or "1"
    assert sql.count("?") == len(params)
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE TABLE j (entry, host, cluster, proc, exit_code, finished, problem_count, anonymized)"
    )
    conn.execute("SELECT count(*) FROM j WHERE " + sql, params).fetchone()
    if sections:
        clause, names_params = section_name_condition(sections, SQLITE)
        assert clause.count("?") == len(names_params) == len(sections)
        conn.execute("CREATE TABLE s (name)")
        conn.execute("SELECT count(*) FROM s WHERE " + clause, names_params).fetchone()


def test_sql_order() -> None:
    assert sql_order("desc") == ("DESC", "<")
    assert sql_order("asc") == ("ASC", ">")
