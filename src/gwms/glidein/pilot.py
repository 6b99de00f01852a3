"""The glidein's pilot: validate the node, run the startd agent, write the original's log layout.

``glidein_startup.sh`` execs this file (``python3 lib/gwms/glidein/pilot.py ...``) once
every stage file is fetched and verified. It:

1. writes ``glidein_config`` (``KEY VALUE`` lines: the command line's values, the
   factory's and the entry's constants, ``-param_NAME VALUE``, ``-attr NAME=VALUE``) and
   ``condor_vars.lst`` (the original's publish declarations:
   ``NAME TYPE DEFAULT CONDOR_NAME REQ GLIDEIN_PUBLISH JOB_PUBLISH``);
2. runs the validation scripts in the stage list's order (factory's, then entry's), each
   as ``script glidein_config``; scripts read and append to ``glidein_config`` (with the
   helpers in ``add_config_line.source``) and publish attributes by adding vars lines;
   a non-zero exit fails the glidein;
3. starts the agent: ``python3 gwms-startd.pyz run --collector URL --token FILE --name NAME
   --log-dir DIR --workdir DIR --start EXPR --attr K=V ...`` where every variable with
   ``GLIDEIN_PUBLISH`` = ``Y`` becomes an ``--attr`` and START is the AND of
   ``GLIDEIN_Start``, ``GLIDEIN_Entry_Start``, ``GLIDECLIENT_Start`` and
   ``GLIDECLIENT_Group_Start``; SIGTERM/SIGINT/SIGQUIT are passed on to it;
4. writes the markers on stdout (the ``.out``): ``=== Last script starting ... ===``,
   ``=== Condor starting/ended ... ===``, the ``=== Stats of main ===`` block, ``=== Glidein
   ending ... with code N after S ===`` and the XML description; and on stderr (the
   ``.err``) every file of the agent's log directory as a gzip | uuencode section (the
   agent's JSON-lines log, merged with the pilot's own records, as ``GlideinLog``) and the
   encoded XML.

With ``-logurl URL`` (and a push token in ``$GLIDEIN_LOG_TOKEN``), checkpoints of the
``.out``/``.err`` go to the log monitor while the glidein runs (:mod:`gwms.glidein.logpush`),
so a glidein killed by its site still leaves its logs.

A validation failure keeps the slot for ``-hold`` seconds (default 1200): the agent runs
with START = false and ``GLIDEIN_Validation_Failure`` in its ads (or the pilot just
sleeps when the agent cannot start), then the glidein exits with code 6.

The statistics, XML and ``.err`` sections are made by :mod:`gwms.glidein.pilotreport`.

Exit codes: 0 done, 2 bad arguments, 6 validation failed, 7 the agent failed,
128 + N stopped by signal N. (``glidein_startup.sh`` adds 3, 4 and 5.)
Test hook: ``GWMS_GLIDEIN_AGENT=/path/to/script`` runs that instead of the downloaded agent.
Standard library only; Python >= 3.9.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script from the glidein's lib/gwms/glidein/
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from gwms.glidein import logpush as LP
from gwms.glidein import logsections as LS
from gwms.glidein import stageindex as SI
from gwms.glidein.pilotreport import (
    PilotLog,
    date_text,
    err,
    format_stats,
    job_stats,
    log_sections,
    out,
    read_events,
    xml_description,
)

# ----------------------------------------------------------------------- glidein_config keys
RETIRE_TIME = "GLIDEIN_Retire_Time"
RETIRE_SPREAD = "GLIDEIN_Retire_Time_Spread"  # seconds, as in the original
JOB_MAX_TIME = "GLIDEIN_Job_Max_Time"
MAX_IDLE = "GLIDEIN_Max_Idle"
MAX_TAIL = "GLIDEIN_Max_Tail"
MAX_WALLTIME = "GLIDEIN_Max_Walltime"
CPUS = "GLIDEIN_CPUS"
MEMORY = "GLIDEIN_MaxMemMBs"
SLOTS = "GLIDEIN_Slots"
SLOTS_LAYOUT = "SLOTS_LAYOUT"
BLACKHOLE_NUMJOBS = "GLIDEIN_BLACKHOLE_NUMJOBS"
BLACKHOLE_RATE = "GLIDEIN_BLACKHOLE_RATE"
AGENT_OPTIONS = "GWMS_AGENT_OPTIONS"
START_KEYS = ("GLIDEIN_Start", "GLIDEIN_Entry_Start", "GLIDECLIENT_Start", "GLIDECLIENT_Group_Start")
VALIDATION_TIMEOUT = "GLIDEIN_Validation_Timeout"
VALIDATION_FAILURE_ATTR = "GLIDEIN_Validation_Failure"

EXIT_OK, EXIT_USAGE, EXIT_VALIDATION, EXIT_AGENT = 0, 2, 6, 7
DEFAULT_HOLD = 1200.0
DEFAULT_VALIDATION_TIMEOUT = 600.0
AGENT_ENV = "GWMS_GLIDEIN_AGENT"

# Variables every glidein publishes (condor_vars.lst lines): who made it (factory, instance,
# entry: ``entry@GLIDEIN_Name@GLIDEIN_Factory`` is the entry's request name), who asked for it
# (GLIDECLIENT_Name, _Group) and its ids; the entry's attributes (GLIDEIN_Site, ...) come from
# the entry's condor_vars.lst and the frontend's published ones as ``-attr``.
CORE_VARS = (
    "GLIDEIN_Factory S - + N Y +",
    "GLIDEIN_Name S - + N Y +",
    "GLIDEIN_Entry_Name S - + N Y +",
    "GLIDECLIENT_Name S - + N Y +",
    "GLIDECLIENT_Group S - + N Y +",
    "GLIDEIN_UUID S - + N Y +",
    "GLIDEIN_ClusterId I - + N Y +",
    "GLIDEIN_ProcId I - + N Y +",
    "GLIDEIN_Schedd S - + N Y +",
    "GLIDEIN_CredentialIdentifier S - + N Y +",
)

ADD_CONFIG_LINE_SOURCE = r"""# gwms glidein_config helpers: source me with glidein_config=$1 set.
gconfig_get() {  # KEY [FILE]: the value of KEY (its last line wins)
    grep "^$1 " "${2:-$glidein_config}" | tail -n 1 | cut -d' ' -f2-
}
gconfig_add() {  # KEY VALUE: set KEY
    printf '%s %s\n' "$1" "$2" >>"$glidein_config"
}
add_config_line() { gconfig_add "$@"; }
add_condor_vars_line() {  # NAME TYPE DEFAULT CONDOR_NAME REQ GLIDEIN_PUBLISH JOB_PUBLISH
    printf '%s %s %s %s %s %s %s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7" >>"$(gconfig_get CONDOR_VARS_FILE)"
}
gconfig_publish() {  # NAME TYPE(S|I|C) VALUE: set NAME and publish it in the slot ads
    gconfig_add "$1" "$3"
    add_condor_vars_line "$1" "$2" - + N Y +
}
"""


class PilotError(Exception):
    """A problem that ends the glidein, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


