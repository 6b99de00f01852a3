"""Job ads as the queue stores them: validation, the stored JSON form, and case-blind access.

Jobs arrive as JSON-form ads (see docs/contracts.md): attribute names are ClassAd
identifiers, values are JSON values, and an expression is the string ``"/Expr(...)/"``.
The queue stores each ad whole as JSON text, and mirrors six attributes (the *hot*
attributes: ClusterId, ProcId, Owner, JobStatus, QDate, EnteredCurrentStatus) in
indexed table columns. The queue alone sets those six, always spelled as here, so the
columns and the text agree.

Attribute names are case-insensitive in the ClassAd language, so every lookup here
ignores case while keeping the spelling the ad was given.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import classad2
import orjson

from gwms.pool.jobattrs import (
    CLUSTER_ID,
    ENTERED_CURRENT_STATUS,
    JOB_STATUS,
    OWNER,
    PROC_ID,
    QDATE,
)
from gwms.pool.schedd.queue_errors import InvalidJobError

#: The attributes kept as table columns, in the order they lead a read ad.
HOT_ATTRS: tuple[str, ...] = (CLUSTER_ID, PROC_ID, OWNER, JOB_STATUS, QDATE, ENTERED_CURRENT_STATUS)
HOT_ATTRS_LOWER: frozenset[str] = frozenset(a.lower() for a in HOT_ATTRS)

EXPR_PREFIX = "/Expr("
EXPR_SUFFIX = ")/"

_ATTR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_RESERVED_NAMES = frozenset(
    {"true", "false", "undefined", "error", "is", "isnt", "parent", "my", "target"}
)


def encode_json(value: Any) -> str:
    """Compact JSON text of a (validated) JSON-form value."""
    return orjson.dumps(value).decode()


def decode_json(text: str | bytes) -> Any:
    """The value of JSON text (as stored by :func:`encode_json`)."""
    return orjson.loads(text)


def is_attr_name(name: object) -> bool:
    """Whether ``name`` is usable as a ClassAd attribute name (an identifier, not a keyword)."""
    return (
        isinstance(name, str)
        and _ATTR_NAME.match(name) is not None
        and name.lower() not in _RESERVED_NAMES
    )


def find_key(ad: Mapping[str, Any], name: str) -> str | None:
    """The key of ``ad`` that spells attribute ``name`` in any case, or ``None``."""
    if name in ad:
        return name
    lower = name.lower()
    for key in ad:
        if key.lower() == lower:
            return key
    return None


def get_attr(ad: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """The value of attribute ``name`` (any case) in ``ad``, or ``default``."""
    key = find_key(ad, name)
    return default if key is None else ad[key]


_INDEX_CACHE: dict[tuple[str, ...], dict[str, str]] = {}
_INDEX_CACHE_SIZE = 4096


def _key_index(ad: Mapping[str, Any]) -> dict[str, str]:
    """A fresh ``{lower-case name: key}`` index of ``ad``.

    Ads of one cluster share their key lists, so the index is built once per distinct
    key list (a bounded cache) and copied, instead of lower-casing every key of every ad.
    """
    keys = tuple(ad)
    index = _INDEX_CACHE.get(keys)
    if index is None:
        index = {key.lower(): key for key in keys}
        if len(_INDEX_CACHE) >= _INDEX_CACHE_SIZE:
            _INDEX_CACHE.clear()
        _INDEX_CACHE[keys] = index
    return index.copy()


class CaseBlindAd:
    """Case-blind get/set/pop over one ad dict, for several changes to the same ad.

    It indexes the ad's keys by lower case once, so each access is a dict lookup; the
    ad keeps the spelling it was given (a set replaces a differently-cased key).
    """

    def __init__(self, ad: dict[str, Any]) -> None:
        self.ad = ad
        self._keys = _key_index(ad)

    def get(self, name: str, default: Any = None) -> Any:
        """The value of ``name`` in any case, or ``default``."""
        key = self._keys.get(name.lower())
        return default if key is None else self.ad[key]

    def set(self, name: str, value: Any) -> None:
        """Set ``name``, replacing a differently-cased spelling."""
        lower = name.lower()
        key = self._keys.get(lower)
        if key is not None and key != name:
            del self.ad[key]
        self.ad[name] = value
        self._keys[lower] = name

    def pop(self, name: str) -> Any:
        """Remove ``name`` (any case) and return its value (``None`` if absent)."""
        key = self._keys.pop(name.lower(), None)
        return None if key is None else self.ad.pop(key)


def new_ad(cluster: int, proc: int, owner: str, status: int, qdate: int) -> dict[str, Any]:
    """The hot attributes of a new job, in the order they lead every stored ad."""
    return {
        CLUSTER_ID: cluster,
        PROC_ID: proc,
        OWNER: owner,
        JOB_STATUS: status,
        QDATE: qdate,
        ENTERED_CURRENT_STATUS: qdate,
    }


@dataclass(frozen=True)
class _Shape:
    """What the attribute names of a job ad say, once checked: which name the hot ones."""

    hot_keys: tuple[str, ...]
    status_key: str | None


_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 63) - 1
_MAX_SHAPES = 1024


class AdValidator:
    """Checks JSON-form ads and copies their attributes into the stored ad.

    One validator serves one batch and remembers what it already accepted: the jobs of a
    cluster nearly always share their attribute names (checked once per distinct name
    list) and expressions such as ``Requirements`` (parsed once per distinct text).
    """

    def __init__(self) -> None:
        self._good_names: set[str] = set()
        self._good_exprs: set[str] = set()
        self._shapes: dict[tuple[str, ...], _Shape] = {}

    def fill(self, job: object, stored: dict[str, Any], index: int | None = None) -> int | None:
        """Validate ``job`` and copy its attributes, except the hot ones, into ``stored``.

        ``stored`` holds the hot attributes (see :func:`new_ad`); they keep their values
        whatever the job says. Returns the JobStatus the job gives (``None`` if it gives
        none). Raises :class:`InvalidJobError` naming the attribute at fault.
        """
        if not isinstance(job, Mapping):
            raise InvalidJobError(f"a job ad must be an object, not {type(job).__name__}", index=index)
        keys = tuple(job)
        shape = self._shapes.get(keys)
        if shape is None:
            shape = self._learn(keys, index)
        good_exprs = self._good_exprs
        for name, value in job.items():
            kind = type(value)
            if kind is str:
                if value.startswith(EXPR_PREFIX) and value not in good_exprs:
                    self._check_expr(value, name, index)
            elif kind is bool or value is None or (kind is int and _INT_MIN <= value <= _INT_MAX):
                continue
            else:
                self.check_value(value, name, index)
        status: int | None = None
        if shape.status_key is not None:
            status = job[shape.status_key]
            if type(status) is not int:
                raise InvalidJobError("JobStatus must be an integer", index=index)
        if shape.hot_keys:
            hot = dict(stored)
            stored.update(job)
            for key in shape.hot_keys:
                if key not in hot:
                    del stored[key]
            stored.update(hot)
        else:
            stored.update(job)
        return status

    def _learn(self, keys: tuple[str, ...], index: int | None) -> _Shape:
        """Check a list of attribute names and remember what it says."""
        seen: set[str] = set()
        hot: list[str] = []
        status_key: str | None = None
        for name in keys:
            if name not in self._good_names:
                if not is_attr_name(name):
                    raise InvalidJobError(f"{name!r} is not a valid attribute name", index=index)
                self._good_names.add(name)
            lower = name.lower()
            if lower in seen:
                raise InvalidJobError(f"attribute {name} is given twice", index=index)
            seen.add(lower)
            if lower in HOT_ATTRS_LOWER:
                hot.append(name)
                if lower == "jobstatus":
                    status_key = name
        shape = _Shape(tuple(hot), status_key)
        if len(self._shapes) < _MAX_SHAPES:
            self._shapes[keys] = shape
        return shape

    def check_value(self, value: Any, name: str, index: int | None = None) -> None:
        """Raise :class:`InvalidJobError` unless ``value`` is a JSON-form ClassAd value."""
        kind = type(value)
        if kind is str:
            if value.startswith(EXPR_PREFIX) and value not in self._good_exprs:
                self._check_expr(value, name, index)
            return
        if kind is int:
            if not _INT_MIN <= value <= _INT_MAX:
                raise InvalidJobError(f"attribute {name}: {value} does not fit in 64 bits", index=index)
            return
        if kind is bool or value is None:
            return
        if kind is float:
            if not math.isfinite(value):
                raise InvalidJobError(f"attribute {name}: {value} is not a finite number", index=index)
            return
        if kind is list or kind is tuple:
            for item in value:
                self.check_value(item, name, index)
            return
        if kind is dict:
            for key, item in value.items():
                if key not in self._good_names and not is_attr_name(key):
                    raise InvalidJobError(
                        f"attribute {name}: {key!r} is not a valid attribute name", index=index
                    )
                self.check_value(item, name, index)
            return
        raise InvalidJobError(
            f"attribute {name}: a {kind.__name__} is not a JSON-form ClassAd value", index=index
        )

    def _check_expr(self, value: str, name: str, index: int | None) -> None:
        if not value.endswith(EXPR_SUFFIX) or len(value) < len(EXPR_PREFIX) + len(EXPR_SUFFIX):
            raise InvalidJobError(f"attribute {name}: malformed expression {value!r}", index=index)
        text = value[len(EXPR_PREFIX) : -len(EXPR_SUFFIX)]
        try:
            classad2.ExprTree(text)
        except Exception as exc:  # classad2 raises its own ClassAdException
            raise InvalidJobError(
                f"attribute {name}: {text!r} is not a valid ClassAd expression", index=index
            ) from exc
        self._good_exprs.add(value)
