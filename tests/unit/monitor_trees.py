"""Generated factory log trees for the monitor's tests (helpers, not tests)."""

from __future__ import annotations

import re
import tarfile
from io import BytesIO
from pathlib import Path

from gwms.monitor.compression import codec_named
from gwms.monitor.samples import (
    ALL_SECTION_NAMES,
    Planted,
    SampleJob,
    make_job,
    make_world,
    write_job,
)

WORLD = make_world(21)


def varied_jobs(count: int = 8, *, seed: int = 0, lines: int = 24) -> list[SampleJob]:
    """Jobs covering every section name, 60- and 76-column base64, several gzip
    members, header prefixes, ``==== }`` trailers, truncated sections and exit codes."""
    jobs = []
    for i in range(count):
        truncate = (
            {"StarterLog"} if i % 3 == 1 else ({"XML", "GlideinLog"} if i % 3 == 2 else set())
        )
        jobs.append(
            make_job(
                WORLD,
                seed * 1000 + i,
                cluster=2000 + i,
                proc=i % 2,
                lines=lines,
                columns=60 if i % 2 else 76,
                multi_member=i % 2 == 0,
                truncate=truncate,
                header_prefix=i % 4 == 0,
                exit_code=[0, 1, 137, 0][i % 4],
            )
        )
    return jobs


def write_jobs(root: Path, jobs: list[SampleJob]) -> Path:
    """Write jobs under ``root/client/...`` (the factory's layout); ``root``."""
    for job in jobs:
        write_job(root, job)
    return root


def expected_names(job: SampleJob) -> list[str]:
    """The section names the index should list for a job, in order."""
    return ["out", "err", *[n for n in ALL_SECTION_NAMES if n in job.sections]]


def planted(jobs: list[SampleJob]) -> Planted:
    """Every identifying value planted in ``jobs``."""
    p = Planted()
    for j in jobs:
        p.merge(j.planted)
    return p


def leaks(blob: str, p: Planted) -> list[str]:
    """Planted values found in ``blob`` (independent, simple patterns)."""
    found: list[str] = []
    low = blob.lower()
    for user in p.users | p.groups:
        if re.search(rf"(?<![A-Za-z0-9]){re.escape(user)}(?![A-Za-z0-9])", blob):
            found.append(user)
    for host in p.hosts:
        if host.lower() in low:
            found.append(host)
    for ip in p.ipv4:
        if re.search(rf"(?<![\d.]){re.escape(ip)}(?![\d])", blob):
            found.append(ip)
    for ip in p.ipv6:
        if ip in blob or ip.replace(":", "-") in blob:
            found.append(ip)
    for value in p.dns | p.emails | p.secrets | p.fqans:
        if value in blob:
            found.append(value)
    for value in p.job_ids:
        if re.search(rf"(?<![\d]){re.escape(value)}(?![\d])", blob):
            found.append(value)
    if re.search(r"/DC=|CN=[A-Z][a-z]+ [A-Z]", blob):
        found.append("a DN")
    for m in re.finditer(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)", blob):
        if not m.group(1).endswith((".anon", ".invalid")):
            found.append(m.group())
    return found


def untar(blob: bytes, codec: str) -> dict[str, bytes]:
    """The files of a packed archive, opened independently of the archive module."""
    with tarfile.open(fileobj=BytesIO(codec_named(codec).decompress(blob)), mode="r:") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
