"""Loading YAML configuration files into typed pydantic models, with errors people can act on.

:func:`load_config` reads a file with YAML's safe loader, keeps the node tree beside
the data, and validates the data with a pydantic model. Every problem becomes a
:class:`ConfigProblem` naming the file, the line, the key path
(``entries[2].limits.max_idle``), what was expected and what was found::

    factory.yaml:14: entries[2].limits.max_idle: expected an integer, found 'ten'
    factory.yaml:9: entries[0].max_idel: unknown setting (did you mean 'max_idle'?)

and :class:`ConfigError` (a :class:`~gwms.errors.GwmsError`) carries them all.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from gwms.config.keypath import KeyPart, describe_key_path
from gwms.errors import GwmsError

M = TypeVar("M", bound=BaseModel)

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong in a configuration file.

    ``line`` and ``column`` are 1-based, or None when the place is not known.
    """

    source: str
    key_path: tuple[KeyPart, ...]
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        if not self.key_path:
            return f"{where}: {self.message}"
        return f"{where}: {describe_key_path(self.key_path)}: {self.message}"


class ConfigError(GwmsError):
    """A configuration file that cannot be used; the message says where and why.

    ``problems`` lists every problem found (at least one when the error came from
    validation); the message is the first one, with a count of the others.
    """

    http_status = 400

    def __init__(
        self,
        message: str,
        *,
        problems: Sequence[ConfigProblem] = (),
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.problems: tuple[ConfigProblem, ...] = tuple(problems)

    @classmethod
    def from_problems(cls, problems: Sequence[ConfigProblem]) -> ConfigError:
        """One error for a non-empty list of problems."""
        if not problems:
            raise ValueError("ConfigError.from_problems needs at least one problem")
        message = str(problems[0])
        if len(problems) > 1:
            more = len(problems) - 1
            message += f" (and {more} more problem{'s' if more > 1 else ''})"
        return cls(message, problems=problems)


@dataclass(frozen=True)
class ConfigDocument:
    """A parsed YAML document: its data and the node tree that knows the line numbers."""

    source: str
    data: Any
    root: Node | None

    def node_at(self, parts: Sequence[KeyPart]) -> Node | None:
        """The YAML node of the value at key path ``parts``, or None if it is not there."""
        node = self.root
        for part in parts:
            if node is None:
                return None
            node = _child(node, part)[1]
        return node

    def position_of(self, parts: Sequence[KeyPart]) -> tuple[int, int] | None:
        """(line, column), 1-based, of the value at ``parts``.

        A key that is not in the document (a missing setting) gives the place of the
        mapping that should hold it; an empty path gives the document's start.
        """
        node = self.root
        if node is None:
            return None
        for part in parts:
            _, child = _child(node, part)
            if child is None:
                break
            node = child
        return node.start_mark.line + 1, node.start_mark.column + 1

    def key_position(self, parts: Sequence[KeyPart]) -> tuple[int, int] | None:
        """(line, column) of the last key of ``parts`` itself (for unknown settings)."""
        if not parts:
            return self.position_of(parts)
        parent = self.node_at(parts[:-1])
        if parent is not None:
            key_node, _ = _child(parent, parts[-1])
            if key_node is not None:
                return key_node.start_mark.line + 1, key_node.start_mark.column + 1
        return self.position_of(parts)


def _child(node: Node, part: KeyPart) -> tuple[Node | None, Node | None]:
    """(key node, value node) of ``part`` inside ``node``; (None, None) if absent."""
    if isinstance(node, MappingNode):
        found: tuple[Node | None, Node | None] = (None, None)
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value == str(part):
                found = (key_node, value_node)  # the last one wins, as in the data
        return found
    if isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return None, node.value[part]
    return None, None


def read_text(path: str | os.PathLike[str]) -> str:
    """The text of a configuration file, or a :class:`ConfigError` saying why not."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a directory, not a configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None


def parse_document(text: str, source: str = "<string>") -> ConfigDocument:
    """Parse one YAML document safely, keeping its node tree; duplicate keys are errors."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            _check_duplicate_keys(root, source)
            data = loader.construct_document(root)
        else:
            data = None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_describe_yaml_error(exc, source)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: YAML error: {exc}") from None
    finally:
        loader.dispose()
    return ConfigDocument(source=source, data=data, root=root)


def _describe_yaml_error(exc: yaml.MarkedYAMLError, source: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = source if mark is None else f"{source}:{mark.line + 1}:{mark.column + 1}"
    syntax = isinstance(exc, (yaml.scanner.ScannerError, yaml.parser.ParserError))
    label = "YAML syntax error" if syntax else "YAML error"
    problem = exc.problem or exc.context or "invalid YAML"
    if exc.problem and exc.context and exc.problem.startswith("but "):
        return f"{where}: {label}: {exc.context}, {exc.problem}"
    text = f"{where}: {label}: {problem}"
    if exc.problem and exc.context and exc.context_mark is not None:
        text += f" ({exc.context} at line {exc.context_mark.line + 1})"
    return text


def _check_duplicate_keys(root: Node, source: str) -> None:
    seen_nodes: set[int] = set()
    stack: list[Node] = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, MappingNode):
            first_line: dict[str, int] = {}
            for key_node, value_node in node.value:
                stack.append(value_node)
                if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                    continue
                line = key_node.start_mark.line + 1
                if key_node.value in first_line:
                    raise ConfigError(
                        f"{source}:{line}: duplicate key {key_node.value!r} "
                        f"(first given at line {first_line[key_node.value]})"
                    )
                first_line[key_node.value] = line
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


def read_document(path: str | os.PathLike[str]) -> ConfigDocument:
    """Read and parse a configuration file whose top level must be a mapping."""
    source = str(path)
    document = parse_document(read_text(path), source)
    _require_mapping(document)
    return document


def _require_mapping(document: ConfigDocument) -> None:
    if document.data is None:
        raise ConfigError(f"{document.source}: the file is empty; expected a mapping of settings")
    if not isinstance(document.data, dict):
        position = document.position_of(())
        where = document.source if position is None else f"{document.source}:{position[0]}"
        raise ConfigError(
            f"{where}: expected a mapping of settings at the top level, "
            f"found {describe_value(document.data)}"
        )


def load_config(path: str | os.PathLike[str], model: type[M]) -> M:
    """Read the YAML file at ``path`` and validate it as ``model``.

    Raises :class:`ConfigError` for a missing or unreadable file, YAML syntax errors
    (with line and column), an empty file, a top level that is not a mapping, and
    every validation problem (with key path, line, expectation and found value).
    """
    return validate_document(read_document(path), model)


def parse_config(text: str, model: type[M], source: str = "<string>") -> M:
    """Like :func:`load_config`, for YAML text already in memory."""
    document = parse_document(text, source)
    _require_mapping(document)
    return validate_document(document, model)


def validate_document(document: ConfigDocument, model: type[M]) -> M:
    """Validate a parsed document as ``model``; :class:`ConfigError` lists the problems."""
    try:
        return model.model_validate(document.data)
    except ValidationError as exc:
        problems = validation_problems(document, model, exc)
        raise ConfigError.from_problems(problems) from None


def validation_problems(
    document: ConfigDocument, model: type[BaseModel], exc: ValidationError
) -> list[ConfigProblem]:
    """Turn pydantic's errors into :class:`ConfigProblem` s placed in the document."""
    problems: list[ConfigProblem] = []
    seen: set[tuple[tuple[KeyPart, ...], str]] = set()
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        parts, present = data_key_path(document.data, loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            message = "unknown setting"
            names = allowed_keys(model, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), sorted(names), n=1, cutoff=0.6)
            if close:
                message += f" (did you mean {close[0]!r}?)"
            position = document.key_position(parts)
        elif kind == "missing" and not present:
            message = "required setting is missing"
            position = document.position_of(parts)
        else:
            message = f"{expectation(error)}, found {describe_value(error.get('input'))}"
            position = document.position_of(parts)
        if (parts, message) in seen:
            continue
        seen.add((parts, message))
        line, column = position if position else (None, None)
        problems.append(ConfigProblem(document.source, parts, message, line, column))
    problems.sort(key=lambda problem: problem.line or 0)
    return problems


def data_key_path(data: Any, loc: Sequence[Any]) -> tuple[tuple[KeyPart, ...], bool]:
    """Map pydantic's error location onto the data's own key path.

    Pydantic's locations can hold steps that are not keys of the data (the member of
    a union it tried, ``[key]`` markers); these are dropped. Returns the path and
    whether its last step exists in the data.
    """
    parts: list[KeyPart] = []
    node = data
    present = True
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(node, dict) and _hashable(part) and part in node:
            parts.append(part)
            node = node[part]
        elif (
            isinstance(node, list)
            and isinstance(part, int)
            and not isinstance(part, bool)
            and 0 <= part < len(node)
        ):
            parts.append(part)
            node = node[part]
        elif part == "[key]":
            continue
        elif last and isinstance(node, dict) and isinstance(part, (str, int)):
            parts.append(part)
            present = False
        # anything else is a union member's name or a validator's tag: not in the data
    return tuple(parts), present


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


_EXPECTATIONS = {
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "set_type": "expected a list",
    "frozen_set_type": "expected a list",
    "dict_type": "expected a mapping",
    "mapping_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "none_required": "expected nothing (null)",
    "missing": "required setting is missing",
}


def expectation(error: Mapping[str, Any]) -> str:
    """What a pydantic error says was expected, as ``expected ...`` text."""
    kind = error.get("type", "")
    if kind in _EXPECTATIONS:
        return _EXPECTATIONS[kind]
    ctx = error.get("ctx") or {}
    if kind in ("literal_error", "enum") and "expected" in ctx:
        return f"expected {ctx['expected']}"
    message = str(error.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix):]
    if message.startswith("Input should be "):
        rest = message[len("Input should be "):]
        if rest.startswith(("greater than", "less than")):
            return "expected a value " + rest
        return "expected " + rest
    return message[:1].lower() + message[1:]


