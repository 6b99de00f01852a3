"""The per-job archive: original and anonymized log files, compressed, with retention.

Layout under the archive root::

    original/user_<fe>/glidein_<inst>/entry_<entry>/job.C.P.tar.zst    (0600: may hold secrets)
    anonymized/user_<fe>/glidein_<inst>/entry_<entry>/job.C.P.tar.zst

Each file is a tar of the job's ``job.C.P.out`` and ``job.C.P.err`` (their mtimes kept),
compressed with zstd when the ``zstandard`` package is installed, else gzip level 1
(``.tar.gz``): chosen for speed, the indexer compresses everything it reads. Both open
with ``tar xf`` (GNU tar detects the compression).

Retention (:func:`plan_prune`, a pure decision, and :func:`prune`, which carries it out)
drops jobs older than a maximum age, originals older than their own (usually shorter)
age, and then the oldest jobs until the total size fits a maximum.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from gwms.errors import GwmsError
from gwms.monitor.compression import Codec, codec_named, default_codec
from gwms.monitor.index import LogIndex, RetentionEntry

__all__ = [
    "ARCHIVE_KINDS",
    "Archive",
    "ArchiveError",
    "ArchivedFile",
    "PrunePlan",
    "PruneReport",
    "RetentionPolicy",
    "parse_size",
    "plan_prune",
    "prune",
]

ArchiveKind = Literal["original", "anonymized"]
ARCHIVE_KINDS: tuple[ArchiveKind, ...] = ("original", "anonymized")
_SUFFIXES = {"zstd": ".tar.zst", "gzip": ".tar.gz"}


class ArchiveError(GwmsError):
    """An archive file is missing, unreadable, or a job path would leave the archive."""

    http_status = 404


@dataclass(frozen=True)
class ArchivedFile:
    """One written archive file: where, how big, compressed how."""

    path: Path
    size: int
    codec: str


def _check_job_path(job_path: str) -> PurePosixPath:
    p = PurePosixPath(job_path)
    if p.is_absolute() or not p.parts or any(part in ("", ".", "..") for part in p.parts):
        raise ArchiveError(f"bad job path {job_path!r}")
    return p


class Archive:
    """The archive under ``root`` (see the module docstring for the layout).

    Args:
        root: the archive directory (created when first written).
        codec: how new files are compressed (default: zstd level 3, else gzip level 1).
    """

    def __init__(self, root: str | os.PathLike[str], codec: Codec | None = None) -> None:
        self.root = Path(root)
        self.codec = codec or default_codec()
        self._made: set[Path] = set()  # directories known to exist

    def _base(self, job_path: str, kind: ArchiveKind) -> Path:
        if kind not in ARCHIVE_KINDS:
            raise ArchiveError(f"unknown archive kind {kind!r}")
        return self.root / kind / Path(*_check_job_path(job_path).parts)

    def path_for(self, job_path: str, kind: ArchiveKind) -> Path | None:
        """The archive file of a job, whatever its codec, or None if there is none."""
        base = self._base(job_path, kind)
        for suffix in _SUFFIXES.values():
            candidate = base.with_name(base.name + suffix)
            if candidate.is_file():
                return candidate
        return None

    def write(
        self,
        job_path: str,
        kind: ArchiveKind,
        files: Mapping[str, bytes],
        mtimes: Mapping[str, float] | None = None,
        *,
        replacing: bool = True,
    ) -> ArchivedFile:
        """Write (or replace) a job's archive of ``files`` (name -> content).

        ``replacing=False`` (a job never archived before) skips looking for a copy
        written with another codec, which saves the indexer a file-system call per job.
        """
        base = self._base(job_path, kind)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(PurePosixPath(name).name)
                info.size = len(data)
                info.mode = 0o600 if kind == "original" else 0o644
                info.mtime = int((mtimes or {}).get(name, 0))
                tar.addfile(info, io.BytesIO(data))
        blob = self.codec.compress(buf.getvalue())
        directory = base.parent
        if directory not in self._made:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700 if kind == "original" else 0o755)
            self._made.add(directory)
        name = base.name + _SUFFIXES[self.codec.name]
        target = directory / name
        tmp = directory / f".{name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if kind == "original" else 0o644)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if replacing:  # a copy written before with another codec is stale now
            for suffix in _SUFFIXES.values():
                other = directory / (base.name + suffix)
                if other != target:
                    other.unlink(missing_ok=True)
        return ArchivedFile(target, len(blob), self.codec.name)

    def read(self, job_path: str, kind: ArchiveKind) -> dict[str, bytes]:
        """Every file in a job's archive, by name."""
        path = self.path_for(job_path, kind)
        if path is None:
            raise ArchiveError(f"no {kind} archive of {job_path}")
        codec = codec_named("zstd" if path.name.endswith(".zst") else "gzip")
        try:
            data = codec.decompress(path.read_bytes())
            out: dict[str, bytes] = {}
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
                for member in tar.getmembers():
                    if member.isfile():
                        fh = tar.extractfile(member)
                        if fh is not None:
                            out[member.name] = fh.read()
        except (OSError, tarfile.TarError) as exc:
            raise ArchiveError(f"cannot read {path}: {exc}") from None
        return out

    def media_type(self, path: Path) -> str:
        """The HTTP media type of an archive file."""
        return "application/zstd" if path.name.endswith(".zst") else "application/gzip"

    def delete(self, job_path: str, kinds: Iterable[ArchiveKind] = ARCHIVE_KINDS) -> int:
        """Delete a job's archive files of ``kinds``; the bytes freed."""
        freed = 0
        for kind in kinds:
            base = self._base(job_path, kind)
            for suffix in _SUFFIXES.values():
                p = base.with_name(base.name + suffix)
                try:
                    size = p.stat().st_size
                    p.unlink()
                    freed += size
                except FileNotFoundError:
                    continue
        return freed


