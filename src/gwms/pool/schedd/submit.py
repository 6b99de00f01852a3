"""The HTCondor submit-description language: a submit file in, the job ads to queue out.

Two steps, both pure apart from the item files and globs of ``queue`` statements:

- :func:`parse_submit` reads the text into a :class:`SubmitDescription` (a list of
  assignments and queue statements) and rejects what is wrong with the file itself:
  syntax, unknown commands (with a did-you-mean), unterminated queue lists...
- :func:`expand_submit` turns it into one JSON-form job ad per job (see
  docs/contracts.md) for a given cluster id, owner and submit time.

The language, as in HTCondor:

- ``command = value`` with case-insensitive command names; ``#`` starts a comment line; a
  trailing ``\\`` continues the line (comment lines inside a continuation are skipped);
  ``name @=TAG`` ... ``@TAG`` is a multi-line value.
- ``+Attr = expr`` and ``MY.Attr = expr`` put a ClassAd expression into the job ad.
- ``Name = value`` for a name that is not a submit command defines a macro; such a name
  must be used somewhere as ``$(Name)``, otherwise it is taken for a misspelt command and
  rejected. ``X = $(X) more`` extends the earlier value of ``X``. See
  :mod:`gwms.pool.schedd.submit_macros` for macros.
- ``queue`` statements, several per file, each queuing jobs with the commands as they
  stand at that point::

      queue [N]
      queue [N] [VAR] in [slice] (item, item ...)        # list may span lines
      queue [N] [VAR[,VAR2...]] from [slice] FILE        # one row per line
      queue [N] [VAR[,VAR2...]] from [slice] ( rows )    # rows inline, spanning lines
      queue [N] [VAR] matching [files|dirs] [slice] GLOB ...

  ``N`` (default 1) jobs per item; ``VAR`` defaults to ``Item``. In a ``from`` row, fields
  are separated by a comma and/or white space and the last variable takes the rest. A
  multi-line list ends at a line beginning with ``)``; lines beginning with ``#`` in it
  are skipped.

A submit is all or nothing: any error raises :class:`SubmitError` naming the file, the
line and what is wrong, and no job ad is returned.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import classad2

from gwms.pool import jobattrs as A
from gwms.pool.schedd.submit_commands import (
    DERIVATIONS,
    KNOWN_COMMANDS,
    NO_DEFAULT,
    UNSUPPORTED_COMMANDS,
    Derivation,
    JobContext,
    canonical_command,
    did_you_mean,
)
from gwms.pool.schedd.submit_errors import SubmitError, SubmitValueError
from gwms.pool.schedd.submit_items import (
    Slice,
    glob_items,
    item_lines,
    parse_slice,
    read_item_file,
    split_in_items,
    split_row,
)
from gwms.pool.schedd.submit_macros import DynRef, MacroScope, Template, referenced_names
from gwms.pool.schedd.submit_values import expr_json

__all__ = [
    "Assignment",
    "QueueStatement",
    "SubmitDescription",
    "SubmitError",
    "expand_submit",
    "parse_submit",
]

QueueMode = Literal["count", "in", "from", "matching"]

_QUEUE = re.compile(r"queue(?:\s+(?P<rest>.*))?\Z", re.IGNORECASE | re.DOTALL)
_ASSIGN = re.compile(r"(?P<key>\+?[A-Za-z_][A-Za-z0-9_.]*)\s*=(?P<value>.*)\Z", re.DOTALL)
_HEREDOC = re.compile(r"(?P<key>\+?[A-Za-z_][A-Za-z0-9_.]*)\s*@=\s*(?P<tag>\S*)\s*\Z")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_QUEUE_TOKEN = re.compile(r"\$\([^)]*\)|[^\s,]+")
_KEYWORD = re.compile(r"(?:(?<=[\s,])|^)(in|from|matching)(?=[\s(\[]|\Z)", re.IGNORECASE)
_INT = re.compile(r"\s*[+-]?\d+\s*\Z")

_NOT_SUPPORTED_STATEMENTS = frozenset(
    {"include", "if", "elif", "else", "endif", "error", "warning"}
)
#: Automatic macros a submit file may not redefine or use as queue variables.
_RESERVED_MACROS = frozenset({"process", "procid", "cluster", "clusterid"})
_RESERVED_QUEUE_VARS = _RESERVED_MACROS | frozenset({"step", "row", "itemindex"})
#: Attributes gwms sets itself; ``+Attr`` may not override them.
_PROTECTED_ATTRS = frozenset(
    a.lower()
    for a in (
        A.CLUSTER_ID,
        A.PROC_ID,
        A.OWNER,
        A.QDATE,
        A.ENTERED_CURRENT_STATUS,
        A.JOB_STATUS,
        A.GLOBAL_JOB_ID,
        A.JOB_UNIVERSE,
    )
)


# ------------------------------------------------------------------------ the description


@dataclass(frozen=True)
class Assignment:
    """``key = value``: a submit command, a user macro, or a custom attribute.

    ``kind`` is ``"command"`` (``name`` is the canonical command name), ``"macro"``
    (``name`` is the lower-cased macro name) or ``"attribute"`` (``+Attr``/``MY.Attr``;
    ``name`` is the attribute name as written). ``value`` is the raw text, with
    ``$(key)`` self-references already replaced by the earlier value.
    """

    line: int
    key: str
    name: str
    value: str
    kind: Literal["command", "macro", "attribute"]


@dataclass(frozen=True)
class QueueStatement:
    """One ``queue`` statement (macros in it are expanded by :func:`expand_submit`).

    ``count`` is the raw job count per item (``None`` for 1); ``variables`` the loop
    variables (``("Item",)`` by default for in/from/matching); ``items`` the raw text of an
    inline list (``in`` items, or ``from (...)`` rows); ``from_file`` the raw file name of
    ``from FILE``; ``patterns`` the raw globs of ``matching`` and ``match_kind`` one of
    ``"any"``, ``"files"``, ``"dirs"``; ``item_slice`` the optional ``[start:stop:step]``.
    """

    line: int
    mode: QueueMode
    count: str | None = None
    variables: tuple[str, ...] = ()
    items: str | None = None
    from_file: str | None = None
    patterns: str | None = None
    match_kind: Literal["any", "files", "dirs"] = "any"
    item_slice: Slice | None = None


Statement = Assignment | QueueStatement


@dataclass(frozen=True)
class SubmitDescription:
    """A parsed submit description: its statements in file order."""

    source: str
    statements: tuple[Statement, ...]

    @property
    def queue_statements(self) -> tuple[QueueStatement, ...]:
        """The ``queue`` statements, in file order."""
        return tuple(s for s in self.statements if isinstance(s, QueueStatement))

    @property
    def assignments(self) -> tuple[Assignment, ...]:
        """The assignments, in file order."""
        return tuple(s for s in self.statements if isinstance(s, Assignment))


# ------------------------------------------------------------------------------- parsing


def _clip(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        # Only \n ends a line (str.splitlines would also split on \f, \v, \x1c...).
        self.lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
        self.source = source
        self.i = 0
        self.statements: list[Statement] = []
        self.previous: dict[str, str] = {}

    def error(self, line: int | None, reason: str) -> SubmitError:
        return SubmitError(self.source, line, reason)

    def run(self) -> SubmitDescription:
        """Read every logical line (joining continuations, skipping comments)."""
        lines = self.lines
        n = len(lines)
        while self.i < n:
            lineno = self.i + 1
            raw = lines[self.i]
            self.i += 1
            stripped = raw.strip()
            if not stripped or stripped.startswith("#"):
                continue
            logical = raw.rstrip()
            while logical.endswith("\\"):
                logical = logical[:-1]
                while self.i < n and lines[self.i].strip().startswith("#"):
                    self.i += 1
                if self.i >= n:
                    break
                logical += lines[self.i].rstrip()
                self.i += 1
            self.statement(logical.strip(), lineno)
        return self.finish()

    def statement(self, stmt: str, lineno: int) -> None:
        """One logical line: a queue statement, a multi-line value or an assignment."""
        m = _QUEUE.match(stmt)
        if m is not None:
            self.statements.append(self.queue(m.group("rest") or "", lineno))
            return
        m = _HEREDOC.match(stmt)
        if m is not None:
            value = self.heredoc(m["tag"], lineno)
            self.statements.append(self.assignment(m["key"], value, lineno))
            return
        m = _ASSIGN.match(stmt)
        if m is not None:
            self.statements.append(self.assignment(m["key"], m["value"].strip(), lineno))
            return
        first = stmt.split(None, 1)[0].lower().rstrip(":")
        if first in _NOT_SUPPORTED_STATEMENTS:
            raise self.error(lineno, f'"{first}" statements are not supported in gwms submit files')
        raise self.error(lineno, f'expected "command = value" or "queue ...", got "{_clip(stmt)}"')

    def heredoc(self, tag: str, lineno: int) -> str:
        if not tag:
            raise self.error(lineno, 'a multi-line value needs a tag: "name @=TAG" ... "@TAG"')
        body: list[str] = []
        while self.i < len(self.lines):
            line = self.lines[self.i]
            self.i += 1
            if line.strip() == "@" + tag:
                return "\n".join(body).strip()
            body.append(line)
        raise self.error(lineno, f'unterminated multi-line value: no "@{tag}" line')

    def assignment(self, key: str, value: str, lineno: int) -> Assignment:
        """``key = value``: classify the key and resolve ``$(key)`` self-references."""
        if key.startswith("+") or key.lower().startswith("my."):
            attr = key[1:] if key.startswith("+") else key[3:]
            if not _IDENT.match(attr):
                raise self.error(lineno, f'bad attribute name "{key}"')
            return Assignment(lineno, key, attr, value, "attribute")
        if "." in key:
            raise self.error(
                lineno, f'bad command name "{key}" (only MY.<attribute> may contain a dot)'
            )
        canonical = canonical_command(key)
        if canonical is not None and canonical in UNSUPPORTED_COMMANDS:
            raise self.error(lineno, f"{key}: {UNSUPPORTED_COMMANDS[canonical]}")
        name = canonical or key.lower()
        if name in _RESERVED_MACROS:
            raise self.error(lineno, f"{key} is set by gwms and cannot be redefined")
        if canonical == "universe" and "$" not in value and value.lower() not in ("", "vanilla"):
            raise self.error(
                lineno, f'universe "{value}" is not supported: gwms runs vanilla universe jobs only'
            )
        value = self.self_reference(name, key, value)
        self.previous[name] = value
        kind: Literal["command", "macro"] = "command" if canonical is not None else "macro"
        return Assignment(lineno, key, name, value, kind)

    def self_reference(self, name: str, key: str, value: str) -> str:
        """``X = $(X) more``: the earlier value of X replaces the reference."""
        if "$" not in value:
            return value
        spellings = {name, key.lower()}
        if not (referenced_names(value) & spellings):
            return value
        alternatives = "|".join(re.escape(s) for s in spellings)
        pattern = re.compile(
            r"(?<!\$)\$\(\s*(?:" + alternatives + r")\s*(?::(?P<default>[^)]*))?\)", re.IGNORECASE
        )
        earlier = self.previous.get(name)

        def repl(m: re.Match[str]) -> str:
            if earlier is not None:
                return earlier
            if m.group("default") is not None:
                return m.group("default")
            return m.group(0)  # no earlier value: reported as a self-reference at expansion

        return pattern.sub(repl, value)

    # ----------------------------------------------------------------- queue statements

    def queue(self, rest: str, lineno: int) -> QueueStatement:
        """The statement after the word ``queue`` (may read the lines of a list)."""
        rest = rest.strip()
        kw = _KEYWORD.search(rest)
        if kw is None:
            if rest.startswith("(") or rest.lower().startswith(("in(", "from(")):
                raise self.error(lineno, f'bad queue statement "queue {_clip(rest)}"')
            return QueueStatement(lineno, "count", count=rest or None)
        mode = kw.group(1).lower()
        count, variables = self.queue_head(rest[: kw.start()], lineno)
        tail = rest[kw.end() :].strip()
        if mode == "matching":
            return self.queue_matching(tail, lineno, count, variables)
        item_slice, tail = self.queue_slice(tail, lineno)
        if mode == "in":
            if len(variables) > 1:
                raise self.error(lineno, "queue ... in takes one variable (use from for several)")
            if tail.startswith("("):
                items = self.paren_list(tail, lineno)
            elif tail:
                items = tail
            else:
                raise self.error(lineno, 'missing list of items after "in"')
            return QueueStatement(
                lineno, "in", count, variables, items=items, item_slice=item_slice
            )
        # from
        if tail.startswith("("):
            rows = self.paren_list(tail, lineno)
            return QueueStatement(
                lineno, "from", count, variables, items=rows, item_slice=item_slice
            )
        if not tail:
            raise self.error(lineno, 'missing file name (or "( rows )") after "from"')
        if tail.endswith("|"):
            raise self.error(lineno, "queue ... from a command (FILE|) is not supported")
        return QueueStatement(
            lineno, "from", count, variables, from_file=tail, item_slice=item_slice
        )

    def queue_head(self, head: str, lineno: int) -> tuple[str | None, tuple[str, ...]]:
        """``[N] [VAR[,VAR...]]`` before in/from/matching: the count and the variables."""
        tokens = _QUEUE_TOKEN.findall(head)
        variables: list[str] = []
        while tokens and _IDENT.match(tokens[-1]):
            variables.insert(0, tokens.pop())
        count = " ".join(tokens) or None
        seen: set[str] = set()
        for v in variables:
            low = v.lower()
            if low in _RESERVED_QUEUE_VARS:
                raise self.error(lineno, f'"{v}" cannot be a queue variable: gwms sets it')
            if low in seen:
                raise self.error(lineno, f'queue variable "{v}" is named twice')
            seen.add(low)
        return count, tuple(variables) or ("Item",)

    def queue_slice(self, tail: str, lineno: int) -> tuple[Slice | None, str]:
        if not tail.startswith("["):
            return None, tail
        end = tail.find("]")
        if end < 0:
            raise self.error(lineno, f'unterminated slice "{_clip(tail)}" (missing "]")')
        try:
            return parse_slice(tail[: end + 1]), tail[end + 1 :].strip()
        except SubmitValueError as err:
            raise self.error(lineno, err.reason) from None

    def queue_matching(
        self, tail: str, lineno: int, count: str | None, variables: tuple[str, ...]
    ) -> QueueStatement:
        if len(variables) > 1:
            raise self.error(lineno, "queue ... matching takes one variable")
        kind: Literal["any", "files", "dirs"] = "any"
        m = re.match(r"(files?|dirs?)(?=[\s(\[]|\Z)", tail, re.IGNORECASE)
        if m is not None:
            kind = "files" if m.group(1).lower().startswith("file") else "dirs"
            tail = tail[m.end() :].strip()
        item_slice, tail = self.queue_slice(tail, lineno)
        patterns = self.paren_list(tail, lineno) if tail.startswith("(") else tail
        if not patterns.strip():
            raise self.error(lineno, 'missing file pattern after "matching"')
        return QueueStatement(
            lineno,
            "matching",
            count,
            variables,
            patterns=patterns,
            match_kind=kind,
            item_slice=item_slice,
        )

    def paren_list(self, tail: str, lineno: int) -> str:
        """The text of a ``( ... )`` list that starts on this line, possibly spanning lines
        up to a line beginning with ``)``; lines starting with ``#`` are dropped."""
        body = tail[1:]
        close = body.rfind(")")
        if close >= 0 and not body[close + 1 :].strip():
            return body[:close]
        collected = [body] if body.strip() else []
        while self.i < len(self.lines):
            line = self.lines[self.i]
            self.i += 1
            if line.lstrip().startswith(")"):
                return "\n".join(c for c in collected if not c.strip().startswith("#"))
            collected.append(line)
        raise self.error(
            lineno,
            f'unterminated queue list: the "(" on line {lineno} is never closed '
            '(a list spanning lines ends with a line beginning with ")")',
        )

    # ------------------------------------------------------------------------- checks

    def finish(self) -> SubmitDescription:
        """Reject unknown commands (names never used as macros) and files with no queue."""
        referenced: set[str] = set()
        for st in self.statements:
            if isinstance(st, Assignment):
                referenced |= referenced_names(st.value)
            else:
                for text in (st.count, st.items, st.from_file, st.patterns):
                    if text:
                        referenced |= referenced_names(text)
        for st in self.statements:
            if isinstance(st, Assignment) and st.kind == "macro" and st.name not in referenced:
                suggestion = did_you_mean(st.key)
                if suggestion:
                    hint = f'did you mean "{suggestion}"?'
                else:
                    hint = f"a user macro must be used somewhere as $({st.key})"
                raise self.error(st.line, f'unknown submit command "{st.key}" ({hint})')
        if not any(isinstance(st, QueueStatement) for st in self.statements):
            raise self.error(None, "no queue statement: nothing to submit")
        return SubmitDescription(self.source, tuple(self.statements))


