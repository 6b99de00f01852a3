"""The slurm backend without Slurm: script rendering, parsing recorded squeue / sacct /
sbatch outputs, the state mapping, and the backend's command sequence with a fake runner.

The recorded outputs come from Slurm 22.05.8 (Debian 12) on the test site of
deploy/test-sites/slurm/ (sacct's with slurmdbd + MariaDB added as in
shared/spec/test-sites.md section 1.7).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.factory.backends import BackendConfigError, BackendContext, create_backend
from gwms.factory.backends.base import BackendError, PilotSpec, SiteState, SiteStatus
from gwms.factory.backends.slurm import (
    CommandResult,
    SlurmBackend,
    SlurmJob,
    SlurmSettings,
    decode_wait_status,
    format_walltime,
    parse_exit_code,
    parse_sacct,
    parse_sbatch_output,
    parse_squeue,
    render_script,
    sbatch_error_message,
    site_status,
)

# ---------------------------------------------------------------------------- recorded

# squeue -h --all -t all -j ... -O 'JobID:|,State:|,Reason:|,exit_code:|'
SQUEUE_RECORDED = """\
16|CANCELLED|BeginTime|0|
18|CANCELLED|None|15|
15|CANCELLED|JobHeldUser|0|
1|COMPLETED|None|0|
17|FAILED|NonZeroExitCode|768|
19|FAILED|JobLaunchFailure|9|
21|FAILED|JobLaunchFailure|4021|
20|TIMEOUT|TimeLimit|15|
30|RUNNING|None|0|
31|RUNNING|JobHeldAdmin|0|
32|PENDING|Priority|0|
33|PENDING|JobHeldUser|0|
34|PENDING|BeginTime|0|
35|PENDING|None|0|
"""

# what each recorded job means to the factory
SQUEUE_EXPECTED = {
    "16": SiteStatus(SiteState.REMOVED, None, "CANCELLED (BeginTime)"),
    "18": SiteStatus(SiteState.REMOVED, None, "CANCELLED"),
    "15": SiteStatus(SiteState.REMOVED, None, "CANCELLED (JobHeldUser)"),
    "1": SiteStatus(SiteState.COMPLETED, 0),
    "17": SiteStatus(SiteState.COMPLETED, 3),  # sh -c 'exit 3'
    "19": SiteStatus(SiteState.FAILED, 137, "FAILED (JobLaunchFailure), ExitCode 0:9"),
    "21": SiteStatus(SiteState.FAILED, 181, "FAILED (JobLaunchFailure), ExitCode 0:53"),
    "20": SiteStatus(SiteState.FAILED, 143, "TIMEOUT (TimeLimit), ExitCode 0:15"),
    "30": SiteStatus(SiteState.RUNNING),
    "31": SiteStatus(SiteState.RUNNING),  # `scontrol hold` of a running job: still running
    "32": SiteStatus(SiteState.PENDING, reason="Priority"),
    "33": SiteStatus(SiteState.HELD, reason="JobHeldUser"),
    "34": SiteStatus(SiteState.PENDING, reason="BeginTime"),
    "35": SiteStatus(SiteState.PENDING),
}

# sacct -n -P -j ... -o JobIDRaw,State,ExitCode,Reason (with slurmdbd; -X drops the steps).
# sacct keeps no hold or launch-failure reason: a held job is PENDING/None, and a job
# killed by a signal reads like a pilot that died of it.
SACCT_RECORDED = """\
85|FAILED|3:0|None
85.batch|FAILED|3:0|
86|CANCELLED by 0|0:0|None
86.batch|CANCELLED|0:15|
87|FAILED|0:9|None
88|TIMEOUT|0:0|None
89|FAILED|0:53|None
90|COMPLETED|0:0|None
91|PENDING|0:0|None
92|RUNNING|0:0|None
"""

SACCT_EXPECTED = {
    "85": SiteStatus(SiteState.COMPLETED, 3),  # sh -c 'exit 3'
    "86": SiteStatus(SiteState.REMOVED, None, "CANCELLED by 0"),  # scancel while running
    "87": SiteStatus(SiteState.COMPLETED, 137, "killed by signal 9"),  # kill -9 $$
    "88": SiteStatus(SiteState.FAILED, None, "TIMEOUT, ExitCode 0:0"),  # --time=1, sleep 1000
    "89": SiteStatus(SiteState.COMPLETED, 181, "killed by signal 53"),  # output dir missing
    "90": SiteStatus(SiteState.COMPLETED, 0),
    "91": SiteStatus(SiteState.PENDING),  # sbatch -H
    "92": SiteStatus(SiteState.RUNNING),
}

SBATCH_BAD_PARTITION = (
    "sbatch: error: invalid partition specified: nope\n"
    "sbatch: error: Batch job submission failed: Invalid partition name specified\n"
)
SBATCH_NO_CONTROLLER = (
    "sbatch: error: Batch job submission failed: Unable to contact slurm controller "
    "(connect failure)\n"
)


def pilot(tmp_path: Path, name: str = "p1", **kw: object) -> PilotSpec:
    """A pilot spec with its files under ``tmp_path``."""
    fields: dict = {
        "pilot_id": name,
        "argv": ["/bin/sh", "glidein_startup.sh", "-v", "std"],
        "env": {"GLIDEIN_X": "1"},
        "stdout": tmp_path / "logs" / f"{name}.out",
        "stderr": tmp_path / "logs" / f"{name}.err",
        "cpus": 4,
        "memory_mb": 8000,
        "walltime_s": 3 * 3600,
        "workdir": None,
    }
    fields.update(kw)
    return PilotSpec(**fields)


def directives(script: str) -> list[str]:
    """The ``#SBATCH`` options of a script, as sbatch reads them (before the first command)."""
    out = []
    for line in script.splitlines()[1:]:
        if line.startswith("#SBATCH "):
            out.append(line[len("#SBATCH ") :])
        elif line.strip() and not line.startswith("#"):
            break
    return out


