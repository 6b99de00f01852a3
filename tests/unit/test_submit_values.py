"""Values of submit commands: sizes with units, expressions and their JSON form."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms.pool import jobattrs
from gwms.pool.schedd import submit_values
from gwms.pool.schedd.submit_errors import SubmitValueError
from gwms.pool.schedd.submit_macros import filename_part
from gwms.pool.schedd.submit_values import (
    KIB,
    MIB,
    check_expr,
    expr_json,
    expr_text,
    parse_bool,
    parse_count,
    parse_quantity,
    referenced_attributes,
)

UNIT_BYTES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@pytest.mark.parametrize(
    ("text", "mib"),
    [
        ("2GB", 2048),
        ("512M", 512),
        ("512", 512),
        ("1.5G", 1536),
        ("1.5 gb", 1536),
        ("32 Mb", 32),
        ("1024K", 1),
        ("1025k", 2),  # rounds up
        ("1T", 1 << 20),
        ("0.5", 1),
        ("2 GiB", 2048),
    ],
)
def test_memory_sizes(text: str, mib: int) -> None:
    assert parse_quantity(text, base=MIB, what="request_memory") == mib


@pytest.mark.parametrize(
    ("text", "kib"),
    [("100", 100), ("1G", 1 << 20), ("10M", 10240), ("4096 KB", 4096), ("2t", 2 << 30)],
)
def test_disk_sizes(text: str, kib: int) -> None:
    assert parse_quantity(text, base=KIB, what="request_disk") == kib


@pytest.mark.parametrize("text", ["2 XB", "2GX", "10 bytes", "1.5 Gigs"])
def test_unknown_units_are_errors(text: str) -> None:
    with pytest.raises(SubmitValueError, match="unknown unit"):
        parse_quantity(text, base=MIB, what="request_memory")


def test_sizes_may_be_expressions() -> None:
    assert parse_quantity("2048 + 1024", base=MIB, what="m") == 3072
    expr = "ifThenElse(MemoryUsage > 1000, MemoryUsage * 2, 1000)"
    assert parse_quantity(expr, base=MIB, what="m") == f"/Expr({expr})/"
    with pytest.raises(SubmitValueError, match="neither a size"):
        parse_quantity("2 + ", base=MIB, what="request_memory")


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(["", "K", "KB", "M", "MB", "G", "GB", "T", "TB"]),
    st.booleans(),
    st.booleans(),
)
def test_value_times_unit_converts_exactly(
    number: int, unit: str, lower: bool, space: bool
) -> None:
    text = f"{number}{' ' if space else ''}{unit.lower() if lower else unit}"
    for base in (MIB, KIB):
        factor = UNIT_BYTES[unit[0]] if unit else base
        expected = math.ceil(Fraction(number * factor, base))
        assert parse_quantity(text, base=base, what="x") == expected


@given(st.decimals(min_value=0, max_value=10**4, places=3), st.sampled_from("KMGT"))
def test_fractional_sizes_round_up(number: object, unit: str) -> None:
    text = f"{number}{unit}"
    expected = math.ceil(Fraction(str(number)) * UNIT_BYTES[unit] / MIB)
    assert parse_quantity(text, base=MIB, what="x") == expected


def test_counts() -> None:
    assert parse_count("4", what="request_cpus") == 4
    assert parse_count("2 * 2", what="request_cpus") == 4
    assert parse_count("TARGET.Cpus", what="request_cpus") == "/Expr(TARGET.Cpus)/"
    with pytest.raises(SubmitValueError, match="negative"):
        parse_count("-1", what="request_cpus")
    with pytest.raises(SubmitValueError, match="whole number"):
        parse_count("2G", what="request_cpus")


def test_booleans() -> None:
    assert parse_bool("True", what="x") is True
    assert parse_bool("no", what="x") is False
    with pytest.raises(SubmitValueError, match="true or false"):
        parse_bool("maybe", what="x")


# ---------------------------------------------------------------------------- expressions


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3),
        ("-2", -2),
        ("2.5", 2.5),
        ("1e3", 1000.0),
        ("TRUE", True),
        ("false", False),
        ("undefined", None),
        ('"gwms"', "gwms"),
        ('"say \\"hi\\""', 'say "hi"'),
        ('"$$(Name)"', "$$(Name)"),
        ("Memory * 2", "/Expr(Memory * 2)/"),
        ('  OpSys == "LINUX"  ', '/Expr(OpSys == "LINUX")/'),
    ],
)
def test_expression_json_form(text: str, value: object) -> None:
    assert expr_json(text) == value


classad_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)


@given(st.one_of(st.integers(-(10**9), 10**9), st.booleans(), classad_text, st.none()))
def test_literal_json_round_trip(value: object) -> None:
    assert expr_json(expr_text(value)) == value


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("Memory > && Cpus > 1", 9),
        ("a + * b", 4),
        ("Memory >= 10 Cpus", 13),
        ("a > 1)", 5),
        ('x == "abc', 5),
        ("a >", 3),
        ("a $ b", 2),
    ],
)
def test_expression_errors_give_the_position(text: str, position: int) -> None:
    with pytest.raises(SubmitValueError) as info:
        check_expr(text)
    assert info.value.position == position
    reason = info.value.reason
    assert f"column {position + 1}" in reason or f"(column {position})" in reason


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("Memory > && Cpus > 1", 9, "unexpected '&&' at column 10"),
        ("(a > 1", 0, "unclosed '(' opened at column 1"),
        ("foo(1,", 3, "unclosed '('"),
        ('x == "abc', 5, "unterminated quoted string starting at column 6"),
        ("a >", 3, "the expression ends after '>'"),
        ("Memory >= 10 Cpus", 13, "unexpected 'Cpus' at column 14"),
        ("a ? b", 2, "near '?' at column 3"),
    ],
)
def test_local_error_positions_without_gwms_classads(
    monkeypatch: pytest.MonkeyPatch, text: str, position: int, words: str
) -> None:
    monkeypatch.setattr(submit_values, "_classads_locate", lambda _text: None)
    monkeypatch.setattr(submit_values, "_checked", {})
    with pytest.raises(SubmitValueError) as info:
        check_expr(text)
    assert info.value.position == position
    assert words in info.value.reason


def test_match_time_macros_are_valid_in_expressions() -> None:
    check_expr("$$(Memory) > 1024 && Name == \"$$(Name)\"")
    assert expr_json("$$([TARGET.Memory * 0.9])") == "/Expr($$([TARGET.Memory * 0.9]))/"


def test_referenced_attributes_skip_my_scope_and_strings() -> None:
    refs = referenced_attributes('TARGET.Memory > 10 && MY.Cpus > 1 && Disk > "Gpus"')
    assert refs == {"memory", "disk"}


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("n", "simulate"),
        ("x", ".exe"),
        ("nx", "simulate.exe"),
        ("p", "/tmp/dir/"),
        ("d", "dir/"),
        ("db", "dir"),
        ("xb", "exe"),
        ("q", '"/tmp/dir/simulate.exe"'),
        ("nqa", "'simulate'"),
        ("", "/tmp/dir/simulate.exe"),
    ],
)
def test_filename_functions(flags: str, expected: str) -> None:
    assert filename_part("/tmp/dir/simulate.exe", flags, "/base") == expected


def test_filename_full_path_is_relative_to_the_submit_dir() -> None:
    assert filename_part("in/a.txt", "f", "/base") == "/base/in/a.txt"
    assert filename_part("a.txt", "p", "/base") == ""


def test_job_status_codes_and_names() -> None:
    codes = (
        jobattrs.IDLE,
        jobattrs.RUNNING,
        jobattrs.REMOVED,
        jobattrs.COMPLETED,
        jobattrs.HELD,
        jobattrs.TRANSFERRING_OUTPUT,
        jobattrs.SUSPENDED,
    )
    assert codes == (1, 2, 3, 4, 5, 6, 7)
    assert set(jobattrs.JOB_STATUS_NAMES) == set(codes)
    assert jobattrs.JOB_STATUS_NAMES[jobattrs.HELD] == "Held"
    assert jobattrs.VANILLA == 5
