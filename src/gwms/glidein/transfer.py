"""Job file transfer on the execute side: unpack the input sandbox, pack the outputs.

Input archives (tar, optionally gzip) may hold only regular files and directories with
relative names inside the sandbox: no absolute paths, no ``..``, no links or devices.
Outputs are packed from names relative to the sandbox; symbolic links are never
followed (a job must not be able to send back files from outside its sandbox).

Which outputs go back (:func:`choose_outputs`), as in HTCondor: the job's stdout and
stderr files, plus the ``TransferOutput`` list when set, else every file in the sandbox's
top level that is new or changed since the job started.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO


class TransferError(Exception):
    """An input archive that cannot be unpacked, or outputs that cannot be packed."""


def confined_name(name: str) -> str:
    """A member name normalized and checked to stay inside the sandbox."""
    if not name or "\x00" in name:
        raise TransferError(f"bad file name {name!r} in the input archive")
    if name.startswith("/"):
        raise TransferError(f"absolute path {name!r} in the input archive")
    norm = posixpath.normpath(name)
    if norm == ".":
        return norm
    if norm == ".." or norm.startswith("../"):
        raise TransferError(f"path {name!r} leaves the sandbox")
    return norm


def extract_input(archive: IO[bytes], dest: Path, *, max_bytes: int = 8 << 30) -> list[str]:
    """Unpack an input archive into ``dest``; the names of the files written.

    Executable bits of files are kept; nothing is written outside ``dest``.
    """
    written: list[str] = []
    total = 0
    try:
        tf = tarfile.open(fileobj=archive, mode="r:*")  # noqa: SIM115 - closed by the with below
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise TransferError(f"the input archive cannot be read: {exc}") from None
    with tf:
        try:
            for member in tf:
                name = confined_name(member.name)
                if name == ".":
                    continue
                target = dest / name
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isreg():
                    raise TransferError(f"{member.name!r} in the input archive is not a regular file")
                total += member.size
                if total > max_bytes:
                    raise TransferError(f"the input archive holds more than {max_bytes} bytes")
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(member)
                if src is None:
                    raise TransferError(f"{member.name!r} cannot be read from the input archive")
                mode = 0o755 if member.mode & 0o111 else 0o644
                fd = os.open(str(target), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
                with os.fdopen(fd, "wb") as out:
                    while True:
                        chunk = src.read(1 << 16)
                        if not chunk:
                            break
                        out.write(chunk)
                os.chmod(str(target), mode)
                written.append(name)
        except (tarfile.TarError, EOFError) as exc:
            raise TransferError(f"the input archive is damaged: {exc}") from None
        except OSError as exc:
            raise TransferError(f"cannot write input file: {exc}") from None
    return written


def top_level_files(sandbox: Path) -> dict[str, tuple[int, int]]:
    """``name -> (mtime_ns, size)`` of the regular files (not links) at the sandbox top."""
    found: dict[str, tuple[int, int]] = {}
    with os.scandir(sandbox) as it:
        for entry in it:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                found[entry.name] = (st.st_mtime_ns, st.st_size)
    return found


def std_file_name(value: object) -> str | None:
    """The sandbox name of a job's In/Out/Err file (its base name), None for none."""
    if not isinstance(value, str) or not value or value == "/dev/null" or value.startswith("/Expr("):
        return None
    name = posixpath.basename(value.rstrip("/"))
    return name or None


def choose_outputs(
    *,
    before: Mapping[str, tuple[int, int]],
    after: Mapping[str, tuple[int, int]],
    transfer_output: str | None,
    std_files: Iterable[str],
    excluded: Iterable[str] = (),
) -> tuple[list[str], list[str]]:
    """The outputs to send back, and the ``TransferOutput`` entries that are not allowed.

    ``before``/``after`` are :func:`top_level_files` listings when the job started and
    ended; ``transfer_output`` the job's comma-separated ``TransferOutput`` (None if unset);
    ``std_files`` the sandbox names of its stdout/stderr. Entries of ``transfer_output``
    may name directories or paths below the top level; the caller checks they exist. An
    entry outside the sandbox (absolute, ``..``) is returned as not allowed.
    """
    skip = set(excluded)
    chosen: list[str] = []
    missing: list[str] = []
    for name in std_files:
        if name in after and name not in chosen:
            chosen.append(name)
    if transfer_output is not None:
        for item in (p.strip() for p in transfer_output.split(",")):
            if not item:
                continue
            name = posixpath.normpath(item.rstrip("/"))
            if name.startswith(("/", "../")) or name == "..":
                missing.append(item)
                continue
            if name in chosen:
                continue
            chosen.append(name)
        return chosen, missing
    for name in sorted(after):
        if name in skip or name in chosen:
            continue
        if before.get(name) != after[name]:
            chosen.append(name)
    return chosen, missing


def pack_outputs(sandbox: Path, names: Iterable[str], out: IO[bytes], *, compress: bool = False) -> list[str]:
    """Write a tar of ``names`` (files or directories, relative to the sandbox) to ``out``.

    Symbolic links and special files are left out; a name that does not exist raises
    :class:`TransferError`. Returns the file names packed.
    """
    packed: list[str] = []
    root = sandbox.resolve()
    kwargs = {"compresslevel": 1} if compress else {}
    with tarfile.open(fileobj=out, mode="w:gz" if compress else "w", **kwargs) as tf:
        for name in names:
            path = root / name
            try:
                st = os.lstat(path)
            except OSError:
                raise TransferError(f"output file {name!r} does not exist") from None
            if stat.S_ISLNK(st.st_mode):
                continue
            if stat.S_ISREG(st.st_mode):
                tf.add(str(path), arcname=name, recursive=False)
                packed.append(name)
            elif stat.S_ISDIR(st.st_mode):
                for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
                    rel_dir = os.path.relpath(dirpath, root)
                    tf.add(dirpath, arcname=rel_dir, recursive=False)
                    for fn in sorted(filenames):
                        full = os.path.join(dirpath, fn)
                        if stat.S_ISREG(os.lstat(full).st_mode):
                            arc = os.path.join(rel_dir, fn)
                            tf.add(full, arcname=arc, recursive=False)
                            packed.append(arc)
    return packed
