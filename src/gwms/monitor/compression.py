"""Compression codecs for the monitor's archive files and stored section texts.

zstd (the ``zstandard`` package) when it is installed, else gzip at a low level: both
chosen for speed, since the indexer compresses every byte it archives. Each stored blob
records its codec's name, so data written with one codec stays readable when the
default changes (gzip is always available; zstd data needs the package).

::

    codec = default_codec()                 # zstd level 1, or gzip level 1
    blob = codec.compress(data)
    data = codec_named(codec.name).decompress(blob)
"""

from __future__ import annotations

import gzip
import threading
import zlib
from dataclasses import dataclass
from typing import Protocol

from gwms.errors import GwmsError

__all__ = [
    "CODEC_NAMES",
    "Codec",
    "CodecError",
    "GzipCodec",
    "ZstdCodec",
    "codec_named",
    "default_codec",
    "zstd_available",
]

try:  # optional: the fast codec
    import zstandard as _zstd
except ImportError:  # pragma: no cover - depends on the environment
    _zstd = None  # type: ignore[assignment]

#: Every codec name a stored blob may carry.
CODEC_NAMES = ("zstd", "gzip")


class CodecError(GwmsError):
    """Data cannot be (de)compressed: an unknown codec, a missing package, corrupt data."""


class Codec(Protocol):
    """A compression codec: its name, file suffix, and one-shot compress/decompress."""

    name: str
    suffix: str

    def compress(self, data: bytes) -> bytes:
        """``data`` compressed."""
        ...

    def decompress(self, blob: bytes) -> bytes:
        """The original data of ``blob``; :class:`CodecError` if it is corrupt."""
        ...


def zstd_available() -> bool:
    """True if the ``zstandard`` package is installed."""
    return _zstd is not None


@dataclass(frozen=True)
class GzipCodec:
    """gzip (RFC 1952) at ``level`` (1-3 favours speed); readable by any gzip tool."""

    level: int = 1
    name: str = "gzip"
    suffix: str = ".gz"

    def compress(self, data: bytes) -> bytes:
        """``data`` as one gzip member (mtime 0, so equal data gives equal bytes)."""
        return gzip.compress(data, compresslevel=self.level, mtime=0)

    def decompress(self, blob: bytes) -> bytes:
        """Every member of ``blob``, concatenated."""
        try:
            return gzip.decompress(blob)
        except (OSError, EOFError, zlib.error) as exc:
            raise CodecError(f"corrupt gzip data: {exc}") from None


class ZstdCodec:
    """Zstandard at ``level`` (default 1: on these logs within 2 % of the size of
    zstd's own default, level 3, and about a third faster; the level is not stored, and
    any level reads data written at any other).

    Safe to share between threads: each thread gets its own (de)compressor, since the
    ``zstandard`` objects must not be used by two threads at once.
    """

    name = "zstd"
    suffix = ".zst"

    def __init__(self, level: int = 1) -> None:
        if _zstd is None:
            raise CodecError(
                "zstd data needs the 'zstandard' package", hint="pip install zstandard"
            )
        self.level = level
        self._local = threading.local()

    def _pair(self) -> tuple[_zstd.ZstdCompressor, _zstd.ZstdDecompressor]:
        pair = getattr(self._local, "pair", None)
        if pair is None:
            pair = self._local.pair = (
                _zstd.ZstdCompressor(level=self.level),
                _zstd.ZstdDecompressor(),
            )
        return pair

    def compress(self, data: bytes) -> bytes:
        """``data`` as one zstd frame (with its content size, so it decompresses in one go)."""
        return self._pair()[0].compress(data)

    def decompress(self, blob: bytes) -> bytes:
        """The data of a zstd frame."""
        try:
            return self._pair()[1].decompress(blob)
        except _zstd.ZstdError as exc:
            raise CodecError(f"corrupt zstd data: {exc}") from None

    def __repr__(self) -> str:
        return f"ZstdCodec(level={self.level})"


_CACHE: dict[str, Codec] = {}


def codec_named(name: str) -> Codec:
    """The codec called ``name`` (``zstd`` or ``gzip``), for reading stored blobs."""
    codec = _CACHE.get(name)
    if codec is None:
        if name == "zstd":
            codec = ZstdCodec()
        elif name == "gzip":
            codec = GzipCodec()
        else:
            raise CodecError(f"unknown compression codec {name!r}")
        _CACHE[name] = codec
    return codec


def default_codec(prefer: str | None = None) -> Codec:
    """The codec new data is written with: ``prefer`` if given, else zstd if available, else gzip."""
    if prefer is not None:
        return codec_named(prefer)
    return codec_named("zstd" if zstd_available() else "gzip")
