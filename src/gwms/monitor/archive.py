"""The per-job archive: original and anonymized log files, compressed, with retention.

Each job's archive is a tar of its ``job.C.P.out`` and ``job.C.P.err`` (their mtimes
kept), compressed with zstd when the ``zstandard`` package is installed, else gzip level
1: chosen for speed, since the indexer compresses everything it reads. A download is that
``.tar.zst`` / ``.tar.gz``, which ``tar xf`` opens.

The archives are kept as blobs in one SQLite file, ``archive.sqlite`` (0600, since it
holds originals), one row per job and kind (``original`` / ``anonymized``), not as one
file per job: creating a file costs a few hundred microseconds of file-system work on
the machines measured, more than all the rest of archiving a job, and millions of small
files are hard on any file system. Writes come in batches (one transaction each, from
the indexer's writer thread); retention deletes rows and gives the pages back
(incremental vacuum).

Retention (:func:`plan_prune`, a pure decision, and :func:`prune`, which carries it out)
drops jobs older than a maximum age, originals older than their own (usually shorter)
age, and then the oldest jobs until the total size fits a maximum.
"""

from __future__ import annotations

import io
import os
import re
import sqlite3
import tarfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from gwms.errors import GwmsError
from gwms.monitor.compression import Codec, CodecError, codec_named, default_codec
from gwms.monitor.index import LogIndex, RetentionEntry
from gwms.monitor.thread_connections import PerThreadConnections

__all__ = [
    "ARCHIVE_KINDS",
    "Archive",
    "ArchiveError",
    "ArchiveItem",
    "Packer",
    "PrunePlan",
    "PruneReport",
    "RetentionPolicy",
    "pack",
    "parse_size",
    "plan_prune",
    "prune",
    "unpack",
]

ArchiveKind = Literal["original", "anonymized"]
ARCHIVE_KINDS: tuple[ArchiveKind, ...] = ("original", "anonymized")
_SUFFIXES = {"zstd": ".tar.zst", "gzip": ".tar.gz"}
_MEDIA_TYPES = {"zstd": "application/zstd", "gzip": "application/gzip"}


class ArchiveError(GwmsError):
    """An archive is missing or unreadable, or a job path is not one."""

    http_status = 404


@dataclass(frozen=True)
class ArchiveItem:
    """One job's archive of one kind, packed: what :meth:`Archive.put` stores."""

    path: str
    kind: ArchiveKind
    codec: str
    blob: bytes

    @property
    def size(self) -> int:
        """Bytes stored."""
        return len(self.blob)

    @property
    def suffix(self) -> str:
        """``.tar.zst`` or ``.tar.gz``."""
        return _SUFFIXES[self.codec]

    @property
    def media_type(self) -> str:
        """``application/zstd`` or ``application/gzip``."""
        return _MEDIA_TYPES[self.codec]


def _check_job_path(job_path: str) -> str:
    p = PurePosixPath(job_path)
    if (
        not job_path
        or p.is_absolute()
        or any(part in ("", ".", "..") for part in job_path.split("/"))
    ):
        raise ArchiveError(f"bad job path {job_path!r}")
    return job_path


def pack(
    job_path: str,
    kind: ArchiveKind,
    files: Mapping[str, bytes],
    mtimes: Mapping[str, float] | None = None,
    codec: Codec | None = None,
) -> ArchiveItem:
    """Tar ``files`` (name -> content) and compress them: a job's archive, ready to store."""
    if kind not in ARCHIVE_KINDS:
        raise ArchiveError(f"unknown archive kind {kind!r}")
    codec = codec or default_codec()
    mode = 0o600 if kind == "original" else 0o644
    entries = [
        (PurePosixPath(name).name, data, int((mtimes or {}).get(name, 0)))
        for name, data in files.items()
    ]
    tar = _plain_tar(entries, mode)
    if tar is None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as out:
            for name, data, mtime in entries:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = mode
                info.mtime = mtime
                out.addfile(info, io.BytesIO(data))
        tar = buf.getvalue()
    return ArchiveItem(_check_job_path(job_path), kind, codec.name, codec.compress(tar))


