"""gwms.classads evaluation semantics, each example pinned against classad2 too."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from gwms.classads import ERROR, UNDEFINED, evaluate, evaluate_native, parse_expr
from gwms.classads.values import INT_MAX, INT_MIN

JOB = {
    "RequestCpus": 2,
    "RequestMemory": 2048,
    "Owner": "Alice",
    "Sites": "Site_A, Site_B,Site_C",
    "Requirements": "/Expr(TARGET.Memory >= RequestMemory)/",
    "Doubled": "/Expr(RequestMemory * 2)/",
    "Loop": "/Expr(Loop + 1)/",
    "PingA": "/Expr(PingB)/",
    "PingB": "/Expr(PingA)/",
    "SelfTest": "/Expr(isUndefined(SelfTest))/",
    "Nothing": None,
    "VOs": ["cms", "Atlas"],
}
SLOT = {
    "Memory": 8192,
    "Cpus": 4,
    "State": "Unclaimed",
    "Start": "/Expr(TARGET.RequestCpus <= Cpus)/",
    "Echo": "/Expr(Owner)/",  # bare: not in the slot, so found in the job (the TARGET)
}

# (expression, MY, TARGET, expected)
CASES: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None, Any]] = [
    # undefined and error propagate; error wins
    ("x", None, None, UNDEFINED),
    ("x + 1", None, None, UNDEFINED),
    ("undefined + error", None, None, ERROR),
    ("error + undefined", None, None, ERROR),
    ('"a" + 1', None, None, ERROR),
    ('undefined + "a"', None, None, UNDEFINED),
    ("1 / 0", None, None, ERROR),
    ("7 % 0", None, None, ERROR),
    ("1.0 / 0", None, None, ERROR),  # +infinity is an error ...
    ("-1.0 / 0", None, None, -math.inf),  # ... -infinity is not
    ("undefined == undefined", None, None, UNDEFINED),
    ("error == undefined", None, None, ERROR),
    ("!undefined", None, None, UNDEFINED),
    ("-true", None, None, ERROR),
    ("true + 1", None, None, 2),
    # three-valued logic and short circuits
    ("false && error", None, None, False),
    ("error && false", None, None, ERROR),
    ("true || error", None, None, True),
    ("error || true", None, None, ERROR),
    ("undefined && false", None, None, False),
    ("undefined && true", None, None, UNDEFINED),
    ("undefined || true", None, None, True),
    ("undefined || false", None, None, UNDEFINED),
    ('true && "yes"', None, None, ERROR),
    ("2.5 && 1", None, None, True),
    ("0 || 0.0", None, None, False),
    # =?= / =!= / is / isnt: never undefined, case-sensitive, type-strict
    ("x =?= undefined", None, None, True),
    ("x =!= undefined", None, None, False),
    ("error =?= error", None, None, True),
    ('"abc" =?= "ABC"', None, None, False),
    ('"abc" == "ABC"', None, None, True),
    ("1 =?= 1.0", None, None, False),
    ("1 == 1.0", None, None, True),
    ("true =?= 1", None, None, False),
    ("Nothing is undefined", JOB, None, True),
    ('Owner isnt "alice"', JOB, None, True),
    ("{1} =?= {1}", None, None, ERROR),
    # strings compare ignoring ASCII case only
    ('"Unclaimed" == "UNCLAIMED"', None, None, True),
    ('"a" < "B"', None, None, True),
    ('"É" == "é"', None, None, False),
    ('"b" >= "A"', None, None, True),
    ('"1" == 1', None, None, ERROR),
    # integers are 64-bit and wrap; C division and remainder
    (f"{INT_MAX} + 1", None, None, INT_MIN),
    ("-7 / 2", None, None, -3),
    ("-7 % 2", None, None, -1),
    ("7 % -3", None, None, 1),
    (f"({INT_MIN + 1} - 1) / -1", None, None, INT_MAX),
    ("7 / 2.0", None, None, 3.5),
    # conditionals
    ("ifThenElse(Cpus > 2, \"big\", \"small\")", SLOT, None, "big"),
    ("ifThenElse(undefined, 1, 2)", None, None, UNDEFINED),
    ("ifThenElse(error, 1, 2)", None, None, ERROR),
    ('ifThenElse("x", 1, 2)', None, None, ERROR),
    ("ifThenElse(true, 1, 1/0)", None, None, 1),
    ("IFTHENELSE(0.5, 1, 2)", None, None, 1),
    ("x ? 1 : 2", None, None, UNDEFINED),
    ("x ?: 5", None, None, 5),
    ("0 ?: 5", None, None, 0),
    # the elvis binds tighter than any other operator, as in the library
    ("undefined + 1 ?: 5", None, None, UNDEFINED),
    ("(undefined + 1) ?: 5", None, None, 5),
    ("-x ?: 4", None, None, -4),
    ("x ?: -5 + 1", None, None, -4),
    ("undefined || x ?: true", None, None, True),
    ("isUndefined(x)", None, None, True),
    ("isError(1/0)", None, None, True),
    ("isError(x)", None, None, False),
    # stringListMember: default delimiters are space, comma, tab, CR, LF; case-sensitive
    ('stringListMember("Site_B", Sites)', JOB, None, True),
    ('stringListMember("site_b", Sites)', JOB, None, False),
    ('stringListIMember("site_b", Sites)', JOB, None, True),
    ('stringListMember("Site", Sites)', JOB, None, False),
    ('stringListMember("b", "a;b", ";")', None, None, True),
    ('stringListMember("b", "a b")', None, None, True),
    ('stringListMember(B, "a\tb")', {"B": "b"}, None, True),
    ("stringListMember(B, L)", {"B": "b", "L": "a\nb"}, None, True),
    ("stringListMember(B, L)", {"B": "b", "L": "a;b"}, None, False),
    ("stringListMember(B, L)", {"B": "b", "L": " b\f"}, None, True),  # items are trimmed
    ('stringListMember("a b", "a b,c", ",")', None, None, True),
    ('stringListMember("a", undefined)', None, None, False),
    ("stringListMember(undefined, undefined)", None, None, UNDEFINED),
    ('stringListMember(1, "1,2")', None, None, ERROR),
    # regexp (PCRE): unanchored search, options i/m/s
    ('regexp("^Site_[A-C]$", "Site_B")', None, None, True),
    ('regexp("site", "Site_B")', None, None, False),
    ('regexp("site", "Site_B", "i")', None, None, True),
    ('regexp("a.b", "a\\nb", "s")', None, None, True),
    ('regexp("(", "x")', None, None, ERROR),
    ('regexp("[[:digit:]]+", "ab12")', None, None, True),  # POSIX class: left to classad2
    ('regexp("a", undefined)', None, None, UNDEFINED),
    # other functions
    ('size("abc")', None, None, 3),
    ('size("é")', None, None, 2),  # bytes of UTF-8
    ("size(VOs)", JOB, None, 2),
    ('strcat("a", 1, 2.5, true)', None, None, "a12.500000000000000E+00true"),
    ('strcat("a", undefined)', None, None, UNDEFINED),
    ('toLower("AbC")', None, None, "abc"),
    ('toUpper("éa")', None, None, "éA"),
    ('int("12abc")', None, None, 12),
    ("int(-2.7)", None, None, -2),
    ("int(1e30)", None, None, INT_MIN),
    ('real("1e3")', None, None, 1000.0),
    ('int("x")', None, None, ERROR),
    ('int("inf")', None, None, INT_MIN),
    ('int("-1e30")', None, None, INT_MIN),
    ('int("9223372036854775807")', None, None, INT_MIN),  # read as a real, then cast
    ('int(" -3.9")', None, None, -3),
    ('real("0x10")', None, None, 16.0),  # hexadecimal: left to classad2
    ("round(2.5)", None, None, 2),
    ("floor(-2.5)", None, None, -3),
    ("ceiling(2.1)", None, None, 3),
    ('member("ATLAS", VOs)', JOB, None, True),
    ("member(2, {1, 2.0})", None, None, True),
    ('member(1, {"1"})', None, None, False),
    ("member(undefined, {1})", None, None, UNDEFINED),
    # attribute names are case-insensitive; MY/TARGET scopes; bare names try MY then TARGET
    ("requestmemory", JOB, None, 2048),
    ("MY.REQUESTMEMORY", JOB, None, 2048),
    ("target.memory", JOB, SLOT, 8192),
    ("Memory", JOB, SLOT, 8192),
    ("MY.Memory", JOB, SLOT, UNDEFINED),
    ("TARGET.Memory", JOB, None, UNDEFINED),
    ("Doubled", JOB, SLOT, 4096),
    ("TARGET.Echo", JOB, SLOT, "Alice"),
    ("TARGET.Start", JOB, SLOT, True),
    ("MY.Requirements", JOB, SLOT, True),
    ("Requirements", SLOT, JOB, True),  # found in the job (TARGET), evaluated there
    # circular references are undefined
    ("Loop", JOB, None, UNDEFINED),
    ("PingA", JOB, None, UNDEFINED),
    ("SelfTest", JOB, None, True),
    # lists
    ("{1, RequestCpus, x}", JOB, None, [1, 2, UNDEFINED]),
]


@pytest.mark.parametrize(("text", "my", "target", "expected"), CASES)
def test_semantics(text: str, my: dict[str, Any] | None, target: dict[str, Any] | None, expected: Any) -> None:
    got = evaluate(text, my, target)
    assert type(got) is type(expected) and (got == expected or got is expected), got
    native = evaluate_native(text, my, target)
    if isinstance(expected, list):
        assert len(native) == len(expected)
    else:
        assert type(native) is type(expected) and (native == expected or native is expected), native


def test_sentinels() -> None:
    assert UNDEFINED is not ERROR
    assert not UNDEFINED and not ERROR
    assert repr(UNDEFINED) == "UNDEFINED" and repr(ERROR) == "ERROR"
    assert UNDEFINED != 2 and ERROR != 1  # unlike classad2.Value, not integers
    import pickle

    assert pickle.loads(pickle.dumps(UNDEFINED)) is UNDEFINED


def test_evaluate_accepts_expr_objects_and_json_strings() -> None:
    expr = parse_expr("RequestCpus * 2")
    assert evaluate(expr, JOB) == 4
    assert evaluate("/Expr(RequestCpus * 2)/", JOB) == 4
    assert expr.evaluate(JOB) == 4
    assert expr.compiled


def test_records_come_back_in_json_form() -> None:
    assert evaluate("n", {"n": {"p": 1}}) == {"p": 1}
    assert evaluate("[a = 1; b = x]") == {"a": 1, "b": "/Expr(x)/"}


def test_time_is_now() -> None:
    now = time.time()
    assert abs(evaluate("time()") - now) < 5
    assert evaluate("time() > 1700000000") is True
    assert evaluate("ToRetire - time() > 3000", {"ToRetire": int(now) + 3600}) is True


def test_constructs_outside_the_compiled_subset_still_evaluate() -> None:
    for text, expected in [
        ("{10, 20, 30}[1]", 20),
        ("[a = 1; b = a + 1].b", 2),
        ("5 & 3", 1),
        ('substr("abcdef", 2, 2)', "cd"),
        ("pow(2, 10)", 1024),
    ]:
        expr = parse_expr(text)
        assert not expr.compiled
        assert evaluate(expr) == expected


def test_malformed_attribute_expression_is_error() -> None:
    assert evaluate("bad", {"bad": "/Expr(1 + )/"}) is ERROR
    assert evaluate("bad + 1", {"bad": "/Expr(1 + )/"}) is ERROR
