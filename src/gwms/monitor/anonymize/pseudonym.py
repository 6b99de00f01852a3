"""Irreversible pseudonyms: keyed HMAC-SHA256, truncated, in the shape of the value.

A plain hash is not anonymization (anyone can hash every IPv4 address or every user
name of a site and compare), so pseudonyms are always keyed, with a key per audience
(:meth:`gwms.monitor.anonymize.keys.AnonKey.hmac_key`): whoever lacks the key cannot
link a pseudonym to a value, and destroying the key makes the mapping one-way for
everyone. Pseudonyms are deterministic per key, so the same user or host gets the same
pseudonym across files and jobs, and search and correlation still work.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from gwms.monitor.anonymize import entities as E
from gwms.monitor.sections import bytes_of

__all__ = ["Pseudonymizer"]

_LETTERS = {
    E.HOST: "h",
    E.USER: "u",
    E.GROUP: "g",
    E.UID: "n",
    E.EMAIL: "e",
    E.DN: "d",
    E.FQAN: "f",
    E.SECRET: "s",
    E.JOBID: "j",
}


class Pseudonymizer:
    """Keyed, one-way pseudonyms.

    Args:
        key: the HMAC key (32 bytes).
        length: base32 characters kept from the HMAC (16 = 80 bits).
    """

    def __init__(self, key: bytes, length: int = 16) -> None:
        if not 8 <= length <= 52:
            raise ValueError("pseudonym length must be between 8 and 52 characters")
        self._key = key
        self.length = length

    def digest(self, kind: str, value: str) -> bytes:
        """HMAC-SHA256 of the kind and the value (so equal values of two kinds differ)."""
        return hmac.new(
            self._key, kind.encode() + b"\x00" + bytes_of(value), hashlib.sha256
        ).digest()

    def code(self, kind: str, value: str) -> str:
        """``length`` lowercase base32 characters of the HMAC."""
        return base64.b32encode(self.digest(kind, value)).decode("ascii").lower()[: self.length]

    def number(self, kind: str, value: str, digits: int = 6) -> str:
        """A ``digits``-digit decimal pseudonym (no leading zero), for numeric ids."""
        n = int.from_bytes(self.digest(kind, value)[:8], "big")
        low = 10 ** (digits - 1)
        return str(low + n % (9 * low))

    def pseudonym(self, kind: str, value: str) -> str:
        """The pseudonym of ``value``, shaped like the kind (``h-<code>.anon``, ``u-<code>`` ...)."""
        if kind == E.UID:
            return self.number(kind, value)
        code = self.code(kind, value)
        letter = _LETTERS[kind]
        if kind == E.HOST:
            return f"h-{code}.anon"
        if kind == E.EMAIL:
            return f"e-{code}@anon.invalid"
        if kind == E.DN:
            return f"{'/CN=' if value.startswith('/') else 'CN='}d-{code}"
        if kind == E.FQAN:
            return f"/f-{code}"
        return f"{letter}-{code}"
