"""Client-side pieces of submission: splitting a cluster, naming its input files."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms.pool.schedd.client import input_files, split_common
from gwms.pool.schedd.sandbox import SandboxError
from gwms.pool.schedd.service import merge_procs, parse_job_ids, strip_schedd_owned

values = st.one_of(st.integers(-5, 5), st.text(alphabet="ab", max_size=2), st.booleans())
ads = st.dictionaries(st.sampled_from(["A", "B", "C", "D", "Cmd"]), values, max_size=5)


@given(st.lists(ads, min_size=1, max_size=6))
def test_split_then_merge_gives_the_jobs_back(jobs: list[dict]) -> None:
    common, procs = split_common(jobs)
    assert merge_procs(common, procs) == jobs
    # what is common is really in every job with that value
    for key, value in common.items():
        assert all(j[key] == value for j in jobs)


def test_split_keeps_the_per_proc_part_small() -> None:
    jobs = [{"Cmd": "/bin/x", "RequestMemory": 2048, "Arguments": f"n {i}"} for i in range(1000)]
    common, procs = split_common(jobs)
    assert common == {"Cmd": "/bin/x", "RequestMemory": 2048}
    assert procs[7] == {"Arguments": "n 7"}


def test_strip_schedd_owned_ignores_case() -> None:
    ad = {"owner": "x", "JOBSTATUS": 2, "ClusterId": 3, "Cmd": "/bin/true", "qdate": 1}
    assert strip_schedd_owned(ad) == {"Cmd": "/bin/true"}


def test_parse_job_ids() -> None:
    assert parse_job_ids(["12", "12.3", " 7.0 "]) == ([(12, 3), (7, 0)], [12])
    for bad in ["x", "1.x", "0", "-1.0", "1.2.3"]:
        with pytest.raises(Exception):
            parse_job_ids([bad])


def test_input_files_resolve_against_iwd(tmp_path: Path) -> None:
    (tmp_path / "run.sh").write_text("x")
    (tmp_path / "in.txt").write_text("x")
    (tmp_path / "d").mkdir()
    jobs = [
        {"Cmd": "run.sh", "Iwd": str(tmp_path), "In": "in.txt", "TransferInput": "d/, https://x.org/f"},
        {"Cmd": str(tmp_path / "run.sh"), "Iwd": str(tmp_path), "In": "/dev/null"},
    ]
    assert input_files(jobs) == [("d", tmp_path / "d"), ("in.txt", tmp_path / "in.txt"), ("run.sh", tmp_path / "run.sh")]
    # not transferred: the executable stays where it is on the execute side
    assert input_files([{"Cmd": "/bin/true", "TransferExecutable": False, "Iwd": str(tmp_path)}]) == []


def test_input_files_errors(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "f").write_text("1")
    (tmp_path / "b" / "f").write_text("2")
    with pytest.raises(SandboxError, match="both called 'f'"):
        input_files([{"Cmd": "/bin/true", "TransferExecutable": False, "Iwd": str(tmp_path), "TransferInput": "a/f,b/f"}])
    with pytest.raises(SandboxError, match="does not exist"):
        input_files([{"Cmd": "missing.sh", "Iwd": str(tmp_path)}])
