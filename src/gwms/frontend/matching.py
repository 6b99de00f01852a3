"""Matching idle jobs to factory entries, and counting them per entry (pure, fast).

This is the original's ``countMatch``: for one group and one cycle, given the jobs of
the user schedds and the factory entries, how many jobs could run at each entry.

Pipeline (:func:`match_jobs` runs all of it)::

    clusters = cluster_jobs(jobs_by_schedd, policy, now=now, excluded_schedds=...)
    cluster_entries, errors = match_clusters(clusters, entries, policy)
    counts = count_matches(clusters, cluster_entries, entries)   # {job class: ClassCounts}

1. **Clusters** (:func:`cluster_jobs`). Jobs with the same values of the attributes the
   match reads are equivalent, so one job per cluster is evaluated. When static analysis
   finds every job attribute ``match_expr`` and ``start_expr`` read (constant keys,
   :attr:`MatchPolicy.key_attrs`), clusters are keyed by exactly those, which makes one
   evaluation per cluster exact even if ``match_attrs`` forgot one; otherwise (``job``
   used in ways analysis cannot follow) they are keyed by ``match_attrs``, as in the
   original, and the first job of each cluster stands for all. Each cluster counts its
   jobs, and their requested CPUs (summed job by job, not first job × size), per job
   class (:mod:`gwms.frontend.classify`: Idle, OldIdle, Idle_3600, Running); idle jobs of
   ``excluded_schedds`` (saturated ones) count in no idle class.

2. **Match** (:func:`match_clusters`): ``match_expr`` (see :mod:`gwms.frontend.matchexpr`)
   AND the ClassAd ``start_expr`` evaluated with MY = the entry's attributes and TARGET
   = the job. The frontend does not have the slot's own attributes (Memory, Cpus...), so
   a ``start_expr`` that evaluates to UNDEFINED counts as a match (the glidein's START
   decides at run time); false, error or anything else is no match. Evaluation errors of
   ``match_expr`` are no match (counted in ``errors``).

3. **Counts** (:func:`count_matches`), per job class and entry, as in the original:

   - ``count``: jobs matching the entry;
   - ``prop``: unique-set proportional share: jobs are grouped by the exact set of
     entries they match; a set of n jobs matching k entries gives n/k to each; ``prop``
     is the ceiling of the sum;
   - ``hereonly``: jobs matching only this entry;
   - ``prop_mc``: glideins after CPU scaling,
     ``ceil(cpus * prop / count / (GLIDEIN_CPUS * GLIDEIN_NODES))`` with ``cpus`` the
     requested CPUs of the matching jobs and ``prop`` before rounding; GLIDEIN_CPUS
     ``auto``/``node``/``slot`` means GLIDEIN_ESTIMATED_CPUS if the entry publishes it,
     else 1;
   - ``unmatched``: jobs matching no entry (the original's ``(None, None, None)`` key,
     ``UNMATCHED`` in :meth:`ClassCounts.as_dict`).

   gwms sums the n/k shares exactly (integers over a common denominator) before the
   ceiling. The original sums floats, so a share that is an exact integer can come out
   as 160.00000000000003 and its ceiling one too high: on the reference workload
   (``shared/fixtures/frontend-matching``, 10,000 jobs × 100 entries) gwms reproduces
   ``count``, ``hereonly`` and ``prop_mc`` exactly, and ``prop`` for 98 of 100 entries;
   for the other two (exact shares 160 and 215) the original says 161 and 216, so its
   ``prop`` total is 2 higher. The exact sum of the shares equals the matched jobs,
   9,340, in both. The glidein requests use ``prop_mc`` and agree everywhere.

Speed: clustering uses C-level counting (``Counter`` over ``itemgetter`` keys) in chunks,
falling back to a per-job loop for a chunk with missing or unusual attributes; matching
evaluates each cluster against all entries in one generated comprehension with hoisted
sub-expressions and an index on the site-style conjunct (see
:meth:`gwms.frontend.matchexpr.MatchExpr.bind`); counting works on unique sets with
C-level sums. ``benchmarks/bench_frontend.py`` measures 1M idle jobs in 10k clusters ×
1,000 entries.

Entries: :class:`Entry` holds the dict ``match_expr`` sees as ``glidein``
(``{"attrs", "params", "monitor"}``); :func:`entry_from_factory_ad` builds it from a
``glidefactory`` ad (``GlideinParamX`` -> params, ``GlideinMonitorX`` -> monitor, the rest
-> attrs, all case-blind).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from operator import itemgetter
from typing import Any

from gwms.classads import UNDEFINED, Expr, evaluate, parse_expr, references
from gwms.classads.operators import is_true
from gwms.frontend import adnames as N
from gwms.frontend.classify import (
    IDLE,
    IDLE_3600,
    IDLE_3600_AGE,
    JOB_CLASSES,
    OLD_IDLE,
    OLD_IDLE_AGE,
    RUNNING,
    ad_value,
)
from gwms.frontend.matchexpr import MatchExpr, combine_match_exprs, compile_match_expr

__all__ = [
    "UNMATCHED",
    "CaseBlindDict",
    "ClassCounts",
    "Entry",
    "JobClusters",
    "MatchPolicy",
    "MatchResult",
    "cluster_jobs",
    "count_matches",
    "entry_from_factory_ad",
    "glidein_cpus",
    "match_clusters",
    "match_jobs",
]

#: The key of jobs matching no entry in :meth:`ClassCounts.as_dict`.
UNMATCHED = "UNMATCHED"

#: Jobs per chunk of the C-level clustering.
_CHUNK = 1 << 16

_MISSING: Any = object()


class CaseBlindDict(dict):  # type: ignore[type-arg]
    """A dict whose string keys are also found case-blind (``d["requestmemory"]``).

    Exact spellings are found first; the lower-case index is built on first need.
    """

    __slots__ = ("_lower",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lower: dict[str, Any] | None = None

    def _fold(self, key: Any) -> Any:
        if not isinstance(key, str):
            return _MISSING
        if self._lower is None:
            self._lower = {k.lower(): k for k in self if isinstance(k, str)}
        real = self._lower.get(key.lower(), _MISSING)
        return real

    def __getitem__(self, key: Any) -> Any:
        try:
            return dict.__getitem__(self, key)
        except KeyError:
            real = self._fold(key)
            if real is _MISSING:
                raise
            return dict.__getitem__(self, real)

    def get(self, key: Any, default: Any = None) -> Any:
        """``self[key]`` (case-blind), or ``default``."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or self._fold(key) is not _MISSING

    def __setitem__(self, key: Any, value: Any) -> None:
        self._lower = None
        dict.__setitem__(self, key, value)


