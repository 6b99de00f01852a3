"""Equality indexes that let the ad store skip most ads of a constrained query.

Collector queries are often conjunctions with an equality test on one attribute:
``ReqGlidein == "entry@gl@factory" && ...``, ``GLIDEIN_Site == "Site_7" && Cpus >= 8``.
An ad can satisfy such a constraint only if that one test is true for it, so the store
keeps, per ad type and per attribute used this way, a map from the attribute's value
to the names of the ads holding it, and evaluates the whole constraint only on those
ads (plus ads whose value is an expression, which is only known by evaluation).

The index only narrows the candidates; the constraint is still evaluated on each, so
an index key may be coarser than ClassAd equality (it must never be finer):

- strings are keyed lower-cased (ClassAd ``==`` on strings ignores ASCII case);
- numbers and booleans are keyed as floats (``8 == 8.0`` and ``true == 1`` are true);
- an absent attribute or ``null`` (UNDEFINED) is not keyed: ``undefined == x`` is
  never true;
- expressions (``"/Expr(...)/"``), lists and nested ads are *loose*: candidates for
  every query on the attribute.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from typing import Any

__all__ = ["EqualityIndex", "EqualityTerm", "equality_terms", "index_key"]

#: ``(lower-cased attribute name, name as written, index key)``: one ``Attr == literal``
#: conjunct of a constraint.
EqualityTerm = tuple[str, str, Hashable]

_LOOSE = object()  # a value the index cannot key: always a candidate
_ABSENT = object()  # no value: never a candidate


def index_key(value: Any) -> Any:
    """The index key of an attribute's value; ``_LOOSE`` or ``_ABSENT`` if it has none."""
    kind = type(value)
    if kind is str:
        if value.startswith("/Expr(") and value.endswith(")/"):
            return _LOOSE
        return ("s", value.lower())
    if kind is int or kind is float or kind is bool:
        try:
            return ("n", float(value))
        except OverflowError:  # an integer beyond any float: let evaluation decide
            return _LOOSE
    if value is None:
        return _ABSENT
    return _LOOSE


def _literal_key(value: Any) -> Hashable | None:
    """The index key of a literal in a constraint, or None if it is not indexable."""
    kind = type(value)
    if kind is str:
        return ("s", value.lower())
    if kind is int or kind is float or kind is bool:
        try:
            return ("n", float(value))
        except OverflowError:
            return None
    return None


def equality_terms(predicate: Any) -> list[EqualityTerm]:
    """The ``Attr == literal`` (or ``=?=``) conjuncts at the top of a constraint.

    ``predicate`` is a :class:`gwms.classads.Predicate`; anything else (a plain
    function) has no terms. Only attributes of the ad itself count (bare names and
    ``MY.x``), with string, number or boolean literals.
    """
    expr = getattr(predicate, "expr", None)
    tree = getattr(expr, "tree", None)
    if tree is None:
        return []
    from gwms.classads.tree import AttrRef, Binary, Literal

    terms: list[EqualityTerm] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, Binary):
            continue
        if node.op == "&&":
            stack.append(node.right)
            stack.append(node.left)
            continue
        if node.op not in ("==", "=?="):
            continue
        ref, lit = node.left, node.right
        if isinstance(ref, Literal):
            ref, lit = lit, ref
        if not (isinstance(ref, AttrRef) and isinstance(lit, Literal)):
            continue
        if ref.scope == "target" or not lit.exact:
            continue
        if ref.lname in ("my", "target", "parent"):
            continue
        key = _literal_key(lit.value)
        if key is not None:
            terms.append((ref.lname, ref.name, key))
    return terms


class EqualityIndex:
    """The ads of one type by the value of one attribute (see the module docs).

    Names are the store's lower-cased ad names. The caller tells the index about every
    ad stored (:meth:`put`) and removed (:meth:`discard`).
    """

    __slots__ = ("attr", "spellings", "buckets", "loose", "where")

    def __init__(self, attr: str, spelling: str | None = None) -> None:
        """An empty index of the attribute ``attr`` (lower-cased), usually spelled
        ``spelling`` in ads."""
        self.attr = attr
        # The spellings of the name to try, most likely first; more are added as seen.
        self.spellings: list[str] = [spelling or attr]
        self.buckets: dict[Hashable, dict[str, None]] = {}
        self.loose: dict[str, None] = {}
        self.where: dict[str, Any] = {}  # name -> its key (or _LOOSE)

    def _value(self, ad: Mapping[str, Any]) -> Any:
        for spelling in self.spellings:
            if spelling in ad:
                return ad[spelling]
        attr = self.attr
        for name in ad:
            if name.lower() == attr:
                self.spellings.append(name)
                return ad[name]
        return None

    def put(self, name: str, ad: Mapping[str, Any]) -> None:
        """Index (or re-index) the ad ``name``."""
        key = index_key(self._value(ad))
        where = self.where
        old = where.get(name, _ABSENT)
        if old is key or old == key:
            return
        if old is not _ABSENT:
            self._remove(name, old)
        if key is _ABSENT:
            return
        where[name] = key
        if key is _LOOSE:
            self.loose[name] = None
            return
        bucket = self.buckets.get(key)
        if bucket is None:
            self.buckets[key] = {name: None}
        else:
            bucket[name] = None

    def largest_share(self, total: int) -> float:
        """The fraction of ``total`` ads that the biggest bucket plus the loose ads hold:
        how little the index narrows a query at worst."""
        if total <= 0:
            return 0.0
        biggest = max((len(b) for b in self.buckets.values()), default=0)
        return (biggest + len(self.loose)) / total

    def discard(self, name: str) -> None:
        """Forget the ad ``name`` (no error if it is not indexed)."""
        old = self.where.get(name, _ABSENT)
        if old is not _ABSENT:
            self._remove(name, old)

    def _remove(self, name: str, key: Any) -> None:
        del self.where[name]
        if key is _LOOSE:
            del self.loose[name]
            return
        bucket = self.buckets[key]
        del bucket[name]
        if not bucket:
            del self.buckets[key]

    def count(self, key: Hashable) -> int:
        """How many ads :meth:`candidates` gives for ``key``."""
        bucket = self.buckets.get(key)
        return len(self.loose) + (len(bucket) if bucket else 0)

    def candidates(self, key: Hashable) -> Iterator[str]:
        """The names of the ads whose attribute may equal a literal with ``key``."""
        bucket = self.buckets.get(key)
        if bucket:
            yield from bucket
        yield from self.loose
