"""Run a :class:`~gwms.monitor.search.SearchQuery` against a :class:`~gwms.monitor.index.LogIndex`.

The index does the column filters and the full text (FTS5); this module adds what the
index does not: the regular expression (Python :mod:`re`, per line, over the candidate
rows the index returns, within a budget of rows, bytes and seconds), the hit lines with
their context, the cursor of the next page, the total and the time histogram.

Pages are keyset pages: a cursor holds the last key of a page (bound to its query), so
there is no row cap and no ``OFFSET`` scan however deep one pages. A regex page that
runs out of budget before it is full still returns its cursor, with ``complete`` false:
the caller asks again to scan on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from gwms.errors import GwmsError
from gwms.monitor.index import TIME_SHIFT, IndexRow, JobRow, LogIndex, SectionInfo
from gwms.monitor.search import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Hit,
    Order,
    SearchQuery,
    SearchSyntaxError,
    choose_bucket,
    decode_cursor,
    encode_cursor,
    fill_histogram,
    find_hits,
    parse_job_ref,
)

__all__ = [
    "AmbiguousJob",
    "Histogram",
    "JobNotFound",
    "ResultRow",
    "SearchPage",
    "Searcher",
    "resolve_job",
]


class JobNotFound(GwmsError):
    """No indexed job has the id, factory job id or uuid given."""

    http_status = 404
    error_code = "job_not_found"


class AmbiguousJob(GwmsError):
    """Several jobs have the factory job id or uuid given (``candidates`` lists them)."""

    http_status = 409
    error_code = "ambiguous_job"

    def __init__(self, message: str, candidates: list[JobRow]) -> None:
        super().__init__(message)
        self.candidates = candidates


def resolve_job(index: LogIndex, ref: str) -> JobRow:
    """The one job ``ref`` names: its id (as results give it), ``job.C.P`` / ``C.P`` /
    ``C`` when one job has it, or a glidein uuid."""
    text = ref.strip()
    if text.isdigit() and int(text) >= 1 << 32:  # ids are far above any cluster number
        job = index.job(int(text))
        if job is not None:
            return job
    candidates: list[JobRow]
    if "-" in text and len(text) >= 8:
        candidates = index.jobs_by_uuid(text.lower())
    else:
        try:
            candidates = index.jobs_by_ref(parse_job_ref(text))
        except SearchSyntaxError:
            raise JobNotFound(f"no job {ref!r}") from None
    if not candidates:
        raise JobNotFound(f"no job {ref!r}")
    if len(candidates) > 1:
        shown = ", ".join(f"{j.id} ({j.info.path})" for j in candidates[:5])
        more = f" and {len(candidates) - 5} more" if len(candidates) > 5 else ""
        raise AmbiguousJob(
            f"{len(candidates)} jobs match {ref!r}: {shown}{more}; name one by its id", candidates
        )
    return candidates[0]


@dataclass(frozen=True)
class ResultRow:
    """One result: a job, or one section of a job with its hit lines."""

    key: int
    job: JobRow
    section: SectionInfo | None = None
    hits: tuple[Hit, ...] = ()
    hit_lines: int = 0
    hits_capped: bool = False


@dataclass(frozen=True)
class Histogram:
    """Result counts per bucket of job start time: ``(bucket start epoch, count)``."""

    bucket_seconds: int
    buckets: tuple[tuple[int, int], ...]


@dataclass
class SearchPage:
    """One page of results.

    ``next_cursor`` is None on the last page. ``total`` counts every result (None when
    not asked for, when counting ran out of time, or when a regex could not be checked
    over all candidates within the budget); ``total_capped`` means at least that many. ``complete`` is false when a
    regex scan stopped on its budget before filling the page. ``histogram`` is None when
    not asked for, or when counting took longer than its budget (narrow the search).
    """

    rows: list[ResultRow] = field(default_factory=list)
    next_cursor: str | None = None
    total: int | None = None
    total_capped: bool = False
    histogram: Histogram | None = None
    complete: bool = True
    scanned: int = 0
    unit: str = "jobs"


class Searcher:
    """Searches one index.

    Args:
        index: the store.
        count_cap: totals are counted up to this many results (as Elasticsearch's
            ``track_total_hits``: beyond it, "at least")
        count_seconds: the time counting the total may take (beyond it, none is given).
        histogram_seconds: the time a histogram may take (beyond it, none is given).
        regex_rows: sections a regex search may scan per request.
        regex_bytes: bytes of text a regex search may scan per request.
        regex_seconds: time a regex search may spend per request.
        max_buckets: bars of a histogram at most.
    """

    def __init__(
        self,
        index: LogIndex,
        *,
        count_cap: int = 10_000,
        count_seconds: float = 2.0,
        histogram_seconds: float = 2.0,
        regex_rows: int = 20_000,
        regex_bytes: int = 256 * 1024 * 1024,
        regex_seconds: float = 2.0,
        max_buckets: int = 60,
    ) -> None:
        self.index = index
        self.count_cap = count_cap
        self.count_seconds = count_seconds
        self.histogram_seconds = histogram_seconds
        self.regex_rows = regex_rows
        self.regex_bytes = regex_bytes
        self.regex_seconds = regex_seconds
        self.max_buckets = max_buckets

    def search(
        self,
        query: SearchQuery,
        *,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
        order: Order = "desc",
        context: int = 2,
        max_hits: int = 5,
        anonymized_only: bool = False,
        with_total: bool = True,
        with_histogram: bool = False,
    ) -> SearchPage:
        """One page of results for ``query`` after ``cursor``."""
        if not 1 <= limit <= MAX_LIMIT:
            raise SearchSyntaxError(f"limit must be between 1 and {MAX_LIMIT}")
        if order not in ("asc", "desc"):
            raise SearchSyntaxError("order must be asc or desc")
        context = max(0, min(context, 50))
        max_hits = max(0, min(max_hits, 100))
        fingerprint = query.fingerprint(order)
        after = decode_cursor(cursor, fingerprint) if cursor else None
        if query.regex is not None:
            page = self._regex_page(
                query,
                after,
                order,
                limit,
                context,
                max_hits,
                anonymized_only,
                fingerprint,
                with_total and after is None,
                with_histogram and after is None,
            )
        else:
            page = self._index_page(
                query, after, order, limit, context, max_hits, anonymized_only, fingerprint
            )
            if with_total:
                n = self.index.count(
                    query,
                    cap=self.count_cap + 1,
                    anonymized_only=anonymized_only,
                    timeout=self.count_seconds,
                )
                if n is not None:
                    page.total = min(n, self.count_cap)
                    page.total_capped = n > self.count_cap
            if with_histogram:
                page.histogram = self._histogram(query, anonymized_only)
        page.unit = "sections" if (query.has_text or query.sections) else "jobs"
        return page

    # -- pages ---------------------------------------------------------------------
    def _index_page(
        self,
        query: SearchQuery,
        after: int | None,
        order: Order,
        limit: int,
        context: int,
        max_hits: int,
        anonymized_only: bool,
        fingerprint: str,
    ) -> SearchPage:
        rows = self.index.rows(
            query, after=after, order=order, limit=limit + 1, anonymized_only=anonymized_only
        )
        more = len(rows) > limit
        rows = rows[:limit]
        page = SearchPage(scanned=len(rows))
        pattern = query.pattern() if query.text is not None else None
        texts: dict[int, str] = {}
        if pattern is not None and max_hits > 0:
            texts = self.index.section_texts([r.section.id for r in rows if r.section is not None])
        for r in rows:
            page.rows.append(self._result(r, pattern, texts, context, max_hits))
        if more and rows:
            page.next_cursor = encode_cursor(rows[-1].key, fingerprint)
        return page

    @staticmethod
    def _result(row: IndexRow, pattern, texts, context: int, max_hits: int) -> ResultRow:  # type: ignore[no-untyped-def]
        if pattern is None or row.section is None or row.section.id not in texts:
            return ResultRow(row.key, row.job, row.section)
        found = find_hits(texts[row.section.id], pattern, context=context, max_hits=max_hits)
        return ResultRow(row.key, row.job, row.section, found.hits, found.lines, found.capped)

    def _regex_page(
        self,
        query: SearchQuery,
        after: int | None,
        order: Order,
        limit: int,
        context: int,
        max_hits: int,
        anonymized_only: bool,
        fingerprint: str,
        want_total: bool,
        want_histogram: bool,
    ) -> SearchPage:
        pattern = query.pattern()
        assert pattern is not None
        page = SearchPage()
        deadline = time.monotonic() + self.regex_seconds
        scanned_bytes = 0
        position = after
        counting = want_total or want_histogram
        matched: list[int] = []  # keys of every match seen (for a total of a whole scan)
        more_matches = False  # a match beyond the page was seen
        exhausted = out_of_budget = False
        last_scanned: int | None = None
        batch = 200
        while not (exhausted or out_of_budget or (more_matches and not counting)):
            rows = self.index.rows(
                query, after=position, order=order, limit=batch, anonymized_only=anonymized_only
            )
            ids = [r.section.id for r in rows if r.section is not None]
            texts = self.index.section_texts(ids) if ids else {}
            for r in rows:
                text = texts.get(r.section.id, "") if r.section is not None else ""
                found = find_hits(text, pattern, context=context, max_hits=max_hits)
                page.scanned += 1
                scanned_bytes += len(text)
                last_scanned = r.key
                if found.lines:
                    matched.append(r.key)
                    if len(page.rows) < limit:
                        page.rows.append(
                            ResultRow(
                                r.key, r.job, r.section, found.hits, found.lines, found.capped
                            )
                        )
                    else:
                        more_matches = True
                        if not counting:
                            break
                if (
                    page.scanned >= self.regex_rows
                    or scanned_bytes >= self.regex_bytes
                    or time.monotonic() > deadline
                ):
                    out_of_budget = True
                    break
            if len(rows) < batch and not (out_of_budget or (more_matches and not counting)):
                exhausted = True
            position = rows[-1].key if rows else position
        page_full = len(page.rows) == limit
        if page_full and (more_matches or not exhausted):
            page.next_cursor = encode_cursor(page.rows[-1].key, fingerprint)
        elif not page_full and out_of_budget and last_scanned is not None:
            page.next_cursor = encode_cursor(last_scanned, fingerprint)
            page.complete = False
        if counting and exhausted:
            if want_total:
                page.total = len(matched)
            if want_histogram:
                page.histogram = self._counted_histogram(query, [k >> TIME_SHIFT for k in matched])
        return page

    def _counted_histogram(self, query: SearchQuery, epochs: list[int]) -> Histogram:
        if not epochs:
            return Histogram(choose_bucket(0, self.max_buckets), ())
        lo = query.time_from if query.time_from is not None else min(epochs)
        hi = query.time_to if query.time_to is not None else max(epochs)
        bucket = choose_bucket(max(0, hi - lo), self.max_buckets)
        counts: dict[int, int] = {}
        for e in epochs:
            counts[e // bucket] = counts.get(e // bucket, 0) + 1
        return Histogram(bucket, tuple(fill_histogram(counts, bucket, lo, hi)))

    def _histogram(self, query: SearchQuery, anonymized_only: bool) -> Histogram | None:
        lo, hi = query.time_from, query.time_to
        if lo is None or hi is None:
            bounds = self.index.time_bounds(query, anonymized_only=anonymized_only)
            if bounds is None:
                return Histogram(choose_bucket(0, self.max_buckets), ())
            lo = bounds[0] if lo is None else lo
            hi = bounds[1] if hi is None else hi
        bucket = choose_bucket(max(0, hi - lo), self.max_buckets)
        counts = self.index.histogram(
            query, bucket, anonymized_only=anonymized_only, timeout=self.histogram_seconds
        )
        if counts is None:
            return None
        return Histogram(bucket, tuple(fill_histogram(counts, bucket, lo, hi)))
