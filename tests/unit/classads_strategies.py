"""Hypothesis strategies for ClassAd expressions and JSON-form ads (gwms.classads tests).

Expressions are generated as text, fully parenthesised, over a small pool of
attribute names written in random letter case, so that case-insensitive lookup,
MY/TARGET scoping, circular references and every operator and function of the
compiled subset get exercised. :func:`same_value` compares gwms's results with
classad2's.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

from gwms.classads.jsonform import quote_string
from gwms.classads.values import ERROR, INT_MAX, INT_MIN, UNDEFINED, is_expr_string

NAMES = ("a", "b", "Cpus", "Memory", "State", "x", "List")


def _spellings(name: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(name), max_size=len(name)).map(
        lambda flips: "".join(c.upper() if f else c.lower() for c, f in zip(name, flips))
    )


spelled_names = st.sampled_from(NAMES).flatmap(_spellings)

ints = st.one_of(
    st.integers(-4, 4),
    st.sampled_from([1024, -1024, 2**31, 2**62, INT_MAX, INT_MIN + 1, 3_000_000_000]),
    st.integers(INT_MIN + 1, INT_MAX),
)
reals = st.one_of(
    st.sampled_from([0.0, -0.0, 0.5, -2.5, 1e308, -1e308, 1e-320, 3.0, 1024.0, 0.1]),
    st.floats(allow_nan=False, allow_infinity=False),
)
STRING_ALPHABET = "aAbB ,_-xX\tÉé/1"
WORDS = ("a", "A", "b", "B", "ab", "aB", "Ab", "")
strings = st.one_of(
    st.sampled_from(WORDS),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).flatmap(
        lambda words: st.sampled_from([",", ", ", " ", " ,\t", ";"]).map(lambda sep: sep.join(words))
    ),
    st.sampled_from(["1", "1.5e3", "12abc", "  -3", "x", "É", "é", "inf", "nan", "0x1A", " a ", "Unclaimed"]),
    st.text(alphabet=STRING_ALPHABET, max_size=8),
)
REGEX_PATTERNS = ["a", "^a", "a$", "A", "a.b", "[a-c]+", "(a|b)", r"\d", "a{2}", "^$", "[[:alpha:]]", "a**", "(", "b|", r"\bx", "[^a]", "x*?"]


def int_text(v: int) -> str:
    """Integer literal text (negative numbers as unary minus)."""
    return str(v)


def real_text(v: float) -> str:
    """Real literal text that the ClassAd lexer reads back as ``v``."""
    text = repr(v)
    if "e" not in text and "." not in text:  # pragma: no cover - repr of finite floats has one
        text += ".0"
    return text


literal_texts = st.one_of(
    ints.map(int_text),
    reals.map(real_text),
    strings.map(quote_string),
    st.sampled_from(["true", "false", "undefined", "error", "TRUE", "Undefined", 'real("nan")', 'real("inf")', '-real("inf")', "{}", '{1, "a"}']),
)
ref_texts = st.one_of(
    spelled_names,
    st.tuples(st.sampled_from(["MY.", "TARGET.", "my.", "target.", "My."]), spelled_names).map("".join),
)

BINARY_OPS = ("+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!=", "=?=", "=!=", "is", "isnt", "&&", "||")
UNARY_OPS = ("-", "+", "!")
FUNCTIONS = {
    "ifThenElse": (3, 3),
    "isUndefined": (1, 1),
    "isError": (1, 1),
    "isString": (1, 1),
    "isInteger": (1, 1),
    "isReal": (1, 1),
    "isBoolean": (1, 1),
    "isList": (1, 1),
    "isClassAd": (1, 1),
    "stringListMember": (2, 3),
    "stringListIMember": (2, 3),
    "regexp": (2, 3),
    "size": (1, 1),
    "strcat": (0, 3),
    "toLower": (1, 1),
    "toUpper": (1, 1),
    "int": (1, 1),
    "real": (1, 1),
    "member": (2, 2),
    "floor": (1, 1),
    "ceiling": (1, 1),
    "round": (1, 1),
}


def _call(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    def build(name: str) -> st.SearchStrategy[str]:
        low, high = FUNCTIONS[name]
        arg = children
        if name == "regexp":
            arg = st.one_of(children, st.sampled_from(REGEX_PATTERNS).map(quote_string), st.sampled_from(['"i"', '"I"', '""', '"m"', '"s"', '"x"']))
        if name in ("stringListMember", "stringListIMember"):
            arg = st.one_of(children, st.sampled_from(['"a,b"', '"a b"', '" A , b,"', '";"', '""']))
        args = st.lists(arg, min_size=low, max_size=high)
        return st.tuples(_spellings(name), args).map(lambda t: f"{t[0]}({', '.join(t[1])})")

    return st.sampled_from(sorted(FUNCTIONS)).flatmap(build)


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(st.sampled_from(UNARY_OPS), children).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(children, st.sampled_from(BINARY_OPS), children).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        st.tuples(children, children, children).map(lambda t: f"({t[0]}) ? ({t[1]}) : ({t[2]})"),
        st.tuples(children, children).map(lambda t: f"({t[0]}) ?: ({t[1]})"),
        _call(children),
        st.lists(children, max_size=3).map(lambda items: "{" + ", ".join(items) + "}"),
    )


def expressions(max_leaves: int = 10) -> st.SearchStrategy[str]:
    """ClassAd expression text over the compiled subset."""
    return st.recursive(st.one_of(literal_texts, ref_texts), _extend, max_leaves=max_leaves)


json_scalars = st.one_of(st.none(), st.booleans(), ints, reals, strings)
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=3), max_leaves=5)


def _respelled(ad: dict[str, Any], flips: list[bool]) -> dict[str, Any]:
    """The ad with each name's letters upper- or lower-cased by ``flips``."""
    out = {}
    i = 0
    for name, value in ad.items():
        spelled = ""
        for ch in name:
            spelled += ch.upper() if flips[i % len(flips)] else ch.lower()
            i += 1
        out[spelled] = value
    return out


