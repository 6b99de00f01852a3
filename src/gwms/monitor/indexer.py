"""The indexer: walk a factory's client log tree, index and archive what is new or grew.

The factory keeps each pilot's logs as
``client/user_<frontend user>/glidein_<instance>/entry_<entry>/job.<cluster>.<proc>.out|.err``.
A pass (:meth:`Indexer.run_pass`):

1. walks the tree with ``stat`` only (:func:`scan_tree`) and compares each job's files
   with the checkpoint (size and mtime) stored in the index (:func:`needs_indexing`):
   unchanged files are never opened;
2. reads each new or changed job, parses the ``.out`` header and markers, decodes every
   embedded section of the ``.err``, anonymizes the job if configured, and archives the
   original and anonymized files (:func:`build_record`);
3. stores the records in the index, in big batches (one transaction each), from a second
   thread (SQLite does its work without holding Python's GIL).

Step 2 is pure Python (the GIL): for a big pass (:attr:`Indexer.pool_min_jobs` jobs or
more) it runs in worker processes (``workers``, default two), which read the files and
hand back finished records, while this process only stores them; small passes (the
usual ``--follow`` pass) build in-process, without the workers' start-up cost.

Logs that glideins pushed while they ran (:mod:`gwms.monitor.push`) sit in a second
tree of the same layout (``push_source``); they are indexed with ``source = push``
unless the factory's tree has the same job, whose copy always wins (so the factory's
final copy, when it arrives, supersedes the pushed one).

An error in one job (unreadable file, a parser bug) is reported in the
:class:`PassReport` and the job skipped; it is retried on the next pass. With
anonymization configured, a job that cannot be anonymized is not indexed at all: the
index never holds originals by accident.

:meth:`Indexer.follow` repeats passes until asked to stop.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import gc
import multiprocessing
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gwms.errors import GwmsError
from gwms.monitor.anonymize.engine import Anonymizer
from gwms.monitor.archive import (
    Archive,
    ArchiveItem,
    Packer,
    PruneReport,
    RetentionPolicy,
    prune,
)
from gwms.monitor.compression import Codec, default_codec
from gwms.monitor.index import (
    MAX_EPOCH,
    Checkpoint,
    FileState,
    JobInfo,
    JobRecord,
    LogIndex,
    SectionKind,
    SectionRecord,
)
from gwms.monitor.outfile import OutSummary, parse_out
from gwms.monitor.sections import ErrFile, Section, split_err

__all__ = [
    "Indexer",
    "JobFiles",
    "PassReport",
    "ScanProblem",
    "build_record",
    "find_client_dir",
    "job_texts",
    "needs_indexing",
    "read_job",
    "scan_tree",
    "site_of",
    "summary_to_dict",
]

_JOB_FILE = re.compile(r"job\.(\d{1,18})\.(\d{1,9})\.(out|err)")
Progress = Callable[[int, int, int], None]


@dataclass(frozen=True)
class JobFiles:
    """A job found in the tree: where its files are and their state (None: missing)."""

    path: str
    frontend_user: str
    instance: str
    entry: str
    cluster: int
    proc: int
    directory: Path
    out: FileState | None = None
    err: FileState | None = None
    source: str = "factory"

    @property
    def out_path(self) -> Path:
        """The ``.out`` file's path."""
        return self.directory / f"job.{self.cluster}.{self.proc}.out"

    @property
    def err_path(self) -> Path:
        """The ``.err`` file's path."""
        return self.directory / f"job.{self.cluster}.{self.proc}.err"

    @property
    def checkpoint(self) -> Checkpoint:
        """The files' state as found by the walk."""
        return Checkpoint(self.out, self.err)


@dataclass(frozen=True)
class ScanProblem:
    """A path the walk could not read."""

    path: str
    message: str


def find_client_dir(source: str | os.PathLike[str]) -> Path:
    """The ``client`` directory of a factory log tree: ``source/client``, or ``source``
    itself when it holds the ``user_*`` directories."""
    root = Path(source)
    if not root.is_dir():
        raise GwmsError(f"no log directory at {root}")
    if (root / "client").is_dir():
        return root / "client"
    return root


