"""Identities such as ``user@domain`` or ``service@host``.

The subject of a pool token is an identity; services stamp it on ads as
``AuthenticatedIdentity`` and may use its parts in file names, so the rules are strict:
a user part and a domain part, each of letters, digits and ``. _ + -``, no control
characters, no slashes and no ``..``. Comparison is exact (case-sensitive), as in
HTCondor's ``AuthenticatedIdentity``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gwms.errors import GwmsError

_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*")
_DOMAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
MAX_LENGTH = 255


class InvalidIdentity(GwmsError):
    """A string is not a valid ``user@domain`` identity."""


def _check_part(part: str, pattern: re.Pattern[str], what: str, text: str) -> None:
    if not part:
        raise InvalidIdentity(f"invalid identity {text!r}: empty {what}", hint="use user@domain")
    if ".." in part:
        raise InvalidIdentity(f"invalid identity {text!r}: '..' is not allowed")
    if not pattern.fullmatch(part):
        raise InvalidIdentity(
            f"invalid identity {text!r}: the {what} may hold only letters, digits and "
            + ("'._+-'" if what == "user" else "'._-'")
        )


@dataclass(frozen=True, order=True)
class Identity:
    """An authenticated identity ``user@domain`` (validated on construction)."""

    user: str
    domain: str

    def __post_init__(self) -> None:
        text = f"{self.user}@{self.domain}"
        if len(text) > MAX_LENGTH:
            raise InvalidIdentity(f"invalid identity: longer than {MAX_LENGTH} characters")
        _check_part(self.user, _USER, "user", text)
        _check_part(self.domain, _DOMAIN, "domain", text)

    @classmethod
    def parse(cls, text: str) -> Identity:
        """Parse ``user@domain``; raise :class:`InvalidIdentity` with the reason if invalid."""
        if not isinstance(text, str):
            raise InvalidIdentity(f"invalid identity {text!r}: not a string")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
            raise InvalidIdentity(f"invalid identity {text!r}: control characters")
        if "/" in text or "\\" in text:
            raise InvalidIdentity(f"invalid identity {text!r}: slashes are not allowed")
        if text.count("@") != 1:
            raise InvalidIdentity(
                f"invalid identity {text!r}: expected exactly one '@'", hint="use user@domain"
            )
        user, domain = text.split("@")
        return cls(user, domain)

    @staticmethod
    def is_valid(text: str) -> bool:
        """True if ``text`` parses as an identity."""
        try:
            Identity.parse(text)
        except InvalidIdentity:
            return False
        return True

    def __str__(self) -> str:
        return f"{self.user}@{self.domain}"