# ------------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class Entry:
    """One factory entry as a group sees it.

    ``key`` is unique among the entries of a cycle (the original's ``factory_pool |
    entry@glidein@factory | my identity``); ``name`` the request name
    ``entry@glidein@factory`` slots report; ``glidein`` the dict match_expr reads.
    """

    key: str
    name: str
    glidein: Mapping[str, Any]

    @property
    def attrs(self) -> Mapping[str, Any]:
        """The entry's published attributes."""
        return self.glidein.get("attrs", {})


def entry_from_factory_ad(
    ad: Mapping[str, Any], *, factory_pool: str, my_identity: str
) -> Entry:
    """An :class:`Entry` from a ``glidefactory`` ad (JSON form) found at ``factory_pool``."""
    attrs = CaseBlindDict()
    params = CaseBlindDict()
    monitor = CaseBlindDict()
    for key, value in ad.items():
        if key.startswith(N.ENTRY_PARAM_PREFIX) and len(key) > len(N.ENTRY_PARAM_PREFIX):
            params[key[len(N.ENTRY_PARAM_PREFIX):]] = value
        elif key.startswith(N.ENTRY_MONITOR_PREFIX) and len(key) > len(N.ENTRY_MONITOR_PREFIX):
            monitor[key[len(N.ENTRY_MONITOR_PREFIX):]] = value
        else:
            attrs[key] = value
    name = str(ad_value(ad, N.NAME, ""))
    glidein = {"attrs": attrs, "params": params, "monitor": monitor}
    return Entry(key=f"{factory_pool}|{name}|{my_identity}", name=name, glidein=glidein)


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and value >= 1:
        return int(value)
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            return None
        return number if number >= 1 else None
    return None