# ---------------------------------------------------------------------------- walltime


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "00:00:00"), (59, "00:00:59"), (3600, "01:00:00"), (86399, "23:59:59"),
     (86400, "1-00:00:00"), (2 * 86400 + 3723, "2-01:02:03")],
)  # fmt: skip
def test_walltime_examples(seconds: int, text: str):
    assert format_walltime(seconds) == text


@given(st.integers(min_value=0, max_value=10**8))
def test_walltime_reads_back_as_the_same_seconds(seconds: int):
    m = re.fullmatch(r"(?:(\d+)-)?(\d\d):(\d\d):(\d\d)", format_walltime(seconds))
    assert m is not None
    days, hours, minutes, secs = (int(g or 0) for g in m.groups())
    assert hours < 24 and minutes < 60 and secs < 60
    assert days * 86400 + hours * 3600 + minutes * 60 + secs == seconds


def test_negative_walltime_is_refused():
    with pytest.raises(ValueError):
        format_walltime(-1)


# ---------------------------------------------------------------------------- script


def test_script_has_every_directive_before_the_command(tmp_path: Path):
    settings = SlurmSettings(
        partition="debug", account="cms", qos="pilot",
        extra_directives=["--constraint=avx2", "#SBATCH --exclusive"],
    )  # fmt: skip
    script = render_script(pilot(tmp_path), settings)
    assert script.startswith("#!/bin/sh\n")
    assert directives(script) == [
        '--job-name="gwms-p1"',
        f'--output="{tmp_path}/logs/p1.out"',
        f'--error="{tmp_path}/logs/p1.err"',
        f'--chdir="{tmp_path}/logs"',
        "--nodes=1",
        "--ntasks=1",
        "--cpus-per-task=4",
        "--mem=8000M",
        "--time=03:00:00",
        "--export=NONE",
        "--no-requeue",
        '--partition="debug"',
        '--account="cms"',
        '--qos="pilot"',
        "--constraint=avx2",
        "--exclusive",
    ]
    assert script.rstrip().endswith("exec /bin/sh glidein_startup.sh -v std")
    assert "export GLIDEIN_X=1\n" in script


def test_zero_memory_and_walltime_leave_the_site_defaults(tmp_path: Path):
    script = render_script(pilot(tmp_path, memory_mb=0, walltime_s=0), SlurmSettings())
    options = directives(script)
    assert not any(o.startswith(("--mem", "--time", "--partition")) for o in options)


