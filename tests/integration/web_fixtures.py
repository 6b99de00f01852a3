"""A whole pool for the web UI's tests: ``gwms up`` (collector, WMS collector, schedd,
negotiator, factory with local entries, frontend) with jobs of two owners, and
``gwms web run --data`` over it (unless ``gwms up`` already runs the web UI).

Jobs: alice runs ``RUNNING_ALICE`` long sleeps, bob ``RUNNING_BOB``; bob also has one job
held and one that no slot can match (it stays idle). Services sample their history
every second (``GWMS_HISTORY_INTERVAL=1``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

RUNNING_ALICE = 3
RUNNING_BOB = 2
SLEEP = "/bin/sleep"


@dataclass
class WebPool:
    """A running ``gwms up`` and web UI."""

    data: Path
    urls: dict[str, str]
    web_url: str
    admin_token: str
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def get(self, url: str, path: str, **params: Any) -> Any:
        """``GET`` JSON from a service with the admin token."""
        r = httpx.get(url + path, params=params, timeout=30,
                      headers={"Authorization": f"Bearer {self.admin_token}"})
        r.raise_for_status()
        return r.json()

    def text(self, url: str, path: str) -> str:
        """``GET`` text (``/metrics``) from a service."""
        r = httpx.get(url + path, timeout=30, headers={"Authorization": f"Bearer {self.admin_token}"})
        r.raise_for_status()
        return r.text


def _read_until(proc: subprocess.Popen[str], pattern: str, timeout: float) -> re.Match[str]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m
    proc.kill()
    raise AssertionError(f"no line matching {pattern!r}:\n" + "".join(seen))


def _wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # noqa: BLE001 - services still starting
            last = exc
        else:
            if last:
                return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: last {last!r}")


def start_web_pool(tmp: Path) -> Iterator[WebPool]:
    """Start everything, submit the jobs, wait until they run; stop it all afterwards."""
    from gwms.pool.schedd.client import ScheddClient
    from gwms.security import scopes
    from gwms.security.layout import SecurityLayout

    data = tmp / "gwms-data"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "GWMS_HISTORY_INTERVAL": "1"}
    up = subprocess.Popen([sys.executable, "-m", "gwms", "up", "--data", str(data)], cwd=tmp,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    procs = [up]
    try:
        _read_until(up, "gwms is up", 90)
        urls = json.loads((data / "up.json").read_text())["urls"]
        layout = SecurityLayout(data)
        admin = layout.admin_token()
        sub = f"executable = {SLEEP}\narguments = 900\ntransfer_executable = false\nqueue {{n}}\n"
        for user, n in (("alice", RUNNING_ALICE), ("bob", RUNNING_BOB)):
            with ScheddClient(urls["schedd"], token=layout.mint_token(user, [scopes.READ, scopes.WRITE])) as c:
                c.submit_text(sub.format(n=n), base_dir=tmp)
        with ScheddClient(urls["schedd"], token=layout.mint_token("bob", [scopes.READ, scopes.WRITE])) as c:
            held = c.submit_text(sub.format(n=1), base_dir=tmp)
            c.act("hold", [f"{held.cluster_id}.0"], reason="held by the web test")
            c.submit_text(f"executable = {SLEEP}\narguments = 1\ntransfer_executable = false\n"
                          "request_memory = 900000000\nqueue\n", base_dir=tmp)
        web_url = urls.get("web")
        if not web_url:
            web = subprocess.Popen([sys.executable, "-m", "gwms", "web", "run", "--data", str(data), "--port", "0"],
                                   cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
            procs.append(web)
            web_url = _read_until(web, r"gwms web listening on (\S+)", 60).group(1)
        pool = WebPool(data, urls, web_url, admin, procs)

        def all_running() -> bool:
            doc = pool.get(web_url, "/pool.json")
            owners = doc["jobs"]["by_owner"]
            return (any(o.startswith("alice") and c.get("Running") == RUNNING_ALICE for o, c in owners.items())
                    and any(o.startswith("bob") and c.get("Running") == RUNNING_BOB for o, c in owners.items()))

        _wait(all_running, 120, "the jobs to run")
        yield pool
    finally:
        for p in reversed(procs[1:]):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run([sys.executable, "-m", "gwms", "down", "--data", str(data)], capture_output=True,
                       timeout=60, check=False)
        try:
            up.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
