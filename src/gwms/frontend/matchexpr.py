"""Safe Python expressions: the frontend's ``match_expr`` and expression-typed attributes.

A group's ``match_expr`` is a Python expression over two dicts, ``job`` (a job ad) and
``glidein`` (a factory entry: ``{"attrs": {...}, "params": {...}, "monitor": {...}}``),
plus the constant ``attr_dict`` (the frontend's attributes), exactly as in GlideinWMS::

    glidein["attrs"]["GLIDEIN_Site"] in job["DESIRED_Sites"].split(",")
        and job["RequestMemory"] <= glidein["attrs"]["GLIDEIN_MaxMemMBs"]

The original runs it with ``eval``; gwms parses it once with :mod:`ast`, checks every
node against a whitelist and rejects anything else when the configuration is loaded,
naming the line and column (:class:`MatchExprError`). What is allowed:

- literals (str, int, float, bool, None), list/tuple/set/dict displays, subscripts and
  slices (``job["X"]``, ``s[1:3]``);
- arithmetic ``+ - * / // % **`` (``*`` and ``**`` are bounded so that ``"x" * 10**9``
  or ``9**9**9`` cannot exhaust the machine), bit operators ``& | ^`` (set operations),
  comparisons including ``in``/``not in``/``is``, ``and``/``or``/``not``, ``x if c else y``;
- calls of a few builtins (:data:`ALLOWED_FUNCTIONS`: ``int``, ``str``, ``len``, ``min``,
  ``any``, ...) and of a few non-mutating methods (:data:`ALLOWED_METHODS`: ``split``,
  ``get``, ``strip``, ``lower``, ``startswith``, ...), with plain keyword arguments;
- comprehensions and generator expressions whose targets are plain names.

Everything else is refused: attribute access other than calling a whitelisted method
(so no ``__class__``/``__globals__`` escapes), names other than the variables, the
whitelisted functions and comprehension variables, ``lambda``, ``:=``, f-strings,
``*args``/``**kwargs``, ``yield``/``await``, bytes literals. The compiled code runs with
no builtins at all.

Evaluation errors (a missing key, comparing str with int) mean "no match", as in the
original, which catches every exception of ``eval``.

Speed. :meth:`MatchExpr.bind` prepares the expression for one set of entries and
returns a :class:`BoundMatchExpr` whose :meth:`~BoundMatchExpr.matching` gives, for one
job, the indices of the entries it matches. It hoists the sub-expressions that read only
the job (computed once per job) and those that read only the entry (computed once per
entry and cycle), runs the rest in one generated comprehension, and, when a top-level
conjunct reads ``<entry value> in <job list>`` or ``<entry value> == <job value>`` (the
usual site match), looks the candidates up in an index instead of trying every entry.
Answers are exactly those of plain evaluation (tested by hypothesis): an entry or a
job whose hoisted values raise falls back to evaluating the whole expression per pair.

:meth:`MatchExpr.job_reads` lists the job attributes read with constant keys
(``job["X"]``, ``job.get("X")``, ``"X" in job``), or None when the expression uses
``job`` in a way static analysis cannot follow; the matcher uses it to cluster jobs.

Attribute values of type ``expr`` use the same checker with other variable names
(``frontend``, ``glidein``): :func:`compile_safe_expr`.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gwms.errors import GwmsError

__all__ = [
    "ALLOWED_FUNCTIONS",
    "ALLOWED_METHODS",
    "BoundMatchExpr",
    "MatchExpr",
    "MatchExprError",
    "SafeExpr",
    "combine_match_exprs",
    "compile_match_expr",
    "compile_safe_expr",
]

#: The variables a match_expr sees.
MATCH_NAMES: tuple[str, ...] = ("job", "glidein", "attr_dict")

#: Builtins an expression may call (or pass, e.g. ``key=len``).
ALLOWED_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "all": all,
    "any": any,
    "bool": bool,
    "dict": dict,
    "float": float,
    "frozenset": frozenset,
    "int": int,
    "len": len,
    "list": list,
    "max": max,
    "min": min,
    "round": round,
    "set": set,
    "sorted": sorted,
    "str": str,
    "sum": sum,
    "tuple": tuple,
}

#: Methods an expression may call, on any value. None of them mutates its object or
#: reaches Python internals (no ``format``, which can read attributes).
ALLOWED_METHODS: frozenset[str] = frozenset(
    {
        "casefold", "count", "endswith", "find", "get", "index", "intersection",
        "isalnum", "isalpha", "isdigit", "isdisjoint", "islower", "isnumeric",
        "issubset", "issuperset", "isupper", "items", "join", "keys", "lower",
        "lstrip", "partition", "replace", "rfind", "rpartition", "rsplit", "rstrip",
        "split", "splitlines", "startswith", "strip", "symmetric_difference", "title",
        "union", "difference", "upper", "values", "zfill",
    }
)

#: The largest sequence ``*`` may build and the largest integer exponent ``**`` takes.
MAX_REPEAT = 1_000_000
MAX_INT_EXPONENT = 256

_BOOL_OPS = (ast.And, ast.Or)
_BIN_OPS = (
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow,
    ast.BitAnd, ast.BitOr, ast.BitXor,
)
_UNARY_OPS = (ast.Not, ast.USub, ast.UAdd, ast.Invert)
_CMP_OPS = (
    ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Is, ast.IsNot, ast.In, ast.NotIn,
)
_CONSTANT_TYPES = (str, int, float, bool, type(None))

_DESCRIPTIONS = {
    "Lambda": "lambda",
    "NamedExpr": "the ':=' operator",
    "JoinedStr": "an f-string",
    "FormattedValue": "an f-string",
    "Starred": "'*' unpacking",
    "Await": "await",
    "Yield": "yield",
    "YieldFrom": "yield from",
    "Attribute": "attribute access",
    "Call": "this call",
    "LShift": "the '<<' operator",
    "RShift": "the '>>' operator",
    "MatMult": "the '@' operator",
}


class MatchExprError(GwmsError):
    """An expression that is not valid Python or uses something not allowed.

    ``line`` and ``column`` are 1-based positions in the expression text.
    """

    def __init__(
        self, message: str, *, what: str = "expression", line: int | None = None, column: int | None = None
    ) -> None:
        where = f"{what}, line {line}, column {column}: " if line is not None else f"{what}: "
        super().__init__(where + message)
        self.what = what
        self.reason = message
        self.line = line
        self.column = column


# ----------------------------------------------------------------------------- bounded ops


def _safe_mul(a: Any, b: Any) -> Any:
    """``a * b``, refusing to build a sequence longer than :data:`MAX_REPEAT`."""
    for seq, n in ((a, b), (b, a)):
        if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * max(n, 0) > MAX_REPEAT:
            raise ValueError("sequence repetition too large")
    return a * b


def _safe_pow(a: Any, b: Any) -> Any:
    """``a ** b``, refusing huge integer powers."""
    if isinstance(a, int) and isinstance(b, int) and abs(a) > 1 and b > MAX_INT_EXPONENT:
        raise ValueError("integer power too large")
    return a**b


_HELPERS: dict[str, Callable[..., Any]] = {"_gwms_mul": _safe_mul, "_gwms_pow": _safe_pow}


# ----------------------------------------------------------------------------- validation


def _position(source: str, node: ast.AST) -> tuple[int, int]:
    """1-based (line, column) of ``node`` in ``source`` (the text as the user wrote it).

    The text is parsed wrapped in parentheses (so it may span lines and start with
    blanks); line 1 is shifted by that one character. ``col_offset`` counts UTF-8 bytes.
    """
    line = getattr(node, "lineno", 1)
    col = getattr(node, "col_offset", 0)
    lines = source.split("\n")
    if line == 1:
        col -= 1
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    column = len(text.encode("utf-8")[: max(col, 0)].decode("utf-8", errors="ignore")) + 1
    return line, column


def _parse(source: str, what: str) -> ast.Expression:
    if not isinstance(source, str):
        raise MatchExprError(f"must be text, not {type(source).__name__}", what=what)
    if not source.strip():
        raise MatchExprError("is empty", what=what)
    try:
        tree = ast.parse("(" + source + "\n)", mode="eval")
    except SyntaxError as exc:
        line = exc.lineno or 1
        column = (exc.offset or 1) - (1 if line == 1 else 0)
        lines = source.split("\n")
        if line > len(lines):  # at the closing parenthesis gwms added: the end of the text
            line = len(lines)
            column = len(lines[-1]) + 1
        raise MatchExprError(
            f"not a valid Python expression: {exc.msg}", what=what, line=line, column=max(column, 1)
        ) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise MatchExprError(f"cannot be parsed: {exc}", what=what) from None
    return tree


class _Checker:
    """Walks a parsed expression and raises :class:`MatchExprError` at the first node
    outside the whitelist."""

    def __init__(self, source: str, what: str, names: frozenset[str]) -> None:
        self.source = source
        self.what = what
        self.names = names

    def fail(self, node: ast.AST, message: str) -> MatchExprError:
        line, column = _position(self.source, node)
        return MatchExprError(message, what=self.what, line=line, column=column)

    def not_allowed(self, node: ast.AST) -> MatchExprError:
        kind = type(node).__name__
        return self.fail(node, f"{_DESCRIPTIONS.get(kind, kind)} is not allowed")

    def check(self, node: ast.AST, bound: frozenset[str]) -> None:
        """Check ``node``; ``bound`` holds the comprehension variables in scope."""
        if isinstance(node, ast.Expression):
            self.check(node.body, bound)
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, _CONSTANT_TYPES):
                raise self.fail(node, f"a {type(node.value).__name__} literal is not allowed")
        elif isinstance(node, ast.Name):
            if not isinstance(node.ctx, ast.Load):
                raise self.not_allowed(node)
            if node.id not in self.names and node.id not in ALLOWED_FUNCTIONS and node.id not in bound:
                raise self.fail(node, f"unknown name {node.id!r} (known: {', '.join(sorted(self.names))})")
        elif isinstance(node, ast.BoolOp):
            if not isinstance(node.op, _BOOL_OPS):
                raise self.not_allowed(node.op)
            for value in node.values:
                self.check(value, bound)
        elif isinstance(node, ast.BinOp):
            if not isinstance(node.op, _BIN_OPS):
                raise self.fail(node, f"{_DESCRIPTIONS.get(type(node.op).__name__, 'this operator')} is not allowed")
            self.check(node.left, bound)
            self.check(node.right, bound)
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, _UNARY_OPS):
                raise self.not_allowed(node)
            self.check(node.operand, bound)
        elif isinstance(node, ast.Compare):
            for op in node.ops:
                if not isinstance(op, _CMP_OPS):
                    raise self.not_allowed(node)
            self.check(node.left, bound)
            for comparator in node.comparators:
                self.check(comparator, bound)
        elif isinstance(node, ast.IfExp):
            self.check(node.test, bound)
            self.check(node.body, bound)
            self.check(node.orelse, bound)
        elif isinstance(node, ast.Subscript):
            if not isinstance(node.ctx, ast.Load):
                raise self.not_allowed(node)
            self.check(node.value, bound)
            self.check(node.slice, bound)
        elif isinstance(node, ast.Slice):
            for part in (node.lower, node.upper, node.step):
                if part is not None:
                    self.check(part, bound)
        elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            if isinstance(node, (ast.List, ast.Tuple)) and not isinstance(node.ctx, ast.Load):
                raise self.not_allowed(node)
            for element in node.elts:
                if isinstance(element, ast.Starred):
                    raise self.not_allowed(element)
                self.check(element, bound)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if key is None:
                    raise self.fail(value, "'**' unpacking is not allowed")
                self.check(key, bound)
                self.check(value, bound)
        elif isinstance(node, ast.Call):
            self.check_call(node, bound)
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            self.check_comprehension(node, bound)
        elif isinstance(node, ast.Attribute):
            raise self.fail(node, f"attribute access ('.{node.attr}') is allowed only to call a method")
        else:
            raise self.not_allowed(node)

    def check_call(self, node: ast.Call, bound: frozenset[str]) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id not in ALLOWED_FUNCTIONS or func.id in bound:
                raise self.fail(func, f"calling {func.id!r} is not allowed")
        elif isinstance(func, ast.Attribute):
            if func.attr not in ALLOWED_METHODS:
                raise self.fail(func, f"calling method {func.attr!r} is not allowed")
            self.check(func.value, bound)
        else:
            raise self.fail(func, "only whitelisted functions and methods may be called")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.not_allowed(arg)
            self.check(arg, bound)
        for keyword in node.keywords:
            if keyword.arg is None:
                raise self.fail(keyword.value, "'**' unpacking is not allowed")
            if keyword.arg.startswith("_"):
                raise self.fail(keyword.value, f"keyword {keyword.arg!r} is not allowed")
            self.check(keyword.value, bound)

    def check_comprehension(self, node: ast.AST, bound: frozenset[str]) -> None:
        generators: list[ast.comprehension] = node.generators  # type: ignore[attr-defined]
        inner = bound
        for generator in generators:
            if generator.is_async:
                raise self.fail(node, "async comprehensions are not allowed")
            self.check(generator.iter, inner)
            inner = inner | self.target_names(generator.target)
            for condition in generator.ifs:
                self.check(condition, inner)
        if isinstance(node, ast.DictComp):
            self.check(node.key, inner)
            self.check(node.value, inner)
        else:
            self.check(node.elt, inner)  # type: ignore[attr-defined]

    def target_names(self, target: ast.AST) -> frozenset[str]:
        if isinstance(target, ast.Name):
            name = target.id
            if name.startswith("_") or name in self.names or name in ALLOWED_FUNCTIONS:
                raise self.fail(target, f"a comprehension variable may not be called {name!r}")
            return frozenset({name})
        if isinstance(target, (ast.Tuple, ast.List)):
            out: frozenset[str] = frozenset()
            for element in target.elts:
                out |= self.target_names(element)
            return out
        raise self.fail(target, "a comprehension variable must be a plain name")


class _BoundOps(ast.NodeTransformer):
    """Rewrites ``a * b`` and ``a ** b`` into calls of the bounded helpers."""

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        helper = {ast.Mult: "_gwms_mul", ast.Pow: "_gwms_pow"}.get(type(node.op))
        if helper is None:
            return node
        call = ast.Call(func=ast.Name(id=helper, ctx=ast.Load()), args=[node.left, node.right], keywords=[])
        return ast.copy_location(call, node)


def _validated(source: str, names: Sequence[str], what: str) -> ast.Expression:
    tree = _parse(source, what)
    try:
        _Checker(source, what, frozenset(names)).check(tree, frozenset())
    except RecursionError:
        raise MatchExprError("nested too deeply", what=what) from None
    return tree


def _compile(tree: ast.Expression, what: str, names: Sequence[str]) -> Callable[..., Any]:
    """A function of ``names`` returning the expression's value.

    A function rather than ``eval`` with a locals dict: comprehensions inside the
    expression then see the variables (with ``eval`` they would look them up as globals
    and fail, a trap the original falls into).
    """
    body = _BoundOps().visit(_copy(tree)).body
    function = ast.FunctionDef(
        name="_gwms_expression",
        args=ast.arguments(
            posonlyargs=[], args=[ast.arg(arg=n) for n in names], kwonlyargs=[], kw_defaults=[], defaults=[]
        ),
        body=[ast.Return(value=body)],
        decorator_list=[],
        returns=None,
    )
    module = ast.fix_missing_locations(ast.Module(body=[function], type_ignores=[]))
    namespace = _globals()
    exec(compile(module, f"<{what}>", "exec"), namespace)  # noqa: S102 - a validated tree, no builtins
    return namespace["_gwms_expression"]


def _copy(tree: ast.AST) -> Any:
    import copy

    return copy.deepcopy(tree)


def _globals() -> dict[str, Any]:
    env: dict[str, Any] = {"__builtins__": {}}
    env.update(ALLOWED_FUNCTIONS)
    env.update(_HELPERS)
    return env


# ----------------------------------------------------------------------------- SafeExpr


class SafeExpr:
    """A checked Python expression over a fixed set of variable names.

    ``SafeExpr("glidein['attrs']['X'] + 1", names=("frontend", "glidein"))`` is
    callable with those names as keyword arguments. Build it with
    :func:`compile_safe_expr`.
    """

    def __init__(self, source: str, names: Sequence[str], what: str = "expression") -> None:
        self.source = source
        self.names: tuple[str, ...] = tuple(names)
        self.what = what
        self._tree = _validated(source, self.names, what)
        self._function = _compile(self._tree, what, self.names)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.source == self.source and other.names == self.names  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.source, self.names))

    @property
    def tree(self) -> ast.Expression:
        """The validated syntax tree (a copy; the expression keeps its own)."""
        return _copy(self._tree)

    def evaluate(self, **variables: Any) -> Any:
        """The expression's value with the given variables (missing ones are None)."""
        return self._function(*(variables.get(name) for name in self.names))