def _subdirs(path: Path, prefix: str, problems: list[ScanProblem]) -> list[tuple[str, Path]]:
    out = []
    try:
        with os.scandir(path) as it:
            for entry in it:
                if entry.name.startswith(prefix) and len(entry.name) > len(prefix):
                    try:
                        if entry.is_dir():
                            out.append((entry.name[len(prefix) :], Path(entry.path)))
                    except OSError as exc:
                        problems.append(ScanProblem(entry.path, str(exc)))
    except OSError as exc:
        problems.append(ScanProblem(str(path), exc.strerror or str(exc)))
    out.sort()
    return out


def scan_tree(
    source: str | os.PathLike[str],
    problems: list[ScanProblem] | None = None,
    *,
    origin: str = "factory",
) -> Iterator[JobFiles]:
    """Every job under a factory log tree, with its files' sizes and mtimes (``stat`` only).

    Directories or files that cannot be read are added to ``problems`` and skipped.
    ``origin`` is the jobs' ``source`` (``factory``, or ``push`` for the pushed tree).
    """
    problems = problems if problems is not None else []
    client = find_client_dir(source)
    for user, user_dir in _subdirs(client, "user_", problems):
        for instance, inst_dir in _subdirs(user_dir, "glidein_", problems):
            for entry, entry_dir in _subdirs(inst_dir, "entry_", problems):
                found: dict[tuple[int, int], dict[str, FileState]] = {}
                try:
                    with os.scandir(entry_dir) as it:
                        for f in it:
                            m = _JOB_FILE.fullmatch(f.name)
                            if m is None:
                                continue
                            try:
                                st = f.stat()
                            except OSError as exc:
                                problems.append(ScanProblem(f.path, exc.strerror or str(exc)))
                                continue
                            key = (int(m.group(1)), int(m.group(2)))
                            found.setdefault(key, {})[m.group(3)] = FileState(
                                st.st_size, st.st_mtime_ns
                            )
                except OSError as exc:
                    problems.append(ScanProblem(str(entry_dir), exc.strerror or str(exc)))
                    continue
                rel = f"user_{user}/glidein_{instance}/entry_{entry}"
                for (cluster, proc), states in sorted(found.items()):
                    yield JobFiles(
                        path=f"{rel}/job.{cluster}.{proc}",
                        frontend_user=user,
                        instance=instance,
                        entry=entry,
                        cluster=cluster,
                        proc=proc,
                        directory=entry_dir,
                        out=states.get("out"),
                        err=states.get("err"),
                        source=origin,
                    )


def needs_indexing(found: JobFiles, checkpoint: Checkpoint | None) -> bool:
    """True if a job is new, or one of its files appeared, changed size or was modified."""
    if checkpoint is None:
        return True
    return found.out != checkpoint.out or found.err != checkpoint.err


# Second-level labels under which registries sell names (a site is one label deeper).
_SLD = frozenset({"ac", "co", "com", "edu", "gov", "net", "org", "res", "sci"})


def site_of(host: str | None, header: dict[str, str] | None = None) -> str | None:
    """The site a glidein ran at: the header's site if it names one, else the domain of
    its worker node (``wn01.grid.unl.edu`` -> ``unl.edu``, ``x.ph.ac.uk`` -> ``ph.ac.uk``)."""
    for key in ("glidein_site", "GLIDEIN_Site", "site"):
        value = (header or {}).get(key)
        if value:
            return value
    if not host or "." not in host:
        return None
    labels = [label for label in host.lower().strip(".").split(".") if label]
    if len(labels) < 2 or all(label.isdigit() for label in labels):
        return None
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SLD else 2
    return ".".join(labels[-keep:])


def _read(path: Path) -> tuple[bytes, FileState, float]:
    """A file's bytes, with the size read and the mtime seen before reading."""
    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        data = fh.read()
    return data, FileState(len(data), st.st_mtime_ns), st.st_mtime