def parse_submit(text: str, *, source: str = "<file>") -> SubmitDescription:
    """Parse an HTCondor submit description; ``source`` names it in error messages.

    Raises :class:`SubmitError` for syntax errors, unknown or unsupported commands,
    unterminated queue lists, a missing ``from`` file name, or no ``queue`` statement.
    """
    return _Parser(text, source).run()


# ----------------------------------------------------------------------------- expansion

_PER_JOB = frozenset({"process", "procid", "step", "itemindex", "row"})


def _norm(value: str | None) -> str | None:
    if value is None:
        return None
    v = value.strip()
    return v or None


class _DynamicDerivation:
    """A derivation with several inputs, or a dict result, whose inputs vary per job."""

    __slots__ = ("deriv", "names", "renderers", "memo", "shadow")

    def __init__(self, deriv: Derivation, templates: dict[str, Template], shadow: frozenset[str]):
        self.deriv = deriv
        self.names = tuple(templates)
        self.renderers = tuple(t.renderer for t in templates.values())
        used: set[str] = set()
        for t in templates.values():
            used |= t.dyn_names
        # Memoize unless every job gives new values anyway.
        self.memo: dict[tuple[str, ...], dict[str, Any]] | None = (
            None if used & {"process", "procid"} else {}
        )
        self.shadow = shadow

    def apply(self, ad: dict[str, Any], ctx: Mapping[str, str], jctx: JobContext) -> None:
        rendered = tuple(r(ctx) for r in self.renderers)
        memo = self.memo
        attrs = memo.get(rendered) if memo is not None else None
        if attrs is None:
            values: dict[str, str | None] = dict.fromkeys(self.deriv.inputs)
            for name, text in zip(self.names, rendered):
                values[name] = _norm(text)
            attrs = self.deriv.fn(values, jctx)
            if self.shadow:
                attrs = {k: v for k, v in attrs.items() if k.lower() not in self.shadow}
            if memo is not None:
                memo[rendered] = attrs
        ad.update(attrs)


