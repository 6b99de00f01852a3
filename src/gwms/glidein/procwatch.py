"""Watching and stopping job process trees through ``/proc`` (Linux).

Every job runs as the leader of its own session (``setsid``), so its processes are the
ones whose session id is the job's pid, even those that moved to another process group.
:class:`Watcher` is one thread per agent: every ``interval`` it reads ``/proc`` once (only
while jobs run), sums the resident memory of each job's session, keeps the peak, and
calls a job's ``check`` so it can enforce its memory and walltime limits; it also sends
the SIGKILL that follows a SIGTERM after the grace time.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class ProcInfo:
    """What ``/proc/<pid>/stat`` says about one process."""

    pid: int
    ppid: int
    pgrp: int
    session: int
    rss_kb: int
    cpu_seconds: float


def parse_stat(text: str, *, page_kb: int = PAGE_KB, ticks: int = CLOCK_TICKS) -> ProcInfo | None:
    """Parse the text of ``/proc/<pid>/stat`` (the command name may hold spaces and ``)``)."""
    head, sep, rest = text.rpartition(")")
    if not sep:
        return None
    try:
        pid = int(head.split("(", 1)[0])
        f = rest.split()
        # f[0] is field 3 (state): ppid 4, pgrp 5, session 6, utime 14, stime 15, rss 24
        return ProcInfo(
            pid=pid,
            ppid=int(f[1]),
            pgrp=int(f[2]),
            session=int(f[3]),
            rss_kb=int(f[21]) * page_kb,
            cpu_seconds=(int(f[11]) + int(f[12])) / ticks,
        )
    except (ValueError, IndexError):
        return None


def read_proc(pid: int) -> ProcInfo | None:
    """The :class:`ProcInfo` of a live process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return parse_stat(f.read().decode("utf-8", "replace"))
    except OSError:
        return None


def processes_in_sessions(sessions: Iterable[int]) -> dict[int, list[ProcInfo]]:
    """The live processes of each session id in ``sessions``."""
    wanted = set(sessions)
    found: dict[int, list[ProcInfo]] = {s: [] for s in wanted}
    if not wanted:
        return found
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if not name.isdigit():
            continue
        info = read_proc(int(name))
        if info is not None and info.session in wanted:
            found[info.session].append(info)
    return found


def signal_session(session: int, sig: int, *, scan: bool = True) -> int:
    """Send ``sig`` to the process group ``session`` and (``scan``) to every other process
    of that session; how many processes were found by the scan."""
    try:
        os.killpg(session, sig)
    except (ProcessLookupError, PermissionError):
        pass
    if not scan:
        return 0
    n = 0
    for info in processes_in_sessions([session]).get(session, []):
        try:
            os.kill(info.pid, sig)
            n += 1
        except (ProcessLookupError, PermissionError):
            pass
    return n


class Watched:
    """A job the :class:`Watcher` samples: its session, peak memory and pending kill."""

    def __init__(self, session: int, check: Callable[[Watched, float], None], *, since: float | None = None) -> None:
        self.session = session
        self.check = check
        self.since = time.monotonic() if since is None else since
        self.rss_mb = 0.0
        self.peak_rss_mb = 0.0
        self.kill_at: float | None = None  # monotonic time of the SIGKILL after a SIGTERM
        self.lock = threading.Lock()

    def terminate(self, grace: float, now: float) -> None:
        """SIGTERM the job's session now and SIGKILL it after ``grace`` seconds (0: at once)."""
        with self.lock:
            if grace <= 0:
                self.kill_at = now
                signal_session(self.session, signal.SIGKILL)
                return
            if self.kill_at is None or self.kill_at > now + grace:
                self.kill_at = now + grace
        signal_session(self.session, signal.SIGTERM)


class Watcher:
    """The agent's process watcher thread (see the module docstring)."""

    def __init__(self, interval: float = 1.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._jobs: set[Watched] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self._run, name="procwatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)

    def add(self, job: Watched) -> None:
        """Watch ``job`` from the next tick on."""
        with self._lock:
            self._jobs.add(job)
        self._wake.set()

    def remove(self, job: Watched) -> None:
        """Stop watching ``job``."""
        with self._lock:
            self._jobs.discard(job)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                idle = not self._jobs
            if idle:
                self._wake.wait()
                self._wake.clear()
                continue
            self._stop.wait(self.interval)
            if not self._stop.is_set():
                self.tick()

    def tick(self) -> None:
        """Sample every watched job once and enforce what is due.

        Jobs younger than half an interval wait for the next tick: a stream of very short
        jobs then costs no ``/proc`` scans at all.
        """
        now = self.clock()
        with self._lock:
            jobs = [j for j in self._jobs if now - j.since >= self.interval / 2 or j.kill_at is not None]
        if not jobs:
            return
        procs = processes_in_sessions(j.session for j in jobs)
        for job in jobs:
            members = procs.get(job.session, [])
            rss = sum(p.rss_kb for p in members) / 1024.0
            job.rss_mb = rss
            job.peak_rss_mb = max(job.peak_rss_mb, rss)
            try:
                job.check(job, now)
            except Exception:  # noqa: BLE001, S110 - a job's check must never stop the watcher
                pass
            if job.kill_at is not None and now >= job.kill_at and members:
                signal_session(job.session, signal.SIGKILL)
