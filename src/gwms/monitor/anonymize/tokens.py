"""Reversible tokens: deterministic AES-SIV (RFC 5297) with the key id inside, shaped to fit.

A token replaces one value and keeps the shape of where it sits, so log parsers still
work on anonymized logs:

=========  =====================================  =====================================
kind       token                                  e.g. replaces
=========  =====================================  =====================================
host       ``h-<kid>-<body>.anon``                ``wn0123.example.edu``, ``c705-23``
user       ``u-<kid>-<body>``                     ``alice``
group      ``g-<kid>-<body>``                     ``cmsplt``
uid        ``n-<kid>-<body>``                     ``12345`` (``uid=``, ``x509up_u``)
email      ``e-<kid>-<body>@anon.invalid``        ``alice@example.edu``
dn         ``/CN=d-<kid>-<body>``                 ``/DC=org/.../CN=Alice`` (``CN=d-...`` for the comma form)
fqan       ``/f-<kid>-<body>``                    ``/cms/Role=NULL/Capability=NULL``
secret     ``s-<kid>-<body>``                     token and password values, PEM blocks
jobid      ``j-<kid>-<body>``                     ``SLURM_JOB_ID`` values, ``GlobalJobId``
ip         ``i-<kid>-<body>``                     addresses Crypto-PAn cannot stand in for
=========  =====================================  =====================================

``<body>`` is the lowercase, unpadded base32 of AES-SIV(value) (16-byte synthetic IV,
then the ciphertext), with the kind's letter as associated data, so a token moved to
another kind does not open. A host token's body is cut into labels of at most 63
characters. The same value and key always give the same token (search and correlation
work); any change to a token makes it fail to open (it is then left as it is).

:data:`BLOB_PREFIX` marks encrypted copies of whole sections (see the engine).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from gwms.monitor.anonymize import entities as E
from gwms.monitor.anonymize.keys import KeyRing
from gwms.monitor.sections import bytes_of, text_of

__all__ = ["BLOB_PREFIX", "KIND_LETTERS", "LETTER_KINDS", "FoundToken", "TokenCodec"]

#: The letter that starts a token of each kind.
KIND_LETTERS = {
    E.HOST: "h",
    E.USER: "u",
    E.GROUP: "g",
    E.UID: "n",
    E.EMAIL: "e",
    E.DN: "d",
    E.FQAN: "f",
    E.SECRET: "s",
    E.JOBID: "j",
    "ip": "i",
    "blob": "x",
}
LETTER_KINDS = {v: k for k, v in KIND_LETTERS.items()}
#: The start of a gzip comment holding an encrypted copy of a whole section.
BLOB_PREFIX = b"gwms-anon-original:"
_MAX_LABEL = 63
_BODY = re.compile(r"[a-z2-7]{27,}")
_HOST_REST = re.compile(r"[a-z2-7]{27,}(?:\.[a-z2-7]+)+")
_EMAIL_REST = re.compile(r"[a-z2-7]{27,}@anon\.invalid")


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _unb32(text: str) -> bytes:
    text = text.upper()
    return base64.b32decode(text + "=" * (-len(text) % 8))


@dataclass(frozen=True)
class FoundToken:
    """A token found in a text: ``text[start:end]`` stands for ``value`` (a ``kind``)."""

    start: int
    end: int
    kind: str
    kid: str
    value: str


class TokenCodec:
    """Makes and opens tokens with the keys of a :class:`KeyRing` (new ones with the current key)."""

    def __init__(self, keys: KeyRing) -> None:
        self.keys = keys
        self._siv: dict[str, AESSIV] = {}
        self._kid_rx: dict[str, re.Pattern[str]] = {}

    def _cipher(self, kid: str) -> AESSIV | None:
        c = self._siv.get(kid)
        if c is None:
            key = self.keys.get(kid)
            if key is None:
                return None
            c = self._siv[kid] = AESSIV(key.siv_key)
        return c

    # -- making --------------------------------------------------------------------
    def seal_body(self, letter: str, data: bytes, kid: str | None = None) -> tuple[str, str]:
        """``(kid, body)`` for ``data`` under the current key (or ``kid``)."""
        kid = kid or self.keys.current.kid
        cipher = self._cipher(kid)
        assert cipher is not None
        return kid, _b32(cipher.encrypt(data, [letter.encode()]))

    def seal(self, kind: str, value: str) -> str:
        """The token for ``value`` of ``kind`` (a kind of :data:`KIND_LETTERS`), shaped to fit."""
        letter = KIND_LETTERS[kind]
        kid, body = self.seal_body(letter, bytes_of(value))
        if kind == E.HOST:
            first = _MAX_LABEL - len(kid) - 3
            labels = [body[:first]] + [
                body[i : i + _MAX_LABEL] for i in range(first, len(body), _MAX_LABEL)
            ]
            return f"h-{kid}-{'.'.join(lbl for lbl in labels if lbl)}.anon"
        if kind == E.EMAIL:
            return f"e-{kid}-{body}@anon.invalid"
        if kind == E.DN:
            return f"{'/CN=' if value.startswith('/') else 'CN='}d-{kid}-{body}"
        if kind == E.FQAN:
            return f"/f-{kid}-{body}"
        return f"{letter}-{kid}-{body}"

    def seal_blob(self, data: bytes) -> bytes:
        """An encrypted copy of ``data`` for a gzip comment: ``BLOB_PREFIX kid:base64``."""
        kid = self.keys.current.kid
        cipher = self._cipher(kid)
        assert cipher is not None
        sealed = cipher.encrypt(data, [b"x"])
        return BLOB_PREFIX + kid.encode() + b":" + base64.b64encode(sealed)

    # -- opening -------------------------------------------------------------------
    def open_body(self, letter: str, kid: str, body: str) -> bytes | None:
        """The plaintext of a token body, or None (unknown key, or not a token of ours)."""
        cipher = self._cipher(kid)
        if cipher is None:
            return None
        try:
            return cipher.decrypt(_unb32(body), [letter.encode()])
        except (InvalidTag, ValueError):
            return None

    def open_blob(self, comment: bytes) -> bytes | None:
        """The data sealed by :meth:`seal_blob`, or None."""
        if not comment.startswith(BLOB_PREFIX):
            return None
        kid, _, b64 = comment[len(BLOB_PREFIX) :].partition(b":")
        cipher = self._cipher(kid.decode("ascii", "replace"))
        if cipher is None:
            return None
        try:
            return cipher.decrypt(base64.b64decode(b64), [b"x"])
        except (InvalidTag, ValueError):
            return None

    def find(self, text: str) -> Iterator[FoundToken]:
        """Every token of a known key in ``text`` that opens, in no particular order.

        Tokens are found by their ``-<kid>-`` core (a fast literal search per key), then
        their shape is checked and the value decrypted; anything that does not open is
        ordinary text and is skipped.
        """
        for kid in self.keys.kids:
            core = f"-{kid}-"
            if core not in text:
                continue
            rx = self._kid_rx.get(kid)
            if rx is None:
                rx = self._kid_rx[kid] = re.compile(re.escape(core))
            for m in rx.finditer(text):
                found = self._at(text, m.start(), kid)
                if found is not None:
                    yield found

    def _at(self, text: str, dash: int, kid: str) -> FoundToken | None:
        if dash < 1:
            return None
        letter = text[dash - 1]
        kind = LETTER_KINDS.get(letter)
        if kind is None or kind == "blob":
            return None
        start = dash - 1
        body_start = dash + len(kid) + 2
        # What comes before or after a token does not matter: only a token of ours opens.
        if kind == E.HOST:
            m = _HOST_REST.match(text, body_start)
            if m is None:
                return None
            # the labels run to an 'anon' label; what follows may be more of the text
            labels = m.group().split(".")
            plain = None
            end = body_start
            for i in range(1, len(labels)):
                if labels[i] == "anon":
                    plain = self.open_body(letter, kid, "".join(labels[:i]))
                    if plain is not None:
                        end = body_start + len(".".join(labels[: i + 1]))
                        break
        elif kind == E.EMAIL:
            m = _EMAIL_REST.match(text, body_start)
            if m is None:
                return None
            end = m.end()
            plain = self.open_body(letter, kid, m.group()[: -len("@anon.invalid")])
        else:
            m = _BODY.match(text, body_start)
            if m is None:
                return None
            body = m.group()
            plain = None
            # the body may run into letters that follow the token: try shorter lengths
            # (rare, and each failed try is one AES-SIV check)
            for cut in range(len(body) - 26):
                length = len(body) - cut
                if (length * 5) % 8 >= 5:
                    continue  # not a whole number of bytes
                plain = self.open_body(letter, kid, body[:length])
                if plain is not None:
                    break
            if plain is None:
                return None
            end = body_start + length
        if plain is None:
            return None
        value = text_of(plain)
        if kind == E.DN:
            if text.endswith("/CN=", 0, start):
                start -= 4
            elif text.endswith("CN=", 0, start):
                start -= 3
            else:
                return None
        elif kind == E.FQAN:
            if not text.endswith("/", 0, start):
                return None
            start -= 1
        return FoundToken(start, end, kind, kid, value)
