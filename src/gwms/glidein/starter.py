"""The starter: runs one job in its own sandbox and says how it ended.

For each job (:class:`JobRun`):

1. a sandbox directory under the agent's work directory, the input sandbox unpacked in
   it (when the schedd spooled one);
2. the command: the base name of ``Cmd`` in the sandbox if the executable was
   transferred (``GwmsSpooledInput`` and ``TransferExecutable`` not false), else ``Cmd``;
   arguments from ``Arguments`` (new syntax) or ``Args`` (old);
3. the environment: the slot's published attributes, the job's ``Environment`` (or
   ``Env``), then ``_CONDOR_SCRATCH_DIR``, ``_CONDOR_JOB_AD`` and ``_CONDOR_MACHINE_AD``
   (files with the ads in the old ClassAd syntax), ``_CONDOR_SLOT``, ``TMPDIR``;
4. stdin/stdout/stderr from ``In``/``Out``/``Err`` (base names, in the sandbox);
5. a new session (so a process group) per job, ``RLIMIT_AS`` of the slot's memory times
   ``address_space_factor``, the session's resident memory watched through ``/proc``
   (over the slot's memory: held, code 34), the job's ``MaxWallTime``/``JobMaxWallTime``
   (over it: held, code 47) and the glidein's die time (vacated); SIGTERM, then SIGKILL
   after ``JobMaxVacateTime`` (default 10 s);
6. exit code or signal, wall time, CPU time (``wait4``), peak memory; the outputs packed
   as a tar.

A job that cannot start (no executable, input missing or unreadable, outputs that cannot
be opened) is *held* with HTCondor's code and a reason that names the cause; it never
counts as completed. The starter does no network I/O except through the ``fetch_input``
callback; the agent reports the :class:`JobResult`.
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from gwms.glidein import attributes as A
from gwms.glidein.daemonlog import DaemonLogs
from gwms.glidein.errors import ClaimGone, JobSpecError
from gwms.glidein.jobad import CaseBlindAd, old_syntax
from gwms.glidein.procwatch import PAGE_KB, Watched, Watcher, signal_session
from gwms.glidein.quoting import job_arguments, job_environment
from gwms.glidein.transfer import (
    TransferError,
    choose_outputs,
    extract_input,
    pack_outputs,
    std_file_name,
    top_level_files,
)

COMPLETED = "completed"
HELD = "held"
VACATED = "vacated"
ABORTED = "aborted"  # the claim is gone: nothing to report

JOB_AD_FILE = ".job.ad"
MACHINE_AD_FILE = ".machine.ad"
COMPRESS_OVER_BYTES = 1 << 20


@dataclass(frozen=True)
class SlotContext:
    """What the starter needs to know about the slot a job runs in."""

    name: str
    short: str
    cpus: int
    memory_mb: int
    disk_kb: int
    gpus: int = 0
    machine_ad: Mapping[str, Any] = field(default_factory=dict)
    published_env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StarterPolicy:
    """Limits the starter applies to every job."""

    kill_grace: float = 10.0
    address_space_factor: float = 2.0  # RLIMIT_AS = memory x factor; 0: none
    max_input_bytes: int = 8 << 30


@dataclass
class JobResult:
    """How a job ended and what to report."""

    outcome: str
    reason: str = ""
    hold_code: int = 0
    hold_subcode: int = 0
    exit_code: int | None = None
    exit_signal: int | None = None
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_memory_mb: float = 0.0
    output: Path | None = None
    output_names: list[str] = field(default_factory=list)

    def completion(self) -> dict[str, Any]:
        """The body of ``POST /v1/claims/{id}/complete``."""
        return {
            "exit_code": self.exit_code,
            "exit_signal": self.exit_signal,
            "wall_seconds": round(self.wall_seconds, 6),
            "cpu_seconds": round(self.cpu_seconds, 6),
            "peak_memory_mb": round(self.peak_memory_mb, 3),
        }


def job_label(ad: CaseBlindAd) -> str:
    """``cluster.proc`` of a job ad (``?`` where missing)."""
    c, p = ad.number(A.CLUSTER_ID), ad.number(A.PROC_ID)
    return f"{int(c) if c is not None else '?'}.{int(p) if p is not None else '?'}"


def max_wall_time(ad: CaseBlindAd) -> float | None:
    """The job's walltime limit in seconds (``MaxWallTime`` or ``JobMaxWallTime``), if any."""
    for name in (A.MAX_WALL_TIME, A.JOB_MAX_WALL_TIME):
        value = ad.number(name)
        if value is not None and value > 0:
            return value
    return None


