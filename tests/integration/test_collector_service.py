"""The collector service on loopback, with real tokens and the real constraint language."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gwms.net import ServiceError, ServiceServer
from gwms.pool.collector.client import AsyncCollectorClient, CollectorClient
from gwms.pool.collector.service import create_collector_app
from gwms.pool.collector.store import AdStore
from gwms.security import scopes as s
from gwms.security.tokens import TokenVerifier, generate_signing_key, issue_token

pytestmark = pytest.mark.integration

ISSUER = "pool.test"
KEY = generate_signing_key("POOL")


def token(subject: str, *granted: str) -> str:
    return issue_token(KEY, issuer=ISSUER, subject=subject, scopes=granted)


@pytest.fixture()
def collector() -> Iterator[str]:
    """A collector on a free loopback port, with a fast expiry sweep."""
    app = create_collector_app(
        AdStore(), TokenVerifier(KEY, ISSUER), name="test", expiry_interval=0.1
    )
    with ServiceServer(app) as server:
        yield server.url


def client(url: str, subject: str, *granted: str, **options: Any) -> CollectorClient:
    return CollectorClient(url, token=token(subject, *granted), retries=0, **options)


def startd(url: str, host: str = "startd@node1.test") -> CollectorClient:
    return client(url, host, s.READ, s.ADVERTISE_STARTD, s.ADVERTISE_MASTER)


def slot(name: str, **attrs: Any) -> dict[str, Any]:
    ad: dict[str, Any] = {
        "MyType": "Machine",
        "Name": name,
        "Cpus": 4,
        "Memory": 8192,
        "State": "Unclaimed",
        "Start": "/Expr(TARGET.RequestCpus <= MY.Cpus)/",
    }
    ad.update(attrs)
    return ad


def test_one_ad_is_stamped_with_the_token_identity_not_the_forged_one(collector: str) -> None:
    with startd(collector) as c:
        report = c.advertise(
            slot("slot1@node1", AuthenticatedIdentity="admin@pool.test", lastheardfrom=1)
        )
        assert report.accepted == 1 and report.refused == []
        before = time.time()
        (ad,) = c.query("Machine")
    assert ad["AuthenticatedIdentity"] == "startd@node1.test"
    assert [k for k in ad if k.lower() == "authenticatedidentity"] == ["AuthenticatedIdentity"]
    assert before - 5 <= ad["LastHeardFrom"] <= before + 1
    assert ad["Start"] == "/Expr(TARGET.RequestCpus <= MY.Cpus)/"


def test_get_one_ad_by_type_and_name(collector: str) -> None:
    with startd(collector) as c:
        c.advertise([slot("slot1@node1"), slot("odd/name with space?")])
        assert c.get("MACHINE", "SLOT1@node1")["Name"] == "slot1@node1"
        assert c.get("Machine", "odd/name with space?")["Name"] == "odd/name with space?"
        assert c.get("Machine", "nope") is None
        assert c.get("Scheduler", "slot1@node1") is None


def test_a_thousand_ads_in_one_call(collector: str) -> None:
    ads = [slot(f"slot1@node{i}", Cpus=1 + i % 8) for i in range(1000)]
    with startd(collector) as c:
        report = c.advertise(ads)
        assert report.accepted == 1000 and report.refused == []
        assert c.counts() == {"Machine": 1000}
        got = c.query("Machine")
    assert len(got) == 1000
    assert {a["AuthenticatedIdentity"] for a in got} == {"startd@node1.test"}


def test_client_splits_large_sets_and_reports_refusals_by_overall_index(collector: str) -> None:
    ads: list[Any] = [slot(f"s{i}") for i in range(700)]
    ads[650] = {"MyType": "Machine"}  # no Name
    with startd(collector, "startd@a.test") as c, client(
        collector, "startd@b.test", s.ADVERTISE_STARTD, batch_size=300
    ) as other:
        c.advertise(slot("s5"))
        report = other.advertise(ads)
    assert report.accepted == 698
    assert sorted((r.index, r.name) for r in report.refused) == [(5, "s5"), (650, None)]
    assert "startd@a.test" in report.refused[0].reason


def test_a_startd_token_cannot_advertise_a_factory_ad(collector: str) -> None:
    with startd(collector) as c:
        with pytest.raises(ServiceError) as info:
            c.advertise([slot("mine"), {"MyType": "glidefactory", "Name": "entry@gl@fact"}])
        assert info.value.status == 403
        assert "glidefactory" in info.value.server_message
        assert "ADVERTISE_FACTORY" in info.value.server_message
        assert c.query() == []  # nothing of the refused call was stored
    with client(collector, "factory@fact.test", s.ADVERTISE_FACTORY, s.READ) as f:
        assert f.advertise({"MyType": "glidefactory", "Name": "entry@gl@fact"}).accepted == 1
        assert len(f.query("glidefactory")) == 1


def test_ads_of_another_identity_are_refused_unless_administrator(collector: str) -> None:
    with startd(collector, "startd@a.test") as a, startd(collector, "startd@b.test") as b:
        a.advertise(slot("shared", Cpus=1))
        report = b.advertise(slot("SHARED", Cpus=2))
        assert report.accepted == 0 and "startd@a.test" in report.refused[0].reason
        with client(collector, "admin@pool.test", s.ADMINISTRATOR) as admin:
            assert admin.advertise(slot("shared", Cpus=3)).accepted == 1
        ad = a.get("Machine", "shared")
    assert ad is not None
    assert ad["Cpus"] == 3 and ad["AuthenticatedIdentity"] == "admin@pool.test"


def test_query_with_constraint_projection_and_limit(collector: str) -> None:
    ads = [
        slot(f"slot{i}@n", Cpus=i % 8, State="Claimed" if i % 3 == 0 else "Unclaimed")
        for i in range(60)
    ]
    with startd(collector) as c:
        c.advertise(ads)
        c.advertise({"MyType": "DaemonMaster", "Name": "n", "Cpus": 64})
        got = c.query(
            "Machine", constraint='Cpus >= 6 && State == "Unclaimed"', projection=["name", "Cpus"]
        )
        expected = [
            {"Name": a["Name"], "Cpus": a["Cpus"]}
            for a in ads
            if a["Cpus"] >= 6 and a["State"] == "Unclaimed"
        ]
        assert got == expected
        assert c.query("Machine", constraint="Cpus >= 6", limit=3) == c.query(
            "Machine", constraint="Cpus >= 6"
        )[:3]
        # Across all types, and a constraint long enough to go in a POST body.
        assert {a["MyType"] for a in c.query(constraint="Cpus >= 7")} == {"Machine", "DaemonMaster"}
        long = " || ".join(f'Name == "slot{i}@n"' for i in range(200))
        assert len(long) > 1500
        assert len(c.query("Machine", constraint=long)) == 60


def test_query_needs_read_and_a_valid_token(collector: str) -> None:
    with client(collector, "startd@x.test", s.ADVERTISE_STARTD) as c:
        with pytest.raises(ServiceError) as info:
            c.query("Machine")
        assert info.value.status == 403
    answer = httpx.get(f"{collector}/v1/ads")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthorized"


def test_invalidate_by_name_and_by_constraint_only_own_ads(collector: str) -> None:
    with startd(collector, "startd@a.test") as a, startd(collector, "startd@b.test") as b:
        a.advertise([slot(f"a{i}", Cpus=i) for i in range(6)])
        b.advertise([slot(f"b{i}", Cpus=i) for i in range(6)])
        assert a.invalidate("Machine", name="A0").removed == 1
        report = a.invalidate("Machine", name="b0")
        assert (report.removed, report.refused) == (0, 1)
        report = a.invalidate("machine", constraint="Cpus >= 4")
        assert (report.removed, report.refused) == (2, 2)
        names = sorted(ad["Name"] for ad in a.query("Machine"))
    assert names == ["a1", "a2", "a3", "b0", "b1", "b2", "b3", "b4", "b5"]
    with client(collector, "factory@f.test", s.ADVERTISE_FACTORY) as f:
        with pytest.raises(ServiceError) as info:
            f.invalidate("Machine")
        assert info.value.status == 403


def test_ads_expire_after_their_lifetime(collector: str) -> None:
    with startd(collector) as c:
        c.advertise([slot("short", ClassAdLifetime=0.5), slot("long")])
        assert len(c.query("Machine")) == 2
        deadline = time.monotonic() + 5
        while len(c.query("Machine")) == 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [a["Name"] for a in c.query("Machine")] == ["long"]
    time.sleep(0.3)  # one sweep later the gauge no longer counts it
    metrics = httpx.get(f"{collector}/metrics").text
    assert 'gwms_collector_ads{my_type="Machine"} 1.0' in metrics
    assert re.search(r"gwms_collector_ads_expired_total 1\.0", metrics)


def test_a_bad_constraint_is_a_400_naming_the_position(collector: str) -> None:
    with startd(collector) as c:
        c.advertise(slot("s"))
        with pytest.raises(ServiceError) as info:
            c.query("Machine", constraint="Cpus >= && 3")
    err = info.value
    assert err.status == 400 and err.code == "bad_constraint"
    assert "position" in err.server_message
    assert isinstance(err.detail["position"], int)
    assert 0 <= err.detail["position"] <= len("Cpus >= && 3")


def test_malformed_requests(collector: str) -> None:
    headers = {"Authorization": f"Bearer {token('startd@x.test', s.ADVERTISE_STARTD)}"}
    bad_json = httpx.post(f"{collector}/v1/ads", content=b'{"ads": [', headers=headers)
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "bad_json"
    no_ads = httpx.post(f"{collector}/v1/ads", json={"ad": {}}, headers=headers)
    assert no_ads.status_code == 400
    too_many = httpx.post(
        f"{collector}/v1/ads",
        json={"ads": [{"MyType": "Machine", "Name": str(i)} for i in range(10_001)]},
        headers=headers,
        timeout=30,
    )
    assert too_many.status_code == 413
    assert "10000" in too_many.json()["error"]["message"]


def test_async_client(collector: str) -> None:
    async def scenario() -> tuple[int, list[dict[str, Any]], dict[str, int]]:
        async with AsyncCollectorClient(
            collector, token=token("frontend@fe.test", s.ADVERTISE_FRONTEND, s.READ)
        ) as c:
            report = await c.advertise(
                [{"MyType": "glideclient", "Name": f"req{i}", "ReqIdleGlideins": i} for i in range(5)]
            )
            got = await c.query("glideclient", constraint="ReqIdleGlideins > 2")
            await c.invalidate("glideclient", name="req4")
            return report.accepted, got, await c.counts()

    accepted, got, counts = asyncio.run(scenario())
    assert accepted == 5
    assert [a["Name"] for a in got] == ["req3", "req4"]
    assert counts == {"glideclient": 4}


def test_gwms_collector_run_prints_its_url_and_serves(
    tmp_path: Path, gwms_exe: list[str], cli_env: dict[str, str]
) -> None:
    from gwms.security.tokens import load_signing_key, load_trust_domain

    data = tmp_path / "data"
    proc = subprocess.Popen(
        [*gwms_exe, "collector", "run", "--data", str(data), "--port", "0", "--name", "wms"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(r"gwms collector listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        url = match.group(1)
        # The command made the pool's keys; a token from them is accepted.
        key = load_signing_key(data / "keys", "POOL")
        issuer = load_trust_domain(data / "keys")
        assert issuer
        admin = issue_token(key, issuer=issuer, subject=f"admin@{issuer}", scopes=[s.ADMINISTRATOR])
        with CollectorClient(url, token=admin) as c:
            assert c.advertise(slot("s1")).accepted == 1
            assert [a["Name"] for a in c.query("Machine")] == ["s1"]
        assert httpx.get(f"{url}/healthz").json()["service"] == "collector"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert os.stat(data / "keys" / "POOL.key").st_mode & 0o077 == 0
