"""The whole system under test: ``gwms up`` on a temporary directory, with short loops.

:class:`System` starts ``gwms up --data DIR --config overrides.yaml`` as a person would,
and looks at it with the same clients the commands use: the schedd (queue, history,
outputs), the factory's API (pilots per entry), the collectors, and the process list
(for ``kill -9``). :class:`Sampler` watches the factory and the user collector from a
thread and records every violation of the glidein limits it sees.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gwms.embedded.upconfig import ENTRY_SPECS, GLIDEINS_PER_ENTRY
from gwms.net import SyncServiceClient
from gwms.pool.collector.client import CollectorClient
from gwms.pool.schedd.client import ScheddClient
from gwms.security import scopes
from gwms.security.layout import SecurityLayout

#: entry -> its GLIDEIN_Site
SITES = {name: spec[0] for name, spec in ENTRY_SPECS.items()}

WORK_SH = """#!/bin/sh
# NAME INDEX SECONDS: say who and where, compute something checkable, sleep.
echo "job=$1.$2 site=${GLIDEIN_Site:-unknown} square=$(($2 * $2))"
sleep "$3"
echo "job=$1.$2 done"
"""


def fast_overrides(**extra: Any) -> dict[str, Any]:
    """``gwms up --config`` overrides for tests: short loops and glidein lifetimes."""
    params = {"GLIDEIN_Max_Tail": 4, "GLIDEIN_Max_Idle": 20, "GWMS_AGENT_OPTIONS": "--ad-lifetime 15"}
    cfg: dict[str, Any] = {
        "factory": {
            "loop_delay": 1.0, "request_poll_s": 0.3, "followup_s": 0.5, "advertise_interval": 2.0,
            "entries": {name: {"params": dict(params)} for name in ENTRY_SPECS},
        },
        "frontend": {"loop_delay": 2.0},
    }
    for section, values in extra.items():
        cfg.setdefault(section, {}).update(values)
    return cfg


@dataclass(frozen=True)
class JobClass:
    """A kind of job in a workload: resources, sites, how many, and where it may run."""

    name: str
    count: int
    cpus: int = 1
    memory: int = 256
    sites: tuple[str, ...] = ()  # DESIRED_Sites (empty: any)
    seconds: float = 1.0

    def submit_text(self) -> str:
        lines = [
            "executable = work.sh",
            f"arguments = {self.name} $(Process) {self.seconds:g}",
            f"output = {self.name}.$(Process).out",
            f"error = {self.name}.$(Process).err",
            f"request_cpus = {self.cpus}",
            f"request_memory = {self.memory}",
        ]
        if self.sites:
            lines.append(f'+DESIRED_Sites = "{",".join(self.sites)}"')
            lines.append("requirements = stringListMember(TARGET.GLIDEIN_Site, MY.DESIRED_Sites)")
        lines.append(f"queue {self.count}")
        return "\n".join(lines) + "\n"

    def entries(self) -> set[str]:
        """The entries able to run this class (CPUs, memory and site)."""
        return {name for name, (site, cpus, memory, _p) in ENTRY_SPECS.items()
                if self.cpus <= cpus and self.memory <= memory and (not self.sites or site in self.sites)}


@dataclass
class Submitted:
    """A submitted class: its cluster."""

    job_class: JobClass
    cluster: int


class System:
    """A running ``gwms up`` on ``tmp/data`` (see the module docstring)."""

    def __init__(self, tmp: Path, overrides: dict[str, Any] | None = None) -> None:
        self.tmp = tmp
        self.data = (tmp / "data").resolve()
        self.work = tmp / "work"
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "work.sh").write_text(WORK_SH)
        (self.work / "work.sh").chmod(0o755)
        config = tmp / "up-overrides.yaml"
        config.write_text(yaml.safe_dump(overrides if overrides is not None else fast_overrides()))
        self.log_path = tmp / "up.out"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gwms", "up", "--data", str(self.data), "--config", str(config)],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            wait_for(lambda: "gwms is up" in self.log_path.read_text() or self.proc.poll() is not None,
                     timeout=90, what="gwms up")
            if self.proc.poll() is not None:
                raise AssertionError("gwms up exited:\n" + self.log_path.read_text()[-3000:])
        except BaseException:
            self.stop()
            raise
        self.urls: dict[str, str] = json.loads((self.data / "up.json").read_text())["urls"]
        self.layout = SecurityLayout(self.data)
        client = json.loads((self.data / "client.json").read_text())
        self.schedd = ScheddClient(self.urls["schedd"], token=client["token"], timeout=60)
        reader = self.layout.mint_token("e2e", [scopes.READ])
        self.factory = SyncServiceClient(self.urls["factory"], token=reader, timeout=15, retries=3,
                                         service="factory")
        self.pool = CollectorClient(self.urls["collector"], token=reader, timeout=15, retries=3)
        self.wms = CollectorClient(self.urls["wms"], token=reader, timeout=15, retries=3)

    # -- jobs ----------------------------------------------------------------------------
    def submit(self, job_class: JobClass) -> Submitted:
        """Queue one class of jobs from the work directory."""
        result = self.schedd.submit_text(job_class.submit_text(), base_dir=self.work, source=job_class.name)
        assert result.count == job_class.count
        return Submitted(job_class, result.cluster_id)

    def queue_counts(self) -> Counter[int]:
        """Queued jobs by JobStatus."""
        jobs = self.schedd.query(projection=["JobStatus"])
        return Counter(int(j["JobStatus"]) for j in jobs)

    def history(self) -> list[dict[str, Any]]:
        """Every job that left the queue."""
        return self.schedd.history(limit=None, projection=["ClusterId", "ProcId", "JobStatus", "ExitCode"])

    # -- glideins ------------------------------------------------------------------------
    def pilots(self, *, all_states: bool = False) -> list[dict[str, Any]]:
        """The factory's pilots (active ones, or every one)."""
        params = {"all": "true"} if all_states else None
        return list(self.factory.get("/v1/pilots", params=params)["pilots"])

    def entry_counts(self) -> dict[str, dict[str, int]]:
        """Entry -> active pilots by state."""
        return {e["name"]: dict(e["counts"]) for e in self.factory.get("/v1/entries")["entries"]}

    def glideins_per_site(self) -> Counter[str]:
        """Distinct glideins (startd agents) with a slot in the user pool, per site."""
        ads = self.pool.query("Machine", projection=["GLIDEIN_Site", "GwmsStartdId", "Name"])
        seen = {(a.get("GLIDEIN_Site"), a.get("GwmsStartdId") or a["Name"].split("@", 1)[-1]) for a in ads}
        return Counter(site for site, _ in seen)

    def describe(self) -> str:
        """What the system looks like now (for failure messages)."""
        parts = []
        for what, look in (
            ("queue by JobStatus", lambda: dict(self.queue_counts())),
            ("held", lambda: [(j["ClusterId"], j["ProcId"], j.get("HoldReason")) for j in
                              self.schedd.query("JobStatus == 5", projection=["ClusterId", "ProcId", "HoldReason"])][:5]),
            ("pilots by entry", self.entry_counts),
            ("glideins in the pool by site", lambda: dict(self.glideins_per_site())),
            ("active pilots", lambda: [(p["pilot_id"], p["entry"], p["state"], p.get("reason")) for p in self.pilots()]),
        ):
            try:
                parts.append(f"{what}: {look()}")
            except Exception as exc:  # noqa: BLE001
                parts.append(f"{what}: ({exc})")
        return "; ".join(parts)

    # -- processes -----------------------------------------------------------------------
    def service_pids(self) -> dict[str, int]:
        """Service name (as in up.json) -> pid, from the command lines naming this data dir."""
        pids: dict[str, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                words = [w.decode(errors="replace") for w in (entry / "cmdline").read_bytes().split(b"\0")]
            except OSError:
                continue
            if "--data" not in words or str(self.data) not in words or "run" not in words:
                continue
            kind = words[words.index("run") - 1]
            if kind == "collector":
                kind = "wms" if words[words.index("--name") + 1] == "wms" else "collector"
            pids[kind] = int(entry.name)
        return pids

    def kill9(self, service: str, timeout: float = 40.0) -> int:
        """``kill -9`` one service; wait until the supervisor restarted it. The new pid."""
        old = self.service_pids()[service]
        os.kill(old, signal.SIGKILL)
        return int(wait_for(lambda: (p := self.service_pids().get(service)) and p != old and p, timeout=timeout,
                            what=f"{service} restarted"))

    def stop(self) -> str:
        """``gwms down`` (SIGTERM); SIGKILL if it does not stop. The output of gwms up."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for client in ("schedd", "factory", "pool", "wms"):
            obj = getattr(self, client, None)
            if obj is not None:
                obj.close()
        self._log.close()
        return self.log_path.read_text()


@dataclass
class Sampler:
    """Looks at the factory and the user collector every ``interval`` s from a thread;
    records the largest counts seen and every look that broke a rule."""

    system: System
    interval: float = 0.3
    max_active: Counter[str] = field(default_factory=Counter)
    max_slots: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    looks: int = 0
    check: Callable[[dict[str, dict[str, int]]], str | None] | None = None

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="e2e-sampler", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> Sampler:
        self._stop.set()
        self._thread.join(30)
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                counts = self.system.entry_counts()
                slots = self.system.glideins_per_site()
            except Exception:  # noqa: BLE001 - a service being restarted: look again
                self._stop.wait(self.interval)
                continue
            self.looks += 1
            for entry, states in counts.items():
                active = sum(states.values())
                self.max_active[entry] = max(self.max_active[entry], active)
                if active > GLIDEINS_PER_ENTRY:
                    self.violations.append(f"{entry}: {active} active glideins {states}")
            for site, n in slots.items():
                self.max_slots[site] = max(self.max_slots[site], n)
                if n > GLIDEINS_PER_ENTRY:
                    self.violations.append(f"{site}: {n} glideins in the user pool")
            if self.check is not None:
                problem = self.check(counts)
                if problem:
                    self.violations.append(problem)
            self._stop.wait(self.interval)


def wait_for(check: Callable[[], Any], *, timeout: float, interval: float = 0.2, what: str = "",
             describe: Callable[[], str] | None = None) -> Any:
    """Poll ``check`` until it returns something true; AssertionError after ``timeout``
    (with ``describe()`` in the message)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except Exception:  # noqa: BLE001 - services may be restarting
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            more = f"\n{describe()}" if describe is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or check}{more}")
        time.sleep(interval)


