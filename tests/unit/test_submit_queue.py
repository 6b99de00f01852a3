"""Every form of the ``queue`` statement yields exactly the expected jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.pool.schedd.submit import (
    QueueStatement,
    SubmitError,
    expand_submit,
    parse_submit,
)
from gwms.pool.schedd.submit_quoting import job_argv

CLUSTER = 42


def expand(text: str, base_dir: Path, **kw: Any) -> list[dict[str, Any]]:
    desc = parse_submit(text, source="job.sub")
    return expand_submit(
        desc, cluster_id=CLUSTER, owner="alice", now=1_700_000_000.7, base_dir=base_dir, **kw
    )


def argv(jobs: list[dict[str, Any]]) -> list[list[str]]:
    return [job_argv(j) for j in jobs]


def test_plain_queue_is_one_job(tmp_path: Path) -> None:
    jobs = expand("executable = /bin/true\nqueue\n", tmp_path)
    assert [(j["ClusterId"], j["ProcId"]) for j in jobs] == [(CLUSTER, 0)]


def test_queue_n_numbers_procs_and_steps(tmp_path: Path) -> None:
    text = """
executable = /bin/echo
arguments  = $(Cluster).$(Process) step=$(Step) idx=$(ItemIndex) row=$(Row) $(ClusterId).$(ProcId)
queue 3
"""
    jobs = expand(text, tmp_path)
    assert [j["ProcId"] for j in jobs] == [0, 1, 2]
    assert argv(jobs) == [
        [f"{CLUSTER}.{p}", f"step={p}", "idx=0", "row=0", f"{CLUSTER}.{p}"] for p in range(3)
    ]


def test_queue_zero_queues_nothing(tmp_path: Path) -> None:
    assert expand("executable = /bin/true\nqueue 0\n", tmp_path) == []


def test_queue_count_from_a_macro_or_expression(tmp_path: Path) -> None:
    assert len(expand("executable = x\nN = 4\nqueue $(N)\n", tmp_path)) == 4
    assert len(expand("executable = x\nqueue 2 * 3\n", tmp_path)) == 6


def test_queue_in_list_comma_or_space_separated(tmp_path: Path) -> None:
    text = "executable = /bin/echo\narguments = $(Item) $(ItemIndex)\nqueue in (a, b c,d)\n"
    assert argv(expand(text, tmp_path)) == [["a", "0"], ["b", "1"], ["c", "2"], ["d", "3"]]


def test_queue_in_list_without_parentheses(tmp_path: Path) -> None:
    text = "executable = /bin/echo\narguments = $(Item)\nqueue Item in A, B, C\n"
    assert argv(expand(text, tmp_path)) == [["A"], ["B"], ["C"]]


def test_queue_n_var_in_multiline_list(tmp_path: Path) -> None:
    text = """
executable = /bin/echo
arguments  = $(color) $(Step) $(Row)
queue 2 color in (
    red, green
    # a comment inside the list
    blue
)
"""
    jobs = expand(text, tmp_path)
    assert [j["ProcId"] for j in jobs] == list(range(6))
    assert argv(jobs) == [
        ["red", "0", "0"],
        ["red", "1", "0"],
        ["green", "0", "1"],
        ["green", "1", "1"],
        ["blue", "0", "2"],
        ["blue", "1", "2"],
    ]


def test_queue_from_inline_rows_with_several_variables(tmp_path: Path) -> None:
    text = """
executable = /bin/echo
arguments  = "$(x) $(y) '$(rest)'"
queue x, y, rest from (
    1, 2, the rest of the line
    3 4 5
    # skipped
    6
)
"""
    assert argv(expand(text, tmp_path)) == [
        ["1", "2", "the rest of the line"],
        ["3", "4", "5"],
        ["6", ""],  # y is empty (no argument), rest is quoted (one empty argument)
    ]


def test_queue_arguments_from_rows_like_the_manual(tmp_path: Path) -> None:
    text = """
Executable     = foo
Universe       = vanilla
Output  = foo.out$(Process)
Error   = foo.err$(Process)
Queue Arguments From (
  15 2000
  30 2000
  45 6000
)
"""
    jobs = expand(text, tmp_path)
    assert [j["Args"] for j in jobs] == ["15 2000", "30 2000", "45 6000"]
    assert [j["Out"] for j in jobs] == ["foo.out0", "foo.out1", "foo.out2"]
    assert [j["Err"] for j in jobs] == ["foo.err0", "foo.err1", "foo.err2"]


def test_queue_from_file(tmp_path: Path) -> None:
    (tmp_path / "params.txt").write_text("# name size\nalpha 10\n\nbeta 20 extra\n")
    text = """
executable = run.sh
arguments  = $(name) $(size)
queue name, size from params.txt
"""
    assert argv(expand(text, tmp_path)) == [["alpha", "10"], ["beta", "20", "extra"]]


def test_queue_from_file_named_by_a_macro(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "list").write_text("a\nb\n")
    text = "executable = x\ndir = sub\nqueue from $(dir)/list\n"
    assert [j["ProcId"] for j in expand(text, tmp_path)] == [0, 1]


def test_queue_matching_files_dirs_and_both(tmp_path: Path) -> None:
    for name in ("b.dat", "a.dat", "c.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "d.dat").mkdir()
    base = "executable = /bin/echo\narguments = $(Item)\n"
    assert argv(expand(base + "queue matching *.dat\n", tmp_path)) == [
        ["a.dat"],
        ["b.dat"],
        ["d.dat"],
    ]
    assert argv(expand(base + "queue matching files *.dat\n", tmp_path)) == [["a.dat"], ["b.dat"]]
    assert argv(expand(base + "queue matching dirs *.dat\n", tmp_path)) == [["d.dat"]]
    assert argv(expand(base + "queue matching files *.txt *.dat\n", tmp_path)) == [
        ["c.txt"],
        ["a.dat"],
        ["b.dat"],
    ]


def test_queue_matching_with_a_variable_and_filename_functions(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    for name in ("run1.sh", "run2.sh"):
        (tmp_path / "in" / name).write_text("#!/bin/sh\n")
    text = """
