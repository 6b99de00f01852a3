"""``gwms up`` serves the web UI and the log monitor: after a few jobs ran, the
dashboards' JSON agrees with the queue and the factory, and the glideins' logs (pushed
while they ran, or copied by the factory when they ended) are found by entry under /logs/."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from e2e_system import JobClass, System, fast_overrides, wait_for

from gwms.security import scopes

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]


@pytest.fixture()
def system(tmp_path: Path) -> Iterator[System]:
    sys_ = System(tmp_path, fast_overrides())
    try:
        yield sys_
    finally:
        sys_.stop()


def gwms(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "gwms", *args], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout


def test_web_ui_and_log_monitor_of_gwms_up(system: System) -> None:
    out = system.log_path.read_text()
    web = system.urls["web"]
    assert re.search(rf"^  web UI +{re.escape(web)}$", out, re.MULTILINE), out
    assert re.search(r"^  log server +http://127\.0\.0\.1:\d+$", out, re.MULTILINE), out
    client = yaml.safe_load((system.data / "client.json").read_text())
    assert client["web"] == web
    # the generated factory config makes glideins push their logs to the log server
    factory_cfg = yaml.safe_load((system.data / "factory" / "factory.yaml").read_text())
    assert factory_cfg["log_server"]["url"] == system.urls["logs"] + "/v1/push"

    ran = system.submit(JobClass("ran", 4, seconds=1))
    system.submit(JobClass("stuck", 2, cpus=64))  # no entry has 64 CPUs: they stay idle
    wait_for(lambda: len(system.history()) >= 4, timeout=60, interval=0.5, what="the 4 jobs done",
             describe=system.describe)
    assert all(j["ClusterId"] == ran.cluster and j["ExitCode"] == 0 for j in system.history())

    token = system.layout.mint_token("e2e-web", [scopes.READ])
    with httpx.Client(base_url=web, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        # pool: the queue as `gwms q` shows it
        pool = c.get("/pool.json").json()
        assert pool["errors"] == [], pool["errors"]
        q = gwms("q", "--pool", str(system.data))
        assert "Total for query: 2 jobs" in q and "2 idle" in q, q
        assert sum(pool["jobs"]["by_status"].values()) == 2, pool["jobs"]
        assert sum(system.queue_counts().values()) == 2
        assert [s["url"] for s in pool["schedds"]] == [system.urls["schedd"]]
        assert pool["negotiator"]["cycles"] > 0

        # factory: every glidein the factory submitted, per entry, as its own API lists them
        def factory_settled() -> dict[str, Any] | None:
            doc = c.get("/factory.json").json()
            totals = {e["name"]: e["totals"] for f in doc["factories"] for e in f["entries"]}
            pilots = Counter(p["entry"] for p in system.pilots(all_states=True))
            submitted = {name: t["submitted"] for name, t in totals.items() if t["submitted"]}
            return doc if submitted and submitted == dict(pilots) else None

        factory = wait_for(factory_settled, timeout=20, interval=0.5, what="the factory page and its pilots agree")
        assert factory["errors"] == []
        assert factory["logs"] is True
        entries = {e["name"] for f in factory["factories"] for e in f["entries"] if e["totals"]["submitted"]}
        assert entries <= {"siteA", "siteB", "siteC"} and entries

        # logs: each entry that ran glideins has them in the index, found through /logs/
        # (the factory names each glidein's files job.C.P.out/.err; so does the index)
        pilots = {(p["entry"], Path(p["stdout"]).name.removesuffix(".out"))
                  for p in system.pilots(all_states=True) if p.get("stdout")}

        def found(entry: str) -> list[dict[str, Any]]:
            r = c.get("/logs/v1/search", params={"entry": entry, "limit": 50})
            assert r.status_code == 200, r.text
            return [row["job"] for row in r.json()["results"]]

        for entry in sorted(entries):
            jobs = wait_for(lambda e=entry: found(e), timeout=30, interval=1.0,
                            what=f"{entry}'s glidein logs under /logs/", describe=system.describe)
            assert all(j["entry"] == entry for j in jobs), jobs
            assert {j["source"] for j in jobs} <= {"factory", "push"}
            assert {(entry, j["ref"]) for j in jobs} <= pilots, (jobs, pilots)
        # the pages themselves answer too
        assert c.get("/logs/").status_code in (200, 303)
        for page in ("/pool", "/factory", "/frontend"):
            assert c.get(page).status_code == 200, page