def test_working_directory_choice(tmp_path: Path):
    spec = pilot(tmp_path, workdir=tmp_path / "w")
    assert f'--chdir="{tmp_path}/w"' in directives(render_script(spec, SlurmSettings()))
    site = SlurmSettings(chdir="/scratch")
    assert '--chdir="/scratch"' in directives(render_script(pilot(tmp_path), site))


def test_percent_in_output_paths_is_doubled(tmp_path: Path):
    spec = pilot(tmp_path, stdout=Path("/logs/a %j b.out"), stderr=Path("/logs/%%.err"))
    options = directives(render_script(spec, SlurmSettings()))
    assert '--output="/logs/a %%j b.out"' in options
    assert '--error="/logs/%%%%.err"' in options


@pytest.mark.parametrize(
    "change",
    [
        {"argv": []},
        {"pilot_id": "a\nb"},
        {"stdout": Path('/logs/a"b')},
        {"stderr": Path("/logs/a\\b")},
        {"stdout": Path("/logs/a\nb")},
        {"env": {"NOT-A-NAME": "x"}},
        {"env": {"": "x"}},
        {"cpus": 0},
        {"memory_mb": -1},
        {"walltime_s": -5},
    ],
)
def test_specs_that_cannot_be_scripts_are_refused(tmp_path: Path, change: dict):
    with pytest.raises(ValueError):
        render_script(pilot(tmp_path, **change), SlurmSettings())


SAFE_PATH = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"\\'),
    min_size=1, max_size=30,
)  # fmt: skip


@given(out=SAFE_PATH, err=SAFE_PATH)
def test_output_paths_round_trip_through_slurm_quoting(out: str, err: str):
    spec = PilotSpec("p", ["true"], {}, Path("/x") / out, Path("/y") / err, 1, 1, 1, None)
    options = directives(render_script(spec, SlurmSettings()))
    assert len(options) == 11  # every directive stayed on its own line

    def read_back(option: str) -> str:
        value = next(o for o in options if o.startswith(option + "="))[len(option) + 1 :]
        assert value.startswith('"') and value.endswith('"') and '"' not in value[1:-1]
        return value[1:-1].replace("%%", "%")

    assert read_back("--output") == str(spec.stdout)
    assert read_back("--error") == str(spec.stderr)


ENV_VALUE = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))


@settings(max_examples=30, deadline=None)
@given(
    env=st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), ENV_VALUE,
                        max_size=4),
    args=st.lists(ENV_VALUE, max_size=4),
)  # fmt: skip
def test_the_script_runs_the_exact_argv_with_the_exact_environment(
    tmp_path_factory: pytest.TempPathFactory, env: dict[str, str], args: list[str]
):
    # the script is plain sh: run it without Slurm and compare what the pilot receives
    env = {k: v for k, v in env.items() if k not in ("PATH", "PWD", "OLDPWD", "SHLVL", "_")}
    probe = "import json, os, sys; print(json.dumps([sys.argv[1:], dict(os.environ)]))"
    tmp = tmp_path_factory.mktemp("script")
    spec = PilotSpec("p", [sys.executable, "-c", probe, *args], env, tmp / "o", tmp / "e",
                     1, 1, 1, None)  # fmt: skip
    script = render_script(spec, SlurmSettings())
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, check=True,
                         env={"PATH": "/usr/bin:/bin"})  # fmt: skip
    got_args, got_env = json.loads(out.stdout)
    assert got_args == args
    for key, value in env.items():
        assert got_env[key] == value


# ---------------------------------------------------------------------------- settings


def test_settings_come_from_the_entry_through_the_registry(tmp_path: Path):
    backend = create_backend(
        "slurm",
        {"partition": "debug", "extra_directives": ["#SBATCH  --gres=gpu:1"]},
        BackendContext("e1", tmp_path),
    )
    assert isinstance(backend, SlurmBackend)
    assert backend.name == "slurm"
    assert backend.settings.partition == "debug"
    assert backend.settings.extra_directives == ["--gres=gpu:1"]


