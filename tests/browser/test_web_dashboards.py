"""The web dashboards in a real browser (Playwright driving Debian's chromium) on a real pool.

``gwms up`` runs the whole system (collector, WMS collector, schedd, negotiator, factory
with local entries whose glideins join the pool, frontend) with jobs of alice and bob;
``gwms web run --data`` serves the dashboards. The browser opens each page, waits for
the plotly charts to be drawn (from the app's own plotly.min.js), and reads the numbers
in the tables, which must be the services' numbers.

Chromium comes from Debian (``apt-get install chromium``, done by ``.ci/run``); the test
fails, it does not skip, when it is missing. ``GWMS_SCREENSHOTS=DIR`` saves the pages'
screenshots there (how docs/screenshots/pool.png, factory.png, ... were made).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from web_fixtures import RUNNING_ALICE, RUNNING_BOB, WebPool, start_web_pool

pytestmark = pytest.mark.integration

CHROMIUM = Path(os.environ.get("GWMS_CHROMIUM", "/usr/bin/chromium"))
SHOTS = os.environ.get("GWMS_SCREENSHOTS")


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebPool]:
    yield from start_web_pool(tmp_path_factory.mktemp("webbrowser"))


@pytest.fixture(scope="module")
def page(pool: WebPool) -> Iterator[Any]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.errors = errors
        yield pg
        browser.close()
    assert not errors, f"script errors in the pages: {errors}"


def shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def open_dashboard(page: Any, url: str, charts: int) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-charts-drawn]", timeout=30_000)
    assert page.locator(".plot-container").count() == charts  # plotly drew every chart


def cell(page: Any, selector: str) -> int:
    return int(page.locator(selector).inner_text().strip())


def test_pool_dashboard(pool: WebPool, page: Any) -> None:
    open_dashboard(page, pool.web_url + "/pool?range=hour", 5)
    alice = page.locator('#jobs-by-owner tr[data-owner^="alice@"]')
    bob = page.locator('#jobs-by-owner tr[data-owner^="bob@"]')
    assert int(alice.locator('td[data-status="Running"]').inner_text()) == RUNNING_ALICE
    assert int(bob.locator('td[data-status="Running"]').inner_text()) == RUNNING_BOB
    assert int(bob.locator('td[data-status="Held"]').inner_text()) == 1
    assert int(bob.locator('td[data-status="Idle"]').inner_text()) == 1
    assert cell(page, '#jobs-by-status td[data-status="Running"]') == RUNNING_ALICE + RUNNING_BOB
    # slots as the collector has them (claimed ones are stable: the jobs sleep for long)
    collector = pool.get(pool.urls["collector"], "/v1/dashboard")
    claimed = page.locator('#slots tr[data-state="Claimed"] td.slots').all_inner_texts()
    assert sum(int(x) for x in claimed) == sum(r["slots"] for r in collector["slots"] if r["state"] == "Claimed")
    assert sum(int(x) for x in claimed) >= RUNNING_ALICE + RUNNING_BOB
    assert cell(page, "#negotiation td.cycles") >= 1
    assert page.locator('#fairshare tr[data-submitter^="alice@"]').count() == 1
    shot(page, "pool")


def test_job_list_filters_and_job_page(pool: WebPool, page: Any) -> None:
    page.goto(pool.web_url + "/pool/jobs")
    total = cell(page, "#job-count")
    assert total == RUNNING_ALICE + RUNNING_BOB + 2
    page.fill('input[name="owner"]', page.locator('#jobs tr[data-job] td:nth-child(2)').last.inner_text())
    page.fill('input[name="status"]', "Held")
    page.click('button[type="submit"]')
    page.wait_for_url("**/pool/jobs?**")
    assert cell(page, "#job-count") == 1
    assert page.locator("#jobs td.status").all_inner_texts() == ["Held"]
    shot(page, "jobs")
    page.goto(pool.web_url + "/pool/jobs?status=Idle")
    assert cell(page, "#job-count") == 1
    page.locator("#jobs tr[data-job] a").first.click()
    page.wait_for_selector("#analysis")
    assert page.locator("#job-status").inner_text() == "Idle"
    analysis = page.locator("#analysis").inner_text()
    assert "RequestMemory" in analysis or "Memory" in analysis  # the clause no slot satisfies
    assert page.locator("#attributes th", has_text="Owner").count() >= 1
    assert page.locator("#events tr").count() >= 2  # a header and at least the submit event
    shot(page, "job")


def test_factory_dashboard(pool: WebPool, page: Any) -> None:
    open_dashboard(page, pool.web_url + "/factory?range=hour", 3)
    doc = pool.get(pool.urls["factory"], "/v1/dashboard")
    running = 0
    for e in doc["entries"]:
        row = page.locator(f'tr.entry-total[data-entry="{e["name"]}"]')
        assert int(row.locator('td[data-field="submitted"]').inner_text()) >= e["totals"]["running"]
        running += int(row.locator('td[data-field="running"]').inner_text())
        link = page.locator(f'tr[data-entry="{e["name"]}"] a.logs-link')
        assert link.get_attribute("href") == f"/logs/?entry={e['name']}"
    assert running >= 1
    shot(page, "factory")


def test_frontend_dashboard(pool: WebPool, page: Any) -> None:
    open_dashboard(page, pool.web_url + "/frontend?range=hour", 3)
    doc = pool.get(pool.urls["frontend"], "/v1/dashboard")
    group = doc["groups"][0]
    table = page.locator(f'table.group[data-group="{group["name"]}"]')
    running = sum(int(x) for x in table.locator('td[data-field="running"]').all_inner_texts())
    assert running == RUNNING_ALICE + RUNNING_BOB
    assert table.locator("tr[data-entry]").count() == len(group["entries"])
    shot(page, "frontend")


def test_logs_link_opens_the_monitor(pool: WebPool, page: Any) -> None:
    page.goto(pool.web_url + "/factory")
    page.locator("a.logs-link").first.click()
    page.wait_for_load_state()
    assert "/logs/" in page.url
    assert page.locator("form").count() >= 1  # the monitor's login or search form
