"""The log index store: keys, storing and replacing jobs, URLs, archive, codecs, retention."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from monitor_trees import varied_jobs, write_jobs
from pg_fixtures import BACKENDS, PgCluster, new_index_url

from gwms.errors import GwmsError
from gwms.monitor.archive import (
    Archive,
    ArchiveError,
    RetentionPolicy,
    parse_size,
    plan_prune,
    prune,
)
from gwms.monitor.compression import CodecError, GzipCodec, ZstdCodec, codec_named, default_codec
from gwms.monitor.index import (
    MAX_ORDINAL,
    Checkpoint,
    FileState,
    JobInfo,
    JobRecord,
    LogIndexError,
    RetentionEntry,
    SectionRecord,
    job_epoch,
    job_id_range,
    make_job_id,
    open_index,
    section_id,
    section_id_range,
    section_job_id,
    section_ordinal,
)
from gwms.monitor.index_pg import PostgresIndex, glob_to_regex, text_parts, tsquery_of
from gwms.monitor.index_sqlite import SQLiteIndex
from gwms.monitor.indexer import Indexer
from gwms.monitor.search import parse_query
from gwms.monitor.searcher import Searcher

# ----------------------------------------------------------------------------------
# keys


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**19 - 1), st.integers(0, MAX_ORDINAL))
def test_keys_round_trip(epoch: int, seq: int, ordinal: int) -> None:
    jid = make_job_id(epoch, seq)
    assert job_epoch(jid) == epoch
    sid = section_id(jid, ordinal)
    assert section_job_id(sid) == jid and section_ordinal(sid) == ordinal
    lo, hi = section_id_range(jid)
    assert lo <= sid <= hi < 2**63
    first, last = job_id_range(epoch, epoch)
    assert first <= jid <= last


@given(
    st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**19 - 1)),
    st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**19 - 1)),
    st.integers(0, MAX_ORDINAL),
    st.integers(0, MAX_ORDINAL),
)
def test_keys_order_by_start_time_then_file_order(a, b, oa: int, ob: int) -> None:  # type: ignore[no-untyped-def]
    ja, jb = make_job_id(*a), make_job_id(*b)
    if a < b:
        assert ja < jb and section_id(ja, oa) < section_id(jb, ob)
    if ja == jb and oa < ob:  # descending keys list a job's sections in file order
        assert section_id(ja, oa) > section_id(ja, ob)


def test_key_ranges_refuse_what_does_not_fit() -> None:
    with pytest.raises(ValueError):
        make_job_id(-1, 0)
    with pytest.raises(ValueError):
        make_job_id(0, 2**19)
    with pytest.raises(ValueError):
        section_id(1, MAX_ORDINAL + 1)


# ----------------------------------------------------------------------------------
# storing (every test with an index runs against SQLite and PostgreSQL)


@pytest.fixture(params=BACKENDS)
def index_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a new, empty index of each backend."""
    return new_index_url(request.param, request, tmp_path)


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
    )


def test_store_replace_and_no_stale_full_text(index_url: str) -> None:
    index = open_index(index_url)
    assert isinstance(index, SQLiteIndex if index_url.startswith("sqlite") else PostgresIndex)
    (a,) = index.store([record("p/job.1.0", 1000, {"out": "alpha beta", "err": "gamma"})])
    (b,) = index.store([record("p/job.2.0", 1000, {"out": "alpha"}, cluster=2)])
    assert job_epoch(a) == job_epoch(b) == 1000 and b == a + 1
    search = Searcher(index)

    def found(text: str) -> set[tuple[int, str]]:
        page = search.search(parse_query(text, now=0), limit=100)
        return {(r.job.id, r.section.name) for r in page.rows}

    assert found("alpha") == {(a, "out"), (b, "out")}
    # the same job again, same start: same id, the old texts are gone from the FTS index
    (a2,) = index.store([record("p/job.1.0", 1000, {"out": "delta"})])
    assert a2 == a and found("beta") == set() and found("gamma") == set()
    assert found("delta") == {(a, "out")}
    assert [s.name for s in index.sections(a)] == ["out"]
    # a new start time moves the job (and its key) in time
    (a3,) = index.store([record("p/job.1.0", 5000, {"out": "delta"})])
    assert job_epoch(a3) == 5000 and index.job(a) is None and found("delta") == {(a3, "out")}
    assert index.checkpoints()["p/job.1.0"] == Checkpoint(FileState(10, 1), None)
    stats = index.stats()
    assert stats["jobs"] == 2 and stats["sections"] == 2
    index.close()


def test_a_failing_batch_stores_nothing(index_url: str) -> None:
    index = open_index(index_url)
    bad = record("p/job.3.0", 10, {"out": "x"})
    bad.info.sort_epoch = -5  # cannot make a key of it
    with pytest.raises(ValueError):
        index.store([record("p/job.4.0", 10, {"out": "y"}), bad])
    assert index.checkpoints() == {}
    index.close()


