"""The submit commands gwms knows, and how their values become job attributes.

Each :class:`Derivation` turns the values of a few submit commands into a few job
attributes, e.g. ``request_memory`` -> ``RequestMemory`` or ``executable`` + ``initialdir``
-> ``Cmd``. The expander runs a derivation once per ``queue`` statement when none of its
inputs vary from job to job, and once per job otherwise. Derivation functions are pure:
they see the expanded, stripped values (``None`` for a command not given or given empty)
and a :class:`JobContext`, and raise :class:`SubmitValueError` for bad values.

The command table (:data:`KNOWN_COMMANDS`) is also what unknown commands are checked
against, with a did-you-mean suggestion (:func:`did_you_mean`).
"""

from __future__ import annotations

import difflib
import os.path
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from gwms.pool import jobattrs as A
from gwms.pool.schedd.submit_errors import SubmitValueError
from gwms.pool.schedd.submit_quoting import arguments_attr, format_env_raw_v2, parse_environment
from gwms.pool.schedd.submit_values import (
    EXPR_PREFIX,
    EXPR_SUFFIX,
    KIB,
    MIB,
    check_expr,
    expr_json,
    parse_bool,
    parse_count,
    parse_int,
    parse_quantity,
    referenced_attributes,
)

#: RequestMemory (MiB) when request_memory is not given (HTCondor's JOB_DEFAULT_REQUESTMEMORY).
DEFAULT_REQUEST_MEMORY_MIB = 128
#: RequestDisk (KiB) when request_disk is not given (100 MiB).
DEFAULT_REQUEST_DISK_KIB = 100 * 1024
#: RequestCpus when request_cpus is not given.
DEFAULT_REQUEST_CPUS = 1

JOB_NOTIFICATION = "JobNotification"
JOB_SUCCESS_EXIT_CODE = "JobSuccessExitCode"


@dataclass(frozen=True)
class JobContext:
    """What derivations may know besides the submit values."""

    owner: str
    base_dir: str
    env: Mapping[str, str]


Values = Mapping[str, "str | None"]
DeriveFn = Callable[[Values, JobContext], dict[str, Any]]


@dataclass(frozen=True)
class Derivation:
    """Job attributes computed from the values of ``inputs`` (canonical command names).

    ``single`` marks the common one-command, one-attribute case ``(attr, convert, default)``
    that the expander handles without building a dict per job: a non-empty value becomes
    ``convert(value)`` (the value itself when ``convert`` is ``None``), an empty one
    ``default`` (no attribute when ``default`` is :data:`NO_DEFAULT`). With ``attr``
    ``None``, ``convert`` returns a dict of attributes instead, whose names are among
    ``outputs`` (one command whose attribute name depends on the value, like
    ``arguments``). ``always`` derivations run even when none of their inputs are given
    (they supply defaults).
    """

    inputs: tuple[str, ...]
    fn: DeriveFn
    always: bool = False
    single: tuple[str | None, Callable[[str], Any] | None, Any] | None = field(default=None)
    outputs: tuple[str, ...] = ()


#: ``Derivation.single`` default meaning "no attribute when the command is not given".
NO_DEFAULT: Any = object()


def _err(command: str, reason: str) -> SubmitValueError:
    return SubmitValueError(reason, command=command)


def _expr_value(command: str, text: str) -> Any:
    try:
        return expr_json(text)
    except SubmitValueError as err:
        raise SubmitValueError(
            f"bad {command} expression '{text}': {err.reason}",
            position=err.position,
            command=command,
        ) from None


def _checked_expr(command: str, text: str) -> str:
    try:
        check_expr(text)
    except SubmitValueError as err:
        raise SubmitValueError(
            f"bad {command} expression '{text}': {err.reason}",
            position=err.position,
            command=command,
        ) from None
    return text


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


# ---------------------------------------------------------------------------- derivations


