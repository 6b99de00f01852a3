"""The validation scripts shipped by default, run with sh against a real glidein_config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gwms.factory.stage import DEFAULT_VALIDATION
from gwms.glidein import pilot as P

SCRIPTS = {p.name: p for p in DEFAULT_VALIDATION}


def make_config(tmp: Path, **values: str) -> Path:
    helper = tmp / "add_config_line.source"
    helper.write_text(P.ADD_CONFIG_LINE_SOURCE)
    config = tmp / "glidein_config"
    base = {"GLIDEIN_WORK_DIR": str(tmp), "GLIDEIN_PYTHON": sys.executable, "ADD_CONFIG_LINE_SOURCE": str(helper),
            "CONDOR_VARS_FILE": str(tmp / "condor_vars.lst")}
    base.update(values)
    config.write_text("".join(P.config_line(k, v) for k, v in base.items()))
    (tmp / "condor_vars.lst").write_text("")
    return config


def run(name: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", str(SCRIPTS[name]), str(config)], capture_output=True, text=True, timeout=30,
                          cwd=config.parent)


def published(config: Path) -> list[str]:
    values = P.parse_config(config.read_text())
    return P.published_attrs(values, P.parse_vars((config.parent / "condor_vars.lst").read_text()))


def test_the_default_scripts_exist_in_order() -> None:
    assert list(SCRIPTS) == ["check_python.sh", "check_workdir.sh", "check_disk.sh", "check_cvmfs.sh"]
    for path in DEFAULT_VALIDATION:
        assert path.read_text().startswith("#!/bin/sh\n")
        subprocess.run(["sh", "-n", str(path)], check=True)


def test_check_python_passes_and_publishes_the_version(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    result = run("check_python.sh", config)
    assert result.returncode == 0, result.stderr
    version = "%d.%d.%d" % sys.version_info[:3]
    assert published(config) == [f'GLIDEIN_Python_Version="{version}"']


def test_check_python_fails_for_a_too_old_python(tmp_path: Path) -> None:
    result = run("check_python.sh", make_config(tmp_path, GLIDEIN_MIN_PYTHON="99.1"))
    assert result.returncode == 1 and "is older than 99.1" in result.stderr
    result = run("check_python.sh", make_config(tmp_path, GLIDEIN_PYTHON=str(tmp_path / "nopython")))
    assert result.returncode == 1 and "cannot run" in result.stderr


def test_check_workdir(tmp_path: Path) -> None:
    ok = run("check_workdir.sh", make_config(tmp_path))
    assert ok.returncode == 0 and not list(tmp_path.glob(".gwms_probe_*"))
    bad = run("check_workdir.sh", make_config(tmp_path, GLIDEIN_WORK_DIR=str(tmp_path / "missing")))
    assert bad.returncode == 1 and "cannot write in" in bad.stderr


def test_check_disk(tmp_path: Path) -> None:
    config = make_config(tmp_path, GLIDEIN_MIN_DISK_MB="1")
    ok = run("check_disk.sh", config)
    assert ok.returncode == 0, ok.stderr
    [attr] = published(config)
    assert attr.startswith("GLIDEIN_Disk_Free_MB=") and int(attr.split("=")[1]) >= 1
    bad = run("check_disk.sh", make_config(tmp_path, GLIDEIN_MIN_DISK_MB="999999999"))
    assert bad.returncode == 1 and "MB needed" in bad.stderr
    odd = run("check_disk.sh", make_config(tmp_path, GLIDEIN_MIN_DISK_MB="lots"))
    assert odd.returncode == 1 and "whole number" in odd.stderr


@pytest.mark.parametrize("mode, repos, code, attrs", [
    ("OPTIONAL", "", 0, ["HAS_CVMFS=true"]),
    ("REQUIRED", "cms.cern.ch,oasis.opensciencegrid.org", 0,
     ["HAS_CVMFS_cms_cern_ch=true", "HAS_CVMFS_oasis_opensciencegrid_org=true", "HAS_CVMFS=true"]),
    ("optional", "cms.cern.ch,missing-repo.org", 0,
     ["HAS_CVMFS_cms_cern_ch=true", "HAS_CVMFS_missing_repo_org=false", "HAS_CVMFS=false"]),
    ("REQUIRED", "missing-repo.org", 1, None),
    ("NEVER", "missing-repo.org", 0, ["HAS_CVMFS=false"]),
    ("SOMETIMES", "", 1, None),
])
def test_check_cvmfs(tmp_path: Path, mode: str, repos: str, code: int, attrs: list[str] | None) -> None:
    root = tmp_path / "cvmfs"
    for repo in ("cms.cern.ch", "oasis.opensciencegrid.org"):
        (root / repo).mkdir(parents=True)
        (root / repo / "README").write_text("x")
    config = make_config(tmp_path, GLIDEIN_CVMFS=mode, CVMFS_REPOS_LIST=repos, GLIDEIN_CVMFS_ROOT=str(root))
    result = run("check_cvmfs.sh", config)
    assert result.returncode == code, result.stderr
    if attrs is not None:
        assert published(config) == attrs
    else:
        assert "check_cvmfs:" in result.stderr


def test_check_cvmfs_without_any_mount(tmp_path: Path) -> None:
    config = make_config(tmp_path, GLIDEIN_CVMFS_ROOT=str(tmp_path / "nothing"))
    result = run("check_cvmfs.sh", config)
    assert result.returncode == 0 and published(config) == ["HAS_CVMFS=false"]
    required = run("check_cvmfs.sh", make_config(tmp_path, GLIDEIN_CVMFS="REQUIRED",
                                                 GLIDEIN_CVMFS_ROOT=str(tmp_path / "nothing")))
    assert required.returncode == 1 and "required but missing" in required.stderr