_flips = st.lists(st.booleans(), min_size=1, max_size=40)


def ads(expression_leaves: int = 5) -> st.SearchStrategy[dict[str, Any]]:
    """JSON-form ads over :data:`NAMES` (each spelled in random case, once)."""
    value = st.one_of(
        json_values,
        expressions(expression_leaves).map(lambda t: f"/Expr({t})/"),
        st.dictionaries(st.sampled_from(["p", "Q"]), json_scalars, max_size=2),
    )
    canonical = st.fixed_dictionaries({}, optional={n: value for n in NAMES})
    return st.builds(_respelled, canonical, _flips)


def same_value(mine: Any, reference: Any) -> bool:
    """Whether a gwms result equals classad2's (lists: classad2 leaves expressions unevaluated)."""
    if mine is UNDEFINED or mine is ERROR or reference is UNDEFINED or reference is ERROR:
        return mine is reference
    if type(mine) is not type(reference):
        return False
    if isinstance(mine, float):
        if math.isnan(mine):
            return math.isnan(reference)
        return mine == reference and math.copysign(1, mine) == math.copysign(1, reference)
    if isinstance(mine, list):
        return len(mine) == len(reference) and all(
            is_expr_string(r) or same_value(m, r) for m, r in zip(mine, reference)
        )
    if isinstance(mine, dict):
        return {k.lower() for k in mine} == {k.lower() for k in reference}
    return mine == reference


# -- type-directed expressions: most results are real values, not error ------------------


