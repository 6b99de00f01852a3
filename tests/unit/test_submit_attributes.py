"""The job attributes a submit description produces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.pool.schedd.submit import expand_submit, parse_submit
from gwms.pool.schedd.submit_commands import DEFAULT_REQUEST_DISK_KIB, DEFAULT_REQUEST_MEMORY_MIB
from gwms.pool.schedd.submit_quoting import format_args_new, job_argv, job_environment

NOW = 1_700_000_000.9
DEFAULT_REQUIREMENTS = (
    "/Expr((TARGET.Memory >= RequestMemory) && (TARGET.Cpus >= RequestCpus) "
    "&& (TARGET.Disk >= RequestDisk))/"
)


def expand(text: str, base_dir: Path, **kw: Any) -> list[dict[str, Any]]:
    desc = parse_submit(text, source="job.sub")
    return expand_submit(desc, cluster_id=9, owner="alice", now=NOW, base_dir=base_dir, **kw)


def one(text: str, base_dir: Path, **kw: Any) -> dict[str, Any]:
    jobs = expand(text, base_dir, **kw)
    assert len(jobs) == 1
    return jobs[0]


def test_minimal_job_ad_is_exactly_this(tmp_path: Path) -> None:
    assert one("executable = run.sh\nqueue\n", tmp_path) == {
        "ClusterId": 9,
        "ProcId": 0,
        "Owner": "alice",
        "QDate": 1_700_000_000,
        "EnteredCurrentStatus": 1_700_000_000,
        "JobStatus": 1,
        "MyType": "Job",
        "TargetType": "Machine",
        "NumJobStarts": 0,
        "JobUniverse": 5,
        "Cmd": str(tmp_path / "run.sh"),
        "Iwd": str(tmp_path),
        "In": "/dev/null",
        "Out": "/dev/null",
        "Err": "/dev/null",
        "ShouldTransferFiles": "IF_NEEDED",
        "WhenToTransferOutput": "ON_EXIT",
        "RequestCpus": 1,
        "RequestMemory": DEFAULT_REQUEST_MEMORY_MIB,
        "RequestDisk": DEFAULT_REQUEST_DISK_KIB,
        "Requirements": DEFAULT_REQUIREMENTS,
        "PeriodicHold": False,
        "PeriodicRelease": False,
        "PeriodicRemove": False,
        "OnExitHold": False,
        "OnExitRemove": True,
        "JobPrio": 0,
    }


def test_a_realistic_submit_file(tmp_path: Path) -> None:
    text = r"""