class _Expander:
    def __init__(
        self,
        desc: SubmitDescription,
        *,
        cluster_id: int,
        owner: str,
        now: float,
        base_dir: Path,
        env: Mapping[str, str],
    ) -> None:
        self.desc = desc
        self.cluster_id = cluster_id
        self.owner = owner
        self.qdate = int(now)
        self.base_dir = Path(os.path.abspath(base_dir))
        self.env = env
        self.jctx = JobContext(owner=owner, base_dir=str(self.base_dir), env=env)
        self.static = {
            "cluster": str(cluster_id),
            "clusterid": str(cluster_id),
            "submit_file": desc.source,
            "node": "",
        }
        self.macros: dict[str, str] = {}
        self.lines: dict[str, int] = {}
        self.custom: dict[str, tuple[str, str, int]] = {}
        self.jobs: list[dict[str, Any]] = []
        self.next_proc = 0

    def error(self, line: int | None, reason: str) -> SubmitError:
        return SubmitError(self.desc.source, line, reason)

    def run(self) -> list[dict[str, Any]]:
        for st in self.desc.statements:
            if isinstance(st, QueueStatement):
                self.queue(st)
                continue
            if st.kind == "attribute":
                self.custom[st.name.lower()] = (st.name, st.value, st.line)
                continue
            self.macros[st.name] = st.value
            self.lines[st.name] = st.line
            alias = st.key.lower()
            if alias != st.name:
                self.macros[alias] = st.value
                self.lines[alias] = st.line
        return self.jobs

    def scope(self, dynamic: frozenset[str]) -> MacroScope:
        return MacroScope(
            self.macros,
            static=self.static,
            dynamic=dynamic,
            env=self.env,
            base_dir=str(self.base_dir),
        )

    def static_text(self, scope: MacroScope, text: str, line: int) -> str:
        try:
            value = scope.compile(text).value
        except SubmitValueError as err:
            raise self.error(line, err.reason) from None
        assert value is not None
        return value

    # ------------------------------------------------------------------ items and counts

    def count(self, st: QueueStatement, scope: MacroScope) -> int:
        if st.count is None:
            return 1
        text = self.static_text(scope, st.count, st.line).strip()
        if _INT.match(text):
            n = int(text)
        else:
            try:
                value = classad2.ExprTree(text).eval()
            except Exception:
                value = None
            if type(value) is not int:
                raise self.error(st.line, f'the queue count must be a whole number, not "{text}"')
            assert isinstance(value, int)
            n = value
        if n < 0:
            raise self.error(st.line, f"the queue count must not be negative (got {n})")
        return n

    def rows(self, st: QueueStatement, scope: MacroScope) -> list[tuple[int, dict[str, str]]]:
        """(ItemIndex, {variable: value}) of each selected item of a foreach queue."""
        names = [v.lower() for v in st.variables]
        try:
            if st.mode == "in":
                assert st.items is not None
                text = self.static_text(scope, st.items, st.line)
                values = [[item] for item in split_in_items(text)]
            elif st.mode == "from":
                if st.from_file is not None:
                    name = self.static_text(scope, st.from_file, st.line).strip()
                    lines = read_item_file(self.base_dir, name)
                else:
                    assert st.items is not None
                    lines = item_lines(self.static_text(scope, st.items, st.line))
                values = [split_row(line, len(names)) for line in lines]
            else:
                assert st.patterns is not None
                text = self.static_text(scope, st.patterns, st.line)
                matches = glob_items(self.base_dir, split_in_items(text), st.match_kind)
                values = [[m] for m in matches]
        except SubmitValueError as err:
            raise self.error(st.line, err.reason) from None
        indexed = list(enumerate(values))
        if st.item_slice is not None:
            indexed = indexed[slice(*st.item_slice)]
        return [(index, dict(zip(names, vals))) for index, vals in indexed]

    # --------------------------------------------------------------------- one queue

    def queue(self, st: QueueStatement) -> None:
        """Append the jobs of one queue statement, with the definitions as they stand."""
        plain = self.scope(frozenset())
        count = self.count(st, plain)
        rows = [(0, {})] if st.mode == "count" else self.rows(st, plain)
        variables = frozenset(v.lower() for v in st.variables)
        if count == 0 or not rows:
            return
        scope = self.scope(_PER_JOB | variables)

        present: dict[str, tuple[Template, int]] = {}
        for name in KNOWN_COMMANDS:
            if name in variables:
                present[name] = (Template((DynRef(name),)), st.line)
            elif name in self.macros:
                line = self.lines[name]
                try:
                    present[name] = (scope.compile_name(name), line)
                except SubmitValueError as err:
                    raise self.error(line, err.reason) from None
        if "executable" not in present or present["executable"][0].value == "":
            raise self.error(
                st.line, 'queue with no executable: set "executable = ..." before this queue'
            )

        custom_static: dict[str, Any] = {}
        custom_dynamic: list[tuple[str, Template, int]] = []
        for low, (attr, raw, line) in self.custom.items():
            if low in _PROTECTED_ATTRS:
                raise self.error(line, f"{attr} cannot be set in a submit file: gwms sets it")
            try:
                template = scope.compile(raw)
            except SubmitValueError as err:
                raise self.error(line, err.reason) from None
            if template.value is None:
                custom_dynamic.append((attr, template, line))
                continue
            custom_static[attr] = self.custom_value(attr, template.value, line, None)
        shadow = frozenset(self.custom)

        common: dict[str, Any] = {
            A.CLUSTER_ID: self.cluster_id,
            A.PROC_ID: 0,
            A.OWNER: self.owner,
            A.QDATE: self.qdate,
            A.ENTERED_CURRENT_STATUS: self.qdate,
            A.JOB_STATUS: A.IDLE,
            A.MY_TYPE: A.JOB_MY_TYPE,
            A.TARGET_TYPE: A.SLOT_MY_TYPE,
            A.NUM_JOB_STARTS: 0,
        }
        # Per-job work: one-attribute derivations as (attr, render, convert, default, deriv),
        # one-command ones with a dict result as (render, convert, deriv), the others as
        # _DynamicDerivation; everything else is computed once, here.
        singles: list[tuple[str, Any, Any, Any, Derivation]] = []
        mappers: list[tuple[Any, Any, Derivation]] = []
        multis: list[_DynamicDerivation] = []
        for deriv in DERIVATIONS:
            given = {name: present[name][0] for name in deriv.inputs if name in present}
            if not given and not deriv.always:
                continue
            if all(t.value is not None for t in given.values()):
                values = {
                    name: _norm(given[name].value) if name in given else None
                    for name in deriv.inputs
                }
                try:
                    common.update(deriv.fn(values, self.jctx))
                except SubmitValueError as err:
                    raise self.value_error(err, deriv, present, st, None) from None
            elif deriv.single is not None and len(deriv.inputs) == 1:
                attr, convert, default = deriv.single
                renderer = given[deriv.inputs[0]].renderer
                if attr is None:
                    if any(out.lower() in shadow for out in deriv.outputs):
                        multis.append(_DynamicDerivation(deriv, given, shadow))  # filters
                    else:
                        mappers.append((renderer, convert, deriv))
                elif attr.lower() not in shadow:
                    singles.append((attr, renderer, convert, default, deriv))
            else:
                multis.append(_DynamicDerivation(deriv, given, shadow))
        for key in [k for k in common if k.lower() in shadow]:
            del common[key]
        common.update(custom_static)

        jobs = self.jobs
        jctx = self.jctx
        proc = self.next_proc
        proc_id = A.PROC_ID
        deriv: Derivation | None = None
        try:
            for index, row in rows:
                si = str(index)
                for step in range(count):
                    sp = str(proc)
                    ctx = {"process": sp, "procid": sp, "step": str(step), "itemindex": si,
                           "row": si}
                    if row:
                        ctx.update(row)
                    ad = common.copy()
                    ad[proc_id] = proc
                    for attr, render, convert, default, deriv in singles:
                        value = render(ctx).strip()
                        if value:
                            ad[attr] = value if convert is None else convert(value)
                        elif default is not NO_DEFAULT:
                            ad[attr] = default
                    for render, convert, deriv in mappers:
                        value = render(ctx).strip()
                        if value:
                            ad.update(convert(value))
                    for dyn in multis:
                        deriv = dyn.deriv
                        dyn.apply(ad, ctx, jctx)
                    deriv = None
                    for attr, template, line in custom_dynamic:
                        ad[attr] = self.custom_value(attr, template.render(ctx), line, proc)
                    jobs.append(ad)
                    proc += 1
        except SubmitValueError as err:
            assert deriv is not None
            raise self.value_error(err, deriv, present, st, proc) from None
        finally:
            self.next_proc = proc

    def custom_value(self, attr: str, text: str, line: int, proc: int | None) -> Any:
        try:
            return expr_json(text)
        except SubmitValueError as err:
            where = f" (job {self.cluster_id}.{proc})" if proc is not None else ""
            raise self.error(
                line, f"bad expression for {attr} '{text.strip()}': {err.reason}{where}"
            ) from None

    def value_error(
        self,
        err: SubmitValueError,
        deriv: Derivation,
        present: Mapping[str, tuple[Template, int]],
        st: QueueStatement,
        proc: int | None,
    ) -> SubmitError:
        command = err.command or deriv.inputs[0]
        line = present[command][1] if command in present else st.line
        where = f" (job {self.cluster_id}.{proc})" if proc is not None else ""
        return self.error(line, err.reason + where)


def expand_submit(
    desc: SubmitDescription,
    *,
    cluster_id: int,
    owner: str,
    now: float,
    base_dir: Path,
    env: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The job ads of a parsed submit description, one per job, ProcId 0, 1, ...

    ``base_dir`` is the submit directory: relative ``initialdir`` values, the files of
    ``queue ... from FILE`` and the globs of ``queue ... matching`` are taken relative to
    it. ``env`` is the submitter's environment, for ``getenv`` and ``$ENV()``. ``now`` (Unix
    time) becomes QDate and EnteredCurrentStatus.

    Raises :class:`SubmitError` on the first problem; then no job is returned at all.
    """
    return _Expander(
        desc,
        cluster_id=cluster_id,
        owner=owner,
        now=now,
        base_dir=base_dir,
        env=dict(env) if env else {},
    ).run()

