"""Macro expansion of the submit language, compiled once per ``queue`` statement.

Macros (all names case-insensitive):

- ``$(Name)``: a submit command or user-defined macro, expanded recursively at queue time
  with the definitions as they stand at that ``queue`` statement; ``$(Name:default)`` uses
  ``default`` when ``Name`` is not defined. An undefined macro without a default is an
  error (gwms is strict where HTCondor silently expands to nothing).
- Automatic: ``$(Cluster)``/``$(ClusterId)``, ``$(Process)``/``$(ProcId)``, ``$(Step)``,
  ``$(ItemIndex)``/``$(Row)``, ``$(Item)`` and the queue statement's own variables,
  ``$(Node)`` (empty), ``$(SUBMIT_FILE)``, ``$(DOLLAR)`` (a literal ``$``).
- Functions: ``$ENV(VAR[:default])``, ``$INT(x[,format])``, ``$REAL(x[,format])``,
  ``$F[fpdnxbqauw](x)``, ``$BASENAME(x)`` (= ``$Fnx``), ``$DIRNAME(x)`` (= ``$Fp``),
  ``$CHOICE(index, list...)``. ``x`` is a macro name, or else the literal text.
- ``$$(...)`` is left untouched: it is expanded at match time against the slot ad.
- A ``$`` that starts none of these is a literal ``$``.

Because ``$(Process)`` and the queue variables change from job to job, a value is compiled
into a :class:`Template`: the parts that do not vary are expanded once, and
:meth:`Template.render` fills in the per-job parts (fast: ``str.format_map`` in the
common case). Errors raise :class:`SubmitValueError`.
"""

from __future__ import annotations

import math
import os.path
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

import classad2

from gwms.pool.schedd.submit_errors import SubmitValueError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")
_FUNC = re.compile(
    r"\$(ENV|INT|REAL|BASENAME|DIRNAME|CHOICE|RANDOM_CHOICE|RANDOM_INTEGER|F[fpdnxbqauw]*)\("
)
_REFERENCE = re.compile(
    r"(?<!\$)\$(?:\(|INT\(|REAL\(|BASENAME\(|DIRNAME\(|CHOICE\(|F[fpdnxbqauw]*\()\s*"
    r"([A-Za-z_][A-Za-z0-9_.]*)"
)
_MAX_DEPTH = 64


@dataclass(frozen=True, slots=True)
class DynRef:
    """A per-job value: a queue variable or an automatic macro such as ``Process``."""

    name: str  # lower-case


@dataclass(frozen=True, slots=True)
class DynFunc:
    """A macro function whose arguments vary per job: ``fn(*rendered_args)``."""

    fn: Callable[..., str]
    args: tuple[tuple[str | DynRef | DynFunc, ...], ...]


Part = str | DynRef | DynFunc


def _render_parts(parts: tuple[Part, ...], ctx: Mapping[str, str]) -> str:
    out: list[str] = []
    for p in parts:
        if isinstance(p, str):
            out.append(p)
        elif isinstance(p, DynRef):
            out.append(ctx[p.name])
        else:
            out.append(p.fn(*(_render_parts(a, ctx) for a in p.args)))
    return "".join(out)


def _dyn_names(parts: tuple[Part, ...], into: set[str]) -> None:
    for p in parts:
        if isinstance(p, DynRef):
            into.add(p.name)
        elif isinstance(p, DynFunc):
            for a in p.args:
                _dyn_names(a, into)


class Template:
    """A compiled value: constant (``value`` is set) or rendered per job."""

    __slots__ = ("parts", "value", "dyn_names", "_fmt")

    def __init__(self, parts: tuple[Part, ...]) -> None:
        merged: list[Part] = []
        for p in parts:
            if isinstance(p, str) and merged and isinstance(merged[-1], str):
                merged[-1] = merged[-1] + p
            elif p != "":
                merged.append(p)
        self.parts: tuple[Part, ...] = tuple(merged)
        names: set[str] = set()
        _dyn_names(self.parts, names)
        self.dyn_names: frozenset[str] = frozenset(names)
        self.value: str | None = None
        self._fmt: str | None = None
        if not names:
            self.value = "".join(p for p in self.parts if isinstance(p, str))
        elif all(isinstance(p, (str, DynRef)) for p in self.parts):
            self._fmt = "".join(
                p.replace("{", "{{").replace("}", "}}") if isinstance(p, str) else "{%s}" % p.name
                for p in self.parts
            )

    @property
    def is_static(self) -> bool:
        """Whether the value is the same for every job."""
        return self.value is not None

    def render(self, ctx: Mapping[str, str]) -> str:
        """The value for one job; ``ctx`` maps lower-case per-job names to their values."""
        if self.value is not None:
            return self.value
        if self._fmt is not None:
            return self._fmt.format_map(ctx)
        return _render_parts(self.parts, ctx)

    @property
    def renderer(self) -> Callable[[Mapping[str, str]], str]:
        """The fastest callable equivalent to :meth:`render` for this template."""
        if self._fmt is not None:
            return self._fmt.format_map
        return self.render


