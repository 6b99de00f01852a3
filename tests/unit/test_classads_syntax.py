"""gwms.classads parsing: expressions and ads, and where malformed text is wrong."""

from __future__ import annotations

import re

import classad2
import pytest
from classad2._class_ad import _classad_parse_next  # a strict oracle, see _classad2_accepts
from classads_strategies import expressions
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gwms.classads import (
    ClassAdSyntaxError,
    Expr,
    evaluate,
    parse_ad,
    parse_expr,
)
from gwms.classads.native import native_expr
from gwms.errors import GwmsError


def _classad2_accepts(text: str) -> bool:
    """Whether the ClassAd library parses ``text`` as exactly one whole expression.

    ``classad2.ExprTree(text)`` wraps the text in ``[expression = ...]``, so it
    accepts ``"1 ] junk"`` and ``"a ;"``. Here the text is parsed in two wrappers,
    ``[e = text]`` and ``[e = (text)]``, each of which must be consumed entirely
    and define exactly one attribute.
    """
    for wrapped in (f"[expression = {text}\n]", f"[expression = ({text}\n)]"):
        try:
            ad, consumed = _classad_parse_next(wrapped, int(classad2.ParserType.New), 0)
        except (classad2.ClassAdException, ValueError):
            return False
        size = len(wrapped.encode("utf-8"))  # the library counts bytes
        if ad is None or consumed != size or list(ad.keys()) != ["expression"]:
            return False
    return True


# (text, position of the offending token, words the message must contain)
MALFORMED = [
    ("a + )", 4, "unexpected ')'"),
    ("1 +", 3, "unexpected end of input"),
    ("", 0, "empty expression"),
    ("   ", 3, "empty expression"),
    ("(a", 2, "expected ')'"),
    ("a b", 2, "unexpected 'b'"),
    ("f(1,)", 4, "unexpected ')'"),
    ('x == "abc', 5, "unterminated string"),
    ("010", 0, "malformed number"),
    ("1.", 0, "malformed number"),
    ("1e+", 0, "malformed number"),
    ("a && é", 5, "unexpected character 'é'"),
    ("/* never closed", 0, "unterminated comment"),
    ("a ? b", 5, "expected ':'"),
    ("a ? b : c : d", 10, "unexpected ':'"),
    ("is", 0, "unexpected 'is'"),
    ("a.true", 2, "expected an attribute name"),
    ("a.1", 1, "unexpected real .1"),
    ("{1,}", 3, "unexpected '}'"),
    ("[a = 1; b]", 9, "expected '='"),
    ("[;]", 2, "expected an attribute definition"),
    ("a = 1", 2, "unexpected '='"),
    ("1 === 2", 4, "unexpected '='"),
    ('"\\0"', 1, "cannot contain \\0"),
    ("x.y(1)", 3, "unexpected '('"),
]


@pytest.mark.parametrize(("text", "position", "words"), MALFORMED)
def test_malformed_expression_points_at_offending_token(text: str, position: int, words: str) -> None:
    with pytest.raises(ClassAdSyntaxError) as info:
        parse_expr(text)
    err = info.value
    assert err.position == position
    assert words in err.reason
    assert err.line == 1 and err.column == position + 1
    assert str(err).startswith(f"syntax error at line 1, column {position + 1}: ")
    assert not _classad2_accepts(text)


def test_error_message_shape_and_type() -> None:
    with pytest.raises(GwmsError) as info:
        parse_expr("a + )")
    assert str(info.value) == "syntax error at line 1, column 5: unexpected ')', expected an operand in \"a + )\""


def test_error_on_a_later_line_reports_line_and_column() -> None:
    text = "MY.Cpus >= 1 &&\n   (Memory > 2 ||\n    )"
    with pytest.raises(ClassAdSyntaxError) as info:
        parse_expr(text)
    err = info.value
    assert (err.line, err.column) == (3, 5)
    assert text[err.position] == ")"
    assert '"    )"' in str(err)  # quotes the offending line


def test_long_lines_are_shortened_in_the_message() -> None:
    text = "a + " * 40 + ")"
    with pytest.raises(ClassAdSyntaxError) as info:
        parse_expr(text)
    assert info.value.position == len(text) - 1
    assert len(str(info.value)) < 200


WELL_FORMED = [
    "a",
    "MY.Cpus >= TARGET.RequestCpus",
    'regexp("^Site_[0-9]+$", GLIDEIN_Site, "i")',
    "x ? y : z ? 1 : 2",
    "x ?: 5",
    "a is undefined && b isnt error",
    "{1, 2.5, \"s\", {}, [a = 1; b = {x}]}",
    "-(-1) + +2 - !true",
    "f()",
    "'quoted name' + 1",
    "'adjacent' 'names'",
    ".absolute",
    "a.b.c[1]",
    '"adjacent" "strings"',
    "1 // trailing comment",
    "/* leading */ 1",
    "1 << 2 >>> 1 & 3 | ~4 ^ 5",
    "9223372036854775807",
    '"\\101\\n\\t\\"\\\\"',
    "1e308 * .5",
]


