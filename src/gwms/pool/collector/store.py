"""The collector's in-memory ad store: soft state, like HTCondor's collector.

Ads are JSON-form ClassAds (plain ``dict``\\ s, see ``docs/contracts.md``) keyed by
``(MyType, Name)``, both compared case-insensitively. Every stored ad carries two
attributes the store sets itself and never takes from the sender:

- ``AuthenticatedIdentity``: the identity that sent the ad (verified by the caller,
  e.g. from a bearer token); a value in the ad as sent is dropped.
- ``LastHeardFrom``: when the ad was last stored, whole seconds since the epoch.

An ad lives ``ClassAdLifetime`` seconds (default :data:`DEFAULT_LIFETIME`, 900 s) after
it was last heard from; a sender keeps its ads alive by advertising them again. Nothing
is written to disk: a restarted collector starts empty and refills as services
re-advertise, which is how HTCondor's collector behaves too.

Ownership: the identity that stored an ad owns it. An update or invalidation of an ad
owned by another identity is refused unless the caller acts as an administrator (who
then becomes the owner of what it stores).

The store is pure Python with no I/O and an injectable clock; it is safe to call from
several threads (one lock guards each operation). Constraints are given as predicates
(``Callable[[dict], bool]``), e.g. from :func:`gwms.classads.compile_constraint`.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gwms.pool.collector.attributes import (
    ATTR_AUTHENTICATED_IDENTITY,
    ATTR_CLASSAD_LIFETIME,
    ATTR_LAST_HEARD_FROM,
    ATTR_MY_TYPE,
    ATTR_NAME,
)
from gwms.pool.collector.index import EqualityIndex, EqualityTerm, equality_terms

__all__ = [
    "DEFAULT_LIFETIME",
    "AdStore",
    "AdvertiseReport",
    "InvalidateReport",
    "Predicate",
    "Refusal",
    "ad_type",
]

#: Seconds an ad lives after it was last heard from when it sets no ``ClassAdLifetime``.
DEFAULT_LIFETIME: float = 900.0

#: A compiled constraint: true for the ads it selects.
Predicate = Callable[[Mapping[str, Any]], bool]

_MYTYPE = ATTR_MY_TYPE.lower()
_NAME = ATTR_NAME.lower()
_LIFETIME = ATTR_CLASSAD_LIFETIME.lower()
_IDENTITY = ATTR_AUTHENTICATED_IDENTITY.lower()
_HEARD = ATTR_LAST_HEARD_FROM.lower()
# Attributes the store reads or stamps; any other attribute is stored as sent.
_SPECIAL = frozenset({_MYTYPE, _NAME, _LIFETIME, _IDENTITY, _HEARD})
# Attributes the store stamps; a sender's value is dropped.
_STAMPED = frozenset({_IDENTITY, _HEARD})
# Equality indexes (see gwms.pool.collector.index) are made for types with at least
# this many ads, at most this many attributes per type.
_INDEX_MIN_ADS = 1000
_MAX_INDEXES = 8
# An index whose biggest value holds more than this share of the ads is not kept.
_UNHELPFUL_SHARE = 0.5
# Calls with fewer ads than this store interned names and values (see advertise).
_SHARE_BELOW = 64
_SHARE_MAX_LENGTH = 64
_CANONICAL = {
    _MYTYPE: ATTR_MY_TYPE,
    _NAME: ATTR_NAME,
    _LIFETIME: ATTR_CLASSAD_LIFETIME,
    _IDENTITY: ATTR_AUTHENTICATED_IDENTITY,
    _HEARD: ATTR_LAST_HEARD_FROM,
}

_encode = json.JSONEncoder(
    ensure_ascii=False, check_circular=False, allow_nan=False, separators=(",", ":")
).encode


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why one ad of an :meth:`AdStore.advertise` call was not stored.

    ``index`` is the ad's position in the call; ``my_type`` and ``name`` are what the ad
    held (``None`` when missing or not a string).
    """

    index: int
    my_type: str | None
    name: str | None
    reason: str


@dataclass(slots=True)
class AdvertiseReport:
    """The per-ad outcome of :meth:`AdStore.advertise`.

    Every ad of the call was either stored (counted in ``accepted``) or refused (listed,
    with its index, in ``refused``).
    """

    accepted: int = 0
    refused: list[Refusal] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """This report as a JSON-ready dict."""
        return {
            "accepted": self.accepted,
            "refused": [
                {"index": r.index, "my_type": r.my_type, "name": r.name, "reason": r.reason}
                for r in self.refused
            ],
        }


