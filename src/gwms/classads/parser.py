"""Recursive-descent parser for ClassAd expressions and ads.

Precedence, lowest first (all binary operators associate to the left)::

    a ? b : c (conditional, right-assoc)
    ||   &&   |   ^   &
    ==  !=  =?=  =!=  is  isnt
    <  <=  >  >=
    <<  >>  >>>
    +  -
    *  /  %
    unary + - ! ~
    a ?: b (elvis: as in the library, it binds tighter than unary minus;
            its right operand is a primary with selectors or a negative number)
    postfix .name and [index]

Errors raise :class:`~gwms.classads.errors.ClassAdSyntaxError` pointing at the
offending token.
"""

from __future__ import annotations

from typing import Final

from gwms.classads import lexer
from gwms.classads.errors import ClassAdSyntaxError
from gwms.classads.lexer import EOF, INT, NAME, OP, QNAME, REAL, STRING, Token
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
    RecordExpr,
    Select,
    Subscript,
    Unary,
)
from gwms.classads.values import ERROR, UNDEFINED

_LITERAL_KEYWORDS: Final = {"true": True, "false": False, "undefined": UNDEFINED, "error": ERROR}
_OPERATOR_KEYWORDS: Final = {"is": "=?=", "isnt": "=!="}
RESERVED_NAMES: Final = frozenset(_LITERAL_KEYWORDS) | frozenset(_OPERATOR_KEYWORDS) | {"parent"}
"""Lower-cased names that must be quoted ('...') to be used as attribute names."""

_BINARY_LEVELS: Final[tuple[frozenset[str], ...]] = (
    frozenset({"||"}),
    frozenset({"&&"}),
    frozenset({"|"}),
    frozenset({"^"}),
    frozenset({"&"}),
    frozenset({"==", "!=", "=?=", "=!="}),
    frozenset({"<", "<=", ">", ">="}),
    frozenset({"<<", ">>", ">>>"}),
    frozenset({"+", "-"}),
    frozenset({"*", "/", "%"}),
)
_EQUALITY_LEVEL: Final = 5


