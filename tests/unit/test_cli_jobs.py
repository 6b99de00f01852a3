"""Pure helpers of the job commands."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms.classads import parse_expr
from gwms.cli.jobs import (
    and_constraints,
    format_duration,
    format_value,
    ids_constraint,
    qedit_value,
    split_ids_and_attrs,
)


def test_split_ids_and_attrs() -> None:
    assert split_ids_and_attrs(["12", "Owner", "3.4", "Cmd"]) == (["12", "3.4"], ["Owner", "Cmd"])


def test_ids_constraint() -> None:
    assert ids_constraint([]) is None
    assert ids_constraint(["7", "8.2"]) == "ClusterId == 7 || (ClusterId == 8 && ProcId == 2)"
    assert and_constraints(None, "A", None, "B || C") == "(A) && (B || C)"


@given(st.integers(0, 10**7))
def test_format_duration_round_trips(seconds: int) -> None:
    text = format_duration(seconds)
    days, rest = text.split("+")
    h, m, s = (int(x) for x in rest.split(":"))
    assert int(days) * 86400 + h * 3600 + m * 60 + s == seconds


@pytest.mark.parametrize(
    ("text", "value"),
    [("10", 10), ("2.5", 2.5), ("true", True), ("FALSE", False), ('"hi there"', "hi there"),
     ("undefined", None), ("Memory > 1024", "/Expr(Memory > 1024)/")],
)
def test_qedit_values(text: str, value: object) -> None:
    assert qedit_value(text, parse_expr) == value


def test_qedit_bad_expression_names_the_position() -> None:
    with pytest.raises(Exception, match="column"):
        qedit_value("Memory > > 3", parse_expr)


def test_format_value() -> None:
    assert format_value(None) == "undefined"
    assert format_value(True) == "true"
    assert format_value("/Expr(a && b)/") == "a && b"
    assert format_value([1, 2]) == "[1, 2]"
