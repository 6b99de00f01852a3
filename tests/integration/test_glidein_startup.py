"""The real glidein_startup.sh, run with sh against a stage area served on 127.0.0.1.

The startd agent is either ``glidein_fake_agent.py`` (via ``GWMS_GLIDEIN_AGENT``) or, in
the last test, the real zipapp from the stage area joining a fake pool and running a job.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from startd_fake_pool import COMPLETED, FakePool

from gwms.factory.stage import EntryStage, StageArea, build_stage_area, glidein_argv, serve_stage
from gwms.monitor.outfile import parse_out
from gwms.monitor.sections import split_err
from gwms.security.hybrid import RsaKeyPair

pytestmark = pytest.mark.integration

FAKE_AGENT = Path(__file__).with_name("glidein_fake_agent.py")
KEY = RsaKeyPair.generate("fk", 2048)
HEADER_LINE = re.compile(r"^(?P<key>[a-z_]+)\s*= '(?P<value>[^\n]*)'$", re.MULTILINE)
SECTION = re.compile(
    r"^(?P<name>[^\n]+)\n======== (?:[^\n]*\| )?gzip \| uuencode =============\n"
    r"begin-base64 644 -\n(?P<b64>(?:[A-Za-z0-9+/=]+\n)*)====\n\n",
    re.MULTILINE,
)
XML_SECTION = re.compile(
    r"^=== Encoded XML description of glidein activity ===\nbegin-base64 644 -\n(?P<b64>(?:[A-Za-z0-9+/=]+\n)*)"
    r"====\n=== End encoded XML description of glidein activity ===\n",
    re.MULTILINE,
)


def oldest_python() -> str | None:
    """A Python 3.9 here, if there is one (worker nodes may have nothing newer)."""
    for exe in sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3"))) + [
            shutil.which("python3.9") or ""]:
        if exe and os.access(exe, os.X_OK):
            return exe
    return None


def gunzip_members(data: bytes) -> list[bytes]:
    out = []
    while data:
        d = zlib.decompressobj(31)
        out.append(d.decompress(data))
        data = d.unused_data
    return out


def sections_of(err: str) -> dict[str, list[bytes]]:
    """Every embedded log section, decoded with base64 + gzip only."""
    return {m.group("name"): gunzip_members(base64.b64decode("".join(m.group("b64").split())))
            for m in SECTION.finditer(err)}


@dataclass
class Run:
    code: int
    out: str
    err: str
    seconds: float


@pytest.fixture(scope="module")
def agent_pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gwms.glidein.zipbuild import build_zipapp

    return build_zipapp(tmp_path_factory.mktemp("pyz") / "gwms-startd.pyz")


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory, agent_pyz: Path) -> Iterator[tuple[StageArea, str]]:
    scripts = tmp_path_factory.mktemp("scripts")
    bad = scripts / "check_site.sh"
    bad.write_text("#!/bin/sh\necho 'checking the site'\necho 'check_site: /scratch is full' >&2\nexit 1\n")
    note = scripts / "note.py"
    note.write_text("import sys\nwith open(sys.argv[1], 'a') as f:\n    f.write('SITE_NOTE from python\\n')\n"
                    "with open([l.split(' ', 1)[1].strip() for l in open(sys.argv[1]) "
                    "if l.startswith('CONDOR_VARS_FILE ')][-1], 'a') as f:\n    f.write('SITE_NOTE S - + N Y +\\n')\n")
    area = build_stage_area(
        tmp_path_factory.mktemp("stage"), factory_name="gfactory", signing_key=KEY, agent_zipapp=agent_pyz,
        config={"GLIDEIN_MIN_DISK_MB": 1},
        entries={
            "good": EntryStage(validation=(note,), attrs={"GLIDEIN_Site": "GoodSite", "GLIDEIN_CPUS": 2},
                               config={"GLIDEIN_Entry_Start": "TARGET.Owner =!= \"mallory\""}),
            "broken": EntryStage(validation=(bad,), attrs={"GLIDEIN_Site": "BrokenSite"}),
        },
    )
    url, stop = serve_stage(area.dir)
    yield area, url
    stop()


def environment(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.lower().endswith("_proxy") and not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    env.update(GWMS_GLIDEIN_AGENT=str(FAKE_AGENT), GWMS_FAKE_AGENT_RECORD=str(tmp / "record.jsonl"))
    env.update(extra)
    return env


def run_glidein(argv: list[str], env: dict[str, str], timeout: float = 60) -> Run:
    t = time.monotonic()
    p = subprocess.run(argv, env=env, capture_output=True, timeout=timeout)
    return Run(p.returncode, p.stdout.decode(), p.stderr.decode(), time.monotonic() - t)


def argv_for(area: StageArea, url: str, tmp: Path, entry: str = "good", **kw) -> list[str]:
    work = tmp / "work"
    work.mkdir(exist_ok=True)
    kw.setdefault("token_file_or_value", "pool-token-123")
    kw.setdefault("hold_seconds", 1)
    return glidein_argv(area, url, entry=entry, client="fe1.main", glidein_name="gfactory_instance",
                        collector_url="http://127.0.0.1:9", cluster=12, proc=3, schedd="schedd_glideins1@factory",
                        credential_id="cred42", work_dir=str(work), **kw)


def records(tmp: Path) -> list[dict]:
    path = tmp / "record.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def agent_options(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    opts, attrs = {}, []
    for flag, value in zip(argv, argv[1:]):
        if flag == "--attr":
            attrs.append(value)
        elif flag.startswith("--"):
            opts[flag] = value
    return opts, attrs


def test_a_good_run_writes_the_original_layout(stage: tuple[StageArea, str], tmp_path: Path) -> None:
    area, url = stage
    argv = argv_for(area, url, tmp_path, attrs={"GLIDECLIENT_Group_Tag": "blue"},
                    params={"GLIDECLIENT_Start": "TARGET.RequestCpus <= 2", "GLIDEIN_Max_Idle": "77"})
    run = run_glidein(argv, environment(tmp_path))
    assert run.code == 0, run.err

    # .out: the first line, the header, the host lines, then the markers in order
    lines = run.out.splitlines()
    first = re.fullmatch(r"Starting glidein_startup\.sh at (.+) \((\d+)\)", lines[0])
    assert first, lines[0]
    start = int(first.group(2))
    header = {m.group("key"): m.group("value") for m in HEADER_LINE.finditer(run.out.split("\nRunning on ")[0])}
    startup_sha = hashlib.sha256(area.startup_path.read_bytes()).hexdigest()
    assert header["script_checksum"] == f"{startup_sha}  glidein_startup.sh"
    assert header["condorg_cluster"] == "12" and header["condorg_subcluster"] == "3"
    assert header["condorg_schedd"] == "schedd_glideins1@factory" and header["glidein_credential_id"] == "cred42"
    assert header["glidein_factory"] == "gfactory" and header["glidein_name"] == "gfactory_instance"
    assert header["glidein_entry"] == "good" and header["client_name"] == "fe1.main" and header["client_group"] == "main"
    assert header["work_dir"] == str(tmp_path / "work") and header["web_dir"] == url
    assert header["sign_id"] == area.signature and header["descript_fname"] == area.index_name
    assert re.fullmatch(r"[0-9a-f-]{36}", header["glidein_uuid"])
    for prefix in ("Running on ", "System: ", "As: uid="):
        assert any(line.startswith(prefix) for line in lines), prefix
    markers = [line for line in lines if line.startswith("=== ")]
    assert [re.sub(r" .*", "", m[4:]) for m in markers] == [
        "Last", "Condor", "Condor", "Stats", "End", "Glidein", "XML", "End"]
    last = re.fullmatch(r"=== Last script starting .+ \((\d+)\) after validating for (\d+) ===", markers[0])
    ended = re.fullmatch(r"=== Condor ended .+ \((\d+)\) after (\d+) ===", markers[2])
    ending = re.fullmatch(r"=== Glidein ending .+ \((\d+)\) with code 0 after (\d+) ===", markers[5])
    assert last and ended and ending
    assert int(last.group(1)) - start == int(last.group(2)) and int(ending.group(1)) - start == int(ending.group(2))
    assert "Total number of activations/claims: 2" in run.out
    summary = parse_out(run.out)
    assert not summary.problems and summary.exit_code == 0 and summary.factory_job_id == "12.3"
    assert summary.jobs_run == 4 and summary.activations == 2 and summary.entry == "good"
    assert "<status>OK</status>" in summary.xml
    assert "check_python: python" in run.out and "Fetched and verified" in run.out

    # .err: the sections, decoded with base64 + gzip only
    sections = sections_of(run.err)
    assert list(sections) == ["StartdLog", "StarterLog", "StarterLog.slot1", "GlideinLog"]
    assert len(sections["StartdLog"]) == 2 and b"rotated part" in sections["StartdLog"][0]
    assert sections["StarterLog.slot1"][0].count(b"\n") == 200
    glidein_log = [json.loads(line) for line in sections["GlideinLog"][0].splitlines()]
    assert {r["invoker"] for r in glidein_log} == {"glidein", "startd"}
    assert [r["timestamp"] for r in glidein_log] == sorted(r["timestamp"] for r in glidein_log)
    assert any(r.get("script") == "entry/01_note.py" for r in glidein_log)
    xml = XML_SECTION.search(run.err)
    assert xml and zlib.decompress(base64.b64decode("".join(xml.group("b64").split())), 31).decode() == summary.xml
    # ... and with the log monitor's decoder
    err = split_err(run.err)
    assert err.names() == ["StartdLog", "StarterLog", "StarterLog.slot1", "GlideinLog", "XML"]
    assert all(s.ok for s in err.sections) and err.section("XML").text() == summary.xml

    # what the agent got
    [rec] = records(tmp_path)
    opts, attrs = agent_options(rec["argv"])
    assert rec["token"] == "pool-token-123" and "GLIDEIN_TOKEN" not in rec["env"]
    assert opts["--collector"] == "http://127.0.0.1:9" and opts["--max-idle"] == "77" and opts["--cpus"] == "2"
    assert opts["--start"] == '(TARGET.Owner =!= "mallory") && (TARGET.RequestCpus <= 2)'
    for expected in ('GLIDEIN_Site="GoodSite"', "GLIDEIN_CPUS=2", 'GLIDECLIENT_Group_Tag="blue"', 'SITE_NOTE="from python"',
                     "HAS_CVMFS=false", 'GLIDEIN_Entry_Name="good"', "GLIDEIN_ClusterId=12", 'GLIDECLIENT_Name="fe1.main"',
                     'GLIDEIN_Factory="gfactory"', 'GLIDEIN_Name="gfactory_instance"', 'GLIDECLIENT_Group="main"'):
        assert expected in attrs, (expected, attrs)
    assert any(a.startswith("GLIDEIN_Python_Version=") for a in attrs)
    assert Path(rec["cwd"]).parent == tmp_path / "work"
    # the token never reached the pilot's command line, and the work directory is gone
    assert "pool-token-123" not in run.out + run.err
    assert list((tmp_path / "work").iterdir()) == []


def test_a_tampered_stage_file_fails_and_keeps_the_slot(agent_pyz: Path, tmp_path: Path) -> None:
    area = build_stage_area(tmp_path / "stage", factory_name="gfactory", signing_key=KEY, agent_zipapp=agent_pyz,
                            entries={"e": None})
    victim = next(f for f in area.files if f.kind == "validate")
    path = area.dir / victim.stage_name
    path.write_text(path.read_text().replace("exit 1", "exit 0"))
    url, stop = serve_stage(area.dir)
    try:
        run = run_glidein(argv_for(area, url, tmp_path, entry="e", hold_seconds=1.2), environment(tmp_path))
    finally:
        stop()
    assert run.code == 4
    assert run.seconds >= 1.2
    assert f"ERROR: signature check failed: {victim.stage_name} has sha256 " in run.err
    assert f"expected {victim.sha256}" in run.err and "Keeping the slot for 1.2 s" in run.err
    summary = parse_out(run.out)
    assert summary.exit_code == 4 and summary.factory_job_id == "12.3"
    assert "<status>ERROR</status>" in summary.xml and ">Corruption<" in summary.xml
    assert "signature check failed" in summary.xml
    assert not records(tmp_path) and list((tmp_path / "work").iterdir()) == []


def test_a_list_that_does_not_match_the_command_line_is_refused(stage: tuple[StageArea, str], tmp_path: Path) -> None:
    area, url = stage
    argv = argv_for(area, url, tmp_path, hold_seconds=0)
    argv[argv.index("-sign") + 1] = "0" * 64
    run = run_glidein(argv, environment(tmp_path))
    assert run.code == 4 and f"stage file list {area.index_name} has sha256 {area.signature}, expected {'0' * 64}" in run.err
    assert not records(tmp_path)


def test_a_failed_validation_holds_the_slot_and_advertises_why(stage: tuple[StageArea, str], tmp_path: Path) -> None:
    area, url = stage
    run = run_glidein(argv_for(area, url, tmp_path, entry="broken", hold_seconds=1.5), environment(tmp_path))
    assert run.code == 6
    assert run.seconds >= 1.5
    reason = "validation script entry/01_check_site.sh failed: check_site: /scratch is full"
    assert f"ERROR: {reason}" in run.err and "checking the site" in run.out
    [rec] = records(tmp_path)  # the agent ran only to advertise the failure
    opts, attrs = agent_options(rec["argv"])
    assert opts["--start"] == "false" and opts["--max-idle"] == "2" and opts["--die-time"] == "2"
    assert f'GLIDEIN_Validation_Failure="{reason}"' in attrs and 'GLIDEIN_Site="BrokenSite"' in attrs
    summary = parse_out(run.out)
    assert summary.exit_code == 6 and summary.condor_start_epoch is None
    assert "<status>ERROR</status>" in summary.xml and "/scratch is full" in summary.xml
    assert {"StartdLog", "GlideinLog"} <= set(sections_of(run.err))


@pytest.mark.parametrize("fetch, sha, python", [
    ("wget", "shasum", None),
    ("python", "python", oldest_python()),
])
def test_other_download_and_checksum_tools(stage: tuple[StageArea, str], tmp_path: Path, fetch: str, sha: str,
                                           python: str | None) -> None:
    area, url = stage
    extra = {"GWMS_GLIDEIN_FETCH": fetch, "GWMS_GLIDEIN_SHA256": sha}
    if python:
        extra["GWMS_GLIDEIN_PYTHON"] = python
    run = run_glidein(argv_for(area, url, tmp_path), environment(tmp_path, **extra))
    assert run.code == 0, run.err
    assert f"with {fetch} and {sha})" in run.out
    if python:
        assert "check_python: python 3.9." in run.out
        [rec] = records(tmp_path)
        assert any(a.startswith('GLIDEIN_Python_Version="3.9.') for a in agent_options(rec["argv"])[1])


def test_no_python_is_reported(stage: tuple[StageArea, str], tmp_path: Path) -> None:
    area, url = stage
    run = run_glidein(argv_for(area, url, tmp_path, hold_seconds=0),
                      environment(tmp_path, GWMS_GLIDEIN_PYTHON=str(tmp_path / "no-python3")))
    assert run.code == 5 and "ERROR: no usable python3 (>= 3.9)" in run.err
    assert parse_out(run.out).exit_code == 5


def test_bad_arguments_exit_at_once(stage: tuple[StageArea, str], tmp_path: Path) -> None:
    area, url = stage
    argv = argv_for(area, url, tmp_path)
    i = argv.index("-entry")
    run = run_glidein(argv[:i] + argv[i + 2:], environment(tmp_path))
    assert run.code == 2 and "-entry is required" in run.err
    argv[argv.index("-hold") + 1] = "soon"
    assert run_glidein(argv, environment(tmp_path)).code == 2


def test_sigterm_reaches_the_agent(stage: tuple[StageArea, str], tmp_path: Path) -> None:
    area, url = stage
    proc = subprocess.Popen(argv_for(area, url, tmp_path), env=environment(tmp_path, GWMS_FAKE_AGENT_SLEEP="60"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not records(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert records(tmp_path)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM
    assert parse_out(out.decode()).exit_code == 128 + signal.SIGTERM
    assert b"got signal SIGTERM" in b"".join(sections_of(err.decode())["StartdLog"])


def test_the_real_agent_joins_a_pool_and_runs_a_job(stage: tuple[StageArea, str], tmp_path: Path) -> None:
    area, url = stage
    pool = FakePool(token="pool-secret", claim_timeout=10.0).start()
    try:
        [job] = pool.submit([{"Cmd": "/bin/sh", "Arguments": "-c 'echo site=$GLIDEIN_Site'", "Out": "o.txt"}])
        argv = glidein_argv(area, url, entry="good", client="fe1.main", glidein_name="gfactory_instance",
                            collector_url=pool.url, token_file_or_value="pool-secret", cluster=5, proc=0,
                            work_dir=str(tmp_path), max_idle=30, max_tail=1, memory_mb=1000,
                            params={"GWMS_AGENT_OPTIONS": "--poll-wait 1 --schedd-refresh 1 --monitor-interval 0.2"})
        env = environment(tmp_path)
        del env["GWMS_GLIDEIN_AGENT"]
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        seen: dict = {}
        assert pool.wait_for(lambda: bool(seen.update(pool.slot_ads()) or seen), timeout=30)
        out, err = proc.communicate(timeout=60)
    finally:
        pool.stop()
    assert proc.returncode == 0, err.decode()[-3000:]
    assert job.status == COMPLETED and job.output_files() == {"o.txt": b"site=GoodSite\n"}
    [ad] = seen.values()
    assert ad["GLIDEIN_Site"] == "GoodSite" and ad["GLIDEIN_Entry_Name"] == "good" and ad["SITE_NOTE"] == "from python"
    summary = parse_out(out.decode())
    assert summary.exit_code == 0 and summary.jobs_run == 1 and summary.activations == 1
    assert summary.stats[0].totals["goodZ"][0] == 1
    sections = sections_of(err.decode())
    assert {"StartdLog", "StarterLog", "GlideinLog"} <= set(sections)
    assert any(name.startswith("StarterLog.slot") for name in sections)
    assert b"claimed" in b"".join(sections["StartdLog"])
    assert all(s.ok for s in split_err(err.decode()).sections)


def test_sigterm_ends_the_hold_early(stage: tuple[StageArea, str], tmp_path: Path) -> None:
    area, url = stage
    argv = argv_for(area, url, tmp_path, hold_seconds=60)
    argv[argv.index("-sign") + 1] = "f" * 64
    proc = subprocess.Popen(argv, env=environment(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)
        assert proc.poll() is None  # holding the slot
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert time.monotonic() - t < 5
    assert proc.returncode == 4 and b"Keeping the slot for 60 s" in err
    assert parse_out(out.decode()).exit_code == 4


@pytest.mark.parametrize("fetch", ["curl", "wget", "python"])
def test_https_stage_with_the_factory_ca(stage: tuple[StageArea, str], tmp_path: Path, fetch: str) -> None:
    from gwms.security.ca import create_ca, issue_service_cert

    area, _ = stage
    ca = create_ca(tmp_path / "ca", "test-ca")
    cert = issue_service_cert(ca, tmp_path / "ca", "stage", ["127.0.0.1"])
    url, stop = serve_stage(area.dir, ssl_context=cert.server_context())
    try:
        assert url.startswith("https://127.0.0.1:")
        env = environment(tmp_path, GWMS_GLIDEIN_FETCH=fetch)
        run = run_glidein(argv_for(area, url, tmp_path, ca_file=str(ca.ca_cert_path)), env)
        assert run.code == 0, run.err
        untrusted = run_glidein(argv_for(area, url, tmp_path, hold_seconds=0), env)
    finally:
        stop()
    assert untrusted.code == 3 and "cannot fetch the stage file list" in untrusted.err
    [rec] = records(tmp_path)
    assert agent_options(rec["argv"])[0]["--ca-file"] == str(ca.ca_cert_path)