####################
# Analysis of one run
####################
Universe                = vanilla
Executable              = bin/analyze.sh
InitialDir              = runs/run$(Process)
Arguments               = "--run $(Process) --label 'first pass'"
Input                   = input.dat
Output                  = analyze.out
Error                   = analyze.err
Log                     = ../analyze.log
should_transfer_files   = yes
when_to_transfer_output = on_exit
transfer_input_files    = input.dat, ../common/lib.tar.gz ,calib.db
transfer_output_files   = result.root
Request_Cpus            = 4
Request_Memory          = 2 GB
Request_Disk            = 10G
Requirements            = (OpSys == "LINUX") && (Arch == "X86_64")
Rank                    = Memory
periodic_hold           = (JobStatus == 2) && (time() - EnteredCurrentStatus > 3600)
periodic_release        = (NumJobStarts < 3) && (HoldReasonCode == 3)
on_exit_hold            = ExitCode =!= 0
batch_name              = analysis
priority                = 5
accounting_group        = group_physics
+ProjectName            = "Gwms-Test"
+DESIRED_Sites          = "T2_US_A,T2_US_B"
+WantsSingularity       = true
MY.MaxWallTimeMins      = 120
notification            = Never
queue 2
"""
    jobs = expand(text, tmp_path)
    first = jobs[0]
    assert first["Iwd"] == str(tmp_path / "runs/run0")
    assert jobs[1]["Iwd"] == str(tmp_path / "runs/run1")
    assert first["Cmd"] == str(tmp_path / "runs/run0/bin/analyze.sh")
    assert first["Arguments"] == "--run 0 --label 'first pass'"
    assert job_argv(jobs[1]) == ["--run", "1", "--label", "first pass"]
    assert "Args" not in first
    assert (first["In"], first["Out"], first["Err"]) == ("input.dat", "analyze.out", "analyze.err")
    assert first["UserLog"] == str(tmp_path / "runs/analyze.log")
    assert first["ShouldTransferFiles"] == "YES"
    assert first["WhenToTransferOutput"] == "ON_EXIT"
    assert first["TransferInput"] == "input.dat,../common/lib.tar.gz,calib.db"
    assert first["TransferOutput"] == "result.root"
    requests = (first["RequestCpus"], first["RequestMemory"], first["RequestDisk"])
    assert requests == (4, 2048, 10 * 1024 * 1024)
    assert first["Requirements"] == (
        '/Expr(((OpSys == "LINUX") && (Arch == "X86_64")) && (TARGET.Memory >= RequestMemory)'
        " && (TARGET.Cpus >= RequestCpus) && (TARGET.Disk >= RequestDisk))/"
    )
    assert first["Rank"] == "/Expr(Memory)/"
    assert first["PeriodicHold"] == (
        "/Expr((JobStatus == 2) && (time() - EnteredCurrentStatus > 3600))/"
    )
    assert first["PeriodicRelease"] == "/Expr((NumJobStarts < 3) && (HoldReasonCode == 3))/"
    assert first["OnExitHold"] == "/Expr(ExitCode =!= 0)/"
    assert first["JobBatchName"] == "analysis"
    assert first["JobPrio"] == 5
    assert first["AcctGroup"] == "group_physics"
    assert first["AcctGroupUser"] == "alice"
    assert first["AccountingGroup"] == "group_physics.alice"
    assert first["ProjectName"] == "Gwms-Test"
    assert first["DESIRED_Sites"] == "T2_US_A,T2_US_B"
    assert first["WantsSingularity"] is True
    assert first["MaxWallTimeMins"] == 120
    assert first["JobNotification"] == 0


# ------------------------------------------------------------------------------- paths


def test_paths_absolute_or_relative_to_initialdir(tmp_path: Path) -> None:
    job = one("executable = /usr/bin/env\ninitialdir = /data/work\nlog = my.log\nqueue\n", tmp_path)
    paths = (job["Cmd"], job["Iwd"], job["UserLog"])
    assert paths == ("/usr/bin/env", "/data/work", "/data/work/my.log")
    job = one("executable = ./x/../run\ninitial_dir = w\nlog = /var/log/j.log\nqueue\n", tmp_path)
    assert job["Cmd"] == str(tmp_path / "w/run")
    assert job["Iwd"] == str(tmp_path / "w")
    assert job["UserLog"] == "/var/log/j.log"


def test_match_time_macros_are_kept(tmp_path: Path) -> None:
    job = one(
        "executable = /opt/povray.$$(OpSys).$$(Arch)\n"
        "arguments = --memory $$([TARGET.Memory * 0.9])\n"
        '+SiteName = "$$(GLIDEIN_Site:unknown)"\nqueue\n',
        tmp_path,
    )
    assert job["Cmd"] == "/opt/povray.$$(OpSys).$$(Arch)"
    assert job["Args"] == "--memory $$([TARGET.Memory * 0.9])"
    assert job["SiteName"] == "$$(GLIDEIN_Site:unknown)"


# ---------------------------------------------------------------------- arguments & env


def test_old_and_new_argument_syntax(tmp_path: Path) -> None:
    job = one("executable = x\narguments = one \\\"two\\\" 'three'\nqueue\n", tmp_path)
    assert job["Args"] == "one \\\"two\\\" 'three'"
    assert "Arguments" not in job
    assert job_argv(job) == ["one", '"two"', "'three'"]
    text = "executable = x\narguments = \"one \"\"two\"\" 'spacey ''quoted'' argument'\"\nqueue\n"
    job = one(text, tmp_path)
    assert job["Arguments"] == "one \"two\" 'spacey ''quoted'' argument'"
    assert "Args" not in job
    assert job_argv(job) == ["one", '"two"', "spacey 'quoted' argument"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.text(
            alphabet=st.characters(
                blacklist_categories=("Cs",), blacklist_characters="\n\r\x00$\\"
            ),
            max_size=12,
        ),
        max_size=6,
    )
)
def test_arguments_survive_a_submit_file(
    tmp_path_factory: pytest.TempPathFactory, args: list[str]
) -> None:
    text = f"executable = x\narguments = {format_args_new(args)}\nqueue\n"
    job = one(text, tmp_path_factory.getbasetemp())
    if args:
        assert job_argv(job) == args
    else:
        assert job_argv(job) == []


def test_environment_both_syntaxes_become_one_attribute(tmp_path: Path) -> None:
    text = "executable = x\nenvironment = \"one=1 two=\"\"2\"\" three='spacey ''quoted'' value'\"\n"
    job = one(text + "queue\n", tmp_path)
    assert job["Environment"] == "one=1 two=\"2\" three='spacey ''quoted'' value'"
    assert job_environment(job) == {"one": "1", "two": '"2"', "three": "spacey 'quoted' value"}
    job = one("executable = x\nenvironment = A=1;B=x y;C=\nqueue\n", tmp_path)
    assert "Env" not in job
    assert job["Environment"] == "A=1 B='x y' C="
    assert job_environment(job) == {"A": "1", "B": "x y", "C": ""}


def test_getenv_true_copies_the_environment_and_environment_wins(tmp_path: Path) -> None:
    env = {"HOME": "/home/alice", "PATH": "/usr/bin", "A": "from-shell"}
    job = one("executable = x\ngetenv = True\nenvironment = \"A=mine\"\nqueue\n", tmp_path, env=env)
    assert job_environment(job) == {"HOME": "/home/alice", "PATH": "/usr/bin", "A": "mine"}


def test_getenv_list_of_names_and_patterns(tmp_path: Path) -> None:
    env = {"HOME": "/h", "PATH": "/p", "X509_USER_PROXY": "/x", "X509_CERT_DIR": "/c", "SH": "s"}
    job = one("executable = x\ngetenv = HOME, X509_*\nqueue\n", tmp_path, env=env)
    assert job_environment(job) == {"HOME": "/h", "X509_USER_PROXY": "/x", "X509_CERT_DIR": "/c"}
    job = one("executable = x\ngetenv = false\nqueue\n", tmp_path, env=env)
    assert "Environment" not in job


# ------------------------------------------------------------------------------- requests


@pytest.mark.parametrize(
    ("line", "attr", "value"),
    [
        ("request_memory = 2GB", "RequestMemory", 2048),
        ("request_memory = 512M", "RequestMemory", 512),
        ("request_memory = 3000", "RequestMemory", 3000),
        ("RequestMemory = 1.5g", "RequestMemory", 1536),
        ("request_disk = 2GB", "RequestDisk", 2 * 1024 * 1024),
        ("request_disk = 500", "RequestDisk", 500),
        ("request_disk = 10 MB", "RequestDisk", 10240),
        ("request_cpus = 8", "RequestCpus", 8),
        ("request_GPUs = 2", "RequestGpus", 2),
        ("request_memory = MemoryUsage * 2", "RequestMemory", "/Expr(MemoryUsage * 2)/"),
    ],
)
def test_resource_requests(tmp_path: Path, line: str, attr: str, value: object) -> None:
    assert one(f"executable = x\n{line}\nqueue\n", tmp_path)[attr] == value


def test_gpus_add_a_requirements_clause_only_when_requested(tmp_path: Path) -> None:
    job = one("executable = x\nrequest_gpus = 1\nqueue\n", tmp_path)
    assert job["Requirements"] == DEFAULT_REQUIREMENTS[:-2] + " && (TARGET.Gpus >= RequestGpus))/"
    job = one("executable = x\nrequest_gpus = 0\nqueue\n", tmp_path)
    assert job["Requirements"] == DEFAULT_REQUIREMENTS
    assert job["RequestGpus"] == 0


def test_user_requirements_mentioning_a_resource_keep_their_own_clause(tmp_path: Path) -> None:
    job = one("executable = x\nrequirements = Memory > 4000 && MY.Disk > 1\nqueue\n", tmp_path)
    assert job["Requirements"] == (
        "/Expr((Memory > 4000 && MY.Disk > 1) && (TARGET.Cpus >= RequestCpus)"
        " && (TARGET.Disk >= RequestDisk))/"
    )


@settings(max_examples=30, deadline=None)
@given(gpus=st.integers(min_value=0, max_value=8), user=st.booleans())
def test_requirements_always_check_the_requests(
    tmp_path_factory: pytest.TempPathFactory, gpus: int, user: bool
) -> None:
    text = f"executable = x\nrequest_gpus = {gpus}\n"
    if user:
        text += 'requirements = OpSys == "LINUX"\n'
    job = one(text + "queue\n", tmp_path_factory.getbasetemp())
    req = job["Requirements"]
    for clause in (
        "TARGET.Memory >= RequestMemory",
        "TARGET.Cpus >= RequestCpus",
        "TARGET.Disk >= RequestDisk",
    ):
        assert clause in req
    assert ("TARGET.Gpus >= RequestGpus" in req) == (gpus > 0)
    assert ('(OpSys == "LINUX")' in req) == user


# ------------------------------------------------------------------------- macros


def test_user_macros_defaults_and_lazy_expansion(tmp_path: Path) -> None:
    text = """
