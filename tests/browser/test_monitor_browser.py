"""The log monitor's pages in a real browser (Playwright driving Debian's chromium).

A real ``gwms logs serve --anonymous`` runs on 127.0.0.1 over an index that
``gwms logs index`` built from generated glidein logs. The browser searches, opens a
job, switches sections, follows a line permalink, checks that a ``<script>`` in a log
stays text, and that originals are refused to the anonymous viewer and to a READ token
(a 403 page) while an administrator reads them (and is audited).

Chromium comes from Debian (``apt-get install chromium``, done by ``.ci/run``); the
test fails, it does not skip, when it is missing. ``GWMS_SCREENSHOTS=DIR`` saves the
pages' screenshots there (how docs/screenshots/ was made).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_procs import logs_serve, run_logs_index

from gwms.monitor.samples import SampleJob, make_job, make_world, write_job
from gwms.security import scopes as s

pytestmark = pytest.mark.integration

CHROMIUM = Path(os.environ.get("GWMS_CHROMIUM", "/usr/bin/chromium"))
WORLD = make_world(71)
# one job with many lines (a permalink far down must scroll), one carrying markup
JOBS: list[SampleJob] = [
    make_job(WORLD, 700 + i, cluster=7100 + i, proc=0, lines=150 if i == 0 else 40, exit_code=i % 2)
    for i in range(4)
]
XSS_JOB = JOBS[2]
XSS = (
    "<script>window.__owned = 1; alert('owned')</script><img src=x onerror=\"window.__owned = 2\">"
)
XSS_JOB.err = f"WARNING: {XSS} in the environment\n" + XSS_JOB.err
SHOTS = os.environ.get("GWMS_SCREENSHOTS")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``gwms logs serve --anonymous`` over an index of JOBS; its URL and tokens."""
    from gwms.security.layout import SecurityLayout, ensure_pool_keys

    root = tmp_path_factory.mktemp("browser")
    for job in JOBS:
        write_job(root / "factory", job)
    data = root / "data"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = run_logs_index(root / "factory", data, env)
    assert done.returncode == 0, done.stderr
    layout = ensure_pool_keys(data)
    with logs_serve(data, "--anonymous", env=env) as url:
        yield {
            "url": url,
            "data": data,
            "reader": SecurityLayout(data).mint_token("reader", [s.READ]),
            "admin": layout.mint_token("admin", [s.ADMINISTRATOR]),
        }


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, driven by Playwright (never a downloaded browser)."""
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        try:
            yield b
        finally:
            b.close()


def new_page(browser: Any, server: dict[str, Any], token: str | None = None) -> Any:
    """A page in a fresh context, signed in with ``token`` through the login form if given."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs  # type: ignore[attr-defined]
    if token is not None:
        page.goto(server["url"] + "/login")
        page.fill("#token", token)
        page.click("#sign-in")
        page.wait_for_url(server["url"] + "/")
    return page


def shot(page: Any, name: str, full: bool = False) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=full)


def test_search_open_job_switch_sections_and_permalink(
    browser: Any, server: dict[str, Any]
) -> None:
    page = new_page(browser, server)
    page.goto(server["url"] + "/")
    assert "anonymous viewer" in page.inner_text("header")
    # full text through the form: every job, hits highlighted, a histogram
    page.fill("#q", "condor starting")
    page.click("#search-button")
    page.wait_for_selector("#results")
    everywhere = int(page.inner_text("#total"))
    assert everywhere >= len(JOBS)
    assert page.locator("#histogram svg rect.bar").count() >= 1
    shot(page, "search")
    # then narrowed by a filter
    page.fill("#f-entry", JOBS[0].entry)
    page.click("#search-button")
    page.wait_for_selector("#results")
    assert 1 <= int(page.inner_text("#total")) < everywhere
    results = page.locator("#results .result")
    assert results.count() == int(page.inner_text("#total"))
    marks = page.locator("#results mark")
    assert marks.count() >= 1 and marks.first.inner_text().lower() in ("condor", "starting")

    # a job: summary, timeline, one tab per section
    page.locator("#results .job-link", has_text=f"job.{JOBS[0].cluster}.0").first.click()
    page.wait_for_selector("#summary")
    assert page.inner_text("#exit-code") == str(JOBS[0].expected["exit_code"])
    assert page.inner_text("#jobs-run") == str(JOBS[0].expected["jobs_run"])
    assert page.locator("#timeline tr.event").count() >= 4
    tabs = [t.inner_text() for t in page.locator("#tabs .tab").all()]
    for name in ("out", "err", "MasterLog", "StartdLog", "StarterLog", "GlideinLog", "XML"):
        assert name in tabs, tabs
    assert page.get_attribute("#tabs .tab.active", "data-section") == "out"
    job_url = page.url
    shot(page, "job")

    # switch to StartdLog
    page.click("#tabs .tab[data-section='StartdLog']")
    page.wait_for_url(re.compile(r"/StartdLog$"))
    assert page.get_attribute("#tabs .tab.active", "data-section") == "StartdLog"
    assert page.get_attribute("#pane", "data-section") == "StartdLog"
    rows = page.locator("#log tr")
    assert rows.count() == int(page.get_attribute("#pane", "data-total") or 0) > 100
    assert "StartdLog" in page.inner_text("#dl-section") or page.get_attribute(
        "#dl-section", "href"
    )
    assert page.get_attribute("#dl-section", "href").endswith("/sections/StartdLog/text")  # type: ignore[union-attr]
    section_url = page.url

    # follow a permalink to line 120 from a fresh page: highlighted and scrolled into view
    permalink = section_url + "#L120"
    other = new_page(browser, server)
    other.goto(job_url)
    other.goto(permalink)
    line = other.locator("#L120")
    line.wait_for()
    other.wait_for_function("document.getElementById('L120').classList.contains('hl')")
    assert other.evaluate("document.querySelectorAll('#log tr.hl').length") == 1
    assert other.evaluate(
        "(() => { const r = document.getElementById('L120').getBoundingClientRect();"
        " return r.top >= 0 && r.bottom <= window.innerHeight; })()"
    )
    assert other.evaluate("window.scrollY") > 0
    bg = other.evaluate("getComputedStyle(document.querySelector('#L120 td.t')).backgroundColor")
    plain = other.evaluate("getComputedStyle(document.querySelector('#L119 td.t')).backgroundColor")
    assert bg != plain
    shot(other, "section-permalink")
    # clicking another line number moves the highlight
    other.click("#L118 td.n a")
    other.wait_for_function("document.getElementById('L118').classList.contains('hl')")
    assert other.url.endswith("#L118")
    assert "hl" not in (other.get_attribute("#L120", "class") or "")
    # shift-click selects a range, which is a permalink too
    other.click("#L122 td.n a", modifiers=["Shift"])
    assert other.url.endswith("#L118-L122")
    assert other.evaluate("[...document.querySelectorAll('#log tr.hl')].map(r => r.id)") == [
        f"L{n}" for n in range(118, 123)
    ]

    # the download links of the section work with the session of the page (anonymized text)
    with page.expect_download() as dl:
        page.click("#dl-section")
    text = Path(dl.value.path()).read_text()
    assert text.count("\n") >= 100
    page.context.close()
    other.context.close()


