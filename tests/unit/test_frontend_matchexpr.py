"""match_expr: a whitelist of Python, checked at load with positions, evaluated like Python."""

from __future__ import annotations

import ast
import builtins

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gwms.frontend.matchexpr import (
    ALLOWED_FUNCTIONS,
    ALLOWED_METHODS,
    MatchExprError,
    combine_match_exprs,
    compile_match_expr,
    compile_safe_expr,
)

SITE_EXPR = (
    'glidein["attrs"]["GLIDEIN_Site"] in job["DESIRED_Sites"].split(",") '
    'and job["RequestMemory"] <= glidein["attrs"]["GLIDEIN_MaxMemMBs"]'
)


# ----------------------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    ("source", "line", "column", "fragment"),
    [
        ('__import__("os")', 1, 1, "calling '__import__'"),
        ("().__class__", 1, 1, "attribute access ('.__class__')"),
        ("().__class__.__bases__[0].__subclasses__()", 1, 1, "'__subclasses__'"),
        ("job.__class__", 1, 1, "'.__class__'"),
        ('job.get.__globals__["x"]', 1, 1, "'.__globals__'"),
        ("lambda: 1", 1, 1, "lambda is not allowed"),
        ("(lambda x: x)(1)", 1, 2, "only whitelisted functions"),
        ("[c for c in ().__class__.__mro__]", 1, 13, "'.__mro__'"),
        ("[__x for __x in job]", 1, 10, "may not be called '__x'"),
        ("[job for job in glidein]", 1, 10, "may not be called 'job'"),
        ("[x for x.y in job]", 1, 8, "plain name"),
        ("(y := 1)", 1, 2, "':='"),
        ('f"{job}"', 1, 1, "f-string"),
        ('open("/etc/passwd")', 1, 1, "calling 'open'"),
        ('eval("1")', 1, 1, "calling 'eval'"),
        ('getattr(job, "x")', 1, 1, "calling 'getattr'"),
        ('"{0.__class__}".format(job)', 1, 1, "method 'format'"),
        ("job.pop('x')", 1, 1, "method 'pop'"),
        ("x", 1, 1, "unknown name 'x'"),
        ("len(*job)", 1, 5, "'*' unpacking"),
        ("dict(**job)", 1, 8, "'**' unpacking"),
        ("{**job}", 1, 4, "'**' unpacking"),
        ("b'x'", 1, 1, "bytes literal"),
        ("...", 1, 1, "ellipsis literal"),
        ("1 << 100", 1, 1, "'<<'"),
        ("job['a'] and\n  foo(1)", 2, 3, "calling 'foo'"),
        ("job[", 1, 5, "not a valid Python expression"),
        ("", None, None, "is empty"),
    ],
)
def test_hostile_or_broken_expressions_are_rejected_with_position(
    source: str, line: int | None, column: int | None, fragment: str
) -> None:
    with pytest.raises(MatchExprError) as info:
        compile_match_expr(source)
    assert fragment in str(info.value)
    assert info.value.line == line
    assert info.value.column == column
    if line is not None:
        assert str(info.value).startswith(f"match_expr, line {line}, column {column}: ")


def test_position_counts_characters_not_bytes() -> None:
    with pytest.raises(MatchExprError) as info:
        compile_match_expr('"héllo" == job.__dict__')
    assert info.value.column == 12


def test_a_rejected_expression_never_runs() -> None:
    calls: list[int] = []
    ALLOWED_FUNCTIONS_BEFORE = dict(ALLOWED_FUNCTIONS)
    with pytest.raises(MatchExprError):
        compile_match_expr('len(job) and __import__("os").system("echo hi")')
    assert calls == [] and ALLOWED_FUNCTIONS == ALLOWED_FUNCTIONS_BEFORE


def test_bounded_repetition_and_power() -> None:
    assert compile_match_expr('"ab" * 3').evaluate() == "ababab"
    assert compile_match_expr("2 ** 10").evaluate() == 1024
    with pytest.raises(ValueError, match="repetition too large"):
        compile_match_expr('"x" * 10 ** 7').evaluate()
    with pytest.raises(ValueError, match="too large"):
        compile_match_expr("9 ** 9 ** 9").evaluate()
    assert compile_match_expr("2.0 ** 0.5").evaluate() == 2.0**0.5


def test_compiled_code_has_no_builtins() -> None:
    expr = compile_match_expr("len(job)")
    assert expr._function.__globals__["__builtins__"] == {}
    assert set(expr._function.__globals__) - {"__builtins__", "_gwms_expression"} == (
        set(ALLOWED_FUNCTIONS) | {"_gwms_mul", "_gwms_pow"}
    )


