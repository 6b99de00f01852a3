"""The real single-node Slurm site for integration tests (deploy/test-sites/slurm/).

``ensure_slurm_site()`` uses a site that is already up (CI's ``.ci/run`` starts it before
``make test``), else starts one with ``up.sh`` (needs root; installs slurm-wlm and munge
with apt-get when missing) and reports that it did, so the caller stops it afterwards
with ``stop_slurm_site()``. Test modules that need Slurm import the module-scoped
``slurm_site`` fixture, which does just that::

    from slurm_site import slurm_site_fixture  # noqa: F401  (the slurm_site fixture)

    def test_x(slurm_site: None) -> None: ...

:func:`squeue` and :func:`scancel_ours` see and clean up a test's own jobs by job name prefix.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SITE_DIR = Path(__file__).resolve().parents[2] / "deploy" / "test-sites" / "slurm"
PARTITION = "debug"
SLURMCTLD_PORT = 6817


def site_ready(timeout: float = 10.0) -> bool:
    """True if ``sinfo`` answers and the node can take jobs."""
    if shutil.which("sinfo") is None:
        return False
    try:  # sinfo takes ~9 s to give up on a controller that is not there
        socket.create_connection(("127.0.0.1", SLURMCTLD_PORT), timeout=2).close()
    except OSError:
        return False
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%T"],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (subprocess.TimeoutExpired, OSError):
        return False
    states = {line.strip().rstrip("*~#") for line in out.stdout.splitlines()}
    return out.returncode == 0 and bool(states & {"idle", "mixed", "allocated"})


def ensure_slurm_site(timeout: float = 240.0) -> bool:
    """Make sure the test site is up; True if this call started it.

    Raises:
        RuntimeError: up.sh failed (its output is in the message).
    """
    if site_ready():
        return False
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", str(SITE_DIR / "up.sh")],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0 or not site_ready():
        raise RuntimeError(
            f"deploy/test-sites/slurm/up.sh failed (rc {proc.returncode}, "
            f"{time.monotonic() - started:.1f} s):\n{proc.stdout}\n{proc.stderr}"
        )
    return True


def stop_slurm_site(timeout: float = 90.0) -> None:
    """Stop the site started by :func:`ensure_slurm_site` (down.sh, by PID)."""
    subprocess.run(
        ["bash", str(SITE_DIR / "down.sh")], check=False, capture_output=True, timeout=timeout
    )


@pytest.fixture(scope="module", name="slurm_site")
def slurm_site_fixture() -> Iterator[None]:
    """A running test site for the module; stopped afterwards if this fixture started it."""
    started = ensure_slurm_site()
    yield
    if started:
        stop_slurm_site()


def squeue(prefix: str) -> dict[str, str]:
    """Job id -> state of our jobs (by job name prefix) that Slurm still lists as queued or running."""
    out = subprocess.run(["squeue", "-h", "-o", "%i|%j|%T"], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    jobs = {}
    for line in out.splitlines():
        job_id, name, state = (line.split("|") + ["", "", ""])[:3]
        if name.startswith(prefix) and state not in ("COMPLETED", "CANCELLED", "FAILED"):
            jobs[job_id] = state
    return jobs


def scancel_ours(prefix: str) -> None:
    """Cancel whatever the test leaves behind (by job name prefix; never other people's jobs)."""
    for job_id in squeue(prefix):
        subprocess.run(["scancel", job_id], capture_output=True, timeout=30, check=False)