def _epoch_ok(value: int | None) -> bool:
    return value is not None and 0 <= value <= MAX_EPOCH


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _unique(name: str, used: set[str]) -> str:
    if name not in used:
        used.add(name)
        return name
    n = 2
    while f"{name}#{n}" in used:
        n += 1
    used.add(f"{name}#{n}")
    return f"{name}#{n}"


_SUMMARY_PROPERTIES = (
    "glidein_uuid",
    "factory_job_id",
    "factory_schedd",
    "factory",
    "glidein_name",
    "entry",
    "client_name",
    "client_group",
    "frontend_name",
    "finished",
)


def summary_to_dict(summary: OutSummary) -> dict[str, object]:
    """The JSON form of an ``.out`` summary as the index keeps it (without the XML text,
    which stays in the ``out`` section); like :meth:`OutSummary.to_dict`, only faster."""
    data: dict[str, object] = {
        name: getattr(summary, name)
        for name in summary.__dataclass_fields__
        if name not in ("xml", "stats", "header", "problems")
    }
    data["header"] = dict(summary.header)
    data["problems"] = list(summary.problems)
    data["stats"] = [
        {
            "slot": b.slot,
            "totals": {k: list(v) for k, v in b.totals.items()},
            "activations": b.activations,
        }
        for b in summary.stats
    ]
    for name in _SUMMARY_PROPERTIES:
        data[name] = getattr(summary, name)
    return data


def _position(sections: list[Section], sec: Section) -> int:
    for i, candidate in enumerate(sections):
        if candidate is sec:
            return i
    raise ValueError("section not in list")


def job_texts(
    out: bytes | None, err: ErrFile | None
) -> list[tuple[str, SectionKind, str, Section | None]]:
    """A job's searchable texts, named as the index names them: ``out`` (the ``.out``),
    ``err`` (the ``.err`` without its embedded sections), then each decoded section
    (``StarterLog#2`` for a second ``StarterLog``; ``unnamed-N`` when a name is missing).

    Each item is ``(name, kind, text, section)``; ``section`` is None for ``out``/``err``.
    """
    used: set[str] = set()
    texts: list[tuple[str, SectionKind, str, Section | None]] = []
    if out is not None:
        texts.append((_unique("out", used), "out", _decode(out), None))
    if err is not None:
        texts.append((_unique("err", used), "err", err.plain_text, None))
        for i, sec in enumerate(err.sections):
            name = _unique(sec.name or f"unnamed-{i + 1}", used)
            texts.append((name, sec.kind, sec.text(), sec))
    return texts


