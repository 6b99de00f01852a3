"""Arguments and environment of job ads, as the starter reads them (gwms.glidein.quoting).

The execute side must read exactly what the submit side wrote: the properties compare
with the schedd's own parser (gwms.pool.schedd.submit_quoting).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms.glidein.errors import JobSpecError
from gwms.glidein.quoting import (
    job_arguments,
    job_environment,
    parse_args_v1,
    parse_args_v2,
    parse_env_v1,
    parse_env_v2,
    split_v2,
)
from gwms.pool.schedd import submit_quoting as submit
from gwms.pool.schedd.submit_errors import SubmitValueError

words = st.text(alphabet=st.sampled_from(list("ab '\"\t=\\x$")), max_size=8)
raw_texts = st.text(alphabet=st.sampled_from(list("ab '\t\"=")), max_size=20)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)


@given(st.lists(words, max_size=6))
def test_arguments_written_by_submit_read_back(args: list[str]) -> None:
    raw = submit.format_args_raw_v2(args)
    assert parse_args_v2(raw) == args


@given(raw_texts)
def test_split_agrees_with_the_schedd_parser(raw: str) -> None:
    try:
        expected = submit.split_raw_v2(raw)
    except SubmitValueError:
        with pytest.raises(JobSpecError):
            split_v2(raw)
        return
    assert split_v2(raw) == expected


@given(st.dictionaries(names, words, max_size=5))
def test_environment_written_by_submit_read_back(env: dict[str, str]) -> None:
    raw = submit.format_env_raw_v2(env)
    assert parse_env_v2(raw) == env


@given(st.text(alphabet=st.sampled_from(list('ab \t\\"')), max_size=16))
def test_old_arguments_agree_with_the_schedd_parser(text: str) -> None:
    assert parse_args_v1(text) == submit.parse_args_old(text)


def test_examples() -> None:
    assert parse_args_v2("one 'two words' three") == ["one", "two words", "three"]
    assert parse_args_v2("'' x") == ["", "x"]
    assert parse_args_v2("'it''s'") == ["it's"]
    assert parse_args_v2('say "hi"') == ["say", '"hi"']
    assert parse_env_v2("A=1 B='x y' C=") == {"A": "1", "B": "x y", "C": ""}
    assert parse_env_v1("A=1;B=x y;") == {"A": "1", "B": "x y"}
    assert parse_args_v1('a  b\\"c') == ["a", 'b"c']


def test_errors_name_the_problem() -> None:
    with pytest.raises(JobSpecError, match="unterminated single quote"):
        parse_args_v2("a 'b")
    with pytest.raises(JobSpecError, match="NAME=value"):
        parse_env_v2("NOEQUALS")


def test_job_ad_lookup_is_case_blind_and_prefers_new_syntax() -> None:
    assert job_arguments({"arguments": "'a b'", "Args": "c d"}) == ["a b"]
    assert job_arguments({"ARGS": "c d"}) == ["c", "d"]
    assert job_arguments({}) == []
    assert job_environment({"environment": "X='1 2'", "Env": "Y=3"}) == {"X": "1 2"}
    assert job_environment({"env": "Y=3"}) == {"Y": "3"}
