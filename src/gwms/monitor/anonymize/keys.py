"""Anonymization keys: files with 0600 permissions, key ids, rotation.

A key directory holds one file per key, ``<kid>.key`` (32 random bytes, base64), and
``keyring.json`` naming the current key. Every file is written through
:mod:`gwms.security.keyfiles` (atomic, 0600; reading refuses files others can read).
From each key's secret, HKDF-SHA256 derives the keys of each use:

- ``siv``: 64 bytes for AES-SIV tokens (reversible strings),
- ``cryptopan``: 32 bytes for Crypto-PAn (reversible addresses),
- ``hmac/<audience>`` and ``cryptopan/<audience>``: keys of the irreversible mode, one
  per audience, so destroying one audience's key dir makes its pseudonyms one-way
  without touching the others.

Rotation (:func:`rotate_keys`) adds a key and makes it current; old keys stay, so tokens
naming them (the key id is inside every token) still de-anonymize. Key ids are short
lowercase letters and digits because they appear inside host-name-shaped tokens.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gwms.errors import GwmsError
from gwms.security.keyfiles import (
    KeyFileError,
    ensure_private_dir,
    read_private_file,
    validate_key_id,
    write_private_file,
)

__all__ = [
    "ANON_KEY_ID_PATTERN",
    "AnonKey",
    "AnonKeyError",
    "KeyRing",
    "init_keys",
    "load_keys",
    "new_key_id",
    "rotate_keys",
]

#: Key ids of anonymization keys: 1-16 lowercase letters and digits (they sit in host names).
ANON_KEY_ID_PATTERN = re.compile(r"[a-z0-9]{1,16}")
_RING_FILE = "keyring.json"
_SECRET_BYTES = 32


class AnonKeyError(GwmsError):
    """A key directory is missing, incomplete, or does not hold the key a token names."""


def new_key_id() -> str:
    """A fresh key id: ``k`` and seven random lowercase letters and digits."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "k" + "".join(secrets.choice(alphabet) for _ in range(7))


def _check_kid(kid: str) -> str:
    validate_key_id(kid)
    if not ANON_KEY_ID_PATTERN.fullmatch(kid):
        raise AnonKeyError(
            f"invalid anonymization key id {kid!r}", hint="use 1-16 lowercase letters and digits"
        )
    return kid


@dataclass(frozen=True)
class AnonKey:
    """One anonymization key: its id, 32-byte secret and creation time (Unix seconds)."""

    kid: str
    secret: bytes = field(repr=False)
    created: float = 0.0

    def derive(self, purpose: str, length: int) -> bytes:
        """``length`` bytes for ``purpose`` (HKDF-SHA256 with the key id as salt)."""
        return HKDF(
            algorithm=hashes.SHA256(),
            length=length,
            salt=self.kid.encode(),
            info=b"gwms-anon " + purpose.encode(),
        ).derive(self.secret)

    @cached_property
    def siv_key(self) -> bytes:
        """The AES-SIV key (64 bytes: AES-256-SIV) of reversible string tokens."""
        return self.derive("siv", 64)

    @cached_property
    def cryptopan_key(self) -> bytes:
        """The Crypto-PAn key (32 bytes) of reversible addresses."""
        return self.derive("cryptopan", 32)

    def hmac_key(self, audience: str) -> bytes:
        """The HMAC-SHA256 key of irreversible pseudonyms for ``audience``."""
        return self.derive("hmac/" + audience, 32)

    def audience_cryptopan_key(self, audience: str) -> bytes:
        """A Crypto-PAn key for irreversible, prefix-preserving addresses for ``audience``."""
        return self.derive("cryptopan/" + audience, 32)


class KeyRing:
    """The keys of a key directory (or made in memory for tests): one current, all usable."""

    def __init__(
        self, keys: list[AnonKey] | dict[str, AnonKey], current: str, directory: Path | None = None
    ) -> None:
        self._keys = dict(keys) if isinstance(keys, dict) else {k.kid: k for k in keys}
        if current not in self._keys:
            raise AnonKeyError(f"the current key {current!r} is not in the key ring")
        self._current = current
        self.directory = directory

    @classmethod
    def generate(cls, kid: str | None = None) -> KeyRing:
        """A key ring with one fresh key, kept in memory only."""
        key = AnonKey(
            _check_kid(kid or new_key_id()), secrets.token_bytes(_SECRET_BYTES), time.time()
        )
        return cls([key], key.kid)

    @classmethod
    def from_secret(cls, secret: bytes, kid: str = "k0") -> KeyRing:
        """A key ring with one key made from ``secret`` (32 bytes), e.g. for tests and benchmarks."""
        if len(secret) != _SECRET_BYTES:
            raise AnonKeyError(
                f"an anonymization key secret is {_SECRET_BYTES} bytes, not {len(secret)}"
            )
        return cls([AnonKey(_check_kid(kid), bytes(secret), 0.0)], kid)

    @property
    def current(self) -> AnonKey:
        """The key new tokens are made with."""
        return self._keys[self._current]

    @property
    def kids(self) -> list[str]:
        """Every key id, oldest first."""
        return [k.kid for k in sorted(self._keys.values(), key=lambda k: (k.created, k.kid))]

    def get(self, kid: str) -> AnonKey | None:
        """The key called ``kid``, or None."""
        return self._keys.get(kid)

    def require(self, kid: str) -> AnonKey:
        """The key called ``kid``; :class:`AnonKeyError` if the ring does not hold it."""
        key = self._keys.get(kid)
        if key is None:
            where = f" in {self.directory}" if self.directory else ""
            raise AnonKeyError(
                f"no anonymization key {kid!r}{where}", hint=f"known keys: {', '.join(self.kids)}"
            )
        return key

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def __len__(self) -> int:
        return len(self._keys)


