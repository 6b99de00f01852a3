"""The ``slurm`` backend: pilots are Slurm batch jobs (``sbatch``/``squeue``/``sacct``/``scancel``).

One small class, as Parsl's ``SlurmProvider``: each pilot becomes a batch script rendered
from ``slurm_template.sh`` (beside this file) and submitted with ``sbatch --parsable`` on
standard input; the site job id is Slurm's job id.

- **Script.** ``#SBATCH`` lines for the job name (``<job_name_prefix><pilot_id>``), stdout
  and stderr (the :class:`~gwms.factory.backends.base.PilotSpec` paths), working directory,
  one task with ``cpus`` CPUs, ``--mem``, ``--time`` (walltime rounded up to minutes by
  Slurm), ``--export`` (default ``NONE``: the pilot gets the user's login environment at
  the site, never the factory's), ``--no-requeue`` (the factory, not Slurm, decides about
  retries), partition / account / QOS from the entry's settings, then the entry's extra
  directives. The pilot's ``env`` is exported in the script body, and the script ``exec``\\ s
  the pilot's ``argv``.
- **Shared file system.** Slurm writes stdout/stderr straight to the paths in the spec,
  so the factory and the worker nodes must share a file system (true for the test site on
  this machine and for clusters whose factory runs on a login node). The backend creates
  the parent directories before submitting. A remote site behind SSH (a later ``ssh``
  backend) runs the same commands through another :data:`Runner` and copies the files
  back in its own ``collect_output``.
- **Poll.** One ``squeue --states=all -j ids`` call (per 1,000 ids) reads state, reason and
  exit status of every job the controller still holds, finished ones included (for
  ``MinJobAge`` seconds after the end, 300 by default), so ``scontrol show job`` is not
  needed. Jobs the controller has forgotten are looked up with ``sacct`` when accounting
  works (detected on first use), else they are UNKNOWN. Mapping (:func:`site_status`):
  PENDING → PENDING, or HELD when the reason is a hold (``JobHeldUser``, ``JobHeldAdmin``,
  ``launch failed requeued held``); REQUEUE_HOLD / SPECIAL_EXIT → HELD; RUNNING,
  CONFIGURING, COMPLETING, SUSPENDED … → RUNNING; COMPLETED → COMPLETED (exit 0); FAILED
  with a non-zero exit of the pilot → COMPLETED with that exit code (128 + N for signal N),
  but FAILED when Slurm could not launch it (``JobLaunchFailure``, ``NodeDown``, …);
  TIMEOUT, NODE_FAIL, OUT_OF_MEMORY, PREEMPTED, BOOT_FAIL, DEADLINE → FAILED; CANCELLED
  → REMOVED; anything else → UNKNOWN with Slurm's word as the reason.
- **Idempotent submit.** Each successful ``sbatch`` is appended to
  ``<state_dir>/slurm-jobs.tsv`` (pilot id, job id, time), and pilots not found there are
  looked up by job name in ``squeue`` before submitting (this catches an ``sbatch`` that
  went through while the factory was killed), so a resubmitted spec gets its existing
  job back.
- **Remove** gives a pilot the same graceful end as the ``local`` backend: queued jobs
  are cancelled at once (``scancel -t PENDING``), running ones get SIGTERM in every
  process (``scancel -s TERM -f``), so the glidein stops its agent and writes its
  ``.out``/``.err`` sections however short the site's ``KillWait``; those still there
  ``kill_grace_s`` later are cancelled for good. A job the factory asked to remove polls
  as REMOVED once it ended, whatever its exit code. The removal times are kept in
  ``<state_dir>/slurm-removals.tsv`` so a restarted factory still finishes the job.
  ``kill_grace_s: 0`` cancels at once. **Release** is ``scontrol release``; ids that are
  gone are ignored by both. ``collect_output`` waits briefly until the output files stop
  changing, then makes sure both exist.

Every command goes through a :data:`Runner` (``argv, stdin, timeout -> CommandResult``) so
tests feed recorded outputs without Slurm.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from gwms.config import GwmsModel
from gwms.factory.backends.base import BackendError, PilotSpec, SiteState, SiteStatus

log = logging.getLogger("gwms.factory.slurm")

__all__ = [
    "CommandResult",
    "Runner",
    "SlurmBackend",
    "SlurmJob",
    "SlurmSettings",
    "decode_wait_status",
    "format_walltime",
    "parse_exit_code",
    "parse_sacct",
    "parse_sbatch_output",
    "parse_squeue",
    "render_script",
    "run_command",
    "sbatch_error_message",
    "site_status",
]

#: ``squeue -O`` fields; every field ends with ``|`` and is never padded or cut.
SQUEUE_FORMAT = "JobID:|,State:|,Reason:|,exit_code:|"
#: ``sacct -o`` fields (with ``--parsable2``: ``|`` between fields).
SACCT_FORMAT = "JobIDRaw,State,ExitCode,Reason"
#: ids per squeue / sacct / scancel / scontrol call.
BATCH = 1000
#: how long the submission journal remembers a pilot.
JOURNAL_DAYS = 30
JOURNAL_NAME = "slurm-jobs.tsv"
REMOVALS_NAME = "slurm-removals.tsv"
#: how long a removal is remembered (the job has long ended by then).
REMOVALS_KEEP_S = 86400.0

_JOB_ID = re.compile(r"^[0-9]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# ---------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class CommandResult:
    """What a command printed and how it ended."""

    returncode: int
    stdout: str
    stderr: str


#: ``runner(argv, stdin_text, timeout_s) -> CommandResult``; raises :class:`BackendError`
#: when the command cannot run at all (missing, timed out).
Runner = Callable[[Sequence[str], str | None, float], CommandResult]


def run_command(
    argv: Sequence[str], stdin: str | None = None, timeout: float = 60.0
) -> CommandResult:
    """Run ``argv`` on this machine (the default :data:`Runner`).

    Raises:
        BackendError: the command is missing or did not finish within ``timeout`` s.
    """
    try:
        proc = subprocess.run(
            list(argv),
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise BackendError(f"{argv[0]}: command not found (is Slurm installed here?)") from None
    except subprocess.TimeoutExpired:
        raise BackendError(f"{argv[0]} did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise BackendError(f"{argv[0]} could not run: {exc}") from None
    return CommandResult(proc.returncode, proc.stdout, proc.stderr)


# ---------------------------------------------------------------------------- settings


class SlurmSettings(GwmsModel):
    """``backend_settings`` of a ``slurm`` entry."""

    partition: str | None = Field(default=None, description="#SBATCH --partition")
    account: str | None = Field(default=None, description="#SBATCH --account")
    qos: str | None = Field(default=None, description="#SBATCH --qos")
    extra_directives: list[str] = Field(
        default_factory=list,
        description="more #SBATCH lines, e.g. '--constraint=avx2' (the '#SBATCH ' is optional)",
    )
    export: str = Field(
        default="NONE",
        description="#SBATCH --export: NONE gives the pilot the login environment at the site",
    )
    chdir: str | None = Field(
        default=None,
        description="the job's working directory at the site (default: the spec's workdir, "
        "else the directory of its stdout file)",
    )
    job_name_prefix: str = Field(default="gwms-", description="job name = prefix + pilot id")
    accounting: Literal["auto", "sacct", "none"] = Field(
        default="auto",
        description="look up jobs squeue has forgotten with sacct: auto (if it works), "
        "sacct (always), none (never)",
    )
    bin_dir: str | None = Field(default=None, description="directory of the Slurm commands")
    command_timeout_s: float = Field(default=60.0, gt=0, description="per Slurm command")
    collect_timeout_s: float = Field(
        default=10.0, ge=0, description="collect_output: wait at most this long for output"
    )
    kill_grace_s: float = Field(
        default=30.0, ge=0,
        description="remove: SIGTERM a running pilot first (it shuts down and writes its logs), "
        "scancel it this many seconds later if still there; 0: scancel at once",
    )

    @field_validator("partition", "account", "qos", "export", "chdir", "job_name_prefix")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and (_CONTROL.search(value) or '"' in value or "\\" in value):
            raise ValueError("must be one line without '\"' or '\\'")
        return value

    @field_validator("extra_directives")
    @classmethod
    def _directives(cls, value: list[str]) -> list[str]:
        out = []
        for item in value:
            if _CONTROL.search(item):
                raise ValueError(f"a directive is one line, not {item!r}")
            text = item.strip()
            if text.startswith("#SBATCH"):
                text = text[len("#SBATCH") :].strip()
            if not text.startswith("-"):
                raise ValueError(
                    f"a directive is an sbatch option like '--constraint=x', not {item!r}"
                )
            out.append(text)
        return out


# ---------------------------------------------------------------------------- script


def format_walltime(seconds: int) -> str:
    """``seconds`` as Slurm's ``[D-]HH:MM:SS`` (``--time``)."""
    if seconds < 0:
        raise ValueError(f"a walltime is not negative: {seconds}")
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