@pytest.mark.parametrize(
    "bad",
    [
        {"partiton": "debug"},  # misspelt
        {"partition": 'a"b'},
        {"extra_directives": ["constraint=x"]},
        {"extra_directives": ["--a\n--b"]},
        {"accounting": "maybe"},
        {"command_timeout_s": 0},
    ],
)
def test_bad_settings_are_config_errors(tmp_path: Path, bad: dict):
    with pytest.raises(BackendConfigError, match="slurm backend settings"):
        create_backend("slurm", bad, BackendContext("e1", tmp_path))


# ---------------------------------------------------------------------------- parsing


def test_sbatch_output():
    assert parse_sbatch_output("27\n") == "27"
    assert parse_sbatch_output("27;cluster1\n") == "27"
    for bad in ("", "\n", "Submitted batch job 27\n", "abc;def"):
        with pytest.raises(ValueError):
            parse_sbatch_output(bad)


@given(
    st.integers(min_value=1, max_value=2**32),
    st.none() | st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True),
)
def test_sbatch_output_property(job_id: int, cluster: str | None):
    text = f"{job_id};{cluster}\n" if cluster else f"{job_id}\n"
    assert parse_sbatch_output(text) == str(job_id)


def test_sbatch_error_message_is_one_line_without_prefixes():
    assert sbatch_error_message(SBATCH_BAD_PARTITION) == (
        "invalid partition specified: nope; "
        "Batch job submission failed: Invalid partition name specified"
    )
    assert sbatch_error_message("", "") == "no message"


def test_recorded_squeue_output_maps_to_the_factorys_states():
    jobs = parse_squeue(SQUEUE_RECORDED + "garbage line\n\n")
    assert set(jobs) == set(SQUEUE_EXPECTED)
    assert {k: site_status(j) for k, j in jobs.items()} == SQUEUE_EXPECTED


def test_recorded_sacct_output_maps_to_the_factorys_states():
    jobs = parse_sacct(SACCT_RECORDED + "90.extern|COMPLETED|0:0|\n")
    assert set(jobs) == set(SACCT_EXPECTED)
    assert {k: site_status(j) for k, j in jobs.items()} == SACCT_EXPECTED


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "7|OUT_OF_MEMORY|0:125|None",
            SiteStatus(SiteState.FAILED, 253, "OUT_OF_MEMORY, ExitCode 0:125"),
        ),
        ("7|NODE_FAIL|1:0|None", SiteStatus(SiteState.FAILED, 1, "NODE_FAIL, ExitCode 1:0")),
        ("7|PREEMPTED|0:15|None", SiteStatus(SiteState.FAILED, 143, "PREEMPTED, ExitCode 0:15")),
        ("7|BOOT_FAIL|0:0|None", SiteStatus(SiteState.FAILED, None, "BOOT_FAIL, ExitCode 0:0")),
        ("7|REQUEUE_HOLD|0:0|None", SiteStatus(SiteState.HELD, None, "REQUEUE_HOLD")),
        ("7|SUSPENDED|0:0|None", SiteStatus(SiteState.RUNNING, None, "SUSPENDED")),
        ("7|REVOKED|0:0|None", SiteStatus(SiteState.REMOVED, None, "REVOKED")),
    ],
)
def test_site_failures_and_rarer_states(line: str, expected: SiteStatus):
    # states the test site does not produce on demand, in sacct's documented format
    assert site_status(parse_sacct(line)["7"]) == expected


@pytest.mark.parametrize(
    ("raw", "expected"), [(0, (0, 0)), (768, (3, 0)), (15, (0, 15)), (9, (0, 9)), (4021, (0, 53))]
)
def test_recorded_wait_statuses(raw: int, expected: tuple[int, int]):
    assert decode_wait_status(raw) == expected


@given(
    st.integers(min_value=0, max_value=255), st.integers(min_value=1, max_value=126), st.booleans()
)
def test_wait_status_decoding(code: int, sig: int, core: bool):
    assert decode_wait_status(code << 8) == (code, 0)
    assert decode_wait_status(sig | (0x80 if core else 0)) == (0, sig)


def test_exit_code_text():
    assert parse_exit_code("3:0") == (3, 0)
    assert parse_exit_code("0:15") == (0, 15)
    assert parse_exit_code("") == (None, None)
    assert parse_exit_code("x:y") == (None, None)


