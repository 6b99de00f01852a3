"""The .out parser: header, markers, stats; tolerant of what a killed glidein leaves."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.monitor.outfile import parse_identity, parse_out
from gwms.monitor.samples import make_job, make_world

WORLD = make_world(21)

ORIGINAL_OUT = """\
Starting glidein_startup.sh at Sun May 12 10:00:00 UTC 2024 (1715508000)
script_checksum   = 'd41d8cd98f00b204e9800998ecf8427e  glidein_startup.sh'
debug_mode        = '0'
condorg_cluster   = '4321'
condorg_subcluster= '7'
condorg_schedd    = 'schedd_glideins4@gfactory-2.opensciencegrid.org'
glidein_uuid      = '8a6e5a4e-2a4b-4b52-9e51-0c7b8e1f2d3c'
glidein_credential_id = 'abc'
glidein_factory   = 'OSG'
glidein_name      = 'gfactory_instance'
glidein_entry     = 'OSG_US_MWT2_gk01'
client_name       = 'osg-flock.main'
client_group      = 'main'
work_dir          = 'TMPDIR'

Running on wn-12.example.edu
System: Linux wn-12.example.edu 5.14.0 #1 SMP x86_64 GNU/Linux
As: uid=12345(osgpilot) gid=5000(osg) groups=5000(osg),10(wheel)
PID: 4242

=== Last script starting Sun May 12 10:01:05 UTC 2024 (1715508065) after validating for 65 ===
=== Condor starting Sun May 12 10:01:06 UTC 2024 (1715508066) ===
=== Condor ended Sun May 12 11:00:00 UTC 2024 (1715511600) after 3534 ===

=== Stats of main ===
Total number of activations/claims: 3
Total     jobs    3 utilization   3400
Total goodZ jobs    2 ( 66%) utilization   3000 ( 88%)
Total badOther jobs    1 ( 33%) utilization    400 ( 12%)
=== End Stats of main ===
=== Stats of monitor ===
Total     jobs    1 utilization     10
=== End Stats of monitor ===
=== Glidein ending Sun May 12 11:00:05 UTC 2024 (1715511605) with code 0 after 3605 ===

=== XML description of glidein activity ===
<OSGTestResult id="glidein_startup.sh"/>
=== End XML description of glidein activity ===
"""


def test_parses_every_field_of_a_complete_file() -> None:
    s = parse_out(ORIGINAL_OUT)
    assert s.problems == []
    assert s.start_epoch == 1715508000 and s.start_date == "Sun May 12 10:00:00 UTC 2024"
    assert s.glidein_uuid == "8a6e5a4e-2a4b-4b52-9e51-0c7b8e1f2d3c"
    assert s.factory_job_id == "4321.7" and s.condorg_cluster == 4321 and s.condorg_subcluster == 7
    assert s.factory_schedd == "schedd_glideins4@gfactory-2.opensciencegrid.org"
    assert (
        s.entry == "OSG_US_MWT2_gk01"
        and s.factory == "OSG"
        and s.glidein_name == "gfactory_instance"
    )
    assert (
        s.client_name == "osg-flock.main"
        and s.client_group == "main"
        and s.frontend_name == "osg-flock"
    )
    assert s.host == "wn-12.example.edu" and s.system.startswith("Linux wn-12")
    assert (s.user, s.uid, s.group, s.gid, s.pid) == ("osgpilot", 12345, "osg", 5000, 4242)
    assert s.last_script_epoch == 1715508065 and s.validation_seconds == 65
    assert (s.condor_start_epoch, s.condor_end_epoch, s.condor_seconds) == (
        1715508066,
        1715511600,
        3534,
    )
    assert [b.slot for b in s.stats] == ["main", "monitor"]
    assert s.stats[0].totals == {"": (3, 3400), "goodZ": (2, 3000), "badOther": (1, 400)}
    assert s.jobs_run == 4 and s.activations == 3
    assert (s.end_epoch, s.exit_code, s.total_seconds) == (1715511605, 0, 3605)
    assert s.finished and s.xml.strip() == '<OSGTestResult id="glidein_startup.sh"/>'
    d = s.to_dict()
    assert d["factory_job_id"] == "4321.7" and d["stats"][0]["totals"][""] == [3, 3400]


def test_a_killed_glidein_still_gives_what_it_has() -> None:
    cut = ORIGINAL_OUT[: ORIGINAL_OUT.index("=== Condor ended")]
    s = parse_out(cut)
    assert s.glidein_uuid and s.entry == "OSG_US_MWT2_gk01" and s.condor_start_epoch == 1715508066
    assert s.exit_code is None and s.end_epoch is None and not s.finished
    assert any("Glidein ending" in p for p in s.problems)
    assert parse_out("").problems  # nothing at all: problems, no exception


def test_generated_files_parse_to_what_was_written() -> None:
    for seed in range(15):
        job = make_job(WORLD, seed, lines=5)
        s = parse_out(job.out.encode())
        d = s.to_dict()
        for key, value in job.expected.items():
            assert d[key] == value, (seed, key)
        assert s.problems == []


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=0, max_value=len(ORIGINAL_OUT)), junk=st.text(max_size=40))
def test_any_prefix_parses_without_raising(cut: int, junk: str) -> None:
    s = parse_out(ORIGINAL_OUT[:cut] + junk)
    full = parse_out(ORIGINAL_OUT)
    # every marker value found agrees with the complete file
    for name in (
        "start_epoch",
        "validation_seconds",
        "condor_start_epoch",
        "condor_seconds",
        "exit_code",
        "end_epoch",
    ):
        got = getattr(s, name)
        if got is not None:
            assert got == getattr(full, name), name


def test_anonymized_identity_lines_parse() -> None:
    ident = parse_identity(
        "uid=n-k1-abcdefghijkl(u-k1-zyxwvutsrq) gid=n-k1-qqq(g-k1-rrr) groups=5000(osg),10(wheel)"
    )
    assert ident["uid"] == "n-k1-abcdefghijkl" and ident["user"] == "u-k1-zyxwvutsrq"
    assert ident["gid"] == "n-k1-qqq" and ident["group"] == "g-k1-rrr"
    assert ident["groups"] == [(5000, "osg"), (10, "wheel")]