executable = $(script)
output     = $Fn(script).out
error      = $Fnx(script).err
arguments  = $Fp(script) $BASENAME(script)
queue script matching files (in/*.sh)
"""
    jobs = expand(text, tmp_path)
    assert [j["Cmd"] for j in jobs] == [str(tmp_path / "in/run1.sh"), str(tmp_path / "in/run2.sh")]
    assert [j["Out"] for j in jobs] == ["run1.out", "run2.out"]
    assert [j["Err"] for j in jobs] == ["run1.sh.err", "run2.sh.err"]
    assert argv(jobs) == [["in/", "run1.sh"], ["in/", "run2.sh"]]


def test_queue_matching_nothing_queues_nothing(tmp_path: Path) -> None:
    assert expand("executable = x\nqueue matching *.none\n", tmp_path) == []


@pytest.mark.parametrize(
    ("slice_text", "expected"),
    [
        ("[1:4:2]", [["b", "1"], ["d", "3"]]),
        ("[:2]", [["a", "0"], ["b", "1"]]),
        ("[3:]", [["d", "3"], ["e", "4"]]),
        ("[-2:]", [["d", "3"], ["e", "4"]]),
        ("[::3]", [["a", "0"], ["d", "3"]]),
    ],
)
def test_queue_in_with_a_slice_keeps_item_indexes(
    tmp_path: Path, slice_text: str, expected: list[list[str]]
) -> None:
    text = "executable = x\narguments = $(Item) $(ItemIndex)\n"
    text += f"queue Item in {slice_text} (a b c d e)\n"
    assert argv(expand(text, tmp_path)) == expected


def test_slices_on_from_and_matching(tmp_path: Path) -> None:
    for name in ("1.in", "2.in", "3.in"):
        (tmp_path / name).write_text("")
    text = "executable = x\narguments = $(Item)\nqueue matching files [1:] *.in\n"
    assert argv(expand(text, tmp_path)) == [["2.in"], ["3.in"]]
    text = "executable = x\narguments = $(v)\nqueue v from [0:1] (\nfirst\nsecond\n)\n"
    assert argv(expand(text, tmp_path)) == [["first"]]


def test_several_queue_statements_use_the_settings_at_that_point(tmp_path: Path) -> None:
    text = """
executable     = /bin/sleep
arguments      = 1
request_memory = 1G
queue 2
arguments      = 2
request_memory = 2G
queue
executable     = /bin/true
queue name in (x y)
"""
    jobs = expand(text, tmp_path)
    assert [j["ProcId"] for j in jobs] == [0, 1, 2, 3, 4]
    assert [j["Args"] for j in jobs] == ["1", "1", "2", "2", "2"]
    assert [j["RequestMemory"] for j in jobs] == [1024, 1024, 2048, 2048, 2048]
    assert [j["Cmd"] for j in jobs] == ["/bin/sleep"] * 3 + ["/bin/true"] * 2
    assert {j["ClusterId"] for j in jobs} == {CLUSTER}


def test_queue_variables_end_with_their_queue_statement(tmp_path: Path) -> None:
    text = "executable = x\narguments = $(v:none)\nqueue v in (a)\nqueue\n"
    assert argv(expand(text, tmp_path)) == [["a"], ["none"]]


def test_parse_records_the_queue_statements() -> None:
    desc = parse_submit(
        "executable = x\nqueue 2 a, b from [1:] list.txt\nqueue files matching dirs run*\n"
    )
    assert desc.queue_statements == (
        QueueStatement(
            2, "from", "2", ("a", "b"), from_file="list.txt", item_slice=(1, None, None)
        ),
        QueueStatement(3, "matching", None, ("files",), patterns="run*", match_kind="dirs"),
    )


def test_unknown_command_after_an_earlier_good_queue_queues_nothing(tmp_path: Path) -> None:
    text = "executable = x\nqueue 5\nrequest_memory = 2 lbs\nqueue 5\n"
    with pytest.raises(SubmitError, match="line 3"):
        expand(text, tmp_path)


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(min_value=0, max_value=6),
    items=st.lists(st.from_regex(r"[a-z0-9_.]{1,8}", fullmatch=True), max_size=6),
    form=st.sampled_from(["in", "from"]),
)
def test_job_count_is_count_times_items(
    tmp_path_factory: pytest.TempPathFactory, count: int, items: list[str], form: str
) -> None:
    base = tmp_path_factory.getbasetemp()
    if form == "in":
        queue = f"queue {count} v in ({', '.join(items)})"
    else:
        queue = f"queue {count} v from (\n" + "\n".join(items) + "\n)"
    text = f"executable = x\narguments = $(v) $(Step)\n{queue}\n"
    if form == "in" and not items:
        text = f"executable = x\narguments = $(v:) $(Step)\nqueue {count} v in ()\n"
    jobs = expand(text, base)
    assert len(jobs) == count * len(items)
    assert [j["ProcId"] for j in jobs] == list(range(len(jobs)))
    expected = [[item, str(step)] for item in items for step in range(count)]
    assert argv(jobs) == expected