def _quoted(value: str, what: str) -> str:
    """A directive value in double quotes (sbatch's own quoting in ``#SBATCH`` lines)."""
    if _CONTROL.search(value) or '"' in value or "\\" in value:
        raise ValueError(
            f"{what} {value!r} holds a character Slurm cannot take (control, '\"', '\\')"
        )
    return f'"{value}"'


def _file_pattern(path: Path | str, what: str) -> str:
    """A path for ``--output``/``--error``: ``%`` doubled (Slurm expands ``%j`` and co)."""
    return _quoted(str(path).replace("%", "%%"), what)


def _template() -> Template:
    text = resources.files("gwms.factory.backends").joinpath("slurm_template.sh").read_text()
    return Template(text)


def _workdir(spec: PilotSpec, settings: SlurmSettings) -> str:
    if spec.workdir is not None:
        return str(spec.workdir)
    if settings.chdir:
        return settings.chdir
    return str(Path(spec.stdout).parent)


def render_script(spec: PilotSpec, settings: SlurmSettings) -> str:
    """The batch script for one pilot.

    Raises:
        ValueError: the spec cannot become a script (empty argv, bad environment name,
            a path or id with a newline or quote, a negative resource).
    """
    if not spec.argv:
        raise ValueError("the pilot has no command (empty argv)")
    if not spec.pilot_id or _CONTROL.search(spec.pilot_id):
        raise ValueError(f"pilot id {spec.pilot_id!r} is empty or not one line")
    if spec.cpus < 1:
        raise ValueError(f"cpus must be at least 1, not {spec.cpus}")
    if spec.memory_mb < 0 or spec.walltime_s < 0:
        raise ValueError("memory_mb and walltime_s are not negative")
    bad = [k for k in spec.env if not _ENV_NAME.match(k)]
    if bad:
        raise ValueError(f"not an environment variable name: {bad[0]!r}")

    lines = [
        f"--job-name={_quoted(settings.job_name_prefix + spec.pilot_id, 'job name')}",
        f"--output={_file_pattern(spec.stdout, 'stdout path')}",
        f"--error={_file_pattern(spec.stderr, 'stderr path')}",
        f"--chdir={_quoted(_workdir(spec, settings), 'working directory')}",
        "--nodes=1",
        "--ntasks=1",
        f"--cpus-per-task={spec.cpus}",
    ]
    if spec.memory_mb > 0:
        lines.append(f"--mem={spec.memory_mb}M")
    if spec.walltime_s > 0:
        lines.append(f"--time={format_walltime(spec.walltime_s)}")
    lines.append(f"--export={settings.export}")
    lines.append("--no-requeue")
    for option, value in (
        ("partition", settings.partition),
        ("account", settings.account),
        ("qos", settings.qos),
    ):
        if value:
            lines.append(f"--{option}={_quoted(value, option)}")
    lines.extend(settings.extra_directives)

    environment = "\n".join(f"export {k}={shlex.quote(v)}" for k, v in sorted(spec.env.items()))
    return _template().substitute(
        pilot_id=spec.pilot_id,
        directives="\n".join(f"#SBATCH {line}" for line in lines),
        environment=environment,
        command=shlex.join(spec.argv),
    )


