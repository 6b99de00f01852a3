"""``gwms demo`` (what ``make demo`` runs): ``gwms up`` plus a sample workload, live.

1. starts ``gwms up --data DIR`` as a child process (or uses the one already running on
   DIR) and waits until every service is up;
2. copies the sample workload (``examples/``: submit files and their script) into a
   fresh run directory under ``DIR/demo/`` and submits every ``*.sub`` there;
3. shows the progress in the terminal, refreshed every second: per submit file the jobs
   idle / running / held / done, and per factory entry the glideins (queued, running)
   and their slots in the user pool;
4. when every job has left the queue, fetches the outputs into the run directory, checks
   that each finished job exited 0, indexes the glideins' logs for ``gwms logs search``,
   and prints where to look (the web UI's pages, the commands to try);
5. leaves the system running until Ctrl-C (``exit_when_done``: stops it at once).

The progress is read with the same clients the commands use: the schedd (queue and
history), the factory's API (its pilots per entry) and the user collector (slots).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gwms.errors import GwmsError

__all__ = [
    "DemoOptions",
    "DemoResult",
    "Progress",
    "default_examples_dir",
    "render_line",
    "render_table",
    "run_demo",
    "start_up",
]

#: JobStatus codes (HTCondor's).
IDLE, RUNNING, REMOVED, COMPLETED, HELD = 1, 2, 3, 4, 5
#: Words of the supervisor's lines worth showing under the table (a service restarted).
SUPERVISOR_EVENTS = ("exited with code", "restarting", "running at", "did not start")
#: Factory pilot states that are not yet running at the site.
QUEUED_STATES = ("unsubmitted", "pending", "staging")


class DemoError(GwmsError):
    """The demo could not start or its workload failed."""


@dataclass(frozen=True)
class DemoOptions:
    """What ``gwms demo`` was asked for."""

    data: Path
    examples: Path
    exit_when_done: bool = False
    config: Path | None = None
    timeout: float = 900.0
    refresh: float = 1.0


@dataclass
class ClusterInfo:
    """One submitted file: its cluster and how many jobs it queued."""

    name: str
    cluster: int
    count: int


@dataclass
class Progress:
    """One look at the system: jobs per submit file, glideins and slots per entry."""

    jobs: dict[str, Counter[str]] = field(default_factory=dict)
    glideins: dict[str, Counter[str]] = field(default_factory=dict)
    slots: dict[str, Counter[str]] = field(default_factory=dict)
    elapsed: float = 0.0
    error: str = ""

    def totals(self) -> Counter[str]:
        """Jobs by state over every submit file."""
        out: Counter[str] = Counter()
        for counts in self.jobs.values():
            out.update(counts)
        return out

    def finished(self) -> bool:
        """True when no job is idle or running (held ones wait for a person: failures)."""
        t = self.totals()
        return bool(self.jobs) and not (t["idle"] or t["running"])


@dataclass
class DemoResult:
    """What the demo did: the run directory, the clusters, the final look and outputs."""

    run_dir: Path
    clusters: list[ClusterInfo]
    progress: Progress
    failed: list[str]
    urls: dict[str, str]
    seconds: float


def default_examples_dir() -> Path:
    """``examples/`` of the source tree this package runs from, else of the cwd."""
    here = Path(__file__).resolve().parents[3] / "examples"
    return here if here.is_dir() else Path.cwd() / "examples"


# --------------------------------------------------------------------------- gwms up


class UpProcess:
    """A ``gwms up`` child: its output goes to ``DIR/logs/up.log`` once it is up;
    ``last_event`` is the supervisor's latest line about a service (exit, restart)."""

    def __init__(self, proc: subprocess.Popen[str] | None, data: Path) -> None:
        self.proc = proc
        self.data = data
        self.last_event = ""
        self._pump: threading.Thread | None = None

    def follow(self) -> None:
        """Copy the rest of the child's output to the log, remembering the last line."""
        if self.proc is None or self.proc.stdout is None:
            return
        out = self.proc.stdout
        log_path = self.data / "logs" / "up.log"

        def pump() -> None:
            with open(log_path, "a") as log:
                for line in out:
                    log.write(line)
                    log.flush()
                    if any(word in line for word in SUPERVISOR_EVENTS):
                        self.last_event = time.strftime("%H:%M:%S ") + line.strip()

        self._pump = threading.Thread(target=pump, name="gwms-up-output", daemon=True)
        self._pump.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the child (SIGTERM; the supervisor stops every service), if we started it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def start_up(data: Path, *, config: Path | None = None, echo: Callable[[str], None] = print,
             timeout: float = 180.0) -> UpProcess:
    """Start ``gwms up --data DIR`` and wait for "gwms is up" (its lines are echoed);
    if a ``gwms up`` already runs on DIR, use it."""
    from gwms.embedded.up import PID_FILE, AlreadyRunning, check_not_running

    data.mkdir(parents=True, exist_ok=True)
    try:
        check_not_running(data / PID_FILE)
    except AlreadyRunning:
        echo(f"using the gwms up already running on {data}")
        return UpProcess(None, data)
    argv = [sys.executable, "-m", "gwms", "up", "--data", str(data)]
    if config is not None:
        argv += ["--config", str(config)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    up = UpProcess(proc, data)
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        for line in proc.stdout:
            seen.append(line)
            echo(line.rstrip("\n"))
            if "gwms is up" in line:
                break
        else:
            raise DemoError("gwms up stopped before it was up:\n" + "".join(seen[-15:]))
    finally:
        timer.cancel()
    if time.monotonic() > deadline:
        raise DemoError(f"gwms up was not up within {timeout:.0f} s")
    (data / "logs").mkdir(parents=True, exist_ok=True)
    up.follow()
    return up


# --------------------------------------------------------------------------- the workload


def prepare_run_dir(data: Path, examples: Path) -> Path:
    """A fresh ``DIR/demo/run-<n>`` with a copy of the example files."""
    subs = sorted(examples.glob("*.sub"))
    if not subs:
        raise DemoError(f"no submit files (*.sub) in {examples}")
    base = data / "demo"
    base.mkdir(parents=True, exist_ok=True)
    n = 1 + max((int(p.name[4:]) for p in base.glob("run-*") if p.name[4:].isdigit()), default=0)
    run_dir = base / f"run-{n}"
    run_dir.mkdir()
    for item in examples.iterdir():
        if item.is_file():
            shutil.copy2(item, run_dir / item.name)
    return run_dir


def submit_all(schedd: Any, run_dir: Path) -> list[ClusterInfo]:
    """Submit every ``*.sub`` in ``run_dir`` (from there, so outputs land there)."""
    clusters = []
    for sub in sorted(run_dir.glob("*.sub")):
        result = schedd.submit_file(sub, base_dir=run_dir)
        clusters.append(ClusterInfo(sub.stem, result.cluster_id, result.count))
    return clusters


# --------------------------------------------------------------------------- looking


class Observer:
    """Reads the progress of a workload from the schedd, the factory and the collector."""

    def __init__(self, data: Path, clusters: Sequence[ClusterInfo]) -> None:
        from gwms.embedded.up import read_urls
        from gwms.net import SyncServiceClient
        from gwms.pool.clientfile import load_client_file
        from gwms.pool.collector.client import CollectorClient
        from gwms.pool.schedd.client import ScheddClient
        from gwms.security import scopes
        from gwms.security.layout import SecurityLayout

        self.clusters = list(clusters)
        info = load_client_file(str(data))
        verify: bool | str = info.ca_file or True
        self.urls = read_urls(data)
        token = SecurityLayout(data).mint_token("demo", [scopes.READ])
        self.schedd = ScheddClient(info.require_schedd(), token=info.token, verify=verify, timeout=30)
        self.collector = CollectorClient(info.collector, token=token, verify=verify, timeout=10, retries=1)
        self.factory = (SyncServiceClient(self.urls["factory"], token=token, verify=verify, timeout=10,
                                          retries=1, service="factory")
                        if self.urls.get("factory") else None)

    def close(self) -> None:
        """Close the clients."""
        self.schedd.close()
        self.collector.close()
        if self.factory is not None:
            self.factory.close()

    def look(self) -> Progress:
        """Jobs per submit file, glideins per entry, slots per site, now."""
        progress = Progress()
        if not self.clusters:
            return progress
        by_cluster = {c.cluster: c for c in self.clusters}
        first, last = min(by_cluster), max(by_cluster)
        constraint = f"ClusterId >= {first} && ClusterId <= {last}"
        try:
            queued = self.schedd.query(constraint, projection=["ClusterId", "ProcId", "JobStatus"])
            ended = self.schedd.history(constraint, projection=["ClusterId", "ProcId", "JobStatus", "ExitCode"],
                                        limit=None)
        except GwmsError as exc:
            progress.error = f"schedd: {exc}"
            return progress
        names = {c.cluster: c.name for c in self.clusters}
        for c in self.clusters:
            progress.jobs[c.name] = Counter()
        for job in queued:
            name = names.get(int(job.get("ClusterId", -1)))
            if name is not None:
                progress.jobs[name][_state(job.get("JobStatus"))] += 1
        for job in ended:
            name = names.get(int(job.get("ClusterId", -1)))
            if name is not None:
                status = job.get("JobStatus")
                progress.jobs[name]["removed" if status == REMOVED else "done"] += 1
        progress.glideins = self._glideins()
        progress.slots = self._slots()
        return progress

    def _glideins(self) -> dict[str, Counter[str]]:
        if self.factory is None:
            return {}
        try:
            entries = self.factory.get("/v1/entries")["entries"]
        except GwmsError:
            return {}
        out: dict[str, Counter[str]] = {}
        for entry in entries:
            counts = entry.get("counts") or {}
            c: Counter[str] = Counter()
            c["queued"] = sum(int(counts.get(s, 0)) for s in QUEUED_STATES)
            c["running"] = int(counts.get("running", 0))
            c["other"] = sum(int(v) for k, v in counts.items() if k not in (*QUEUED_STATES, "running"))
            out[str(entry.get("name"))] = c
        return out

    def _slots(self) -> dict[str, Counter[str]]:
        try:
            ads = self.collector.query("Machine", projection=["GLIDEIN_Site", "State", "Cpus", "PartitionableSlot"])
        except GwmsError:
            return {}
        out: dict[str, Counter[str]] = {}
        for ad in ads:
            site = str(ad.get("GLIDEIN_Site") or "?")
            out.setdefault(site, Counter())["slots"] += 1
            if ad.get("State") == "Claimed":
                out[site]["busy"] += 1
        return out


def _state(status: object) -> str:
    return {IDLE: "idle", RUNNING: "running", HELD: "held", COMPLETED: "done", REMOVED: "removed"}.get(
        status if isinstance(status, int) else -1, "idle")


# --------------------------------------------------------------------------- showing


def render_table(progress: Progress, sites: dict[str, str] | None = None, event: str = "") -> Any:
    """A compact rich renderable: jobs per submit file, glideins per entry."""
    from rich.console import Group
    from rich.table import Table

    jobs = Table(title=f"jobs ({progress.elapsed:.0f} s)", title_justify="left", box=None, pad_edge=False)
    for col in ("workload", "idle", "running", "held", "done"):
        jobs.add_column(col, justify="left" if col == "workload" else "right")
    total: Counter[str] = Counter()
    for name, c in progress.jobs.items():
        total.update(c)
        jobs.add_row(name, str(c["idle"]), str(c["running"]), _held(c["held"]), f"[green]{c['done']}[/]")
    jobs.add_row("[bold]all[/]", str(total["idle"]), str(total["running"]), _held(total["held"]),
                 f"[bold green]{total['done']}[/]")
    glideins = Table(title="glideins", title_justify="left", box=None, pad_edge=False)
    for col in ("entry", "site", "queued", "running", "slots busy/all"):
        glideins.add_column(col, justify="left" if col in ("entry", "site") else "right")
    for entry, c in sorted(progress.glideins.items()):
        site = (sites or {}).get(entry, "")
        s = progress.slots.get(site, Counter())
        glideins.add_row(entry, site, str(c["queued"]), str(c["running"]), f"{s['busy']}/{s['slots']}")
    parts: list[Any] = [jobs, glideins]
    if progress.error:
        parts.append(f"[yellow]{progress.error}[/]")
    if event:
        parts.append(f"[dim]{event}[/]")
    return Group(*parts)


def _held(n: int) -> str:
    return f"[red]{n}[/]" if n else "0"


def render_line(progress: Progress) -> str:
    """The progress as one line (when the output is not a terminal)."""
    t = progress.totals()
    g = " ".join(f"{e}={c['running']}r/{c['queued']}q" for e, c in sorted(progress.glideins.items()))
    return (f"[{progress.elapsed:4.0f}s] jobs idle={t['idle']} running={t['running']} held={t['held']} "
            f"done={t['done']} | glideins {g}")


def entry_sites(data: Path) -> dict[str, str]:
    """Entry name -> GLIDEIN_Site, from the generated factory config."""
    import yaml

    try:
        cfg = yaml.safe_load((data / "factory" / "factory.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return {str(e.get("name")): str((e.get("attrs") or {}).get("GLIDEIN_Site", ""))
            for e in cfg.get("entries") or []}


# --------------------------------------------------------------------------- the whole demo


def watch(observer: Observer, *, timeout: float, refresh: float, console: Any, sites: dict[str, str],
          up: UpProcess | None = None) -> Progress:
    """Show the progress until every job has left the queue (or ``timeout``)."""
    start = time.monotonic()
    progress = Progress()
    if console.is_terminal:
        from rich.live import Live

        with Live(render_table(progress, sites), console=console, refresh_per_second=4, transient=False) as live:
            for progress in _looks(observer, start, timeout, refresh):
                live.update(render_table(progress, sites, up.last_event if up else ""))
    else:
        last_line = 0.0
        for progress in _looks(observer, start, timeout, refresh):
            if progress.finished() or time.monotonic() - last_line >= 5:
                console.print(render_line(progress), highlight=False, soft_wrap=True)
                last_line = time.monotonic()
    return progress


def _looks(observer: Observer, start: float, timeout: float, refresh: float) -> Iterator[Progress]:
    while True:
        progress = observer.look()
        progress.elapsed = time.monotonic() - start
        yield progress
        if progress.finished():
            return
        if progress.elapsed > timeout:
            raise DemoError(f"the workload did not finish within {timeout:.0f} s")
        time.sleep(refresh)


def fetch_outputs(observer: Observer, clusters: Sequence[ClusterInfo], run_dir: Path) -> list[str]:
    """Download every finished job's outputs into ``run_dir``; the jobs that failed
    (removed, or exit code other than 0), as ``name.proc: why``."""
    failed: list[str] = []
    ids = {c.cluster: c.name for c in clusters}
    first, last = min(ids), max(ids)
    ended = observer.schedd.history(f"ClusterId >= {first} && ClusterId <= {last}",
                                    projection=["ClusterId", "ProcId", "JobStatus", "ExitCode"], limit=None)
    for job in ended:
        cluster, proc = int(job["ClusterId"]), int(job["ProcId"])
        name = f"{ids.get(cluster, cluster)}.{proc}"
        if job.get("JobStatus") != COMPLETED:
            failed.append(f"{name}: removed")
            continue
        if job.get("ExitCode") not in (0, None):
            failed.append(f"{name}: exit code {job.get('ExitCode')}")
        with contextlib.suppress(GwmsError):
            observer.schedd.fetch_output(cluster, proc, run_dir)
    return failed


def index_logs(data: Path) -> bool:
    """One indexing pass over the factory's glidein logs into ``DIR/monitor`` (for
    ``gwms logs search``); False if it failed."""
    proc = subprocess.run(
        [sys.executable, "-m", "gwms", "logs", "index", "--source", str(data / "factory" / "logs"),
         "--data", str(data / "monitor")],
        capture_output=True, text=True, timeout=300, check=False,
    )
    return proc.returncode == 0


def where_to_look(data: Path, urls: dict[str, str], run_dir: Path, indexed: bool) -> list[str]:
    """The closing lines: the web UI and the commands to try, aligned."""
    pool = "" if data.resolve() == (Path.cwd() / "gwms-data").resolve() else f" --pool {_rel(data)}"
    dopt = "" if not pool else f" --data {_rel(data)}"
    web = urls.get("web")
    monitor = _rel(data / "monitor")
    if web:
        web_rows = [
            ("web UI", web),
            ("  dashboards", f"{web}/pool  {web}/factory  {web}/frontend"),
            ("  glidein logs", f"{web}/logs/ (sign in with the token in {_rel(data / 'tokens' / 'admin.token')})"),
        ]
    else:
        web_rows = [("web UI", f"(not running: start it with `gwms web run --data {_rel(data)}`)")]
    rows = [
        *web_rows,
        ("job outputs", f"{_rel(run_dir)}/"),
        ("service logs", f"{_rel(data / 'logs')}/"),
        (f"gwms q{pool}", "the queue; finished jobs: gwms history" + pool),
        (f"gwms status{pool}", "the glideins' slots in the user pool"),
        (f"gwms frontend status{dopt}", "what the frontend asks of each entry, and why"),
        (f"gwms factory q{dopt} -all", "every glidein: entry, state, age"),
        (f"gwms factory entries{dopt}", "the entries, their limits and requests"),
    ]
    if indexed:
        rows.append((f"gwms logs search --data {monitor} entry:siteC", "the glideins' logs"))
    else:
        rows.append((f"gwms logs index --source {_rel(data / 'factory' / 'logs')} --data {monitor}",
                     "then gwms logs search --data ..."))
    width = max(len(a) for a, _ in rows)
    return ["", "Where to look:"] + [f"  {a:<{width}}  {b}" for a, b in rows]


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)


def run_demo(opts: DemoOptions, *, console: Any = None) -> DemoResult:
    """Run the whole demo (see the module docstring). Raises :class:`DemoError` when the
    workload fails (a job held, removed or exiting non-zero) or takes too long."""
    from rich.console import Console

    console = console or Console()
    data = opts.data.resolve()
    say: Callable[[str], None] = lambda m: console.print(m, highlight=False, markup=False,
                                                         soft_wrap=True)
    up = start_up(data, config=opts.config, echo=say)
    stop_requested = threading.Event()
    try:
        run_dir = prepare_run_dir(data, opts.examples)
        from gwms.pool.clientfile import load_client_file
        from gwms.pool.schedd.client import ScheddClient

        info = load_client_file(str(data))
        with ScheddClient(info.require_schedd(), token=info.token, verify=info.ca_file or True) as schedd:
            clusters = submit_all(schedd, run_dir)
        say(f"submitted {sum(c.count for c in clusters)} jobs from {len(clusters)} submit files "
            f"({', '.join(f'{c.name}: {c.count}' for c in clusters)}) in {_rel(run_dir)}")
        observer = Observer(data, clusters)
        started = time.monotonic()
        try:
            progress = watch(observer, timeout=opts.timeout, refresh=opts.refresh, console=console,
                             sites=entry_sites(data), up=up)
            failed = fetch_outputs(observer, clusters, run_dir)
        finally:
            observer.close()
        seconds = time.monotonic() - started
        t = progress.totals()
        if t["held"]:
            failed.append(f"{t['held']} job(s) held (see `gwms q -hold`)")
        say(f"all {t['done']} jobs finished in {seconds:.0f} s; outputs in {_rel(run_dir)}/")
        if failed:
            say(f"{len(failed)} job(s) failed: " + "; ".join(failed[:10]))
        indexed = index_logs(data)
        for line in where_to_look(data, observer.urls, run_dir, indexed):
            say(line)
        result = DemoResult(run_dir, clusters, progress, failed, observer.urls, seconds)
        if not opts.exit_when_done and up.proc is not None:
            say("")
            say("gwms keeps running: press Ctrl-C to stop it.")
            _wait_for_interrupt(up, stop_requested)
        if failed:
            raise DemoError(f"{len(failed)} demo job(s) failed: {failed[0]}")
        return result
    finally:
        if up.proc is not None and up.proc.poll() is None:
            say("stopping gwms up ...")
        up.stop()
        if up.proc is not None:
            say(f"gwms is down (its output: {_rel(data / 'logs' / 'up.log')})")


def _wait_for_interrupt(up: UpProcess, stop: threading.Event) -> None:
    try:
        while up.proc is not None and up.proc.poll() is None and not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
