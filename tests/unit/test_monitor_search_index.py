"""Searching an index of generated jobs: every field, full text, regex, pages, totals, histograms."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from monitor_trees import WORLD, varied_jobs, write_jobs
from pg_fixtures import BACKENDS, new_index_url

from gwms.monitor.anonymize import Anonymizer, KeyRing
from gwms.monitor.index import LogIndex, open_index
from gwms.monitor.index_sqlite import SQLiteIndex
from gwms.monitor.indexer import Indexer, site_of
from gwms.monitor.samples import SampleJob, make_job
from gwms.monitor.search import SearchQuery, SearchSyntaxError, parse_query
from gwms.monitor.searcher import AmbiguousJob, JobNotFound, Searcher, resolve_job

NOW = time.time()


def _twin(of: SampleJob) -> SampleJob:
    """Another job with the same factory job id, elsewhere in the tree."""
    for seed in range(500, 600):
        job = make_job(WORLD, seed, cluster=of.cluster, proc=of.proc, lines=12)
        if job.relative_dir != of.relative_dir:
            return job
    raise AssertionError("no twin")


JOBS = varied_jobs(12, seed=4, lines=16)
TWIN = _twin(JOBS[0])
ALL = [*JOBS, TWIN]


@pytest.fixture(scope="module", params=BACKENDS)
def index(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LogIndex]:
    """The generated jobs indexed in each backend: every test asserts the same of both."""
    root = tmp_path_factory.mktemp("search")
    write_jobs(root / "src", ALL)
    idx = open_index(new_index_url(request.param, request, root))
    assert Indexer(idx, root / "src").run_pass().indexed == len(ALL)
    yield idx
    idx.close()


def job_ids(index: LogIndex, jobs: list[SampleJob]) -> set[int]:
    out = set()
    for j in jobs:
        row = index.job_by_path(
            f"{j.relative_dir.removeprefix('client/')}/job.{j.cluster}.{j.proc}"
        )
        assert row is not None
        out.add(row.id)
    return out


def found_jobs(index: LogIndex, query: SearchQuery, **options) -> set[int]:  # type: ignore[no-untyped-def]
    page = Searcher(index).search(query, limit=1000, **options)
    assert page.next_cursor is None
    return {r.job.id for r in page.rows}


def q(text: str = "", **kw) -> SearchQuery:  # type: ignore[no-untyped-def]
    return parse_query(text, now=NOW, **kw)


@pytest.mark.parametrize(
    ("query", "expect"),
    [
        ("entry:{entry}", lambda j, ref: j.entry == ref.entry),
        (
            "site:{site}",
            lambda j, ref: site_of(str(j.expected["host"])) == site_of(str(ref.expected["host"])),
        ),
        ("user:{frontend_user}", lambda j, ref: j.frontend_user == ref.frontend_user),
        (
            "group:{group}",
            lambda j, ref: j.expected["client_group"] == ref.expected["client_group"],
        ),
        (
            "client:{client}",
            lambda j, ref: j.expected["client_name"] == ref.expected["client_name"],
        ),
        ("host:{host}", lambda j, ref: j.expected["host"] == ref.expected["host"]),
        ("job:job.{cluster}.{proc}", lambda j, ref: (j.cluster, j.proc) == (ref.cluster, ref.proc)),
        ("job:{cluster}.{proc}", lambda j, ref: (j.cluster, j.proc) == (ref.cluster, ref.proc)),
        ("job:{cluster}", lambda j, ref: j.cluster == ref.cluster),
        ("uuid:{uuid}", lambda j, ref: j.expected["glidein_uuid"] == ref.expected["glidein_uuid"]),
        ("exit:0", lambda j, ref: j.expected["exit_code"] == 0),
        ("exit:!0", lambda j, ref: j.expected["exit_code"] != 0),
        ("exit:1,137", lambda j, ref: j.expected["exit_code"] in (1, 137)),
        (
            "time:{start}..{start}",
            lambda j, ref: j.expected["start_epoch"] == ref.expected["start_epoch"],
        ),
        ("from:{start}", lambda j, ref: j.expected["start_epoch"] >= ref.expected["start_epoch"]),
        ("to:{start}", lambda j, ref: j.expected["start_epoch"] <= ref.expected["start_epoch"]),
        ("problems:yes", lambda j, ref: bool(j.truncated)),
        ("finished:yes", lambda j, ref: True),
    ],
)
@pytest.mark.parametrize("ref_index", [0, 5])
def test_search_by_every_field(index: LogIndex, query: str, expect, ref_index: int) -> None:  # type: ignore[no-untyped-def]
    ref = ALL[ref_index]
    text = query.format(
        entry=ref.entry,
        site=site_of(str(ref.expected["host"])) or "none",
        frontend_user=ref.frontend_user,
        group=ref.expected["client_group"],
        client=ref.expected["client_name"],
        host=ref.expected["host"],
        cluster=ref.cluster,
        proc=ref.proc,
        uuid=str(ref.expected["glidein_uuid"]).upper(),
        start=ref.expected["start_epoch"],
    )
    expected = job_ids(index, [j for j in ALL if expect(j, ref)])
    assert expected, "the example must match something"
    assert found_jobs(index, q(text)) == expected


def test_fields_combine_with_and_values_with_or(index: LogIndex) -> None:
    a, b = ALL[1], ALL[2]
    both = q(f"job:{a.job_id} job:{b.job_id}")
    assert found_jobs(index, both) == job_ids(index, [a, b])
    assert found_jobs(index, q(f"job:{a.job_id} entry:{a.entry}")) == job_ids(index, [a])
    other_entry = next(j.entry for j in ALL if j.entry != a.entry)
    assert found_jobs(index, q(f"job:{a.job_id} entry:{other_entry}")) == set()


def test_full_text_finds_lines_in_sections_with_hits(index: LogIndex) -> None:
    job = JOBS[3]
    line = b"".join(job.sections["StartdHistoryLog"]).decode().splitlines()[3]
    words = re.findall(r"[^\W_]+", line)[:4]
    page = Searcher(index).search(q('"' + " ".join(words) + '"' + f" job:{job.job_id}"), context=1)
    assert page.unit == "sections" and page.total == len(page.rows) >= 1
    hit_rows = [r for r in page.rows if r.section.name == "StartdHistoryLog"]
    assert hit_rows and any(line in (h.text for h in r.hits) for r in hit_rows)
    hit = next(h for r in hit_rows for h in r.hits if h.text == line)
    assert (
        hit.number == 4
        and [c.number for c in hit.before] == [3]
        and [c.number for c in hit.after] == [5]
    )
    start, end = hit.spans[0]
    assert hit.text[start:end].lower().startswith(words[0].lower())


def test_section_filter_and_globs(index: LogIndex) -> None:
    page = Searcher(index).search(q("section:StarterLog*"), limit=1000)
    names = {r.section.name for r in page.rows}
    assert names == {"StarterLog", "StarterLog.slot1_1", "StarterLog.slot1_2", "StarterLog.monitor"}
    xml = Searcher(index).search(q("OSGTestResult section:XML"), limit=1000)
    assert {r.section.name for r in xml.rows} == {"XML"} and xml.total == len(ALL)


def test_keyset_pages_cover_everything_once_in_order(index: LogIndex) -> None:
    searcher = Searcher(index)
    for query in (q("condor"), q(""), q("section:out")):
        for order in ("desc", "asc"):
            everything = searcher.search(query, limit=1000, order=order)
            keys: list[int] = []
            cursor = None
            pages = 0
            while True:
                page = searcher.search(
                    query, limit=7, cursor=cursor, order=order, with_total=pages == 0
                )
                if pages == 0:
                    assert page.total == len(everything.rows)
                keys.extend(r.key for r in page.rows)
                pages += 1
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert keys == [r.key for r in everything.rows]
            assert keys == sorted(keys, reverse=order == "desc") and len(set(keys)) == len(keys)
            assert pages == max(1, -(-len(keys) // 7))


def test_a_cursor_from_another_search_is_refused(index: LogIndex) -> None:
    searcher = Searcher(index)
    cursor = searcher.search(q("condor"), limit=2).next_cursor
    assert cursor is not None
    with pytest.raises(SearchSyntaxError, match="another search"):
        searcher.search(q("condor entry:x"), cursor=cursor)


def test_histogram_counts_every_result(index: LogIndex) -> None:
    searcher = Searcher(index)
    for query in (q(""), q("condor"), q("exit:0"), q("", regex=r"Changing activity: \w+ -> Busy")):
        page = searcher.search(query, limit=3, with_histogram=True)
        assert page.histogram is not None and page.total is not None
        assert sum(n for _s, n in page.histogram.buckets) == page.total > 0
        assert len(page.histogram.buckets) <= 61
    ref = ALL[0].expected["start_epoch"]
    windowed = searcher.search(q(f"time:{ref - 86400}..{ref + 86400}"), with_histogram=True)
    assert (
        windowed.histogram.buckets[0][0] <= ref - 86400 and windowed.histogram.buckets[-1][0] >= ref
    )


def test_regex_search_matches_python_re_and_pages_within_a_budget(index: LogIndex) -> None:
    pattern = r"slot1_\d: Changing activity: Idle -> Busy"
    rx = re.compile(pattern)
    expected = {
        (jid, name)
        for j, jid in ((j, next(iter(job_ids(index, [j])))) for j in ALL)
        for name, parts in j.sections.items()
        if rx.search(b"".join(parts).decode(errors="replace"))
    }
    assert expected
    full = Searcher(index).search(q("", regex=pattern), limit=1000)
    assert full.complete and full.total == len(expected)
    assert {(r.job.id, r.section.name) for r in full.rows} == expected
    # a tiny budget: pages stop early but say so, and cursors go on to the same results
    tight = Searcher(index, regex_rows=9)
    seen: list[tuple[int, str]] = []
    cursor = None
    incomplete = 0
    for _ in range(500):
        page = tight.search(q("", regex=pattern), limit=5, cursor=cursor, with_total=False)
        incomplete += not page.complete
        assert page.scanned <= 9
        seen.extend((r.job.id, r.section.name) for r in page.rows)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert incomplete > 0 and cursor is None
    assert seen == [(r.job.id, r.section.name) for r in full.rows]
    # with full text to narrow the candidates first
    narrowed = Searcher(index).search(q("busy", regex=pattern), limit=1000)
    assert {(r.job.id, r.section.name) for r in narrowed.rows} == expected
    assert narrowed.scanned < full.scanned


def test_case_insensitive_regex(index: LogIndex) -> None:
    searcher = Searcher(index)
    assert searcher.search(q("", regex="changing ACTIVITY"), with_total=True).total == 0
    assert searcher.search(q("", regex="changing ACTIVITY", ignore_case=True)).total > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_anonymized_only_hides_original_texts(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    src = write_jobs(tmp_path / "src", JOBS[:2])
    idx = open_index(new_index_url(backend, request, tmp_path))
    Indexer(idx, src).run_pass()  # originals
    more = write_jobs(tmp_path / "src2", JOBS[2:4])
    Indexer(idx, more, anonymizer=Anonymizer(KeyRing.generate("k2"))).run_pass()
    searcher = Searcher(idx)
    everyone = {r.job.id for r in searcher.search(q("condor"), limit=1000).rows}
    viewers = {
        r.job.id for r in searcher.search(q("condor"), limit=1000, anonymized_only=True).rows
    }
    assert len(everyone) == 4 and viewers == job_ids(idx, JOBS[2:4])
    idx.close()


def test_resolving_job_references(index: LogIndex) -> None:
    job = JOBS[4]
    (jid,) = job_ids(index, [job])
    assert resolve_job(index, str(jid)).id == jid
    assert resolve_job(index, f"job.{job.cluster}.{job.proc}").id == jid
    assert resolve_job(index, str(job.cluster)).id == jid
    assert resolve_job(index, str(job.expected["glidein_uuid"]).upper()).id == jid
    with pytest.raises(AmbiguousJob) as err:
        resolve_job(index, TWIN.job_id)
    assert len(err.value.candidates) == 2 and err.value.http_status == 409
    for missing in ("999999.0", "no-such-uuid-here", "???", str((1 << 40) + 5)):
        with pytest.raises(JobNotFound):
            resolve_job(index, missing)


def test_limits_are_checked(index: LogIndex) -> None:
    with pytest.raises(SearchSyntaxError):
        Searcher(index).search(q(""), limit=0)
    with pytest.raises(SearchSyntaxError):
        Searcher(index).search(q(""), order="sideways")  # type: ignore[arg-type]


def test_a_total_or_histogram_that_takes_too_long_is_left_out(index: LogIndex, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    if isinstance(index, SQLiteIndex):  # check the deadline often: a small index is fast
        monkeypatch.setattr(index, "progress_steps", 10)
    query = q("condor OR slot1 OR startd")
    assert index.histogram(query, 3600, timeout=-1.0) is None  # out of time at once
    assert sum(index.histogram(query, 3600, timeout=60.0).values()) == index.count(query, cap=10**6)
    page = Searcher(index, histogram_seconds=-1.0).search(query, with_histogram=True)
    assert page.histogram is None and page.total and page.rows
    assert index.count(query, cap=10**6, timeout=-1.0) is None
    late = Searcher(index, count_seconds=-1.0).search(query)
    assert late.total is None and late.rows


@pytest.mark.parametrize(
    "text",
    [
        "condor entry:{entry}",
        "condor exit:!0",
        "slot1 OR claim user:{user} section:Start*",
        "section:StartdLog exit:0",
        "problems:yes section:StarterLog",
        "condor job:{cluster}",
        "activity time:{start}..",
    ],
)
@pytest.mark.parametrize("order", ["desc", "asc"])
@pytest.mark.parametrize("index", ["sqlite"], indirect=True)  # SQLite's two query plans
def test_both_strategies_give_the_same_pages(index: LogIndex, text: str, order: str) -> None:
    """Jobs driving (few pass the filters) and FTS5 driving give the same rows, pages, totals."""
    ref = ALL[3]
    query = q(
        text.format(
            entry=ref.entry,
            user=ref.frontend_user,
            cluster=ref.cluster,
            start=ref.expected["start_epoch"],
        )
    )

    def everything(job_driven_max: int) -> tuple[list[int], int | None, object]:
        index.job_driven_max = job_driven_max  # type: ignore[attr-defined]
        index.job_driven_ratio = 0  # type: ignore[attr-defined]  # whatever the time range
        index.job_chunk = 1  # type: ignore[attr-defined]  # several chunks per page
        plan = index._plan(query, False)  # type: ignore[attr-defined]
        assert plan.job_driven == (plan.needs_jobs and job_driven_max > 0)
        searcher = Searcher(index)
        keys: list[int] = []
        cursor, total, histogram = None, None, None
        while True:
            page = searcher.search(
                query,
                limit=4,
                cursor=cursor,
                order=order,  # type: ignore[arg-type]
                with_total=cursor is None,
                with_histogram=cursor is None,
            )
            if cursor is None:
                total, histogram = page.total, page.histogram
            keys.extend(r.key for r in page.rows)
            cursor = page.next_cursor
            if cursor is None:
                return keys, total, histogram

    try:
        driven = everything(10**9)
        scanned = everything(-1)
    finally:
        for name in ("job_driven_max", "job_driven_ratio", "job_chunk"):
            delattr(index, name)  # back to the class's values
    assert driven == scanned
    assert driven[0] and driven[1] == len(driven[0])


def test_both_backends_find_the_same_texts(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """FTS5 and tsvector agree on words, prefixes, phrases, OR and NOT, row for row."""
    src = write_jobs(tmp_path / "src", ALL[:5])
    found: dict[str, list[list[tuple[str, str]]]] = {}
    queries = [
        "condor",
        "cond*",
        '"changing activity"',
        '"changing act"*',
        "slot1 OR claim",
        "condor -busy",
        "NOT busy condor",
        "activity idle section:Start*",
        "nosuchwordanywhere",
        "glidein_startup",
    ]
    for backend in BACKENDS:
        idx = open_index(new_index_url(backend, request, tmp_path / backend))
        Indexer(idx, src).run_pass()
        searcher = Searcher(idx)
        found[backend] = [
            [(r.job.info.path, r.section.name) for r in searcher.search(q(t), limit=1000).rows]
            for t in queries
        ]
        idx.close()
    assert found["sqlite"] == found["postgresql"]
    assert all(found["sqlite"][i] for i in (0, 1, 2, 3, 4, 5, 6, 9)) and not found["sqlite"][8]