SLURM_STATES = [
    "PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "CONFIGURING", "COMPLETED", "CANCELLED",
    "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY",
    "REQUEUED", "REQUEUE_HOLD", "SPECIAL_EXIT", "RESIZING", "REVOKED", "SIGNALING",
    "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "REQUEUE_FED",
]  # fmt: skip
REASONS = ["None", "Priority", "Resources", "JobHeldUser", "JobHeldAdmin", "BeginTime",
           "NonZeroExitCode", "JobLaunchFailure", "launch failed requeued held", "TimeLimit"]  # fmt: skip


WORD = st.text(st.characters(whitelist_categories=("L", "N", "Zs"), whitelist_characters="_()-:"),
               max_size=12)  # fmt: skip


@given(
    state=st.sampled_from(SLURM_STATES) | WORD,
    reason=st.sampled_from(REASONS) | WORD,
    raw=st.integers(min_value=0, max_value=0xFFFF),
)
def test_squeue_lines_round_trip_and_every_state_maps(state: str, reason: str, raw: int):
    state, reason = state.strip(), reason.strip()
    jobs = parse_squeue(f"4242|{state}|{reason}|{raw}|\n")
    job = jobs["4242"]
    assert job.state == state
    assert job.reason == ("" if reason in ("None", "(null)") else reason)
    assert (job.exit_code, job.signal) == decode_wait_status(raw)
    status = site_status(job)  # total: never raises
    assert isinstance(status, SiteStatus)
    if status.state in (SiteState.PENDING, SiteState.RUNNING, SiteState.HELD):
        assert status.exit_code is None
    if state.split(" ")[0].upper() in SLURM_STATES:
        assert status.state is not SiteState.UNKNOWN
    else:
        assert status.state is SiteState.UNKNOWN and state in status.reason


@given(reason=st.sampled_from(REASONS))
def test_a_pending_job_is_held_exactly_when_the_reason_is_a_hold(reason: str):
    status = site_status(SlurmJob("1", "PENDING", reason, 0, 0))
    held = reason in ("JobHeldUser", "JobHeldAdmin", "launch failed requeued held")
    assert (status.state is SiteState.HELD) == held


@given(code=st.integers(min_value=1, max_value=255), sig=st.integers(min_value=1, max_value=64))
def test_a_pilot_that_exits_by_itself_is_completed_with_its_code(code: int, sig: int):
    assert site_status(SlurmJob("1", "FAILED", "NonZeroExitCode", code, 0)) == SiteStatus(
        SiteState.COMPLETED, code
    )
    by_signal = site_status(SlurmJob("1", "FAILED", "NonZeroExitCode", 0, sig))
    assert by_signal.state is SiteState.COMPLETED
    assert by_signal.exit_code == 128 + sig


# ---------------------------------------------------------------------------- backend