_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE
_OCTAL_11 = 8**11  # the largest size or mtime a plain ustar header holds, plus one


def _plain_tar(entries: Sequence[tuple[str, bytes, int]], mode: int) -> bytes | None:
    """The bytes ``tarfile`` writes (PAX format) for regular files with short ASCII names
    (name, data, mtime), owned by uid/gid 0 without names; None when one needs more than a
    plain ustar header (``tarfile`` then writes it). Written directly: ``tarfile`` spends
    more time on two headers than compressing the whole archive takes."""
    parts: list[bytes] = []
    for name, data, mtime in entries:
        raw = name.encode("ascii", "replace")
        size = len(data)
        if (
            not name.isascii()
            or not name
            or len(raw) > 100
            or not 0 <= size < _OCTAL_11
            or not 0 <= mtime < _OCTAL_11
        ):
            return None
        head = b"".join(
            (
                raw.ljust(100, b"\0"),
                b"%07o\0" % (mode & 0o7777),
                b"0000000\0",  # uid
                b"0000000\0",  # gid
                b"%011o\0" % size,
                b"%011o\0" % mtime,
                b"        ",  # the checksum, counted as spaces
                tarfile.REGTYPE,
                bytes(100),  # link name
                tarfile.POSIX_MAGIC,
                bytes(64),  # user and group names
                bytes(16 + 155),  # device numbers (none for a file), prefix
            )
        ).ljust(_BLOCK, b"\0")
        head = head[:148] + b"%06o\0 " % sum(head) + head[156:]
        parts.append(head)
        parts.append(data)
        if size % _BLOCK:
            parts.append(bytes(_BLOCK - size % _BLOCK))
    parts.append(bytes(2 * _BLOCK))
    total = sum(len(p) for p in parts)
    if total % _RECORD:
        parts.append(bytes(_RECORD - total % _RECORD))
    return b"".join(parts)


class _PacksArchives:
    """Mixin: :meth:`pack` with the codec the object packs with (:meth:`_packing_codec`)."""

    def _packing_codec(self) -> Codec:
        raise NotImplementedError

    def pack(
        self,
        job_path: str,
        kind: ArchiveKind,
        files: Mapping[str, bytes],
        mtimes: Mapping[str, float] | None = None,
    ) -> ArchiveItem:
        """:func:`pack` with this object's codec."""
        return pack(job_path, kind, files, mtimes, self._packing_codec())


@dataclass(frozen=True)
class Packer(_PacksArchives):
    """Packs archives with one codec, by name: what an indexing worker process needs of an
    :class:`Archive` (which it cannot share), to hand the packed items back."""

    codec_name: str

    def _packing_codec(self) -> Codec:
        return codec_named(self.codec_name)


def unpack(item: ArchiveItem) -> dict[str, bytes]:
    """The files of a packed archive, by name."""
    try:
        data = codec_named(item.codec).decompress(item.blob)
        out: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar.getmembers():
                if member.isfile():
                    fh = tar.extractfile(member)
                    if fh is not None:
                        out[member.name] = fh.read()
    except (OSError, tarfile.TarError, CodecError) as exc:
        raise ArchiveError(f"cannot read the {item.kind} archive of {item.path}: {exc}") from None
    return out


_SCHEMA = """
CREATE TABLE IF NOT EXISTS archive (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    kind TEXT NOT NULL,
    codec TEXT NOT NULL,
    size INTEGER NOT NULL,
    written REAL NOT NULL,
    blob BLOB NOT NULL,
    UNIQUE (path, kind)
);
"""