# ----------------------------------------------------------------------------------
# retention

_SIZE = re.compile(r"(\d+(?:\.\d*)?)\s*([kmgt]?)(i?)b?", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(text: str) -> int:
    """A size in bytes: ``123456``, ``500M``, ``20G``, ``1.5T`` (decimal), ``4GiB`` (binary)."""
    m = _SIZE.fullmatch(text.strip())
    if m is None:
        raise GwmsError(f"not a size: {text!r}", hint="e.g. 500M, 20G, 4GiB")
    base = 1024 if m.group(3) else 1000
    return int(float(m.group(1)) * base ** _POWERS[m.group(2).lower()])


@dataclass(frozen=True)
class RetentionPolicy:
    """How long and how much to keep (None: no limit).

    ``max_age_seconds``: jobs (archives and texts) older than this go;
    ``original_max_age_seconds``: originals older than this go (the anonymized copy stays);
    ``max_bytes``: then the oldest jobs go until archives + stored texts fit.
    """

    max_age_seconds: float | None = None
    max_bytes: int | None = None
    original_max_age_seconds: float | None = None

    @property
    def active(self) -> bool:
        """True if any limit is set."""
        return any(
            v is not None
            for v in (self.max_age_seconds, self.max_bytes, self.original_max_age_seconds)
        )


@dataclass(frozen=True)
class PrunePlan:
    """Jobs to drop entirely, and jobs whose originals only go."""

    drop: tuple[int, ...] = ()
    drop_original: tuple[int, ...] = ()
    bytes_before: int = 0
    bytes_after: int = 0


def _weight(e: RetentionEntry, original: bool = True) -> int:
    return (e.original_bytes if original and e.has_original else 0) + e.anonymized_bytes + e.text_bytes


def plan_prune(entries: Sequence[RetentionEntry], policy: RetentionPolicy, now: float) -> PrunePlan:
    """Decide what retention removes (pure: the entries in, the plan out).

    Age first (whole jobs, then originals), then size: the oldest remaining jobs go
    until the total is within ``max_bytes``. A job is never dropped for size while an
    older one stays.
    """
    live = sorted((e for e in entries if e.has_data), key=lambda e: (e.epoch, e.job_id))
    before = sum(_weight(e) for e in live)
    drop: list[int] = []
    drop_original: list[int] = []
    kept: list[tuple[RetentionEntry, bool]] = []  # (entry, original kept)
    for e in live:
        age = now - e.epoch
        if policy.max_age_seconds is not None and age > policy.max_age_seconds:
            drop.append(e.job_id)
            continue
        keep_original = e.has_original
        if (
            e.has_original
            and policy.original_max_age_seconds is not None
            and age > policy.original_max_age_seconds
        ):
            drop_original.append(e.job_id)
            keep_original = False
        kept.append((e, keep_original))
    total = sum(_weight(e, orig) for e, orig in kept)
    if policy.max_bytes is not None:
        i = 0
        while total > policy.max_bytes and i < len(kept):
            e, orig = kept[i]
            total -= _weight(e, orig)
            drop.append(e.job_id)
            if e.job_id in drop_original:
                drop_original.remove(e.job_id)
            i += 1
    return PrunePlan(tuple(drop), tuple(drop_original), before, total)


@dataclass
class PruneReport:
    """What :func:`prune` removed."""

    jobs_dropped: int = 0
    originals_dropped: int = 0
    bytes_freed: int = 0
    errors: list[str] = field(default_factory=list)


def prune(
    index: LogIndex, archive: Archive, policy: RetentionPolicy, *, now: float | None = None
) -> PruneReport:
    """Apply ``policy``: delete archive files, then record it in the index.

    Pruned jobs stay in the index as rows without texts (their summaries remain
    searchable), so unchanged source files are not indexed again.
    """
    report = PruneReport()
    if not policy.active:
        return report
    now = time.time() if now is None else now
    entries = list(index.retention_entries())
    plan = plan_prune(entries, policy, now)
    by_id = {e.job_id: e for e in entries}
    dropped: list[int] = []
    for job_id in plan.drop:
        entry = by_id[job_id]
        try:
            report.bytes_freed += archive.delete(entry.path) + entry.text_bytes
            dropped.append(job_id)
        except (OSError, ArchiveError) as exc:
            report.errors.append(f"{entry.path}: {exc}")
    originals: list[int] = []
    for job_id in plan.drop_original:
        entry = by_id[job_id]
        try:
            report.bytes_freed += archive.delete(entry.path, ("original",))
            originals.append(job_id)
        except (OSError, ArchiveError) as exc:
            report.errors.append(f"{entry.path}: {exc}")
    if dropped:
        index.drop_data(dropped)
    if originals:
        index.drop_data(originals, original_only=True)
    report.jobs_dropped = len(dropped)
    report.originals_dropped = len(originals)
    return report
