"""The compiled evaluator against classad2: the same answers on generated expressions and ads.

gwms evaluates the common subset of the ClassAd language in Python (closures built
from its own parser) and leaves the rest to classad2. These properties generate
expressions and JSON-form ads and require gwms's compiled result, and the
compiled predicate, to equal classad2's on every one. The example counts are
modest so the file runs in seconds; set GWMS_CLASSADS_EXAMPLES to run more
(the module was developed with tens of thousands).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from classads_strategies import (
    NAMES,
    REGEX_PATTERNS,
    WORDS,
    ads,
    expressions,
    ints,
    same_value,
    strings,
    typed_ads,
    typed_expressions,
)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gwms.classads import compile_constraint, evaluate_native, parse_expr
from gwms.classads.expr import _export
from gwms.classads.jsonform import quote_string
from gwms.classads.operators import FallbackToNative, is_true

EXAMPLES = int(os.environ.get("GWMS_CLASSADS_EXAMPLES", "300"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check_against_classad2(text: str, my: dict[str, Any], target: dict[str, Any] | None) -> None:
    """The compiled evaluator and predicate agree with classad2 for ``text`` over the ads."""
    expr = parse_expr(text)
    reference = evaluate_native(expr, my, target)
    predicate = compile_constraint(expr)
    assert predicate(my, target) == is_true(reference), (text, my, target, reference)
    fn = expr.evaluator
    if fn is None:
        event("outside the compiled subset")
        return
    try:
        mine = _export(fn(my, target, ()))
    except FallbackToNative:
        event("fell back to classad2 at run time")
        return
    event("compared")
    assert same_value(mine, reference), (text, my, target, mine, reference)


@SETTINGS
@given(expressions(12), ads(), st.one_of(st.none(), ads()))
def test_random_expressions_agree_with_classad2(text: str, my: dict[str, Any], target: dict[str, Any] | None) -> None:
    check_against_classad2(text, my, target)


@SETTINGS
@given(typed_expressions, typed_ads(), st.one_of(st.none(), typed_ads()))
def test_typed_expressions_agree_with_classad2(text: str, my: dict[str, Any], target: dict[str, Any] | None) -> None:
    check_against_classad2(text, my, target)


quoted = strings.map(quote_string)


@SETTINGS
@given(quoted, st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "=?=", "=!="]), quoted)
def test_string_comparisons_agree(a: str, op: str, b: str) -> None:
    check_against_classad2(f"{a} {op} {b}", {}, None)


@SETTINGS
@given(
    st.sampled_from(["stringListMember", "stringListIMember"]),
    st.one_of(st.sampled_from(WORDS), strings),
    st.lists(st.sampled_from(WORDS + (" A ", "b,")), max_size=4),
    st.sampled_from([", ", ",", " ", "\t", ";", " ,"]),
    st.sampled_from([None, ",", ";", "", " ", "ab", "undefined", "1"]),
    st.booleans(),
)
def test_string_list_member_agrees(
    fn: str, item: str, words: list[str], sep: str, delimiters: str | None, from_attribute: bool
) -> None:
    items = sep.join(words)
    extra = ""
    if delimiters is not None:
        extra = ", " + (delimiters if delimiters in ("undefined", "1") else quote_string(delimiters))
    if from_attribute:  # dynamic item and list: the general path
        check_against_classad2(f"{fn}(I, L{extra})", {"I": item, "L": items}, None)
    else:  # literal item or literal list: the specialised paths
        check_against_classad2(f"{fn}({quote_string(item)}, L{extra})", {"L": items}, None)
        check_against_classad2(f"{fn}(I, {quote_string(items)}{extra})", {"I": item}, None)


@SETTINGS
@given(
    st.one_of(st.sampled_from(REGEX_PATTERNS), st.text(alphabet="ab.^$*+?()[]|\\{}1,-:", max_size=6)),
    st.one_of(strings, st.text(alphabet="ab\nAB1", max_size=6)),
    st.sampled_from(["", "i", "I", "m", "s", "is", "q", "x"]),
)
def test_regexp_agrees(pattern: str, target: str, options: str) -> None:
    check_against_classad2(f"regexp({quote_string(pattern)}, T, {quote_string(options)})", {"T": target}, None)
    check_against_classad2(f"regexp(P, T, O)", {"P": pattern, "T": target, "O": options}, None)


numbers = st.one_of(ints, st.floats(allow_nan=False), st.sampled_from([0, -1, 1, 0.0, -0.0, 2.5]))


@SETTINGS
@given(numbers, st.sampled_from(["+", "-", "*", "/", "%", "<", "==", ">=", "=?="]), numbers)
def test_arithmetic_on_attribute_values_agrees(a: Any, op: str, b: Any) -> None:
    check_against_classad2(f"A {op} B", {"A": a}, {"B": b})
    check_against_classad2(f"A {op} TARGET.B", {"A": a}, {"B": b})


@SETTINGS
@given(st.sampled_from(NAMES).flatmap(lambda n: st.sampled_from([n, n.upper(), n.lower()])), ints, ints)
def test_specialised_comparisons_agree(name: str, value: int, literal: int) -> None:
    for op in ("<", "<=", ">", ">=", "==", "!=", "=?=", "=!="):
        check_against_classad2(f"{name} {op} {literal}", {"Cpus": value, "State": "x", "a": float(value)}, None)
        check_against_classad2(f"{literal} {op} TARGET.{name}", {}, {"Cpus": value, "Memory": None})


operand = st.one_of(
    st.integers(-3, 9).map(str),
    st.sampled_from(["2.5", "true", "false", "undefined", "A", "MY.A", "TARGET.B", '"s"', '"S"']),
)
INFIX = ["+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!=", "=?=", "=!=", "is", "isnt", "&&", "||"]


@st.composite
def _chain(draw: st.DrawFn, ops: list[str], atom: st.SearchStrategy[str], size: int = 4) -> str:
    parts = [draw(atom)]
    for _ in range(draw(st.integers(1, size))):
        parts += [draw(st.sampled_from(ops)), draw(atom)]
    return " ".join(parts)


number_atom = st.one_of(st.integers(1, 9).map(str), st.sampled_from(["A", "TARGET.B", "-2", "2.5"]))
arithmetic = _chain(["+", "-", "*", "/", "%"], number_atom)
comparison = st.tuples(arithmetic, st.sampled_from(["<", "<=", ">", ">=", "==", "!=", "=?=", "is"]), arithmetic).map(" ".join)
logic_atom = st.one_of(comparison, st.sampled_from(["true", "false", "undefined", "!A", "!false", "x"]))


@st.composite
def unparenthesised(draw: st.DrawFn) -> str:
    """Operators without parentheses, so the parse depends on precedence and associativity."""
    text = draw(
        st.one_of(
            arithmetic,
            comparison,
            _chain(["&&", "||"], logic_atom, 3),
            _chain(INFIX, st.one_of(operand, st.tuples(st.sampled_from(["-", "!", "+"]), operand).map("".join))),
        )
    )
    if draw(st.booleans()):
        a, b = draw(operand), draw(operand)
        text = draw(
            st.sampled_from(
                [f"{text} ? {a} : {b}", f"{a} ? {text} : {b}", f"{a} ? {b} : {text}", f"{text} ?: {a}", f"x ?: {a} * {text}", f"-x ?: {a} + {text}"]
            )
        )
    return text


@SETTINGS
@given(unparenthesised(), st.sampled_from([0, 1, 2, -1, 2.5, "s"]), st.sampled_from([0, 3, 7, True, "S"]))
def test_precedence_and_associativity_agree(text: str, a: Any, b: Any) -> None:
    check_against_classad2(text, {"A": a}, {"B": b})


SUBSET = [
    "a + b - c * d / e % f",
    "a < b && a <= b || a > b && a >= b",
    "a == b || a != b || a =?= b || a =!= b || a is b || a isnt b",
    "!a && -b > +c",
    "a ? b : c",
    "a ?: b",
    "{a, b, 1}",
    "MY.a + TARGET.b",
    'ifThenElse(a, b, c) && isUndefined(a) && isError(b) && isString(a) && isInteger(a) && isReal(a)',
    "isBoolean(a) || isList(a) || isClassAd(a)",
    'stringListMember("x", a) || stringListIMember(a, "x,y", ";") || regexp("^x", a, "i")',
    'size(a) + int(b) + real(c) + floor(d) + ceiling(e) + round(f) + time()',
    'strcat(a, "x", 1) == toLower(toUpper(b))',
    "member(a, {1, 2})",
]


@pytest.mark.parametrize("text", SUBSET)
def test_the_common_subset_is_compiled(text: str) -> None:
    assert parse_expr(text).compiled
    assert compile_constraint(text).compiled
