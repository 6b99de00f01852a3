"""Autoclusters of idle jobs: the schedd's side of negotiation.

Jobs whose *significant attributes* (see :func:`gwms.classads.significant_attributes`:
resource requests, Requirements, Rank, what those read, and what slots read as
``TARGET.x``) are equal look the same to the matchmaker. The schedd groups its idle jobs
so the negotiator evaluates one job per group, and remembers the groups so that a claim
can be reused for the next job of the same group (claim reuse) without a new
negotiation.

Groups are per owner and accounting submitter as well (fair share serves submitters).
:class:`AutoclusterCache` keeps each job's classification between negotiation cycles
(keyed by the job id and its EnteredCurrentStatus), so a cycle decodes only the jobs that
are new or changed.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gwms.classads import REQUEST_ATTRIBUTES, significant_attributes
from gwms.classads.autocluster import MATCH_EXPRESSIONS
from gwms.pool import jobattrs as A

JobId = tuple[int, int]
#: (owner, submitter, signature): what puts two jobs in one group.
GroupKey = tuple[str, str, str]

_OWNER = A.OWNER.lower()
_ACCOUNTING_GROUP = A.ACCOUNTING_GROUP.lower()
_JOB_PRIO = A.JOB_PRIO.lower()


def submitter_of(job: Mapping[str, Any]) -> str:
    """The accounting name fair share charges a job to: its AccountingGroup, else its Owner."""
    owner = ""
    for key, value in job.items():
        low = key.lower()
        if low == _ACCOUNTING_GROUP and isinstance(value, str) and value:
            return value
        if low == _OWNER and isinstance(value, str):
            owner = value
    return owner


def group_id(owner: str, submitter: str, signature: str) -> str:
    """A short stable id for the group of ``owner``/``submitter`` with ``signature``."""
    text = f"{owner}\0{submitter}\0{signature}".encode()
    return hashlib.blake2b(text, digest_size=8).hexdigest()


def _expression_part(value: Any) -> Any:
    """What of a value decides which attributes it reads: the text of an expression, a
    list's JSON; None for any other literal."""
    c = value.__class__
    if c is str:
        return value if value.startswith("/Expr(") else None
    if c is list:
        return json.dumps(value, sort_keys=True)
    return None