@dataclass(frozen=True, slots=True)
class InvalidateReport:
    """The outcome of :meth:`AdStore.invalidate`.

    ``removed`` ads matched and were removed; ``refused`` ads matched but belong to
    another identity and were kept.
    """

    removed: int
    refused: int

    def to_json(self) -> dict[str, int]:
        """This report as a JSON-ready dict."""
        return {"removed": self.removed, "refused": self.refused}


class _Record:
    """One stored ad with its bookkeeping.

    ``seq`` is unique per write (it tells a current deadline-heap entry from a stale
    one); ``order`` is fixed when the key is first stored (the order of query results).
    """

    __slots__ = ("ad", "owner", "deadline", "seq", "order", "encoded")

    def __init__(
        self, ad: dict[str, Any], owner: str, deadline: float, seq: int, order: int
    ) -> None:
        self.ad = ad
        self.owner = owner
        self.deadline = deadline
        self.seq = seq
        self.order = order
        self.encoded: bytes | None = None  # the ad as UTF-8 JSON, made on first need


class _TypeTable:
    """The ads of one MyType, by lower-cased Name, with their equality indexes."""

    __slots__ = ("display", "records", "indexes", "unhelpful")

    def __init__(self, display: str) -> None:
        self.display = display  # the MyType spelling first seen
        self.records: dict[str, _Record] = {}
        self.indexes: dict[str, EqualityIndex] = {}
        self.unhelpful: set[str] = set()  # attributes whose index narrowed too little

    def remove(self, name_key: str) -> None:
        """Drop the ad ``name_key`` from the table and its indexes."""
        del self.records[name_key]
        for index in self.indexes.values():
            index.discard(name_key)


_DUPLICATE = object()  # marks an ad with two attributes that differ only in case


def _special_values(ad: Mapping[str, Any]) -> tuple[Any, Any, Any, Any]:
    """``(MyType, Name, ClassAdLifetime, has a stamped attribute)`` of an ad as sent,
    looking attribute names up case-insensitively; the last is ``_DUPLICATE`` if two
    attribute names differ only in case."""
    lowered = set(map(str.lower, ad))
    if len(lowered) != len(ad):
        return None, None, None, _DUPLICATE
    found = _SPECIAL.intersection(lowered)
    if _STAMPED.isdisjoint(found) and all(_CANONICAL[low] in ad for low in found):
        # The common case: attributes spelled as usual, nothing to drop.
        return ad.get(ATTR_MY_TYPE), ad.get(ATTR_NAME), ad.get(ATTR_CLASSAD_LIFETIME), False
    my_type = name = lifetime = None
    stamped = False
    for attr, value in ad.items():
        low = attr.lower()
        if low == _MYTYPE:
            my_type = value
        elif low == _NAME:
            name = value
        elif low == _LIFETIME:
            lifetime = value
        elif low in _STAMPED:
            stamped = True
    return my_type, name, lifetime, stamped


def _shared_copy(ad: Mapping[str, Any], stamped: bool) -> dict[str, Any]:
    """A copy of ``ad`` whose names and short string values are interned strings
    (without the stamped attributes if ``stamped``)."""
    intern = sys.intern
    out: dict[str, Any] = {}
    for attr, value in ad.items():
        if stamped and attr.lower() in _STAMPED:
            continue
        if type(value) is str and len(value) <= _SHARE_MAX_LENGTH:
            value = intern(value)
        out[intern(attr)] = value
    return out


def _duplicate_reason(ad: Mapping[str, Any]) -> str:
    seen: dict[str, str] = {}
    for attr in ad:
        low = attr.lower()
        if low in seen:
            return (
                f"attributes {seen[low]!r} and {attr!r} differ only in case "
                "(ClassAd attribute names are case-insensitive)"
            )
        seen[low] = attr
    return "duplicate attribute names"


def _order_of(rec: _Record) -> int:
    return rec.order


def ad_type(ad: Mapping[str, Any]) -> str | None:
    """The ``MyType`` of an ad as sent (attribute name matched case-insensitively), or
    ``None`` if it has no string MyType."""
    value = ad.get(ATTR_MY_TYPE)
    if value is None:
        for attr, candidate in ad.items():
            if attr.lower() == _MYTYPE:
                value = candidate
                break
    return value if isinstance(value, str) else None