def compile_safe_expr(source: str, names: Sequence[str], what: str = "expression") -> SafeExpr:
    """Check and compile ``source`` as an expression over ``names``.

    Raises:
        MatchExprError: the text is not Python, or uses something not allowed (with
        the line and column).
    """
    return SafeExpr(source, names, what)


# ----------------------------------------------------------------------------- MatchExpr


_JOB = "job"
_ENTRY_NAMES = frozenset({"glidein", "attr_dict"})


def _free_names(node: ast.AST, memo: dict[int, frozenset[str]]) -> frozenset[str]:
    """The variables a node reads (function names and helpers excluded), memoized by id."""
    key = id(node)
    if key in memo:
        return memo[key]
    if isinstance(node, ast.Name):
        result = frozenset() if (node.id in ALLOWED_FUNCTIONS or node.id in _HELPERS) else frozenset({node.id})
    elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
        found: set[str] = set()
        own: set[str] = set()
        for child in ast.iter_child_nodes(node):
            found |= _free_names(child, memo)
        for generator in node.generators:
            own |= {n.id for n in ast.walk(generator.target) if isinstance(n, ast.Name)}
        # the first iterable is evaluated outside the comprehension's own scope
        result = frozenset(found - own) | _free_names(node.generators[0].iter, memo)
    else:
        found = set()
        for child in ast.iter_child_nodes(node):
            found |= _free_names(child, memo)
        result = frozenset(found)
    memo[key] = result
    return result