def _universe(v: Values, c: JobContext) -> dict[str, Any]:
    u = v["universe"]
    if u is not None and u.lower() != "vanilla":
        raise _err(
            "universe", f'universe "{u}" is not supported: gwms runs vanilla universe jobs only'
        )
    return {A.JOB_UNIVERSE: A.VANILLA}


def _iwd(v: Values, c: JobContext) -> str:
    d = v["initialdir"]
    if d is None:
        return c.base_dir
    return os.path.normpath(os.path.join(c.base_dir, d))


def _iwd_attr(v: Values, c: JobContext) -> dict[str, Any]:
    return {A.IWD: _iwd(v, c)}


def _cmd(v: Values, c: JobContext) -> dict[str, Any]:
    exe = v["executable"]
    if exe is None:
        raise _err("executable", "the executable is empty")
    if os.path.isabs(exe):
        return {A.CMD: exe}
    return {A.CMD: os.path.normpath(os.path.join(_iwd(v, c), exe))}


def _user_log(v: Values, c: JobContext) -> dict[str, Any]:
    log = v["log"]
    if log is None:
        return {}
    if os.path.isabs(log):
        return {A.USER_LOG: log}
    return {A.USER_LOG: os.path.normpath(os.path.join(_iwd(v, c), log))}


def _arguments_attrs(text: str) -> dict[str, Any]:
    try:
        attr, value = arguments_attr(text)
    except SubmitValueError as err:
        raise _err("arguments", err.reason) from None
    return {attr: value}


def _arguments(v: Values, c: JobContext) -> dict[str, Any]:
    text = v["arguments"]
    return {} if text is None else _arguments_attrs(text)


_GETENV_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_GETENV_FALSE = frozenset({"false", "f", "no", "n", "0"})


def _environment(v: Values, c: JobContext) -> dict[str, Any]:
    env: dict[str, str] = {}
    getenv = v["getenv"]
    if getenv is not None:
        low = getenv.lower()
        if low in _GETENV_TRUE:
            env.update(c.env)
        elif low not in _GETENV_FALSE:
            patterns = [p for p in re.split(r"[\s,]+", getenv) if p]
            for name, val in c.env.items():
                if any(fnmatchcase(name, p) for p in patterns):
                    env[name] = val
    text = v["environment"]
    if text is not None:
        try:
            env.update(parse_environment(text))
        except SubmitValueError as err:
            raise _err("environment", err.reason) from None
    if not env:
        return {}
    return {A.ENVIRONMENT: format_env_raw_v2(env)}


def _file_list(text: str) -> str:
    return ",".join(p.strip() for p in text.split(",") if p.strip())


_STF = ("YES", "NO", "IF_NEEDED")
_WTTO = ("ON_EXIT", "ON_EXIT_OR_EVICT", "ON_SUCCESS")


def _transfer(v: Values, c: JobContext) -> dict[str, Any]:
    stf = (v["should_transfer_files"] or "IF_NEEDED").upper()
    if stf not in _STF:
        raise _err(
            "should_transfer_files",
            "should_transfer_files must be YES, NO or IF_NEEDED, "
            f'not "{v["should_transfer_files"]}"',
        )
    wtto = (v["when_to_transfer_output"] or "ON_EXIT").upper()
    if wtto not in _WTTO:
        raise _err(
            "when_to_transfer_output",
            "when_to_transfer_output must be ON_EXIT, ON_EXIT_OR_EVICT or ON_SUCCESS, "
            f'not "{v["when_to_transfer_output"]}"',
        )
    attrs: dict[str, Any] = {A.SHOULD_TRANSFER_FILES: stf, A.WHEN_TO_TRANSFER_OUTPUT: wtto}
    tin = v["transfer_input_files"]
    tout = v["transfer_output_files"]
    if stf == "NO" and (tin or tout):
        which = "transfer_input_files" if tin else "transfer_output_files"
        raise _err(which, f"{which} needs should_transfer_files = YES or IF_NEEDED, not NO")
    if tin:
        attrs[A.TRANSFER_INPUT] = _file_list(tin)
    if tout:
        attrs[A.TRANSFER_OUTPUT] = _file_list(tout)
    return attrs


