"""Hybrid encryption of credentials: RSA-OAEP-SHA256 key wrap + AES-256-GCM.

The factory owns an :class:`RsaKeyPair` and advertises its public key with its key id.
A frontend encrypts for it in one of two ways:

* :func:`encrypt` — one value, one envelope: a fresh AES key wrapped for the factory.
* :class:`SessionKey` — the per-cycle pattern of GlideinWMS: one random AES key per
  cycle, wrapped once (``.wrapped``, sent as ``ReqEncKeyCode``), then many values sealed
  with it (``.seal``); the factory calls :func:`open_session` once and ``.open`` per value.

The factory holds its keys in a :class:`Decryptor`; after :meth:`Decryptor.rotate` the
previous key still opens envelopes until its grace period ends, then refuses them.

Text forms (every part base64url without padding, parts joined by ``.``)::

    envelope:     g1.<kid>.<wrapped key>.<nonce>.<ciphertext+tag>
    session key:  gs1.<kid>.<wrapped key>
    sealed value: gv1.<nonce>.<ciphertext+tag>

The key id is bound by the OAEP label and the GCM associated data, and the caller's
``aad`` (say, the ad name a value belongs to) by the GCM associated data, so an altered
part, a value moved to another context, or the wrong key fails with a
:class:`DecryptionError` subclass, never with garbage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gwms.errors import GwmsError
from gwms.security.keyfiles import (
    KEY_ID_PATTERN,
    KeyFileError,
    read_private_file,
    validate_key_id,
    write_private_file,
)

ENVELOPE_VERSION = "g1"
SESSION_VERSION = "gs1"
SEALED_VERSION = "gv1"
DEFAULT_GRACE_SECONDS = 900.0
MIN_RSA_BITS = 2048
AES_KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
#: Envelopes and sealed values longer than this are refused before decoding (16 MiB).
MAX_TEXT_LENGTH = 16 << 20

_ENVELOPE_AAD = b"gwms-envelope-v1\x00"
_SESSION_AAD = b"gwms-session-v1\x00"


# --------------------------------------------------------------------------- errors


class EncryptionError(GwmsError):
    """Encryption could not start: the public key is not a usable RSA key."""


class DecryptionError(GwmsError):
    """Decryption failed. Subclasses say why; no plaintext is ever returned."""


class EnvelopeMalformed(DecryptionError):
    """The text is not an envelope / session key / sealed value of a known version."""


class UnknownKeyId(DecryptionError):
    """The envelope names a key id this decryptor never held."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        super().__init__(f"no private key with id {kid!r}")


class KeyRetired(DecryptionError):
    """The envelope's key was rotated out and its grace period has ended."""

    def __init__(self, kid: str, retired_at: float) -> None:
        self.kid = kid
        self.retired_at = retired_at
        stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(retired_at))
        super().__init__(f"key {kid!r} was retired at {stamp}")


class KeyUnwrapFailed(DecryptionError):
    """The wrapped AES key does not open with the private key: wrong key, or altered."""


class IntegrityCheckFailed(DecryptionError):
    """AES-GCM authentication failed: altered nonce/ciphertext, or the wrong aad or key."""


# --------------------------------------------------------------------------- encoding


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str, what: str) -> bytes:
    """Strict base64url decoding: only the canonical encoding of some bytes is accepted."""
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise EnvelopeMalformed(f"malformed {what}: not base64url") from None
    if _b64e(data) != text:
        raise EnvelopeMalformed(f"malformed {what}: not canonical base64url")
    return data


def _split(text: str, version: str, count: int, what: str) -> list[str]:
    if not isinstance(text, str) or len(text) > MAX_TEXT_LENGTH:
        raise EnvelopeMalformed(f"malformed {what}: not a string or too long")
    parts = text.split(".")
    if parts[0] != version:
        raise EnvelopeMalformed(f"malformed {what}: expected version {version!r}")
    if len(parts) != count:
        raise EnvelopeMalformed(f"malformed {what}: expected {count} parts, got {len(parts)}")
    return parts


def _kid_from(text: str, what: str) -> str:
    if not KEY_ID_PATTERN.fullmatch(text):
        raise EnvelopeMalformed(f"malformed {what}: bad key id")
    return text


def _oaep(kid: str) -> padding.OAEP:
    return padding.OAEP(
        mgf=padding.MGF1(algorithm=hashes.SHA256()),
        algorithm=hashes.SHA256(),
        label=b"gwms-key-wrap-v1:" + kid.encode("ascii"),
    )


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