def _scoped(names: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.tuples(
        st.sampled_from(["", "", "MY.", "TARGET."]), st.sampled_from(names).flatmap(_spellings)
    ).map("".join)


def _typed() -> tuple[st.SearchStrategy[str], st.SearchStrategy[str], st.SearchStrategy[str]]:
    num = st.deferred(lambda: num_expr)
    text = st.deferred(lambda: str_expr)
    boolean = st.deferred(lambda: bool_expr)
    anything = expressions(3)
    num_expr = st.one_of(
        ints.map(int_text),
        reals.map(real_text),
        _scoped(("Cpus", "Memory")),
        st.tuples(num, st.sampled_from(["+", "-", "*", "/", "%"]), num).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        st.tuples(st.sampled_from(["-", "+"]), num).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(["int", "real", "INT", "floor", "ceiling", "round"]), st.one_of(num, text, anything)).map(lambda t: f"{t[0]}({t[1]})"),
        text.map(lambda s: f"size({s})"),
        st.tuples(boolean, num, num).map(lambda t: f"ifThenElse({t[0]}, {t[1]}, {t[2]})"),
        st.tuples(boolean, num, num).map(lambda t: f"({t[0]}) ? ({t[1]}) : ({t[2]})"),
        st.tuples(num, num).map(lambda t: f"({t[0]}) ?: ({t[1]})"),
        anything,
    )
    str_expr = st.one_of(
        strings.map(quote_string),
        _scoped(("State", "List")),
        st.lists(st.one_of(text, num, boolean), max_size=3).map(lambda a: f"strcat({', '.join(a)})"),
        st.tuples(st.sampled_from(["toLower", "toUpper", "tolower"]), st.one_of(text, num)).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(boolean, text, text).map(lambda t: f"({t[0]}) ? ({t[1]}) : ({t[2]})"),
    )
    cmp_ops = st.sampled_from(["<", "<=", ">", ">=", "==", "!=", "=?=", "=!=", "is", "isnt"])
    bool_expr = st.one_of(
        st.sampled_from(["true", "false", "a", "x", "TARGET.b", "undefined", "error"]),
        st.tuples(num, cmp_ops, num).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        st.tuples(text, cmp_ops, text).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        st.tuples(_scoped(("State", "Cpus", "Memory", "a")), cmp_ops, st.one_of(literal_texts, strings.map(quote_string))).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        st.tuples(boolean, st.sampled_from(["&&", "||"]), boolean).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        boolean.map(lambda b: f"!({b})"),
        st.tuples(st.sampled_from(["isUndefined", "isError", "isString", "isInteger"]), anything).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(["stringListMember", "stringListIMember"]), text, text, st.one_of(st.none(), text)).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]}{'' if t[3] is None else ', ' + t[3]})"
        ),
        st.tuples(st.one_of(st.sampled_from(REGEX_PATTERNS).map(quote_string), text), text, st.sampled_from(["", ', "i"', ', "I"', ', "m"', ', "s"', ", x"])).map(
            lambda t: f"regexp({t[0]}, {t[1]}{t[2]})"
        ),
        st.tuples(st.one_of(num, text), st.lists(st.one_of(num, text), max_size=3)).map(lambda t: f"member({t[0]}, {{{', '.join(t[1])}}})"),
        st.tuples(st.one_of(num, text), _scoped(("List", "a"))).map(lambda t: f"member({t[0]}, {t[1]})"),
    )
    return num_expr, str_expr, bool_expr


numeric_expressions, string_expressions, boolean_expressions = _typed()
typed_expressions = st.one_of(numeric_expressions, string_expressions, boolean_expressions)

_TYPED_VALUES = {
    "Cpus": st.one_of(ints, st.just("/Expr(Memory / 1024)/"), st.just("/Expr(TARGET.Cpus)/")),
    "Memory": st.one_of(ints, reals, st.just("/Expr(Cpus * 2048)/")),
    "State": st.one_of(strings, st.just("/Expr(toUpper(List))/")),
    "List": st.one_of(strings, st.lists(st.one_of(ints, strings), max_size=4), st.just('/Expr({State, "a", Cpus})/')),
}


def typed_ads() -> st.SearchStrategy[dict[str, Any]]:
    """JSON-form ads whose Cpus/Memory are numbers, State/List strings (or lists), others anything."""
    other = st.one_of(json_scalars, expressions(4).map(lambda t: f"/Expr({t})/"))
    canonical = st.fixed_dictionaries({}, optional={n: _TYPED_VALUES.get(n, other) for n in NAMES})
    return st.builds(_respelled, canonical, _flips)