# ---------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class SlurmJob:
    """One job as a Slurm command printed it."""

    job_id: str
    state: str  # Slurm's state word(s): "RUNNING", "CANCELLED by 0", ...
    reason: str = ""
    exit_code: int | None = None  # the script's exit code (0 when killed by a signal)
    signal: int | None = None  # the signal that killed it, 0 when none


def parse_sbatch_output(stdout: str) -> str:
    """The job id from ``sbatch --parsable`` (``"123"`` or ``"123;cluster"``).

    Raises:
        ValueError: no job id in the output.
    """
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if lines:
        job_id = lines[-1].split(";", 1)[0].strip()
        if _JOB_ID.match(job_id):
            return job_id
    raise ValueError(f"no job id in sbatch's output {stdout.strip()!r}")


def sbatch_error_message(stderr: str, stdout: str = "") -> str:
    """Slurm's complaint in one line (``sbatch: error: `` prefixes dropped)."""
    parts = []
    for line in (stderr or stdout).splitlines():
        line = line.strip()
        for prefix in ("sbatch: error: ", "sbatch: fatal: ", "sbatch: "):
            if line.startswith(prefix):
                line = line[len(prefix) :]
                break
        if line:
            parts.append(line)
    return "; ".join(parts) or "no message"


def decode_wait_status(status: int) -> tuple[int, int]:
    """``(exit_code, signal)`` from a raw wait status (what ``squeue -O exit_code`` prints)."""
    sig = status & 0x7F
    if sig:
        return 0, sig
    return (status >> 8) & 0xFF, 0


