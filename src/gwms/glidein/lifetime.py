"""When the agent takes jobs, stops taking them, and ends: pure decisions.

The glidein's lifetime rules (GlideinWMS defaults):

- retire after ``GLIDEIN_Retire_Time`` (6 h) minus a random spread (up to 10 %): stop
  accepting jobs, let the running ones finish, exit after the last one;
- die at retire + ``GLIDEIN_Job_Max_Time`` (34800 s) or at an explicit die time: running
  jobs are vacated (they go back to idle in their schedd) and the agent exits;
- retire when no job ever started within ``GLIDEIN_Max_Idle`` (1200 s), or when idle for
  ``GLIDEIN_Max_Tail`` (400 s) after jobs ran;
- SIGTERM drains (retire now); a second SIGTERM (or die time) vacates at once;
- black hole: when at least ``GLIDEIN_BLACKHOLE_NUMJOBS`` jobs ended recently and they
  ran shorter than ``1 / GLIDEIN_BLACKHOLE_RATE`` seconds on average, stop accepting
  (latched: the agent never accepts again).

Everything here is a pure function of times and counts; the agent applies the verdicts
and latches "retiring" itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DEFAULT_RETIRE_TIME = 6 * 3600.0
DEFAULT_RETIRE_SPREAD = 0.10
DEFAULT_JOB_MAX_TIME = 34800.0
DEFAULT_MAX_IDLE = 1200.0
DEFAULT_MAX_TAIL = 400.0
DEFAULT_BLACKHOLE_WINDOW = 1200.0


@dataclass(frozen=True)
class LifetimePolicy:
    """The lifetime settings of one agent (seconds; ``die_time`` counted from the start)."""

    retire_time: float = DEFAULT_RETIRE_TIME
    retire_spread: float = DEFAULT_RETIRE_SPREAD
    job_max_time: float = DEFAULT_JOB_MAX_TIME
    die_time: float | None = None
    max_idle: float = DEFAULT_MAX_IDLE
    max_tail: float = DEFAULT_MAX_TAIL
    blackhole_numjobs: int = 0  # 0: black-hole detection off
    blackhole_rate: float = 0.0  # jobs per second
    blackhole_window: float = DEFAULT_BLACKHOLE_WINDOW


@dataclass(frozen=True)
class Deadlines:
    """Absolute times (epoch seconds) of one agent's life: start <= retire_at <= die_at."""

    start: float
    retire_at: float
    die_at: float


def plan_deadlines(start: float, policy: LifetimePolicy, draw: float) -> Deadlines:
    """Retire and die times for an agent started at ``start``.

    ``draw`` in [0, 1] picks the spread: retire at ``start + retire_time * (1 - spread * draw)``.
    Die at ``start + die_time`` when given, else at retire + ``job_max_time``; retiring never
    comes after dying.
    """
    draw = min(max(draw, 0.0), 1.0)
    retire_time = max(policy.retire_time, 0.0)
    spread = min(max(policy.retire_spread, 0.0), 1.0)
    retire_at = start + retire_time * (1.0 - spread * draw)
    if policy.die_time is not None:
        die_at = start + max(policy.die_time, 0.0)
    else:
        die_at = retire_at + max(policy.job_max_time, 0.0)
    return Deadlines(start, min(retire_at, die_at), die_at)


@dataclass(frozen=True)
class Activity:
    """What the agent is doing at ``now``.

    ``idle_since`` is when the number of running jobs last became zero (the start time
    if no job ever ran); ``drain`` and ``fast`` are the first and second shutdown requests.
    """

    now: float
    jobs_started: int = 0
    running: int = 0
    idle_since: float = 0.0
    drain: bool = False
    fast: bool = False
    black_hole: bool = False


@dataclass(frozen=True)
class Verdict:
    """What to do now: take new jobs, vacate the running ones, exit; and why not accepting."""

    accept: bool
    vacate: bool
    exit: bool
    reason: str = ""


def decide(deadlines: Deadlines, policy: LifetimePolicy, act: Activity) -> Verdict:
    """The lifetime verdict for one moment (see the module docstring for the rules)."""
    done = act.running == 0
    if act.fast:
        return Verdict(False, True, done, "fast shutdown requested")
    if act.now >= deadlines.die_at:
        return Verdict(False, True, done, "die time reached")
    reason = retire_reason(deadlines, policy, act)
    if reason:
        return Verdict(False, False, done, reason)
    return Verdict(True, False, False, "")


def retire_reason(deadlines: Deadlines, policy: LifetimePolicy, act: Activity) -> str:
    """Why the agent should stop accepting jobs now, or "" if it should not."""
    if act.drain:
        return "shutdown requested: draining"
    if act.now >= deadlines.retire_at:
        return "retire time reached"
    if act.black_hole:
        return "black hole: recent jobs ended too fast"
    if act.running == 0:
        # compared as deadlines (not as durations) so that next_check() agrees exactly
        if act.jobs_started == 0 and act.now >= deadlines.start + policy.max_idle:
            return f"no job started within max idle ({policy.max_idle:g} s)"
        if act.jobs_started > 0 and act.now >= act.idle_since + policy.max_tail:
            return f"idle for max tail ({policy.max_tail:g} s) after jobs ran"
    return ""


def next_check(deadlines: Deadlines, policy: LifetimePolicy, act: Activity) -> float:
    """The next time (epoch) at which :func:`decide` may change its verdict by itself."""
    times = [deadlines.die_at, deadlines.retire_at]
    if act.running == 0:
        if act.jobs_started == 0:
            times.append(deadlines.start + policy.max_idle)
        else:
            times.append(act.idle_since + policy.max_tail)
    future = [t for t in times if t > act.now]
    return min(future) if future else act.now


def recent_durations(history: Iterable[tuple[float, float]], now: float, window: float) -> list[float]:
    """Durations of the jobs that ended within ``window`` seconds before ``now``.

    ``history`` holds ``(end time, duration)`` pairs.
    """
    return [duration for ended, duration in history if now - ended <= window]


def is_black_hole(durations: Sequence[float], numjobs: int, rate: float) -> bool:
    """Whether at least ``numjobs`` recent jobs ran shorter than ``1/rate`` s on average.

    Off (always False) when ``numjobs`` or ``rate`` is not positive.
    """
    if numjobs <= 0 or rate <= 0 or len(durations) < numjobs:
        return False
    return sum(durations) / len(durations) < 1.0 / rate