def test_too_many_sections_are_cut_and_said(index_url: str) -> None:
    index = open_index(index_url)
    texts = {f"S{i}": f"t{i}" for i in range(MAX_ORDINAL + 3)}
    (jid,) = index.store([record("p/job.5.0", 10, texts)])
    assert len(index.sections(jid)) == MAX_ORDINAL + 1
    assert any("only the first" in p for p in index.job(jid).problems)
    index.close()


def test_index_urls_and_schema(tmp_path: Path) -> None:
    with pytest.raises(LogIndexError, match="cannot open the log index postgresql://u:\\*\\*\\*@"):
        open_index("postgresql://u:secret@127.0.0.1:1/gwms?connect_timeout=5")
    with pytest.raises(LogIndexError, match="unknown index URL"):
        open_index("mysql://x")
    with pytest.raises(LogIndexError, match="no log index"):
        open_index(tmp_path / "missing.sqlite", create=False)
    path = tmp_path / "old.sqlite"
    open_index(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(LogIndexError, match="schema 99"):
        open_index(path)
    (tmp_path / "junk.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(LogIndexError):
        open_index(tmp_path / "junk.sqlite")


def test_postgres_schema_checks(pg_cluster: PgCluster) -> None:
    url, schema = pg_cluster.new_url()
    try:
        with pytest.raises(LogIndexError, match="no log index"):
            open_index(url, create=False)
        open_index(url).close()
        open_index(url, create=False).close()  # now there is one
        import psycopg

        with psycopg.connect(url, autocommit=True) as db:
            db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        with pytest.raises(LogIndexError, match="schema 99"):
            open_index(url)
    finally:
        pg_cluster.drop(schema)


def test_postgres_text_parts_keep_every_word_and_phrase() -> None:
    words = [f"w{i}" for i in range(40_000)]
    parts = text_parts(" ".join(words) + "\n")
    assert len(parts) == 3 and all(len(p.split()) <= 16_000 for p in parts)
    seen = [w for p in parts for w in p.split()]
    assert set(seen) == set(words)
    for i in range(len(words) - 32):  # every run of 32 words lies within one part
        if i % 997 == 0:
            run = " ".join(words[i : i + 32])
            assert any(run in p for p in parts)
    assert text_parts("Hello, WORLD_x é!") == ["hello world x é"]
    assert text_parts(" -- ") == []


def test_postgres_query_helpers_quote_and_translate() -> None:
    from gwms.monitor.search import Term

    assert tsquery_of(Term(("a", "b2"), prefix=True)) == "'a' <-> 'b2':*"
    with pytest.raises(ValueError):
        tsquery_of(Term(("it's",)))
    import re as _re

    for glob, yes, no in (
        ("StarterLog*", ["StarterLog", "StarterLog.slot1_1"], ["starterlog", "xStarterLog"]),
        ("Log?", ["Log1"], ["Log", "Log12"]),
        ("[MS]*Log", ["MasterLog", "StartdLog"], ["ProcLog"]),
        ("[^M]*Log", ["StartdLog"], ["MasterLog"]),
        ("a.b(c)+", ["a.b(c)+"], ["aXb(c)+", "a.bcc"]),
        ("[oops", ["[oops"], ["o"]),
    ):
        rx = _re.compile(glob_to_regex(glob).replace("$", r"\Z"))
        assert all(rx.match(v) for v in yes) and not any(rx.match(v) for v in no), glob


def test_queries_use_the_keys_not_a_sort(tmp_path: Path) -> None:
    index = open_index(tmp_path / "i.sqlite")
    assert isinstance(index, SQLiteIndex)
    plan = " ".join(index.explain(parse_query("alpha time:2024-05-01", now=0)))
    assert "TEMP B-TREE" not in plan and "SCAN f VIRTUAL TABLE" in plan  # FTS5 in key order
    jobs_plan = " ".join(index.explain(parse_query("entry:E1", now=0)))
    assert "jobs_entry" in jobs_plan and "TEMP B-TREE" not in jobs_plan
    # few jobs pass the filters (none here): the jobs drive, FTS5 seeks each one's keys
    driven = index.explain(parse_query("alpha entry:E1", now=0))
    assert driven[0].startswith("SEARCH j USING") and "VIRTUAL TABLE" in driven[1]
    index.job_driven_max = -1  # never: FTS5 drives and joins the jobs
    plan = " ".join(index.explain(parse_query("alpha entry:E1", now=0)))
    assert plan.startswith("SCAN f VIRTUAL TABLE") and "TEMP B-TREE" not in plan
    index.close()


# ----------------------------------------------------------------------------------
# codecs and archive


@pytest.mark.parametrize("codec", [GzipCodec(), ZstdCodec()], ids=["gzip", "zstd"])
def test_codecs_round_trip_and_refuse_garbage(codec) -> None:  # type: ignore[no-untyped-def]
    data = b"07/03/24 09:41:00 (pid:83654) slot1: Changing activity\n" * 200
    blob = codec.compress(data)
    assert len(blob) < len(data) // 10 and codec.decompress(blob) == data
    assert codec_named(codec.name).decompress(blob) == data
    with pytest.raises(CodecError):
        codec.decompress(b"garbage" * 10)
    with pytest.raises(CodecError):
        codec_named("lzma")
    assert default_codec().name == "zstd"  # the package is a dependency


@pytest.mark.parametrize("codec", [GzipCodec(), ZstdCodec()], ids=["gzip", "zstd"])
def test_archive_write_read_replace_delete(tmp_path: Path, codec) -> None:  # type: ignore[no-untyped-def]
    import stat as st

    archive = Archive(tmp_path / "a", codec)
    files = {"job.1.0.out": b"out text", "job.1.0.err": b"err \xff bytes"}
    job = "user_x/glidein_y/entry_z/job.1.0"
    item = archive.write(job, "original", files, {"job.1.0.out": 1e9})
    assert item.codec == codec.name and item.suffix == (
        ".tar.gz" if codec.name == "gzip" else ".tar.zst"
    )
    assert item.media_type == ("application/gzip" if codec.name == "gzip" else "application/zstd")
    assert st.S_IMODE(archive.path.stat().st_mode) == 0o600
    assert archive.read(job, "original") == files and archive.exists(job, "original")
    assert not archive.exists(job, "anonymized")
    # stored again with the other codec: the same row, replaced
    other = Archive(tmp_path / "a", ZstdCodec() if codec.name == "gzip" else GzipCodec())
    other.write(job, "original", {"job.1.0.out": b"new"})
    assert archive.read(job, "original") == {"job.1.0.out": b"new"}
    assert archive.stats() == {
        "original_archives": 1,
        "original_bytes": archive.get(job, "original").size,
    }
    # a batch in one transaction, then deletion
    archive.put([archive.pack(f"u/g/e/job.{i}.0", "anonymized", {"x": b"y" * i}) for i in range(5)])
    assert archive.stats()["anonymized_archives"] == 5
    size = archive.get(job, "original").size
    assert archive.delete(job) == size and archive.delete(job) == 0
    archive.reclaim()
    with pytest.raises(ArchiveError, match="no original archive"):
        archive.read(job, "original")
    for bad in ("../etc/passwd", "/abs/job", "a/../../b", "", "a//b"):
        with pytest.raises(ArchiveError, match="bad job path"):
            archive.write(bad, "original", files)
    archive.close()
    other.close()


def test_a_corrupt_archive_is_an_error_not_a_crash(tmp_path: Path) -> None:
    from gwms.monitor.archive import ArchiveItem, unpack

    with pytest.raises(ArchiveError, match="cannot read"):
        unpack(ArchiveItem("u/g/e/job.1.0", "original", "zstd", b"not zstd at all"))


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("123", 123),
        ("500M", 500_000_000),
        ("2G", 2 * 10**9),
        ("1.5k", 1500),
        ("4GiB", 4 * 2**30),
        ("10 MB", 10**7),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_bad_sizes() -> None:
    for bad in ("", "lots", "5X", "-1G"):
        with pytest.raises(GwmsError):
            parse_size(bad)


# ----------------------------------------------------------------------------------
# retention

_entry = st.builds(
    RetentionEntry,
    job_id=st.integers(0, 10**6),
    path=st.just("p"),
    epoch=st.integers(0, 1000),
    original_bytes=st.integers(0, 100),
    anonymized_bytes=st.integers(0, 100),
    text_bytes=st.integers(0, 100),
    has_original=st.booleans(),
    has_data=st.just(True),
)


@settings(max_examples=300)
@given(
    st.lists(_entry, max_size=30, unique_by=lambda e: e.job_id),
    st.one_of(st.none(), st.integers(0, 500)),
    st.one_of(st.none(), st.integers(0, 1000)),
    st.one_of(st.none(), st.integers(0, 3000)),
)
def test_retention_plan(entries, max_age, original_max_age, max_bytes) -> None:  # type: ignore[no-untyped-def]
    now = 1000
    policy = RetentionPolicy(max_age, max_bytes, original_max_age)
    plan = plan_prune(entries, policy, now)
    drop, drop_original = set(plan.drop), set(plan.drop_original)
    assert not drop & drop_original and len(plan.drop) == len(drop)
    by_id = {e.job_id: e for e in entries}
    kept = [e for e in entries if e.job_id not in drop]

    def weight(e: RetentionEntry) -> int:
        orig = e.original_bytes if e.has_original and e.job_id not in drop_original else 0
        return orig + e.anonymized_bytes + e.text_bytes

    assert plan.bytes_after == sum(weight(e) for e in kept)
    if max_bytes is not None:
        assert plan.bytes_after <= max_bytes
    for e in entries:
        if max_age is not None and now - e.epoch > max_age:
            assert e.job_id in drop  # too old: gone
        elif original_max_age is not None and e.has_original and now - e.epoch > original_max_age:
            assert e.job_id in drop or e.job_id in drop_original
        if e.job_id in drop_original:
            assert by_id[e.job_id].has_original
    # for size, the oldest go first: nothing kept is older than something dropped for size
    young_drops = [by_id[j] for j in drop if max_age is None or now - by_id[j].epoch <= max_age]
    if young_drops:
        newest_dropped = max((e.epoch, e.job_id) for e in young_drops)
        assert all((e.epoch, e.job_id) > newest_dropped for e in kept)
    if not policy.active:
        assert plan.drop == () and plan.drop_original == ()


def test_prune_keeps_rows_and_pruned_jobs_are_not_indexed_again(
    tmp_path: Path, index_url: str
) -> None:
    jobs = varied_jobs(6, seed=3, lines=12)
    src = write_jobs(tmp_path / "src", jobs)
    index = open_index(index_url)
    archive = Archive(tmp_path / "archive")
    ix = Indexer(index, src, archive=archive)
    assert ix.run_pass().indexed == 6
    entries = sorted(index.retention_entries(), key=lambda e: (e.epoch, e.job_id))
    assert len(entries) == 6
    total = sum(e.original_bytes + e.anonymized_bytes + e.text_bytes for e in entries)
    # keep room for about half
    report = prune(index, archive, RetentionPolicy(max_bytes=total // 2))
    assert report.jobs_dropped >= 3 and report.bytes_freed > 0 and report.errors == []
    gone = entries[: report.jobs_dropped]
    for e in gone:
        row = index.job(e.job_id)
        assert row is not None and row.pruned_at is not None  # the summary stays
        assert index.sections(e.job_id) == []
        assert not archive.exists(e.path, "original")
    survivors = entries[report.jobs_dropped :]
    assert all(archive.exists(e.path, "original") for e in survivors)
    # searches skip pruned texts; the next pass does not bring them back
    ids = {
        r.job.id
        for r in Searcher(index).search(parse_query("condor", now=time.time()), limit=100).rows
    }
    assert ids == {e.job_id for e in survivors}
    assert ix.run_pass().indexed == 0
    # originals only, by age: the anonymized side (none here) and texts stay
    old = RetentionPolicy(original_max_age_seconds=0)
    r2 = prune(index, archive, old, now=time.time() + 10**10)
    assert r2.originals_dropped == len(survivors) and r2.jobs_dropped == 0
    assert all(index.sections(e.job_id) for e in survivors)
    assert not any(archive.exists(e.path, "original") for e in survivors)
    index.close()


def test_connections_of_ended_threads_are_closed(index_url: str) -> None:
    import threading

    index = open_index(index_url)
    assert isinstance(index, (SQLiteIndex, PostgresIndex))
    for _ in range(10):  # e.g. one writer thread per indexing pass
        t = threading.Thread(target=index.checkpoints)
        t.start()
        t.join()
    index.checkpoints()
    assert len(index._all) <= 2
    index.close()
    assert index._all == {}


def test_sqlite_fts_settings_are_stored_once(tmp_path: Path) -> None:
    index = open_index(tmp_path / "i.sqlite")
    assert isinstance(index, SQLiteIndex)
    config = dict(index._conn().execute("SELECT k, v FROM section_fts_config"))
    assert {k: config[k] for k in index.fts_settings} == index.fts_settings
    index.close()
    with sqlite3.connect(tmp_path / "i.sqlite") as db:  # an index made with FTS5's defaults
        db.execute("DELETE FROM section_fts_config WHERE k IN ('hashsize', 'automerge')")
    index = open_index(tmp_path / "i.sqlite")
    config = dict(index._conn().execute("SELECT k, v FROM section_fts_config"))
    assert config["automerge"] == 8 and config["hashsize"] == 64 * 1024 * 1024
    index.close()


def test_sqlite_new_index_has_16k_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    index = open_index(tmp_path / "new.sqlite")
    assert index._conn().execute("PRAGMA page_size").fetchone()[0] == 16384
    index.close()
    with sqlite3.connect(tmp_path / "old.sqlite") as db:  # made by an earlier gwms: 4 KB pages
        db.execute("PRAGMA page_size=4096")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t(x)")
    old = SQLiteIndex(tmp_path / "old.sqlite")
    assert old._conn().execute("PRAGMA page_size").fetchone()[0] == 4096
    old.store([])
    old.close()
