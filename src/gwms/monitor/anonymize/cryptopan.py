"""Crypto-PAn: prefix-preserving, invertible anonymization of IPv4 and IPv6 addresses.

The construction of Xu, Fan, Ammar and Moon (2002): a 32-byte key; AES-128 under its
first 16 bytes is the pseudo-random function, and the encryption of its last 16 bytes is
the padding. Bit ``i`` of the result is bit ``i`` of the address flipped by the first bit
of ``AES(first i bits of the address, then the padding's remaining bits)``. Two addresses
sharing a ``k``-bit prefix get results sharing a ``k``-bit prefix, and whoever holds the
key can undo it bit by bit (:meth:`CryptoPAn.decrypt`).

IPv4 addresses are placed in the top 32 bits of the 128-bit block (as in the reference
code and ``yacryptopan``), IPv6 use all 128 bits. With key ``bytes(range(32))``:
``192.0.2.1 -> 2.90.93.17`` and ``2001:db8::1 -> dd92:2c44:3fc0:ff1e:7ff9:c7f0:8180:7e00``.

The 32 (or 128) AES blocks of one address are independent, so they go to AES-ECB in one
call; results are cached, since logs repeat the same few addresses.
"""

from __future__ import annotations

import ipaddress

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["CRYPTOPAN_KEY_BYTES", "CryptoPAn"]

CRYPTOPAN_KEY_BYTES = 32
_MASK128 = (1 << 128) - 1


class CryptoPAn:
    """Prefix-preserving address encryption under one 32-byte key.

    Methods take and return integers (``encrypt_int``/``decrypt_int`` with a bit width of
    32 or 128) or addresses as text (:meth:`encrypt`, :meth:`decrypt`, which keep the
    family and give the canonical spelling).
    """

    def __init__(self, key: bytes, *, cache_size: int = 1 << 16) -> None:
        if len(key) != CRYPTOPAN_KEY_BYTES:
            raise ValueError(f"a Crypto-PAn key is {CRYPTOPAN_KEY_BYTES} bytes, not {len(key)}")
        self._ecb = Cipher(algorithms.AES(key[:16]), modes.ECB()).encryptor()
        pad = self._ecb.update(key[16:])
        self._pad = int.from_bytes(pad, "big")
        # _masks[i] keeps the top i bits of a 128-bit value
        self._masks = [(_MASK128 << (128 - i)) & _MASK128 for i in range(129)]
        self._cache: dict[tuple[int, int], int] = {}
        self._dcache: dict[tuple[int, int], int] = {}
        self._cache_size = cache_size

    def _flips(self, ext: int, bits: int) -> int:
        """The flip bits for every prefix length 0..bits-1 of ``ext`` (a 128-bit value)."""
        pad = self._pad
        masks = self._masks
        blocks = b"".join(
            ((pad & ~masks[i] & _MASK128) | (ext & masks[i])).to_bytes(16, "big")
            for i in range(bits)
        )
        out = self._ecb.update(blocks)
        result = 0
        for i in range(bits):
            result = (result << 1) | (out[16 * i] >> 7)
        return result

    def encrypt_int(self, addr: int, bits: int) -> int:
        """Anonymize an address given as an integer of ``bits`` bits (32 or 128)."""
        key = (addr, bits)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        ext = addr << (128 - bits)
        result = addr ^ self._flips(ext, bits)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[key] = result
        return result

    def decrypt_int(self, anon: int, bits: int) -> int:
        """Undo :meth:`encrypt_int` (needs one AES block per bit, in order)."""
        key = (anon, bits)
        hit = self._dcache.get(key)
        if hit is not None:
            return hit
        pad = self._pad
        masks = self._masks
        orig = 0
        shift = 128 - bits
        for i in range(bits):
            ext = orig << shift
            block = ((pad & ~masks[i] & _MASK128) | (ext & masks[i])).to_bytes(16, "big")
            flip = self._ecb.update(block)[0] >> 7
            bit = ((anon >> (bits - 1 - i)) & 1) ^ flip
            orig |= bit << (bits - 1 - i)
        if len(self._dcache) >= self._cache_size:
            self._dcache.clear()
        self._dcache[key] = orig
        return orig

    def encrypt(self, address: str) -> str:
        """Anonymize an IPv4 or IPv6 address written as text; canonical text back."""
        ip = ipaddress.ip_address(address)
        bits = 32 if ip.version == 4 else 128
        value = self.encrypt_int(int(ip), bits)
        return str(ipaddress.IPv4Address(value) if bits == 32 else ipaddress.IPv6Address(value))

    def decrypt(self, address: str) -> str:
        """Recover the original of an address made by :meth:`encrypt`."""
        ip = ipaddress.ip_address(address)
        bits = 32 if ip.version == 4 else 128
        value = self.decrypt_int(int(ip), bits)
        return str(ipaddress.IPv4Address(value) if bits == 32 else ipaddress.IPv6Address(value))