def check_outputs(system: System, submitted: list[Submitted]) -> None:
    """Every job completed with exit 0, its output says it ran at an allowed site and
    holds the right result."""
    by_cluster = {s.cluster: s.job_class for s in submitted}
    ended = [j for j in system.history() if int(j["ClusterId"]) in by_cluster]
    assert len(ended) == sum(s.job_class.count for s in submitted), "jobs missing from the history"
    bad = [j for j in ended if j["JobStatus"] != 4 or j.get("ExitCode") != 0]
    assert not bad, bad[:5]
    out_dir = system.tmp / "outputs"
    out_dir.mkdir(exist_ok=True)
    for job in ended:
        cluster, proc = int(job["ClusterId"]), int(job["ProcId"])
        system.schedd.fetch_output(cluster, proc, out_dir)
        jc = by_cluster[cluster]
        text = (out_dir / f"{jc.name}.{proc}.out").read_text()
        lines = text.splitlines()
        assert lines[-1] == f"job={jc.name}.{proc} done", text
        first = dict(kv.split("=", 1) for kv in lines[0].split())
        assert first["job"] == f"{jc.name}.{proc}" and first["square"] == str(proc * proc), text
        allowed = {SITES[e] for e in jc.entries()}
        assert first["site"] in allowed, f"{jc.name}.{proc} ran at {first['site']}, allowed {allowed}"
