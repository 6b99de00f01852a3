"""The search query model: job ids, times, filters, full text to FTS5, hits, cursors, buckets."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from itertools import pairwise

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gwms.monitor.search import (
    ExitFilter,
    JobRef,
    SearchSyntaxError,
    Term,
    TextQuery,
    choose_bucket,
    compile_regex,
    count_lines,
    decode_cursor,
    encode_cursor,
    fill_histogram,
    find_hits,
    parse_exit_filter,
    parse_job_ref,
    parse_query,
    parse_text_query,
    parse_time,
    parse_time_range,
    parse_uuid,
    slice_lines,
    term_pattern,
    to_fts5,
)

NOW = 1_714_564_800  # 2024-05-01T12:00:00Z


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


# ----------------------------------------------------------------------------------
# job ids, uuids, exit codes


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("job.1234.5", JobRef(1234, 5)),
        ("1234.5", JobRef(1234, 5)),
        ("1234", JobRef(1234, None)),
        ("job.1234", JobRef(1234, None)),
        ("JOB.77.0", JobRef(77, 0)),
        ("job.77.0.out", JobRef(77, 0)),
        ("  77.3.err ", JobRef(77, 3)),
    ],
)
def test_job_refs(text: str, ref: JobRef) -> None:
    assert parse_job_ref(text) == ref


@pytest.mark.parametrize("bad", ["", "job.", "1.2.3", "abc", "12a", "-1", "job.1.x", "1..2"])
def test_bad_job_refs(bad: str) -> None:
    with pytest.raises(SearchSyntaxError, match="not a factory job id"):
        parse_job_ref(bad)


@given(st.integers(0, 10**17), st.one_of(st.none(), st.integers(0, 10**8)))
def test_job_ref_round_trips_in_every_spelling(cluster: int, proc: int | None) -> None:
    ref = JobRef(cluster, proc)
    assert parse_job_ref(str(ref)) == ref
    assert parse_job_ref(f"job.{ref}") == ref


def test_uuids_are_lowercased_and_checked() -> None:
    assert (
        parse_uuid(" 4D1FE09F-0AF4-38D2-9752-4D6AF51E8722 ")
        == "4d1fe09f-0af4-38d2-9752-4d6af51e8722"
    )
    with pytest.raises(SearchSyntaxError):
        parse_uuid("not a uuid!")


@pytest.mark.parametrize(
    ("text", "codes", "negate"),
    [
        ("0", (0,), False),
        ("2,1, 137", (1, 2, 137), False),
        ("!0", (0,), True),
        ("!=0", (0,), True),
        ("nonzero", (0,), True),
        ("-1", (-1,), False),
    ],
)
def test_exit_filters(text: str, codes: tuple[int, ...], negate: bool) -> None:
    f = parse_exit_filter(text)
    assert (f.codes, f.negate) == (codes, negate)


def test_exit_filter_matching() -> None:
    assert ExitFilter((0,), True).matches(1) and not ExitFilter((0,), True).matches(0)
    assert not ExitFilter((0,), True).matches(None)  # an unfinished glidein has no exit code
    for bad in ("", "x", "1,,b", "!"):
        with pytest.raises(SearchSyntaxError):
            parse_exit_filter(bad)


# ----------------------------------------------------------------------------------
# times


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("-2h", NOW - 7200),
        ("now-30m", NOW - 1800),
        ("3d ago", NOW - 3 * 86400),
        ("1700000000", 1_700_000_000),
        ("1700000000123", 1_700_000_000),
        ("2024-05-01", epoch("2024-05-01T00:00:00")),
        ("2024-05-01T12:30", epoch("2024-05-01T12:30:00")),
        ("2024-05-01 12:30:05Z", epoch("2024-05-01T12:30:05")),
        ("2024-05-01T14:30:00+02:00", epoch("2024-05-01T12:30:00")),
    ],
)
def test_times(text: str, expected: int) -> None:
    assert parse_time(text, NOW) == expected


def test_a_bare_date_as_an_end_means_its_last_second() -> None:
    assert parse_time("2024-05-01", NOW, end=True) == epoch("2024-05-01T23:59:59")


@pytest.mark.parametrize("bad", ["", "yesterday-ish", "2024-13-01", "-2y"])
def test_bad_times(bad: str) -> None:
    with pytest.raises(SearchSyntaxError):
        parse_time(bad, NOW)


def test_time_ranges() -> None:
    day = (epoch("2024-05-01T00:00:00"), epoch("2024-05-01T23:59:59"))
    assert parse_time_range("2024-05-01", NOW) == day
    assert parse_time_range("2024-05-01..2024-05-01", NOW) == day
    assert parse_time_range("24h", NOW) == (NOW - 86400, NOW)
    assert parse_time_range("last 7d", NOW) == (NOW - 7 * 86400, NOW)
    assert parse_time_range("..2024-05-01", NOW) == (None, day[1])
    assert parse_time_range("-1h..", NOW) == (NOW - 3600, None)
    with pytest.raises(SearchSyntaxError, match="ends before it starts"):
        parse_time_range("2024-05-02..2024-05-01", NOW)


# ----------------------------------------------------------------------------------
# the query string


def test_fields_and_text_together() -> None:
    q = parse_query(
        'entry:CMS_T2 entry:"ATLAS X" user:fe_cms group:main job:job.12.3 job:99 '
        "uuid:ABC-DEF1 exit:!0 section:StarterLog* host:h-1 site:unl.edu "
        'finished:yes problems:no time:2024-05-01 "connection refused" timeout',
        now=NOW,
    )
    assert q.entries == ("CMS_T2", "ATLAS X")
    assert q.frontend_users == ("fe_cms",) and q.groups == ("main",)
    assert q.jobs == (JobRef(12, 3), JobRef(99, None))
    assert q.uuids == ("abc-def1",)
    assert q.exit == ExitFilter((0,), True)
    assert q.sections == ("StarterLog*",) and q.hosts == ("h-1",) and q.sites == ("unl.edu",)
    assert q.finished is True and q.problems is False
    assert (q.time_from, q.time_to) == (epoch("2024-05-01T00:00:00"), epoch("2024-05-01T23:59:59"))
    assert q.text == TextQuery(((Term(("connection", "refused")), Term(("timeout",))),))


def test_unknown_field_names_are_text() -> None:
    q = parse_query("12:34:56 http://example.org/x", now=NOW)
    assert q.entries == () and q.text is not None
    assert [t.words for t in q.text.terms] == [("12", "34", "56"), ("http", "example", "org", "x")]


def test_explicit_parameters_add_to_the_query_string() -> None:
    q = parse_query(
        "entry:A", now=NOW, params={"entry": ["B"], "job": "5.1", "exit": "0", "site": None}
    )
    assert q.entries == ("A", "B") and q.jobs == (JobRef(5, 1),) and q.exit == ExitFilter((0,))
    with pytest.raises(SearchSyntaxError, match="unknown search field"):
        parse_query("", now=NOW, params={"colour": "red"})
    with pytest.raises(SearchSyntaxError, match="needs a value"):
        parse_query("entry:", now=NOW)
    with pytest.raises(SearchSyntaxError, match="yes or no"):
        parse_query("finished:maybe", now=NOW)


def test_time_fields_narrow_each_other() -> None:
    q = parse_query("time:2024-05-01 from:2024-05-01T06:00 to:2024-05-01T07:00", now=NOW)
    assert (q.time_from, q.time_to) == (epoch("2024-05-01T06:00:00"), epoch("2024-05-01T07:00:00"))
    with pytest.raises(SearchSyntaxError):
        parse_query("from:2024-05-02 to:2024-05-01", now=NOW)


def test_text_syntax() -> None:
    q = parse_text_query('"connection refused" OR timeout* -debug NOT verbose AND x')
    assert q is not None
    assert q.groups == (
        (Term(("connection", "refused")),),
        (Term(("timeout",), prefix=True), Term(("x",))),
    )
    assert q.excluded == (Term(("debug",)), Term(("verbose",)))
    assert to_fts5(q) == (
        '((("connection refused") OR ("timeout" * AND "x")) NOT "debug") NOT "verbose"'
    )
    assert parse_text_query("=== ---- ...") is None  # nothing searchable
    with pytest.raises(SearchSyntaxError, match="only words to exclude"):
        parse_text_query("-debug")


def test_a_regex_is_checked_when_the_query_is_made() -> None:
    assert parse_query("", now=NOW, regex=r"slot\d+").regex == r"slot\d+"
    with pytest.raises(SearchSyntaxError, match="bad regular expression"):
        parse_query("", now=NOW, regex="(unclosed")
    with pytest.raises(SearchSyntaxError, match="too long"):
        compile_regex("a" * 5000)


# any text a user types becomes an FTS5 expression SQLite accepts, or no text query
FTS = sqlite3.connect(":memory:")
FTS.execute("CREATE VIRTUAL TABLE t USING fts5(body, tokenize='unicode61 remove_diacritics 0')")
FTS.executemany(
    "INSERT INTO t(body) VALUES (?)",
    [
        ("Connection refused by wn001.unl.edu",),
        ("slot1_1: Changing activity: Idle -> Busy",),
        ('NOT AND OR near * " ( ) : ^ -',),
    ],
)

_typed = st.text(
    alphabet=st.sampled_from(list("abcxyz019 \"-*():^.'_éOR AND NOT NEAR{}+")), max_size=40
)


@settings(max_examples=300, deadline=None)
@given(_typed)
def test_any_typed_text_is_a_valid_fts5_query(text: str) -> None:
    try:
        q = parse_text_query(text)
    except SearchSyntaxError:
        return
    if q is None:
        return
    FTS.execute("SELECT rowid FROM t WHERE t MATCH ?", (to_fts5(q),)).fetchall()


_words = st.lists(
    st.sampled_from(["alpha", "beta", "gamma", "delta", "slot1", "1", "x9"]), min_size=1, max_size=8
)
_seps = st.sampled_from([" ", "_", ".", ": ", " -> ", "/", "\t", "=", "(", "\n"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_words, _seps), min_size=1, max_size=6), _words, st.booleans())
def test_highlighting_finds_what_fts5_finds(
    docs: list[tuple[list[str], str]], words: list[str], prefix: bool
) -> None:
    """A text matches the FTS5 phrase exactly when the highlight pattern finds it."""
    term = Term(tuple(words[:3]), prefix=prefix)
    pattern = term_pattern([term])
    assert pattern is not None
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(body, tokenize='unicode61 remove_diacritics 0')")
    texts = [sep.join(ws) for ws, sep in docs]
    db.executemany("INSERT INTO t(rowid, body) VALUES (?, ?)", list(enumerate(texts, 1)))
    fts = {
        r
        for (r,) in db.execute(
            "SELECT rowid FROM t WHERE t MATCH ?", (to_fts5(TextQuery(((term,),))),)
        )
    }
    found = {i for i, t in enumerate(texts, 1) if pattern.search(t)}
    assert fts == found


# ----------------------------------------------------------------------------------
# hits and lines


def test_hits_with_numbers_spans_and_context() -> None:
    text = "one\ntwo alpha\nthree\nfour alpha beta alpha\nfive\nsix\n"
    found = find_hits(text, re.compile("alpha"), context=1, max_hits=5)
    assert found.lines == 2 and not found.capped
    first, second = found.hits
    assert (first.number, first.text, first.spans) == (2, "two alpha", ((4, 9),))
    assert [(line.number, line.text) for line in first.before] == [(1, "one")]
    assert [(line.number, line.text) for line in first.after] == [(3, "three")]
    assert second.number == 4 and second.spans == ((5, 10), (16, 21))
    assert [line.number for line in second.after] == [5]


def test_hits_are_capped_and_empty_matches_are_not_hits() -> None:
    text = "x\n" * 50
    found = find_hits(text, re.compile("x"), max_hits=3, count_limit=10)
    assert len(found.hits) == 3 and found.lines == 10 and found.capped
    assert find_hits("abc\ndef\n", re.compile("z*")).lines == 0
    assert find_hits("abc\nzz\n", re.compile("z*")).hits[0].number == 2


def test_a_very_long_line_is_clipped_around_the_match() -> None:
    line = "a" * 20_000 + "NEEDLE" + "b" * 20_000
    (hit,) = find_hits(line, re.compile("NEEDLE")).hits
    assert hit.clipped and len(hit.text) <= 4000
    start, end = hit.spans[0]
    assert hit.text[start:end] == "NEEDLE" and hit.offset + start == 20_000


_line = st.text(alphabet=st.sampled_from(list("ab \r")), max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.lists(_line, max_size=30), st.booleans(), st.integers(0, 3))
def test_hit_line_numbers_agree_with_splitting(
    lines: list[str], trailing: bool, context: int
) -> None:
    text = "\n".join(lines) + ("\n" if trailing and lines else "")
    pattern = re.compile("ab")
    found = find_hits(text, pattern, context=context, max_hits=1000)
    all_lines, total = slice_lines(text)
    expected = [line for line in all_lines if pattern.search(line.text)]
    assert [h.number for h in found.hits] == [line.number for line in expected]
    assert [h.text for h in found.hits] == [line.text for line in expected]
    assert total == count_lines(text)
    for h in found.hits:
        assert [c.number for c in h.before] == list(range(max(1, h.number - context), h.number))
        assert [c.number for c in h.after] == list(
            range(h.number + 1, min(total, h.number + context) + 1)
        )
        for c in (*h.before, *h.after):
            assert c.text == all_lines[c.number - 1].text


def test_slices_of_lines() -> None:
    lines, total = slice_lines("a\r\nb\n\nc", 2, 10)
    assert total == 4 and [(x.number, x.text) for x in lines] == [(2, "b"), (3, ""), (4, "c")]
    assert slice_lines("", 1, 5) == ([], 0)
    assert slice_lines("a\nb\n", 5, 9) == ([], 2)


# ----------------------------------------------------------------------------------
# cursors and histograms


@given(st.integers(0, 2**63 - 1))
def test_cursors_round_trip_and_belong_to_their_query(key: int) -> None:
    a = parse_query("entry:A", now=NOW)
    b = parse_query("entry:B", now=NOW)
    cursor = encode_cursor(key, a.fingerprint("desc"))
    assert decode_cursor(cursor, a.fingerprint("desc")) == key
    with pytest.raises(SearchSyntaxError, match="another search"):
        decode_cursor(cursor, b.fingerprint("desc"))
    with pytest.raises(SearchSyntaxError, match="another search"):
        decode_cursor(cursor, a.fingerprint("asc"))


def test_garbage_cursors_are_refused() -> None:
    for bad in ("", "!!!", "bm90IGEgY3Vyc29y"):
        with pytest.raises(SearchSyntaxError):
            decode_cursor(bad, "x")


def test_the_fingerprint_ignores_how_the_query_was_spelled() -> None:
    a = parse_query("entry:A job:1.0 timeout", now=NOW)
    b = parse_query("timeout", now=NOW, params={"entry": "A", "job": "job.1.0"})
    assert a.fingerprint() == b.fingerprint()


@given(st.integers(0, 10**9), st.integers(1, 500))
def test_buckets_fit_and_are_the_smallest_round_width(span: int, max_buckets: int) -> None:
    width = choose_bucket(span, max_buckets)
    assert width >= 1 and -(-span // width) <= max_buckets
    smaller = [w for w in (1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600) if w < width]
    for w in smaller:
        assert -(-span // w) > max_buckets


@given(st.dictionaries(st.integers(0, 200), st.integers(1, 50), max_size=20), st.integers(1, 100))
def test_filling_a_histogram_keeps_every_count(counts: dict[int, int], bucket: int) -> None:
    assume(bucket > 0)
    lo, hi = 50 * bucket, 120 * bucket
    filled = fill_histogram(counts, bucket, lo, hi)
    assert sum(n for _s, n in filled) == sum(counts.values())
    starts = [s for s, _n in filled]
    assert starts == sorted(starts) and all(b - a == bucket for a, b in pairwise(starts))
    assert starts[0] <= lo and starts[-1] >= hi // bucket * bucket