def _picker(indexes: Sequence[int]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """A fast function taking the values at ``indexes`` out of a tuple, always as a tuple."""
    if not indexes:
        return lambda values: ()
    if len(indexes) == 1:
        only = indexes[0]
        return lambda values: (values[only],)
    return operator.itemgetter(*indexes)


@dataclass(frozen=True)
class _Layout:
    """What a job's key list says, computed once per distinct key list."""

    lower: tuple[str, ...]
    owner: int
    accounting_group: int
    prio: int
    seeds: Callable[[tuple[Any, ...]], tuple[Any, ...]]


@dataclass(frozen=True)
class _Plan:
    """The significant attributes of jobs with one key list and one set of expressions.

    ``indexes`` are their positions in the key list; ``expressions`` the expression parts
    of those positions in the job the plan was made from: a job with the same ones reads
    the same attributes (the closure is decided by the expressions inside it).
    """

    prefix: str
    pick: Callable[[tuple[Any, ...]], tuple[Any, ...]]
    expressions: tuple[Any, ...]


class JobClassifier:
    """Puts job ads in groups: ``classify(job) -> ((owner, submitter, signature), JobPrio)``.

    Two jobs get the same signature exactly when their significant attributes (for the
    given ``slot_refs``) have equal values; a missing attribute equals ``null``, and
    ``1``, ``1.0`` and ``true`` differ, as in the ClassAd language. Work is cached per
    distinct key list and expression set, so a 100k-job cluster costs little per job.
    """

    def __init__(self, slot_refs: Iterable[str] = ()) -> None:
        """A classifier for jobs matched against slots that read ``slot_refs``."""
        self.slot_refs = frozenset(r.lower() for r in slot_refs)
        self._seed_names = frozenset(n.lower() for n in (*REQUEST_ATTRIBUTES, *MATCH_EXPRESSIONS)) | self.slot_refs
        self._layouts: dict[tuple[str, ...], _Layout] = {}
        self._plans: dict[tuple[Any, ...], _Plan] = {}

    def _layout(self, keys: tuple[str, ...]) -> _Layout:
        layout = self._layouts.get(keys)
        if layout is None:
            lower = tuple(k.lower() for k in keys)

            def where(name: str) -> int:
                return lower.index(name) if name in lower else -1

            seeds = _picker([i for i, n in enumerate(lower) if n in self._seed_names])
            layout = _Layout(lower, where(_OWNER), where(_ACCOUNTING_GROUP), where(_JOB_PRIO), seeds)
            self._layouts[keys] = layout
        return layout

    def _make_plan(self, job: Mapping[str, Any], layout: _Layout, values: tuple[Any, ...]) -> _Plan:
        names = sorted(significant_attributes(job, self.slot_refs))
        present = [(n, layout.lower.index(n)) for n in names if n in layout.lower]
        pick = _picker([i for _, i in present])
        return _Plan(",".join(n for n, _ in present) + "|", pick, tuple(map(_expression_part, pick(values))))

    def classify(self, job: Mapping[str, Any]) -> tuple[GroupKey, int]:
        """The job's group key and its JobPrio."""
        keys = tuple(job)
        layout = self._layout(keys)
        values = tuple(job.values())
        part = _expression_part
        first = (keys, tuple(map(part, layout.seeds(values))))
        plan = self._plans.get(first)
        if plan is None:
            plan = self._make_plan(job, layout, values)
            self._plans[first] = plan
        elif tuple(map(part, plan.pick(values))) != plan.expressions:
            # same seeds, but an attribute they read is another expression: its own plan
            full = (keys, tuple((i, part(v)) for i, v in enumerate(values) if part(v) is not None))
            plan = self._plans.get(full) or self._make_plan(job, layout, values)
            self._plans[full] = plan
        signature = plan.prefix + repr(plan.pick(values))
        owner = values[layout.owner] if layout.owner >= 0 else ""
        owner = owner if isinstance(owner, str) else ""
        submitter = owner
        if layout.accounting_group >= 0:
            group = values[layout.accounting_group]
            if isinstance(group, str) and group:
                submitter = group
        prio = values[layout.prio] if layout.prio >= 0 else 0
        return (owner, submitter, signature), (prio if prio.__class__ is int else 0)


@dataclass
class Autocluster:
    """Idle jobs that look the same to the matchmaker.

    ``ad`` is one job's ad (the group's representative); ``jobs`` the members in the
    order they should run (higher JobPrio first, then by id); ``prio`` the highest
    JobPrio in the group.
    """

    id: str
    owner: str
    submitter: str
    signature: str
    ad: Mapping[str, Any]
    jobs: list[JobId] = field(default_factory=list)
    prio: int = 0

    def as_json(self) -> dict[str, Any]:
        """The group as the schedd sends it to the negotiator."""
        return {
            "id": self.id,
            "owner": self.owner,
            "submitter": self.submitter,
            "signature": self.signature,
            "prio": self.prio,
            "ad": self.ad,
            "jobs": [f"{c}.{p}" for c, p in self.jobs],
        }


def build_groups(
    members: Iterable[tuple[JobId, GroupKey, int]], representative: Callable[[GroupKey], Mapping[str, Any]]
) -> list[Autocluster]:
    """Autoclusters from classified jobs ``(id, key, JobPrio)``, best group first (highest
    JobPrio, then oldest job); jobs in a group ordered by JobPrio (highest first), then id."""
    groups: dict[GroupKey, Autocluster] = {}
    prios: dict[GroupKey, list[int]] = {}
    for jid, key, prio in members:
        group = groups.get(key)
        if group is None:
            group = Autocluster(group_id(*key), key[0], key[1], key[2], {}, prio=prio)
            groups[key] = group
            prios[key] = []
        elif prio > group.prio:
            group.prio = prio
        group.jobs.append(jid)
        prios[key].append(prio)
    for key, group in groups.items():
        p = prios[key]
        if min(p) != max(p):
            order = sorted(zip(p, group.jobs), key=lambda pj: (-pj[0], pj[1]))
            group.jobs = [jid for _, jid in order]
        else:
            group.jobs.sort()
        group.ad = representative(key)
    out = list(groups.values())
    out.sort(key=lambda g: (-g.prio, min(g.jobs)))
    return out


def group_jobs(
    jobs: Iterable[Mapping[str, Any]],
    slot_refs: Iterable[str] = (),
    *,
    skip: set[JobId] | frozenset[JobId] = frozenset(),
) -> list[Autocluster]:
    """Group job ads into autoclusters (see :func:`build_groups` for the order).

    ``slot_refs`` are the job attributes slots read (``TARGET.x``), significant too;
    ``skip`` holds job ids to leave out (already matched or claimed).
    """
    classifier = JobClassifier(slot_refs)
    reps: dict[GroupKey, Mapping[str, Any]] = {}
    members: list[tuple[JobId, GroupKey, int]] = []
    for job in jobs:
        jid = (job.get(A.CLUSTER_ID), job.get(A.PROC_ID))
        if jid in skip or jid[0].__class__ is not int or jid[1].__class__ is not int:
            continue
        key, prio = classifier.classify(job)
        if key not in reps:
            reps[key] = job
        members.append((jid, key, prio))  # type: ignore[arg-type]
    return build_groups(members, reps.__getitem__)


class AutoclusterCache:
    """Job classifications kept between negotiation cycles.

    :meth:`groups` takes the idle jobs as ``(id, EnteredCurrentStatus)`` pairs (cheap to
    read) and a way to fetch full ads; only jobs it has not seen in that state are fetched
    and classified. :meth:`forget` drops jobs whose attributes changed otherwise (qedit).
    """

    def __init__(self) -> None:
        """An empty cache."""
        self._refs: frozenset[str] | None = None
        self._classifier = JobClassifier()
        self._jobs: dict[JobId, tuple[Any, GroupKey, int]] = {}
        self._reps: dict[GroupKey, Mapping[str, Any]] = {}

    def forget(self, ids: Iterable[JobId]) -> None:
        """Classify these jobs again next time."""
        for jid in ids:
            self._jobs.pop(jid, None)

    def groups(
        self,
        idle: Iterable[tuple[JobId, Any]],
        fetch: Callable[[Sequence[JobId]], Iterable[Mapping[str, Any]]],
        slot_refs: Iterable[str],
        *,
        skip: set[JobId] | frozenset[JobId] = frozenset(),
    ) -> list[Autocluster]:
        """The autoclusters of the ``idle`` jobs (``(id, stamp)``) not in ``skip``."""
        refs = frozenset(r.lower() for r in slot_refs)
        if refs != self._refs:
            self._refs, self._classifier = refs, JobClassifier(refs)
            self._jobs.clear()
            self._reps.clear()
        stamps: dict[JobId, Any] = {}
        stale: list[JobId] = []
        for jid, stamp in idle:
            if jid in skip:
                continue
            stamps[jid] = stamp
            known = self._jobs.get(jid)
            if known is None or known[0] != stamp:
                stale.append(jid)
        if stale:
            wanted = set(stale)
            for ad in fetch(stale):
                jid = (ad.get(A.CLUSTER_ID), ad.get(A.PROC_ID))
                if jid not in wanted:
                    continue
                wanted.discard(jid)  # type: ignore[arg-type]
                key, prio = self._classifier.classify(ad)
                self._jobs[jid] = (stamps[jid], key, prio)  # type: ignore[index]
                self._reps.setdefault(key, ad)
        for jid in [j for j in self._jobs if j not in stamps]:
            del self._jobs[jid]
        members = [(jid, self._jobs[jid][1], self._jobs[jid][2]) for jid in stamps if jid in self._jobs]
        live = {key for _, key, _ in members}
        for key in [k for k in self._reps if k not in live]:
            del self._reps[key]
        return build_groups(members, self._reps.__getitem__)


class AutoclusterIndex:
    """The groups of the last negotiation listing, for claim reuse.

    :meth:`candidates` gives the jobs of a job's group, in order; the caller checks each
    is still idle and not booked (the index is a snapshot).
    """

    def __init__(self) -> None:
        """An empty index."""
        self._group_of: dict[JobId, str] = {}
        self._members: dict[str, list[JobId]] = {}
        self._cursor: dict[str, int] = {}

    def replace(self, groups: Iterable[Autocluster]) -> None:
        """Forget the old groups; remember these."""
        group_of: dict[JobId, str] = {}
        members: dict[str, list[JobId]] = {}
        for group in groups:
            members[group.id] = list(group.jobs)
            for jid in group.jobs:
                group_of[jid] = group.id
        self._group_of, self._members, self._cursor = group_of, members, {}

    def group_of(self, job: JobId) -> str | None:
        """The id of the group ``job`` was in, or None if it was not listed."""
        return self._group_of.get(job)

    def candidates(self, group: str) -> Iterator[JobId]:
        """Members of ``group`` from the first not yet handed out; each is handed out once."""
        members = self._members.get(group, [])
        while True:
            i = self._cursor.get(group, 0)
            if i >= len(members):
                return
            self._cursor[group] = i + 1
            yield members[i]

    def __len__(self) -> int:
        """Jobs in the index."""
        return len(self._group_of)