def glidein_cpus(entry: Entry) -> int:
    """CPUs of one glidein of the entry: GLIDEIN_CPUS × GLIDEIN_NODES (at least 1).

    GLIDEIN_CPUS ``auto``, ``node`` or ``slot`` (known only on the worker node) counts as
    GLIDEIN_ESTIMATED_CPUS when the entry publishes it, else 1.
    """
    attrs = entry.attrs
    cpus = _positive_int(ad_value(attrs, N.GLIDEIN_CPUS, 1))
    if cpus is None:
        cpus = _positive_int(ad_value(attrs, N.GLIDEIN_ESTIMATED_CPUS, 1)) or 1
    nodes = _positive_int(ad_value(attrs, N.GLIDEIN_NODES, 1)) or 1
    return cpus * nodes


# ------------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class MatchPolicy:
    """How one group matches jobs to entries.

    ``start_expr`` None means true (not evaluated). ``attr_dict`` is what match_expr
    sees as ``attr_dict`` (the frontend's constant attributes).
    """

    match_expr: MatchExpr
    start_expr: Expr | None = None
    match_attrs: tuple[str, ...] = ()
    attr_dict: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_texts(
        cls,
        match_expr: str | Sequence[str] = "True",
        start_expr: str | Sequence[str] = "True",
        match_attrs: Iterable[str] = (),
        attr_dict: Mapping[str, Any] | None = None,
    ) -> MatchPolicy:
        """A policy from expression texts; sequences are ANDed (frontend's, then group's)."""
        exprs = [match_expr] if isinstance(match_expr, str) else list(match_expr)
        combined = combine_match_exprs(compile_match_expr(e) for e in exprs)
        starts = [start_expr] if isinstance(start_expr, str) else list(start_expr)
        starts = [s for s in starts if s.strip().lower() not in ("", "true")]
        start = None
        if starts:
            start = parse_expr(" && ".join(f"({s})" for s in starts) if len(starts) > 1 else starts[0])
        attrs: list[str] = []
        for name in match_attrs:
            if name.lower() not in {a.lower() for a in attrs}:
                attrs.append(name)
        return cls(combined, start, tuple(attrs), dict(attr_dict or {}))

    @property
    def start_job_refs(self) -> tuple[str, ...]:
        """Job attributes start_expr may read (TARGET. and bare names), lower-cased."""
        if self.start_expr is None:
            return ()
        refs = references(self.start_expr)
        return tuple(sorted(refs.target | refs.bare))

    @property
    def static(self) -> bool:
        """Whether clusters can be keyed by the attributes the expressions read."""
        return self.match_expr.job_reads is not None

    @property
    def key_attrs(self) -> tuple[str, ...]:
        """The job attributes clusters are keyed by (see the module docstring)."""
        names: list[str] = []
        seen: set[str] = set()
        reads = self.match_expr.job_reads
        first = sorted(reads) if reads is not None else list(self.match_attrs)
        for name in [*first, *self.start_job_refs]:
            if name.lower() not in seen:
                seen.add(name.lower())
                names.append(name)
        return tuple(names)


# ------------------------------------------------------------------------------- clusters