def build_record(
    files: JobFiles,
    out: bytes | None,
    err: bytes | None,
    checkpoint: Checkpoint,
    *,
    anonymizer: Anonymizer | None = None,
    archive: Archive | Packer | None = None,
    codec: Codec | None = None,
    mtime: float = 0.0,
) -> JobRecord:
    """Parse (and anonymize, and archive) one job's files into a :class:`JobRecord`.

    Sections keep the original's problems (a truncated section stays reported as such
    even though its anonymized copy is re-encoded whole). Raises whatever anonymizing
    or packing raises; parsing never does. The packed archives are in
    :attr:`JobRecord.archive`, for the caller to store with the record.
    """
    codec = codec or default_codec()
    problems: list[str] = []
    original_summary = parse_out(out) if out is not None else None
    original_err = split_err(err) if err is not None else None
    view_out, view_err = out, err
    anon_mode = key_id = None
    if anonymizer is not None:
        result = anonymizer.anonymize_job(out, err)
        view_out = result.out if out is not None else None  # type: ignore[assignment]
        view_err = result.err if err is not None else None  # type: ignore[assignment]
        anon_mode, key_id = anonymizer.mode, result.key_id
        damaged = {
            f"section {sec.name or '?'}: {sec.problem}"
            for sec in (original_err.sections if original_err is not None else [])
            if sec.problem
        }
        # damaged sections are reported below, once; keep what else the anonymizer says
        problems.extend(f"anonymization: {p}" for p in result.problems if p not in damaged)
    if anonymizer is not None and view_out is not None:
        summary = parse_out(view_out)
    else:
        summary = original_summary
    view_err_file = (
        split_err(view_err) if anonymizer is not None and view_err is not None else original_err
    )

    sections: list[SectionRecord] = []
    originals = original_err.sections if original_err is not None else []
    view_sections = view_err_file.sections if view_err_file is not None else []
    same_layout = len(originals) == len(view_sections)
    for name, kind, text, sec in job_texts(view_out, view_err_file):
        if sec is None:
            sections.append(SectionRecord(name, kind, text))
            continue
        if same_layout:  # the anonymized .err has the original's sections, in order
            orig: Section | None = originals[_position(view_sections, sec)]
        else:
            orig = original_err.section(sec.name) if original_err is not None else None
        problem = orig.problem if orig is not None else sec.problem
        truncated = orig.truncated if orig is not None else sec.truncated
        sections.append(
            SectionRecord(
                name=name,
                kind=kind,
                text=text,
                problem=problem,
                truncated=truncated,
                members=len(sec.members),
                columns=sec.columns,
            )
        )
        if problem:
            problems.append(f"{name}: {problem}")
    for sec in sections:
        sec.blob = codec.compress(sec.text.encode("utf-8"))
        sec.codec = codec.name
    if out is None:
        problems.append("no .out file")
    if err is None:
        problems.append("no .err file")

    s = summary or OutSummary()
    start = s.start_epoch if _epoch_ok(s.start_epoch) else None
    sort_epoch = start if start is not None else min(max(0, int(mtime)), MAX_EPOCH)
    original_host = original_summary.host if original_summary is not None else None
    header = original_summary.header if original_summary is not None else {}
    info = JobInfo(
        path=files.path,
        frontend_user=files.frontend_user,
        instance=files.instance,
        entry=files.entry,
        cluster=files.cluster,
        proc=files.proc,
        sort_epoch=sort_epoch,
        glidein_uuid=s.glidein_uuid.lower() if s.glidein_uuid else None,
        client_name=s.client_name,
        client_group=s.client_group,
        factory_schedd=s.factory_schedd,
        site=site_of(original_host, header),
        host=s.host or None,
        start_epoch=start,
        end_epoch=s.end_epoch if _epoch_ok(s.end_epoch) else None,
        last_script_epoch=s.last_script_epoch,
        validation_seconds=s.validation_seconds,
        condor_start_epoch=s.condor_start_epoch,
        condor_end_epoch=s.condor_end_epoch,
        condor_seconds=s.condor_seconds,
        total_seconds=s.total_seconds,
        exit_code=s.exit_code,
        jobs_run=s.jobs_run,
        activations=s.activations,
        finished=s.finished,
        anonymized=anonymizer is not None,
        anon_mode=anon_mode,
        key_id=key_id,
        source=files.source,
    )
    summary_dict = summary_to_dict(s)
    if summary is not None:
        problems[:0] = [f".out: {p}" for p in summary.problems]

    items: list[ArchiveItem] = []
    if archive is not None:
        name = f"job.{files.cluster}.{files.proc}"
        originals_files = {f"{name}.out": out, f"{name}.err": err}
        kept = {k: v for k, v in originals_files.items() if v is not None}
        mtimes = {k: mtime for k in kept}
        items.append(archive.pack(files.path, "original", kept, mtimes))  # type: ignore[arg-type]
        if anonymizer is not None:
            anon_files = {f"{name}.out": view_out, f"{name}.err": view_err}
            kept_anon = {k: v for k, v in anon_files.items() if v is not None}
            items.append(archive.pack(files.path, "anonymized", kept_anon, mtimes))  # type: ignore[arg-type]
    return JobRecord(
        info=info,
        checkpoint=checkpoint,
        sections=sections,
        summary=summary_dict,
        problems=problems,
        original_bytes=sum(i.size for i in items if i.kind == "original"),
        anonymized_bytes=sum(i.size for i in items if i.kind == "anonymized"),
        indexed_at=time.time(),
        archive=items,
    )


