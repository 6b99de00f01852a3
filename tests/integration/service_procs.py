"""Start ``gwms <service> run`` (:class:`ServiceProcess`), ``gwms logs index``
(:func:`run_logs_index`) and ``gwms logs serve`` (:func:`logs_serve`) as real processes
for integration tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LISTEN_RE = re.compile(r"listening on (\S+)")
MONITOR_LISTEN_RE = re.compile(r"gwms monitor listening on (\S+)")


class ServiceProcess:
    """One ``gwms <service> run ...`` child; ``.url`` once it announced itself."""

    def __init__(self, args: list[str], log: Path, timeout: float = 30.0) -> None:
        self.log = log
        self.logf = open(log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gwms", *args],
            stdout=subprocess.PIPE, stderr=self.logf, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        self.url = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode()
            if not line:
                break
            m = LISTEN_RE.search(line)
            if m:
                self.url = m.group(1)
                break
        if not self.url:
            self.kill()
            raise RuntimeError(f"{args[0]} did not start: {log.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.logf.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.logf.close()


def run_logs_index(source: Path, data: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``gwms logs index --source SOURCE --data DATA`` (at most 2 minutes) and give its
    exit code and output; the caller checks them."""
    return subprocess.run(
        [sys.executable, "-m", "gwms", "logs", "index", "--source", str(source), "--data", str(data)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@contextmanager
def logs_serve(data: Path, *options: str, env: dict[str, str]) -> Iterator[str]:
    """Run ``gwms logs serve --data DATA --port 0 OPTIONS`` as a child and give the URL its
    first line announces; afterwards SIGTERM it and check that it exited with 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gwms", "logs", "serve", "--data", str(data), "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = MONITOR_LISTEN_RE.search(line)
        assert m, line + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        yield m.group(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
        assert code == 0, f"gwms logs serve exited with {code}"