def test_comprehensions_see_the_variables() -> None:
    expr = compile_match_expr('any(s == glidein["site"] for s in job["sites"])')
    assert expr.matches({"sites": ["a", "b"]}, {"site": "b"})
    assert not expr.matches({"sites": ["a"]}, {"site": "b"})


# ----------------------------------------------------------------------------- evaluation


def test_the_fixture_expression_evaluates_like_python() -> None:
    expr = compile_match_expr(SITE_EXPR)
    job = {"DESIRED_Sites": "S1,S2", "RequestMemory": 2000}
    assert expr.matches(job, {"attrs": {"GLIDEIN_Site": "S2", "GLIDEIN_MaxMemMBs": 4000}})
    assert not expr.matches(job, {"attrs": {"GLIDEIN_Site": "S3", "GLIDEIN_MaxMemMBs": 4000}})
    assert not expr.matches(job, {"attrs": {"GLIDEIN_Site": "S1", "GLIDEIN_MaxMemMBs": 1000}})


def test_usual_original_expressions_are_accepted() -> None:
    for source in [
        "True",
        (
            '(job.get("DESIRED_Sites", "nosite") == "nosite") or '
            '(glidein["attrs"]["GLIDEIN_Site"] in job["DESIRED_Sites"].split(","))'
        ),
        'set(job["DESIRED_Sites"].split(",")) & set(glidein["attrs"].get("GLIDEIN_Site_List", "").split(","))',
        'any(s.strip() == glidein["attrs"]["GLIDEIN_Site"] for s in job.get("DESIRED_Sites", "").split(","))',
        'int(glidein["attrs"].get("GLIDEIN_CPUS", 1)) >= job.get("RequestCpus", 1)',
        'glidein["attrs"].get("GLIDEIN_Supported_VOs", "").lower().find(attr_dict["VO"]) >= 0',
        'job["RequestMemory"] / 1024.0 <= float(glidein["attrs"]["GLIDEIN_MaxMemMBs"]) // 1024 % 64',
        'not (job.get("x") is None) if len(job) > 2 else max([1, 2], key=abs) == 2',
        '{k: v for k, v in job.items() if k.startswith("R")} != {}',
        'sorted(job.keys())[0:2] == ["A", "B"][::1]',
    ]:
        compile_match_expr(source)


def test_evaluation_errors_are_no_match() -> None:
    expr = compile_match_expr('job["missing"] > 1')
    assert expr.matches({}, {}) is False
    with pytest.raises(KeyError):
        expr.evaluate({}, {})


def test_job_reads_are_found_statically() -> None:
    assert compile_match_expr(SITE_EXPR).job_reads == {"DESIRED_Sites", "RequestMemory"}
    assert compile_match_expr('job.get("A", 1) > 0 and "B" in job').job_reads == {"A", "B"}
    assert compile_match_expr("True").job_reads == frozenset()
    assert compile_match_expr("len(job) > 0").job_reads is None
    assert compile_match_expr('job[glidein["k"]] == 1').job_reads is None
    assert compile_match_expr('[v for v in job.values()] == []').job_reads is None


def test_combining_frontend_and_group_expressions() -> None:
    combined = combine_match_exprs(["True", 'job["a"] > 1', 'glidein["b"] == 2'])
    assert combined.matches({"a": 2}, {"b": 2})
    assert not combined.matches({"a": 2}, {"b": 3})
    assert not combined.matches({"a": 0}, {"b": 2})
    assert combine_match_exprs(["True", "True"]).always_true
    assert combined.job_reads == {"a"}


def test_safe_expr_other_names() -> None:
    expr = compile_safe_expr('glidein["attrs"]["X"] + frontend["Y"]', ("frontend", "glidein"))
    assert expr.evaluate(frontend={"Y": "b"}, glidein={"attrs": {"X": "a"}}) == "ab"
    with pytest.raises(MatchExprError, match="unknown name 'job'"):
        compile_safe_expr('job["x"]', ("frontend", "glidein"))


# ----------------------------------------------------------------------------- random ASTs

_NAMES = ["job", "glidein", "attr_dict", "x", "len", "int", "str", "__import__", "open", "eval",
          "getattr", "type", "object", "__builtins__", "globals", "vars", "exec"]
_ATTRS = ["split", "get", "lower", "keys", "items", "__class__", "__globals__", "__dict__",
          "format", "mro", "__subclasses__", "pop", "append", "__getattribute__", "f_globals",
          "gi_frame", "__code__", "startswith", "join"]
_CONSTANTS = ['"a"', '"S1,S2"', "1", "2.5", "True", "None", "b'x'", "...", "0", '"__class__"']