def read_job(files: JobFiles) -> tuple[bytes | None, bytes | None, Checkpoint, float]:
    """A job's ``.out`` and ``.err`` (None: missing), their checkpoint and latest mtime.

    Raises :class:`FileNotFoundError` when both files are gone.
    """
    out = err = None
    out_state = err_state = None
    mtime = 0.0
    if files.out is not None:
        try:
            out, out_state, mtime = _read(files.out_path)
        except FileNotFoundError:
            out = None
    if files.err is not None:
        try:
            err, err_state, err_mtime = _read(files.err_path)
            mtime = max(mtime, err_mtime)
        except FileNotFoundError:
            err = None
    if out is None and err is None:
        raise FileNotFoundError("the job's files disappeared")
    return out, err, Checkpoint(out_state, err_state), mtime


#: ``(path, record or None, bytes read, error message or None)``: one job built.
_Built = tuple[str, JobRecord | None, int, str | None]


def _build_job(
    files: JobFiles,
    anonymizer: Anonymizer | None,
    archive: Archive | Packer | None,
    codec: Codec,
) -> _Built:
    """Read and build one job; its error as a message (one job never stops a pass)."""
    nbytes = 0
    try:
        out, err, checkpoint, mtime = read_job(files)
        nbytes = len(out or b"") + len(err or b"")
        record = build_record(
            files,
            out,
            err,
            checkpoint,
            anonymizer=anonymizer,
            archive=archive,
            codec=codec,
            mtime=mtime,
        )
    except OSError as exc:
        return files.path, None, nbytes, exc.strerror or str(exc)
    except Exception as exc:  # noqa: BLE001 - one job never stops a pass
        return files.path, None, nbytes, f"{type(exc).__name__}: {exc}"
    return files.path, record, nbytes, None


#: The cyclic garbage collector's first threshold while a pass runs (Python's default: 700).
#: A pass allocates millions of container objects (records, sections, rows) that live
#: until their batch is stored and hold no cycles (reference counting frees them), so
#: with the default the collector runs every 700 allocations and re-scans the survivors:
#: about a tenth of the storing process's CPU. Collections still run, just rarely.
GC_THRESHOLD = 100_000


