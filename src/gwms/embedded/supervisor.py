"""Run services as child processes, restart the ones that die, stop them all cleanly.

Each service is a separate ``gwms <service> run`` process, so one can be killed (even with
``kill -9``) and restarted without touching the others, as on a multi-host deployment.
A child announces itself with one line ``gwms <service> listening on <url>`` on stdout;
the supervisor waits for that line before starting the services that depend on it. A
child that serves nothing (``announces=False``, e.g. the log indexer) counts as started
once it is still alive after a short settling time.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gwms.errors import GwmsError

log = logging.getLogger(__name__)

LISTEN_RE = re.compile(r"gwms (?P<service>[\w-]+) listening on (?P<url>\S+)")


class ServiceStartError(GwmsError):
    """A child service exited or stayed silent before announcing its URL."""


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one service: its name, command line, and where its output goes."""

    name: str
    argv: Sequence[str]
    log_file: Path
    env: dict[str, str] | None = None
    start_timeout: float = 30.0
    #: False for a service without a URL: started when still alive after ``settle`` s
    announces: bool = True
    settle: float = 1.0


def restart_delay(failures_in_a_row: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Back-off before restarting a child that died ``failures_in_a_row`` times running."""
    if failures_in_a_row <= 0:
        return 0.0
    return min(cap, base * (2 ** (failures_in_a_row - 1)))


@dataclass
class Child:
    """A running (or restarting) child service."""

    spec: ServiceSpec
    proc: subprocess.Popen[bytes] | None = None
    url: str | None = None
    started_at: float = 0.0
    failures: int = 0
    restarts: int = 0
    _reader: threading.Thread | None = field(default=None, repr=False)


class Supervisor:
    """Start services in order, watch them, restart the dead, stop all on request."""

    def __init__(self, *, on_event: Callable[[str], None] | None = None, stable_after: float = 60.0) -> None:
        self.children: dict[str, Child] = {}
        self._stopping = threading.Event()
        self._on_event = on_event or (lambda msg: log.info("%s", msg))
        self._stable_after = stable_after

    # -- starting ----------------------------------------------------------------------
    def start(self, spec: ServiceSpec) -> str:
        """Start one service and return the URL it announced."""
        child = self.children.get(spec.name) or Child(spec)
        self.children[spec.name] = child
        self._launch(child)
        return child.url or ""

    def _launch(self, child: Child) -> None:
        spec = child.spec
        spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        logf = open(spec.log_file, "ab", buffering=0)  # noqa: SIM115 - owned by the reader thread
        env = dict(os.environ)
        if spec.env:
            env.update(spec.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        proc = subprocess.Popen(
            list(spec.argv),
            stdout=subprocess.PIPE,
            stderr=logf,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # Ctrl-C in the terminal reaches the supervisor only
        )
        child.proc = proc
        child.url = None
        child.started_at = time.monotonic()
        announced = threading.Event()

        def pump() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                logf.write(raw)
                if not announced.is_set():
                    m = LISTEN_RE.search(raw.decode("utf-8", "replace"))
                    if m:
                        child.url = m.group("url")
                        announced.set()
            logf.close()
            announced.set()

        child._reader = threading.Thread(target=pump, name=f"log-{spec.name}", daemon=True)
        child._reader.start()
        if not spec.announces:
            try:
                rc = proc.wait(spec.settle)
            except subprocess.TimeoutExpired:
                self._on_event(f"{spec.name} running (pid {proc.pid})")
                return
            raise ServiceStartError(f"{spec.name} exited with code {rc}; last lines of {spec.log_file}:\n"
                                    f"{_tail(spec.log_file)}")
        if not announced.wait(spec.start_timeout) or child.url is None:
            rc = proc.poll()
            self._kill(proc)
            tail = _tail(spec.log_file)
            what = f"exited with code {rc}" if rc is not None else f"did not start within {spec.start_timeout:.0f} s"
            raise ServiceStartError(f"{spec.name} {what}; last lines of {spec.log_file}:\n{tail}")
        self._on_event(f"{spec.name} running at {child.url} (pid {proc.pid})")

    # -- watching ----------------------------------------------------------------------
    def watch(self, poll_interval: float = 0.5) -> None:
        """Block until :meth:`stop` is called, restarting children that die."""
        while not self._stopping.wait(poll_interval):
            for child in list(self.children.values()):
                if self._stopping.is_set():
                    break
                proc = child.proc
                if proc is None or proc.poll() is None:
                    continue
                lived = time.monotonic() - child.started_at
                child.failures = 0 if lived > self._stable_after else child.failures + 1
                delay = restart_delay(child.failures)
                self._on_event(
                    f"{child.spec.name} exited with code {proc.returncode}; restarting in {delay:.1f} s"
                )
                if self._stopping.wait(delay):
                    break
                try:
                    self._launch(child)
                    child.restarts += 1
                except ServiceStartError as exc:
                    self._on_event(str(exc).splitlines()[0])

    # -- stopping ----------------------------------------------------------------------
    def request_stop(self) -> None:
        """Make :meth:`watch` return soon (safe from a signal handler); then call :meth:`stop`."""
        self._stopping.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every child, the last started first: SIGTERM, then SIGKILL after ``timeout``."""
        self._stopping.set()
        for child in reversed(list(self.children.values())):
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in reversed(list(self.children.values())):
            proc = child.proc
            if proc is None:
                continue
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._kill(proc)
            self._on_event(f"{child.spec.name} stopped")

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:  # pragma: no cover - the kernel will reap it
                pass


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