def _request_cpus(v: Values, c: JobContext) -> dict[str, Any]:
    text = v["request_cpus"]
    if text is None:
        return {A.REQUEST_CPUS: DEFAULT_REQUEST_CPUS}
    try:
        return {A.REQUEST_CPUS: parse_count(text, what="request_cpus")}
    except SubmitValueError as err:
        raise _err("request_cpus", err.reason) from None


def _request_memory(v: Values, c: JobContext) -> dict[str, Any]:
    text = v["request_memory"]
    if text is None:
        return {A.REQUEST_MEMORY: DEFAULT_REQUEST_MEMORY_MIB}
    try:
        return {A.REQUEST_MEMORY: parse_quantity(text, base=MIB, what="request_memory")}
    except SubmitValueError as err:
        raise _err("request_memory", err.reason) from None


def _request_disk(v: Values, c: JobContext) -> dict[str, Any]:
    text = v["request_disk"]
    if text is None:
        return {A.REQUEST_DISK: DEFAULT_REQUEST_DISK_KIB}
    try:
        return {A.REQUEST_DISK: parse_quantity(text, base=KIB, what="request_disk")}
    except SubmitValueError as err:
        raise _err("request_disk", err.reason) from None


def _gpus(v: Values) -> int | str | None:
    text = v["request_gpus"]
    if text is None:
        return None
    try:
        return parse_count(text, what="request_gpus")
    except SubmitValueError as err:
        raise _err("request_gpus", err.reason) from None


def _request_gpus(v: Values, c: JobContext) -> dict[str, Any]:
    gpus = _gpus(v)
    return {} if gpus is None else {A.REQUEST_GPUS: gpus}


#: (target attribute, clause) appended to Requirements, in this order.
RESOURCE_CLAUSES: tuple[tuple[str, str], ...] = (
    ("memory", "TARGET.Memory >= RequestMemory"),
    ("cpus", "TARGET.Cpus >= RequestCpus"),
    ("disk", "TARGET.Disk >= RequestDisk"),
)
GPU_CLAUSE = ("gpus", "TARGET.Gpus >= RequestGpus")


def _requirements(v: Values, c: JobContext) -> dict[str, Any]:
    clauses = list(RESOURCE_CLAUSES)
    gpus = _gpus(v)
    if gpus is not None and gpus != 0:
        clauses.append(GPU_CLAUSE)
    user = v["requirements"]
    if user is None:
        parts = [f"({clause})" for _name, clause in clauses]
    else:
        _checked_expr("requirements", user)
        refs = referenced_attributes(user)
        parts = [f"({user})"] + [f"({cl})" for name, cl in clauses if name not in refs]
    return {A.REQUIREMENTS: EXPR_PREFIX + " && ".join(parts) + EXPR_SUFFIX}


def _on_exit_remove(v: Values, c: JobContext) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    retries_text = v["max_retries"]
    code_text = v["success_exit_code"]
    until = v["retry_until"]
    code = 0
    if retries_text is not None:
        try:
            attrs[A.MAX_RETRIES] = parse_int(retries_text, what="max_retries", minimum=0)
        except SubmitValueError as err:
            raise _err("max_retries", err.reason) from None
    if code_text is not None:
        try:
            code = parse_int(code_text, what="success_exit_code")
        except SubmitValueError as err:
            raise _err("success_exit_code", err.reason) from None
        attrs[JOB_SUCCESS_EXIT_CODE] = code
    if until is not None:
        if retries_text is None:
            raise _err("retry_until", "retry_until needs max_retries")
        _checked_expr("retry_until", until)
    given = v["on_exit_remove"]
    if given is not None:
        attrs[A.ON_EXIT_REMOVE] = _expr_value("on_exit_remove", given)
    elif retries_text is not None:
        text = f"(ExitBySignal =!= true && ExitCode =?= {code})"
        if until is not None:
            text += f" || ({until})"
        text += f" || ({A.NUM_JOB_STARTS} > {A.MAX_RETRIES})"
        attrs[A.ON_EXIT_REMOVE] = EXPR_PREFIX + text + EXPR_SUFFIX
    else:
        attrs[A.ON_EXIT_REMOVE] = True
    return attrs