@contextlib.contextmanager
def fewer_gc_passes(threshold: int = GC_THRESHOLD) -> Iterator[None]:
    """Run the block with the collector's first threshold raised to ``threshold``."""
    before = gc.get_threshold()
    gc.set_threshold(max(threshold, before[0]), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


#: How much lower the parsing workers' CPU priority is than the indexing process's. Storing
#: (FTS5 above all) is the one serial stage of a pass: at equal priority the two workers
#: and the storing thread share two cores evenly and the storing falls behind; at a lower
#: priority the workers use what the storing leaves (+10-15% jobs/s measured on 2 cores),
#: and a backlog being indexed never slows the web UI or the services beside it.
WORKER_NICE = 10

# what a worker process builds with (set once by _worker_init)
_WORKER: dict[str, object] = {}


def _worker_init(anonymizer: Anonymizer | None, packer: Packer | None, codec_name: str) -> None:
    from gwms.monitor.compression import codec_named

    _WORKER.update(anonymizer=anonymizer, packer=packer, codec=codec_named(codec_name))
    os.nice(WORKER_NICE)


def _worker_build(jobs: Iterable[JobFiles]) -> list[_Built]:
    """In a worker process: build a chunk of jobs."""
    anonymizer = _WORKER["anonymizer"]
    packer = _WORKER["packer"]
    codec = _WORKER["codec"]
    return [_build_job(f, anonymizer, packer, codec) for f in jobs]  # type: ignore[arg-type]


@dataclass
class PassReport:
    """What one pass did."""

    seen: int = 0
    changed: int = 0
    indexed: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    bytes_read: int = 0
    seconds: float = 0.0
    stopped: bool = False
    pruned: PruneReport | None = None

    @property
    def unchanged(self) -> int:
        """Jobs whose files had not changed since the last pass."""
        return self.seen - self.changed

    def line(self) -> str:
        """One line for a person."""
        rate = self.indexed / self.seconds if self.seconds > 0 else 0.0
        text = (
            f"indexed {self.indexed} job(s) ({self.bytes_read / 1e6:.1f} MB) of {self.seen} seen,"
            f" {self.unchanged} unchanged, {len(self.errors)} error(s) in {self.seconds:.1f}s"
            f" ({rate:.0f} jobs/s)"
        )
        if self.pruned is not None and (self.pruned.jobs_dropped or self.pruned.originals_dropped):
            text += (
                f"; pruned {self.pruned.jobs_dropped} job(s), {self.pruned.originals_dropped}"
                f" original(s), {self.pruned.bytes_freed / 1e6:.1f} MB"
            )
        if self.stopped:
            text += " (stopped)"
        return text


class Indexer:
    """Indexes one factory log tree into one index and archive.

    Args:
        index: where records go.
        source: the factory's log directory (holding ``client/``) or its ``client/``
            (None: only pushed logs).
        push_source: the tree of logs pushed by glideins (None: none).
        archive: where original and anonymized files go (None: no archive).
        anonymizer: anonymizes texts and the anonymized archive (None: texts are originals).
        retention: applied after every pass.
        batch_size: jobs stored per transaction.
        workers: processes that build records (None: two for a pass of at least
            :attr:`pool_min_jobs` jobs, else none; 1: always in this process).
    """

    #: Passes with fewer jobs build in-process (a worker takes a few tenths of a second
    #: to start).
    pool_min_jobs = 400
    #: Jobs handed to a worker at a time.
    pool_chunk = 16

    def __init__(
        self,
        index: LogIndex,
        source: str | os.PathLike[str] | None,
        *,
        push_source: str | os.PathLike[str] | None = None,
        archive: Archive | None = None,
        anonymizer: Anonymizer | None = None,
        retention: RetentionPolicy | None = None,
        codec: Codec | None = None,
        batch_size: int = 500,
        workers: int | None = None,
    ) -> None:
        self.index = index
        self.source = Path(source) if source is not None else None
        self.push_source = Path(push_source) if push_source is not None else None
        self.archive = archive
        self.anonymizer = anonymizer
        self.retention = retention
        self.codec = codec or (archive.codec if archive is not None else default_codec())
        self.batch_size = max(1, batch_size)
        self.workers = workers

    def plan(self, problems: list[ScanProblem] | None = None) -> tuple[list[JobFiles], int]:
        """The jobs to (re)index now, and how many jobs the tree holds."""
        checkpoints = self.index.checkpoints()
        todo: list[JobFiles] = []
        seen = 0
        factory_paths: set[str] = set()
        if self.source is not None:
            for found in scan_tree(self.source, problems):
                seen += 1
                factory_paths.add(found.path)
                if needs_indexing(found, checkpoints.get(found.path)):
                    todo.append(found)
        if self.push_source is not None and self.push_source.is_dir():
            for found in scan_tree(self.push_source, problems, origin="push"):
                if found.path in factory_paths:
                    continue  # the factory's copy wins
                seen += 1
                if needs_indexing(found, checkpoints.get(found.path)):
                    todo.append(found)
        return todo, seen

    def _store(self, records: list[JobRecord]) -> None:
        """Archives first, then the index rows that say they exist."""
        if self.archive is not None:
            self.archive.put([item for r in records for item in r.archive])
        self.index.store(records)

    def _read_job(self, files: JobFiles) -> tuple[bytes | None, bytes | None, Checkpoint, float]:
        return read_job(files)

    def _workers_for(self, jobs: int) -> int:
        """How many worker processes build this pass's records (1: in this process)."""
        if self.workers is not None:
            return max(1, self.workers) if jobs >= 2 else 1
        if jobs < self.pool_min_jobs:
            return 1
        return max(1, min(2, os.cpu_count() or 1))

    def _built(self, todo: list[JobFiles], stop: threading.Event | None) -> Iterator[_Built]:
        """The outcome of building each job of ``todo``, in order."""
        workers = self._workers_for(len(todo))
        archive = self.archive
        if workers <= 1:
            for files in todo:
                if stop is not None and stop.is_set():
                    return
                yield _build_job(files, self.anonymizer, archive, self.codec)
            return
        packer = Packer(archive.codec.name) if archive is not None else None
        context = multiprocessing.get_context("spawn")  # no fork of a threaded process
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_worker_init,
            initargs=(self.anonymizer, packer, self.codec.name),
        )
        chunk = self.pool_chunk
        chunks = (todo[i : i + chunk] for i in range(0, len(todo), chunk))
        pending: collections.deque[concurrent.futures.Future[list[_Built]]] = collections.deque()
        try:
            for part in chunks:
                pending.append(pool.submit(_worker_build, part))
                if len(pending) >= workers * 4:  # a bounded window: records are big
                    yield from pending.popleft().result()
                    if stop is not None and stop.is_set():
                        return
            while pending:
                yield from pending.popleft().result()
                if stop is not None and stop.is_set():
                    return
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def run_pass(
        self, *, progress: Progress | None = None, stop: threading.Event | None = None
    ) -> PassReport:
        """Index every new or changed job once; never raises for one job's problem."""
        with fewer_gc_passes():
            return self._run_pass(progress, stop)

    def _run_pass(self, progress: Progress | None, stop: threading.Event | None) -> PassReport:
        started = time.monotonic()
        report = PassReport()
        problems: list[ScanProblem] = []
        todo, report.seen = self.plan(problems)
        report.errors.extend((p.path, p.message) for p in problems)
        report.changed = len(todo)
        errors_lock = threading.Lock()
        stored = [0]
        # batches are big (tens of MB of text): few wait
        batches: queue.Queue[list[JobRecord] | None] = queue.Queue(maxsize=2)

        def writer() -> None:
            while True:
                batch = batches.get()
                if batch is None:
                    return
                try:
                    self._store(batch)
                    stored[0] += len(batch)
                except Exception:  # noqa: BLE001 - store them one by one, to find the bad one
                    for record in batch:
                        try:
                            self._store([record])
                            stored[0] += 1
                        except Exception as exc:  # noqa: BLE001 - reported, not fatal
                            with errors_lock:
                                report.errors.append((record.info.path, f"cannot store: {exc}"))

        thread = threading.Thread(target=writer, name="gwms-index-writer", daemon=True)
        thread.start()
        batch: list[JobRecord] = []
        done = 0
        try:
            for path, record, nbytes, error in self._built(todo, stop):
                report.bytes_read += nbytes
                if record is None:
                    with errors_lock:
                        report.errors.append((path, error or "not indexed"))
                else:
                    batch.append(record)
                    if len(batch) >= self.batch_size:
                        batches.put(batch)
                        batch = []
                done += 1
                if progress is not None:
                    progress(done, len(todo), len(report.errors))
            if stop is not None and stop.is_set() and done < len(todo):
                report.stopped = True
        finally:
            if batch:
                batches.put(batch)
            batches.put(None)
            thread.join()
        report.indexed = stored[0]
        if report.indexed:
            self.index.maintain()
        if self.retention is not None and self.retention.active and self.archive is not None:
            report.pruned = prune(self.index, self.archive, self.retention)
            report.errors.extend(("retention", e) for e in report.pruned.errors)
        report.seconds = time.monotonic() - started
        return report

    def follow(
        self,
        interval: float,
        stop: threading.Event,
        *,
        on_pass: Callable[[PassReport], None] | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Run passes every ``interval`` seconds until ``stop`` is set; the passes run."""
        passes = 0
        while not stop.is_set():
            report = self.run_pass(progress=progress, stop=stop)
            passes += 1
            if on_pass is not None:
                on_pass(report)
            stop.wait(interval)
        return passes