def describe_value(value: Any, limit: int = 60) -> str:
    """A short description of a value found in a configuration file."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= limit else text[: limit - 4] + "...'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def allowed_keys(model: type[BaseModel], loc: Sequence[Any]) -> set[str]:
    """The setting names allowed at pydantic location ``loc`` inside ``model``."""
    current: list[Any] = [model]
    for part in loc:
        following: list[Any] = []
        for candidate in current:
            for tp in _alternatives(candidate):
                following.extend(_step(tp, part))
        current = following
    names: set[str] = set()
    for candidate in current:
        for tp in _alternatives(candidate):
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                for name, field in tp.model_fields.items():
                    names.add(field.alias or name)
    return names


def _alternatives(tp: Any) -> list[Any]:
    """The concrete types a type annotation allows (unwrapping Optional, Union, Annotated)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _alternatives(typing.get_args(tp)[0])
    if origin is typing.Union or origin is types.UnionType:
        out: list[Any] = []
        for arg in typing.get_args(tp):
            out.extend(_alternatives(arg))
        return out
    return [tp]


def _step(tp: Any, part: Any) -> list[Any]:
    """The types reached from ``tp`` by one location step."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if isinstance(part, str):
            for name, field in tp.model_fields.items():
                if part in (name, field.alias):
                    return [field.annotation]
        return [tp]  # a union tag: stay on this model
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (list, tuple, set, frozenset, Sequence) and args:
        return [args[0]] if isinstance(part, int) else [tp]
    if origin in (dict, Mapping) and len(args) == 2:
        return [args[1]]
    return []


def dump_config(model: BaseModel, *, exclude_defaults: bool = False) -> str:
    """A model as YAML text that :func:`load_config` reads back into an equal model."""
    data = model.model_dump(mode="json", by_alias=True, exclude_defaults=exclude_defaults)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    if yaml.safe_load(text) != data:
        # PyYAML writes some characters (NEL, line and paragraph separators) unescaped
        # that it then reads back differently; escaping all non-ASCII avoids that.
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=False, default_flow_style=False)
    return text
