"""Job sandboxes in the schedd's spool: input files uploaded at submit, outputs returned.

Layout under the spool directory::

    <spool>/<cluster>/input/...          input files, shared by every proc of the cluster
    <spool>/<cluster>/<proc>/output/...  what the job sent back when it ended

Everything that crosses the wire is a tar archive (optionally gzip-compressed). Member
names are confined to the sandbox: no absolute paths, no ``..``, no links, devices or
fifos, and a limit on the total size, so an upload can never write outside its directory.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from gwms.errors import GwmsError


class SandboxError(GwmsError):
    """A sandbox path or archive that is not allowed."""

    http_status = 400


class SandboxTooLarge(SandboxError):
    """An archive whose content exceeds the configured limit."""

    http_status = 413


def confined_relpath(name: str) -> PurePosixPath:
    """Check a sandbox-relative path and return it normalized, or raise :class:`SandboxError`.

    Refused: empty names, absolute paths, any ``..`` component, NUL or control characters,
    and backslashes (which other systems treat as separators).
    """
    if not name or name.strip() == "":
        raise SandboxError("empty path in sandbox")
    if any(ord(c) < 32 for c in name) or "\\" in name:
        raise SandboxError(f"path {name!r} has a control character or backslash")
    p = PurePosixPath(name)
    if p.is_absolute():
        raise SandboxError(f"path {name!r} is absolute; sandbox paths are relative to the job's directory")
    parts = [part for part in p.parts if part not in ("", ".")]
    if any(part == ".." for part in parts):
        raise SandboxError(f"path {name!r} leaves the sandbox ('..' is not allowed)")
    if not parts:
        raise SandboxError(f"path {name!r} names the sandbox itself")
    return PurePosixPath(*parts)


def confined_path(root: Path, name: str) -> Path:
    """Join ``name`` under ``root``, refusing escapes, including through symlinks on disk."""
    rel = confined_relpath(name)
    root_real = root.resolve()
    candidate = root_real.joinpath(*rel.parts)
    # walk the existing part of the path: no component may be a symlink
    cur = root_real
    for part in rel.parts:
        cur = cur / part
        if cur.is_symlink():
            raise SandboxError(f"path {name!r} goes through a symbolic link")
        if not cur.exists():
            break
    if not candidate.resolve().is_relative_to(root_real):
        raise SandboxError(f"path {name!r} leaves the sandbox")
    return candidate


def extract_archive(stream: BinaryIO, dest: Path, *, max_bytes: int, clean_on_error: bool = True) -> list[str]:
    """Extract a (gzip-)tar stream into ``dest`` safely; return the regular files written.

    Directories and regular files only. The archive is checked member by member while it
    is read; on any refusal nothing is left in ``dest`` (with ``clean_on_error``; a
    directory that holds other things, such as a user's submit directory, is left alone
    and the files written so far are removed instead).
    """
    dest.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    total = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                rel = confined_relpath(member.name)
                if member.isdir():
                    confined_path(dest, str(rel)).mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isfile():
                    raise SandboxError(f"{member.name!r} is not a regular file (links and devices are not allowed)")
                total += member.size
                if total > max_bytes:
                    raise SandboxTooLarge(f"sandbox larger than the limit of {max_bytes} bytes")
                target = confined_path(dest, str(rel))
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                assert src is not None
                with open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                mode = 0o755 if member.mode & 0o111 else 0o644
                os.chmod(target, mode)
                written.append(str(rel))
    except tarfile.TarError as exc:
        _undo(dest, written, clean_on_error)
        raise SandboxError(f"not a valid tar archive: {exc}") from exc
    except SandboxError:
        _undo(dest, written, clean_on_error)
        raise
    return written


def _undo(dest: Path, written: list[str], whole_dir: bool) -> None:
    if whole_dir:
        shutil.rmtree(dest, ignore_errors=True)
        return
    for name in written:
        (dest / name).unlink(missing_ok=True)


def make_archive(files: Iterable[tuple[str, Path]], *, compress: bool = True) -> bytes:
    """Pack ``(name in sandbox, path on disk)`` pairs into a tar (gzip) archive in memory.

    Directories are packed recursively. Names are checked with :func:`confined_relpath`.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if compress else "w") as tar:
        for name, path in files:
            rel = confined_relpath(name)
            if not path.exists():
                raise SandboxError(f"input file {path} does not exist")
            tar.add(str(path), arcname=str(rel), recursive=True, filter=_plain_files_only)
    return buf.getvalue()


def _plain_files_only(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if info.issym() or info.islnk() or not (info.isfile() or info.isdir()):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class Spool:
    """The schedd's spool directory of job sandboxes."""

    def __init__(self, root: Path, *, max_input_bytes: int = 1 << 30, max_output_bytes: int = 1 << 30) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_input_bytes = max_input_bytes
        self.max_output_bytes = max_output_bytes

    def input_dir(self, cluster: int) -> Path:
        return self.root / str(int(cluster)) / "input"

    def output_dir(self, cluster: int, proc: int) -> Path:
        return self.root / str(int(cluster)) / str(int(proc)) / "output"

    def store_input(self, cluster: int, stream: BinaryIO) -> list[str]:
        """Unpack a cluster's input archive; returns the file names stored."""
        return extract_archive(stream, self.input_dir(cluster), max_bytes=self.max_input_bytes)

    def store_output(self, cluster: int, proc: int, stream: BinaryIO) -> list[str]:
        """Unpack a job's output archive, replacing earlier output of the same job."""
        dest = self.output_dir(cluster, proc)
        if dest.exists():
            shutil.rmtree(dest)
        return extract_archive(stream, dest, max_bytes=self.max_output_bytes)

    def input_archive(self, cluster: int) -> bytes:
        """The cluster's input files as one archive (what a starter downloads)."""
        d = self.input_dir(cluster)
        if not d.exists():
            return make_archive([])
        return make_archive([(p.name, p) for p in sorted(d.iterdir())])

    def output_files(self, cluster: int, proc: int) -> list[str]:
        d = self.output_dir(cluster, proc)
        if not d.exists():
            return []
        return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())

    def output_file(self, cluster: int, proc: int, name: str) -> Path:
        """Path of one output file, confined to the job's output directory."""
        path = confined_path(self.output_dir(cluster, proc), name)
        if not path.is_file():
            raise SandboxError(f"job {cluster}.{proc} has no output file {name!r}")
        return path

    def output_archive(self, cluster: int, proc: int) -> bytes:
        d = self.output_dir(cluster, proc)
        if not d.exists():
            return make_archive([])
        return make_archive([(p.name, p) for p in sorted(d.iterdir())])

    def remove_cluster(self, cluster: int) -> None:
        shutil.rmtree(self.root / str(int(cluster)), ignore_errors=True)
