"""The agent's configuration: one dataclass, its defaults, and what is detected on the node.

Resource amounts given to the agent are totals for the glidein; static slots split them
evenly (:func:`gwms.glidein.slots.split_static`). What is not given is detected: CPUs
the process may use, the node's memory, the free disk of the work directory.
"""

from __future__ import annotations

import os
import platform
import random
import re
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gwms.glidein.errors import StartdConfigError
from gwms.glidein.lifetime import LifetimePolicy
from gwms.glidein.slots import Resources
from gwms.glidein.starter import StarterPolicy

DEFAULT_AD_LIFETIME = 300
DEFAULT_POLL_WAIT = 20.0
DEFAULT_SCHEDD_REFRESH = 30.0
DEFAULT_MONITOR_INTERVAL = 1.0
DEFAULT_HEARTBEAT = 30.0
DEFAULT_CLAIM_TIMEOUT = 120.0

_ATTR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")


@dataclass
class AgentConfig:
    """Everything one startd agent needs (see ``gwms startd run --help``)."""

    collector: str
    token_file: Path | None = None
    name: str = ""
    static_slots: int = 1
    partitionable: bool = False
    total: Resources = field(default_factory=lambda: Resources(1, 1024, 1024 * 1024, 0))
    attrs: dict[str, Any] = field(default_factory=dict)
    start: str = "true"
    workdir: Path = field(default_factory=lambda: Path("execute"))
    log_dir: Path | None = None
    lifetime: LifetimePolicy = field(default_factory=LifetimePolicy)
    starter: StarterPolicy = field(default_factory=StarterPolicy)
    ad_lifetime: int = DEFAULT_AD_LIFETIME
    poll_wait: float = DEFAULT_POLL_WAIT
    schedd_refresh: float = DEFAULT_SCHEDD_REFRESH
    monitor_interval: float = DEFAULT_MONITOR_INTERVAL
    ca_file: str | None = None
    echo: bool = False


def detect_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return max(os.cpu_count() or 1, 1)


def detect_memory_mb() -> int:
    """The node's memory in MiB (``/proc/meminfo`` MemTotal)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // (1024 * 1024)
    except (ValueError, OSError, AttributeError):
        return 1024


def detect_disk_kb(path: Path) -> int:
    """Free disk space at ``path`` (or its nearest existing parent) in KiB."""
    p = path.resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(str(p)).free // 1024
    except OSError:
        return 0


def detect_arch() -> str:
    """HTCondor's spelling of this machine's architecture."""
    machine = platform.machine()
    low = machine.lower()
    if low in ("x86_64", "amd64"):
        return "X86_64"
    if low in ("i386", "i486", "i586", "i686", "x86"):
        return "INTEL"
    return machine or "unknown"


def default_name(hostname: str | None = None) -> str:
    """A glidein name like HTCondor's: ``glidein_<pid>_<random>@<host>``."""
    host = hostname or socket.gethostname()
    return f"glidein_{os.getpid()}_{random.randrange(10**8, 10**9)}@{host}"


def parse_attr_value(text: str) -> Any:
    """A published attribute's value: ``"quoted"`` string, true/false, integer, real, or
    else the text itself as a string."""
    t = text.strip()
    if len(t) >= 2 and t[0] == '"' and t[-1] == '"':
        return t[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    if _INT.match(t):
        return int(t)
    if _FLOAT.match(t):
        return float(t)
    return text


def parse_attr(assignment: str) -> tuple[str, Any]:
    """``NAME=VALUE`` (a ``--attr`` option) as a name and a value."""
    name, eq, value = assignment.partition("=")
    name = name.strip()
    if not eq or not _ATTR_NAME.match(name):
        raise StartdConfigError(f"--attr {assignment!r}: expected NAME=VALUE with a ClassAd attribute name")
    return name, parse_attr_value(value)


def _positive(name: str, value: float | None, *, zero: bool = False) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not zero):
        raise StartdConfigError(f"{name} must be {'>= 0' if zero else '> 0'}, not {value:g}")