def test_script_in_a_log_renders_inert(browser: Any, server: dict[str, Any]) -> None:
    page = new_page(browser, server)
    page.goto(server["url"] + "/?" + f"go=1&job=job.{XSS_JOB.cluster}.0&q=owned")
    page.wait_for_selector("#results")
    snippet = page.inner_text("#results")
    assert "<script>window.__owned = 1" in snippet
    page.locator("#results .section-link").first.click()
    page.wait_for_selector("#log")
    assert page.get_attribute("#pane", "data-section") == "err"
    log_text = page.inner_text("#log")
    assert XSS in log_text  # shown as text, verbatim
    assert page.evaluate("document.querySelectorAll('main script, main img').length") == 0
    assert page.evaluate("typeof window.__owned") == "undefined"
    assert page.dialogs == []  # type: ignore[attr-defined]
    page.context.close()


def test_originals_need_the_scope(browser: Any, server: dict[str, Any]) -> None:
    job = XSS_JOB
    # anonymous viewer: the original link gives a clear 403 page
    page = new_page(browser, server)
    page.goto(server["url"] + f"/jobs/job.{job.cluster}.0/err")
    anonymized = page.inner_text("#log")
    planted_hosts = [h for h in job.planted.hosts if h.lower() in job.err.lower()]
    assert planted_hosts and not any(h.lower() in anonymized.lower() for h in planted_hosts)
    with page.expect_navigation() as nav:
        page.click("#show-original")
    assert nav.value.status == 403
    assert "LOGS_ORIGINAL" in page.inner_text("#error")
    assert "anonymously" in page.inner_text("#error")
    shot(page, "original-refused")
    page.context.close()

    # a READ token: refused the same way, named
    page = new_page(browser, server, server["reader"])
    cookies = page.context.cookies()
    (cookie,) = [c for c in cookies if c["name"] == "gwms_monitor"]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    response = page.goto(server["url"] + f"/jobs/job.{job.cluster}.0/err?original=1")
    assert response.status == 403
    assert "reader@" in page.inner_text("#error") and "READ" in page.inner_text("#error")
    # the JSON API refuses it too, with the same cookie
    api = page.request.get(server["url"] + f"/v1/jobs/job.{job.cluster}.0/bundle?original=true")
    assert api.status == 403
    page.context.close()

    # an administrator reads the original, and the access is audited
    page = new_page(browser, server, server["admin"])
    page.goto(server["url"] + f"/jobs/job.{job.cluster}.0/err")
    with page.expect_navigation() as nav:
        page.click("#show-original")
    assert nav.value.status == 200
    assert page.locator("#original-banner").is_visible()
    original = page.inner_text("#log")
    assert any(h.lower() in original.lower() for h in planted_hosts)
    assert XSS in original and page.evaluate("typeof window.__owned") == "undefined"
    records = [json.loads(x) for x in (server["data"] / "audit.log").read_text().splitlines()]
    assert any(
        r["action"] == "section" and r["who"].startswith("admin@") and r["section"] == "err"
        for r in records
    )
    # sign out: the cookie goes, and the page is the anonymous viewer's again
    page.click("header button")
    page.wait_for_url(re.compile(r"/login$"))
    assert not [c for c in page.context.cookies() if c["name"] == "gwms_monitor"]
    page.context.close()
