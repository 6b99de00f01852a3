"""Which token scopes may advertise, invalidate and read which ads (pure functions).

The collector trusts an ad's type only as far as the sender's scopes reach, the way
HTCondor's collector checks ``ADVERTISE_STARTD``, ``ADVERTISE_SCHEDD`` and so on:

=====================================================  ======================
MyType (case-insensitive)                              scope needed
=====================================================  ======================
Machine, Slot                                          ``ADVERTISE_STARTD``
Scheduler, Submitter                                   ``ADVERTISE_SCHEDD``
Negotiator, Accounting                                 ``NEGOTIATOR``
DaemonMaster                                           ``ADVERTISE_MASTER``
glidefactory, glidefactoryglobal, glidefactoryclient   ``ADVERTISE_FACTORY``
glideclient, glideclientglobal, glideresource          ``ADVERTISE_FRONTEND``
anything else                                          ``DAEMON``
=====================================================  ======================

``ADMINISTRATOR`` may do everything (and acts for other owners, see
:class:`gwms.pool.collector.store.AdStore`). Queries need ``READ``. Invalidating ads of a
type needs the scope that advertises it.
"""

from __future__ import annotations

from collections.abc import Iterable

from gwms.pool.collector import attributes as a
from gwms.security import scopes as s

__all__ = [
    "ADVERTISE_SCOPES",
    "advertise_scope",
    "is_administrator",
    "may_advertise",
    "may_invalidate",
    "may_query",
    "refused_types",
]

#: Lower-cased MyType -> the scope that may advertise it; other types need DAEMON.
ADVERTISE_SCOPES: dict[str, str] = {
    a.TYPE_MACHINE.lower(): s.ADVERTISE_STARTD,
    a.TYPE_SLOT.lower(): s.ADVERTISE_STARTD,
    a.TYPE_SCHEDULER.lower(): s.ADVERTISE_SCHEDD,
    a.TYPE_SUBMITTER.lower(): s.ADVERTISE_SCHEDD,
    a.TYPE_NEGOTIATOR.lower(): s.NEGOTIATOR,
    a.TYPE_ACCOUNTING.lower(): s.NEGOTIATOR,
    a.TYPE_DAEMON_MASTER.lower(): s.ADVERTISE_MASTER,
    a.TYPE_GLIDEFACTORY.lower(): s.ADVERTISE_FACTORY,
    a.TYPE_GLIDEFACTORY_GLOBAL.lower(): s.ADVERTISE_FACTORY,
    a.TYPE_GLIDEFACTORY_CLIENT.lower(): s.ADVERTISE_FACTORY,
    a.TYPE_GLIDECLIENT.lower(): s.ADVERTISE_FRONTEND,
    a.TYPE_GLIDECLIENT_GLOBAL.lower(): s.ADVERTISE_FRONTEND,
    a.TYPE_GLIDERESOURCE.lower(): s.ADVERTISE_FRONTEND,
}


def advertise_scope(my_type: str) -> str:
    """The scope that lets a sender advertise ads of ``my_type``."""
    return ADVERTISE_SCOPES.get(my_type.lower(), s.DAEMON)


def is_administrator(scopes: Iterable[str]) -> bool:
    """True if ``scopes`` hold ``ADMINISTRATOR``."""
    return s.ADMINISTRATOR in frozenset(scopes)


def may_advertise(scopes: Iterable[str], my_type: str) -> bool:
    """True if a sender with ``scopes`` may advertise ads of ``my_type``."""
    granted = frozenset(scopes)
    return s.ADMINISTRATOR in granted or advertise_scope(my_type) in granted


def may_invalidate(scopes: Iterable[str], my_type: str) -> bool:
    """True if a sender with ``scopes`` may invalidate (its own) ads of ``my_type``."""
    return may_advertise(scopes, my_type)


def may_query(scopes: Iterable[str]) -> bool:
    """True if ``scopes`` allow reading ads (``READ``, or ``ADMINISTRATOR``)."""
    granted = frozenset(scopes)
    return s.READ in granted or s.ADMINISTRATOR in granted


def refused_types(scopes: Iterable[str], my_types: Iterable[str]) -> list[str]:
    """The distinct MyTypes among ``my_types`` that ``scopes`` may not advertise, in order
    of first appearance (compared case-insensitively)."""
    granted = frozenset(scopes)
    if s.ADMINISTRATOR in granted:
        return []
    seen: set[str] = set()
    out: list[str] = []
    for my_type in my_types:
        low = my_type.lower()
        if low in seen:
            continue
        seen.add(low)
        if ADVERTISE_SCOPES.get(low, s.DAEMON) not in granted:
            out.append(my_type)
    return out
