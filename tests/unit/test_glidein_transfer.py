"""Input unpacking and output packing on the execute side (gwms.glidein.transfer)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms.glidein.transfer import (
    TransferError,
    choose_outputs,
    confined_name,
    extract_input,
    pack_outputs,
    std_file_name,
    top_level_files,
)


def _tar(members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None, mode: str = "w") -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for m in members:
            payload = (data or {}).get(m.name, b"")
            if m.isreg():
                m.size = len(payload)
            tf.addfile(m, io.BytesIO(payload) if m.isreg() else None)
    buf.seek(0)
    return buf


def _file(name: str, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info


def test_extract_keeps_modes_and_directories(tmp_path: Path) -> None:
    d = tarfile.TarInfo("sub")
    d.type = tarfile.DIRTYPE
    archive = _tar([_file("run.sh", 0o755), d, _file("sub/data.txt")], {"run.sh": b"#!/bin/sh\n", "sub/data.txt": b"x"}, mode="w:gz")
    names = extract_input(archive, tmp_path)
    assert names == ["run.sh", "sub/data.txt"]
    assert os.access(tmp_path / "run.sh", os.X_OK)
    assert not os.access(tmp_path / "sub" / "data.txt", os.X_OK)
    assert (tmp_path / "sub" / "data.txt").read_bytes() == b"x"


@pytest.mark.parametrize("name", ["/etc/passwd", "../up", "a/../../up", ""])
def test_extract_refuses_names_outside_the_sandbox(tmp_path: Path, name: str) -> None:
    with pytest.raises(TransferError):
        extract_input(_tar([_file(name or "x")]) if name else io.BytesIO(b""), tmp_path / "sb")
    assert not (tmp_path / "up").exists()


def test_extract_refuses_links_and_garbage(tmp_path: Path) -> None:
    link = tarfile.TarInfo("evil")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    with pytest.raises(TransferError, match="not a regular file"):
        extract_input(_tar([link]), tmp_path)
    with pytest.raises(TransferError, match="cannot be read"):
        extract_input(io.BytesIO(b"this is not a tar file at all" * 50), tmp_path)
    big = _tar([_file("a")], {"a": b"x" * 100})
    with pytest.raises(TransferError, match="more than"):
        extract_input(big, tmp_path, max_bytes=10)


@given(st.text(alphabet=st.sampled_from(list("ab./")), max_size=12))
def test_confined_names_stay_inside(name: str) -> None:
    try:
        norm = confined_name(name)
    except TransferError:
        return
    assert not norm.startswith("/") and norm != ".." and not norm.startswith("../")


def test_std_file_names() -> None:
    assert std_file_name("/dev/null") is None and std_file_name(None) is None and std_file_name("") is None
    assert std_file_name("out/job.out") == "job.out" and std_file_name("/abs/x.err") == "x.err"


listings = st.dictionaries(st.sampled_from(["a", "b", "c", "out", "err", ".job.ad"]), st.tuples(st.integers(0, 3), st.integers(0, 3)))


@given(listings, listings)
def test_default_outputs_are_new_or_changed_top_level_files(before: dict, after: dict) -> None:
    names, bad = choose_outputs(before=before, after=after, transfer_output=None, std_files=["out"], excluded=[".job.ad"])
    assert bad == []
    assert len(names) == len(set(names))
    assert ".job.ad" not in names
    for n, now in after.items():
        if n == "out":
            assert n in names
        elif n != ".job.ad":
            assert (n in names) == (before.get(n) != now)
    assert set(names) <= set(after)


def test_transfer_output_list() -> None:
    names, bad = choose_outputs(
        before={}, after={"out": (1, 1), "x": (1, 1)}, transfer_output="res.txt, dir/ ,../etc,out",
        std_files=["out", "missing"],
    )
    assert names == ["out", "res.txt", "dir"] and bad == ["../etc"]


def test_pack_outputs_skips_links(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("A")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b.txt").write_text("B")
    (tmp_path / "d" / "secret").symlink_to("/etc/hostname")
    (tmp_path / "link").symlink_to("/etc/hostname")
    buf = io.BytesIO()
    packed = pack_outputs(tmp_path, ["a.txt", "d", "link"], buf, compress=True)
    assert packed == ["a.txt", "d/b.txt"]
    buf.seek(0)
    with tarfile.open(fileobj=buf, mode="r:gz") as tf:
        assert sorted(m.name for m in tf if m.isreg()) == ["a.txt", "d/b.txt"]
    with pytest.raises(TransferError, match="does not exist"):
        pack_outputs(tmp_path, ["nothing"], io.BytesIO())
    assert set(top_level_files(tmp_path)) == {"a.txt"}
