"""Start ``gwms <service> run`` as real processes for integration tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

LISTEN_RE = re.compile(r"listening on (\S+)")


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
