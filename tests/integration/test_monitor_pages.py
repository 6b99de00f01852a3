"""The monitor's HTML pages over HTTP on loopback: sign-in, cookies, filters, pages, mounting, headers."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from fastapi import FastAPI

from gwms.cli.logs import logs as logs_cli
from gwms.monitor.anonymize import Anonymizer, KeyRing
from gwms.monitor.archive import Archive
from gwms.monitor.audit import AuditLog
from gwms.monitor.index import open_index
from gwms.monitor.indexer import Indexer
from gwms.monitor.pages import create_monitor_site, mount_monitor
from gwms.monitor.samples import make_job, make_world, write_job
from gwms.monitor.webauth import COOKIE_NAME, UserStore, WebAccess
from gwms.net import ServiceServer
from gwms.security import scopes as s
from gwms.security.tokens import TokenVerifier, generate_signing_key, issue_token

pytestmark = pytest.mark.integration

ISSUER = "pool.test"
KEY = generate_signing_key("POOL")
WORLD = make_world(5)
JOBS = [
    make_job(WORLD, 50 + i, cluster=8100 + i, proc=0, lines=15, exit_code=[0, 1, 0, 137, 0, 2][i])
    for i in range(6)
]


def token(subject: str, *granted: str, lifetime: float = 3600, now: float | None = None) -> str:
    return issue_token(
        KEY, issuer=ISSUER, subject=subject, scopes=granted, lifetime=lifetime, now=now
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("pages")
    for job in JOBS:
        write_job(root / "src", job)
    index = open_index(root / "index.sqlite")
    archive = Archive(root / "archive")
    report = Indexer(
        index, root / "src", archive=archive, anonymizer=Anonymizer(KeyRing.generate("k9"))
    ).run_pass()
    assert report.indexed == len(JOBS)
    users = UserStore(root / "users.json")
    users.add("alice", "alice-pw", ["READ"])
    users.add("sec", "sec-pw", ["READ", "LOGS_ORIGINAL"])
    audit = AuditLog(root / "audit.log")
    verifier = TokenVerifier(KEY, ISSUER)
    closed = create_monitor_site(
        index, verifier=verifier, audit=audit, archive=archive, access=WebAccess(users=users)
    )
    anon = create_monitor_site(
        index, verifier=verifier, audit=audit, archive=archive, access=WebAccess(anonymous=True)
    )
    parent = FastAPI()
    mount_monitor(parent, "/logs", index=index, verifier=verifier, audit=audit, archive=archive)
    with ServiceServer(closed) as a, ServiceServer(anon) as b, ServiceServer(parent) as c:
        yield {"closed": a.url, "anon": b.url, "mounted": c.url, "root": root, "audit": audit}
    index.close()


def client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=30, follow_redirects=False)


def login(c: httpx.Client, base: str = "", **form: str) -> httpx.Response:
    return c.post(f"{base}/login", data=form, headers={"Origin": str(c.base_url).rstrip("/")})


def job_refs(text: str) -> list[str]:
    return re.findall(r'class="job-link" href="[^"]*">(job\.\d+\.\d+)<', text)


def test_pages_need_a_sign_in_unless_anonymous(env: dict[str, Any]) -> None:
    with client(env["closed"]) as c:
        r = c.get("/jobs/job.8100.0?x=1")
        assert (
            r.status_code == 303
            and r.headers["location"] == "/login?next=%2Fjobs%2Fjob.8100.0%3Fx%3D1"
        )
        assert c.get("/v1/search").status_code == 401
        r = c.get("/login")
        assert r.status_code == 200 and 'name="token"' in r.text and 'name="password"' in r.text
    with client(env["anon"]) as c:
        r = c.get("/")
        assert r.status_code == 200 and "anonymous viewer" in r.text
        assert c.get("/v1/search", params={"q": "condor"}).json()["total"] > 0
        assert c.get("/v1/jobs/job.8100.0/bundle", params={"original": "true"}).status_code == 403
        r = c.get("/jobs/job.8100.0/StartdLog", params={"original": "1"})
        assert r.status_code == 403 and "LOGS_ORIGINAL" in r.text
        assert c.get("/v1/audit").status_code == 403


def test_token_login_sets_a_strict_httponly_cookie(env: dict[str, Any]) -> None:
    with client(env["closed"]) as c:
        r = login(c, token="not-a-token", next="/")
        assert (
            r.status_code == 401
            and "not accepted" in r.text
            and COOKIE_NAME not in r.headers.get("set-cookie", "")
        )
        r = login(c, token="Bearer " + token("viewer@pool.test", s.READ), next="/jobs/job.8101.0")
        assert r.status_code == 303 and r.headers["location"] == "/jobs/job.8101.0"
        cookie = r.headers["set-cookie"]
        assert (
            "HttpOnly" in cookie
            and "SameSite=strict" in cookie.replace("Strict", "strict")
            and "Path=/" in cookie
        )
        assert (
            re.search(r"Max-Age=(\d+)", cookie)
            and 3500 < int(re.search(r"Max-Age=(\d+)", cookie).group(1)) <= 3600
        )
        r = c.get("/jobs/job.8101.0")
        assert r.status_code == 200 and "viewer@pool.test" in r.text
        # the API reads the same cookie
        assert c.get("/v1/jobs/job.8101.0").status_code == 200
        assert c.get("/v1/jobs/job.8101.0/bundle", params={"original": "true"}).status_code == 403
        r = c.post("/logout", headers={"Origin": env["closed"]})
        assert r.status_code == 303 and 'gwms_monitor=""' in r.headers["set-cookie"]
        c.cookies.clear()
        assert c.get("/").status_code == 303


def test_other_sites_cannot_sign_in_or_out(env: dict[str, Any]) -> None:
    with client(env["closed"]) as c:
        r = c.post(
            "/login",
            data={"token": token("v@pool.test", s.READ)},
            headers={"Origin": "http://evil.example"},
        )
        assert r.status_code == 403 and "set-cookie" not in r.headers
        assert c.post("/logout", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        # and never redirect away from the monitor
        r = login(c, token=token("v@pool.test", s.READ), next="https://evil.example/")
        assert r.status_code == 303 and r.headers["location"] == "/"


def test_expired_or_forged_cookies_send_back_to_sign_in(env: dict[str, Any]) -> None:
    with client(env["closed"]) as c:
        c.cookies.set(
            COOKIE_NAME, token("v@pool.test", s.READ, lifetime=600, now=time.time() - 7200)
        )
        r = c.get("/")
        assert r.status_code == 303 and "expired=1" in r.headers["location"]
        assert "expired" in c.get(r.headers["location"]).text
        c.cookies.set(COOKIE_NAME, "s.eyJzdWIiOiJ4In0.AAAA")
        assert c.get("/").status_code == 303
        assert c.get("/v1/search").status_code == 401


def test_local_users(env: dict[str, Any]) -> None:
    with client(env["closed"]) as c:
        assert login(c, user="alice", password="nope").status_code == 401
        r = login(c, user="alice", password="alice-pw")
        assert r.status_code == 303 and "s." in r.headers["set-cookie"]
        assert "local:alice" in c.get("/").text
        assert c.get("/jobs/job.8102.0/err", params={"original": "1"}).status_code == 403
    with client(env["closed"]) as c:
        assert login(c, user="sec", password="sec-pw").status_code == 303
        before = len(list(env["audit"].records()))
        r = c.get("/jobs/job.8102.0/err", params={"original": "1"})
        assert r.status_code == 200 and "original-banner" in r.text
        records = list(env["audit"].records())
        assert len(records) == before + 1 and records[-1]["who"] == "local:sec"


def test_search_filters_pages_and_headers(env: dict[str, Any]) -> None:
    j = JOBS[3]
    with client(env["anon"]) as c:
        everything = job_refs(c.get("/", params={"go": 1, "limit": 50}).text)
        assert sorted(everything) == sorted(f"job.{x.cluster}.0" for x in JOBS)
        r = c.get("/", params={"go": 1})
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert (
            r.headers["x-content-type-options"] == "nosniff"
            and r.headers["cache-control"] == "no-store"
        )
        filters: list[dict[str, str]] = [
            {"entry": j.entry},
            {"user": j.frontend_user},
            {"job": f"job.{j.cluster}.0"},
            {"job": f"{j.cluster}"},
            {"uuid": str(j.expected["glidein_uuid"])},
            {"exit": "137"},
            {"q": f"job:{j.cluster}.0"},
        ]
        for f in filters:
            refs = job_refs(c.get("/", params={"go": 1, "limit": 50, **f}).text)
            assert f"job.{j.cluster}.0" in refs, f
            assert len(refs) < len(JOBS), f
        assert set(job_refs(c.get("/", params={"go": 1, "exit": "!0"}).text)) == {
            f"job.{x.cluster}.0" for x in JOBS if x.expected["exit_code"] != 0
        }
        bad = c.get("/", params={"go": 1, "regex": "("})
        assert bad.status_code == 400 and "search-problem" in bad.text
        # keyset pages: two per page, all jobs once
        seen: list[str] = []
        url: str | None = "/?go=1&limit=2"
        while url:
            r = c.get(url)
            seen += job_refs(r.text)
            m = re.search(r'href="([^"]+)" id="next-page"', r.text)
            url = html.unescape(m.group(1)) if m else None
        assert sorted(seen) == sorted(everything)
        # full text with highlights, context and a histogram
        r = c.get("/", params={"q": "condor", "go": 1, "context": 1})
        assert "<mark>" in r.text.lower() or "<mark>C" in r.text
        assert 'id="histogram"' in r.text and 'class="ln ctx"' in r.text


def test_mounted_under_a_prefix(env: dict[str, Any], tmp_path: Path) -> None:
    with client(env["mounted"]) as c:
        r = c.get("/logs/")
        assert r.status_code == 303 and r.headers["location"].startswith(
            "/logs/login?next=%2Flogs%2F"
        )
        assert c.get("/logs/static/monitor.js").status_code == 200
        r = login(c, "/logs", token=token("viewer@pool.test", s.READ), next="/logs/")
        assert (
            r.status_code == 303
            and r.headers["location"] == "/logs/"
            and "Path=/logs/" in r.headers["set-cookie"]
        )
        page = c.get("/logs/", params={"go": 1})
        assert page.status_code == 200
        links = re.findall(r'href="(/[^"]*)"', page.text)
        assert links and all(x.startswith("/logs/") for x in links), links
        job = c.get(next(x for x in links if "/jobs/" in x))
        downloads = re.findall(r'href="([^"]+)" id="dl-(?:section|archive|bundle)"', job.text)
        assert len(downloads) == 3
        for d in downloads:
            assert d.startswith("/logs/v1/jobs/")
            assert c.get(html.unescape(d)).status_code == 200
        assert c.get("/logs/v1/search", params={"q": "condor"}).json()["total"] > 0


def test_user_command(tmp_path: Path) -> None:
    runner = CliRunner()
    data = tmp_path / "data"
    r = runner.invoke(
        logs_cli,
        [
            "user",
            "add",
            "carol",
            "--data",
            str(data),
            "--scope",
            "READ",
            "--scope",
            "LOGS_ORIGINAL",
            "--password-stdin",
        ],
        input="pw-of-carol\n",
    )
    assert r.exit_code == 0, r.output
    assert UserStore(data / "users.json").authenticate("carol", "pw-of-carol") == {
        "READ",
        "LOGS_ORIGINAL",
    }
    r = runner.invoke(logs_cli, ["user", "list", "--data", str(data)])
    assert r.output.strip() == "carol\tLOGS_ORIGINAL READ"
    assert runner.invoke(logs_cli, ["user", "remove", "carol", "--data", str(data)]).exit_code == 0
    r = runner.invoke(logs_cli, ["user", "remove", "carol", "--data", str(data)])
    assert r.exit_code != 0 and "no user" in str(r.exception or r.output)
