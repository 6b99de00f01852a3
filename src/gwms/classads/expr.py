"""Parsed ClassAd expressions and their evaluation over JSON-form ads.

:func:`evaluate` runs gwms's compiled evaluator (:mod:`gwms.classads.compiler`)
when the expression is in its subset and falls back to classad2 otherwise, so
callers always get the ClassAd library's answer.
"""

from __future__ import annotations

from typing import Any, Mapping

import classad2

from gwms.classads import native
from gwms.classads.compiler import Evaluator, Unsupported, compile_tree
from gwms.classads.errors import ClassAdError
from gwms.classads.jsonform import ad_from_json, native_value_to_json
from gwms.classads.operators import FallbackToNative
from gwms.classads.parser import parse_tree
from gwms.classads.tree import Node
from gwms.classads.values import ERROR, UNDEFINED, expr_text, is_expr_string

Value = Any
JsonAd = Mapping[str, Any]

_EMPTY: dict[str, Any] = {}


class Expr:
    """A parsed ClassAd expression.

    ``text`` is the source text, ``tree`` gwms's syntax tree. The classad2
    ``ExprTree`` (:attr:`native`) and the compiled evaluator are built on first use.
    """

    __slots__ = ("text", "tree", "_native", "_evaluator", "_compiled")

    def __init__(self, text: str, tree: Node) -> None:
        self.text = text
        self.tree = tree
        self._native: classad2.ExprTree | None = None
        self._evaluator: Evaluator | None = None
        self._compiled = False

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expr) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    @property
    def native(self) -> classad2.ExprTree:
        """The classad2 ``ExprTree`` for this expression."""
        if self._native is None:
            self._native = native.native_expr(self.text)
        return self._native

    @property
    def evaluator(self) -> Evaluator | None:
        """The compiled evaluator, or None if the expression is outside the compiled subset."""
        if not self._compiled:
            try:
                self._evaluator = compile_tree(self.tree)
            except Unsupported:
                self._evaluator = None
            self._compiled = True
        return self._evaluator

    @property
    def compiled(self) -> bool:
        """Whether gwms evaluates this expression itself (else classad2 does)."""
        return self.evaluator is not None

    def json(self) -> str:
        """The JSON-form string ``"/Expr(text)/"``."""
        return f"/Expr({self.text})/"

    def evaluate(self, my: JsonAd | None = None, target: JsonAd | None = None) -> Value:
        """Evaluate with ``my`` as MY and ``target`` as TARGET (see :func:`evaluate`)."""
        fn = self.evaluator
        if fn is not None:
            try:
                return _export(fn(_EMPTY if my is None else my, target, ()))  # type: ignore[arg-type]
            except FallbackToNative:
                pass
        return evaluate_native(self, my, target)


def parse_expr(text: str) -> Expr:
    """Parse a ClassAd expression.

    Raises :class:`~gwms.classads.errors.ClassAdSyntaxError` with ``position``,
    ``line`` and ``column`` of the offending token.
    """
    return Expr(text, parse_tree(text))


_CACHE: dict[str, Expr] = {}
_CACHE_LIMIT = 10_000


def cached_expr(text: str) -> Expr:
    """:func:`parse_expr` with a bounded cache keyed by text."""
    expr = _CACHE.get(text)
    if expr is None:
        expr = parse_expr(text)
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        _CACHE[text] = expr
    return expr


def as_expr(expr: Expr | str) -> Expr:
    """An :class:`Expr` from an Expr, expression text or a ``"/Expr(...)/"`` string."""
    if isinstance(expr, Expr):
        return expr
    if is_expr_string(expr):
        expr = expr_text(expr)
    return cached_expr(expr)


def _export(value: Value) -> Value:
    c = value.__class__
    if c is tuple:
        return [_export(v) for v in value]
    return value


def evaluate(
    expr: Expr | str, my: JsonAd | None = None, target: JsonAd | None = None
) -> Value:
    """Evaluate a ClassAd expression with ``my`` as MY and ``target`` as TARGET.

    ``expr`` is an :class:`Expr`, expression text, or a ``"/Expr(...)/"`` string;
    the ads are in JSON form (None is an empty ad). A bare attribute name is
    looked up in MY, then in TARGET. Returns a Python value: bool, int, float,
    str, list, dict (a nested ad in JSON form), or :data:`UNDEFINED` /
    :data:`ERROR`. Elements of a list are evaluated.
    """
    return as_expr(expr).evaluate(my, target)


def evaluate_native(expr: Expr | str, my: JsonAd | None = None, target: JsonAd | None = None) -> Value:
    """Evaluate with classad2 only (the reference gwms's compiled evaluator is tested against).

    An ad that cannot be converted to classad2 makes the result :data:`ERROR`.
    Lists come back with unevaluated elements as ``"/Expr(...)/"`` strings.
    """
    expr = as_expr(expr)
    try:
        scope = ad_from_json(my or {})
        other = ad_from_json(target) if target is not None else None
    except ClassAdError:
        return ERROR
    value = expr.native.eval(scope, other)
    return native_value_to_json(value)


__all__ = [
    "ERROR",
    "Expr",
    "UNDEFINED",
    "as_expr",
    "cached_expr",
    "evaluate",
    "evaluate_native",
    "parse_expr",
]