class Archive(_PacksArchives, PerThreadConnections[sqlite3.Connection]):
    """The archive in ``root``/archive.sqlite (see the module docstring).

    Args:
        root: the archive directory (created when first written).
        codec: how new archives are compressed (default: zstd level 1, else gzip level 1).

    Connections are per thread; writes are batched by the caller (:meth:`put`).
    """

    def __init__(self, root: str | os.PathLike[str], codec: Codec | None = None) -> None:
        self.root = Path(root)
        self.path = self.root / "archive.sqlite"
        self.codec = codec or default_codec()
        self._init_connections(sqlite3.Error)

    def _conn(self) -> sqlite3.Connection:
        conn = self._thread_conn()
        if conn is not None:
            return conn
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():  # made private before SQLite writes anything into it
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        try:
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect on a new file
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ArchiveError(f"cannot open the archive {self.path}: {exc}") from None
        return self._adopt_conn(conn)

    def _packing_codec(self) -> Codec:
        return self.codec

    def put(self, items: Sequence[ArchiveItem]) -> None:
        """Store (or replace) archives, all in one transaction."""
        if not items:
            return
        conn = self._conn()
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            # a few multi-row statements, not one per row: each statement gives up and
            # takes back Python's GIL, which the indexer's parsing thread is holding
            for i in range(0, len(items), 4000):
                chunk = items[i : i + 4000]
                conn.execute(
                    "INSERT INTO archive (path, kind, codec, size, written, blob) VALUES "
                    + ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk))
                    + " ON CONFLICT (path, kind) DO UPDATE SET codec = excluded.codec,"
                    " size = excluded.size, written = excluded.written, blob = excluded.blob",
                    [
                        v
                        for it in chunk
                        for v in (it.path, it.kind, it.codec, it.size, now, it.blob)
                    ],
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def write(
        self,
        job_path: str,
        kind: ArchiveKind,
        files: Mapping[str, bytes],
        mtimes: Mapping[str, float] | None = None,
    ) -> ArchiveItem:
        """Pack and store one job's archive at once."""
        item = self.pack(job_path, kind, files, mtimes)
        self.put([item])
        return item

    def get(self, job_path: str, kind: ArchiveKind) -> ArchiveItem | None:
        """A job's packed archive (for downloads), or None."""
        _check_job_path(job_path)
        row = (
            self._conn()
            .execute(
                "SELECT codec, blob FROM archive WHERE path = ? AND kind = ?", (job_path, kind)
            )
            .fetchone()
        )
        return None if row is None else ArchiveItem(job_path, kind, row[0], row[1])

    def exists(self, job_path: str, kind: ArchiveKind) -> bool:
        """True if the archive holds this job's files of ``kind``."""
        return (
            self._conn()
            .execute("SELECT 1 FROM archive WHERE path = ? AND kind = ?", (job_path, kind))
            .fetchone()
            is not None
        )

    def read(self, job_path: str, kind: ArchiveKind) -> dict[str, bytes]:
        """Every file in a job's archive, by name."""
        item = self.get(job_path, kind)
        if item is None:
            raise ArchiveError(f"no {kind} archive of {job_path}")
        return unpack(item)

    def delete(self, job_path: str, kinds: Iterable[ArchiveKind] = ARCHIVE_KINDS) -> int:
        """Delete a job's archives of ``kinds``; the bytes freed."""
        conn = self._conn()
        freed = 0
        for kind in kinds:
            row = conn.execute(
                "DELETE FROM archive WHERE path = ? AND kind = ? RETURNING size", (job_path, kind)
            ).fetchone()
            freed += row[0] if row else 0
        return freed

    def reclaim(self) -> None:
        """Give the pages of deleted archives back to the file system."""
        self._conn().execute("PRAGMA incremental_vacuum")

    def stats(self) -> dict[str, int]:
        """Archives and bytes stored, per kind."""
        out: dict[str, int] = {}
        for kind, n, size in self._conn().execute(
            "SELECT kind, count(*), coalesce(sum(size), 0) FROM archive GROUP BY kind"
        ):
            out[f"{kind}_archives"] = n
            out[f"{kind}_bytes"] = size
        return out


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
    return (
        (e.original_bytes if original and e.has_original else 0) + e.anonymized_bytes + e.text_bytes
    )


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
    if dropped or originals:
        archive.reclaim()
    report.jobs_dropped = len(dropped)
    report.originals_dropped = len(originals)
    return report