def parse_exit_code(text: str) -> tuple[int | None, int | None]:
    """``(exit_code, signal)`` from Slurm's ``"3:0"`` (sacct, scontrol); Nones if unreadable."""
    code, _, sig = text.strip().partition(":")
    try:
        return int(code), int(sig or 0)
    except ValueError:
        return None, None


def _reason(text: str) -> str:
    text = text.strip()
    return "" if text in ("None", "(null)", "") else text


def parse_squeue(text: str) -> dict[str, SlurmJob]:
    """Jobs from ``squeue -h -O 'JobID:|,State:|,Reason:|,exit_code:|'`` output.

    Lines that do not have the four fields are ignored.
    """
    jobs: dict[str, SlurmJob] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 4 or not _JOB_ID.match(fields[0].strip()):
            continue
        job_id, state, reason, raw = (f.strip() for f in fields[:4])
        code: int | None
        sig: int | None
        try:
            code, sig = decode_wait_status(int(raw))
        except ValueError:
            code, sig = None, None
        jobs[job_id] = SlurmJob(job_id, state, _reason(reason), code, sig)
    return jobs


def parse_sacct(text: str) -> dict[str, SlurmJob]:
    """Jobs from ``sacct -n -P -X -o JobIDRaw,State,ExitCode,Reason`` output.

    Step lines (``123.batch``) are ignored; a job listed twice keeps its last line.
    """
    jobs: dict[str, SlurmJob] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 3 or not _JOB_ID.match(fields[0].strip()):
            continue
        job_id, state, exit_text = (f.strip() for f in fields[:3])
        reason = _reason(fields[3]) if len(fields) > 3 else ""
        code, sig = parse_exit_code(exit_text)
        jobs[job_id] = SlurmJob(job_id, state, reason, code, sig)
    return jobs


# ---------------------------------------------------------------------------- states

_RUNNING = {
    "RUNNING", "CONFIGURING", "COMPLETING", "RESIZING", "SIGNALING", "STAGE_OUT",
    "SUSPENDED", "STOPPED",
}  # fmt: skip
_PENDING = {"PENDING", "REQUEUED", "REQUEUE_FED"}
_HELD = {"REQUEUE_HOLD", "SPECIAL_EXIT", "RESV_DEL_HOLD"}
_SITE_FAILED = {"TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE"}
_REMOVED = {"CANCELLED", "REVOKED"}
#: reasons of a FAILED job that Slurm, not the pilot, caused
_LAUNCH_FAILURES = {
    "JobLaunchFailure", "NodeDown", "BadConstraints", "SystemFailure", "Prolog",
    "PrologMissing", "launch_failed_requeued_held", "BurstBufferStageIn",
}  # fmt: skip


def _exit_value(code: int | None, sig: int | None) -> int | None:
    if sig:
        return 128 + sig
    return code


