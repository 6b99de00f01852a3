"""Sandboxes: uploads and outputs stay inside the job's own directory."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms.pool.schedd.sandbox import (
    SandboxError,
    SandboxTooLarge,
    Spool,
    confined_path,
    confined_relpath,
    extract_archive,
    make_archive,
)


def _tar(members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for m in members:
            payload = (data or {}).get(m.name)
            if payload is not None:
                m.size = len(payload)
                tar.addfile(m, io.BytesIO(payload))
            else:
                tar.addfile(m)
    buf.seek(0)
    return buf


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/etc/passwd", "", ".", "a\\..\\b", "a\x00b", "x/\n"])
def test_bad_relpaths_are_refused(bad: str) -> None:
    with pytest.raises(SandboxError):
        confined_relpath(bad)


@given(st.lists(st.text(alphabet="abcXYZ09_-.", min_size=1, max_size=8), min_size=1, max_size=4))
def test_confined_relpath_never_escapes(parts: list[str]) -> None:
    name = "/".join(parts)
    try:
        rel = confined_relpath(name)
    except SandboxError:
        assert ".." in parts or all(p in (".",) for p in parts)
        return
    assert ".." not in rel.parts
    assert not rel.is_absolute()


def test_symlink_on_disk_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "sb"
    root.mkdir()
    (root / "link").symlink_to("/etc")
    with pytest.raises(SandboxError, match="symbolic link"):
        confined_path(root, "link/passwd")


def test_round_trip_archive(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("hello")
    (src / "sub" / "b.bin").write_bytes(b"\x00\x01" * 100)
    exe = src / "run.sh"
    exe.write_text("#!/bin/sh\necho hi\n")
    exe.chmod(0o755)
    blob = make_archive([("a.txt", src / "a.txt"), ("sub", src / "sub"), ("run.sh", exe)])
    dest = tmp_path / "dest"
    written = extract_archive(io.BytesIO(blob), dest, max_bytes=1 << 20)
    assert sorted(written) == ["a.txt", "run.sh", "sub/b.bin"]
    assert (dest / "a.txt").read_text() == "hello"
    assert (dest / "run.sh").stat().st_mode & 0o111


def test_traversal_member_refused_and_nothing_left(tmp_path: Path) -> None:
    good = tarfile.TarInfo("ok.txt")
    evil = tarfile.TarInfo("../../evil.txt")
    stream = _tar([good, evil], {"ok.txt": b"fine", "../../evil.txt": b"bad"})
    dest = tmp_path / "d"
    with pytest.raises(SandboxError, match="leaves the sandbox"):
        extract_archive(stream, dest, max_bytes=1000)
    assert not dest.exists()
    assert not (tmp_path.parent / "evil.txt").exists()


def test_links_refused(tmp_path: Path) -> None:
    link = tarfile.TarInfo("l")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    with pytest.raises(SandboxError, match="regular file"):
        extract_archive(_tar([link]), tmp_path / "d", max_bytes=1000)


def test_size_limit(tmp_path: Path) -> None:
    big = tarfile.TarInfo("big")
    with pytest.raises(SandboxTooLarge):
        extract_archive(_tar([big], {"big": b"x" * 5000}), tmp_path / "d", max_bytes=4096)


def test_garbage_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="not a valid tar"):
        extract_archive(io.BytesIO(b"this is not a tar file at all" * 20), tmp_path / "d", max_bytes=10_000)


def test_spool_output_confined(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    out = tmp_path / "out.txt"
    out.write_text("result")
    spool.store_output(7, 0, io.BytesIO(make_archive([("out.txt", out)])))
    assert spool.output_files(7, 0) == ["out.txt"]
    assert spool.output_file(7, 0, "out.txt").read_text() == "result"
    with pytest.raises(SandboxError):
        spool.output_file(7, 0, "../../../etc/passwd")
    with pytest.raises(SandboxError, match="no output file"):
        spool.output_file(7, 0, "missing.txt")
