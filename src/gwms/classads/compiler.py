"""Compile ClassAd syntax trees into Python closures over JSON-form ads.

An *evaluator* is ``fn(my, target, path) -> value``: ``my`` and ``target`` are
JSON-form ads (``target`` may be None) and ``path`` is the tuple of
``(id(ad), attribute)`` pairs being evaluated, used to detect circular
references (which, as in classad2, evaluate to ``undefined``).

Attribute lookup follows classad2's matchmaking scopes: ``MY.x`` looks in
``my``; ``TARGET.x`` in ``target``; a bare ``x`` in ``my`` and then in
``target``. An attribute found in an ad that holds an expression is evaluated
with that ad as MY and the other as TARGET. Names are case-insensitive.

The compiled subset: literals, attribute references, lists, ``+ - * / %``,
comparisons, ``=?= =!= is isnt``, ``&& || !``, unary ``+ -``, ``?:`` and the
elvis ``?:``, and the functions in :data:`gwms.classads.functions.FUNCTIONS`
plus ``ifThenElse``. Anything else raises :class:`Unsupported` at compile time;
a case only classad2 can answer exactly raises
:class:`~gwms.classads.operators.FallbackToNative` at run time.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Final

from gwms.classads import operators as ops
from gwms.classads.errors import ClassAdSyntaxError
from gwms.classads.functions import (
    DEFAULT_DELIMITERS,
    FUNCTIONS,
    VOLATILE,
    compiled_pattern,
    regexp,
    string_list_tokens,
)
from gwms.classads.operators import FallbackToNative, truth
from gwms.classads.parser import parse_tree
from gwms.classads.tree import (
    AbsoluteRef,
    AttrRef,
    Binary,
    Call,
    Conditional,
    Elvis,
    ListExpr,
    Literal,
    Node,
    Select,
    Unary,
    walk,
)
from gwms.classads.values import ERROR, EXPR_PREFIX, EXPR_SUFFIX, UNDEFINED, ascii_lower

Value = Any
Ad = dict[str, Any]
Evaluator = Callable[[Ad, "Ad | None", tuple], Value]

_MISSING: Final = object()
_PREFIX: Final = EXPR_PREFIX
_EXPR_MIN_LEN: Final = len(EXPR_PREFIX) + len(EXPR_SUFFIX)


class Unsupported(Exception):
    """The expression uses a construct outside the compiled subset (classad2 evaluates it)."""


# -- attribute lookup and JSON-form values -------------------------------------------


_INDEX_BY_KEYS: dict[tuple[str, ...], dict[str, str]] = {}
_INDEX_BY_ID: dict[int, tuple[tuple[str, ...], dict[str, str]]] = {}


def key_index(ad: Ad) -> dict[str, str]:
    """Lower-cased name -> key as spelled in ``ad``.

    Shared by ads with the same keys (same producer) and remembered per ad object
    (the negotiator evaluates one job against many slots); both caches are checked
    against the ad's current keys, so they are never stale.
    """
    keys = tuple(ad)
    entry = _INDEX_BY_ID.get(id(ad))
    if entry is not None and entry[0] == keys:
        return entry[1]
    index = _INDEX_BY_KEYS.get(keys)
    if index is None:
        index = {}
        for key in keys:
            index.setdefault(key.lower(), key)
        if len(_INDEX_BY_KEYS) >= 1024:
            _INDEX_BY_KEYS.clear()
        _INDEX_BY_KEYS[keys] = index
    if len(_INDEX_BY_ID) >= 4096:
        _INDEX_BY_ID.clear()
    _INDEX_BY_ID[id(ad)] = (keys, index)
    return index


def _find_ignoring_case(ad: Ad, lname: str, spellings: list[str] | None = None) -> Any:
    """The raw value of ``lname`` in ``ad`` by a case-insensitive search, or MISSING.

    A found key's spelling is added to ``spellings`` so the next ad (from the same
    producer, spelled the same way) is a plain dict lookup.
    """
    if spellings:
        for spelling in spellings:
            raw = ad.get(spelling, _MISSING)
            if raw is not _MISSING:
                return raw
    key = key_index(ad).get(lname)
    if key is None:
        return _MISSING
    if spellings is not None and len(spellings) < 4 and key not in spellings:
        spellings.append(key)
    return ad.get(key, _MISSING)


def find(ad: Ad, name: str, lname: str) -> Any:
    """The raw JSON value of attribute ``name`` in ``ad`` (case-insensitive), or a MISSING marker."""
    raw = ad.get(name, _MISSING)
    if raw is _MISSING:
        return _find_ignoring_case(ad, lname)
    return raw


def is_missing(raw: Any) -> bool:
    """Whether :func:`find` found nothing."""
    return raw is _MISSING


_ATTR_CACHE: dict[str, tuple[Evaluator | None, bool]] = {}
_ATTR_CACHE_LIMIT: Final = 50_000


def _needs_native(my: Ad, target: Ad | None, path: tuple) -> Value:
    raise FallbackToNative("attribute expression outside the compiled subset")


def _const(value: Value) -> Evaluator:
    def constant(my: Ad, target: Ad | None, path: tuple) -> Value:
        return value

    return constant


def _attribute_entry(raw: str) -> tuple[Evaluator | None, bool]:
    """(evaluator, reads attributes) for a string starting with /Expr(; (None, False) if not an expression."""
    entry = _ATTR_CACHE.get(raw)
    if entry is None:
        if not (raw.endswith(EXPR_SUFFIX) and len(raw) >= _EXPR_MIN_LEN):
            return None, False
        try:
            tree = parse_tree(raw[len(EXPR_PREFIX) : -len(EXPR_SUFFIX)])
        except ClassAdSyntaxError:
            entry = (_const(ERROR), False)
        else:
            reads = any(isinstance(n, (AttrRef, AbsoluteRef, Select)) for n in walk(tree))
            try:
                entry = (compile_tree(tree), reads)
            except Unsupported:
                entry = (_needs_native, False)
        if len(_ATTR_CACHE) >= _ATTR_CACHE_LIMIT:
            _ATTR_CACHE.clear()
        _ATTR_CACHE[raw] = entry
    return entry


def _element(raw: Any, ad: Ad, other: Ad | None, path: tuple) -> Value:
    c = raw.__class__
    if c is int or c is float or c is bool:
        return raw
    if c is str:
        if raw.startswith(EXPR_PREFIX):
            fn = (_ATTR_CACHE.get(raw) or _attribute_entry(raw))[0]
            if fn is not None:
                return fn(ad, other, path)
        return raw
    if raw is None:
        return UNDEFINED
    if c is list or c is tuple:
        return tuple([_element(x, ad, other, path) for x in raw])
    if c is dict:
        return raw
    return ERROR


def resolve(raw: Any, ad: Ad, other: Ad | None, lname: str, path: tuple) -> Value:
    """The value of attribute ``lname`` whose raw JSON value in ``ad`` is ``raw``.

    Expressions are evaluated with ``ad`` as MY and ``other`` as TARGET.
    """
    c = raw.__class__
    if c is str:
        if raw.startswith(EXPR_PREFIX):
            fn, reads = _ATTR_CACHE.get(raw) or _attribute_entry(raw)
            if fn is not None:
                if not reads:
                    return fn(ad, other, path)
                key = (id(ad), lname)
                if key in path:
                    return UNDEFINED
                return fn(ad, other, path + (key,))
        return raw
    if c is int or c is float or c is bool:
        return raw
    if raw is None:
        return UNDEFINED
    if c is list or c is tuple:
        key = (id(ad), lname)
        if key in path:
            return UNDEFINED
        inner = path + (key,)
        return tuple([_element(x, ad, other, inner) for x in raw])
    if c is dict:
        return raw
    return ERROR


def _ref(node: AttrRef, spellings: list[str] | None = None) -> Evaluator:
    name, lname = node.name, node.name.lower()
    if spellings is None:
        spellings = []
    if node.scope is None:
        if lname in ("my", "target", "parent"):
            raise Unsupported(f"bare {node.name}")

        def ref(my: Ad, target: Ad | None, path: tuple) -> Value:
            raw = my.get(name, _MISSING)
            if raw is _MISSING:
                raw = _find_ignoring_case(my, lname, spellings)
                if raw is _MISSING:
                    if target is None:
                        return UNDEFINED
                    raw = target.get(name, _MISSING)
                    if raw is _MISSING:
                        raw = _find_ignoring_case(target, lname, spellings)
                        if raw is _MISSING:
                            return UNDEFINED
                    return resolve(raw, target, my, lname, path)
            c = raw.__class__
            if c is int or c is float or c is bool or (c is str and not raw.startswith(_PREFIX)):
                return raw
            return resolve(raw, my, target, lname, path)

    elif node.scope == "my":

        def ref(my: Ad, target: Ad | None, path: tuple) -> Value:
            raw = my.get(name, _MISSING)
            if raw is _MISSING:
                raw = _find_ignoring_case(my, lname, spellings)
                if raw is _MISSING:
                    return UNDEFINED
            c = raw.__class__
            if c is int or c is float or c is bool or (c is str and not raw.startswith(_PREFIX)):
                return raw
            return resolve(raw, my, target, lname, path)

    else:

        def ref(my: Ad, target: Ad | None, path: tuple) -> Value:
            if target is None:
                return UNDEFINED
            raw = target.get(name, _MISSING)
            if raw is _MISSING:
                raw = _find_ignoring_case(target, lname, spellings)
                if raw is _MISSING:
                    return UNDEFINED
            c = raw.__class__
            if c is int or c is float or c is bool or (c is str and not raw.startswith(_PREFIX)):
                return raw
            return resolve(raw, target, my, lname, path)

    return ref


# -- constant folding ----------------------------------------------------------------


def _fold(node: Node) -> Node:
    """Replace constant sub-trees by literals (so comparisons against ``-1`` specialise)."""
    if isinstance(node, Unary):
        operand = _fold(node.operand)
        new: Node = dataclasses.replace(node, operand=operand)
        parts: tuple[Node, ...] = (operand,)
    elif isinstance(node, Binary):
        left, right = _fold(node.left), _fold(node.right)
        new, parts = dataclasses.replace(node, left=left, right=right), (left, right)
    elif isinstance(node, Conditional):
        parts = (_fold(node.cond), _fold(node.then), _fold(node.otherwise))
        new = dataclasses.replace(node, cond=parts[0], then=parts[1], otherwise=parts[2])
    elif isinstance(node, Elvis):
        parts = (_fold(node.left), _fold(node.right))
        new = dataclasses.replace(node, left=parts[0], right=parts[1])
    elif isinstance(node, Call):
        parts = tuple(_fold(a) for a in node.args)
        new = dataclasses.replace(node, args=parts)
        if node.name.lower() in VOLATILE:
            return new
    elif isinstance(node, ListExpr):
        parts = tuple(_fold(a) for a in node.items)
        new = dataclasses.replace(node, items=parts)
    else:
        return node
    if all(isinstance(p, Literal) and p.exact for p in parts):
        try:
            value = _compile(new)({}, None, ())
        except (Unsupported, FallbackToNative):
            return new
        return Literal(node.pos, value)
    return new


# -- the compiler --------------------------------------------------------------------


def compile_tree(node: Node) -> Evaluator:
    """Compile a syntax tree into an evaluator; raises :class:`Unsupported` outside the subset."""
    return _compile(_fold(node))


def _compile(node: Node) -> Evaluator:
    if isinstance(node, Literal):
        if not node.exact:
            raise Unsupported("literal the ClassAd library reads differently")
        return _const(node.value)
    if isinstance(node, AttrRef):
        return _ref(node)
    if isinstance(node, Binary):
        return _binary(node)
    if isinstance(node, Unary):
        fn = {"-": ops.neg, "+": ops.pos, "!": ops.not_}.get(node.op)
        if fn is None:
            raise Unsupported(f"operator {node.op}")
        operand = _compile(node.operand)

        def unary(my: Ad, target: Ad | None, path: tuple) -> Value:
            return fn(operand(my, target, path))

        return unary
    if isinstance(node, Conditional):
        return _choice(_compile(node.cond), _compile(node.then), _compile(node.otherwise))
    if isinstance(node, Elvis):
        left, right = _compile(node.left), _compile(node.right)

        def elvis(my: Ad, target: Ad | None, path: tuple) -> Value:
            v = left(my, target, path)
            return right(my, target, path) if v is UNDEFINED else v

        return elvis
    if isinstance(node, Call):
        return _call(node)
    if isinstance(node, ListExpr):
        items = tuple(_compile(i) for i in node.items)

        def list_expr(my: Ad, target: Ad | None, path: tuple) -> Value:
            return tuple([item(my, target, path) for item in items])

        return list_expr
    raise Unsupported(type(node).__name__)


def _choice(cond: Evaluator, then: Evaluator, otherwise: Evaluator) -> Evaluator:
    def choice(my: Ad, target: Ad | None, path: tuple) -> Value:
        c = cond(my, target, path)
        if c is not True and c is not False:
            c = truth(c)
        if c is True:
            return then(my, target, path)
        if c is False:
            return otherwise(my, target, path)
        return c

    return choice


def _call(node: Call) -> Evaluator:
    lname = node.name.lower()
    args = tuple(_compile(a) for a in node.args)
    if lname == "ifthenelse":
        if len(args) != 3:
            raise Unsupported("ifThenElse with other than 3 arguments")
        return _choice(*args)
    spec = FUNCTIONS.get(lname)
    if spec is None:
        raise Unsupported(f"function {node.name}()")
    low, high, impl = spec
    if not low <= len(args) <= high:
        raise Unsupported(f"{node.name}() with {len(args)} arguments")
    if lname == "regexp":
        special = _regexp_literal(node, args)
        if special is not None:
            return special
    if lname in ("stringlistmember", "stringlistimember"):
        special = _string_list_literal(node, args, impl, lname == "stringlistimember")
        if special is not None:
            return special
    if len(args) == 1:
        (a,) = args

        def call1(my: Ad, target: Ad | None, path: tuple) -> Value:
            return impl(a(my, target, path))

        return call1
    if len(args) == 2:
        a, b = args

        def call2(my: Ad, target: Ad | None, path: tuple) -> Value:
            return impl(a(my, target, path), b(my, target, path))

        return call2

    def call(my: Ad, target: Ad | None, path: tuple) -> Value:
        return impl(*[a(my, target, path) for a in args])

    return call


def _regexp_literal(node: Call, args: tuple[Evaluator, ...]) -> Evaluator | None:
    """``regexp("literal pattern", x [, "options"])``: the pattern compiled once."""
    literals = [a.value if isinstance(a, Literal) else None for a in node.args]
    pattern = literals[0]
    options = literals[2] if len(literals) > 2 else ""
    if pattern.__class__ is not str or options.__class__ is not str:
        return None
    try:
        search = compiled_pattern(pattern, options).search
    except FallbackToNative:
        raise Unsupported("regular expression outside the portable subset") from None
    target_of = args[1]
    extra = (options,) if len(args) > 2 else ()

    def regexp_literal(my: Ad, target: Ad | None, path: tuple) -> Value:
        t = target_of(my, target, path)
        if t.__class__ is str and t.isascii():
            return search(t) is not None
        return regexp(pattern, t, *extra)

    return regexp_literal


def _string_list_literal(
    node: Call, args: tuple[Evaluator, ...], impl: Callable[..., Value], ignore_case: bool
) -> Evaluator | None:
    """``stringListMember`` with a literal list (a set lookup) or a literal item."""
    literals = [a.value if isinstance(a, Literal) else None for a in node.args]
    delimiters = literals[2] if len(literals) > 2 else DEFAULT_DELIMITERS
    if delimiters.__class__ is not str:
        return None
    extra = (delimiters,) if len(args) > 2 else ()
    fold = ascii_lower if ignore_case else (lambda s: s)
    item_of, list_of = args[0], args[1]
    if literals[1].__class__ is str:
        items = literals[1]
        members = frozenset(fold(t) for t in string_list_tokens(items, delimiters))

        def in_literal_list(my: Ad, target: Ad | None, path: tuple) -> Value:
            item = item_of(my, target, path)
            if item.__class__ is str:
                return fold(item) in members
            return impl(item, items, *extra)

        return in_literal_list
    if literals[0].__class__ is str:
        item = literals[0]
        wanted = fold(item)

        def literal_in_list(my: Ad, target: Ad | None, path: tuple) -> Value:
            items = list_of(my, target, path)
            if items.__class__ is str:
                if wanted not in fold(items):
                    return False
                return any(fold(t) == wanted for t in string_list_tokens(items, delimiters))
            return impl(item, items, *extra)

        return literal_in_list
    return None


def _flatten(node: Node, op: str) -> list[Node]:
    if isinstance(node, Binary) and node.op == op:
        return _flatten(node.left, op) + _flatten(node.right, op)
    return [node]


def _binary(node: Binary) -> Evaluator:
    op = node.op
    if op == "&&" or op == "||":
        parts = tuple(_compile(p) for p in _flatten(node, op))
        return _conjunction(parts) if op == "&&" else _disjunction(parts)
    if op in ops.COMPARISONS:
        special = _specialised_comparison(node)
        if special is not None:
            return special
        fn = ops.COMPARISONS[op]
    elif op in ops.ARITHMETIC:
        fn = ops.ARITHMETIC[op]
    else:
        raise Unsupported(f"operator {op}")
    if isinstance(node.right, Literal) and node.right.exact:
        left, constant = _compile(node.left), node.right.value

        def binary_constant(my: Ad, target: Ad | None, path: tuple) -> Value:
            return fn(left(my, target, path), constant)

        return binary_constant
    if isinstance(node.left, Literal) and node.left.exact:
        constant, right = node.left.value, _compile(node.right)

        def constant_binary(my: Ad, target: Ad | None, path: tuple) -> Value:
            return fn(constant, right(my, target, path))

        return constant_binary
    left, right = _compile(node.left), _compile(node.right)

    def binary(my: Ad, target: Ad | None, path: tuple) -> Value:
        return fn(left(my, target, path), right(my, target, path))

    return binary


def _conjunction(parts: tuple[Evaluator, ...]) -> Evaluator:
    if len(parts) == 2:
        a, b = parts

        def and2(my: Ad, target: Ad | None, path: tuple) -> Value:
            r = a(my, target, path)
            if r is not True:
                if r is False:
                    return False
                r = truth(r)
                if r is False or r is ERROR:
                    return r
            s = b(my, target, path)
            if s is not True and s is not False:
                s = truth(s)
            if r is True or s is False or s is ERROR:
                return s
            return UNDEFINED

        return and2

    def and_n(my: Ad, target: Ad | None, path: tuple) -> Value:
        state: Value = True
        for part in parts:
            r = part(my, target, path)
            if r is True:
                continue
            if r is False:
                return False
            r = truth(r)
            if r is False or r is ERROR:
                return r
            if r is UNDEFINED:
                state = UNDEFINED
        return state

    return and_n


def _disjunction(parts: tuple[Evaluator, ...]) -> Evaluator:
    def or_n(my: Ad, target: Ad | None, path: tuple) -> Value:
        state: Value = False
        for part in parts:
            r = part(my, target, path)
            if r is False:
                continue
            if r is True:
                return True
            r = truth(r)
            if r is True or r is ERROR:
                return r
            if r is UNDEFINED:
                state = UNDEFINED
        return state

    return or_n


# -- specialised comparisons: attribute OP literal ----------------------------------------
#
# The collector's queries are mostly conjunctions of "Attr OP literal". These closures
# read the attribute's raw JSON value and compare it directly when it is a plain
# number or string; anything else (a missing attribute, an expression, another type)
# goes through the general reference and comparison, so the answer is the same.


def _specialised_comparison(node: Binary) -> Evaluator | None:
    op, left, right = node.op, node.left, node.right
    if isinstance(right, AttrRef) and isinstance(left, Literal):
        left, right, op = right, left, ops.FLIPPED[op]
    if not (isinstance(left, AttrRef) and isinstance(right, Literal) and right.exact):
        return None
    if left.scope is None and left.lname in ("my", "target", "parent"):
        return None
    lit = right.value
    c = lit.__class__
    if c is str and lit.startswith(EXPR_PREFIX):
        return None
    spellings: list[str] = []
    ref = _ref(left, spellings)
    args = (left.name, left.scope == "target", spellings, ref)
    if op in ("=?=", "=!="):
        return _identity_test(*args, lit, op == "=!=")
    slow = ops.COMPARISONS[op]
    if c is int or c is float:
        return _numeric_test(*args, lit, op, slow)
    if c is str and op in ("==", "!="):
        return _string_equality(*args, lit, op == "!=", slow)
    return None


# Each closure below reads the attribute's raw value itself (as written, else as last
# spelled in an ad); reading through a helper function would cost a call per clause.


def _numeric_test(
    name: str, from_target: bool, spellings: list[str], ref: Evaluator, lit: Any, op: str, slow: Callable
) -> Evaluator:
    pyop = ops.PYTHON_COMPARE[op]
    is_int = lit.__class__ is int
    int_lit, real_lit = lit, float(lit)

    def number(my: Ad, target: Ad | None, path: tuple) -> Value:
        if from_target:
            v = target.get(name, _MISSING) if target is not None else _MISSING
            if v is _MISSING and spellings and target is not None:
                v = target.get(spellings[0], _MISSING)
        else:
            v = my.get(name, _MISSING)
            if v is _MISSING and spellings:
                v = my.get(spellings[0], _MISSING)
        c = v.__class__
        if c is int:
            return pyop(v, int_lit) if is_int else pyop(float(v), real_lit)
        if c is float:
            return pyop(v, real_lit)
        return slow(ref(my, target, path), lit)

    return number


def _string_equality(
    name: str, from_target: bool, spellings: list[str], ref: Evaluator, lit: str, negate: bool, slow: Callable
) -> Evaluator:
    lowered, size = ascii_lower(lit), len(lit)
    prefix = EXPR_PREFIX

    def string_equal(my: Ad, target: Ad | None, path: tuple) -> Value:
        if from_target:
            v = target.get(name, _MISSING) if target is not None else _MISSING
            if v is _MISSING and spellings and target is not None:
                v = target.get(spellings[0], _MISSING)
        else:
            v = my.get(name, _MISSING)
            if v is _MISSING and spellings:
                v = my.get(spellings[0], _MISSING)
        if v.__class__ is str:
            if v == lit:
                return not negate
            if not v.startswith(prefix):
                if len(v) != size:
                    return negate
                same = (v.lower() if v.isascii() else ascii_lower(v)) == lowered
                return same is not negate
        return slow(ref(my, target, path), lit)

    return string_equal


def _identity_test(
    name: str, from_target: bool, spellings: list[str], ref: Evaluator, lit: Any, negate: bool
) -> Evaluator:
    lit_class = lit.__class__
    prefix = EXPR_PREFIX
    slow = ops.not_identical if negate else ops.identical
    if lit is ERROR or lit_class not in (int, float, bool, str, type(UNDEFINED)):

        def is_special(my: Ad, target: Ad | None, path: tuple) -> Value:
            return slow(ref(my, target, path), lit)

        return is_special
    undefined = lit is UNDEFINED

    def identity(my: Ad, target: Ad | None, path: tuple) -> Value:
        if from_target:
            v = target.get(name, _MISSING) if target is not None else _MISSING
            if v is _MISSING and spellings and target is not None:
                v = target.get(spellings[0], _MISSING)
        else:
            v = my.get(name, _MISSING)
            if v is _MISSING and spellings:
                v = my.get(spellings[0], _MISSING)
        c = v.__class__
        if c is str:
            if not v.startswith(prefix):
                return (lit_class is str and v == lit) is not negate
        elif c is int or c is float or c is bool:
            return (c is lit_class and v == lit) is not negate
        elif v is None:
            return undefined is not negate
        return slow(ref(my, target, path), lit)

    return identity