class _Parser:
    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0

    # -- token helpers -------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, offset: int = 1) -> Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        if token.kind != EOF:
            self.i += 1
        return token

    def at_op(self, op: str) -> bool:
        token = self.tokens[self.i]
        return token.kind == OP and token.value == op

    def expect_op(self, op: str, context: str) -> Token:
        if not self.at_op(op):
            self.fail(f"expected {op!r} {context}")
        return self.advance()

    def fail(self, reason: str | None = None, token: Token | None = None) -> None:
        token = token or self.tok
        what = f"unexpected {lexer.describe(token, self.text)}"
        raise ClassAdSyntaxError(self.text, token.pos, f"{what}, {reason}" if reason else what)

    def expect_end(self) -> None:
        if self.tok.kind != EOF:
            self.fail()

    # -- grammar -------------------------------------------------------------
    def expression(self) -> Node:
        cond = self.binary(0)
        if not self.at_op("?"):
            return cond
        self.advance()
        then = self.expression()
        self.expect_op(":", "in a conditional (a ? b : c)")
        return Conditional(cond.pos, cond, then, self.expression())

    def binary(self, level: int) -> Node:
        if level == len(_BINARY_LEVELS):
            return self.unary()
        ops = _BINARY_LEVELS[level]
        left = self.binary(level + 1)
        while True:
            token = self.tok
            if token.kind == OP and token.value in ops:
                op = token.value
            elif level == _EQUALITY_LEVEL and token.kind == NAME and token.value.lower() in _OPERATOR_KEYWORDS:
                op = _OPERATOR_KEYWORDS[token.value.lower()]
            else:
                return left
            self.advance()
            right = self.binary(level + 1)
            left = Binary(left.pos, op, left, right)

    def unary(self) -> Node:
        token = self.tok
        if token.kind == OP and token.value in ("-", "+", "!", "~"):
            self.advance()
            return Unary(token.pos, token.value, self.unary())
        return self.postfix()

    def postfix(self) -> Node:
        node = self.selectors(self.primary())
        while self.at_op("?") and self.peek().kind == OP and self.peek().value == ":":
            self.advance()
            self.advance()
            node = Elvis(node.pos, node, self.elvis_operand())
        return node

    def elvis_operand(self) -> Node:
        # The library's right operand of ?: is a primary with selectors, or a negative number.
        token, following = self.tok, self.peek()
        if (
            token.kind == OP
            and token.value == "-"
            and following.kind in (INT, REAL)
            and following.pos == token.end
        ):
            self.advance()
            self.advance()
            return Literal(token.pos, -following.value, following.exact)
        return self.selectors(self.primary())

    def selectors(self, node: Node) -> Node:
        while True:
            if self.at_op("."):
                self.advance()
                name = self.attribute_name("after '.'")
                if isinstance(node, AttrRef) and node.scope is None and node.lname in ("my", "target"):
                    node = AttrRef(node.pos, name, "my" if node.lname == "my" else "target")
                else:
                    node = Select(node.pos, node, name)
            elif self.at_op("["):
                self.advance()
                index = self.expression()
                self.expect_op("]", "to close a subscript")
                node = Subscript(node.pos, node, index)
            else:
                return node

    def attribute_name(self, context: str) -> str:
        token = self.tok
        if token.kind == QNAME:
            self.advance()
            return str(token.value)
        if token.kind == NAME and token.value.lower() not in _LITERAL_KEYWORDS | _OPERATOR_KEYWORDS.keys():
            self.advance()
            return str(token.value)
        self.fail(f"expected an attribute name {context}")
        raise AssertionError("unreachable")

    def primary(self) -> Node:
        token = self.tok
        kind = token.kind
        if kind == INT or kind == REAL:
            self.advance()
            return Literal(token.pos, token.value, token.exact)
        if kind == STRING:
            self.advance()
            value, exact = token.value, token.exact
            while self.tok.kind == STRING:
                value += self.tok.value
                exact = exact and self.tok.exact
                self.advance()
            return Literal(token.pos, value, exact)
        if kind == NAME:
            lowered = token.value.lower()
            if lowered in _LITERAL_KEYWORDS:
                self.advance()
                return Literal(token.pos, _LITERAL_KEYWORDS[lowered])
            if lowered in _OPERATOR_KEYWORDS:
                self.fail("expected an operand")
            self.advance()
            if self.at_op("("):
                return self.call(token)
            return AttrRef(token.pos, token.value)
        if kind == QNAME:
            self.advance()
            if self.at_op("("):
                return self.call(token)
            return AttrRef(token.pos, token.value)
        if kind == OP:
            op = token.value
            if op == "(":
                self.advance()
                inner = self.expression()
                self.expect_op(")", "to close '('")
                return inner
            if op == "{":
                return self.list_expr()
            if op == "[":
                return self.record()
            if op == "." and self.peek().kind in (NAME, QNAME):
                self.advance()
                return AbsoluteRef(token.pos, self.attribute_name("after '.'"))
        self.fail("expected an operand")
        raise AssertionError("unreachable")

    def call(self, name_token: Token) -> Node:
        self.expect_op("(", "")
        args: list[Node] = []
        if not self.at_op(")"):
            while True:
                args.append(self.expression())
                if self.at_op(","):
                    self.advance()
                    continue
                break
        self.expect_op(")", f"to close the call of {name_token.value}()")
        return Call(name_token.pos, str(name_token.value), tuple(args))

    def list_expr(self) -> Node:
        start = self.advance()
        items: list[Node] = []
        if not self.at_op("}"):
            while True:
                items.append(self.expression())
                if self.at_op(","):
                    self.advance()
                    continue
                break
        self.expect_op("}", "to close '{'")
        return ListExpr(start.pos, tuple(items))

    def record(self) -> RecordExpr:
        start = self.expect_op("[", "to open a ClassAd")
        attrs = self.record_body("]")
        self.expect_op("]", "to close '['")
        return RecordExpr(start.pos, tuple(attrs))

    def record_body(self, closer: str) -> list[tuple[str, Node]]:
        attrs: list[tuple[str, Node]] = []
        skipped = False
        while self.at_op(";"):
            self.advance()
            skipped = True
        if self.at_op(closer):
            if skipped:
                self.fail("expected an attribute definition")
            return attrs
        while True:
            name = self.attribute_name("at the start of an attribute definition")
            self.expect_op("=", f"after the attribute name {name!r}")
            attrs.append((name, self.expression()))
            if not self.at_op(";"):
                if not self.at_op(closer):
                    self.fail(f"expected ';' or {closer!r}")
                return attrs
            while self.at_op(";"):
                self.advance()
            if self.at_op(closer):
                return attrs


def parse_tree(text: str) -> Node:
    """Parse one ClassAd expression into a syntax tree.

    Raises :class:`ClassAdSyntaxError` (with the offending token's position).
    """
    parser = _Parser(text, lexer.tokenize(text))
    if parser.tok.kind == EOF:
        raise ClassAdSyntaxError(text, parser.tok.pos, "empty expression")
    node = parser.expression()
    parser.expect_end()
    return node


def parse_new_ad(text: str) -> list[tuple[str, Node]]:
    """Parse a new-syntax ad ``[a = 1; b = x + 1]`` into ``(name, tree)`` pairs."""
    parser = _Parser(text, lexer.tokenize(text))
    parser.expect_op("[", "to open a ClassAd (new syntax starts with '[')")
    attrs = parser.record_body("]")
    parser.expect_op("]", "to close the ClassAd")
    parser.expect_end()
    return attrs


def parse_old_ad(text: str) -> list[tuple[str, Node, int, int]]:
    """Parse an old-syntax ad: one ``Name = expression`` per line; ``#`` starts a comment line.

    Returns ``(name, tree, start, end)`` per attribute, where ``text[start:end]``
    is the attribute's expression text.
    """
    result: list[tuple[str, Node, int, int]] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        line_start, offset = offset, offset + len(line)
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        line_end = line_start + len(line.rstrip("\r\n"))
        tokens = lexer.tokenize(text, line_start, line_end)
        parser = _Parser(text, tokens)
        name = parser.attribute_name("at the start of the line (old syntax is 'Name = expression')")
        eq = parser.expect_op("=", f"after the attribute name {name!r}")
        if parser.tok.kind == EOF:
            parser.fail(f"expected an expression for {name!r}")
        node = parser.expression()
        parser.expect_end()
        result.append((name, node, eq.end, line_end))
    return result
