"""A glidein killed with SIGKILL mid-run still has its logs searchable: the real
``gwms logs serve`` (with the push endpoint) on 127.0.0.1, the real glidein bootstrap and
pilot pushing to it, ``kill -9``, then ``gwms logs index`` and a search through the API.
The same server refuses uploads with a token of another entry or batch, an expired or
foreign token, no token, a ``../`` name and an oversized body.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_procs import ServiceProcess

from gwms.security.logtoken import LOG_TOKEN_ENV, LogTokenMinter, mint_log_token, write_public_key
from gwms.factory.stage import EntryStage, build_stage_area, glidein_argv, serve_stage
from gwms.monitor.outfile import parse_out
from gwms.monitor.sections import split_err
from gwms.security import scopes as s
from gwms.security.hybrid import RsaKeyPair
from gwms.security.layout import SecurityLayout, ensure_pool_keys

pytestmark = pytest.mark.integration

FAKE_AGENT = Path(__file__).with_name("glidein_fake_agent.py")
FACTORY_KEY = RsaKeyPair.generate("gfactory-v1", 2048)
STRANGER_KEY = RsaKeyPair.generate("gfactory-v1", 2048)
MAX_PUSH = 256 * 1024


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("logpush")
    data = root / "monitor"
    ensure_pool_keys(data)
    viewer = SecurityLayout(data).mint_token("viewer", [s.READ])
    pub = write_public_key(FACTORY_KEY, root / "factory-keys")
    server = ServiceProcess(
        ["logs", "serve", "--data", str(data), "--port", "0", "--push-key", str(pub),
         "--push-max-size", str(MAX_PUSH)],
        root / "serve.log",
    )
    from gwms.glidein.zipbuild import build_zipapp

    area = build_stage_area(
        root / "stage", factory_name="gfactory", signing_key=FACTORY_KEY,
        agent_zipapp=build_zipapp(root / "gwms-startd.pyz"), config={"GLIDEIN_MIN_DISK_MB": 1},
        entries={"good": EntryStage(attrs={"GLIDEIN_Site": "GoodSite"})},
    )
    stage_url, stop_stage = serve_stage(area.dir)
    try:
        yield {"root": root, "data": data, "server": server, "push_url": server.url + "/v1/push",
               "viewer": {"Authorization": f"Bearer {viewer}"}, "area": area, "stage_url": stage_url}
    finally:
        stop_stage()
        server.stop()


def environment(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.lower().endswith("_proxy") and not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    env.update(GWMS_GLIDEIN_AGENT=str(FAKE_AGENT), GWMS_FAKE_AGENT_SLEEP="120")
    env.update(extra)
    return env


def wait_for(predicate, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_glidein_killed_with_sigkill_leaves_searchable_logs(world: dict[str, Any], tmp_path: Path) -> None:
    minter = LogTokenMinter(FACTORY_KEY, factory="gfactory", instance="gfactory_instance",
                            url=world["push_url"], interval_s=1)
    push = minter.settings(entry="good", user="fe1", cluster=12, walltime_s=3600)
    work = tmp_path / "work"
    work.mkdir()
    argv = glidein_argv(world["area"], world["stage_url"], entry="good", client="fe1.main",
                        glidein_name="gfactory_instance", collector_url="http://127.0.0.1:9",
                        token_file_or_value="pool-token", cluster=12, proc=3, work_dir=str(work),
                        hold_seconds=0, log_url=push.url, log_interval=push.interval_s)
    # the batch system writes the glidein's stdout/stderr to files (the factory gets them only at the end)
    out_file, err_file = tmp_path / "job.12.3.out", tmp_path / "job.12.3.err"
    pushed = world["data"] / "push" / "client" / "user_fe1" / "glidein_gfactory_instance" / "entry_good"
    with open(out_file, "wb") as out, open(err_file, "wb") as err:
        proc = subprocess.Popen(argv, env=environment(tmp_path, **{LOG_TOKEN_ENV: push.token}), stdout=out,
                                stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        def agent_logs_pushed() -> bool:
            try:
                names = split_err((pushed / "job.12.3.err").read_bytes()).names()
                return "StartdLog" in names and "Condor starting" in (pushed / "job.12.3.out").read_text()
            except OSError:
                return False

        assert wait_for(agent_logs_pushed), (err_file.read_text()[-3000:], out_file.read_text()[-2000:])
        assert proc.poll() is None  # still running
        # the token reached the pilot in a 0600 file it read and removed, not in its environment
        assert push.token.encode() not in Path(f"/proc/{proc.pid}/environ").read_bytes()
        assert not list(work.rglob("log_token"))
        os.killpg(proc.pid, signal.SIGKILL)  # the site kills the whole glidein
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    assert "Glidein ending" not in out_file.read_text()  # it never finished
    assert LOG_TOKEN_ENV not in err_file.read_text() and push.token not in out_file.read_text()

    # the pushed copy is a running glidein's log: header and markers so far, the daemon logs
    summary = parse_out((pushed / "job.12.3.out").read_bytes())
    assert summary.factory_job_id == "12.3" and summary.condor_start_epoch is not None and not summary.finished
    err = split_err((pushed / "job.12.3.err").read_bytes())
    assert {"StartdLog", "StarterLog", "GlideinLog"} <= set(err.names()) and all(sec.ok for sec in err.sections)
    assert b"log_push" in err.section("GlideinLog").data  # the pilot's own record of the pushes

    # index the pushed logs (the factory has nothing), then find the job through the API
    run = subprocess.run([sys.executable, "-m", "gwms", "logs", "index", "--data", str(world["data"])], check=False,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "indexed 1 job(s)" in run.stdout
    with httpx.Client(base_url=world["server"].url, headers=world["viewer"], timeout=30) as client:
        page = client.get("/v1/search", params={"job": "12.3"}).json()
        [result] = page["results"]
        job = result["job"]
        assert job["source"] == "push" and job["entry"] == "good" and not job["finished"]
        assert job["path"] == "user_fe1/glidein_gfactory_instance/entry_good/job.12.3"
        view = client.get(f"/v1/jobs/{job['id']}").json()
        assert view["job"]["source"] == "push"
        assert {"out", "err", "StartdLog", "GlideinLog"} <= {sec["name"] for sec in view["sections"]}
        hits = client.get("/v1/search", params={"q": "rotated", "section": "StartdLog*"}).json()["results"]
        assert [h["job"]["id"] for h in hits] == [job["id"]] and hits[0]["hits"]


def put(world: dict[str, Any], path: str, token: str | None, body: Any = b"data\n") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.put(world["server"].url + "/v1/push/" + path, content=body, headers=headers, timeout=30)


def test_uploads_are_refused_unless_the_token_allows_exactly_that_file(world: dict[str, Any]) -> None:
    def tok(entry: str = "good", cluster: int = 40, **kw: Any) -> str:
        kw.setdefault("audience", world["push_url"])
        kw.setdefault("lifetime_s", 600)
        return mint_log_token(kw.pop("key", FACTORY_KEY), factory="gfactory", instance="v1", entry=entry,
                              user="fe1", cluster=cluster, **kw)

    target = world["data"] / "push" / "client" / "user_fe1" / "glidein_v1" / "entry_good"
    ok = put(world, "good/job.40.0/job.40.0.out", tok())
    assert ok.status_code == 201, ok.text
    assert ok.json() == {"path": "user_fe1/glidein_v1/entry_good/job.40.0.out", "bytes": 5, "source": "push"}
    assert (target / "job.40.0.out").read_bytes() == b"data\n"

    refusals = {
        "no token": (put(world, "good/job.40.0/job.40.0.out", None), 401),
        "another entry": (put(world, "good/job.40.0/job.40.0.out", tok(entry="other")), 403),
        "another batch": (put(world, "good/job.41.0/job.41.0.out", tok()), 403),
        "a proc not in the batch": (put(world, "good/job.40.5/job.40.5.out", tok(procs=5)), 403),
        "expired": (put(world, "good/job.40.0/job.40.0.out", tok(now=time.time() - 7200, lifetime_s=600)), 401),
        "another server": (put(world, "good/job.40.0/job.40.0.out", tok(audience="http://elsewhere:1/v1/push")), 401),
        "another key": (put(world, "good/job.40.0/job.40.0.out", tok(key=STRANGER_KEY)), 401),
        "pool token": (put(world, "good/job.40.0/job.40.0.out", world["viewer"]["Authorization"][7:]), 401),
        "../ name": (put(world, "good/job.40.0/..%2F..%2F..%2Fevil.out", tok()), 400),
        "other kind": (put(world, "good/job.40.0/job.40.0.sh", tok()), 400),
        "other glidein's file": (put(world, "good/job.40.0/job.40.1.err", tok()), 400),
        "oversized": (put(world, "good/job.40.0/job.40.0.err", tok(), b"x" * (MAX_PUSH + 1)), 413),
        "oversized, streamed": (put(world, "good/job.40.0/job.40.0.err", tok(),
                                    iter([b"x" * 65536] * (MAX_PUSH // 65536 + 1))), 413),  # type: ignore[arg-type]
    }
    for what, (response, status) in refusals.items():
        assert response.status_code == status, (what, response.status_code, response.text)
        assert response.json()["error"]["message"], what
    # nothing of the refused uploads was kept, nowhere
    assert (target / "job.40.0.out").read_bytes() == b"data\n" and not (target / "job.40.0.err").exists()
    assert sorted(p.name for p in target.iterdir()) == ["job.40.0.out"]
    assert not list(world["data"].rglob("evil*")) and not (world["data"] / "push" / "client" / "user_fe1" /
                                                            "glidein_v1" / "entry_other").exists()


def test_a_glidein_whose_log_server_is_down_ends_normally(world: dict[str, Any], tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1/push"
    token = mint_log_token(FACTORY_KEY, factory="gfactory", instance="v1", entry="good", user="fe1", cluster=5,
                           audience=dead, lifetime_s=600)
    work = tmp_path / "work"
    work.mkdir()

    def run(extra: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[bytes], float]:
        argv = glidein_argv(world["area"], world["stage_url"], entry="good", client="fe1.main",
                            glidein_name="v1", collector_url="http://127.0.0.1:9", token_file_or_value="pool-token",
                            cluster=5, proc=0, work_dir=str(work), hold_seconds=0) + extra
        t = time.monotonic()
        with open(tmp_path / "out", "wb") as out, open(tmp_path / "err", "wb") as err:
            done = subprocess.run(argv, env=env, stdout=out, stderr=err, timeout=120, check=False)
        return done, time.monotonic() - t

    env = environment(tmp_path, GWMS_FAKE_AGENT_SLEEP="0")
    baseline, plain_seconds = run([], env)
    pushing, push_seconds = run(["-logurl", dead, "-loginterval", "1"], {**env, LOG_TOKEN_ENV: token})
    assert baseline.returncode == 0 and pushing.returncode == 0, (tmp_path / "err").read_text()[-2000:]
    print(f"glidein run: {plain_seconds:.2f} s without pushing, {push_seconds:.2f} s pushing to a closed port")
    assert push_seconds - plain_seconds < 5.0, (push_seconds, plain_seconds)
    err = (tmp_path / "err").read_text()
    assert "log push of job.5.0." in err and "failed" in err  # said once, in the .err
    assert parse_out((tmp_path / "out").read_bytes()).exit_code == 0