@dataclass
class JobClusters:
    """Jobs grouped into clusters: per cluster a representative job (what the
    expressions see) and, per job class, the number of jobs and of CPUs they request."""

    key_attrs: tuple[str, ...]
    representatives: list[Mapping[str, Any]] = field(default_factory=list)
    counts: dict[str, list[int]] = field(default_factory=lambda: {c: [] for c in JOB_CLASSES})
    cpus: dict[str, list[int]] = field(default_factory=lambda: {c: [] for c in JOB_CLASSES})
    #: idle jobs of excluded (saturated) schedds, counted in no class
    excluded_idle: int = 0
    #: jobs looked at (any status)
    jobs_seen: int = 0

    def __len__(self) -> int:
        return len(self.representatives)

    def total(self, job_class: str) -> int:
        """Jobs of one class over all clusters."""
        return sum(self.counts[job_class])


def _freeze(value: Any) -> Any:
    """A hashable stand-in for a JSON value (lists and dicts become tuples)."""
    if isinstance(value, list):
        return ("\x00list", tuple(_freeze(v) for v in value))
    if isinstance(value, dict):
        return ("\x00dict", tuple(sorted((str(k), _freeze(v)) for k, v in value.items())))
    return value


def _cpus(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 1
    return max(math.ceil(value), 0)


class _Accumulator:
    """Per cluster key: the first values seen, and per-class job and CPU counts."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.index: dict[Any, int] = {}
        self.values: list[tuple[Any, ...] | Mapping[str, Any]] = []
        self.counts: dict[str, list[int]] = {c: [] for c in JOB_CLASSES}
        self.cpus: dict[str, list[int]] = {c: [] for c in JOB_CLASSES}

    def slot(self, key: Any, values: Any) -> int:
        position = self.index.get(key)
        if position is None:
            position = self.index[key] = len(self.values)
            self.values.append(values)
            for job_class in JOB_CLASSES:
                self.counts[job_class].append(0)
                self.cpus[job_class].append(0)
        return position

    def add(self, position: int, job_class: str, jobs: int, cpus: int) -> None:
        self.counts[job_class][position] += jobs
        self.cpus[job_class][position] += cpus


def _job_key(job: Mapping[str, Any], names: tuple[str, ...]) -> tuple[Any, tuple[Any, ...]]:
    """(hashable key, original values) of one job, case-blind, _MISSING for absent."""
    values = []
    for name in names:
        value = job.get(name, _MISSING)
        if value is _MISSING:
            value = ad_value(job, name, _MISSING)
        values.append(value)
    raw = tuple(values)
    try:
        hash(raw)
        return raw, raw
    except TypeError:
        return tuple(_freeze(v) for v in raw), raw


def _classes_of(status: Any, entered: Any, now: float, idle_ok: bool) -> tuple[str, ...]:
    if status == N.JOB_RUNNING:
        return (RUNNING,)
    if status != N.JOB_IDLE or not idle_ok:
        return ()
    age = now - (entered if isinstance(entered, (int, float)) and not isinstance(entered, bool) else now)
    if age >= IDLE_3600_AGE:
        return (IDLE, OLD_IDLE, IDLE_3600)
    if age >= OLD_IDLE_AGE:
        return (IDLE, OLD_IDLE)
    return (IDLE,)


def _add_slow(
    acc: _Accumulator,
    jobs: Iterable[Mapping[str, Any]],
    now: float,
    idle_ok: bool,
    keep_job: bool,
) -> int:
    """Per-job clustering (any attributes, any case); returns excluded idle jobs."""
    excluded = 0
    names = acc.names
    for job in jobs:
        status = ad_value(job, N.JOB_STATUS)
        if status == N.JOB_IDLE and not idle_ok:
            excluded += 1
            continue
        classes = _classes_of(status, ad_value(job, N.ENTERED_CURRENT_STATUS), now, idle_ok)
        if not classes:
            continue
        key, raw = _job_key(job, names)
        position = acc.slot(key, job if keep_job else raw)
        cpus = _cpus(ad_value(job, N.REQUEST_CPUS, 1))
        for job_class in classes:
            acc.add(position, job_class, 1, cpus)
    return excluded


def _add_fast(
    acc: _Accumulator, chunk: list[Mapping[str, Any]], now: float, idle_ok: bool
) -> int | None:
    """C-level clustering of one chunk; None when a job lacks an exact-case attribute or
    holds an unhashable or non-numeric value (the caller then uses :func:`_add_slow`)."""
    names = acc.names
    getter = itemgetter(N.JOB_STATUS, N.REQUEST_CPUS, *names)
    entered = itemgetter(N.ENTERED_CURRENT_STATUS)
    try:
        counted = Counter(map(getter, chunk))  # raises on a missing or unhashable value
        times = list(map(entered, chunk))
        low, high = min(times), max(times)
    except (KeyError, TypeError, ValueError):
        return None
    if low.__class__ not in (int, float) or high.__class__ not in (int, float):
        return None
    old_600 = now - OLD_IDLE_AGE
    old_3600 = now - IDLE_3600_AGE
    all_old = high <= old_3600  # the usual case for a long queue: no per-job work
    c600: Counter[Any] = Counter()
    c3600: Counter[Any] = Counter()
    if not all_old and low <= old_600:
        try:
            olds = [job for job, t in zip(chunk, times) if t <= old_600]
            c600 = Counter(map(getter, olds))
            if low <= old_3600:
                c3600 = Counter(map(getter, [job for job, t in zip(chunk, times) if t <= old_3600]))
        except TypeError:
            return None
    excluded = 0
    for key, n in counted.items():
        status = key[0]
        if status == N.JOB_IDLE:
            if not idle_ok:
                excluded += n
                continue
            classes = (IDLE,)
        elif status == N.JOB_RUNNING:
            classes = (RUNNING,)
        else:
            continue
        values = key[2:]
        position = acc.slot(values, values)
        cpus = _cpus(key[1])
        for job_class in classes:
            acc.add(position, job_class, n, n * cpus)
        if status == N.JOB_IDLE:
            n600 = n if all_old else c600.get(key, 0)
            n3600 = n if all_old else c3600.get(key, 0)
            if n600:
                acc.add(position, OLD_IDLE, n600, n600 * cpus)
            if n3600:
                acc.add(position, IDLE_3600, n3600, n3600 * cpus)
    return excluded


def cluster_jobs(
    jobs_by_schedd: Mapping[str, Iterable[Mapping[str, Any]]],
    policy: MatchPolicy | Sequence[str],
    *,
    now: float,
    excluded_schedds: Iterable[str] = (),
) -> JobClusters:
    """Group jobs into clusters and count them per class (see the module docstring).

    ``policy`` gives the key attributes (:attr:`MatchPolicy.key_attrs`); a plain list of
    attribute names clusters by those with the first job of each cluster as its
    representative. ``now`` is the time job ages are measured at (the schedds' clock).
    """
    if isinstance(policy, MatchPolicy):
        names = policy.key_attrs
        static = policy.static
    else:
        names = tuple(policy)
        static = False
    excluded = set(excluded_schedds)
    acc = _Accumulator(names)
    result = JobClusters(key_attrs=names)
    seen = 0
    for schedd, jobs in jobs_by_schedd.items():
        job_list = jobs if isinstance(jobs, list) else list(jobs)
        seen += len(job_list)
        idle_ok = schedd not in excluded
        if not static:
            result.excluded_idle += _add_slow(acc, job_list, now, idle_ok, keep_job=True)
            continue
        for start in range(0, len(job_list), _CHUNK):
            chunk = job_list[start : start + _CHUNK]
            done = _add_fast(acc, chunk, now, idle_ok)
            if done is None:
                done = _add_slow(acc, chunk, now, idle_ok, keep_job=False)
            result.excluded_idle += done
    result.jobs_seen = seen
    for values in acc.values:
        if static:
            result.representatives.append(
                CaseBlindDict((n, v) for n, v in zip(names, values) if v is not _MISSING)  # type: ignore[arg-type]
            )
        else:
            result.representatives.append(CaseBlindDict(values))  # type: ignore[arg-type]
    result.counts = acc.counts
    result.cpus = acc.cpus
    return result


# ------------------------------------------------------------------------------- matching


def _start_filter(policy: MatchPolicy, entries: Sequence[Entry]) -> Any:
    """A function (cluster representative, entry indices) -> the indices start_expr allows,
    memoized on the values the expression reads; None when start_expr is true."""
    expr = policy.start_expr
    if expr is None:
        return None
    refs = references(expr)
    entry_names = sorted(refs.my | refs.bare)
    job_names = sorted(refs.target | refs.bare)
    entry_sigs = []
    for entry in entries:
        values = tuple(_freeze(ad_value(entry.attrs, n, _MISSING)) for n in entry_names)
        entry_sigs.append(values)
    cache: dict[tuple[Any, Any], bool] = {}

    def allowed(job: Mapping[str, Any], indices: list[int]) -> list[int]:
        job_sig = tuple(_freeze(ad_value(job, n, _MISSING)) for n in job_names)
        out = []
        for index in indices:
            key = (entry_sigs[index], job_sig)
            verdict = cache.get(key)
            if verdict is None:
                value = evaluate(expr, entries[index].attrs, job)
                verdict = cache[key] = value is UNDEFINED or value is True or is_true(value)
            if verdict:
                out.append(index)
        return out

    return allowed


def match_clusters(
    clusters: JobClusters, entries: Sequence[Entry], policy: MatchPolicy
) -> tuple[list[tuple[int, ...]], int]:
    """For each cluster, the sorted indices of the entries it matches; and the number
    of (cluster, entry) evaluations of match_expr that raised (counted as no match)."""
    bound = policy.match_expr.bind([e.glidein for e in entries], policy.attr_dict)
    start = _start_filter(policy, entries)
    everything = list(range(len(entries)))
    out: list[tuple[int, ...]] = []
    always = policy.match_expr.always_true
    for job in clusters.representatives:
        indices = everything if always else bound.matching(job)
        if start is not None and indices:
            indices = start(job, indices)
        out.append(tuple(indices))
    return out, bound.errors


# ------------------------------------------------------------------------------- counting


@dataclass(frozen=True)
class ClassCounts:
    """Per-entry counts for one job class; tuples are indexed like the entries."""

    count: tuple[int, ...]
    prop: tuple[int, ...]
    hereonly: tuple[int, ...]
    prop_mc: tuple[int, ...]
    cpus: tuple[int, ...]
    prop_exact: tuple[Fraction, ...]
    unmatched: int

    def as_dict(self, entries: Sequence[Entry], unmatched_key: str = UNMATCHED) -> dict[str, dict[str, int]]:
        """``{"count": {entry key: n, ..., UNMATCHED: n}, "prop": ..., "hereonly": ..., "prop_mc": ...}``
        (the shape of the original's four dictionaries)."""
        out: dict[str, dict[str, int]] = {}
        for name in ("count", "prop", "hereonly", "prop_mc"):
            values = getattr(self, name)
            table = {entry.key: values[i] for i, entry in enumerate(entries)}
            table[unmatched_key] = self.unmatched
            out[name] = table
        return out


def count_matches(
    clusters: JobClusters, cluster_entries: Sequence[tuple[int, ...]], entries: Sequence[Entry]
) -> dict[str, ClassCounts]:
    """Per job class, the per-entry counts (see the module docstring)."""
    n_entries = len(entries)
    atom_of: dict[tuple[int, ...], int] = {}
    atom_members: list[list[int]] = []
    unmatched_clusters: list[int] = []
    for cluster, matched in enumerate(cluster_entries):
        if not matched:
            unmatched_clusters.append(cluster)
            continue
        atom = atom_of.get(matched)
        if atom is None:
            atom = atom_of[matched] = len(atom_members)
            atom_members.append([])
        atom_members[atom].append(cluster)
    atoms = list(atom_of)  # entry tuples, in atom order
    entry_atoms: list[list[int]] = [[] for _ in range(n_entries)]
    only_here: list[int | None] = [None] * n_entries
    for atom, matched in enumerate(atoms):
        for index in matched:
            entry_atoms[index].append(atom)
        if len(matched) == 1:
            only_here[matched[0]] = atom
    sizes = [len(m) for m in atoms]
    denominator = math.lcm(*set(sizes)) if sizes else 1
    weights = [denominator // k for k in sizes]
    per_glidein = [glidein_cpus(e) for e in entries]

    def one_class(counts: list[int], cpus: list[int]) -> ClassCounts:
        if not any(counts):
            zeros = (0,) * n_entries
            return ClassCounts(zeros, zeros, zeros, zeros, zeros, (Fraction(0),) * n_entries, 0)
        atom_jobs = [sum([counts[c] for c in members]) for members in atom_members]
        atom_cpus = [sum([cpus[c] for c in members]) for members in atom_members]
        weighted = [n * w for n, w in zip(atom_jobs, weights)]
        jobs_get = atom_jobs.__getitem__
        cpus_get = atom_cpus.__getitem__
        weighted_get = weighted.__getitem__
        count_t: list[int] = []
        prop_t: list[int] = []
        here_t: list[int] = []
        mc_t: list[int] = []
        cpus_t: list[int] = []
        exact_t: list[Fraction] = []
        for index in range(n_entries):
            members = entry_atoms[index]
            n = sum(map(jobs_get, members))
            c = sum(map(cpus_get, members))
            share = sum(map(weighted_get, members))  # prop × denominator, exactly
            count_t.append(n)
            cpus_t.append(c)
            prop_t.append(-(-share // denominator))
            exact_t.append(Fraction(share, denominator))
            atom = only_here[index]
            here_t.append(atom_jobs[atom] if atom is not None else 0)
            if n > 0:
                mc_t.append(-(-(c * share) // (denominator * n * per_glidein[index])))
            else:
                mc_t.append(0)
        unmatched = sum([counts[c] for c in unmatched_clusters])
        return ClassCounts(
            tuple(count_t), tuple(prop_t), tuple(here_t), tuple(mc_t), tuple(cpus_t), tuple(exact_t), unmatched
        )

    result: dict[str, ClassCounts] = {}
    done: list[tuple[list[int], list[int], ClassCounts]] = []
    for job_class in JOB_CLASSES:
        counts = clusters.counts[job_class]
        cpus = clusters.cpus[job_class]
        # classes often hold the same jobs (a queue idle for over an hour): compute once
        same = next((r for c, p, r in done if c == counts and p == cpus), None)
        result[job_class] = same if same is not None else one_class(counts, cpus)
        done.append((counts, cpus, result[job_class]))
    return result


# ------------------------------------------------------------------------------- all of it


@dataclass(frozen=True)
class MatchResult:
    """Everything one matching pass found.

    ``classes[job_class]`` holds the per-entry counts; ``cluster_entries[i]`` the entries
    cluster i matches (for ``q -analyze``: which entries a job could use); ``errors`` the
    match_expr evaluations that raised.
    """

    entries: tuple[Entry, ...]
    clusters: JobClusters
    cluster_entries: list[tuple[int, ...]]
    classes: dict[str, ClassCounts]
    errors: int = 0

    def __getitem__(self, job_class: str) -> ClassCounts:
        return self.classes[job_class]


def match_jobs(
    jobs_by_schedd: Mapping[str, Iterable[Mapping[str, Any]]],
    entries: Sequence[Entry],
    policy: MatchPolicy,
    *,
    now: float,
    excluded_schedds: Iterable[str] = (),
) -> MatchResult:
    """Cluster, match and count in one call (see the module docstring)."""
    clusters = cluster_jobs(jobs_by_schedd, policy, now=now, excluded_schedds=excluded_schedds)
    cluster_entries, errors = match_clusters(clusters, entries, policy)
    classes = count_matches(clusters, cluster_entries, entries)
    return MatchResult(tuple(entries), clusters, cluster_entries, classes, errors)