class FakeSlurm:
    """A runner that answers Slurm commands from a script and records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str | None]] = []
        self.next_id = 500
        self.sbatch_answers: list[CommandResult | Exception] = []
        self.squeue_out = ""
        self.names_out = ""
        self.squeue_rc = 0
        self.squeue_err = ""
        self.sacct: CommandResult = CommandResult(1, "", "Slurm accounting storage is disabled\n")
        self.scancel: CommandResult | list[CommandResult] = CommandResult(0, "", "")
        self.scontrol = CommandResult(0, "", "")

    def __call__(self, argv: Sequence[str], stdin: str | None, timeout: float) -> CommandResult:
        argv = list(argv)
        self.calls.append((argv, stdin))
        cmd = Path(argv[0]).name
        if cmd == "sbatch":
            if self.sbatch_answers:
                answer = self.sbatch_answers.pop(0)
                if isinstance(answer, Exception):
                    raise answer
                return answer
            self.next_id += 1
            return CommandResult(0, f"{self.next_id}\n", "")
        if cmd == "squeue":
            if "-n" in argv:
                return CommandResult(0, self.names_out, "")
            return CommandResult(self.squeue_rc, self.squeue_out, self.squeue_err)
        if cmd == "sacct":
            return self.sacct
        if cmd == "scancel":  # one answer for every call, or a list of answers in turn
            return self.scancel.pop(0) if isinstance(self.scancel, list) else self.scancel
        if cmd == "scontrol":
            return self.scontrol
        raise AssertionError(f"unexpected command {argv}")

    def named(self, cmd: str) -> list[list[str]]:
        """The argv of every call of ``cmd``."""
        return [argv for argv, _ in self.calls if Path(argv[0]).name == cmd]


@pytest.fixture()
def fake() -> FakeSlurm:
    return FakeSlurm()


def make(fake: FakeSlurm, state_dir: Path | None, **settings: object) -> SlurmBackend:
    return SlurmBackend(SlurmSettings(**settings), state_dir, runner=fake)


def test_submit_sends_each_script_to_sbatch_and_returns_job_ids(fake: FakeSlurm, tmp_path: Path):
    backend = make(fake, tmp_path / "state", bin_dir="/opt/slurm/bin")
    specs = [pilot(tmp_path, f"p{i}") for i in range(3)]
    assert backend.submit(specs) == ["501", "502", "503"]
    sbatch = [(argv, stdin) for argv, stdin in fake.calls if argv[0].endswith("sbatch")]
    assert [argv for argv, _ in sbatch] == [["/opt/slurm/bin/sbatch", "--parsable"]] * 3
    assert [stdin for _, stdin in sbatch] == [render_script(s, backend.settings) for s in specs]
    # one name lookup for the whole batch, for this user's jobs only
    [lookup] = fake.named("squeue")
    assert "--me" in lookup and lookup[lookup.index("-n") + 1] == "gwms-p0,gwms-p1,gwms-p2"
    assert (tmp_path / "logs").is_dir()  # Slurm needs the directory of its output files


def test_submit_is_idempotent_per_pilot_id(fake: FakeSlurm, tmp_path: Path):
    backend = make(fake, tmp_path / "state")
    first = backend.submit([pilot(tmp_path, "a"), pilot(tmp_path, "b")])
    assert backend.submit([pilot(tmp_path, "b"), pilot(tmp_path, "c")]) == [first[1], "503"]
    # a restarted factory (a new backend on the same state directory) remembers
    again = make(fake, tmp_path / "state")
    before = len(fake.named("sbatch"))
    assert again.submit([pilot(tmp_path, "a"), pilot(tmp_path, "c")]) == [first[0], "503"]
    assert len(fake.named("sbatch")) == before


def test_a_job_submitted_by_a_killed_factory_is_found_by_name(fake: FakeSlurm, tmp_path: Path):
    fake.names_out = "77|gwms-lost|\n78|gwms-other|\n"
    backend = make(fake, tmp_path / "state")
    assert backend.submit([pilot(tmp_path, "lost"), pilot(tmp_path, "new")]) == ["77", "501"]
    assert len(fake.named("sbatch")) == 1


def test_refused_pilots_get_slurms_message_and_the_others_go_on(fake: FakeSlurm, tmp_path: Path):
    fake.sbatch_answers = [CommandResult(1, "", SBATCH_BAD_PARTITION)]
    results = make(fake, None).submit([pilot(tmp_path, "x"), pilot(tmp_path, "y")])
    assert isinstance(results[0], BackendError)
    assert "sbatch refused pilot x" in str(results[0])
    assert "Invalid partition name specified" in str(results[0])
    assert results[1] == "501"


def test_an_unreachable_controller_stops_the_batch(fake: FakeSlurm, tmp_path: Path):
    fake.sbatch_answers = [CommandResult(1, "", SBATCH_NO_CONTROLLER)]
    results = make(fake, None).submit([pilot(tmp_path, f"p{i}") for i in range(5)])
    assert all(isinstance(r, BackendError) for r in results)
    assert all("Unable to contact slurm controller" in str(r) for r in results)
    assert len(fake.named("sbatch")) == 1


def test_an_sbatch_timeout_stops_the_batch(fake: FakeSlurm, tmp_path: Path):
    fake.sbatch_answers = [BackendError("sbatch did not answer within 60 s")]
    results = make(fake, None).submit([pilot(tmp_path, f"p{i}") for i in range(3)])
    assert all(isinstance(r, BackendError) and "did not answer" in str(r) for r in results)
    assert len(fake.named("sbatch")) == 1


def test_a_spec_that_cannot_be_a_script_is_refused_alone(fake: FakeSlurm, tmp_path: Path):
    results = make(fake, None).submit([pilot(tmp_path, "bad", argv=[]), pilot(tmp_path, "ok")])
    assert isinstance(results[0], BackendError) and "empty argv" in str(results[0])
    assert results[1] == "501"


def test_unexpected_sbatch_output_is_an_error(fake: FakeSlurm, tmp_path: Path):
    fake.sbatch_answers = [CommandResult(0, "Submitted batch job 5\n", "")]
    [result] = make(fake, None).submit([pilot(tmp_path)])
    assert isinstance(result, BackendError) and "no job id" in str(result)


def test_a_failing_name_lookup_fails_the_whole_batch(fake: FakeSlurm, tmp_path: Path):
    def broken(argv: Sequence[str], stdin: str | None, timeout: float) -> CommandResult:
        return CommandResult(1, "", "squeue: error: Unable to contact slurm controller\n")

    with pytest.raises(BackendError, match="Unable to contact"):
        SlurmBackend(SlurmSettings(), None, runner=broken).submit([pilot(tmp_path)])


def test_poll_reads_all_ids_with_one_squeue_and_knows_every_id(fake: FakeSlurm):
    fake.squeue_out = SQUEUE_RECORDED
    backend = make(fake, None)
    ids = [*SQUEUE_EXPECTED, "999", "nope"]
    states = backend.poll(ids)
    assert set(states) == set(ids)
    assert {k: states[k] for k in SQUEUE_EXPECTED} == SQUEUE_EXPECTED
    assert states["999"].state is SiteState.UNKNOWN
    assert states["nope"] == SiteStatus(SiteState.UNKNOWN, reason="not a Slurm job id")
    [squeue] = fake.named("squeue")
    assert squeue[squeue.index("-j") + 1].split(",") == [*SQUEUE_EXPECTED, "999"]
    assert squeue[squeue.index("-t") + 1] == "all"
    # accounting is off: sacct was tried once for 999, and is not tried again
    assert len(fake.named("sacct")) == 1
    backend.poll(["999"])
    assert len(fake.named("sacct")) == 1


def test_poll_asks_sacct_for_the_jobs_squeue_forgot(fake: FakeSlurm):
    fake.squeue_out = "30|RUNNING|None|0|\n"
    fake.sacct = CommandResult(0, SACCT_RECORDED, "")
    states = make(fake, None).poll(["30", "85", "86", "900"])
    assert states["30"].state is SiteState.RUNNING
    assert states["85"] == SiteStatus(SiteState.COMPLETED, 3)
    assert states["86"].state is SiteState.REMOVED
    assert states["900"].state is SiteState.UNKNOWN
    [sacct] = fake.named("sacct")
    assert sacct[sacct.index("-j") + 1] == "85,86,900"
    assert "-X" in sacct and "-P" in sacct


def test_poll_without_accounting_never_calls_sacct(fake: FakeSlurm):
    states = make(fake, None, accounting="none").poll(["5"])
    assert states["5"].state is SiteState.UNKNOWN
    assert fake.named("sacct") == []


def test_poll_of_one_forgotten_id(fake: FakeSlurm):
    # squeue -j ONE_UNKNOWN_ID exits 1 with this message (more ids: exit 0, no line)
    fake.squeue_rc, fake.squeue_err = 1, "slurm_load_jobs error: Invalid job id specified\n"
    assert make(fake, None).poll(["12"])["12"].state is SiteState.UNKNOWN


def test_poll_raises_when_the_controller_is_down(fake: FakeSlurm):
    fake.squeue_rc = 1
    fake.squeue_err = (
        "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"
    )
    with pytest.raises(BackendError, match="squeue failed: .*Unable to contact"):
        make(fake, None).poll(["12"])


def test_poll_of_nothing_asks_nothing(fake: FakeSlurm):
    # an empty `squeue -j ''` would list every job of the cluster
    assert make(fake, None).poll([]) == {}
    assert fake.calls == []


def test_poll_batches_large_id_lists(fake: FakeSlurm):
    make(fake, None, accounting="none").poll([str(i) for i in range(1, 2501)])
    assert [len(a[a.index("-j") + 1].split(",")) for a in fake.named("squeue")] == [1000, 1000, 500]


def test_remove_and_release_ignore_ids_that_are_gone(fake: FakeSlurm):
    backend = make(fake, None)
    fake.scancel = CommandResult(1, "", "scancel: error: Kill job error on job id 5: "
                                        "Job/step already completing or completed\n")  # fmt: skip
    backend.remove(["5", "6", "5", "bad id"])
    assert fake.named("scancel") == [["scancel", "-t", "PENDING", "5", "6"], ["scancel", "-s", "TERM", "-f", "5", "6"]]
    fake.calls.clear()
    make(fake, None, kill_grace_s=0).remove(["5", "6", "5", "bad id"])
    assert fake.named("scancel") == [["scancel", "5", "6"]]
    fake.scontrol = CommandResult(
        1, "", "Job has already finished for job 17\nInvalid job id specified for job 99999\n"
        "slurm_suspend error: Invalid job id specified\n",
    )  # fmt: skip
    backend.release(["17", "99999"])
    assert fake.named("scontrol") == [["scontrol", "release", "17,99999"]]


def test_remove_and_release_report_real_failures(fake: FakeSlurm):
    backend = make(fake, None)
    fake.scancel = CommandResult(1, "", "scancel: error: Unable to contact slurm controller\n")
    with pytest.raises(BackendError, match="scancel failed"):
        backend.remove(["5"])
    fake.scontrol = CommandResult(1, "", "Access/permission denied for job 5\n")
    with pytest.raises(BackendError, match="permission denied"):
        backend.release(["5"])


def test_remove_terms_running_pilots_first_and_cancels_them_after_the_grace(fake: FakeSlurm, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch):
    now = [1000.0]
    monkeypatch.setattr("gwms.factory.backends.slurm.time.time", lambda: now[0])
    backend = make(fake, tmp_path / "state", kill_grace_s=30)
    fake.scancel = [CommandResult(0, "", ""),
                    CommandResult(1, "", "scancel: error: Kill job error on job id 8: Job can not be altered now, "
                                         "try again later\n")]  # fmt: skip
    backend.remove(["7", "8"])  # 7 runs, 8 is pending (cancelled by -t PENDING, not signalled)
    assert fake.named("scancel") == [["scancel", "-t", "PENDING", "7", "8"], ["scancel", "-s", "TERM", "-f", "7", "8"]]
    fake.scancel = CommandResult(0, "", "")
    fake.squeue_out = "7|RUNNING|None|0|\n8|CANCELLED|None|0|\n"
    now[0] += 10
    states = backend.poll(["7", "8"])
    assert states["7"].state is SiteState.RUNNING and states["8"].state is SiteState.REMOVED
    assert len(fake.named("scancel")) == 2  # within the grace: nothing more
    # a restarted factory remembers the removal: past the grace the job is cancelled, once
    again = make(fake, tmp_path / "state", kill_grace_s=30)
    now[0] += 25
    again.poll(["7"])
    again.poll(["7"])
    assert fake.named("scancel")[2:] == [["scancel", "7"]]
    # once it ended it is REMOVED, whatever its exit code
    fake.squeue_out = "7|FAILED|NonZeroExitCode|36608|\n"
    st = again.poll(["7"])["7"]
    assert st.state is SiteState.REMOVED and st.exit_code == 143 and "removed by the factory" in st.reason


def test_remove_of_nothing_asks_nothing(fake: FakeSlurm):
    make(fake, None).remove([])
    make(fake, None).release(["not-an-id"])
    assert fake.calls == []


def test_collect_output_of_a_pilot_that_never_ran_is_quick(fake: FakeSlurm, tmp_path: Path):
    spec = pilot(tmp_path)
    make(fake, None, collect_timeout_s=30).collect_output("5", spec)  # no files: no waiting
    assert spec.stdout.read_text() == "" and spec.stderr.read_text() == ""


def test_collect_output_keeps_what_slurm_wrote(fake: FakeSlurm, tmp_path: Path):
    spec = pilot(tmp_path)
    spec.stdout.parent.mkdir(parents=True)
    spec.stdout.write_text("hello\n")
    spec.stderr.write_text("oops\n")
    make(fake, None, collect_timeout_s=2).collect_output("5", spec)
    assert spec.stdout.read_text() == "hello\n" and spec.stderr.read_text() == "oops\n"