def site_status(job: SlurmJob) -> SiteStatus:
    """The factory's view of one Slurm job (the mapping in the module docstring)."""
    word = job.state.strip().split(" ", 1)[0].upper() if job.state.strip() else ""
    reason = job.reason
    described = job.state.strip() + (f" ({reason})" if reason else "")
    if word in _PENDING:
        if "held" in reason.lower():
            return SiteStatus(SiteState.HELD, reason=reason)
        return SiteStatus(SiteState.PENDING, reason=reason)
    if word in _HELD:
        return SiteStatus(SiteState.HELD, reason=described)
    if word in _RUNNING:
        return SiteStatus(SiteState.RUNNING, reason="" if word == "RUNNING" else word)
    value = _exit_value(job.exit_code, job.signal)
    code_text = f"ExitCode {job.exit_code}:{job.signal}" if job.exit_code is not None else ""
    if word == "COMPLETED":
        return SiteStatus(SiteState.COMPLETED, value if value is not None else 0)
    if word == "FAILED":
        if reason in _LAUNCH_FAILURES or reason.replace(" ", "_") in _LAUNCH_FAILURES:
            return SiteStatus(
                SiteState.FAILED, value or None, f"{described}, {code_text}".rstrip(", ")
            )
        why = f"killed by signal {job.signal}" if job.signal else ""
        return SiteStatus(SiteState.COMPLETED, value, why)
    if word in _SITE_FAILED:
        return SiteStatus(SiteState.FAILED, value or None, f"{described}, {code_text}".rstrip(", "))
    if word in _REMOVED:
        return SiteStatus(SiteState.REMOVED, None, described)
    return SiteStatus(SiteState.UNKNOWN, reason=f"Slurm state {described or '(empty)'}")


# ---------------------------------------------------------------------------- helpers

# sbatch messages that mean the whole site is unreachable: do not try the other pilots
_SITE_DOWN = (
    "Unable to contact slurm controller",
    "Socket timed out",
    "Connection refused",
    "Communication connection failure",
    "Zero Bytes were transmitted",
)
# scancel / scontrol release messages about ids that are gone or not held: not errors
_BENIGN = (
    "Invalid job id specified",
    "already completing or completed",
    "Job has already finished",
    "Job is no longer pending execution",
    "Job is not held",
    "Job/step already completing or completed",
)


def _chunks(items: Sequence[str], size: int = BATCH) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _problems(stderr: str) -> list[str]:
    """stderr lines that are not about gone / not-held ids."""
    return [
        line.strip()
        for line in stderr.splitlines()
        if line.strip() and not any(b.lower() in line.lower() for b in _BENIGN)
    ]


# ---------------------------------------------------------------------------- backend


