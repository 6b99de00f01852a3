"""The ``local`` backend: pilots are processes on this machine.

Each pilot is started in a new session (its own process group) through a small shell
wrapper, ``sh -c '"$@"; echo $? > rc'``, with stdout/stderr going straight to the
:class:`~gwms.factory.backends.base.PilotSpec` paths. Everything the backend knows is
kept in one directory per pilot under the entry's state directory::

    <state_dir>/<pilot_id>/spec.json   what to run (0600; deleted once the pilot ended)
                           pid         the wrapper's pid (= the process group id)
                           start       the process's start time (/proc), against pid reuse
                           rc          the exit code, written by the wrapper
                           removed     when the factory asked for removal
                           work/       the working directory (when the spec gives none)

so a restarted factory (even after ``kill -9``) finds its pilots again: the site id of a
pilot is its ``pilot_id``, and :meth:`LocalBackend.poll` reads these files.

``slots`` bounds how many pilots run at once (default: the number of CPUs); the others
wait as PENDING, like jobs in a batch queue, and start in submission order when a slot
frees (on the next ``submit`` or ``poll``). ``slots: 0`` queues every pilot forever, which
tests use to hold pilots idle. Removal sends SIGTERM to the pilot's process group, then
SIGKILL after ``kill_grace_s``; a pilot past its ``walltime_s`` is removed the same way.

States, as the ``slurm`` backend reports them (one state model for every backend): a
pilot that ran and ended is COMPLETED with its exit code, whatever the code (128 + N when
signal N killed it), and the factory judges the code; FAILED is only the site's verdict:
it could not start the pilot, or the pilot passed its walltime (Slurm's TIMEOUT);
REMOVED when the factory removed it; HELD while held (below).

Holds: the site (an operator, or a test playing one) holds a queued pilot with
:meth:`LocalBackend.hold` and a reason, as ``scontrol hold`` does: it stays in the queue
without starting and polls as HELD with that reason until :meth:`LocalBackend.release`
(which the factory calls with back-off) puts it back in line. The hold is a file in the
pilot's directory, so it survives restarts of the factory.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from gwms.config import GwmsModel
from gwms.factory.backends.base import BackendError, PilotSpec, SiteState, SiteStatus

log = logging.getLogger("gwms.factory.local")

__all__ = ["LocalBackend", "LocalSettings"]

# The wrapper: record the pid, run the glidein, record its exit code atomically.
_WRAPPER = (
    'd=$1; shift; echo $$ > "$d/.pid.$$" && mv -f "$d/.pid.$$" "$d/pid"; '
    '"$@"; rc=$?; echo $rc > "$d/.rc.$$" && mv -f "$d/.rc.$$" "$d/rc"; exit $rc'
)
_SPEC = "spec.json"
_PID = "pid"
_START = "start"
_RC = "rc"
_REMOVED = "removed"
_KILLED = "killed"
_WALLTIME = "walltime"
_HELD = "held"


class LocalSettings(GwmsModel):
    """``backend_settings`` of a ``local`` entry."""

    slots: int | None = Field(
        default=None, ge=0, description="pilots running at once (default: CPUs; 0: none start)"
    )
    kill_grace_s: float = Field(default=30.0, ge=0, description="SIGTERM to SIGKILL, seconds")
    keep_days: float = Field(default=7.0, ge=0, description="keep ended pilots' records this long")
    shell: str = Field(default="/bin/sh", description="the POSIX shell that runs the wrapper")
    inherit_env: bool = Field(default=True, description="pilots get the factory's environment")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _read_float(path: Path) -> float | None:
    text = _read(path)
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _exit_reason(rc: int | None) -> str:
    """Why a pilot that ran ended: nothing for 0, the signal for 128 + N (the shell's
    way of reporting a child killed by signal N), else its exit code."""
    if rc is None:
        return "no exit code"
    if rc == 0:
        return ""
    if rc > 128:
        try:
            return f"killed by signal {signal.Signals(rc - 128).name}"
        except ValueError:
            pass
    return f"exit code {rc}"


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None if there is no such
    process (or no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _proc_alive(pid: int, start: str | None) -> bool:
    """True if ``pid`` is a live (not zombie) process started at ``start``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    fields = stat[stat.rfind(")") + 2 :].split()
    if not fields or fields[0] in ("Z", "X"):
        return False
    return start is None or (len(fields) > 19 and fields[19] == start)


