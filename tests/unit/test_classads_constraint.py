"""gwms.classads.compile_constraint: the predicate the collector and negotiator run."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from gwms.classads import ClassAdSyntaxError, Predicate, compile_constraint
from gwms.errors import GwmsError


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), (1, True), (0, False), (2.5, True), (0.0, False), (-1, True),
     ("true", False), (None, False), ("/Expr(1/0)/", False), ("/Expr(x)/", False), ([1], False),
     ({"a": 1}, False), ('/Expr(real("nan"))/', True)],
)
def test_truth_of_the_result(value: Any, expected: bool) -> None:
    assert compile_constraint("V")({"V": value}) is expected


def test_predicate_is_compiled_once_and_reused() -> None:
    pred = compile_constraint('State == "Unclaimed" && Cpus >= 4')
    assert isinstance(pred, Predicate) and pred.compiled
    assert pred.text == 'State == "Unclaimed" && Cpus >= 4'
    ads = [{"State": s, "Cpus": c} for s in ("Unclaimed", "unclaimed", "Claimed") for c in (2, 4, 8.0)]
    assert [pred(ad) for ad in ads] == [False, True, True, False, True, True, False, False, False]
    assert list(pred.filter(ads)) == [ad for ad in ads if pred(ad)]


def test_predicate_with_a_target() -> None:
    pred = compile_constraint("TARGET.RequestMemory <= Memory && Owner =!= \"bad\"")
    slot = {"Memory": 4096}
    assert pred(slot, {"RequestMemory": 1024, "Owner": "good"})
    assert not pred(slot, {"RequestMemory": 1024, "Owner": "bad"})
    assert not pred(slot, {"RequestMemory": 8192})
    assert not pred(slot)  # no target: TARGET.RequestMemory is undefined
    assert list(pred.filter([slot, {"Memory": 1}], {"RequestMemory": 2})) == [slot]


def test_syntax_errors_are_gwms_errors_with_a_position() -> None:
    with pytest.raises(ClassAdSyntaxError) as info:
        compile_constraint("Cpus >= && Memory")
    assert isinstance(info.value, GwmsError)
    assert info.value.position == 8


def test_lookups_ignore_case_across_differently_spelled_ads() -> None:
    pred = compile_constraint("cpus >= 4 && STATE == \"idle\" && target.owner == \"x\"")
    target = {"OWNER": "X"}
    assert pred({"Cpus": 4, "State": "Idle"}, target)
    assert pred({"CPUS": 8, "state": "IDLE"}, target)  # another spelling after one was learned
    assert pred({"cPuS": 5, "StAtE": "idle"}, {"Owner": "x"})
    assert not pred({"Cpus": 1, "State": "Idle"}, target)
    assert not pred({"Memory": 5, "State": "Idle"}, target)


def test_ads_changed_between_calls_are_seen_as_they_are_now() -> None:
    pred = compile_constraint("cpus >= 4")
    ad: dict[str, Any] = {"Cpus": 8, "Other": 1}
    assert pred(ad)
    del ad["Cpus"]
    assert not pred(ad)
    ad["CPUS"] = 4
    assert pred(ad)
    ad["CPUS"] = 1
    assert not pred(ad)


def test_attribute_expressions_are_followed() -> None:
    pred = compile_constraint("TotalMemory > 10000")
    assert pred({"TotalMemory": "/Expr(Memory * Slots)/", "Memory": 4096, "Slots": 3})
    assert not pred({"TotalMemory": "/Expr(Memory * Slots)/", "Memory": 4096, "Slots": 2})
    assert not pred({"TotalMemory": "/Expr(TotalMemory + 1)/"})  # circular: undefined


@pytest.mark.parametrize("op", ["==", "!=", "=?=", "=!=", ">=", "<"])
def test_comparisons_follow_attribute_expressions(op: str) -> None:
    """The fast paths for "Attr OP literal" must not compare the /Expr(...)/ text itself."""
    ad = {"State": '/Expr(strcat("Un", "claimed"))/', "Cpus": "/Expr(2 + 2)/", "Text": "/Expr(x)/"}
    expected = {
        "==": (True, True, False),
        "!=": (False, False, False),
        "=?=": (True, True, False),
        "=!=": (False, False, True),
        ">=": (False, True, False),
        "<": (True, False, False),
    }[op]
    literal = '"Unclaimed"' if op != ">=" else '"Z"'
    got = (
        compile_constraint(f"State {op} {literal}")(ad),
        compile_constraint(f"Cpus {op} 4")(ad),
        compile_constraint(f'Text {op} "/Expr(x)/"')(ad),
    )
    if op in (">=", "<"):
        got = (compile_constraint(f'State {op} "Z"')(ad), compile_constraint(f"Cpus {op} 4")(ad), got[2])
        expected = (op == "<", op == ">=", False)
    assert got == expected


def test_constructs_outside_the_subset_fall_back_to_classad2() -> None:
    pred = compile_constraint("Slots[1] > 2 || (Flags & 4) == 4")
    assert not pred.compiled
    assert pred({"Slots": [1, 3], "Flags": 0})
    assert pred({"Slots": [1, 1], "Flags": 6})
    assert not pred({"Slots": [1, 1], "Flags": 2})
    assert [ad["Flags"] for ad in pred.filter([{"Flags": 4}, {"Flags": 1}])] == [4]


def test_run_time_fallback_inside_a_compiled_predicate() -> None:
    pred = compile_constraint("regexp(Pattern, Name)")
    assert pred.compiled
    assert pred({"Pattern": "^a", "Name": "abc"})  # portable: Python's re
    assert pred({"Pattern": "^[[:alpha:]]+$", "Name": "abc"})  # POSIX class: classad2
    assert not pred({"Pattern": "^[[:digit:]]+$", "Name": "abc"})
    assert pred({"Pattern": "é", "Name": "café"})  # non-ASCII: classad2


def test_attribute_expression_outside_the_subset_falls_back() -> None:
    pred = compile_constraint("Second > 15")
    assert pred({"Second": "/Expr({10, 20}[1])/"})
    assert not pred({"Second": "/Expr({10, 12}[1])/"})


class ReadOnlyAd(Mapping[str, Any]):
    """A mapping that is not a dict."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def test_any_mapping_works() -> None:
    pred = compile_constraint("cpus > 1 && Name == \"n\"")
    assert pred(ReadOnlyAd({"Cpus": 2, "Name": "N"}))
    assert not pred(ReadOnlyAd({"Cpus": 1, "Name": "N"}))