class SlurmBackend:
    """Pilots as Slurm batch jobs (see the module docstring).

    Args:
        settings: partition, account, extra directives, ... (:class:`SlurmSettings`).
        state_dir: where the submission journal lives (None: no journal; pilots are then
            found again by job name only).
        runner: runs one command; the default runs it on this machine.
    """

    name = "slurm"

    def __init__(
        self,
        settings: SlurmSettings | None = None,
        state_dir: Path | None = None,
        runner: Runner | None = None,
    ) -> None:
        self.settings = settings or SlurmSettings()
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self._runner: Runner = runner or run_command
        self._lock = threading.RLock()
        self._journal: dict[str, str] | None = None
        self._removals: dict[str, tuple[float, bool]] | None = None  # job id -> (asked at, cancelled)
        self._sacct_works: bool | None = {"auto": None, "sacct": True, "none": False}[
            self.settings.accounting
        ]

    @classmethod
    def from_config(cls, settings: Mapping[str, Any], context: Any) -> SlurmBackend:
        """The backend of one entry, from its ``backend_settings``."""
        from gwms.factory.backends import BackendConfigError

        try:
            parsed = SlurmSettings.model_validate(dict(settings))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
                for e in exc.errors()
            )
            raise BackendConfigError(f"slurm backend settings: {problems}") from None
        return cls(parsed, Path(context.state_dir))

    # ------------------------------------------------------------------ commands

    def _cmd(self, name: str) -> str:
        return str(Path(self.settings.bin_dir) / name) if self.settings.bin_dir else name

    def _run(self, argv: list[str], stdin: str | None = None) -> CommandResult:
        return self._runner(argv, stdin, self.settings.command_timeout_s)

    # ------------------------------------------------------------------ journal

    def _journal_path(self) -> Path | None:
        return self.state_dir / JOURNAL_NAME if self.state_dir is not None else None

    def _load_journal(self) -> dict[str, str]:
        if self._journal is not None:
            return self._journal
        journal: dict[str, str] = {}
        path = self._journal_path()
        if path is not None and path.exists():
            cutoff = time.time() - JOURNAL_DAYS * 86400
            lines = path.read_text(errors="replace").splitlines()
            kept: list[str] = []
            for line in lines:
                fields = line.split("\t")
                if len(fields) != 3 or not _JOB_ID.match(fields[1]):
                    continue
                try:
                    when = float(fields[2])
                except ValueError:
                    continue
                if when >= cutoff:
                    journal[fields[0]] = fields[1]
                    kept.append(line)
            if len(kept) < len(lines):  # forget old and broken lines
                tmp = path.with_name(path.name + ".tmp")
                tmp.write_text("".join(f"{line}\n" for line in kept))
                os.replace(tmp, path)
        self._journal = journal
        return journal

    def _record(self, pilot_id: str, job_id: str) -> None:
        journal = self._load_journal()
        journal[pilot_id] = job_id
        path = self._journal_path()
        if path is None or "\t" in pilot_id:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{pilot_id}\t{job_id}\t{time.time():.0f}\n")
            fh.flush()

    def _find_by_name(self, pilot_ids: Sequence[str]) -> dict[str, str]:
        """pilot id -> job id of jobs of ours Slurm still holds under the pilots' job names."""
        prefix = self.settings.job_name_prefix
        names = {prefix + p: p for p in pilot_ids if "," not in p and "|" not in p}
        found: dict[str, str] = {}
        for chunk in _chunks(list(names), 200):
            argv = [self._cmd("squeue"), "-h", "--all", "--me", "-t", "all",
                    "-n", ",".join(chunk), "-O", "JobID:|,Name:|"]  # fmt: skip
            result = self._run(argv)
            if result.returncode != 0:
                raise BackendError(f"squeue (looking for pilots already submitted) failed: "
                                   f"{sbatch_error_message(result.stderr, result.stdout)}")  # fmt: skip
            for line in result.stdout.splitlines():
                job_id, _, rest = line.strip().partition("|")
                name = rest.removesuffix("|")
                if _JOB_ID.match(job_id) and name in names:
                    # the newest job wins when a name appears twice
                    pilot = names[name]
                    if pilot not in found or int(job_id) > int(found[pilot]):
                        found[pilot] = job_id
        return found

    # ------------------------------------------------------------------ submit

    def submit(self, pilots: Sequence[PilotSpec]) -> list[str | BackendError]:
        """``sbatch`` each pilot; its Slurm job id, or a :class:`BackendError` with Slurm's
        message. A pilot submitted before (same ``pilot_id``) gets its job id back.

        Raises:
            BackendError: Slurm could not be asked whether the pilots already exist.
        """
        with self._lock:
            journal = self._load_journal()
            fresh = [p.pilot_id for p in pilots if p.pilot_id not in journal]
            found = self._find_by_name(_unique(fresh)) if fresh else {}
            for pilot_id, job_id in found.items():
                log.info("slurm pilot %s was already submitted as job %s", pilot_id, job_id)
                self._record(pilot_id, job_id)
            out: list[str | BackendError] = []
            site_down: BackendError | None = None
            for spec in pilots:
                known = journal.get(spec.pilot_id)
                if known is not None:
                    out.append(known)
                elif site_down is not None:
                    out.append(BackendError(f"pilot {spec.pilot_id} not submitted: {site_down}"))
                else:
                    result, down = self._submit_one(spec)
                    if down:
                        site_down = result  # type: ignore[assignment]
                    out.append(result)
            return out

    def _submit_one(self, spec: PilotSpec) -> tuple[str | BackendError, bool]:
        """The job id or the error, and whether the error means the site is unreachable."""
        try:
            script = render_script(spec, self.settings)
        except ValueError as exc:
            return BackendError(f"pilot {spec.pilot_id}: {exc}"), False
        try:
            for path in (Path(spec.stdout), Path(spec.stderr)):
                path.parent.mkdir(parents=True, exist_ok=True)
            if spec.workdir is not None:
                Path(spec.workdir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return BackendError(
                f"pilot {spec.pilot_id}: cannot create its directories: {exc}"
            ), False
        try:
            result = self._run([self._cmd("sbatch"), "--parsable"], script)
        except BackendError as exc:
            return BackendError(f"sbatch failed for pilot {spec.pilot_id}: {exc}"), True
        if result.returncode != 0:
            message = sbatch_error_message(result.stderr, result.stdout)
            down = any(s.lower() in message.lower() for s in _SITE_DOWN)
            return BackendError(f"sbatch refused pilot {spec.pilot_id}: {message}"), down
        try:
            job_id = parse_sbatch_output(result.stdout)
        except ValueError as exc:
            return BackendError(f"sbatch for pilot {spec.pilot_id}: {exc}"), False
        self._record(spec.pilot_id, job_id)
        log.debug("slurm pilot %s submitted as job %s", spec.pilot_id, job_id)
        return job_id, False

    # ------------------------------------------------------------------ poll

    def poll(self, site_ids: Sequence[str]) -> dict[str, SiteStatus]:
        """The state of each job: one ``squeue`` per 1,000 ids, ``sacct`` for the ones the
        controller forgot (if accounting works), UNKNOWN for the rest.

        Raises:
            BackendError: squeue failed (the controller is down): nothing is known.
        """
        ids = _unique(site_ids)
        valid = [i for i in ids if _JOB_ID.match(i)]
        jobs: dict[str, SlurmJob] = {}
        for chunk in _chunks(valid):
            argv = [self._cmd("squeue"), "-h", "--all", "-t", "all", "-j", ",".join(chunk),
                    "-O", SQUEUE_FORMAT]  # fmt: skip
            result = self._run(argv)
            if result.returncode != 0 and "Invalid job id" not in result.stderr:
                raise BackendError(
                    f"squeue failed: {sbatch_error_message(result.stderr, result.stdout)}"
                )
            jobs.update(parse_squeue(result.stdout))
        missing = [i for i in valid if i not in jobs]
        if missing:
            jobs.update(self._sacct(missing))
        out: dict[str, SiteStatus] = {}
        for site_id in ids:
            job = jobs.get(site_id)
            if job is not None:
                out[site_id] = site_status(job)
            elif site_id in valid:
                out[site_id] = SiteStatus(SiteState.UNKNOWN, reason="Slurm does not know this job")
            else:
                out[site_id] = SiteStatus(SiteState.UNKNOWN, reason="not a Slurm job id")
        with self._lock:
            self._finish_removals(out)
        return out

    def _sacct(self, ids: list[str]) -> dict[str, SlurmJob]:
        if self._sacct_works is False:
            return {}
        jobs: dict[str, SlurmJob] = {}
        for chunk in _chunks(ids):
            argv = [self._cmd("sacct"), "-n", "-P", "-X", "-j", ",".join(chunk), "-o", SACCT_FORMAT]
            try:
                result = self._run(argv)
            except BackendError as exc:
                log.warning("sacct failed: %s", exc)
                return jobs
            if result.returncode != 0:
                message = sbatch_error_message(result.stderr, result.stdout)
                if (
                    "accounting storage is disabled" in message.lower()
                    and self.settings.accounting == "auto"
                ):
                    log.info("slurm accounting is disabled: jobs squeue forgot are UNKNOWN")
                    self._sacct_works = False
                else:
                    log.warning("sacct failed: %s", message)
                return jobs
            self._sacct_works = True
            jobs.update(parse_sacct(result.stdout))
        return jobs

    # ------------------------------------------------------------------ remove / release

    def _scancel(self, options: list[str], ids: Sequence[str], benign: tuple[str, ...] = ()) -> None:
        for chunk in _chunks(list(ids)):
            result = self._run([self._cmd("scancel"), *options, *chunk])
            problems = [p for p in _problems(result.stderr) if not any(b in p for b in benign)]
            if result.returncode != 0 and problems:
                raise BackendError(f"scancel failed: {'; '.join(problems)}")

    def _removals_path(self) -> Path | None:
        return self.state_dir / REMOVALS_NAME if self.state_dir is not None else None

    def _load_removals(self) -> dict[str, tuple[float, bool]]:
        if self._removals is not None:
            return self._removals
        removals: dict[str, tuple[float, bool]] = {}
        path = self._removals_path()
        if path is not None and path.exists():
            cutoff = time.time() - REMOVALS_KEEP_S
            for line in path.read_text(errors="replace").splitlines():
                fields = line.split("\t")
                try:
                    if len(fields) == 3 and _JOB_ID.match(fields[0]) and float(fields[1]) >= cutoff:
                        removals[fields[0]] = (float(fields[1]), fields[2] == "1")
                except ValueError:
                    continue
        self._removals = removals
        return removals

    def _save_removals(self) -> None:
        path = self._removals_path()
        if path is None or self._removals is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(f"{job}\t{when:.0f}\t{int(done)}\n" for job, (when, done) in self._removals.items()))
        os.replace(tmp, path)

    def remove(self, site_ids: Sequence[str]) -> None:
        """Remove the jobs: queued ones at once, running ones with SIGTERM first and
        ``scancel`` after ``kill_grace_s`` (see the module docstring); ids that are gone
        are ignored.

        Raises:
            BackendError: scancel failed for another reason (controller down, permission).
        """
        ids = [i for i in _unique(site_ids) if _JOB_ID.match(i)]
        if not ids:
            return
        if self.settings.kill_grace_s <= 0:
            self._scancel([], ids)
            return
        with self._lock:
            self._scancel(["-t", "PENDING"], ids)
            # a job that is pending (or just ending) cannot be signalled: the poll that
            # finds it still there after the grace cancels it
            self._scancel(["-s", "TERM", "-f"], ids, ("can not be altered now", "pending"))
            removals = self._load_removals()
            now = time.time()
            for job_id in ids:
                removals.setdefault(job_id, (now, False))
            self._save_removals()

    def _finish_removals(self, out: dict[str, SiteStatus]) -> None:
        """Jobs asked to go: REMOVED once they ended; cancelled for good after the grace."""
        removals = self._load_removals()
        if not removals:
            return
        now = time.time()
        overdue: list[str] = []
        for job_id, status in out.items():
            asked = removals.get(job_id)
            if asked is None:
                continue
            if status.state in (SiteState.COMPLETED, SiteState.FAILED):
                code = f", exit code {status.exit_code}" if status.exit_code is not None else ""
                out[job_id] = SiteStatus(SiteState.REMOVED, status.exit_code,
                                         f"removed by the factory (SIGTERM{code})")
            elif status.state is SiteState.REMOVED:
                continue
            elif status.state is not SiteState.UNKNOWN and not asked[1] and now - asked[0] >= self.settings.kill_grace_s:
                overdue.append(job_id)
        if overdue:
            log.info("slurm jobs %s still there %gs after SIGTERM: cancelling them",
                     ",".join(overdue), self.settings.kill_grace_s)
            self._scancel([], overdue)
            for job_id in overdue:
                removals[job_id] = (removals[job_id][0], True)
            self._save_removals()

    def release(self, site_ids: Sequence[str]) -> None:
        """``scontrol release`` the jobs (ids that are gone or not held are ignored).

        Raises:
            BackendError: scontrol failed for another reason.
        """
        ids = [i for i in _unique(site_ids) if _JOB_ID.match(i)]
        for chunk in _chunks(ids):
            result = self._run([self._cmd("scontrol"), "release", ",".join(chunk)])
            problems = _problems(result.stderr)
            if result.returncode != 0 and problems:
                raise BackendError(f"scontrol release failed: {'; '.join(problems)}")

    # ------------------------------------------------------------------ output

    def collect_output(self, site_id: str, pilot: PilotSpec) -> None:
        """Slurm wrote the files in place (shared file system): wait until they stop
        changing (at most ``collect_timeout_s``), then make sure both exist."""
        paths = [Path(pilot.stdout), Path(pilot.stderr)]
        if any(p.exists() for p in paths):
            deadline = time.monotonic() + self.settings.collect_timeout_s
            last = _snapshot(paths)
            while time.monotonic() < deadline:
                time.sleep(0.2)
                now = _snapshot(paths)
                if now == last and all(p.exists() for p in paths):
                    break
                last = now
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(exist_ok=True)


def _snapshot(paths: Sequence[Path]) -> list[tuple[int, int] | None]:
    out: list[tuple[int, int] | None] = []
    for path in paths:
        try:
            st = path.stat()
            out.append((st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return out