def _kind(names: frozenset[str]) -> str:
    """'job', 'entry', 'const' or 'mixed' for a set of free variables."""
    if not names:
        return "const"
    if names == {_JOB}:
        return "job"
    if names <= _ENTRY_NAMES:
        return "entry"
    return "mixed"


def _static_job_reads(tree: ast.Expression) -> frozenset[str] | None:
    """The job attributes the expression reads with constant keys, or None when ``job``
    is used otherwise (passed whole, iterated, read with a computed key)."""
    reads: set[str] = set()
    allowed_uses: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _is_job(node.value):
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                reads.add(node.slice.value)
                allowed_uses.add(id(node.value))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and _is_job(node.func.value)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and not node.keywords
            and len(node.args) <= 2
        ):
            reads.add(node.args[0].value)
            allowed_uses.add(id(node.func.value))
        elif (
            isinstance(node, ast.Compare)
            and len(node.ops) == 1
            and isinstance(node.ops[0], (ast.In, ast.NotIn))
            and _is_job(node.comparators[0])
            and isinstance(node.left, ast.Constant)
            and isinstance(node.left.value, str)
        ):
            reads.add(node.left.value)
            allowed_uses.add(id(node.comparators[0]))
    for node in ast.walk(tree):
        if _is_job(node) and id(node) not in allowed_uses:
            return None
    return frozenset(reads)