_GROUP_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]*\Z")


def _accounting(v: Values, c: JobContext) -> dict[str, Any]:
    group = v["accounting_group"]
    user = v["accounting_group_user"]
    if group is None:
        if user is not None:
            raise _err("accounting_group_user", "accounting_group_user needs accounting_group")
        return {}
    if not _GROUP_NAME.match(group):
        raise _err("accounting_group", f'accounting_group "{group}" is not a valid group name')
    if user is not None and not _GROUP_NAME.match(user):
        raise _err(
            "accounting_group_user", f'accounting_group_user "{user}" is not a valid user name'
        )
    who = user or c.owner
    return {A.ACCT_GROUP: group, A.ACCT_GROUP_USER: who, A.ACCOUNTING_GROUP: f"{group}.{who}"}


def _hold(v: Values, c: JobContext) -> dict[str, Any]:
    text = v["hold"]
    if text is None:
        return {}
    try:
        held = parse_bool(text, what="hold")
    except SubmitValueError as err:
        raise _err("hold", err.reason) from None
    if not held:
        return {}
    return {
        A.JOB_STATUS: A.HELD,
        A.HOLD_REASON: "submitted on hold at the user's request",
        A.HOLD_REASON_CODE: A.HOLD_CODE_SUBMITTED_ON_HOLD,
        A.HOLD_REASON_SUB_CODE: 0,
    }


_NOTIFICATION = {"never": 0, "always": 1, "complete": 2, "error": 3}


def _notification(text: str) -> int:
    code = _NOTIFICATION.get(text.lower())
    if code is None:
        raise SubmitValueError(
            f'notification must be Never, Always, Complete or Error, not "{text}"'
        )
    return code


def _simple(command: str, attr: str, convert: Callable[[str], Any] | None) -> Derivation:
    def fn(v: Values, c: JobContext) -> dict[str, Any]:
        text = v[command]
        if text is None:
            return {}
        if convert is None:
            return {attr: text}
        try:
            return {attr: convert(text)}
        except SubmitValueError as err:
            raise _err(command, err.reason) from None

    return Derivation((command,), fn, single=(attr, convert, NO_DEFAULT))


def _with_default(
    command: str, attr: str, default: Any, convert: Callable[[str], Any]
) -> Derivation:
    def fn(v: Values, c: JobContext) -> dict[str, Any]:
        text = v[command]
        if text is None:
            return {attr: default}
        try:
            return {attr: convert(text)}
        except SubmitValueError as err:
            raise _err(command, err.reason) from None

    return Derivation((command,), fn, always=True, single=(attr, convert, default))


def _expr(command: str) -> Callable[[str], Any]:
    return lambda text: _expr_value(command, text)


def _boolean(command: str) -> Callable[[str], bool]:
    return lambda text: parse_bool(text, what=command)


def _integer(command: str, minimum: int | None = None) -> Callable[[str], int]:
    return lambda text: parse_int(text, what=command, minimum=minimum)


def _std_file(command: str, attr: str) -> Derivation:
    """input/output/error: kept as given (relative to Iwd); /dev/null when not given."""

    def fn(v: Values, c: JobContext) -> dict[str, Any]:
        return {attr: v[command] or "/dev/null"}

    return Derivation((command,), fn, always=True, single=(attr, None, "/dev/null"))


