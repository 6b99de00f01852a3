"""Private key files: atomic 0600 writes, permission checks on read, and key ids.

Every secret gwms keeps on disk (pool signing keys, RSA private keys, CA and service
keys, tokens) goes through :func:`write_private_file` and :func:`read_private_file`, so
there is one place that decides how secrets are created and when a file is too open to
trust.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path

from gwms.errors import GwmsError

#: What a key id may look like: it names files and appears in envelopes and token headers.
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class KeyFileError(GwmsError):
    """A key or token file is missing, unreadable, too open, or not what it should be."""


def validate_key_id(kid: str) -> str:
    """Return ``kid`` if it is a valid key id (letters, digits, ``_``, ``-``; at most 64).

    Raises:
        GwmsError: the key id is empty, too long, or holds other characters.
    """
    if not isinstance(kid, str) or not KEY_ID_PATTERN.fullmatch(kid):
        raise GwmsError(
            f"invalid key id {kid!r}",
            hint="use 1-64 letters, digits, '_' or '-', starting with a letter or digit",
        )
    return kid


def ensure_private_dir(directory: str | os.PathLike[str]) -> Path:
    """Create ``directory`` (and parents) with mode 0700 if missing; return it as a Path."""
    path = Path(directory)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.is_dir():
        raise KeyFileError(f"{path} is not a directory")
    return path


def write_private_file(
    path: str | os.PathLike[str], data: bytes, *, overwrite: bool = False
) -> Path:
    """Write ``data`` to ``path`` atomically with mode 0600.

    The bytes go to a temporary file created with ``os.open(..., 0o600)`` in the same
    directory, are flushed to disk, and the file is then linked (or, with ``overwrite``,
    renamed) into place, so no reader ever sees a partial file or a moment of wider
    permissions.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # the umask may have removed bits we need
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, target)
        else:
            os.link(tmp, target)  # fails if target exists: never clobbers
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    return target


def check_private_mode(path: str | os.PathLike[str], mode: int) -> None:
    """Raise :class:`KeyFileError` if ``mode`` lets group or others read or write ``path``."""
    if mode & 0o077:
        raise KeyFileError(
            f"{path} is accessible by group or others (mode {stat.S_IMODE(mode):04o})",
            hint=f"run: chmod 600 {path}",
        )


def read_private_file(path: str | os.PathLike[str], *, max_bytes: int = 1 << 20) -> bytes:
    """Read a secret file, refusing one that group or others can read or write.

    Raises:
        KeyFileError: the file is missing, not a regular file, too large, or too open.
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY)
    except FileNotFoundError:
        raise KeyFileError(f"{p} does not exist") from None
    except IsADirectoryError:
        raise KeyFileError(f"{p} is a directory, not a key file") from None
    except PermissionError:
        raise KeyFileError(f"{p} is not readable by this user") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"{p} is not a regular file")
        check_private_mode(p, st.st_mode)
        if st.st_size > max_bytes:
            raise KeyFileError(f"{p} is too large for a key file ({st.st_size} bytes)")
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
