"""An executable that is a symbolic link is sent as its content; other input links are refused.

Regression: ``executable = /bin/sh`` (on Debian /bin -> usr/bin and sh -> dash) with the
default ``transfer_executable = true`` used to pack the link, which the archive builder
dropped silently, so the job was held with "No such file".
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.pool.schedd.client import executable_source, input_files
from gwms.pool.schedd.sandbox import SandboxError, extract_archive, make_archive

SCRIPT = b"#!/bin/sh\necho hello from the real file\n"


def _script(tmp: Path) -> Path:
    real = tmp / "real" / "tool.sh"
    real.parent.mkdir(parents=True, exist_ok=True)
    real.write_bytes(SCRIPT)
    os.chmod(real, 0o755)
    return real


def _members(blob: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tar:
        return {m.name: m for m in tar.getmembers()}


def test_a_linked_executable_is_packed_as_a_regular_file_under_the_link_name(tmp_path: Path) -> None:
    real = _script(tmp_path)
    link = tmp_path / "bin" / "sh"
    link.parent.mkdir()
    link.symlink_to(real)
    files = input_files([{"Cmd": str(link), "Iwd": str(tmp_path)}])
    assert files == [("sh", real)]
    blob = make_archive(files)
    members = _members(blob)
    assert list(members) == ["sh"]
    assert members["sh"].isfile() and members["sh"].size == len(SCRIPT)
    dest = tmp_path / "sandbox"
    assert extract_archive(io.BytesIO(blob), dest, max_bytes=1 << 20) == ["sh"]
    assert (dest / "sh").read_bytes() == SCRIPT
    assert os.access(dest / "sh", os.X_OK)


def test_a_link_through_a_linked_directory_and_a_chain_of_links(tmp_path: Path) -> None:
    """/bin -> usr/bin, then sh -> dash: a directory link and a relative file link."""
    real = _script(tmp_path)
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "usr" / "bin" / "dash").symlink_to(real)
    (tmp_path / "usr" / "bin" / "sh").symlink_to("dash")
    (tmp_path / "bin").symlink_to("usr/bin")
    exe = tmp_path / "bin" / "sh"
    assert executable_source(exe) == real.resolve()
    blob = make_archive(input_files([{"Cmd": str(exe), "Iwd": str(tmp_path)}]))
    assert _members(blob)["sh"].isfile()


def test_a_relative_linked_executable_uses_the_iwd(tmp_path: Path) -> None:
    real = _script(tmp_path)
    (tmp_path / "run").symlink_to(real)
    assert input_files([{"Cmd": "run", "Iwd": str(tmp_path)}]) == [("run", real)]


def test_a_plain_executable_is_unchanged(tmp_path: Path) -> None:
    real = _script(tmp_path)
    assert executable_source(real) == real
    assert input_files([{"Cmd": str(real), "Iwd": str(tmp_path)}]) == [("tool.sh", real)]


def test_a_dangling_linked_executable_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    with pytest.raises(SandboxError, match="leads nowhere"):
        input_files([{"Cmd": str(tmp_path / "gone"), "Iwd": str(tmp_path)}])


def test_an_executable_linked_to_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "exe").symlink_to(tmp_path / "d")
    with pytest.raises(SandboxError, match="not a regular file"):
        input_files([{"Cmd": str(tmp_path / "exe"), "Iwd": str(tmp_path)}])


def test_not_transferred_executables_are_not_looked_at(tmp_path: Path) -> None:
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    assert input_files([{"Cmd": str(tmp_path / "gone"), "TransferExecutable": False, "Iwd": str(tmp_path)}]) == []


def test_linked_user_inputs_are_still_refused(tmp_path: Path) -> None:
    real = _script(tmp_path)
    (tmp_path / "data.txt").symlink_to(real)
    with pytest.raises(SandboxError, match="symbolic link"):
        input_files([{"Cmd": str(real), "TransferInput": "data.txt", "Iwd": str(tmp_path)}])
    with pytest.raises(SandboxError, match="symbolic link"):
        input_files([{"Cmd": str(real), "In": "data.txt", "Iwd": str(tmp_path)}])


def test_links_inside_an_input_directory_are_not_packed(tmp_path: Path) -> None:
    real = _script(tmp_path)
    d = tmp_path / "inputs"
    d.mkdir()
    (d / "ok.txt").write_text("ok")
    (d / "secret").symlink_to("/etc/hostname")
    blob = make_archive(input_files([{"Cmd": str(real), "TransferInput": "inputs", "Iwd": str(tmp_path)}]))
    names = set(_members(blob))
    assert "inputs/ok.txt" in names and "inputs/secret" not in names


def test_an_archive_with_a_link_member_is_refused_on_extraction(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("sh")
        info.type = tarfile.SYMTYPE
        info.linkname = "/usr/bin/dash"
        tar.addfile(info)
    buf.seek(0)
    with pytest.raises(SandboxError, match="not a regular file"):
        extract_archive(buf, tmp_path / "x", max_bytes=1 << 20)


@settings(max_examples=25, deadline=None)
@given(depth=st.integers(1, 5), relative=st.booleans())
def test_any_chain_of_links_resolves_to_the_content(tmp_path_factory: pytest.TempPathFactory, depth: int,
                                                   relative: bool) -> None:
    tmp = tmp_path_factory.mktemp("chain")
    real = _script(tmp)
    target = real
    for i in range(depth):
        link = tmp / f"l{i}"
        link.symlink_to(os.path.relpath(target, tmp) if relative else target)
        target = link
    files = input_files([{"Cmd": str(target), "Iwd": str(tmp)}])
    assert files == [(target.name, real.resolve())]
    members = _members(make_archive(files))
    assert members[target.name].isfile() and members[target.name].size == len(SCRIPT)