#: Every derivation, in the order their attributes appear in a job ad.
DERIVATIONS: tuple[Derivation, ...] = (
    Derivation(("universe",), _universe, always=True),
    Derivation(("executable", "initialdir"), _cmd, always=True),
    Derivation(("initialdir",), _iwd_attr, always=True),
    Derivation(
        ("arguments",),
        _arguments,
        single=(None, _arguments_attrs, NO_DEFAULT),
        outputs=(A.ARGS, A.ARGUMENTS),
    ),
    Derivation(("environment", "getenv"), _environment),
    _std_file("input", A.IN),
    _std_file("output", A.OUT),
    _std_file("error", A.ERR),
    Derivation(("log", "initialdir"), _user_log),
    Derivation(
        (
            "should_transfer_files",
            "when_to_transfer_output",
            "transfer_input_files",
            "transfer_output_files",
        ),
        _transfer,
        always=True,
    ),
    _simple("transfer_executable", A.TRANSFER_EXECUTABLE, _boolean("transfer_executable")),
    _simple("transfer_output_remaps", A.TRANSFER_OUTPUT_REMAPS, _unquote),
    Derivation(("request_cpus",), _request_cpus, always=True),
    Derivation(("request_memory",), _request_memory, always=True),
    Derivation(("request_disk",), _request_disk, always=True),
    Derivation(("request_gpus",), _request_gpus),
    Derivation(("requirements", "request_gpus"), _requirements, always=True),
    _simple("rank", A.RANK, _expr("rank")),
    _with_default("periodic_hold", A.PERIODIC_HOLD, False, _expr("periodic_hold")),
    _with_default("periodic_release", A.PERIODIC_RELEASE, False, _expr("periodic_release")),
    _with_default("periodic_remove", A.PERIODIC_REMOVE, False, _expr("periodic_remove")),
    _with_default("on_exit_hold", A.ON_EXIT_HOLD, False, _expr("on_exit_hold")),
    Derivation(
        ("on_exit_remove", "max_retries", "success_exit_code", "retry_until"),
        _on_exit_remove,
        always=True,
    ),
    _simple("periodic_hold_reason", "PeriodicHoldReason", _expr("periodic_hold_reason")),
    _simple("periodic_hold_subcode", "PeriodicHoldSubCode", _expr("periodic_hold_subcode")),
    _simple("on_exit_hold_reason", "OnExitHoldReason", _expr("on_exit_hold_reason")),
    _simple("on_exit_hold_subcode", "OnExitHoldSubCode", _expr("on_exit_hold_subcode")),
    _simple("batch_name", A.JOB_BATCH_NAME, _unquote),
    Derivation(("accounting_group", "accounting_group_user"), _accounting),
    _with_default("priority", A.JOB_PRIO, 0, _integer("priority")),
    Derivation(("hold",), _hold),
    _simple("notification", JOB_NOTIFICATION, _notification),
    _simple("notify_user", "NotifyUser", None),
    _simple("stream_output", "StreamOut", _boolean("stream_output")),
    _simple("stream_error", "StreamErr", _boolean("stream_error")),
    _simple("nice_user", "NiceUser", _boolean("nice_user")),
    _simple("concurrency_limits", "ConcurrencyLimits", lambda t: _unquote(t).lower()),
    _simple("job_max_vacate_time", "JobMaxVacateTime", _expr("job_max_vacate_time")),
    _simple(
        "max_job_retirement_time", "MaxJobRetirementTime", _expr("max_job_retirement_time")
    ),
    _simple("job_lease_duration", "JobLeaseDuration", _expr("job_lease_duration")),
    _simple("leave_in_queue", "LeaveJobInQueue", _expr("leave_in_queue")),
    _simple("next_job_start_delay", "NextJobStartDelay", _expr("next_job_start_delay")),
    _simple(
        "allowed_execute_duration", "AllowedExecuteDuration", _expr("allowed_execute_duration")
    ),
    _simple("allowed_job_duration", "AllowedJobDuration", _expr("allowed_job_duration")),
    _simple("want_graceful_removal", "WantGracefulRemoval", _expr("want_graceful_removal")),
    _simple("max_transfer_input_mb", "MaxTransferInputMB", _expr("max_transfer_input_mb")),
    _simple("max_transfer_output_mb", "MaxTransferOutputMB", _expr("max_transfer_output_mb")),
    _simple(
        "image_size",
        A.IMAGE_SIZE,
        lambda t: parse_quantity(t, base=KIB, what="image_size"),
    ),
    _simple("coresize", "CoreSize", _integer("coresize")),
    _simple("kill_sig", "KillSig", None),
    _simple("submit_event_notes", "SubmitEventNotes", None),
    _simple("description", "JobDescription", _unquote),
    _simple("log_xml", "UserLogUseXML", _boolean("log_xml")),
    _simple("output_destination", "OutputDestination", None),
    _simple("x509userproxy", "X509UserProxy", None),
    _simple(
        "preserve_relative_paths", "PreserveRelativePaths", _boolean("preserve_relative_paths")
    ),
)

