"""Bad submit descriptions: one clear error naming the file and line, and no jobs at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from gwms.errors import GwmsError
from gwms.pool.schedd.submit import SubmitError, expand_submit, parse_submit

CASES = [
    pytest.param(
        "executable = x\n\n# memory\nreqest_memory = 2GB\nqueue\n",
        4,
        'unknown submit command "reqest_memory" (did you mean "request_memory"?)',
        id="misspelt-command",
    ),
    pytest.param(
        "executable = x\nfrobnicate = 3\nqueue\n",
        2,
        'unknown submit command "frobnicate" '
        "(a user macro must be used somewhere as $(frobnicate))",
        id="unused-unknown-name",
    ),
    pytest.param(
        "executable = x\nrequest_memory = 2 XB\nqueue\n",
        2,
        'unknown unit "XB" in request_memory',
        id="bad-unit",
    ),
    pytest.param(
        "executable = x\nrequest_disk = 10 lbs\nqueue\n",
        2,
        'unknown unit "lbs" in request_disk',
        id="bad-disk-unit",
    ),
    pytest.param(
        "executable = x\nrequirements = (Memory > 100) && && (Cpus > 1)\nqueue\n",
        2,
        "bad requirements expression '(Memory > 100) && && (Cpus > 1)': unexpected '&&'",
        id="bad-requirements",
    ),
    pytest.param(
        "executable = x\nperiodic_remove = (JobStatus == 5\nqueue\n",
        2,
        "bad periodic_remove expression '(JobStatus == 5': ",
        id="bad-policy-expression",
    ),
    pytest.param(
        'executable = x\n+Site = "T2_US\nqueue\n',
        2,
        "bad expression for Site '\"T2_US': unterminated ",
        id="bad-custom-attribute",
    ),
    pytest.param(
        "executable = x\nqueue in (\n a\n b\n",
        2,
        'unterminated queue list: the "(" on line 2 is never closed',
        id="unterminated-in-list",
    ),
    pytest.param(
        "executable = x\nqueue a, b from (\n1 2\n",
        2,
        "unterminated queue list",
        id="unterminated-from-rows",
    ),
    pytest.param(
        "executable = x\narguments = $(Itme)\nqueue in (a b)\n",
        2,
        "undefined macro $(Itme)",
        id="unknown-macro",
    ),
    pytest.param(
        "executable = x\noutput = out.$(Item)\nqueue 3\n",
        2,
        "undefined macro $(Item) ($(Item) is set only by a queue statement with in/from/matching)",
        id="item-without-items",
    ),
    pytest.param(
        "executable = x\nqueue $(N)\n",
        2,
        "undefined macro $(N)",
        id="unknown-macro-in-queue",
    ),
    pytest.param(
        "arguments = 1\n\nqueue\n",
        3,
        'queue with no executable: set "executable = ..." before this queue',
        id="no-executable",
    ),
    pytest.param(
        "executable = x\nqueue a from\n",
        2,
        'missing file name (or "( rows )") after "from"',
        id="missing-from-file",
    ),
    pytest.param(
        "executable = x\nqueue a from missing.txt\n",
        2,
        'cannot read queue items: no file "missing.txt"',
        id="from-file-not-found",
    ),
    pytest.param(
        "executable = x\nqueue in\n",
        2,
        'missing list of items after "in"',
        id="missing-in-list",
    ),
    pytest.param(
        "executable = x\nqueue matching files\n",
        2,
        'missing file pattern after "matching"',
        id="missing-glob",
    ),
    pytest.param(
        "executable = x\nqueue a from gen.sh |\n",
        2,
        "queue ... from a command (FILE|) is not supported",
        id="from-command",
    ),
    pytest.param(
        "executable = x\nqueue Item in [3:1:-1] (a b c)\n",
        2,
        "the step must be positive",
        id="negative-slice-step",
    ),
    pytest.param(
        "executable = x\nqueue many\n",
        2,
        'the queue count must be a whole number, not "many"',
        id="bad-count",
    ),
    pytest.param(
        "universe = docker\nexecutable = x\nqueue\n",
        1,
        'universe "docker" is not supported: gwms runs vanilla universe jobs only',
        id="other-universe",
    ),
    pytest.param(
        "executable = x\ndocker_image = centos:7\nqueue\n",
        2,
        "docker_image: the docker universe is not supported",
        id="unsupported-command",
    ),
    pytest.param(
        "executable = x\nrequest_cpus = 2 cores\nqueue\n",
        2,
        'request_cpus must be a whole number, not "2 cores"',
        id="bad-cpus",
    ),
    pytest.param(
        "executable = x\nshould_transfer_files = sometimes\nqueue\n",
        2,
        'should_transfer_files must be YES, NO or IF_NEEDED, not "sometimes"',
        id="bad-transfer-mode",
    ),
    pytest.param(
        "executable = x\nshould_transfer_files = NO\ntransfer_input_files = a.txt\nqueue\n",
        3,
        "transfer_input_files needs should_transfer_files = YES or IF_NEEDED, not NO",
        id="transfer-with-no",
    ),
    pytest.param(
        'executable = x\narguments = "one \'two"\nqueue\n',
        2,
        "arguments: unterminated single quote",
        id="bad-new-arguments",
    ),
    pytest.param(
        'executable = x\nenvironment = "A=1 B"\nqueue\n',
        2,
        'environment: entry "B" is not of the form NAME=value',
        id="bad-environment",
    ),
    pytest.param(
        "executable = x\na = $(b)\nb = $(a)\narguments = $(a)\nqueue\n",
        4,
        "macro refers to itself: $(a) -> $(b) -> $(a)",
        id="macro-cycle",
    ),
    pytest.param(
        "executable = x\n+ProcId = 7\nqueue\n",
        2,
        "ProcId cannot be set in a submit file: gwms sets it",
        id="protected-attribute",
    ),
    pytest.param(
        "executable = x\nProcess = 3\nqueue\n",
        2,
        "Process is set by gwms and cannot be redefined",
        id="redefine-process",
    ),
    pytest.param(
        "executable = x\nqueue Process in (a)\n",
        2,
        '"Process" cannot be a queue variable: gwms sets it',
        id="reserved-queue-variable",
    ),
    pytest.param(
        "executable = x\nthis line has no equals sign\nqueue\n",
        2,
        'expected "command = value" or "queue ...", got "this line has no equals sign"',
        id="not-a-statement",
    ),
    pytest.param(
        "include : common.sub\nexecutable = x\nqueue\n",
        1,
        '"include" statements are not supported in gwms submit files',
        id="include",
    ),
    pytest.param(
        "executable = x\nrequirements @=END\nMemory > 1\n",
        2,
        'unterminated multi-line value: no "@END" line',
        id="unterminated-heredoc",
    ),
    pytest.param(
        "executable = x\naccounting_group_user = bob\nqueue\n",
        2,
        "accounting_group_user needs accounting_group",
        id="group-user-without-group",
    ),
    pytest.param(
        "executable = x\npriority = high\nqueue\n",
        2,
        'priority must be a whole number, not "high"',
        id="bad-priority",
    ),
    pytest.param(
        "executable = x\narguments = $ENV(NOT_SET_ANYWHERE)\nqueue\n",
        2,
        "$ENV(NOT_SET_ANYWHERE): the environment variable is not set",
        id="env-not-set",
    ),
    pytest.param(
        "executable = x\narguments = $(oops\nqueue\n",
        2,
        'unterminated macro reference "$(oops" (missing ")")',
        id="unterminated-macro",
    ),
]


@pytest.mark.parametrize(("text", "line", "reason"), CASES)
def test_errors_name_the_file_line_and_problem(
    tmp_path: Path, text: str, line: int, reason: str
) -> None:
    with pytest.raises(SubmitError) as info:
        expand_submit(
            parse_submit(text, source="job.sub"),
            cluster_id=1,
            owner="alice",
            now=0,
            base_dir=tmp_path,
            env={},
        )
    err = info.value
    assert isinstance(err, GwmsError)
    assert (err.source, err.line) == ("job.sub", line)
    assert reason in err.reason
    assert str(err).startswith(f"job.sub, line {line}: ")


def test_no_queue_statement() -> None:
    with pytest.raises(SubmitError) as info:
        parse_submit("executable = x\n", source="empty.sub")
    assert str(info.value) == "empty.sub: no queue statement: nothing to submit"
    assert info.value.line is None


def test_a_bad_value_in_one_job_fails_the_whole_submit(tmp_path: Path) -> None:
    text = "executable = x\nrequest_memory = $(m)\nqueue m in (1G, 2G, 3Q, 4G)\n"
    with pytest.raises(SubmitError) as info:
        desc = parse_submit(text, source="j.sub")
        expand_submit(desc, cluster_id=5, owner="a", now=0, base_dir=tmp_path)
    assert str(info.value) == (
        'j.sub, line 2: unknown unit "Q" in request_memory (use K, M, G or T, optionally with B)'
        " (job 5.2)"
    )


def test_an_error_in_a_later_queue_statement_fails_the_whole_submit(tmp_path: Path) -> None:
    text = "executable = x\nqueue 100\narguments = \"unbalanced 'quote\"\nqueue 1\n"
    desc = parse_submit(text, source="j.sub")
    with pytest.raises(SubmitError, match="j.sub, line 3: arguments: unterminated single quote"):
        expand_submit(desc, cluster_id=5, owner="a", now=0, base_dir=tmp_path)


def test_an_unknown_macro_used_only_in_an_unused_macro_is_no_error(tmp_path: Path) -> None:
    text = "executable = x\nunused_helper = $(nowhere)\narguments = $(unused_helper:)\nqueue\n"
    with pytest.raises(SubmitError, match="undefined macro \\$\\(nowhere\\)"):
        expand_submit(parse_submit(text), cluster_id=1, owner="a", now=0, base_dir=tmp_path)
    # ...but a macro that no job uses is never expanded:
    text = "executable = x\nhelper = $(nowhere)\nother = $(helper)\narguments = 1\nqueue\n"
    with pytest.raises(SubmitError, match='unknown submit command "other"'):
        parse_submit(text)


def test_a_submit_error_without_a_location() -> None:
    err = SubmitError("cannot read submit file job.sub: No such file or directory")
    assert str(err) == "cannot read submit file job.sub: No such file or directory"
    assert (err.source, err.line) == ("", None)
    assert isinstance(err, GwmsError)


@pytest.mark.parametrize(
    ("value", "column"),
    [("(Memory > 100) && && (Cpus > 1)", 19), ("Memory >= 10 Cpus", 14), ("a $ b", 3)],
)
def test_expression_errors_say_where(tmp_path: Path, value: str, column: int) -> None:
    text = f"executable = x\nrequirements = {value}\nqueue\n"
    with pytest.raises(SubmitError) as info:
        expand_submit(parse_submit(text), cluster_id=1, owner="a", now=0, base_dir=tmp_path)
    assert info.value.line == 2
    assert info.value.reason.endswith(f"at column {column}")