# --------------------------------------------------------------------------- key pairs


@dataclass(frozen=True, eq=False)
class RsaKeyPair:
    """An RSA key pair with a key id; the factory's decryption key."""

    kid: str
    private_key: rsa.RSAPrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        validate_key_id(self.kid)
        if not isinstance(self.private_key, rsa.RSAPrivateKey):
            raise KeyFileError(f"key {self.kid!r} is not an RSA private key")
        if self.private_key.key_size < MIN_RSA_BITS:
            raise KeyFileError(
                f"key {self.kid!r} has {self.private_key.key_size} bits; "
                f"at least {MIN_RSA_BITS} are needed"
            )

    @classmethod
    def generate(cls, kid: str, bits: int = 3072) -> RsaKeyPair:
        """Make a new key pair (public exponent 65537) with id ``kid``."""
        validate_key_id(kid)
        if bits < MIN_RSA_BITS:
            raise GwmsError(f"RSA keys need at least {MIN_RSA_BITS} bits, got {bits}")
        return cls(kid, rsa.generate_private_key(public_exponent=65537, key_size=bits))

    @classmethod
    def from_private_pem(cls, pem: bytes | str, kid: str) -> RsaKeyPair:
        """Build a key pair from an unencrypted PKCS#8 or PKCS#1 private key PEM."""
        try:
            key = serialization.load_pem_private_key(_as_bytes(pem), password=None)
        except (ValueError, TypeError) as exc:
            raise KeyFileError(f"not an unencrypted PEM private key: {exc}") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise KeyFileError("the PEM private key is not an RSA key")
        return cls(kid, key)

    @classmethod
    def load(cls, path: str | os.PathLike[str], kid: str | None = None) -> RsaKeyPair:
        """Load a private key PEM (refused if group/others can read it).

        ``kid`` defaults to the file name without its ``.pem`` suffix.
        """
        p = Path(path)
        if kid is None:
            kid = p.name[:-4] if p.name.endswith(".pem") else p.name
        validate_key_id(kid)
        try:
            return cls.from_private_pem(read_private_file(p), kid)
        except KeyFileError as exc:
            if str(p) in exc.message:
                raise
            raise KeyFileError(f"{p}: {exc.message}") from None

    @classmethod
    def load_or_generate(
        cls, path: str | os.PathLike[str], kid: str | None = None, bits: int = 3072
    ) -> RsaKeyPair:
        """Load the key at ``path``, or generate one and save it there (0600) if missing."""
        p = Path(path)
        if p.exists():
            return cls.load(p, kid)
        if kid is None:
            kid = p.name[:-4] if p.name.endswith(".pem") else p.name
        pair = cls.generate(kid, bits)
        try:
            pair.save(p)
        except FileExistsError:
            return cls.load(p, kid)
        return pair

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the private key as PKCS#8 PEM to ``path`` with mode 0600 (atomically).

        Raises:
            FileExistsError: ``path`` exists and ``overwrite`` is false.
        """
        Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return write_private_file(path, self.private_pem(), overwrite=overwrite)

    def private_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM (a secret: handle with care)."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        """The public half."""
        return self.private_key.public_key()

    @property
    def public_pem(self) -> str:
        """The public key as SubjectPublicKeyInfo PEM text, fit to advertise."""
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the public key's DER form, hex."""
        der = self.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(der).hexdigest()


def load_public_key(public_key: str | bytes | rsa.RSAPublicKey | RsaKeyPair) -> rsa.RSAPublicKey:
    """Turn PEM text/bytes, a key object or a key pair into an RSA public key object.

    Raises:
        EncryptionError: not an RSA public key of at least 2048 bits.
    """
    if isinstance(public_key, RsaKeyPair):
        key: object = public_key.public_key
    elif isinstance(public_key, (str, bytes)):
        try:
            key = serialization.load_pem_public_key(_as_bytes(public_key))
        except (ValueError, TypeError) as exc:
            raise EncryptionError(f"not a PEM public key: {exc}") from None
    else:
        key = public_key
    if not isinstance(key, rsa.RSAPublicKey):
        raise EncryptionError("the public key is not an RSA key")
    if key.key_size < MIN_RSA_BITS:
        raise EncryptionError(f"the RSA public key has {key.key_size} bits; need {MIN_RSA_BITS}")
    return key


def _wrap(public_key: rsa.RSAPublicKey, kid: str, aes_key: bytes) -> bytes:
    return public_key.encrypt(aes_key, _oaep(kid))