def _popen_retrying_busy_text(argv: list[str], attempts: int = 8, **kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen``, tried again on ETXTBSY ("Text file busy").

    The agent runs several slots in threads: while one slot's sandbox executable was
    still open for writing, a child forked for another slot may hold that descriptor
    until it execs, and exec of the freshly written file then fails with ETXTBSY for a
    moment. Any other error, or ETXTBSY that lasts, is raised.
    """
    for attempt in range(attempts):
        try:
            return subprocess.Popen(argv, **kwargs)
        except OSError as exc:
            if exc.errno != errno.ETXTBSY or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def executable_path(ad: CaseBlindAd, sandbox: Path) -> tuple[Path, bool]:
    """The program to run and whether it came with the input sandbox."""
    cmd = ad.string(A.CMD) or ""
    if not cmd:
        raise JobSpecError("the job has no Cmd")
    transferred = ad.boolean(A.SPOOLED_INPUT) is True and ad.boolean(A.TRANSFER_EXECUTABLE) is not False
    if transferred:
        return sandbox / os.path.basename(cmd.rstrip("/")), True
    path = Path(cmd)
    return (path if path.is_absolute() else sandbox / path), False


def job_env(ad: CaseBlindAd, slot: SlotContext, sandbox: Path) -> dict[str, str]:
    """The job's environment (see the module docstring for the layers)."""
    env: dict[str, str] = dict(slot.published_env)
    env.update(job_environment(ad))
    scratch = str(sandbox)
    for name in ("TMPDIR", "TMP", "TEMP"):
        env.setdefault(name, scratch)
    env.setdefault("OMP_NUM_THREADS", str(max(slot.cpus, 1)))
    env.update({
        "_CONDOR_SCRATCH_DIR": scratch,
        "_CONDOR_JOB_IWD": scratch,
        "_CONDOR_JOB_AD": str(sandbox / JOB_AD_FILE),
        "_CONDOR_MACHINE_AD": str(sandbox / MACHINE_AD_FILE),
        "_CONDOR_SLOT": slot.short,
        "BATCH_SYSTEM": "HTCondor",
    })
    return env


def self_rss_mb() -> float:
    """This process's peak resident memory in MiB (``VmHWM``; 0 when ``/proc`` is not there).

    The peak, not the current size: a child's ``ru_maxrss`` starts from the parent's
    high-water mark (Linux carries the old address space's peak over ``exec``), so only
    a figure above that peak says anything about the job itself.
    """
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE_KB / 1024.0
    except (OSError, ValueError, IndexError):
        return 0.0


def job_maxrss_mb(ru_maxrss_kb: int, parent_rss_mb: float) -> float:
    """The job's peak memory from ``wait4``'s ``ru_maxrss``, or 0 when it says nothing.

    Linux counts the memory a child had between fork and exec, i.e. a copy of the agent's
    own: a figure not above the agent's resident size at spawn time tells nothing about
    the job (the ``/proc`` samples do then).
    """
    mb = ru_maxrss_kb / 1024.0
    return mb if mb > parent_rss_mb * 1.02 + 1.0 else 0.0


def _errno_text(exc: OSError) -> str:
    return f"(errno={exc.errno}: '{exc.strerror}')"


class JobRun:
    """One job in one sandbox; :meth:`run` blocks until it ended, :meth:`stop` ends it early."""

    def __init__(
        self,
        job: Mapping[str, Any] | CaseBlindAd,
        slot: SlotContext,
        sandbox: Path,
        *,
        watcher: Watcher,
        logs: DaemonLogs,
        policy: StarterPolicy = StarterPolicy(),
        die_at: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.job = job if isinstance(job, CaseBlindAd) else CaseBlindAd(job)
        self.slot = slot
        self.sandbox = Path(os.path.abspath(sandbox))
        self.watcher = watcher
        self.logs = logs
        self.policy = policy
        self.die_at = die_at
        self.clock = clock
        self.label = job_label(self.job)
        self._lock = threading.Lock()
        self._stop: tuple[str, int, str] | None = None  # (outcome, hold code, reason)
        self._watched: Watched | None = None
        self._wall_deadline: float | None = None
        self._die_deadline: float | None = None
        self._max_wall: float | None = None
        self._output_written = False
        vacate = self.job.number(A.JOB_MAX_VACATE_TIME)
        self.grace = vacate if vacate is not None and vacate >= 0 else policy.kill_grace
        #: MiB the job may use: the slot's memory, else the job's RequestMemory, else no limit
        self.memory_limit_mb = slot.memory_mb
        if self.memory_limit_mb <= 0:
            requested = self.job.number(A.REQUEST_MEMORY)
            self.memory_limit_mb = int(requested) if requested is not None and requested > 0 else 0

    # -- control from other threads ----------------------------------------------------
    @property
    def session(self) -> int | None:
        """The job's session id (its pid) once its program started, else None."""
        with self._lock:
            watched = self._watched
        return watched.session if watched is not None else None

    def stop(self, outcome: str, reason: str, *, code: int = 0, grace: float | None = None) -> None:
        """End the job early (``VACATED``, ``ABORTED`` or ``HELD`` with ``code``); the first
        request wins. Before the process exists, it simply will not start."""
        with self._lock:
            if self._stop is None:
                self._stop = (outcome, code, reason)
            watched = self._watched
        if watched is not None:
            watched.terminate(self.grace if grace is None else grace, time.monotonic())

    def _check(self, watched: Watched, now: float) -> None:
        limit = self.memory_limit_mb
        if limit > 0 and watched.rss_mb > limit:
            self.stop(
                HELD,
                f"Job has gone over memory limit of {limit} megabytes. "
                f"Peak usage: {watched.peak_rss_mb:.0f} megabytes.",
                code=A.HOLD_JOB_OUT_OF_RESOURCES,
                grace=0,
            )
        elif self._wall_deadline is not None and now >= self._wall_deadline:
            self.stop(
                HELD,
                f"The job exceeded its maximum wall time of {self._max_wall:g} seconds.",
                code=A.HOLD_JOB_EXECUTE_EXCEEDED,
            )
        elif self._die_deadline is not None and now >= self._die_deadline:
            self.stop(VACATED, "the glidein reached its die time")

    # -- the run ----------------------------------------------------------------------
    def _log(self, message: str, **kw: Any) -> None:
        self.logs.starter(self.slot.short, message, job=self.label, **kw)

    def _hold(self, code: int, reason: str, subcode: int = 0) -> JobResult:
        reason = f"Error from {self.slot.name}: {reason}"
        self._log(f"Job {self.label} put on hold (code {code}): {reason}", severity="warning", type="job_hold")
        return JobResult(HELD, reason=reason, hold_code=code, hold_subcode=subcode)

    def _stopped(self) -> JobResult | None:
        with self._lock:
            stop = self._stop
        if stop is None:
            return None
        outcome, code, reason = stop
        if outcome == HELD:
            return self._hold(code, reason)
        self._log(f"Job {self.label} not started: {reason}")
        return JobResult(outcome, reason=reason)

    def run(self, fetch_input: Callable[[IO[bytes]], bool] | None = None) -> JobResult:
        """Prepare, run and wait for the job; the sandbox stays until :meth:`cleanup`."""
        try:
            self.sandbox.mkdir(parents=True, exist_ok=False)
        except OSError as exc:
            return self._hold(A.HOLD_TRANSFER_INPUT_ERROR, f"cannot create the job's sandbox {self.sandbox}: {_errno_text(exc)}")
        if fetch_input is not None:
            result = self._fetch(fetch_input)
            if result is not None:
                return result
        stopped = self._stopped()
        if stopped is not None:
            return stopped
        return self._execute()

    def _fetch(self, fetch_input: Callable[[IO[bytes]], bool]) -> JobResult | None:
        try:
            with tempfile.TemporaryFile(dir=str(self.sandbox.parent)) as tmp:
                if fetch_input(tmp):
                    tmp.seek(0)
                    names = extract_input(tmp, self.sandbox, max_bytes=self.policy.max_input_bytes)
                    self._log(f"Job {self.label}: {len(names)} input file(s) unpacked")
        except ClaimGone as exc:
            self._log(f"Job {self.label}: claim gone while fetching input: {exc}")
            return JobResult(ABORTED, reason=str(exc))
        except TransferError as exc:
            return self._hold(A.HOLD_TRANSFER_INPUT_ERROR, f"Transfer input files failure: {exc}")
        except OSError as exc:
            return self._hold(A.HOLD_TRANSFER_INPUT_ERROR, f"Transfer input files failure: {_errno_text(exc)}")
        except Exception as exc:  # noqa: BLE001 - HttpError / TransportError from the agent's callback
            status = getattr(exc, "status", None)
            if status is not None:
                return self._hold(A.HOLD_TRANSFER_INPUT_ERROR, f"Transfer input files failure: {exc}")
            self._log(f"Job {self.label}: cannot fetch the input sandbox: {exc}", severity="warning")
            return JobResult(VACATED, reason=f"cannot fetch the input sandbox: {exc}")
        return None

    def _open_std(self) -> tuple[Any, Any, Any] | JobResult:
        ad = self.job
        opened: list[Any] = []

        def close_all() -> None:
            for f in opened:
                f.close()

        stdin: Any = subprocess.DEVNULL
        name = std_file_name(ad.get(A.IN))
        if name is not None:
            path = self.sandbox / name
            raw = ad.string(A.IN) or ""
            if not path.exists() and os.path.isabs(raw) and os.path.exists(raw):
                path = Path(raw)  # not transferred, but reachable here (shared file system)
            if not path.exists():
                return self._hold(
                    A.HOLD_TRANSFER_INPUT_ERROR,
                    f"Transfer input files failure: the job's input file {name!r} is not in its sandbox",
                )
            try:
                stdin = open(path, "rb")  # noqa: SIM115
                opened.append(stdin)
            except OSError as exc:
                return self._hold(A.HOLD_UNABLE_TO_OPEN_INPUT, f"cannot open the job's input file {name!r}: {_errno_text(exc)}", exc.errno or 0)
        outs: list[Any] = []
        by_name: dict[str, Any] = {}
        for attr in (A.OUT, A.ERR):
            name = std_file_name(ad.get(attr))
            if name is None:
                outs.append(subprocess.DEVNULL)
                continue
            if name in by_name:
                outs.append(by_name[name])
                continue
            try:
                f = open(self.sandbox / name, "wb")  # noqa: SIM115
            except OSError as exc:
                close_all()
                return self._hold(A.HOLD_UNABLE_TO_OPEN_OUTPUT, f"cannot open the job's {attr} file {name!r}: {_errno_text(exc)}", exc.errno or 0)
            opened.append(f)
            by_name[name] = f
            outs.append(f)
        return stdin, outs[0], outs[1]

    def _execute(self) -> JobResult:
        ad = self.job
        try:
            exe, transferred = executable_path(ad, self.sandbox)
            argv = [str(exe), *job_arguments(ad)]
            env = job_env(ad, self.slot, self.sandbox)
        except JobSpecError as exc:
            return self._hold(A.HOLD_FAILED_TO_CREATE_PROCESS, str(exc))
        cmd_text = ad.string(A.CMD) or str(exe)
        if not exe.exists():
            return self._hold(
                A.HOLD_FAILED_TO_CREATE_PROCESS,
                f"Failed to execute '{cmd_text}': (errno=2: 'No such file or directory')", 2,
            )
        if transferred and not os.access(exe, os.X_OK):
            try:
                os.chmod(exe, os.stat(exe).st_mode | 0o755)
            except OSError:
                pass
        try:
            (self.sandbox / JOB_AD_FILE).write_text(old_syntax(ad.ad))
            (self.sandbox / MACHINE_AD_FILE).write_text(old_syntax(self.slot.machine_ad))
        except OSError as exc:
            return self._hold(A.HOLD_FAILED_TO_CREATE_PROCESS, f"cannot write the job ad file: {_errno_text(exc)}")
        before = top_level_files(self.sandbox)
        std = self._open_std()
        if isinstance(std, JobResult):
            return std
        stdin, stdout, stderr = std
        self._log(f"Starting job {self.label}: {' '.join(argv)}", type="job_start")
        own_rss_mb = self_rss_mb()
        start_mono = time.monotonic()
        try:
            try:
                proc = _popen_retrying_busy_text(
                    argv, cwd=str(self.sandbox), env=env, stdin=stdin, stdout=stdout, stderr=stderr,
                    start_new_session=True, close_fds=True,
                )
            except OSError as exc:
                return self._hold(
                    A.HOLD_FAILED_TO_CREATE_PROCESS, f"Failed to execute '{cmd_text}': {_errno_text(exc)}", exc.errno or 0
                )
        finally:
            for f in {id(x): x for x in (stdin, stdout, stderr)}.values():
                if hasattr(f, "close"):
                    f.close()
        self._limit_memory(proc.pid)
        max_wall = max_wall_time(ad)
        self._max_wall = max_wall
        if max_wall is not None:
            self._wall_deadline = start_mono + max_wall
        if self.die_at is not None:
            self._die_deadline = start_mono + (self.die_at - self.clock())
        watched = Watched(proc.pid, self._check)
        with self._lock:
            self._watched = watched
            pending = self._stop
        self.watcher.add(watched)
        if pending is not None:
            watched.terminate(0 if pending[0] == ABORTED else self.grace, time.monotonic())
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            self.watcher.remove(watched)
        end_mono = time.monotonic()
        proc.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status
        signal_session(proc.pid, signal.SIGKILL, scan=False)  # whatever the job left behind
        result = JobResult(
            COMPLETED,
            wall_seconds=end_mono - start_mono,
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            peak_memory_mb=max(watched.peak_rss_mb, job_maxrss_mb(usage.ru_maxrss, own_rss_mb)),
        )
        if os.WIFSIGNALED(status):
            result.exit_signal = os.WTERMSIG(status)
        else:
            result.exit_code = os.WEXITSTATUS(status)
        how = f"signal {result.exit_signal}" if result.exit_signal is not None else f"status {result.exit_code}"
        self._log(
            f"Job {self.label} exited with {how} after {result.wall_seconds:.3f} s "
            f"(cpu {result.cpu_seconds:.3f} s, peak memory {result.peak_memory_mb:.1f} MB)",
            type="job_exit", exit_code=result.exit_code, exit_signal=result.exit_signal,
            wall_seconds=result.wall_seconds, cpu_seconds=result.cpu_seconds,
        )
        with self._lock:
            stop = self._stop
        limit = self.memory_limit_mb
        if stop is None and limit > 0 and result.peak_memory_mb > limit:
            stop = (
                HELD, A.HOLD_JOB_OUT_OF_RESOURCES,
                f"Job has gone over memory limit of {limit} megabytes. Peak usage: {result.peak_memory_mb:.0f} megabytes.",
            )
        if stop is not None:
            outcome, code, reason = stop
            if outcome == HELD:
                held = self._hold(code, reason)
                held.wall_seconds, held.cpu_seconds, held.peak_memory_mb = (
                    result.wall_seconds, result.cpu_seconds, result.peak_memory_mb,
                )
                return held
            self._log(f"Job {self.label} {outcome}: {reason}")
            result.outcome, result.reason = outcome, reason
            return result
        return self._collect(result, before, exe.name if transferred else None)

    def _limit_memory(self, pid: int) -> None:
        factor = self.policy.address_space_factor
        limit_mb = self.memory_limit_mb
        if factor <= 0 or limit_mb <= 0 or not hasattr(resource, "prlimit"):
            return
        limit = int(limit_mb * factor) * 1024 * 1024
        try:
            resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))
        except (OSError, ValueError):
            pass  # the process may already be gone

    def _collect(self, result: JobResult, before: dict[str, tuple[int, int]], exe_name: str | None) -> JobResult:
        ad = self.job
        after = top_level_files(self.sandbox)
        std = [n for n in (std_file_name(ad.get(A.OUT)), std_file_name(ad.get(A.ERR))) if n]
        transfer_output = ad.string(A.TRANSFER_OUTPUT)
        excluded = {JOB_AD_FILE, MACHINE_AD_FILE}
        if exe_name:
            excluded.add(exe_name)
        names, bad = choose_outputs(
            before=before, after=after, transfer_output=transfer_output, std_files=std, excluded=excluded
        )
        missing = bad + [n for n in names if not os.path.lexists(self.sandbox / n)]
        if missing:
            held = self._hold(
                A.HOLD_TRANSFER_OUTPUT_ERROR,
                f"Transfer output files failure: {missing[0]!r} was not created by the job "
                "(errno=2: 'No such file or directory')", 2,
            )
            held.wall_seconds, held.cpu_seconds, held.peak_memory_mb = (
                result.wall_seconds, result.cpu_seconds, result.peak_memory_mb,
            )
            held.exit_code, held.exit_signal = result.exit_code, result.exit_signal
            return held
        if names:
            size = sum(after.get(n, (0, 0))[1] for n in names)
            tar_path = self.sandbox.parent / f"{self.sandbox.name}.output.tar"
            self._output_written = True
            try:
                with open(tar_path, "wb") as out:
                    result.output_names = pack_outputs(self.sandbox, names, out, compress=size > COMPRESS_OVER_BYTES)
            except (TransferError, OSError) as exc:
                held = self._hold(A.HOLD_TRANSFER_OUTPUT_ERROR, f"Transfer output files failure: {exc}")
                held.exit_code, held.exit_signal = result.exit_code, result.exit_signal
                return held
            result.output = tar_path
        return result

    def cleanup(self) -> None:
        """Remove the sandbox and the output archive."""
        try:  # the common case first: a flat sandbox (cheaper than rmtree)
            with os.scandir(self.sandbox) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        raise IsADirectoryError(entry.path)
                    os.unlink(entry.path)
            os.rmdir(self.sandbox)
        except FileNotFoundError:
            pass
        except OSError:
            shutil.rmtree(self.sandbox, ignore_errors=True)
        if self._output_written:
            try:
                os.unlink(self.sandbox.parent / f"{self.sandbox.name}.output.tar")
            except OSError:
                pass
