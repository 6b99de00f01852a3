"""Compiled constraints: the collector's queries and the negotiator's matching tests.

``compile_constraint("Cpus >= 4 && State == \\"Unclaimed\\"")`` returns a
:class:`Predicate`, a callable ``pred(ad, target=None) -> bool`` over JSON-form
ads. It is True only if the expression evaluates to boolean true or, as in
HTCondor, to a non-zero number; ``undefined`` and ``error`` are False.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

from gwms.classads.expr import Expr, as_expr, evaluate_native
from gwms.classads.operators import FallbackToNative, is_true

JsonAd = Mapping[str, Any]
_EMPTY: dict[str, Any] = {}


class Predicate:
    """A compiled ClassAd constraint; call it on an ad (and optionally a target ad)."""

    __slots__ = ("expr", "_fn")

    def __init__(self, expr: Expr) -> None:
        self.expr = expr
        self._fn = expr.evaluator

    @property
    def text(self) -> str:
        """The constraint's source text."""
        return self.expr.text

    @property
    def compiled(self) -> bool:
        """Whether gwms evaluates the constraint itself (else every call goes to classad2)."""
        return self._fn is not None

    def __repr__(self) -> str:
        return f"Predicate({self.expr.text!r})"

    def __call__(self, ad: JsonAd, target: JsonAd | None = None) -> bool:
        """True if the constraint is true for ``ad`` (as MY) against ``target`` (as TARGET)."""
        fn = self._fn
        if fn is not None:
            try:
                r = fn(ad, target, ())  # type: ignore[arg-type]
            except FallbackToNative:
                r = evaluate_native(self.expr, ad, target)
            return r is True or is_true(r)
        return is_true(evaluate_native(self.expr, ad, target))

    def filter(self, ads: Iterable[JsonAd], target: JsonAd | None = None) -> Iterator[JsonAd]:
        """The ads for which the constraint holds (a faster loop than calling it per ad)."""
        fn = self._fn
        if fn is None:
            for ad in ads:
                if is_true(evaluate_native(self.expr, ad, target)):
                    yield ad
            return
        for ad in ads:
            try:
                r = fn(ad, target, ())  # type: ignore[arg-type]
            except FallbackToNative:
                r = evaluate_native(self.expr, ad, target)
            if r is True or is_true(r):
                yield ad


def compile_constraint(text: str | Expr) -> Predicate:
    """Compile constraint text (or an :class:`Expr`) into a :class:`Predicate`.

    Raises :class:`~gwms.classads.errors.ClassAdSyntaxError` for malformed text.
    Compiled once; no parsing happens per call. Constructs outside the compiled
    subset are evaluated by classad2 (slower, same answers).
    """
    return Predicate(as_expr(text))


TRUE = compile_constraint("true")
"""A predicate that always holds."""