def _is_job(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == _JOB


@dataclass(frozen=True)
class _IndexPlan:
    """A top-level conjunct usable as an index: ``kind`` is 'entry_in_job' (entry value
    in a job collection), 'job_in_entry' (job value in an entry collection) or 'equal'."""

    kind: str
    job_slot: int
    entry_slot: int


class _Hoister(ast.NodeTransformer):
    """Replaces maximal job-only and entry-only sub-trees by slot variables."""

    def __init__(self, memo: dict[int, frozenset[str]]) -> None:
        self.memo = memo
        self.job_parts: list[ast.expr] = []
        self.entry_parts: list[ast.expr] = []

    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, ast.expr) and not isinstance(node, ast.Constant):
            kind = _kind(_free_names(node, self.memo))
            if kind == "job":
                return self._slot(node, "_gwms_j", self.job_parts)
            if kind == "entry":
                return self._slot(node, "_gwms_g", self.entry_parts)
        return self.generic_visit(node)

    def _slot(self, node: ast.expr, prefix: str, parts: list[ast.expr]) -> ast.Name:
        parts.append(node)
        index = len(parts) - 1
        return ast.copy_location(ast.Name(id=f"{prefix}{index}", ctx=ast.Load()), node)


def _conjuncts(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
        out: list[ast.expr] = []
        for value in node.values:
            out.extend(_conjuncts(value))
        return out
    return [node]


def _index_plan(body: ast.expr, slot_of: dict[int, tuple[str, int]]) -> _IndexPlan | None:
    """The first top-level conjunct of ``body`` that compares an entry slot with a job
    slot by ``in`` or ``==`` (``slot_of`` maps slot-name nodes to their slots)."""
    for conjunct in _conjuncts(body):
        if not (isinstance(conjunct, ast.Compare) and len(conjunct.ops) == 1):
            continue
        left = slot_of.get(id(conjunct.left))
        right = slot_of.get(id(conjunct.comparators[0]))
        if left is None or right is None:
            continue
        op = conjunct.ops[0]
        if isinstance(op, ast.In):
            if left[0] == "_gwms_g" and right[0] == "_gwms_j":
                return _IndexPlan("entry_in_job", right[1], left[1])
            if left[0] == "_gwms_j" and right[0] == "_gwms_g":
                return _IndexPlan("job_in_entry", left[1], right[1])
        elif isinstance(op, ast.Eq):
            if left[0] == "_gwms_g" and right[0] == "_gwms_j":
                return _IndexPlan("equal", right[1], left[1])
            if left[0] == "_gwms_j" and right[0] == "_gwms_g":
                return _IndexPlan("equal", left[1], right[1])
    return None


def _function(name: str, params: list[str], body: list[ast.stmt]) -> ast.FunctionDef:
    args = ast.arguments(
        posonlyargs=[],
        args=[ast.arg(arg=p) for p in params],
        kwonlyargs=[],
        kw_defaults=[],
        defaults=[],
    )
    return ast.FunctionDef(name=name, args=args, body=body, decorator_list=[], returns=None)


def _store_tuple(names: list[str]) -> ast.Tuple:
    return ast.Tuple(elts=[ast.Name(id=n, ctx=ast.Store()) for n in names], ctx=ast.Store())


def _load(name: str) -> ast.Name:
    return ast.Name(id=name, ctx=ast.Load())


class MatchExpr(SafeExpr):
    """A checked ``match_expr`` over ``job``, ``glidein`` and ``attr_dict``.

    Call :meth:`matches` for one pair, or :meth:`bind` to match many jobs against a
    fixed list of entries quickly. Build it with :func:`compile_match_expr`.
    """

    def __init__(self, source: str, what: str = "match_expr", *, tree: ast.Expression | None = None) -> None:
        if tree is None:
            super().__init__(source, MATCH_NAMES, what)
        else:  # an already validated tree (see combine_match_exprs)
            self.source = source
            self.names = MATCH_NAMES
            self.what = what
            self._tree = tree
            self._function = _compile(tree, what, MATCH_NAMES)
        self._job_reads = _static_job_reads(self._tree)
        self._plan: _Plan | None = None

    @property
    def job_reads(self) -> frozenset[str] | None:
        """Job attributes read with constant keys; None if not statically known."""
        return self._job_reads

    @property
    def always_true(self) -> bool:
        """Whether the expression is the literal ``True`` (no evaluation needed)."""
        body = self._tree.body
        return isinstance(body, ast.Constant) and body.value is True

    def evaluate(self, job: Any = None, glidein: Any = None, attr_dict: Any = None, **_: Any) -> Any:  # type: ignore[override]
        """The expression's value for one job and one entry; errors propagate."""
        return self._function(job, glidein, attr_dict)

    def matches(self, job: Any, glidein: Any, attr_dict: Any = None) -> bool:
        """Whether ``job`` matches ``glidein``: a true value; an evaluation error is no match."""
        try:
            return bool(self.evaluate(job, glidein, attr_dict))
        except Exception:  # noqa: BLE001 - any failure of a user expression is "no match"
            return False

    def bind(self, glideins: Sequence[Any], attr_dict: Any = None) -> BoundMatchExpr:
        """Prepare matching against ``glideins`` (the entries' ``glidein`` dicts, in order)."""
        if self._plan is None:
            self._plan = _Plan(self)
        return BoundMatchExpr(self, self._plan, glideins, attr_dict)


class _Plan:
    """The generated functions of a match expression (built once, reused per cycle)."""

    def __init__(self, expr: MatchExpr) -> None:
        tree = _BoundOps().visit(expr.tree)
        ast.fix_missing_locations(tree)
        memo: dict[int, frozenset[str]] = {}
        hoister = _Hoister(memo)
        residual = hoister.visit(tree).body
        self.index = self._find_index(residual, hoister)
        job_names = [f"_gwms_j{i}" for i in range(len(hoister.job_parts))]
        entry_names = [f"_gwms_g{i}" for i in range(len(hoister.entry_parts))]
        module_body: list[ast.stmt] = []

        # job hoist: def _gwms_job(job): return (part0, part1, ...)
        module_body.append(
            _function(
                "_gwms_job",
                ["job"],
                [ast.Return(value=ast.Tuple(elts=list(hoister.job_parts), ctx=ast.Load()))],
            )
        )
        # entry hoist: def _gwms_entry(glidein, attr_dict): return (...)
        module_body.append(
            _function(
                "_gwms_entry",
                ["glidein", "attr_dict"],
                [ast.Return(value=ast.Tuple(elts=list(hoister.entry_parts), ctx=ast.Load()))],
            )
        )
        unpack_job: list[ast.stmt] = []
        if job_names:
            unpack_job.append(ast.Assign(targets=[_store_tuple(job_names)], value=_load("_gwms_J")))
        # fast: def _gwms_fast(_gwms_J, _gwms_G): return [i for (i, g0, ...) in G if residual]
        target = _store_tuple(["_gwms_i", *entry_names])
        comprehension = ast.ListComp(
            elt=_load("_gwms_i"),
            generators=[ast.comprehension(target=target, iter=_load("_gwms_G"), ifs=[_copy(residual)], is_async=0)],
        )
        body = [*unpack_job, ast.Return(value=comprehension)]
        module_body.append(_function("_gwms_fast", ["_gwms_J", "_gwms_G"], body))
        # pair: def _gwms_pair(_gwms_J, _gwms_E): unpack; return residual
        pair_body: list[ast.stmt] = [*_copy(unpack_job)]
        pair_body.append(ast.Assign(targets=[_store_tuple(["_gwms_i", *entry_names])], value=_load("_gwms_E")))
        pair_body.append(ast.Return(value=_copy(residual)))
        module_body.append(_function("_gwms_pair", ["_gwms_J", "_gwms_E"], pair_body))
        module = ast.fix_missing_locations(ast.Module(body=module_body, type_ignores=[]))
        namespace = _globals()
        exec(compile(module, f"<{expr.what}>", "exec"), namespace)  # noqa: S102 - generated from a validated tree
        self.job = namespace["_gwms_job"]
        self.entry = namespace["_gwms_entry"]
        self.fast = namespace["_gwms_fast"]
        self.pair = namespace["_gwms_pair"]
        self.job_slots = len(job_names)
        self.entry_slots = len(entry_names)

    @staticmethod
    def _find_index(tree_body: ast.expr, hoister: _Hoister) -> _IndexPlan | None:
        slot_by_name: dict[str, tuple[str, int]] = {}
        for prefix, parts in (("_gwms_j", hoister.job_parts), ("_gwms_g", hoister.entry_parts)):
            for index in range(len(parts)):
                slot_by_name[f"{prefix}{index}"] = (prefix, index)
        lookup: dict[int, tuple[str, int]] = {}
        for node in ast.walk(tree_body):
            if isinstance(node, ast.Name) and node.id in slot_by_name:
                lookup[id(node)] = slot_by_name[node.id]
        return _index_plan(tree_body, lookup)


_COLLECTIONS = (list, tuple, set, frozenset, dict)


class BoundMatchExpr:
    """A match expression prepared for one list of entries (one cycle).

    :meth:`matching` returns the sorted indices of the entries a job matches. Entries
    whose hoisted values cannot be computed are evaluated per pair with the plain
    expression, so answers equal :meth:`MatchExpr.matches` for every pair.
    ``errors`` counts pairs whose evaluation raised (reported as no match).
    """

    def __init__(self, expr: MatchExpr, plan: _Plan, glideins: Sequence[Any], attr_dict: Any) -> None:
        self.expr = expr
        self._plan = plan
        self._attr_dict = attr_dict
        self._glideins = list(glideins)
        self.errors = 0
        fast: list[tuple[Any, ...]] = []
        slow: list[int] = []
        for index, glidein in enumerate(self._glideins):
            try:
                values = plan.entry(glidein, attr_dict)
            except Exception:  # noqa: BLE001 - evaluated per pair instead
                slow.append(index)
                continue
            fast.append((index, *values))
        self._fast = fast
        self._slow = slow
        self._index: dict[Any, list[int]] | None = None
        self._unindexed: list[int] = []
        if plan.index is not None and fast:
            self._build_index(plan.index)

    @property
    def size(self) -> int:
        """The number of entries."""
        return len(self._glideins)

    def _build_index(self, plan: _IndexPlan) -> None:
        index: dict[Any, list[int]] = {}
        unindexed: list[int] = []
        slot = 1 + plan.entry_slot
        for position, row in enumerate(self._fast):
            value = row[slot]
            if plan.kind == "job_in_entry":
                if not isinstance(value, _COLLECTIONS):
                    unindexed.append(position)
                    continue
                try:
                    keys = set(value)
                except TypeError:
                    unindexed.append(position)
                    continue
            else:
                keys = (value,)
            try:
                for key in keys:
                    hash(key)
            except TypeError:
                unindexed.append(position)
                continue
            for key in keys:
                index.setdefault(key, []).append(position)
        self._index = index
        self._unindexed = unindexed

    def _candidates(self, job_values: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """The fast entries the indexed conjunct does not rule out, in entry order."""
        plan = self._plan.index
        index = self._index
        if plan is None or index is None:
            return self._fast
        value = job_values[plan.job_slot]
        hits: list[int] = []
        try:
            if plan.kind == "entry_in_job":
                if not isinstance(value, _COLLECTIONS):
                    return self._fast  # e.g. a substring test on a str: no index
                get = index.get
                for element in value:
                    found = get(element)
                    if found:
                        hits += found
            else:
                hits += index.get(value, ())
        except TypeError:  # an unhashable value
            return self._fast
        hits += self._unindexed
        if len(hits) > 1:
            hits = sorted(set(hits))
        return list(map(self._fast.__getitem__, hits))

    def matching(self, job: Any) -> list[int]:
        """Sorted indices of the entries ``job`` matches."""
        plan = self._plan
        try:
            job_values = plan.job(job)
        except Exception:  # noqa: BLE001 - evaluate the whole expression per pair
            return self._matching_plain(job, range(len(self._glideins)))
        candidates = self._candidates(job_values)
        try:
            found = plan.fast(job_values, candidates)
        except Exception:  # noqa: BLE001 - one pair raised: go pair by pair
            found = []
            for row in candidates:
                try:
                    if plan.pair(job_values, row):
                        found.append(row[0])
                except Exception:  # noqa: BLE001
                    self.errors += 1
        if self._slow:
            found = sorted(itertools.chain(found, self._matching_plain(job, self._slow)))
        return found

    def _matching_plain(self, job: Any, indices: Iterable[int]) -> list[int]:
        out: list[int] = []
        expr = self.expr
        for index in indices:
            try:
                if expr.evaluate(job, self._glideins[index], self._attr_dict):
                    out.append(index)
            except Exception:  # noqa: BLE001
                self.errors += 1
        return out


def compile_match_expr(source: str, what: str = "match_expr") -> MatchExpr:
    """Check and compile a ``match_expr``.

    Raises:
        MatchExprError: not a Python expression, or something outside the whitelist;
        the message gives the line and column.
    """
    return MatchExpr(source, what)


def combine_match_exprs(exprs: Iterable[MatchExpr | str], what: str = "match_expr") -> MatchExpr:
    """The conjunction of several match expressions (the frontend's and the group's).

    Literal ``True`` parts are dropped; no parts (or only ``True``) gives ``True``.
    """
    parts: list[MatchExpr] = []
    for expr in exprs:
        compiled = expr if isinstance(expr, MatchExpr) else compile_match_expr(expr, what)
        if not compiled.always_true:
            parts.append(compiled)
    if not parts:
        return compile_match_expr("True", what)
    if len(parts) == 1:
        return parts[0]
    body = ast.BoolOp(op=ast.And(), values=[p.tree.body for p in parts])
    tree = ast.fix_missing_locations(ast.Expression(body=body))
    source = " and ".join(f"({p.source})" for p in parts)
    return MatchExpr(source, what, tree=tree)