def build_config(
    *,
    collector: str,
    token_file: str | Path | None,
    name: str | None = None,
    slots: int | None = None,
    partitionable: bool = False,
    cpus: int | None = None,
    memory: int | None = None,
    disk: int | None = None,
    gpus: int | None = None,
    attrs: list[str] | tuple[str, ...] = (),
    start: str | None = None,
    workdir: str | Path | None = None,
    log_dir: str | Path | None = None,
    retire_time: float | None = None,
    retire_spread: float | None = None,
    die_time: float | None = None,
    job_max_time: float | None = None,
    max_idle: float | None = None,
    max_tail: float | None = None,
    blackhole_numjobs: int | None = None,
    blackhole_rate: float | None = None,
    ad_lifetime: int | None = None,
    poll_wait: float | None = None,
    schedd_refresh: float | None = None,
    monitor_interval: float | None = None,
    kill_grace: float | None = None,
    vm_factor: float | None = None,
    ca_file: str | None = None,
    echo: bool = False,
) -> AgentConfig:
    """Check the options of ``startd run`` and fill in defaults and detected values."""
    if not collector:
        raise StartdConfigError("--collector URL is required")
    if not re.match(r"^https?://[^/]+", collector):
        raise StartdConfigError(f"--collector must be an http(s) URL, not {collector!r}")
    token_path = Path(token_file) if token_file else None
    if token_path is not None and not token_path.is_file():
        raise StartdConfigError(f"token file {token_path} does not exist")
    if slots is not None and partitionable:
        raise StartdConfigError("--slots and --partitionable exclude each other")
    if slots is not None and slots < 1:
        raise StartdConfigError(f"--slots must be at least 1, not {slots}")
    for opt, val in (("--cpus", cpus), ("--memory", memory), ("--disk", disk)):
        _positive(opt, val)
    _positive("--gpus", gpus, zero=True)
    for opt, fval in (
        ("--retire-time", retire_time), ("--die-time", die_time), ("--job-max-time", job_max_time),
        ("--max-idle", max_idle), ("--max-tail", max_tail), ("--blackhole-rate", blackhole_rate),
        ("--poll-wait", poll_wait), ("--schedd-refresh", schedd_refresh), ("--kill-grace", kill_grace),
        ("--vm-factor", vm_factor),
    ):
        _positive(opt, fval, zero=True)
    _positive("--monitor-interval", monitor_interval)
    if retire_spread is not None and not 0 <= retire_spread <= 1:
        raise StartdConfigError(f"--retire-spread must be between 0 and 1, not {retire_spread:g}")
    if ad_lifetime is not None and ad_lifetime < 3:
        raise StartdConfigError(f"--ad-lifetime must be at least 3 seconds, not {ad_lifetime}")
    if blackhole_numjobs is not None and blackhole_numjobs < 0:
        raise StartdConfigError(f"--blackhole-numjobs must be >= 0, not {blackhole_numjobs}")

    published: dict[str, Any] = {}
    for item in attrs:
        k, v = parse_attr(item)
        published[k] = v
    lower = {k.lower(): v for k, v in published.items()}
    if blackhole_numjobs is None and isinstance(lower.get("glidein_blackhole_numjobs"), int):
        blackhole_numjobs = lower["glidein_blackhole_numjobs"]
    if blackhole_rate is None and isinstance(lower.get("glidein_blackhole_rate"), (int, float)):
        blackhole_rate = float(lower["glidein_blackhole_rate"])

    work = Path(workdir) if workdir else Path.cwd() / "execute"
    total = Resources(
        cpus if cpus is not None else detect_cpus(),
        memory if memory is not None else detect_memory_mb(),
        disk if disk is not None else detect_disk_kb(work),
        gpus if gpus is not None else 0,
    )
    base = LifetimePolicy()
    lifetime = LifetimePolicy(
        retire_time=base.retire_time if retire_time is None else retire_time,
        retire_spread=base.retire_spread if retire_spread is None else retire_spread,
        job_max_time=base.job_max_time if job_max_time is None else job_max_time,
        die_time=die_time,
        max_idle=base.max_idle if max_idle is None else max_idle,
        max_tail=base.max_tail if max_tail is None else max_tail,
        blackhole_numjobs=blackhole_numjobs or 0,
        blackhole_rate=blackhole_rate or 0.0,
    )
    sbase = StarterPolicy()
    starter = StarterPolicy(
        kill_grace=sbase.kill_grace if kill_grace is None else kill_grace,
        address_space_factor=sbase.address_space_factor if vm_factor is None else vm_factor,
    )
    return AgentConfig(
        collector=collector,
        token_file=token_path,
        name=name or default_name(),
        static_slots=slots or 1,
        partitionable=partitionable,
        total=total,
        attrs=published,
        start=start or "true",
        workdir=work,
        log_dir=Path(log_dir) if log_dir else None,
        lifetime=lifetime,
        starter=starter,
        ad_lifetime=ad_lifetime or DEFAULT_AD_LIFETIME,
        poll_wait=DEFAULT_POLL_WAIT if poll_wait is None else poll_wait,
        schedd_refresh=schedd_refresh or DEFAULT_SCHEDD_REFRESH,
        monitor_interval=monitor_interval or DEFAULT_MONITOR_INTERVAL,
        ca_file=ca_file,
        echo=echo,
    )