# ----------------------------------------------------------------------- command line


@dataclass
class PilotArgs:
    """The pilot's command line: ``-name value`` options, ``-param_NAME VALUE`` and ``-attr``."""

    options: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    attrs: list[str] = field(default_factory=list)

    def get(self, name: str, default: str = "") -> str:
        """The last value of option ``-name``."""
        return self.options.get(name, default)


_ATTR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_args(argv: Sequence[str]) -> PilotArgs:
    """Parse ``-opt value`` pairs (the last of a repeated option wins); raise :class:`PilotError`."""
    args = PilotArgs()
    i = 0
    while i < len(argv):
        opt = argv[i]
        if not opt.startswith("-") or len(opt) < 2:
            raise PilotError(f"unexpected argument {opt!r}")
        if i + 1 >= len(argv):
            raise PilotError(f"option {opt} needs a value")
        value = argv[i + 1]
        i += 2
        if opt.startswith("-param_"):
            name = opt[len("-param_"):]
            if not _ATTR_NAME.match(name):
                raise PilotError(f"{opt}: not a usable parameter name")
            args.params[name] = value
        elif opt == "-attr":
            name = value.partition("=")[0].strip()
            if "=" not in value or not _ATTR_NAME.match(name):
                raise PilotError(f"-attr {value!r}: expected NAME=VALUE")
            args.attrs.append(value)
        else:
            args.options[opt[1:]] = value
    for required in ("glide-dir", "startup-time", "collector", "entry", "agent"):
        if not args.get(required):
            raise PilotError(f"-{required} is required")
    return args