def _expressions() -> st.SearchStrategy[str]:
    leaf = st.sampled_from(_NAMES + _CONSTANTS)

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, st.sampled_from(_ATTRS)).map(lambda t: f"({t[0]}).{t[1]}"),
            st.tuples(inner, st.sampled_from(_ATTRS), st.lists(inner, max_size=2)).map(
                lambda t: f"({t[0]}).{t[1]}({', '.join(t[2])})"
            ),
            st.tuples(inner, st.lists(inner, max_size=2)).map(lambda t: f"({t[0]})({', '.join(t[1])})"),
            st.tuples(inner, inner).map(lambda t: f"({t[0]})[{t[1]}]"),
            st.tuples(inner, st.sampled_from(["+", "-", "*", "**", "/", "%", "<<", "@", "&", "|"]), inner).map(
                lambda t: f"({t[0]}) {t[1]} ({t[2]})"
            ),
            st.tuples(inner, st.sampled_from(["==", "<", "in", "not in", "is", "!="]), inner).map(
                lambda t: f"({t[0]}) {t[1]} ({t[2]})"
            ),
            st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
            inner.map(lambda e: f"not ({e})"),
            st.tuples(inner, inner).map(lambda t: f"[{t[0]} for x in {t[1]}]"),
            st.tuples(inner, inner).map(lambda t: f"({t[0]} for job in {t[1]})"),
            st.tuples(inner, inner).map(lambda t: f"{{{t[0]}: 1 for x in {t[1]} if x}}"),
            inner.map(lambda e: f"(lambda: {e})"),
            inner.map(lambda e: f"(x := {e})"),
            inner.map(lambda e: f'f"{{{e}}}"'),
            inner.map(lambda e: f"[*{e}]"),
            inner.map(lambda e: f"dict(**{e})"),
            st.tuples(inner, inner, inner).map(lambda t: f"({t[0]}) if ({t[1]}) else ({t[2]})"),
        )

    return st.recursive(leaf, extend, max_leaves=8)


_ALLOWED_NODES = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div,
    ast.FloorDiv, ast.Mod, ast.Pow, ast.BitAnd, ast.BitOr, ast.BitXor, ast.UnaryOp, ast.Not,
    ast.USub, ast.UAdd, ast.Invert, ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt,
    ast.GtE, ast.Is, ast.IsNot, ast.In, ast.NotIn, ast.IfExp, ast.Call, ast.keyword, ast.Attribute,
    ast.Subscript, ast.Slice, ast.Name, ast.Load, ast.Store, ast.Constant, ast.List, ast.Tuple,
    ast.Set, ast.Dict, ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp, ast.comprehension,
)


def _only_whitelisted(source: str) -> None:
    """An independent check of an accepted expression."""
    tree = ast.parse("(" + source + "\n)", mode="eval")
    method_calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    for node in ast.walk(tree):
        assert isinstance(node, _ALLOWED_NODES), f"{type(node).__name__} accepted in {source!r}"
        if isinstance(node, ast.Attribute):
            assert id(node) in method_calls, f"bare attribute accepted in {source!r}"
            assert node.attr in ALLOWED_METHODS, f"method {node.attr} accepted in {source!r}"
        if isinstance(node, ast.Name):
            assert not node.id.startswith("_"), f"name {node.id} accepted in {source!r}"
            assert node.id not in {"open", "eval", "exec", "getattr", "type", "object", "globals", "vars"}
        if isinstance(node, ast.Constant):
            assert isinstance(node.value, (str, int, float, bool, type(None)))


_SAMPLE_JOB = {"A": 1, "DESIRED_Sites": "S1,S2", "x": [1, 2]}
_SAMPLE_GLIDEIN = {"attrs": {"GLIDEIN_Site": "S1"}, "params": {}}


def _python_eval(source: str, job: object, glidein: object) -> object:
    env: dict[str, object] = {"__builtins__": {name: getattr(builtins, name) for name in ALLOWED_FUNCTIONS}}
    exec("def f(job, glidein, attr_dict):\n    return (" + source + "\n)", env)  # noqa: S102
    return env["f"](job, glidein, {})  # type: ignore[operator]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_expressions())
def test_random_expressions_only_whitelisted_nodes_are_ever_accepted(source: str) -> None:
    try:
        expr = compile_match_expr(source)
    except MatchExprError:
        return
    _only_whitelisted(source)
    # and an accepted expression evaluates like Python (unless gwms's bounds stopped it)
    ours: tuple[str, object]
    try:
        ours = ("value", expr.evaluate(_SAMPLE_JOB, _SAMPLE_GLIDEIN, {}))
    except ValueError as exc:
        if "too large" in str(exc):
            return
        ours = ("error", type(exc))
    except Exception as exc:  # noqa: BLE001
        ours = ("error", type(exc))
    try:
        theirs: tuple[str, object] = ("value", _python_eval(source, _SAMPLE_JOB, _SAMPLE_GLIDEIN))
    except Exception as exc:  # noqa: BLE001
        theirs = ("error", type(exc))
    assert ours == theirs