outdir    = results
Output    = $(OutDir)/$(name).$(Process).out
Error     = $(outdir)/$(missing:default).err
executable = /bin/echo
arguments = $(DOLLAR)HOME $(greeting:hello there)
name      = job
queue
"""
    job = one(text, tmp_path)
    assert job["Out"] == "results/job.0.out"
    assert job["Err"] == "results/default.err"
    assert job["Args"] == "$HOME hello there"


def test_macros_extend_their_own_earlier_value(tmp_path: Path) -> None:
    text = """
executable = x
opts = -a
opts = $(opts) -b
opts = -z $(opts)
arguments = $(opts)
queue
"""
    assert one(text, tmp_path)["Args"] == "-z -a -b"


def test_requirements_can_be_built_up_with_self_reference(tmp_path: Path) -> None:
    text = (
        'executable = x\nrequirements = OpSys == "LINUX"\n'
        'requirements = $(requirements) && Arch == "X86_64"\nqueue\n'
    )
    assert one(text, tmp_path)["Requirements"].startswith(
        '/Expr((OpSys == "LINUX" && Arch == "X86_64") && '
    )


def test_env_int_and_choice_functions(tmp_path: Path) -> None:
    text = """
executable = x
output = $ENV(HOME)/out.$INT(Process,%03d)
error = $ENV(NOPE:/tmp)/err
arguments = $CHOICE(Process, red, green, blue) $REAL(Process,%.1f)
queue 3
"""
    jobs = expand(text, tmp_path, env={"HOME": "/home/alice"})
    assert [j["Out"] for j in jobs] == [f"/home/alice/out.00{p}" for p in range(3)]
    assert jobs[0]["Err"] == "/tmp/err"
    assert [j["Args"] for j in jobs] == ["red 0.0", "green 1.0", "blue 2.0"]


def test_command_names_are_case_insensitive_and_macros_too(tmp_path: Path) -> None:
    text = "EXECUTABLE = /bin/x\nRequest_CPUs = 2\nARGUMENTS = $(request_cpus) $(Executable)\n"
    text += "Queue\n"
    job = one(text, tmp_path)
    assert (job["Cmd"], job["RequestCpus"], job["Args"]) == ("/bin/x", 2, "2 /bin/x")


def test_submit_file_macro(tmp_path: Path) -> None:
    job = one("executable = x\narguments = $(SUBMIT_FILE)\nqueue\n", tmp_path)
    assert job["Args"] == "job.sub"


# ------------------------------------------------------------------------- syntax


def test_continuation_lines_comments_and_multiline_values(tmp_path: Path) -> None:
    text = """# comment
