"""The quoting rules of ``arguments`` and ``environment`` (old and new syntax)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms.pool.schedd.submit_errors import SubmitValueError
from gwms.pool.schedd.submit_quoting import (
    arguments_attr,
    format_args_new,
    format_args_raw_v2,
    format_env_new,
    format_env_raw_v2,
    is_new_syntax,
    job_argv,
    job_environment,
    parse_args_new,
    parse_args_old,
    parse_args_raw_v2,
    parse_env_new,
    parse_env_old,
    parse_environment,
)

# Anything that can sit on one line of a submit file.
line_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00"),
    max_size=20,
)
env_name = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)


# ----------------------------------------------------------------------- HTCondor's examples


def test_new_syntax_examples_from_the_manual() -> None:
    assert parse_args_new('"3 simple arguments"') == ["3", "simple", "arguments"]
    assert parse_args_new("\"one 'two with spaces' 3\"") == ["one", "two with spaces", "3"]
    assert parse_args_new("\"one \"\"two\"\" 'spacey ''quoted'' argument'\"") == [
        "one",
        '"two"',
        "spacey 'quoted' argument",
    ]


def test_old_syntax_example_from_the_manual() -> None:
    assert parse_args_old("one \\\"two\\\" 'three'") == ["one", '"two"', "'three'"]


def test_new_syntax_backslash_is_literal_and_tabs_separate() -> None:
    assert parse_args_new('"C:\\dir\\file\targ2"') == ["C:\\dir\\file", "arg2"]


def test_empty_argument_and_quotes_inside_a_word() -> None:
    assert parse_args_new("\"a '' b\"") == ["a", "", "b"]
    assert parse_args_new("\"x'y z'w\"") == ["xy zw"]


def test_unterminated_single_quote_is_an_error() -> None:
    with pytest.raises(SubmitValueError, match="unterminated single quote"):
        parse_args_new("\"one 'two\"")


def test_lone_double_quote_inside_new_syntax_is_an_error() -> None:
    with pytest.raises(SubmitValueError, match="must be doubled"):
        parse_args_new('"one " two"')


def test_arguments_attr_picks_the_attribute_by_syntax() -> None:
    assert arguments_attr("-v --out=x.txt") == ("Args", "-v --out=x.txt")
    assert arguments_attr("\"-v 'a b'\"") == ("Arguments", "-v 'a b'")
    assert arguments_attr('"say ""hi"""') == ("Arguments", 'say "hi"')


def test_is_new_syntax() -> None:
    assert is_new_syntax('"a b"')
    assert is_new_syntax('  "a"  ')
    assert not is_new_syntax("a b")
    assert not is_new_syntax('\\"a\\"')
    assert not is_new_syntax('"')


def test_job_argv_reads_either_attribute_case_blind() -> None:
    assert job_argv({"arguments": "a 'b c'"}) == ["a", "b c"]
    assert job_argv({"Args": "x \\\"y\\\""}) == ["x", '"y"']
    assert job_argv({"Arguments": "new", "Args": "old"}) == ["new"]
    assert job_argv({}) == []


# ---------------------------------------------------------------------------- environment


def test_environment_new_syntax_example_from_the_manual() -> None:
    env = parse_env_new("\"one=1 two=\"\"2\"\" three='spacey ''quoted'' value'\"")
    assert env == {"one": "1", "two": '"2"', "three": "spacey 'quoted' value"}


def test_environment_old_syntax_example_from_the_manual() -> None:
    env = parse_env_old("one=1;two=2;three=\"quotes have no 'special' meaning\"")
    assert env == {"one": "1", "two": "2", "three": "\"quotes have no 'special' meaning\""}


def test_environment_entries_need_a_name_and_equals() -> None:
    with pytest.raises(SubmitValueError, match="NAME=value"):
        parse_environment('"A=1 B"')
    with pytest.raises(SubmitValueError, match="NAME=value"):
        parse_environment("A=1;=2")


def test_environment_values_may_be_empty_or_hold_equals() -> None:
    assert parse_environment('"A= B=x=y"') == {"A": "", "B": "x=y"}
    assert format_env_raw_v2({"A": "", "B": "x=y", "C": "p q"}) == "A= B=x=y C='p q'"


def test_job_environment_reads_either_attribute() -> None:
    assert job_environment({"Environment": "A=1 B='x y'"}) == {"A": "1", "B": "x y"}
    assert job_environment({"env": "A=1;B=2"}) == {"A": "1", "B": "2"}
    assert job_environment({}) == {}


# ----------------------------------------------------------------------------- properties


@given(st.lists(line_text, max_size=8))
def test_new_syntax_arguments_round_trip(args: list[str]) -> None:
    submit_value = format_args_new(args)
    assert is_new_syntax(submit_value)
    assert parse_args_new(submit_value) == args
    assert parse_args_raw_v2(format_args_raw_v2(args)) == args


plain_word = st.from_regex(r'[^\s"\\]+', fullmatch=True).filter(lambda w: "\x00" not in w)


@given(st.lists(plain_word, max_size=8))
def test_old_syntax_words_split_on_spaces(words: list[str]) -> None:
    assert parse_args_old(" ".join(words)) == words
    quoted = [w + '"' for w in words]
    assert parse_args_old(" ".join(w.replace('"', '\\"') for w in quoted)) == quoted


@given(st.dictionaries(env_name, line_text, max_size=6))
def test_new_syntax_environment_round_trip(env: dict[str, str]) -> None:
    assert parse_env_new(format_env_new(env)) == env
    assert job_environment({"Environment": format_env_raw_v2(env)}) == env


@given(st.text(alphabet="ab '\t\"", max_size=14))
def test_arguments_attr_accepts_exactly_what_parses(inner: str) -> None:
    value = f'"{inner}"'
    try:
        expected = parse_args_new(value)
    except SubmitValueError:
        with pytest.raises(SubmitValueError):
            arguments_attr(value)
        return
    attr, raw = arguments_attr(value)
    assert attr == "Arguments"
    assert parse_args_raw_v2(raw) == expected