#: Commands accepted and ignored: they do not change what gwms does.
IGNORED_COMMANDS: dict[str, str] = {
    "copy_to_spool": "gwms always spools the executable",
    "skip_filechecks": "gwms does not check files at submit",
    "use_x509userproxy": "set x509userproxy to name the proxy",
    "want_remote_io": "remote I/O is not used",
}

#: Commands HTCondor knows that gwms refuses, with the reason.
UNSUPPORTED_COMMANDS: dict[str, str] = {
    "grid_resource": "the grid universe is not supported",
    "docker_image": "the docker universe is not supported",
    "container_image": "the container universe is not supported",
    "machine_count": "the parallel universe is not supported",
    "vm_type": "the vm universe is not supported",
    "vm_memory": "the vm universe is not supported",
    "vm_disk": "the vm universe is not supported",
    "jar_files": "the java universe is not supported",
    "java_vm_args": "the java universe is not supported",
    "max_materialize": "late materialization is not supported",
    "max_idle": "late materialization is not supported",
    "materialize_max_idle": "late materialization is not supported",
    "deferral_time": "deferred start is not supported",
    "cron_minute": "crondor (cron_*) is not supported",
    "cron_hour": "crondor (cron_*) is not supported",
    "cron_day_of_month": "crondor (cron_*) is not supported",
    "cron_month": "crondor (cron_*) is not supported",
    "cron_day_of_week": "crondor (cron_*) is not supported",
}

#: Other spellings HTCondor accepts -> canonical command name.
ALIASES: dict[str, str] = {
    "initial_dir": "initialdir",
    "requestcpus": "request_cpus",
    "requestmemory": "request_memory",
    "requestdisk": "request_disk",
    "requestgpus": "request_gpus",
    "jobbatchname": "batch_name",
    "jobprio": "priority",
    "periodichold": "periodic_hold",
    "periodicrelease": "periodic_release",
    "periodicremove": "periodic_remove",
    "onexithold": "on_exit_hold",
    "onexitremove": "on_exit_remove",
    "maxretries": "max_retries",
    "env": "environment",
    "notifyuser": "notify_user",
}

#: Canonical names of every submit command gwms acts on or knowingly ignores.
KNOWN_COMMANDS: frozenset[str] = frozenset(
    {name for d in DERIVATIONS for name in d.inputs} | set(IGNORED_COMMANDS)
)


def canonical_command(name: str) -> str | None:
    """The canonical name of submit command ``name`` (any case), or ``None`` if unknown."""
    low = name.lower()
    low = ALIASES.get(low, low)
    if low in KNOWN_COMMANDS or low in UNSUPPORTED_COMMANDS:
        return low
    return None


def did_you_mean(name: str) -> str | None:
    """The known command closest to a misspelt ``name``, if one is close enough."""
    candidates = sorted(KNOWN_COMMANDS)
    match = difflib.get_close_matches(name.lower(), candidates, n=1, cutoff=0.75)
    return match[0] if match else None
