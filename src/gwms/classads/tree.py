"""The syntax tree of a ClassAd expression, as produced by :mod:`gwms.classads.parser`.

Nodes are small frozen dataclasses. ``pos`` is the 0-based offset of the node's
first token in the parsed text. Binary operators are normalised: ``is`` is ``=?=``
and ``isnt`` is ``=!=``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Literal as TLiteral

Scope = TLiteral["my", "target"] | None


@dataclass(frozen=True, slots=True)
class Node:
    """Base of all nodes."""

    pos: int


@dataclass(frozen=True, slots=True)
class Literal(Node):
    """A constant: int, float, bool, str, UNDEFINED or ERROR.

    ``exact`` is False when Python cannot hold the value the way the ClassAd
    library does (an integer literal beyond 64 bits, a string that is not UTF-8);
    such expressions are evaluated by classad2.
    """

    value: Any
    exact: bool = True


@dataclass(frozen=True, slots=True)
class AttrRef(Node):
    """A reference to an attribute: ``name``, ``MY.name`` or ``TARGET.name``."""

    name: str
    scope: Scope = None

    @property
    def lname(self) -> str:
        """The name lower-cased (attribute names are case-insensitive)."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class AbsoluteRef(Node):
    """``.name``: a reference resolved from the outermost ad."""

    name: str


@dataclass(frozen=True, slots=True)
class Select(Node):
    """``base.name`` where base is not plain ``MY``/``TARGET``."""

    base: Node
    name: str


@dataclass(frozen=True, slots=True)
class Subscript(Node):
    """``base[index]``."""

    base: Node
    index: Node


@dataclass(frozen=True, slots=True)
class Unary(Node):
    """A prefix operator: ``-``, ``+``, ``!`` or ``~``."""

    op: str
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    """An infix operator."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Conditional(Node):
    """``cond ? then : otherwise``."""

    cond: Node
    then: Node
    otherwise: Node


@dataclass(frozen=True, slots=True)
class Elvis(Node):
    """``left ?: right`` (left unless it is undefined)."""

    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Call(Node):
    """A function call; ``name`` as written (function names are case-insensitive)."""

    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class ListExpr(Node):
    """``{a, b, ...}``."""

    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class RecordExpr(Node):
    """``[name = expr; ...]``."""

    attrs: tuple[tuple[str, Node], ...]


def children(node: Node) -> Iterator[Node]:
    """The direct sub-nodes of ``node``."""
    if isinstance(node, (Literal, AttrRef, AbsoluteRef)):
        return
    if isinstance(node, Select):
        yield node.base
    elif isinstance(node, Subscript):
        yield node.base
        yield node.index
    elif isinstance(node, Unary):
        yield node.operand
    elif isinstance(node, (Binary, Elvis)):
        yield node.left
        yield node.right
    elif isinstance(node, Conditional):
        yield node.cond
        yield node.then
        yield node.otherwise
    elif isinstance(node, (Call,)):
        yield from node.args
    elif isinstance(node, ListExpr):
        yield from node.items
    elif isinstance(node, RecordExpr):
        for _, value in node.attrs:
            yield value


def walk(node: Node) -> Iterator[Node]:
    """All nodes of the tree rooted at ``node``, depth first."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(list(children(current))))