def _encode_key(key: AnonKey) -> bytes:
    doc = {"kid": key.kid, "created": key.created, "secret": base64.b64encode(key.secret).decode()}
    return (json.dumps(doc) + "\n").encode()


def _write_ring(directory: Path, current: str, kids: list[str]) -> None:
    doc = {"current": current, "keys": kids}
    write_private_file(
        directory / _RING_FILE, (json.dumps(doc, indent=2) + "\n").encode(), overwrite=True
    )


def load_keys(directory: str | os.PathLike[str]) -> KeyRing:
    """Read a key directory made by :func:`init_keys`.

    Raises:
        AnonKeyError: the directory or its key ring is missing or malformed.
        KeyFileError: a key file is readable by others, or not a regular file.
    """
    d = Path(directory)
    ring_path = d / _RING_FILE
    if not d.is_dir():
        raise AnonKeyError(
            f"{d} is not a key directory",
            hint=f"create one with: gwms logs keys init --key-dir {d}",
        )
    try:
        ring = json.loads(read_private_file(ring_path))
    except KeyFileError:
        if not ring_path.exists():
            raise AnonKeyError(
                f"{d} holds no {_RING_FILE}",
                hint=f"create one with: gwms logs keys init --key-dir {d}",
            ) from None
        raise
    except ValueError as exc:
        raise AnonKeyError(f"{ring_path} is not valid JSON: {exc}") from None
    if not isinstance(ring, dict) or not isinstance(ring.get("current"), str):
        raise AnonKeyError(f"{ring_path} does not name a current key")
    keys: list[AnonKey] = []
    for path in sorted(d.glob("*.key")):
        try:
            doc = json.loads(read_private_file(path))
            kid = _check_kid(str(doc["kid"]))
            secret = base64.b64decode(doc["secret"], validate=True)
            created = float(doc.get("created", 0.0))
        except KeyFileError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise AnonKeyError(f"{path} is not an anonymization key file: {exc}") from None
        if path.stem != kid or len(secret) != _SECRET_BYTES:
            raise AnonKeyError(f"{path} is not an anonymization key file (kid or length mismatch)")
        keys.append(AnonKey(kid, secret, created))
    if not keys:
        raise AnonKeyError(f"{d} holds no key files")
    return KeyRing(keys, ring["current"], directory=d)


def init_keys(directory: str | os.PathLike[str], kid: str | None = None) -> KeyRing:
    """Create a key directory with one key (mode 0700 directory, 0600 files).

    Raises:
        AnonKeyError: the directory already holds a key ring.
    """
    d = ensure_private_dir(directory)
    if (d / _RING_FILE).exists():
        raise AnonKeyError(
            f"{d} already holds anonymization keys", hint="use 'gwms logs keys rotate' to add one"
        )
    key = AnonKey(_check_kid(kid or new_key_id()), secrets.token_bytes(_SECRET_BYTES), time.time())
    write_private_file(d / f"{key.kid}.key", _encode_key(key))
    _write_ring(d, key.kid, [key.kid])
    return load_keys(d)


def rotate_keys(directory: str | os.PathLike[str], kid: str | None = None) -> KeyRing:
    """Add a new key to a key directory and make it current; old keys stay for de-anonymizing.

    Raises:
        AnonKeyError: the directory holds no key ring, or already a key called ``kid``.
    """
    ring = load_keys(directory)
    d = Path(directory)
    new_kid = _check_kid(kid or new_key_id())
    while kid is None and new_kid in ring:
        new_kid = new_key_id()
    if new_kid in ring:
        raise AnonKeyError(f"{d} already holds a key {new_kid!r}")
    key = AnonKey(
        new_kid, secrets.token_bytes(_SECRET_BYTES), max(time.time(), ring.current.created + 1e-6)
    )
    write_private_file(d / f"{key.kid}.key", _encode_key(key))
    _write_ring(d, key.kid, [*ring.kids, key.kid])
    return load_keys(d)
