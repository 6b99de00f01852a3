"""Real-looking submit files, as users of HTCondor pools write them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gwms.pool.schedd.submit import expand_submit, parse_submit
from gwms.pool.schedd.submit_quoting import job_argv, job_environment


def expand(text: str, base_dir: Path, **kw: Any) -> list[dict[str, Any]]:
    desc = parse_submit(text, source="example.sub")
    return expand_submit(desc, cluster_id=1234, owner="cmsuser", now=1e9, base_dir=base_dir, **kw)


def test_glideinwms_user_job(tmp_path: Path) -> None:
    text = """
universe              = vanilla
executable            = cms_job.sh
arguments             = $(Cluster) $(Process)
transfer_input_files  = cms_job.sh, pset.py
output                = logs/cms.$(Cluster).$(Process).out
error                 = logs/cms.$(Cluster).$(Process).err
log                   = logs/cms.$(Cluster).log
x509userproxy         = /tmp/x509up_u1000
use_x509userproxy     = true
request_cpus          = 8
request_memory        = 16000
request_disk          = 20 GB
+DESIRED_Sites        = "T2_US_Nebraska,T2_US_Wisconsin"
+SingularityImage     = "/cvmfs/singularity.opensciencegrid.org/osgvo-el8:latest"
+MaxWallTimeMins      = 1440
Requirements          = (TARGET.GLIDEIN_Site =!= UNDEFINED) && \\
                        stringListMember(TARGET.GLIDEIN_CMSSite, DESIRED_Sites)
periodic_remove       = (JobStatus == 5) && (time() - EnteredCurrentStatus > 86400)
queue 3
"""
    jobs = expand(text, tmp_path)
    assert [job_argv(j) for j in jobs] == [["1234", str(p)] for p in range(3)]
    job = jobs[2]
    assert job["Out"] == "logs/cms.1234.2.out"
    assert job["UserLog"] == str(tmp_path / "logs/cms.1234.log")
    assert job["X509UserProxy"] == "/tmp/x509up_u1000"
    assert (job["RequestCpus"], job["RequestMemory"], job["RequestDisk"]) == (8, 16000, 20971520)
    assert job["DESIRED_Sites"] == "T2_US_Nebraska,T2_US_Wisconsin"
    assert job["MaxWallTimeMins"] == 1440
    assert job["Requirements"] == (
        "/Expr(((TARGET.GLIDEIN_Site =!= UNDEFINED) && "
        + " " * 24  # a continuation line keeps its indentation
        + "stringListMember(TARGET.GLIDEIN_CMSSite, DESIRED_Sites)) && "
        "(TARGET.Memory >= RequestMemory) && (TARGET.Cpus >= RequestCpus)"
        " && (TARGET.Disk >= RequestDisk))/"
    )
    assert job["PeriodicRemove"] == (
        "/Expr((JobStatus == 5) && (time() - EnteredCurrentStatus > 86400))/"
    )


def test_lxbatch_style_job_with_getenv_and_flavour(tmp_path: Path) -> None:
    text = """
executable  = $(filename)
arguments   = $(ClusterId)$(ProcId)$Fnx(filename)
output      = $(filename).out
error       = $(filename).err
log         = $(filename).log
RequestCpus = 4
getenv      = True
+JobFlavour = "workday"
queue filename matching *.sh
"""
    for name in ("fit_a.sh", "fit_b.sh", "notes.txt"):
        (tmp_path / name).write_text("#!/bin/sh\n")
    jobs = expand(text, tmp_path, env={"USER": "cmsuser", "PATH": "/usr/bin"})
    assert [j["Cmd"] for j in jobs] == [str(tmp_path / "fit_a.sh"), str(tmp_path / "fit_b.sh")]
    assert [j["Args"] for j in jobs] == ["12340fit_a.sh", "12341fit_b.sh"]
    assert [j["Out"] for j in jobs] == ["fit_a.sh.out", "fit_b.sh.out"]
    assert {j["RequestCpus"] for j in jobs} == {4}
    assert {j["JobFlavour"] for j in jobs} == {"workday"}
    assert job_environment(jobs[0]) == {"USER": "cmsuser", "PATH": "/usr/bin"}


def test_parameter_sweep_from_a_file_with_per_row_memory(tmp_path: Path) -> None:
    (tmp_path / "sweep.csv").write_text("0.1, 1GB, small run\n0.5, 4GB, large run\n")
    text = """
executable     = /usr/bin/python3
arguments      = "sweep.py --alpha $(alpha) --label '$(label)'"
request_memory = $(memory)
initialdir     = sweep/$(Row)
output         = out.txt
batch_name     = "alpha sweep"
queue alpha, memory, label from sweep.csv
"""
    jobs = expand(text, tmp_path)
    assert [job_argv(j) for j in jobs] == [
        ["sweep.py", "--alpha", "0.1", "--label", "small run"],
        ["sweep.py", "--alpha", "0.5", "--label", "large run"],
    ]
    assert [j["RequestMemory"] for j in jobs] == [1024, 4096]
    assert [j["Iwd"] for j in jobs] == [str(tmp_path / "sweep/0"), str(tmp_path / "sweep/1")]
    assert {j["Cmd"] for j in jobs} == {"/usr/bin/python3"}
    assert {j["JobBatchName"] for j in jobs} == {"alpha sweep"}


def test_one_file_several_clusters_of_settings(tmp_path: Path) -> None:
    text = """
# common settings
executable     = simulate
log            = sim.log
request_memory = 1G

# the short runs
arguments      = --events 100 --seed $(Process)
output         = short.$(Process).out
queue 2

# the long runs need more memory and a different input
arguments      = --events 100000 --seed $(Process)
output         = long.$(Process).out
request_memory = 8G
input          = long.cfg
queue 2
"""
    jobs = expand(text, tmp_path)
    assert [(j["ProcId"], j["Out"], j["RequestMemory"], j["In"]) for j in jobs] == [
        (0, "short.0.out", 1024, "/dev/null"),
        (1, "short.1.out", 1024, "/dev/null"),
        (2, "long.2.out", 8192, "long.cfg"),
        (3, "long.3.out", 8192, "long.cfg"),
    ]
    assert [job_argv(j)[-1] for j in jobs] == ["0", "1", "2", "3"]