class LocalBackend:
    """Pilots as process groups on this machine (see the module docstring).

    Args:
        state_dir: the directory holding one sub-directory per pilot.
        settings: slots, kill grace, ... (:class:`LocalSettings`).
    """

    name = "local"

    def __init__(self, state_dir: Path, settings: LocalSettings | None = None) -> None:
        self.settings = settings or LocalSettings()
        self.slots = self.settings.slots if self.settings.slots is not None else (os.cpu_count() or 1)
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        self._lock = threading.RLock()
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._running: set[str] = set()
        self._queued: list[tuple[float, str]] = []
        self._recover()

    @classmethod
    def from_config(cls, settings: Mapping[str, Any], context: Any) -> LocalBackend:
        """The backend of one entry, from its ``backend_settings``."""
        from gwms.factory.backends import BackendConfigError

        try:
            parsed = LocalSettings.model_validate(dict(settings))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
                for e in exc.errors()
            )
            raise BackendConfigError(f"local backend settings: {problems}") from None
        return cls(Path(context.state_dir), parsed)

    # ------------------------------------------------------------------ recovery

    def _recover(self) -> None:
        """Rebuild the running set and the queue from the pilot directories."""
        now = time.time()
        keep = self.settings.keep_days * 86400
        for d in self.state_dir.iterdir():
            if not d.is_dir():
                continue
            ended = (d / _RC).exists() or ((d / _REMOVED).exists() and not (d / _PID).exists())
            if ended:
                try:
                    if now - d.stat().st_mtime > keep:
                        shutil.rmtree(d, ignore_errors=True)
                except OSError:
                    pass
                continue
            if (d / _PID).exists():
                self._running.add(d.name)
            elif (d / _SPEC).exists():
                self._queued.append((_read_float(d / "queued") or d.stat().st_mtime, d.name))
        self._queued.sort()

    # ------------------------------------------------------------------ submit

    def submit(self, pilots: Sequence[PilotSpec]) -> list[str | BackendError]:
        """Queue each pilot (idempotent per pilot_id) and start those a free slot allows."""
        out: list[str | BackendError] = []
        with self._lock:
            for spec in pilots:
                try:
                    out.append(self._enqueue(spec))
                except (OSError, ValueError) as exc:
                    out.append(BackendError(f"cannot queue pilot {spec.pilot_id}: {exc}"))
            self._start_queued()
        return out

    def _dir(self, site_id: str) -> Path:
        if not site_id or "/" in site_id or site_id in (".", "..") or "\x00" in site_id:
            raise ValueError(f"not a local pilot id: {site_id!r}")
        return self.state_dir / site_id

    def _enqueue(self, spec: PilotSpec) -> str:
        d = self._dir(spec.pilot_id)
        if d.exists():  # submitted before (a retry after a crash): nothing new starts
            return spec.pilot_id
        if not spec.argv:
            raise ValueError("empty command")
        tmp = self.state_dir / f".{spec.pilot_id}.new"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(mode=0o700)
        doc = {
            "argv": list(spec.argv),
            "env": dict(spec.env),
            "stdout": str(spec.stdout),
            "stderr": str(spec.stderr),
            "workdir": str(spec.workdir) if spec.workdir else None,
            "walltime_s": int(spec.walltime_s),
        }
        _write_atomic(tmp / _SPEC, json.dumps(doc), 0o600)
        queued_at = time.time()
        _write_atomic(tmp / "queued", repr(queued_at))
        os.rename(tmp, d)
        self._queued.append((queued_at, spec.pilot_id))
        return spec.pilot_id

    def _start_queued(self) -> None:
        queue, self._queued = self._queued, []
        kept: list[tuple[float, str]] = []
        for item in queue:
            pilot_id = item[1]
            d = self.state_dir / pilot_id
            if (d / _REMOVED).exists() or not (d / _SPEC).exists():
                continue
            if len(self._running) >= self.slots or (d / _HELD).exists():
                kept.append(item)  # waits for a slot, or for its release
                continue
            try:
                self._launch(pilot_id, d)
            except OSError as exc:
                log.warning("local pilot %s could not start: %s", pilot_id, exc)
                _write_atomic(d / _RC, "127")
                (d / "reason").write_text(f"could not start: {exc}")
        self._queued = kept + self._queued

    def _launch(self, pilot_id: str, d: Path) -> None:
        doc = json.loads((d / _SPEC).read_text())
        stdout, stderr = Path(doc["stdout"]), Path(doc["stderr"])
        stdout.parent.mkdir(parents=True, exist_ok=True)
        stderr.parent.mkdir(parents=True, exist_ok=True)
        workdir = Path(doc["workdir"]) if doc.get("workdir") else d / "work"
        workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ) if self.settings.inherit_env else {"PATH": os.defpath}
        env.update(doc.get("env") or {})
        with open(stdout, "ab") as out, open(stderr, "ab") as err:
            proc = subprocess.Popen(
                [self.settings.shell, "-c", _WRAPPER, "gwms-pilot", str(d), *doc["argv"]],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=workdir,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        start = _proc_start(proc.pid)
        if start is not None:
            _write_atomic(d / _START, start)
        _write_atomic(d / "started", repr(time.time()))
        _write_atomic(d / _PID, str(proc.pid))
        self._children[pilot_id] = proc
        self._running.add(pilot_id)
        log.debug("local pilot %s started as pid %d", pilot_id, proc.pid)

    # ------------------------------------------------------------------ poll

    def poll(self, site_ids: Sequence[str]) -> dict[str, SiteStatus]:
        """The state of each pilot; also reaps ended ones, enforces walltime and removal
        grace, and starts queued pilots when slots free up."""
        with self._lock:
            self._refresh_running()
            self._start_queued()
            return {sid: self._status(sid) for sid in site_ids}

    def _refresh_running(self) -> None:
        now = time.time()
        for pilot_id in list(self._running):
            d = self.state_dir / pilot_id
            if not self._alive(pilot_id, d):
                self._running.discard(pilot_id)
                self._children.pop(pilot_id, None)
                self._forget_spec(d)
                continue
            removed_at = _read_float(d / _REMOVED) or _read_float(d / _WALLTIME)
            if removed_at is not None and now - removed_at >= self.settings.kill_grace_s:
                if not (d / _KILLED).exists():
                    self._signal(d, signal.SIGKILL)
                    _write_atomic(d / _KILLED, repr(now))
                continue
            if removed_at is None:
                started = _read_float(d / "started")
                walltime = self._walltime(d)
                if started is not None and walltime > 0 and now - started > walltime:
                    log.info("local pilot %s passed its walltime of %ds", pilot_id, walltime)
                    _write_atomic(d / _WALLTIME, repr(now))
                    self._signal(d, signal.SIGTERM)

    def _walltime(self, d: Path) -> int:
        try:
            return int(json.loads((d / _SPEC).read_text()).get("walltime_s") or 0)
        except (OSError, ValueError):
            return 0

    def _forget_spec(self, d: Path) -> None:
        # the spec may hold secrets (the pool token): gone once the pilot ended
        try:
            (d / _SPEC).unlink()
        except FileNotFoundError:
            pass

    def _alive(self, pilot_id: str, d: Path) -> bool:
        proc = self._children.get(pilot_id)
        if proc is not None:
            return proc.poll() is None
        pid_text = _read(d / _PID)
        if not pid_text:
            return False
        try:
            pid = int(pid_text)
        except ValueError:
            return False
        return _proc_alive(pid, _read(d / _START))

    def _status(self, site_id: str) -> SiteStatus:
        try:
            d = self._dir(site_id)
        except ValueError:
            return SiteStatus(SiteState.UNKNOWN, reason="not a local pilot id")
        if not d.is_dir():
            return SiteStatus(SiteState.UNKNOWN, reason="no such local pilot")
        removed = (d / _REMOVED).exists()
        rc_text = _read(d / _RC)
        if site_id in self._running:
            return SiteStatus(SiteState.RUNNING)
        if rc_text is not None:
            try:
                rc = int(rc_text)
            except ValueError:
                rc = None
            reason = _read(d / "reason") or ""
            if removed:
                return SiteStatus(SiteState.REMOVED, rc, "removed by the factory")
            if (d / _WALLTIME).exists():
                return SiteStatus(SiteState.FAILED, rc, "walltime exceeded")
            if reason:  # the site could not start it (as Slurm's JobLaunchFailure)
                return SiteStatus(SiteState.FAILED, rc, reason)
            return SiteStatus(SiteState.COMPLETED, rc, _exit_reason(rc))
        if not (d / _PID).exists():
            if removed:
                return SiteStatus(SiteState.REMOVED, None, "removed before it started")
            held = _read(d / _HELD)
            if held is not None:
                return SiteStatus(SiteState.HELD, None, held or "held by the site")
            return SiteStatus(SiteState.PENDING)
        if removed:
            return SiteStatus(SiteState.REMOVED, None, "removed by the factory")
        if (d / _WALLTIME).exists():
            return SiteStatus(SiteState.FAILED, None, "walltime exceeded")
        return SiteStatus(SiteState.FAILED, None, "the pilot process ended without an exit code")

    # ------------------------------------------------------------------ remove

    def remove(self, site_ids: Sequence[str]) -> None:
        """SIGTERM each pilot's process group (SIGKILL follows after the grace); a queued
        pilot is dropped before it starts."""
        with self._lock:
            now = time.time()
            for sid in site_ids:
                try:
                    d = self._dir(sid)
                except ValueError:
                    continue
                if not d.is_dir() or (d / _REMOVED).exists() or (d / _RC).exists():
                    continue
                _write_atomic(d / _REMOVED, repr(now))
                if sid in self._running:
                    self._signal(d, signal.SIGTERM)
                else:
                    self._queued = [(t, p) for t, p in self._queued if p != sid]
                    self._forget_spec(d)

    def _signal(self, d: Path, sig: signal.Signals) -> None:
        pid_text = _read(d / _PID)
        if not pid_text:
            return
        try:
            pid = int(pid_text)
        except ValueError:
            return
        if d.name not in self._children and not _proc_alive(pid, _read(d / _START)):
            return  # the pid is no longer our pilot: never signal a stranger
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def hold(self, site_id: str, reason: str) -> bool:
        """Hold a queued pilot (the site's act, as ``scontrol hold``): it does not start
        and polls as HELD with ``reason`` until released. False if it is not queued
        (running, ended, removed or unknown): only waiting pilots can be held."""
        with self._lock:
            try:
                d = self._dir(site_id)
            except ValueError:
                return False
            if (not d.is_dir() or site_id in self._running or (d / _PID).exists()
                    or (d / _REMOVED).exists() or (d / _RC).exists()):
                return False
            _write_atomic(d / _HELD, " ".join(reason.split()) or "held by the site")
            return True

    def release(self, site_ids: Sequence[str]) -> None:
        """Release held pilots: they go back in line (and start when a slot is free).
        Ids that are not held are ignored."""
        with self._lock:
            for sid in site_ids:
                try:
                    d = self._dir(sid)
                except ValueError:
                    continue
                try:
                    (d / _HELD).unlink()
                except FileNotFoundError:
                    continue
            self._start_queued()

    def collect_output(self, site_id: str, pilot: PilotSpec) -> None:
        """The pilot wrote straight to its files; make sure both exist."""
        for path in (pilot.stdout, pilot.stderr):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(exist_ok=True)

    # ------------------------------------------------------------------ for tests and tools

    def pids(self) -> dict[str, int]:
        """pilot id -> process group id of the pilots running now."""
        out: dict[str, int] = {}
        with self._lock:
            for pilot_id in self._running:
                text = _read(self.state_dir / pilot_id / _PID)
                if text and text.isdigit():
                    out[pilot_id] = int(text)
        return out