executable = /bin/echo
arguments = a \\
# a comment inside a continuation is skipped
  b \\
  c
periodic_remove @=END
  (JobStatus == 5) &&
  (time() - EnteredCurrentStatus > 600)
@END
queue
"""
    job = one(text, tmp_path)
    assert job_argv(job) == ["a", "b", "c"]
    assert job["PeriodicRemove"] == (
        "/Expr((JobStatus == 5) &&\n  (time() - EnteredCurrentStatus > 600))/"
    )


def test_custom_attributes_literals_and_expressions(tmp_path: Path) -> None:
    text = """
executable = x
+Str = "text"
+Num = 3
+Float = 2.5
+Flag = false
+Undef = undefined
MY.Expr = Memory * 2
+PerJob = "job-$(Process)"
+Rank2 = $(Process) + 1
queue 2
"""
    jobs = expand(text, tmp_path)
    first = jobs[0]
    assert (first["Str"], first["Num"], first["Float"], first["Flag"]) == ("text", 3, 2.5, False)
    assert jobs[0]["Undef"] is None
    assert jobs[0]["Expr"] == "/Expr(Memory * 2)/"
    assert [j["PerJob"] for j in jobs] == ["job-0", "job-1"]
    assert [j["Rank2"] for j in jobs] == ["/Expr(0 + 1)/", "/Expr(1 + 1)/"]


def test_custom_attribute_overrides_a_command_attribute_case_blind(tmp_path: Path) -> None:
    text = "executable = x\nrequest_memory = $(Process)G\n+requestmemory = 4096\nqueue 2\n"
    jobs = expand(text, tmp_path)
    for job in jobs:
        assert job["requestmemory"] == 4096
        assert "RequestMemory" not in job


# --------------------------------------------------------------------- policy & misc


def test_hold_at_submit(tmp_path: Path) -> None:
    job = one("executable = x\nhold = true\nqueue\n", tmp_path)
    assert (job["JobStatus"], job["HoldReasonCode"], job["HoldReasonSubCode"]) == (5, 15, 0)
    assert "hold" in job["HoldReason"]


def test_max_retries_defines_on_exit_remove(tmp_path: Path) -> None:
    job = one("executable = x\nmax_retries = 3\nsuccess_exit_code = 2\nqueue\n", tmp_path)
    assert job["MaxRetries"] == 3
    assert job["JobSuccessExitCode"] == 2
    assert job["OnExitRemove"] == (
        "/Expr((ExitBySignal =!= true && ExitCode =?= 2) || (NumJobStarts > MaxRetries))/"
    )
    job = one("executable = x\nmax_retries = 3\non_exit_remove = ExitCode == 0\nqueue\n", tmp_path)
    assert job["OnExitRemove"] == "/Expr(ExitCode == 0)/"


def test_accounting_group_user(tmp_path: Path) -> None:
    text = "executable = x\naccounting_group = group_cms.prod\naccounting_group_user = bob\n"
    job = one(text + "queue\n", tmp_path)
    assert (job["AcctGroup"], job["AcctGroupUser"], job["AccountingGroup"]) == (
        "group_cms.prod",
        "bob",
        "group_cms.prod.bob",
    )


def test_harmless_commands_are_accepted(tmp_path: Path) -> None:
    text = """
universe = Vanilla
executable = x
notification = Complete
notify_user = alice@example.org
stream_output = true
stream_error = false
copy_to_spool = false
transfer_executable = false
concurrency_limits = DB_LIMIT:2
queue
"""
    job = one(text, tmp_path)
    assert job["JobNotification"] == 2
    assert job["NotifyUser"] == "alice@example.org"
    assert (job["StreamOut"], job["StreamErr"], job["TransferExecutable"]) == (True, False, False)
    assert job["ConcurrencyLimits"] == "db_limit:2"
    assert "copy_to_spool" not in {k.lower() for k in job}


def test_custom_attribute_overrides_per_job_arguments(tmp_path: Path) -> None:
    jobs = expand("executable = x\narguments = $(Process)\n+Args = \"fixed\"\nqueue 2\n", tmp_path)
    assert [j["Args"] for j in jobs] == ["fixed", "fixed"]
    jobs = expand("executable = x\narguments = $(Process)\n+Other = 1\nqueue 2\n", tmp_path)
    assert [j["Args"] for j in jobs] == ["0", "1"]