@pytest.mark.parametrize("text", WELL_FORMED)
def test_well_formed_expressions_parse_like_classad2(text: str) -> None:
    expr = parse_expr(text)
    assert isinstance(expr, Expr)
    assert expr.text == text
    assert _classad2_accepts(text)
    assert isinstance(expr.native, classad2.ExprTree)


def test_string_escapes_and_adjacent_literals() -> None:
    assert evaluate('"\\101\\n\\t\\q" "x"') == "A\n\tqx"
    assert evaluate('"\\400"') == " 0"  # octal stops where the value would pass \\377


@settings(max_examples=150, deadline=None)
@given(expressions(8))
def test_generated_expressions_are_accepted_by_both(text: str) -> None:
    parse_expr(text)
    assert _classad2_accepts(text)


TOKENS = [
    "a", "Cpus", "MY", "TARGET", ".", "1", "2.5", "0", '"s"', "'q n'", "(", ")", "[", "]",
    "{", "}", ",", ";", "=", "+", "-", "*", "/", "%", "==", "!=", "=?=", "=!=", "is", "isnt",
    "&&", "||", "!", "?", ":", "<", ">=", "<<", "f", "true", "undefined", "error",
    "..", "/* c */", "\n", "'", '"', "x[", "-1", "?:",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=7))
def test_acceptance_agrees_with_classad2_on_token_soup(tokens: list[str]) -> None:
    text = " ".join(tokens)
    assume(not re.search(r"\.\.\d", text))  # the library reads "..1" as 0.0; gwms refuses it
    try:
        parse_expr(text)
        accepted = True
    except ClassAdSyntaxError as err:
        accepted = False
        assert 0 <= err.position <= len(text)
        assert err.position == len(text) or not text[err.position].isspace()
    if accepted:
        native_expr(text)  # builds without a complaint
    assert accepted == _classad2_accepts(text), text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab1 .+()\"'[];=\n*/{}", max_size=12))
def test_any_text_either_parses_or_reports_a_position_inside_it(text: str) -> None:
    try:
        parse_expr(text)
    except ClassAdSyntaxError as err:
        assert 0 <= err.position <= len(text)
        assert err.line == text.count("\n", 0, err.position) + 1
        line_start = text.rfind("\n", 0, err.position) + 1
        assert err.column == err.position - line_start + 1


# -- whole ads -------------------------------------------------------------------------


def test_parse_new_syntax_ad() -> None:
    ad = parse_ad('[a = 1; b = "x"; c = x + 1; d = {1, 2.5}; e = [f = true]; g = undefined; h = error; ]')
    assert ad == {
        "a": 1,
        "b": "x",
        "c": "/Expr(x + 1)/",
        "d": [1, 2.5],
        "e": {"f": True},
        "g": None,
        "h": "/Expr(error)/",
    }


def test_parse_old_syntax_ad_with_comments() -> None:
    text = """# a job
MyType = "Job"
   RequestCpus = 4
# comment between
Requirements = TARGET.Cpus >= RequestCpus // trailing comment

Rank = -1.5
"""
    assert parse_ad(text) == {
        "MyType": "Job",
        "RequestCpus": 4,
        "Requirements": "/Expr(TARGET.Cpus >= RequestCpus)/",
        "Rank": -1.5,
    }


def test_old_syntax_error_reports_its_line() -> None:
    text = "A = 1\nB = (2 +\nC = 3\n"
    with pytest.raises(ClassAdSyntaxError) as info:
        parse_ad(text)
    assert (info.value.line, info.value.column) == (2, 9)
    assert info.value.position == text.index("(2 +") + 4


def test_old_syntax_line_without_equals() -> None:
    with pytest.raises(ClassAdSyntaxError) as info:
        parse_ad("A = 1\nJustAName\n")
    assert info.value.line == 2
    assert "expected '='" in info.value.reason


def test_new_syntax_error_position() -> None:
    text = '[a = 1; b = "x" c = 2]'
    with pytest.raises(ClassAdSyntaxError) as info:
        parse_ad(text)
    assert info.value.position == text.index("c =")


def test_new_syntax_trailing_text_is_an_error() -> None:
    with pytest.raises(ClassAdSyntaxError) as info:
        parse_ad("[a = 1] junk")
    assert info.value.position == 8


def test_attribute_names_that_need_quotes_survive() -> None:
    ad = parse_ad("['weird name' = 1; 'true' = 2; x = 'weird name' + 1]")
    assert ad["weird name"] == 1 and ad["true"] == 2
    assert evaluate("x", ad) == 2