# ----------------------------------------------------------------------- glidein_config


def parse_config(text: str) -> dict[str, str]:
    """``KEY VALUE`` lines as a dict (the last line of a key wins; ``#`` lines skipped)."""
    out: dict[str, str] = {}
    for line in text.split("\n"):  # only newlines end lines, as for grep in the scripts
        line = line.removesuffix("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.partition(" ")
        if _ATTR_NAME.match(key):
            out[key] = value
    return out


def config_line(key: str, value: str) -> str:
    """One ``glidein_config`` line (line breaks in values become spaces)."""
    return f"{key} {value.replace(chr(13), ' ').replace(chr(10), ' ')}\n"


def attr_value(text: str) -> str:
    """The plain value of a ``-attr NAME=VALUE`` (quotes of a string removed)."""
    t = text.strip()
    if len(t) >= 2 and t[0] == '"' and t[-1] == '"':
        return t[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return t


@dataclass(frozen=True)
class VarLine:
    """One ``condor_vars.lst`` line."""

    name: str
    type: str
    default: str
    condor_name: str
    required: bool
    publish: bool
    job_publish: str

    @property
    def attr_name(self) -> str:
        """The name in the slot ad."""
        return self.name if self.condor_name == "+" else self.condor_name


def parse_vars(text: str) -> list[VarLine]:
    """The lines of a ``condor_vars.lst`` (malformed lines are skipped)."""
    out: list[VarLine] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 7 or fields[0].startswith("#") or not _ATTR_NAME.match(fields[0]):
            continue
        name, vtype, default, cname, req, pub, jpub = fields
        if cname != "+" and not _ATTR_NAME.match(cname):
            continue
        out.append(VarLine(name, vtype.upper(), default, cname, req.upper() == "Y", pub.upper() == "Y", jpub))
    return out


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def published_attrs(config: Mapping[str, str], variables: Iterable[VarLine], extra: Sequence[str] = ()) -> list[str]:
    """The agent's ``--attr NAME=VALUE`` values: every variable published (``GLIDEIN_PUBLISH``
    = Y) that has a value or a default, typed (``S`` quoted, ``I`` checked, ``C`` as is),
    then ``extra`` (``-attr`` values, which win). A required variable without a value
    raises :class:`PilotError`.
    """
    chosen: dict[str, str] = {}
    for var in variables:
        if not var.publish:
            continue
        if var.name in config:
            value: str | None = config[var.name]
        elif var.default != "-":
            value = var.default
        else:
            value = None
        if value is None:
            if var.required:
                raise PilotError(f"required variable {var.name} has no value", EXIT_VALIDATION)
            continue
        if var.type == "I":
            try:
                text = str(int(value.strip()))
            except ValueError:
                if var.required:
                    raise PilotError(f"variable {var.name} = {value!r} is not an integer", EXIT_VALIDATION) from None
                continue
        elif var.type == "S":
            text = _quote(value)
        else:
            text = value.strip()
            if not text:
                continue
        chosen[var.attr_name] = text
    for item in extra:
        name, _, value = item.partition("=")
        chosen.pop(name.strip(), None)
        chosen[name.strip()] = value
    return [f"{k}={v}" for k, v in chosen.items()]


def start_expression(config: Mapping[str, str]) -> str:
    """START = factory && entry && frontend && group Start expressions (``true`` if none)."""
    parts = [config[k].strip() for k in START_KEYS if config.get(k, "").strip()]
    if not parts:
        return "true"
    if len(parts) == 1:
        return parts[0]
    return " && ".join(f"({p})" for p in parts)


def _number(config: Mapping[str, str], key: str) -> float | None:
    try:
        value = float(config.get(key, "").strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def _g(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def lifetime_options(config: Mapping[str, str], elapsed: float = 0.0) -> list[str]:
    """The agent's lifetime and resource options from ``glidein_config`` values.

    ``GLIDEIN_Max_Walltime`` (the batch slot's limit) becomes ``--die-time``, less the
    time the glidein already spent and a margin to write its logs.
    """
    out: list[str] = []
    retire = _number(config, RETIRE_TIME)
    for key, flag in ((RETIRE_TIME, "--retire-time"), (JOB_MAX_TIME, "--job-max-time"),
                      (MAX_IDLE, "--max-idle"), (MAX_TAIL, "--max-tail")):
        value = _number(config, key)
        if value is not None:
            out += [flag, _g(value)]
    spread = _number(config, RETIRE_SPREAD)
    if spread is not None:
        out += ["--retire-spread", f"{min(1.0, spread / (retire if retire else 21600.0)):.6g}"]
    walltime = _number(config, MAX_WALLTIME)
    if walltime is not None and walltime > 0:
        left = walltime - elapsed
        margin = min(60.0, 0.05 * walltime)
        out += ["--die-time", _g(max(round(left - margin), 1))]
    for key, flag in ((CPUS, "--cpus"), (MEMORY, "--memory"), (BLACKHOLE_NUMJOBS, "--blackhole-numjobs")):
        value = _number(config, key)
        if value is not None and value == int(value) and value > 0:
            out += [flag, str(int(value))]
    rate = _number(config, BLACKHOLE_RATE)
    if rate is not None and rate > 0:
        out += ["--blackhole-rate", _g(rate)]
    if config.get(SLOTS_LAYOUT, "").strip().lower() == "partitionable":
        out.append("--partitionable")
    else:
        slots = _number(config, SLOTS)
        if slots is not None and slots == int(slots) and slots >= 1:
            out += ["--slots", str(int(slots))]
    return out


def agent_argv(
    python: str,
    agent: str,
    config: Mapping[str, str],
    *,
    collector: str,
    token_file: str,
    name: str,
    log_dir: str,
    workdir: str,
    attrs: Sequence[str],
    start: str,
    ca_file: str = "",
    elapsed: float = 0.0,
) -> list[str]:
    """The command line of the startd agent."""
    argv = [python, agent, "run", "--collector", collector, "--token", token_file, "--name", name,
            "--log-dir", log_dir, "--workdir", workdir, "--start", start]
    argv += lifetime_options(config, elapsed)
    if ca_file:
        argv += ["--ca-file", ca_file]
    for item in attrs:
        argv += ["--attr", item]
    extra = config.get(AGENT_OPTIONS, "").strip()
    if extra:
        argv += shlex.split(extra)
    return argv


@dataclass
class ScriptResult:
    """How a validation script ended."""

    name: str
    code: int | None
    seconds: float
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True when the script exited with 0."""
        return self.code == 0


def script_command(path: Path, config_file: Path, python: str) -> list[str]:
    """How to run one validation script: ``.sh`` with sh, ``.py`` with python3, others directly."""
    if path.suffix == ".sh":
        return ["/bin/sh", str(path), str(config_file)]
    if path.suffix == ".py":
        return [python, str(path), str(config_file)]
    path.chmod(0o755)
    return [str(path), str(config_file)]


def _last_line(*texts: bytes) -> str:
    for text in texts:
        for line in reversed(text.decode("utf-8", "replace").splitlines()):
            if line.strip():
                return line.strip()
    return ""


class Pilot:
    """One glidein's run on the worker node (see the module docstring)."""

    def __init__(self, args: PilotArgs, *, environ: Mapping[str, str] | None = None) -> None:
        self.args = args
        self.env = dict(os.environ if environ is None else environ)
        self.glide_dir = Path(args.get("glide-dir")).resolve()
        self.startup_time = float(args.get("startup-time"))
        try:
            self.hold = max(float(args.get("hold") or DEFAULT_HOLD), 0.0)
        except ValueError:
            raise PilotError(f"-hold must be a number of seconds, not {args.get('hold')!r}") from None
        self.log_dir = self.glide_dir / "log"
        self.config_file = self.glide_dir / "glidein_config"
        self.vars_file = self.glide_dir / "condor_vars.lst"
        self.log = PilotLog(self.glide_dir / "pilot_log.jsonl")
        self.python = sys.executable or "python3"
        self.host = socket.gethostname()
        self.agent_proc: subprocess.Popen | None = None
        self.script_proc: subprocess.Popen | None = None
        self.stop_signal: int | None = None
        # pushes the logs to the monitor while the glidein runs (-logurl; see logpush)
        self.pusher = LP.from_options(args.options, self.env, log_dir=self.log_dir, pilot_log=self.log.data,
                                      log=self.log.write)

    # -- setup ------------------------------------------------------------------------
    def stage_files(self) -> list[SI.IndexLine]:
        """This entry's files of the verified stage list."""
        index = self.glide_dir / "stage_index"
        try:
            lines = SI.parse_index(index.read_text())
        except (OSError, SI.IndexFormatError) as exc:
            raise PilotError(f"cannot read the stage list {index}: {exc}", EXIT_USAGE) from None
        return SI.select_for_entry(lines, self.args.get("entry"))

    def write_config(self, files: Sequence[SI.IndexLine]) -> dict[str, str]:
        """Write ``glidein_config``, ``condor_vars.lst`` and the helpers; return the config."""
        a = self.args
        helper = self.glide_dir / "add_config_line.source"
        helper.write_text(ADD_CONFIG_LINE_SOURCE)
        lines = [
            ("GLIDEIN_UUID", a.get("uuid")), ("GLIDEIN_Factory", a.get("factory")),
            ("GLIDEIN_Name", a.get("name")), ("GLIDEIN_Entry_Name", a.get("entry")),
            ("GLIDECLIENT_Name", a.get("clientname")), ("GLIDECLIENT_Group", a.get("clientgroup")),
            ("GLIDEIN_CredentialIdentifier", a.get("credid")), ("CONDORG_CLUSTER", a.get("cluster")),
            ("CONDORG_SUBCLUSTER", a.get("subcluster")), ("CONDORG_SCHEDD", a.get("schedd")),
            ("GLIDEIN_ClusterId", a.get("cluster")), ("GLIDEIN_ProcId", a.get("subcluster")),
            ("GLIDEIN_Schedd", a.get("schedd")), ("GLIDEIN_Collector", a.get("collector")),
            ("DEBUG_MODE", "1" if a.get("v") == "dbg" else "0"), ("GLIDEIN_STARTUP_PID", str(os.getpid())),
            ("GLIDEIN_WORK_DIR", str(self.glide_dir)), ("GLIDEIN_LOCAL_TMP_DIR", str(self.glide_dir / "tmp")),
            ("GLIDEIN_PYTHON", self.python), ("PROXY_URL", a.get("proxy", "None") or "None"),
            ("DESCRIPTION_FILE", a.get("descript")), ("CONDOR_VARS_FILE", str(self.vars_file)),
            ("ADD_CONFIG_LINE_SOURCE", str(helper)), ("GLIDEIN_Token_File", a.get("tokenfile")),
        ]
        (self.glide_dir / "tmp").mkdir(exist_ok=True)
        text = "".join(config_line(k, v) for k, v in lines if v)
        var_text = "".join(v + "\n" for v in CORE_VARS)
        for f in files:
            if f.kind in ("constants", "vars"):
                data = (self.glide_dir / f.local_path).read_text()
                if f.kind == "constants":
                    text += "".join(config_line(k, v) for k, v in parse_config(data).items())
                else:
                    var_text += data if data.endswith("\n") or not data else data + "\n"
        text += "".join(config_line(k, v) for k, v in a.params.items())
        text += "".join(config_line(item.partition("=")[0].strip(), attr_value(item.partition("=")[2]))
                        for item in a.attrs)
        self.config_file.write_text(text)
        self.vars_file.write_text(var_text)
        config = parse_config(text)
        self.log.write(f"glidein_config written with {len(config)} values", type="config")
        return config

    def read_config(self) -> dict[str, str]:
        """``glidein_config`` as it is now (validation scripts add to it)."""
        try:
            return parse_config(self.config_file.read_text(errors="replace"))
        except OSError as exc:
            raise PilotError(f"cannot read {self.config_file}: {exc}", EXIT_VALIDATION) from None

    # -- validation ---------------------------------------------------------------------
    def run_script(self, path: Path, label: str, timeout: float) -> ScriptResult:
        """Run one validation script with ``glidein_config``; its output goes to the glidein's."""
        started = time.time()
        cmd = script_command(path, self.config_file, self.python)
        env = dict(self.env, glidein_config=str(self.config_file))
        try:
            proc = subprocess.Popen(cmd, cwd=str(self.glide_dir), env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            return ScriptResult(label, None, 0.0, f"cannot run {label}: {exc}")
        self.script_proc = proc
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
            code: int | None = proc.returncode
            reason = ""
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            code, reason = None, f"{label} timed out after {timeout:g} s"
        finally:
            self.script_proc = None
        if stdout:
            sys.stdout.write(stdout.decode("utf-8", "replace"))
            sys.stdout.flush()
        if stderr:
            sys.stderr.write(stderr.decode("utf-8", "replace"))
            sys.stderr.flush()
        if self.stop_signal is not None and code != 0:
            reason = reason or f"{label} interrupted by signal {self.stop_signal}"
        elif code is not None and code != 0:
            reason = _last_line(stderr, stdout) or f"{label} exited with code {code}"
            if code < 0:
                reason = f"{label} killed by signal {-code}"
        return ScriptResult(label, code, time.time() - started, reason)

    def validate(self, files: Sequence[SI.IndexLine], config: Mapping[str, str]) -> ScriptResult | None:
        """Run the validation scripts in order; the first failure, or None."""
        timeout = _number(config, VALIDATION_TIMEOUT) or DEFAULT_VALIDATION_TIMEOUT
        for f in files:
            if f.kind != "validate":
                continue
            if self.stop_signal is not None:
                return ScriptResult(f.local_path, None, 0.0, f"stopped by signal {self.stop_signal}")
            label = f.local_path.removeprefix("validate/")
            result = self.run_script(self.glide_dir / f.local_path, label, timeout)
            if result.ok:
                self.log.write(f"validation script {label} passed in {result.seconds:.2f} s", type="validation",
                               script=label, exit_code=0)
                continue
            self.log.write(f"validation script {label} failed: {result.reason}", severity="error",
                           type="validation", script=label, exit_code=result.code)
            return result
        return None

    # -- the agent ----------------------------------------------------------------------
    def agent_command(self, config: Mapping[str, str], *, attrs: Sequence[str], start: str) -> list[str]:
        """The agent's command line for this glidein."""
        token = self.args.get("tokenfile")
        if not token:
            raise PilotError("no pool token (-token, -tokenfile or $GLIDEIN_TOKEN)", EXIT_AGENT)
        agent = self.env.get(AGENT_ENV) or self.args.get("agent")
        if self.env.get(AGENT_ENV):
            self.log.write(f"using the agent {agent} from ${AGENT_ENV}, not the stage area's", severity="warning",
                           type="agent")
        suffix = self.args.get("uuid").replace("-", "")[:8] or uuid.uuid4().hex[:8]
        name = f"glidein_{os.getpid()}_{suffix}@{self.host}"
        return agent_argv(
            self.python, agent, config, collector=self.args.get("collector"), token_file=token, name=name,
            log_dir=str(self.log_dir), workdir=str(self.glide_dir / "execute"), attrs=attrs, start=start,
            ca_file=self.args.get("cafile"), elapsed=time.time() - self.startup_time,
        )

    def run_agent(self, argv: list[str]) -> int | None:
        """Run the agent until it exits (signals passed on); its exit code, None if it did not start."""
        self.log.write("starting the startd agent: " + " ".join(shlex.quote(a) for a in argv), type="agent_start")
        try:
            self.agent_proc = subprocess.Popen(argv, cwd=str(self.glide_dir), env=self.env, stdin=subprocess.DEVNULL)
        except OSError as exc:
            self.log.write(f"cannot start the startd agent: {exc}", severity="error", type="agent_start")
            return None
        if self.stop_signal is not None:
            self.agent_proc.send_signal(self.stop_signal)
        while True:
            try:
                code = self.agent_proc.wait()
                break
            except KeyboardInterrupt:  # pragma: no cover - SIGINT is handled, this is a safety net
                continue
        self.agent_proc = None
        self.log.write(f"the startd agent exited with code {code}", type="agent_end", exit_code=code)
        return code

    def on_signal(self, signum: int, frame: Any) -> None:
        """Pass a stop signal on to the agent (or the running validation script)."""
        self.stop_signal = signum
        proc = self.agent_proc
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signum)
            except OSError:
                pass
        script = self.script_proc
        if script is not None and script.poll() is None:
            _kill_group(script.pid, signal.SIGTERM)

    def hold_slot(self, config: Mapping[str, str], reason: str) -> None:
        """Keep the batch slot for the hold time, advertising the failure when the agent can run."""
        deadline = time.time() + self.hold
        if self.hold <= 0:
            return
        err(f"Keeping the slot for {self.hold:g} s before exiting (failure: {reason})")
        self.log.write(f"holding the slot for {self.hold:g} s: {reason}", type="hold")
        seconds = _g(max(round(self.hold), 1))
        hold_config = dict(config)
        hold_config.update({MAX_IDLE: seconds, RETIRE_TIME: seconds, MAX_WALLTIME: ""})
        for key in (RETIRE_SPREAD, MAX_TAIL):
            hold_config.pop(key, None)
        try:
            attrs = published_attrs(config, parse_vars(self.vars_file.read_text()), self.args.attrs)
        except (PilotError, OSError):
            attrs = []
        attrs.append(f"{VALIDATION_FAILURE_ATTR}={_quote(reason)}")
        try:
            argv = self.agent_command(hold_config, attrs=attrs, start="false")
            argv += ["--die-time", seconds, "--retire-spread", "0"]
        except PilotError:
            argv = []
        if argv and self.stop_signal is None:
            self.run_agent(argv)
        while self.stop_signal is None and time.time() < deadline:
            time.sleep(min(0.2, max(deadline - time.time(), 0.0)))

    # -- the whole run ------------------------------------------------------------------
    def run(self) -> int:
        """Validate, run the agent, write the markers and sections; the glidein's exit code."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
            signal.signal(signum, self.on_signal)
        os.chdir(str(self.glide_dir))
        if self.pusher is not None:
            self.pusher.start()
        failure: tuple[str, str] | None = None
        code = EXIT_OK
        cmd = "gwms-startd.pyz"
        config: dict[str, str] = {}
        try:
            files = self.stage_files()
            config = self.write_config(files)
            failed = self.validate(files, config)
            config = self.read_config()
            if self.pusher is not None:
                self.pusher.checkpoint("validated")
            if failed is not None:
                if self.stop_signal is not None:
                    code = 128 + self.stop_signal
                    failure = ("Signal", failed.reason)
                else:
                    code = EXIT_VALIDATION
                    failure = ("WN_Resource", f"validation script {failed.name} failed: {failed.reason}")
                    cmd = failed.name
                    out(f"=== Glidein failed: {failure[1]} ===")
                    self.hold_slot(config, failure[1])
            else:
                code, failure = self.run_main(config)
        except PilotError as exc:
            code, failure = exc.code, ("Config", str(exc))
            self.log.write(str(exc), severity="error", type="failure")
        except Exception as exc:  # noqa: BLE001 - whatever happens, the logs get written
            code, failure = EXIT_AGENT, ("Internal", f"{type(exc).__name__}: {exc}")
            self.log.write(f"pilot failed: {failure[1]}", severity="error", type="failure")
        self.finish(code, failure, cmd)
        return code

    def run_main(self, config: Mapping[str, str]) -> tuple[int, tuple[str, str] | None]:
        """Publish, start the agent with the markers around it, print the stats."""
        variables = parse_vars(self.vars_file.read_text())
        attrs = published_attrs(config, variables, self.args.attrs)
        start = start_expression(config)
        argv = self.agent_command(config, attrs=attrs, start=start)
        if self.stop_signal is not None:
            return 128 + self.stop_signal, ("Signal", f"stopped by signal {self.stop_signal} before the agent started")
        now = time.time()
        out(f"=== Last script starting {date_text(now)} ({int(now)}) after validating for "
            f"{int(now - self.startup_time)} ===")
        out("")
        begin = time.time()
        out(f"=== Condor starting {date_text(begin)} ({int(begin)}) ===")
        agent_code = self.run_agent(argv)
        end = time.time()
        out(f"=== Condor ended {date_text(end)} ({int(end)}) after {int(end - begin)} ===")
        out("")
        out(format_stats(job_stats(read_events(self.log_dir))))
        if self.stop_signal is not None and agent_code == 0:
            return 128 + self.stop_signal, None
        if agent_code is None:
            return EXIT_AGENT, ("Internal", "the startd agent could not be started")
        if agent_code != 0:
            reason = f"the startd agent exited with code {agent_code}"
            err(f"ERROR: {reason}")
            return EXIT_AGENT, ("Agent", reason)
        return EXIT_OK, None

    def finish(self, code: int, failure: tuple[str, str] | None, cmd: str) -> None:
        """The ``.err`` sections, the ending marker, the XML (in ``.out`` and ``.err``), cleanup."""
        end = time.time()
        self.log.write(f"glidein ending with code {code}", type="end", exit_code=code)
        for section in log_sections(self.log_dir, self.log.data()):
            sys.stderr.write(section)
        sys.stderr.flush()
        out(f"=== Glidein ending {date_text(end)} ({int(end)}) with code {code} after "
            f"{int(end - self.startup_time)} ===")
        out("")
        xml = xml_description(cwd=str(self.glide_dir), host=self.host, start=self.startup_time, end=end,
                              cmd=cmd, failure=failure)
        out("=== XML description of glidein activity ===")
        sys.stdout.write(xml)
        out("=== End XML description of glidein activity ===")
        sys.stderr.write(LS.encode_xml_section(xml))
        sys.stderr.flush()
        if self.pusher is not None:
            self.pusher.close(final=True)
        if self.args.get("v") != "dbg" and not self.env.get("GWMS_GLIDEIN_KEEP"):
            shutil.rmtree(str(self.glide_dir), ignore_errors=True)


def _kill_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except OSError:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the pilot with ``argv`` (default: the command line); the glidein's exit code."""
    try:
        pilot = Pilot(parse_args(list(sys.argv[1:] if argv is None else argv)))
    except PilotError as exc:
        err(f"ERROR: {exc}")
        return exc.code
    return pilot.run()


if __name__ == "__main__":
    sys.exit(main())
