"""Why does a job not run? ``gwms q -analyze``'s analysis, as a pure function.

:func:`analyze_job` compares one job ad with the pool's slot ads and counts: how many
slots exist, how many the job's Requirements accept, how many of those accept the job in
turn (their START or Requirements), how many of those are free now; and, with the
Requirements split at its top-level ``&&``, how many slots each clause rejects. The
clause that rejects the most is usually the answer (a job that asks for more memory than
any slot has: ``TARGET.Memory >= RequestMemory`` rejects them all).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gwms.classads import ClassAdSyntaxError, compile_constraint, job_accepts, parse_expr, slot_accepts
from gwms.classads.lexer import EOF, OP, tokenize
from gwms.classads.refs import references
from gwms.pool import jobattrs as A
from gwms.pool.resources import carving, is_partitionable, job_request, slot_resources

JsonAd = Mapping[str, Any]


@dataclass(frozen=True)
class ClauseCount:
    """One top-level clause of the Requirements and how many slots it rejects."""

    index: int
    text: str
    rejects: int


@dataclass(frozen=True)
class Analysis:
    """The outcome of :func:`analyze_job` (see the module docstring)."""

    job: str
    status: int | None
    requirements: str
    slots: int
    match_requirements: int
    accept_job: int
    available: int
    clauses: list[ClauseCount] = field(default_factory=list)
    job_values: dict[str, Any] = field(default_factory=dict)
    slot_values: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def worst(self) -> ClauseCount | None:
        """The clause that rejects the most slots (the first of equals), if any rejects one."""
        best = None
        for clause in self.clauses:
            if clause.rejects > 0 and (best is None or clause.rejects > best.rejects):
                best = clause
        return best


def _unwrap(text: str) -> str:
    """Drop parentheses that enclose the whole text."""
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, ch in enumerate(text):
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0 and i != len(text) - 1:
                    return text
        text = text[1:-1].strip()
    return text


def split_clauses(text: str) -> list[str]:
    """The top-level ``&&`` clauses of an expression (the whole text if it is not an
    ``&&`` of clauses at its top level, e.g. ``a && b || c``)."""
    try:
        parse_expr(text)
        tokens = tokenize(text)
    except ClassAdSyntaxError:
        return [text.strip()]
    depth = 0
    cuts: list[tuple[int, int]] = []
    for tok in tokens:
        if tok.kind == EOF:
            break
        if tok.kind != OP:
            continue
        if tok.value in ("(", "[", "{"):
            depth += 1
        elif tok.value in (")", "]", "}"):
            depth -= 1
        elif depth == 0 and tok.value in ("||", "?", ":"):
            return [_unwrap(text)]
        elif depth == 0 and tok.value == "&&":
            cuts.append((tok.pos, tok.end))
    if not cuts:
        stripped = _unwrap(text)
        return split_clauses(stripped) if stripped != text.strip() else [stripped]
    parts = []
    start = 0
    for pos, end in cuts:
        parts.append(_unwrap(text[start:pos]))
        start = end
    parts.append(_unwrap(text[start:]))
    return [p for p in parts if p]


def _requirements_text(job: JsonAd) -> str:
    for key, value in job.items():
        if key.lower() == "requirements":
            if isinstance(value, str) and value.startswith("/Expr(") and value.endswith(")/"):
                return value[6:-2]
            if isinstance(value, bool):
                return "true" if value else "false"
            return str(value)
    return ""


def _lookup(ad: JsonAd, name: str) -> Any:
    low = name.lower()
    for key, value in ad.items():
        if key.lower() == low:
            return value
    return None


def _is_free(slot: JsonAd, job: JsonAd) -> bool:
    if is_partitionable(slot):
        return carving(job_request(job, slot)).fits_in(slot_resources(slot))
    return _lookup(slot, A.STATE) in (None, "Unclaimed")


def analyze_job(job: JsonAd, slots: Iterable[JsonAd]) -> Analysis:
    """Explain how ``job`` fares against ``slots`` (see the module docstring)."""
    slot_list = list(slots)
    requirements = _requirements_text(job)
    texts = split_clauses(requirements) if requirements else []
    predicates = []
    for text in texts:
        try:
            predicates.append(compile_constraint(text))
        except ClassAdSyntaxError:
            predicates.append(None)
    rejects = [0] * len(texts)
    match_req = accept = available = 0
    for slot in slot_list:
        if job_accepts(job, slot):
            match_req += 1
            if slot_accepts(slot, job):
                accept += 1
                if _is_free(slot, job):
                    available += 1
        for i, pred in enumerate(predicates):
            if pred is None or not pred(job, slot):
                rejects[i] += 1
    clauses = [ClauseCount(i, t, r) for i, (t, r) in enumerate(zip(texts, rejects))]
    analysis = Analysis(
        job=f"{job.get(A.CLUSTER_ID)}.{job.get(A.PROC_ID)}",
        status=job.get(A.JOB_STATUS) if isinstance(job.get(A.JOB_STATUS), int) else None,
        requirements=requirements,
        slots=len(slot_list),
        match_requirements=match_req,
        accept_job=accept,
        available=available,
        clauses=clauses,
    )
    worst = analysis.worst
    if worst is None:
        return analysis
    job_values, slot_values = _clause_values(worst.text, job, slot_list)
    return Analysis(**{**analysis.__dict__, "job_values": job_values, "slot_values": slot_values})


def _clause_values(text: str, job: JsonAd, slots: Sequence[JsonAd]) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """The job's values of what a clause reads of it, and the range of the slots' values."""
    try:
        refs = references(text)
    except ClassAdSyntaxError:
        return {}, {}
    job_values: dict[str, Any] = {}
    slot_names: set[str] = set(refs.target)
    for name in sorted(refs.my | refs.bare):
        for key, value in job.items():
            if key.lower() == name:
                job_values[key] = value
                break
        else:
            if name in refs.bare:
                slot_names.add(name)
    slot_values: dict[str, list[Any]] = {}
    for name in sorted(slot_names):
        values = [_lookup(s, name) for s in slots]
        shown = next((k for s in slots for k in s if k.lower() == name), name)
        present = [v for v in values if v is not None]
        numbers = [v for v in present if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if numbers and len(numbers) == len(present):
            slot_values[shown] = [min(numbers), max(numbers)]
        else:
            distinct = sorted({repr(v) if not isinstance(v, str) else v for v in present})
            slot_values[shown] = distinct[:6] + (["..."] if len(distinct) > 6 else [])
            if len(present) < len(values):
                slot_values[shown].append("undefined")
    return job_values, slot_values


def render_analysis(analysis: Analysis) -> str:
    """The analysis as text for a person (what ``gwms q -analyze`` prints)."""
    status = A.JOB_STATUS_NAMES.get(analysis.status or 0, "unknown").lower()
    lines = [f"Job {analysis.job} ({status}): analysis against {analysis.slots} slot(s)"]
    lines.append(f"  Requirements: {analysis.requirements or '(none: a job without Requirements matches nothing)'}")
    lines.append(f"  {analysis.slots:6d} slots in the pool")
    lines.append(f"  {analysis.match_requirements:6d} match the job's Requirements")
    lines.append(f"  {analysis.accept_job:6d} of those accept the job (their START)")
    lines.append(f"  {analysis.available:6d} of those are free now")
    if analysis.clauses:
        lines.append("  Slots rejected by each clause of the Requirements:")
        width = max(len(str(c.rejects)) for c in analysis.clauses)
        for c in analysis.clauses:
            lines.append(f"    [{c.index}] {c.rejects:{width}d}  {c.text}")
    worst = analysis.worst
    if analysis.slots == 0:
        lines.append("  No slots in the pool: the job waits for glideins to join.")
    elif analysis.match_requirements == 0 and worst is not None:
        lines.append(f"  No slot matches. The clause that rejects the most slots ({worst.rejects} of "
                     f"{analysis.slots}) is [{worst.index}] {worst.text}")
    elif analysis.match_requirements == 0:
        lines.append("  No slot matches the job's Requirements.")
    elif analysis.accept_job == 0:
        lines.append(f"  {analysis.match_requirements} slot(s) match the Requirements, but the START "
                     "expression of every one of them rejects the job.")
    elif analysis.available == 0:
        lines.append("  Matching slots exist but all are busy: the job runs when one frees up.")
    elif worst is not None:
        lines.append(f"  The clause that rejects the most slots ({worst.rejects}) is [{worst.index}] {worst.text}")
    if worst is not None and (analysis.job_values or analysis.slot_values):
        for name, value in analysis.job_values.items():
            lines.append(f"    job: {name} = {value}")
        for name, values in analysis.slot_values.items():
            if len(values) == 2 and all(isinstance(v, (int, float)) for v in values):
                lines.append(f"    slots: {name} from {values[0]} to {values[1]}")
            else:
                lines.append(f"    slots: {name} in {', '.join(map(str, values))}")
    return "\n".join(lines)