_CHOICE_ARGS = re.compile(r"\$CHOICE\(([^()]*)\)")


def referenced_names(text: str) -> set[str]:
    """Lower-cased names that ``text`` refers to with ``$(...)`` or a macro function
    (``$$(...)`` match-time references are not counted)."""
    names = {m.group(1).lower() for m in _REFERENCE.finditer(text)}
    for m in _CHOICE_ARGS.finditer(text):
        names.update(a.strip().lower() for a in m.group(1).split(",") if _NAME.match(a.strip()))
    return names


def _match_paren(text: str, open_at: int) -> int:
    """Index of the ``)`` closing the ``(`` at ``open_at``."""
    depth = 0
    for i in range(open_at, len(text)):
        c = text[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
    start = text.rfind("$", 0, open_at + 1)
    raise SubmitValueError(f'unterminated macro reference "{text[start:]}" (missing ")")')


def filename_part(path: str, flags: str, base_dir: str) -> str:
    """HTCondor's ``$F<flags>(path)``.

    ``p`` the directory part with its trailing slash, ``d`` the last directory name with a
    trailing slash (without it if ``b``), ``n`` the file name without extension, ``x`` the
    extension with its dot (without it if ``b``); none of p/d/n/x: the whole path. ``f``
    makes a relative path absolute (against the submit directory), ``u``/``w`` turn
    separators into ``/``/``\\``, ``q`` wraps the result in double quotes (single with ``a``).
    """
    p = path.strip()
    if "u" in flags:
        p = p.replace("\\", "/")
    if "f" in flags and not os.path.isabs(p):
        p = os.path.normpath(os.path.join(base_dir, p))
    slash = p.rfind("/")
    dirpart, name = (p[: slash + 1], p[slash + 1 :]) if slash >= 0 else ("", p)
    dot = name.rfind(".")
    stem, ext = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    if not any(c in flags for c in "pdnx"):
        out = p
    else:
        out = ""
        if "p" in flags:
            out += dirpart
        elif "d" in flags and dirpart:
            last = PurePosixPath(dirpart.rstrip("/") or "/").name
            out += last if "b" in flags else last + "/"
        if "n" in flags:
            out += stem
        if "x" in flags:
            out += ext[1:] if "b" in flags and "n" not in flags else ext
    if "w" in flags:
        out = out.replace("/", "\\")
    if "q" in flags:
        out = f"'{out}'" if "a" in flags else f'"{out}"'
    return out


_INT_TEXT = re.compile(r"\s*[+-]?\d+\s*\Z")


def _number(text: str, fn: str) -> int | float:
    if _INT_TEXT.match(text):
        return int(text)
    try:
        value = classad2.ExprTree(text).eval()
    except Exception:
        value = None
    if type(value) not in (int, float):
        raise SubmitValueError(f'${fn}(): "{text}" is not a number')
    assert isinstance(value, (int, float))
    return value


def _format_number(text: str, fmt: str, fn: str) -> str:
    value = _number(text, fn)
    if fn == "INT":
        value = int(math.trunc(value))
        fmt = fmt or "%d"
    else:
        value = float(value)
        fmt = fmt or "%.6f"
    try:
        return fmt % value
    except (TypeError, ValueError) as err:
        raise SubmitValueError(f'${fn}(): bad format "{fmt}": {err}') from None


def _choice(index_text: str, items_text: str) -> str:
    items = [s.strip() for s in items_text.split(",")]
    idx = _number(index_text, "CHOICE")
    if not isinstance(idx, int) or not 0 <= idx < len(items):
        raise SubmitValueError(f"$CHOICE(): index {index_text.strip()} is out of range")
    return items[idx]


class MacroScope:
    """The macro definitions in force at one ``queue`` statement.

    ``macros``: lower-case name -> raw value (submit commands and user macros);
    ``static``: lower-case name -> value of automatic macros fixed for the whole submit
    (``cluster``, ...); ``dynamic``: lower-case names that vary per job; ``env``: the
    submitter's environment for ``$ENV()``; ``base_dir``: for ``$Ff()``.
    """

    def __init__(
        self,
        macros: Mapping[str, str],
        *,
        static: Mapping[str, str],
        dynamic: frozenset[str],
        env: Mapping[str, str],
        base_dir: str,
    ) -> None:
        self.macros = macros
        self.static = static
        self.dynamic = dynamic
        self.env = env
        self.base_dir = base_dir
        self._cache: dict[str, tuple[Part, ...]] = {}

    def compile(self, text: str) -> Template:
        """The template of a raw value."""
        return Template(self._expand(text, ()))

    def compile_name(self, name: str) -> Template:
        """The template of the macro or command ``name`` (lower-case), as ``$(name)``."""
        return Template(self._ref(name, ()))

    def is_defined(self, name: str) -> bool:
        """Whether ``name`` (lower-case) is a macro, automatic or per-job variable here."""
        return name in self.dynamic or name in self.static or name in self.macros

    # ------------------------------------------------------------------ expansion

    def _expand(self, text: str, stack: tuple[str, ...]) -> tuple[Part, ...]:
        if "$" not in text:
            return (text,)
        if len(stack) > _MAX_DEPTH:
            raise SubmitValueError(
                "macros nest too deeply: " + " -> ".join(f"$({n})" for n in stack[:8]) + " ..."
            )
        out: list[Part] = []
        i = 0
        n = len(text)
        while i < n:
            j = text.find("$", i)
            if j < 0:
                out.append(text[i:])
                break
            if j > i:
                out.append(text[i:j])
            if text.startswith("$$(", j):
                end = _match_paren(text, j + 2)
                out.append(text[j : end + 1])
                i = end + 1
                continue
            if text.startswith("$(", j):
                end = _match_paren(text, j + 1)
                out.extend(self._ref_body(text[j + 2 : end], stack))
                i = end + 1
                continue
            m = _FUNC.match(text, j)
            if m is not None:
                end = _match_paren(text, m.end() - 1)
                out.extend(self._func(m.group(1), text[m.end() : end], stack))
                i = end + 1
                continue
            out.append("$")
            i = j + 1
        return tuple(out)

    def _ref_body(self, body: str, stack: tuple[str, ...]) -> tuple[Part, ...]:
        name, sep, default = body.partition(":")
        name = name.strip()
        if not _NAME.match(name):
            raise SubmitValueError(f'bad macro reference "$({body})"')
        return self._ref(name.lower(), stack, default if sep else None, shown=name)

    def _ref(
        self,
        lname: str,
        stack: tuple[str, ...],
        default: str | None = None,
        *,
        shown: str | None = None,
    ) -> tuple[Part, ...]:
        if lname in self.dynamic:
            return (DynRef(lname),)
        if lname == "dollar":
            return ("$",)
        if lname in self.static:
            return (self.static[lname],)
        raw = self.macros.get(lname)
        if raw is not None:
            cached = self._cache.get(lname)
            if cached is not None:
                return cached
            if lname in stack:
                chain = " -> ".join(f"$({n})" for n in (*stack[stack.index(lname) :], lname))
                raise SubmitValueError(f"macro refers to itself: {chain}")
            parts = self._expand(raw, (*stack, lname))
            self._cache[lname] = parts
            return parts
        if default is not None:
            return self._expand(default, stack)
        label = shown or lname
        hint = ""
        if lname in ("item", "row", "itemindex", "step"):
            hint = f" ($({label}) is set only by a queue statement with in/from/matching)"
        raise SubmitValueError(f"undefined macro $({label}){hint}")

    def _name_or_text(self, arg: str, stack: tuple[str, ...]) -> tuple[Part, ...]:
        a = arg.strip()
        if _NAME.match(a) and self.is_defined(a.lower()):
            return self._ref(a.lower(), stack)
        return self._expand(a, stack)

    def _func(self, fn: str, body: str, stack: tuple[str, ...]) -> tuple[Part, ...]:
        if fn == "ENV":
            var, sep, default = body.partition(":")
            var = var.strip()
            if var in self.env:
                return (self.env[var],)
            if sep:
                return self._expand(default, stack)
            raise SubmitValueError(f"$ENV({var}): the environment variable is not set")
        if fn in ("RANDOM_CHOICE", "RANDOM_INTEGER"):
            raise SubmitValueError(
                f"${fn}() is not supported (gwms expands submit files deterministically)"
            )
        if fn in ("INT", "REAL"):
            arg, _, fmt = body.partition(",")
            parts = self._name_or_text(arg, stack)
            fmt = fmt.strip()
            return self._apply(lambda s: _format_number(s, fmt, fn), (parts,))
        if fn == "CHOICE":
            index_arg, _, rest = body.partition(",")
            index_parts = self._name_or_text(index_arg, stack)
            rest_s = rest.strip()
            if _NAME.match(rest_s) and rest_s.lower() in self.macros:
                items_parts = self._ref(rest_s.lower(), stack)
            else:
                items_parts = self._expand(rest_s, stack)
            return self._apply(_choice, (index_parts, items_parts))
        flags = {"BASENAME": "nx", "DIRNAME": "p"}.get(fn, fn[1:])
        parts = self._name_or_text(body, stack)
        base_dir = self.base_dir
        return self._apply(lambda s: filename_part(s, flags, base_dir), (parts,))

    @staticmethod
    def _apply(fn: Callable[..., str], args: tuple[tuple[Part, ...], ...]) -> tuple[Part, ...]:
        if all(all(isinstance(p, str) for p in a) for a in args):
            return (fn(*("".join(a) for a in args)),)  # type: ignore[arg-type]
        return (DynFunc(fn, args),)
