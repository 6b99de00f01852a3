"""The options of ``startd run``, in one table for both command lines.

``python3 gwms-startd.pyz run ...`` and ``python3 -m gwms.glidein.startd run ...`` parse
them with :mod:`argparse` (:func:`build_parser`); ``gwms startd run`` builds its click
options from the same :data:`OPTIONS`. Every ``dest`` is a keyword of
:func:`gwms.glidein.config.build_config`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

#: Kinds of option values.
STR, INT, FLOAT, PATH, FLAG, MULTI = "str", "int", "float", "path", "flag", "multi"


@dataclass(frozen=True)
class Opt:
    """One option of ``startd run``."""

    flag: str
    dest: str
    kind: str
    help: str
    metavar: str | None = None
    required: bool = False


OPTIONS: tuple[Opt, ...] = (
    Opt("--collector", "collector", STR, "the pool's collector", "URL", required=True),
    Opt("--token", "token_file", PATH, "file holding the pool token (READ, ADVERTISE_STARTD)", "FILE", required=True),
    Opt("--name", "name", STR, "glidein name; slots are slotN@NAME (default glidein_<pid>_<random>@<host>)", "NAME"),
    Opt("--slots", "slots", INT, "number of static slots sharing the resources evenly (default 1)", "N"),
    Opt("--partitionable", "partitionable", FLAG, "one partitionable slot carving a dynamic slot per job"),
    Opt("--cpus", "cpus", INT, "CPUs of the glidein (default: the CPUs this process may use)", "N"),
    Opt("--memory", "memory", INT, "memory of the glidein in MiB (default: the node's)", "MB"),
    Opt("--disk", "disk", INT, "disk of the glidein in KiB (default: free space of the work directory)", "KB"),
    Opt("--gpus", "gpus", INT, "GPUs of the glidein (default 0)", "N"),
    Opt("--attr", "attrs", MULTI, "publish NAME=VALUE in every slot ad and job environment (repeatable)", "NAME=VALUE"),
    Opt("--start", "start", STR, "the slots' START expression (default true)", "EXPR"),
    Opt("--workdir", "workdir", PATH, "directory for the job sandboxes (default ./execute)", "DIR"),
    Opt("--log-dir", "log_dir", PATH, "directory for StartdLog, StarterLog.slotN and StartdEvents.jsonl", "DIR"),
    Opt("--retire-time", "retire_time", FLOAT, "stop accepting jobs after S seconds (default 21600)", "S"),
    Opt("--retire-spread", "retire_spread", FLOAT, "retire up to this fraction earlier, at random (default 0.1)", "F"),
    Opt("--die-time", "die_time", FLOAT, "vacate running jobs and exit after S seconds (default retire + job max time)", "S"),
    Opt("--job-max-time", "job_max_time", FLOAT, "how long jobs may run after retiring (default 34800)", "S"),
    Opt("--max-idle", "max_idle", FLOAT, "exit when no job started within S seconds (default 1200)", "S"),
    Opt("--max-tail", "max_tail", FLOAT, "exit when idle for S seconds after jobs ran (default 400)", "S"),
    Opt("--blackhole-numjobs", "blackhole_numjobs", INT, "black hole: jobs to look at (default 0: off)", "N"),
    Opt("--blackhole-rate", "blackhole_rate", FLOAT, "black hole: most jobs per second before the latch closes", "R"),
    Opt("--ad-lifetime", "ad_lifetime", INT, "ClassAdLifetime of the slot ads; refreshed every third of it (default 300)", "S"),
    Opt("--poll-wait", "poll_wait", FLOAT, "long-poll wait sent to each schedd (default 20)", "S"),
    Opt("--schedd-refresh", "schedd_refresh", FLOAT, "how often to look for schedds in the collector (default 30)", "S"),
    Opt("--monitor-interval", "monitor_interval", FLOAT, "how often to sample job memory and walltime (default 1)", "S"),
    Opt("--kill-grace", "kill_grace", FLOAT, "seconds between SIGTERM and SIGKILL when the job sets no JobMaxVacateTime (default 10)", "S"),
    Opt("--vm-factor", "vm_factor", FLOAT, "RLIMIT_AS = slot memory x F (default 2; 0: no limit)", "F"),
    Opt("--ca-file", "ca_file", STR, "CA bundle for https collector and schedds", "FILE"),
)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Add :data:`OPTIONS` to an argparse parser."""
    for opt in OPTIONS:
        kw: dict = {"dest": opt.dest, "help": opt.help}
        if opt.kind == FLAG:
            parser.add_argument(opt.flag, action="store_true", **kw)
            continue
        if opt.metavar:
            kw["metavar"] = opt.metavar
        if opt.required:
            kw["required"] = True
        if opt.kind == MULTI:
            parser.add_argument(opt.flag, action="append", default=[], **kw)
        elif opt.kind == INT:
            parser.add_argument(opt.flag, type=int, **kw)
        elif opt.kind == FLOAT:
            parser.add_argument(opt.flag, type=float, **kw)
        else:
            parser.add_argument(opt.flag, **kw)


def build_parser(prog: str = "gwms-startd") -> argparse.ArgumentParser:
    """The argparse command line of the zipapp: ``run`` and ``version``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="gwms startd agent: advertises slots, claims matched jobs over outbound "
        "connections only, and runs them.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    run = sub.add_parser("run", help="run the startd agent until it retires",
                         description="Run the startd agent until it retires.")
    add_run_options(run)
    run.add_argument("--echo", action="store_true", help="also print StartdLog lines on stderr")
    sub.add_parser("version", help="print the agent's version")
    return parser
