"""Authorization scopes carried by pool tokens (HTCondor's authorization levels).

A token grants a set of scopes; an endpoint requires some. ``ADMINISTRATOR`` implies
every scope, including ones not listed here. Scope names are case-sensitive strings
without whitespace; the token's ``scope`` claim holds them space separated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gwms.errors import GwmsError

READ = "READ"
WRITE = "WRITE"
ADMINISTRATOR = "ADMINISTRATOR"
NEGOTIATOR = "NEGOTIATOR"
DAEMON = "DAEMON"
ADVERTISE_STARTD = "ADVERTISE_STARTD"
ADVERTISE_SCHEDD = "ADVERTISE_SCHEDD"
ADVERTISE_MASTER = "ADVERTISE_MASTER"
ADVERTISE_FACTORY = "ADVERTISE_FACTORY"
ADVERTISE_FRONTEND = "ADVERTISE_FRONTEND"
#: Read original (not anonymized) glidein logs in the log monitor; every access is audited.
LOGS_ORIGINAL = "LOGS_ORIGINAL"

#: Every scope gwms itself defines.
ALL_SCOPES: frozenset[str] = frozenset(
    {
        READ,
        WRITE,
        ADMINISTRATOR,
        NEGOTIATOR,
        DAEMON,
        ADVERTISE_STARTD,
        ADVERTISE_SCHEDD,
        ADVERTISE_MASTER,
        ADVERTISE_FACTORY,
        ADVERTISE_FRONTEND,
        LOGS_ORIGINAL,
    }
)

#: The scopes of a glidein's token (HTCondor IDTOKEN practice for pilots).
GLIDEIN_SCOPES: frozenset[str] = frozenset({READ, ADVERTISE_STARTD, ADVERTISE_MASTER})

_SCOPE_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")


class InvalidScope(GwmsError):
    """A scope name is empty, too long, or holds characters a scope cannot hold."""


def validate_scope(name: str) -> str:
    """Return ``name`` if it is a well-formed scope name, else raise :class:`InvalidScope`."""
    if not isinstance(name, str) or not _SCOPE_NAME.fullmatch(name):
        raise InvalidScope(
            f"invalid scope {name!r}",
            hint="1-64 letters, digits or '_.:/-', no spaces",
        )
    return name


def missing_scopes(granted: Iterable[str], required: Iterable[str]) -> frozenset[str]:
    """The required scopes that ``granted`` does not cover (none if it holds ADMINISTRATOR)."""
    have = frozenset(granted)
    if ADMINISTRATOR in have:
        return frozenset()
    return frozenset(required) - have


def has_scopes(granted: Iterable[str], required: Iterable[str]) -> bool:
    """True if ``granted`` covers every scope in ``required``; ADMINISTRATOR covers all."""
    return not missing_scopes(granted, required)


def parse_scopes(text: str) -> frozenset[str]:
    """Parse a space-separated ``scope`` claim into a set of validated scope names."""
    return frozenset(validate_scope(part) for part in text.split())


def format_scopes(scopes: Iterable[str]) -> str:
    """Format scopes as a ``scope`` claim: validated, sorted, space separated."""
    return " ".join(sorted({validate_scope(s) for s in scopes}))
