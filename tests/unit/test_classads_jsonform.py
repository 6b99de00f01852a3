"""gwms.classads JSON form: conversion to and from classad2 ClassAds."""

from __future__ import annotations

import math
from typing import Any

import classad2
import pytest
from classads_strategies import expressions
from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.classads import (
    ClassAdSyntaxError,
    ClassAdValueError,
    ad_from_json,
    ad_to_json,
    evaluate,
    is_expr_string,
    parse_ad,
    unparse_ad,
)
from gwms.classads.values import INT_MAX, INT_MIN

names = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True),
    st.text(alphabet="ab c'\\\"-.é", min_size=1, max_size=6),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(INT_MIN, INT_MAX),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=12),
    st.sampled_from(["/Expr(1+1)/", "/Expr(", ")/", "\\/Expr(x)\\/"]),  # strings that look like expressions
    # (classad2 prints reals with 16 digits, so a real within 1e-15 of the largest
    # double prints as a number above it and reads back as infinity: leave those out)
    expressions(6).filter(lambda t: "e+308" not in t).map(lambda t: f"/Expr({t})/"),
)


def _unique_names(value: Any) -> bool:
    """No two attributes of an ad (or of a nested ad) differ only in case."""
    if isinstance(value, list):
        return all(_unique_names(v) for v in value)
    if not isinstance(value, dict):
        return True
    return len({k.lower() for k in value}) == len(value) and all(_unique_names(v) for v in value.values())


json_ads = st.recursive(
    st.dictionaries(names, scalars, max_size=6),
    lambda inner: st.dictionaries(
        names, st.one_of(scalars, st.lists(st.one_of(scalars, inner), max_size=3), inner), max_size=5
    ),
    max_leaves=12,
).filter(lambda d: isinstance(d, dict) and _unique_names(d))


def _canonical(value: Any) -> Any:
    """A JSON-form value with expressions in classad2's own spelling (for comparisons)."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if is_expr_string(value):
        return ad_to_json(classad2.ClassAd(f"[x = {value[6:-2]}\n]"))["x"]
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@settings(max_examples=int(__import__("os").environ.get("GWMS_CLASSADS_EXAMPLES", 200)), deadline=None)
@given(json_ads)
def test_json_round_trip_preserves_types_and_expressions(ad: dict[str, Any]) -> None:
    back = ad_to_json(ad_from_json(ad))
    assert _same(back, _canonical(ad))
    # and the canonical form is a fixed point
    assert _same(ad_to_json(ad_from_json(back)), back)


@settings(max_examples=100, deadline=None)
@given(json_ads)
def test_values_read_through_classad2_match_the_json(ad: dict[str, Any]) -> None:
    native = ad_from_json(ad)
    for key, value in ad.items():
        got = native[key]
        if value is None:
            assert got == classad2.Value.Undefined
        elif isinstance(value, bool):
            assert got is value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            assert type(got) is type(value) and got == value
        elif isinstance(value, str) and not is_expr_string(value):
            assert got == value
        elif isinstance(value, dict):
            assert isinstance(got, classad2.ClassAd)


def test_ad_to_json_of_every_kind_of_value() -> None:
    native = classad2.ClassAd(
        '[i = 7; r = 2.5; s = "x\\"y"; b = true; u = undefined; e = error; x = a + 1;'
        ' l = {1, a, "s", {2}}; n = [p = 1; q = y * 2]; looks = "/Expr(1+1)/"; neg = -0.0]'
    )
    assert ad_to_json(native) == {
        "i": 7,
        "r": 2.5,
        "s": 'x"y',
        "b": True,
        "u": None,
        "e": "/Expr(error)/",
        "x": "/Expr(a + 1)/",
        "l": [1, "/Expr(a)/", "s", [2]],
        "n": {"p": 1, "q": "/Expr(y * 2)/"},
        "looks": '/Expr("/Expr(1+1)/")/',
        "neg": -0.0,
    }


def test_string_literal_that_looks_like_an_expression_round_trips() -> None:
    native = ad_from_json({"s": '/Expr("/Expr(1+1)/")/'})
    assert native["s"] == "/Expr(1+1)/"
    assert evaluate("s", {"s": '/Expr("/Expr(1+1)/")/'}) == "/Expr(1+1)/"


def test_non_finite_reals_become_expressions() -> None:
    back = ad_to_json(ad_from_json({"nan": math.nan, "inf": math.inf, "minf": -math.inf}))
    assert back == {"nan": '/Expr(real("NaN"))/', "inf": '/Expr(real("INF"))/', "minf": '/Expr(real("-INF"))/'}
    assert math.isnan(evaluate("nan", back)) and evaluate("inf", back) == math.inf


def test_integers_beyond_64_bits_are_refused() -> None:
    with pytest.raises(ClassAdValueError, match="64 bits"):
        ad_from_json({"big": 2**63})
    assert ad_to_json(ad_from_json({"edge": INT_MIN, "top": INT_MAX})) == {"edge": INT_MIN, "top": INT_MAX}


def test_malformed_expression_in_json_is_a_syntax_error_naming_the_attribute() -> None:
    with pytest.raises(ClassAdSyntaxError) as info:
        ad_from_json({"Requirements": "/Expr(a + )/"})
    assert "Requirements" in str(info.value)
    assert info.value.position == 4


def test_expression_text_cannot_smuggle_attributes() -> None:
    with pytest.raises(ClassAdSyntaxError):
        ad_from_json({"a": "/Expr(1; b = 2)/"})
    with pytest.raises(ClassAdSyntaxError):
        ad_from_json({"a": "/Expr(1] junk)/"})


def test_unsupported_python_values_are_refused() -> None:
    with pytest.raises(ClassAdValueError):
        ad_from_json({"a": object()})
    with pytest.raises(ClassAdValueError):
        ad_from_json({"a": "nul\0char"})


def test_unparse_ad_quotes_names_and_strings() -> None:
    text = unparse_ad({"plain": 1, "two words": "a\"b\\c\nd", "true": None, "l": [1.5, "x"]})
    assert text == "[plain = 1; 'two words' = \"a\\\"b\\\\c\\nd\"; 'true' = undefined; l = {1.5, \"x\"}]"
    assert parse_ad(text) == {"plain": 1, "two words": 'a"b\\c\nd', "true": None, "l": [1.5, "x"]}