def _gcm_seal(aes_key: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    nonce = os.urandom(NONCE_BYTES)
    return nonce, AESGCM(aes_key).encrypt(nonce, plaintext, aad)


def _gcm_open(aes_key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes, what: str) -> bytes:
    if len(nonce) != NONCE_BYTES:
        raise EnvelopeMalformed(f"malformed {what}: nonce of {len(nonce)} bytes")
    if len(ciphertext) < TAG_BYTES:
        raise EnvelopeMalformed(f"malformed {what}: ciphertext shorter than its tag")
    try:
        return AESGCM(aes_key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise IntegrityCheckFailed(
            f"{what} failed its integrity check (altered, or wrong aad or key)"
        ) from None


def _envelope_aad(kid: str, aad: bytes) -> bytes:
    return _ENVELOPE_AAD + kid.encode("ascii") + b"\x00" + aad


# --------------------------------------------------------------------------- one-shot


def encrypt(
    public_key: str | bytes | rsa.RSAPublicKey | RsaKeyPair,
    kid: str,
    plaintext: bytes,
    aad: bytes = b"",
) -> str:
    """Encrypt ``plaintext`` for the holder of ``public_key`` (id ``kid``) as one envelope.

    ``aad`` is authenticated but not encrypted: the same bytes must be given to decrypt.
    """
    key = load_public_key(public_key)
    validate_key_id(kid)
    aes_key = AESGCM.generate_key(bit_length=AES_KEY_BYTES * 8)
    wrapped = _wrap(key, kid, aes_key)
    nonce, ciphertext = _gcm_seal(aes_key, _as_bytes(plaintext), _envelope_aad(kid, aad))
    return ".".join((ENVELOPE_VERSION, kid, _b64e(wrapped), _b64e(nonce), _b64e(ciphertext)))


def envelope_key_id(envelope: str) -> str:
    """The key id an envelope or a session key was made for (without decrypting it)."""
    if isinstance(envelope, str) and envelope.startswith(SESSION_VERSION + "."):
        return _kid_from(_split(envelope, SESSION_VERSION, 3, "session key")[1], "session key")
    return _kid_from(_split(envelope, ENVELOPE_VERSION, 5, "envelope")[1], "envelope")


# --------------------------------------------------------------------------- decryptor


class Decryptor:
    """The private keys of one service: the current pair and recently rotated-out ones.

    Args:
        current: the key pair new envelopes are made for.
        previous: older pairs with the epoch time each stops being accepted.
        clock: returns the current epoch seconds (injectable for tests).
    """

    def __init__(
        self,
        current: RsaKeyPair,
        *,
        previous: Iterable[tuple[RsaKeyPair, float]] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._current = current
        self._previous: dict[str, tuple[RsaKeyPair, float]] = {}
        self._retired: dict[str, float] = {}
        for pair, retire_at in previous:
            if pair.kid == current.kid or pair.kid in self._previous:
                raise GwmsError(f"key id {pair.kid!r} given twice to a decryptor")
            self._previous[pair.kid] = (pair, float(retire_at))

    @property
    def current(self) -> RsaKeyPair:
        """The key pair that new envelopes should be made for."""
        return self._current

    def active_key_ids(self) -> list[str]:
        """Key ids that open envelopes now: the current one first, then those in grace."""
        now = self._clock()
        with self._lock:
            self._expire(now)
            return [self._current.kid, *self._previous]

    def rotate(self, new_pair: RsaKeyPair, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
        """Make ``new_pair`` current; the old current key keeps working for ``grace_seconds``."""
        if grace_seconds < 0:
            raise GwmsError("grace_seconds must not be negative")
        now = self._clock()
        with self._lock:
            if (
                new_pair.kid == self._current.kid
                or new_pair.kid in self._previous
                or new_pair.kid in self._retired
            ):
                raise GwmsError(f"cannot rotate to key id {new_pair.kid!r}: already used")
            old = self._current
            self._previous[old.kid] = (old, now + float(grace_seconds))
            self._current = new_pair
            self._expire(now)

    def _expire(self, now: float) -> None:
        for kid, (_pair, retire_at) in list(self._previous.items()):
            if now >= retire_at:
                del self._previous[kid]
                self._retired[kid] = retire_at

    def _pair_for(self, kid: str) -> RsaKeyPair:
        now = self._clock()
        with self._lock:
            if kid == self._current.kid:
                return self._current
            self._expire(now)
            entry = self._previous.get(kid)
            if entry is not None:
                return entry[0]
            if kid in self._retired:
                raise KeyRetired(kid, self._retired[kid])
        raise UnknownKeyId(kid)

    def unwrap(self, kid: str, wrapped: bytes) -> bytes:
        """Open a wrapped AES key made for ``kid``.

        Raises:
            UnknownKeyId, KeyRetired, KeyUnwrapFailed
        """
        pair = self._pair_for(kid)
        if len(wrapped) != (pair.private_key.key_size + 7) // 8:
            raise KeyUnwrapFailed(f"wrapped key of {len(wrapped)} bytes does not fit key {kid!r}")
        try:
            aes_key = pair.private_key.decrypt(wrapped, _oaep(kid))
        except ValueError:
            raise KeyUnwrapFailed(
                f"wrapped key does not open with key {kid!r} (wrong key, or altered)"
            ) from None
        if len(aes_key) != AES_KEY_BYTES:
            raise KeyUnwrapFailed(f"wrapped key for {kid!r} is not an AES-256 key")
        return aes_key

    def decrypt(self, envelope: str, aad: bytes = b"") -> bytes:
        """Open an envelope made by :func:`encrypt`; ``aad`` must equal the one used then.

        Raises:
            EnvelopeMalformed, UnknownKeyId, KeyRetired, KeyUnwrapFailed, IntegrityCheckFailed
        """
        _, kid_text, wrapped_text, nonce_text, ct_text = _split(
            envelope, ENVELOPE_VERSION, 5, "envelope"
        )
        kid = _kid_from(kid_text, "envelope")
        wrapped = _b64d(wrapped_text, "envelope")
        nonce = _b64d(nonce_text, "envelope")
        ciphertext = _b64d(ct_text, "envelope")
        aes_key = self.unwrap(kid, wrapped)
        return _gcm_open(aes_key, nonce, ciphertext, _envelope_aad(kid, aad), "envelope")


# --------------------------------------------------------------------------- sessions


def _session_aad(aad: bytes) -> bytes:
    return _SESSION_AAD + aad


class SessionKey:
    """One random AES-256 key, wrapped once for a public key, sealing many values.

    ``wrapped`` goes to the recipient once (GlideinWMS's ``ReqEncKeyCode``); each
    :meth:`seal` result is opened with the object :func:`open_session` returns.
    """

    def __init__(self, public_key: str | bytes | rsa.RSAPublicKey | RsaKeyPair, kid: str) -> None:
        key = load_public_key(public_key)
        self.kid = validate_key_id(kid)
        self._aes_key = AESGCM.generate_key(bit_length=AES_KEY_BYTES * 8)
        self.wrapped: str = ".".join((SESSION_VERSION, kid, _b64e(_wrap(key, kid, self._aes_key))))

    def __repr__(self) -> str:
        return f"SessionKey(kid={self.kid!r})"

    def seal(self, value: bytes | str, aad: bytes = b"") -> str:
        """Encrypt one value (str is UTF-8 encoded); ``aad`` must be given again to open it."""
        nonce, ciphertext = _gcm_seal(self._aes_key, _as_bytes(value), _session_aad(aad))
        return ".".join((SEALED_VERSION, _b64e(nonce), _b64e(ciphertext)))


class OpenedSession:
    """The recipient's side of a :class:`SessionKey`: opens the values it sealed."""

    def __init__(self, kid: str, aes_key: bytes) -> None:
        self.kid = kid
        self._aes_key = aes_key

    def __repr__(self) -> str:
        return f"OpenedSession(kid={self.kid!r})"

    def open(self, token: str, aad: bytes = b"") -> bytes:
        """Decrypt one sealed value; ``aad`` must equal the one given to ``seal``.

        Raises:
            EnvelopeMalformed, IntegrityCheckFailed
        """
        _, nonce_text, ct_text = _split(token, SEALED_VERSION, 3, "sealed value")
        nonce = _b64d(nonce_text, "sealed value")
        ciphertext = _b64d(ct_text, "sealed value")
        return _gcm_open(self._aes_key, nonce, ciphertext, _session_aad(aad), "sealed value")


def open_session(decryptor: Decryptor, wrapped: str) -> OpenedSession:
    """Unwrap a :attr:`SessionKey.wrapped` string with ``decryptor``'s keys.

    Raises:
        EnvelopeMalformed, UnknownKeyId, KeyRetired, KeyUnwrapFailed
    """
    _, kid_text, wrapped_text = _split(wrapped, SESSION_VERSION, 3, "session key")
    kid = _kid_from(kid_text, "session key")
    return OpenedSession(kid, decryptor.unwrap(kid, _b64d(wrapped_text, "session key")))