# ----------------------------------------------------------------------------- bound matching

_VALUES = st.one_of(
    st.sampled_from(["S1", "S2", "S3", "S1,S2", "S2,S3,S1", "", "s1"]),
    st.integers(min_value=-2, max_value=40000),
    st.none(),
    st.lists(st.sampled_from(["S1", "S2", "S3"]), max_size=3),
    st.sampled_from([1.5, True, float("nan")]),
)


def _attrs(keys: list[str]) -> st.SearchStrategy[dict[str, object]]:
    return st.dictionaries(st.sampled_from(keys), _VALUES, max_size=len(keys))


_JOB_KEYS = ["DESIRED_Sites", "RequestMemory", "RequestCpus", "Site", "Sites"]
_ENTRY_KEYS = ["GLIDEIN_Site", "GLIDEIN_MaxMemMBs", "GLIDEIN_CPUS", "Sites"]

BOUND_EXPRESSIONS = [
    SITE_EXPR,
    'glidein["attrs"]["GLIDEIN_Site"] in job["DESIRED_Sites"]',  # substring on str, or list membership
    'job["Site"] == glidein["attrs"]["GLIDEIN_Site"]',
    'glidein["attrs"]["GLIDEIN_Site"] == job["Site"] and job["RequestMemory"] > 0',
    'job["Site"] in glidein["attrs"]["Sites"]',
    (
        '(job.get("DESIRED_Sites", "nosite") == "nosite") or '
        '(glidein["attrs"]["GLIDEIN_Site"] in job["DESIRED_Sites"].split(","))'
    ),
    'any(s == glidein["attrs"].get("GLIDEIN_Site") for s in job.get("Sites") or [])',
    (
        'job.get("RequestCpus", 1) <= glidein["attrs"].get("GLIDEIN_CPUS", 1) '
        'and glidein["attrs"]["GLIDEIN_Site"] in job["DESIRED_Sites"].split(",")'
    ),
    'job["RequestMemory"] * 2 <= glidein["attrs"]["GLIDEIN_MaxMemMBs"] or attr_dict["all"]',
    'len(job) > 2',
    'glidein["attrs"]["GLIDEIN_Site"] != "S1"',
    "True",
    "False",
]


@pytest.mark.parametrize("source", BOUND_EXPRESSIONS)
@settings(max_examples=60, deadline=None)
@given(
    jobs=st.lists(_attrs(_JOB_KEYS), min_size=1, max_size=6),
    entries=st.lists(_attrs(_ENTRY_KEYS), max_size=8),
    all_flag=st.booleans(),
)
def test_bound_matching_equals_plain_evaluation(
    source: str, jobs: list[dict[str, object]], entries: list[dict[str, object]], all_flag: bool
) -> None:
    expr = compile_match_expr(source)
    glideins = [{"attrs": attrs, "params": {}} for attrs in entries]
    attr_dict = {"all": all_flag}
    bound = expr.bind(glideins, attr_dict)
    for job in jobs:
        expected = [i for i, g in enumerate(glideins) if expr.matches(job, g, attr_dict)]
        assert bound.matching(job) == expected


def test_the_site_expression_uses_an_index() -> None:
    expr = compile_match_expr(SITE_EXPR)
    glideins = [{"attrs": {"GLIDEIN_Site": f"S{i % 10}", "GLIDEIN_MaxMemMBs": 4000}} for i in range(50)]
    bound = expr.bind(glideins)
    assert bound._plan.index is not None and bound._plan.index.kind == "entry_in_job"
    job = {"DESIRED_Sites": "S3,S7", "RequestMemory": 1000}
    assert len(bound._candidates(bound._plan.job(job))) == 10
    assert bound.matching(job) == [i for i in range(50) if i % 10 in (3, 7)]


def test_entries_whose_hoisted_values_fail_are_evaluated_plainly() -> None:
    expr = compile_match_expr('job.get("a") == 1 or glidein["attrs"]["X"].lower() == "y"')
    glideins = [{"attrs": {}}, {"attrs": {"X": "Y"}}, {"attrs": {"X": 3}}]
    bound = expr.bind(glideins)
    assert bound.matching({"a": 1}) == [0, 1, 2]
    assert bound.matching({"a": 2}) == [1]


@given(st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_arbitrary_text_is_accepted_or_rejected_cleanly(text: str) -> None:
    try:
        compile_match_expr(text)
    except MatchExprError as exc:
        assert str(exc).startswith("match_expr")
    else:
        _only_whitelisted(text)
    assume(True)