def _lifetime_of(value: Any) -> float | str:
    """The lifetime an ad asks for, or the reason it is not a usable one."""
    if value is None:
        return DEFAULT_LIFETIME
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{ATTR_CLASSAD_LIFETIME} must be a number of seconds, not {value!r}"
    if not math.isfinite(value) or value <= 0:
        return f"{ATTR_CLASSAD_LIFETIME} must be a positive finite number, not {value!r}"
    return float(value)


def _projector(projection: Sequence[str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A function keeping only the projected attributes of an ad (case-insensitively).

    Attributes keep the ad's own spelling; ones the ad lacks are left out.
    """
    wanted = list(dict.fromkeys(projection))
    wanted_lower = {p.lower() for p in wanted}

    def project(ad: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        missing = False
        for attr in wanted:
            if attr in ad:
                out[attr] = ad[attr]
            else:
                missing = True
        if missing:  # some asked-for names may differ from the ad's in case only
            out = {k: v for k, v in ad.items() if k.lower() in wanted_lower}
        return out

    return project


class AdStore:
    """Soft-state ads keyed by ``(MyType, Name)`` (case-insensitive), with expiry.

    ``clock`` returns the current time in seconds since the epoch; it is used when a
    method is not given ``now`` explicitly. Queries first drop expired ads, so an ad is
    returned exactly until ``LastHeardFrom + ClassAdLifetime`` has passed.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        """Create an empty store reading the time from ``clock``."""
        self._clock = clock
        self._types: dict[str, _TypeTable] = {}
        self._heap: list[tuple[float, int, str, str]] = []
        self._seq = itertools.count()
        self._count = 0
        self._expired_total = 0
        self._lock = threading.RLock()

    # -- writing ----------------------------------------------------------------------

    def advertise(
        self,
        ads: Mapping[str, Any] | Iterable[Mapping[str, Any]],
        identity: str,
        now: float | None = None,
        *,
        admin: bool = False,
    ) -> AdvertiseReport:
        """Store one ad or many, stamped with ``identity`` and ``now``.

        Each ad needs a non-empty string ``MyType`` and ``Name``; an ad replaces the stored
        one with the same key. An ad whose key is owned by another identity is refused
        unless ``admin``. Refusals do not stop the other ads of the call. The ads given
        are not modified (the store keeps copies).
        """
        if isinstance(ads, Mapping):
            ads = (ads,)
        elif not isinstance(ads, Sequence):
            ads = list(ads)
        # Ads decoded from one JSON document share their attribute-name strings, so big
        # calls cost little memory per ad; ads sent one per call do not, so those are
        # stored with shared (interned) names and short string values.
        share = len(ads) < _SHARE_BELOW
        if now is None:
            now = self._clock()
        heard = int(now)
        report = AdvertiseReport()
        refused = report.refused
        with self._lock:
            types = self._types
            heap = self._heap
            seq = self._seq
            for index, ad in enumerate(ads):
                if not isinstance(ad, Mapping):
                    refused.append(Refusal(index, None, None, "an ad must be a JSON object"))
                    continue
                my_type, name, lifetime_value, stamped = _special_values(ad)
                if stamped is _DUPLICATE:
                    refused.append(Refusal(index, ad_type(ad), None, _duplicate_reason(ad)))
                    continue
                if not isinstance(my_type, str) or not my_type:
                    refused.append(
                        Refusal(index, None, name if isinstance(name, str) else None,
                                f"the ad has no {ATTR_MY_TYPE} (a non-empty string)")
                    )
                    continue
                if not isinstance(name, str) or not name:
                    refused.append(
                        Refusal(index, my_type, None,
                                f"the ad has no {ATTR_NAME} (a non-empty string)")
                    )
                    continue
                lifetime = _lifetime_of(lifetime_value)
                if isinstance(lifetime, str):
                    refused.append(Refusal(index, my_type, name, lifetime))
                    continue
                type_key = my_type.lower()
                name_key = name.lower()
                table = types.get(type_key)
                if table is None:
                    table = types[type_key] = _TypeTable(my_type)
                old = table.records.get(name_key)
                if old is not None and old.deadline < now:
                    # Expired, not yet swept: gone, and the new ad is stored afresh.
                    table.remove(name_key)
                    self._count -= 1
                    self._expired_total += 1
                    old = None
                if old is not None and old.owner != identity and not admin:
                    refused.append(
                        Refusal(index, my_type, name,
                                f"{my_type} ad {name!r} belongs to {old.owner!r}")
                    )
                    continue
                if share:
                    stored = _shared_copy(ad, stamped)
                elif stamped:
                    stored = {k: v for k, v in ad.items() if k.lower() not in _STAMPED}
                else:
                    stored = dict(ad)
                stored[ATTR_AUTHENTICATED_IDENTITY] = identity
                stored[ATTR_LAST_HEARD_FROM] = heard
                deadline = now + lifetime
                number = next(seq)
                table.records[name_key] = _Record(
                    stored, identity, deadline, number, number if old is None else old.order
                )
                for eq_index in table.indexes.values():
                    eq_index.put(name_key, stored)
                heapq.heappush(heap, (deadline, number, type_key, name_key))
                if old is None:
                    self._count += 1
                report.accepted += 1
            self._compact_heap()
        return report

    def invalidate(
        self,
        my_type: str,
        name: str | None = None,
        constraint: Predicate | None = None,
        *,
        identity: str,
        admin: bool = False,
        now: float | None = None,
    ) -> InvalidateReport:
        """Remove the live ads of ``my_type`` selected by ``name`` and ``constraint``.

        With neither, every ad of the type is selected. Only ads owned by ``identity``
        are removed unless ``admin``; selected ads of other owners are counted as refused.
        """
        self.expire(now)
        removed = refused = 0
        with self._lock:
            table = self._types.get(my_type.lower())
            if table is None:
                return InvalidateReport(0, 0)
            records = table.records
            if name is not None:
                rec = records.get(name.lower())
                candidates = [] if rec is None else [(name.lower(), rec)]
            else:
                candidates = list(records.items())
            for name_key, rec in candidates:
                if constraint is not None and not constraint(rec.ad):
                    continue
                if rec.owner != identity and not admin:
                    refused += 1
                    continue
                table.remove(name_key)
                removed += 1
            self._count -= removed
            self._drop_if_empty(my_type.lower())
        return InvalidateReport(removed, refused)

    def expire(self, now: float | None = None) -> int:
        """Remove every ad whose lifetime has passed at ``now``; return how many.

        Costs O(k log n) for k expired ads (a heap of deadlines), so it is cheap to call
        often.
        """
        if now is None:
            now = self._clock()
        removed = 0
        with self._lock:
            heap = self._heap
            types = self._types
            while heap and heap[0][0] < now:
                _deadline, number, type_key, name_key = heapq.heappop(heap)
                table = types.get(type_key)
                if table is None:
                    continue
                rec = table.records.get(name_key)
                if rec is None or rec.seq != number:
                    continue  # removed or refreshed since this entry was pushed
                table.remove(name_key)
                removed += 1
                self._drop_if_empty(type_key)
            self._count -= removed
            self._expired_total += removed
        return removed

    # -- reading ----------------------------------------------------------------------

    def query(
        self,
        my_type: str | None = None,
        constraint: Predicate | None = None,
        projection: Sequence[str] | None = None,
        limit: int | None = None,
        *,
        now: float | None = None,
    ) -> list[dict[str, Any]]:
        """The live ads of ``my_type`` (all types when ``None``) that ``constraint`` selects.

        ``projection`` keeps only the named attributes (matched case-insensitively; each
        ad keeps its own spelling). ``limit`` caps the number of ads. Ads come in the
        order they were first stored. Returned dicts are copies.
        """
        if projection:
            project = _projector(projection)
            return [project(rec.ad) for rec in self._select(my_type, constraint, limit, now)]
        return [dict(rec.ad) for rec in self._select(my_type, constraint, limit, now)]

    def query_encoded(
        self,
        my_type: str | None = None,
        constraint: Predicate | None = None,
        projection: Sequence[str] | None = None,
        limit: int | None = None,
        *,
        now: float | None = None,
    ) -> tuple[int, bytes]:
        """Like :meth:`query`, but as ``(count, UTF-8 JSON array)``.

        Whole ads are encoded once per update and the bytes are reused by later queries,
        which makes repeated large queries (the negotiator's) cheap.
        """
        if projection:
            project = _projector(projection)
            parts = [
                _encode(project(rec.ad)).encode()
                for rec in self._select(my_type, constraint, limit, now)
            ]
        else:
            parts = []
            for rec in self._select(my_type, constraint, limit, now):
                data = rec.encoded
                if data is None:
                    data = rec.encoded = _encode(rec.ad).encode()
                parts.append(data)
        return len(parts), b"[" + b",".join(parts) + b"]"

    def get(self, my_type: str, name: str, *, now: float | None = None) -> dict[str, Any] | None:
        """A copy of the live ad ``(my_type, name)``, or ``None``."""
        self.expire(now)
        with self._lock:
            table = self._types.get(my_type.lower())
            rec = None if table is None else table.records.get(name.lower())
            return None if rec is None else dict(rec.ad)

    def counts(self) -> dict[str, int]:
        """The number of stored ads per MyType (as first spelled), expired ones included
        until the next expiry pass."""
        with self._lock:
            return {t.display: len(t.records) for t in self._types.values()}

    @property
    def expired_total(self) -> int:
        """How many ads have expired since the store was made."""
        return self._expired_total

    def __len__(self) -> int:
        """The number of stored ads (until the next expiry pass, expired ones too)."""
        return self._count

    # -- internals --------------------------------------------------------------------

    def _select(
        self,
        my_type: str | None,
        constraint: Predicate | None,
        limit: int | None,
        now: float | None,
    ) -> Iterator[_Record]:
        """The live records selected, as a list made under the lock."""
        self.expire(now)
        if limit is not None and limit <= 0:
            return iter(())
        with self._lock:
            if my_type is None:
                tables = list(self._types.values())
            else:
                table = self._types.get(my_type.lower())
                tables = [] if table is None else [table]
            terms = equality_terms(constraint) if constraint is not None else []
            out: list[_Record] = []
            for table in tables:
                records = table.records.values()
                if terms:
                    narrowed = self._candidates(table, terms)
                    if narrowed is not None:
                        records = narrowed  # type: ignore[assignment]
                if constraint is None:
                    if limit is None:
                        out.extend(records)
                    else:
                        out.extend(itertools.islice(records, limit - len(out)))
                else:
                    if limit is None:
                        out.extend([rec for rec in records if constraint(rec.ad)])
                    else:
                        for rec in records:
                            if constraint(rec.ad):
                                out.append(rec)
                                if len(out) >= limit:
                                    break
                if limit is not None and len(out) >= limit:
                    break
            return iter(out)

    def _candidates(
        self, table: _TypeTable, terms: list[EqualityTerm]
    ) -> list[_Record] | None:
        """The records of ``table`` that may satisfy a constraint with equality ``terms``,
        in result order, from the most selective index; None to scan them all.

        At most one new index is built per query, and one that narrows queries little
        (its biggest value holds over half the ads) is dropped again and not rebuilt.
        """
        records = table.records
        if len(records) < _INDEX_MIN_ADS:
            return None
        best: tuple[int, EqualityIndex, Hashable] | None = None
        built = False
        for attr, spelling, key in terms:
            eq_index = table.indexes.get(attr)
            if eq_index is None:
                if built or attr in table.unhelpful or len(table.indexes) >= _MAX_INDEXES:
                    continue
                built = True
                eq_index = EqualityIndex(attr, spelling)
                for name_key, rec in records.items():
                    eq_index.put(name_key, rec.ad)
                if eq_index.largest_share(len(records)) > _UNHELPFUL_SHARE:
                    if len(table.unhelpful) < _MAX_INDEXES:
                        table.unhelpful.add(attr)
                else:
                    table.indexes[attr] = eq_index
            count = eq_index.count(key)
            if best is None or count < best[0]:
                best = (count, eq_index, key)
        if best is None or best[0] > len(records) * _UNHELPFUL_SHARE:
            return None
        found = [records[name_key] for name_key in best[1].candidates(best[2])]
        found.sort(key=_order_of)
        return found

    def _drop_if_empty(self, type_key: str) -> None:
        table = self._types.get(type_key)
        if table is not None and not table.records:
            del self._types[type_key]

    def _compact_heap(self) -> None:
        """Rebuild the deadline heap when stale entries (refreshed ads) dominate it."""
        if len(self._heap) > 2 * self._count + 1024:
            self._heap = [
                (rec.deadline, rec.seq, type_key, name_key)
                for type_key, table in self._types.items()
                for name_key, rec in table.records.items()
            ]
            heapq.heapify(self._heap)
