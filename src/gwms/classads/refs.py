"""Which attributes an expression reads, and through which scope.

Names are returned lower-cased (attribute names are case-insensitive).
"""

from __future__ import annotations

from dataclasses import dataclass

from gwms.classads.expr import Expr, as_expr
from gwms.classads.tree import AbsoluteRef, AttrRef, Select, walk


@dataclass(frozen=True, slots=True)
class References:
    """The attributes an expression reads: via ``MY.``, via ``TARGET.``, and bare names.

    A bare name is looked up in MY first and then in TARGET.
    """

    my: frozenset[str]
    target: frozenset[str]
    bare: frozenset[str]

    @property
    def all(self) -> frozenset[str]:
        """Every attribute name read, whatever the scope."""
        return self.my | self.target | self.bare


def references(expr: Expr | str) -> References:
    """The :class:`References` of an expression (text, ``/Expr(...)/`` or :class:`Expr`)."""
    tree = as_expr(expr).tree
    my: set[str] = set()
    target: set[str] = set()
    bare: set[str] = set()
    for node in walk(tree):
        if isinstance(node, AttrRef):
            lname = node.lname
            if node.scope == "my":
                my.add(lname)
            elif node.scope == "target":
                target.add(lname)
            elif lname not in ("my", "target", "parent"):
                bare.add(lname)
        elif isinstance(node, AbsoluteRef):
            bare.add(node.name.lower())
        elif isinstance(node, Select) and isinstance(node.base, AttrRef):
            pass  # the base is collected as an AttrRef; the selected name is inside a record
    return References(frozenset(my), frozenset(target), frozenset(bare))


def external_refs(expr: Expr | str) -> set[str]:
    """All attribute names an expression reads (MY., TARGET. and bare), lower-cased."""
    return set(references(expr).all)


def target_refs(expr: Expr | str) -> set[str]:
    """The attribute names an expression reads as ``TARGET.x``, lower-cased."""
    return set(references(expr).target)


def my_refs(expr: Expr | str) -> set[str]:
    """The names read as ``MY.x`` or bare (bare names are looked up in MY first), lower-cased."""
    refs = references(expr)
    return set(refs.my | refs.bare)
