"""One group's cycle, pure: given what the queries found, the exact plan and ads.

The glideclient ads are checked the way the factory reads them: its own
:class:`~gwms.factory.requests.RequestReader` decrypts and validates them with the
factory's private key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.factory import attributes as FA
from gwms.factory.config import FactoryConfig
from gwms.factory.requests import RequestReader, sealed_aad
from gwms.frontend import adnames as N
from gwms.frontend.advertise import (
    GLIDECLIENT_START,
    build_cycle_ads,
    glidein_params,
    own_ads_constraint,
)
from gwms.frontend.config import FrontendConfig
from gwms.frontend.credentials import (
    Credential,
    CredentialError,
    GlideinTokens,
    credentials_for_entry,
    glidein_subject,
    group_credentials,
    split_request,
)
from gwms.frontend.cycle import (
    SKIP_NO_CREDENTIAL,
    SKIP_NO_KEY,
    GroupSnapshot,
    WmsView,
    plan_group,
    plan_incomplete,
)
from gwms.frontend.matching import Entry
from gwms.frontend.removal import RemovalLevel
from gwms.security import scopes
from gwms.security.hybrid import Decryptor, RsaKeyPair, open_session
from gwms.security.identity import Identity
from gwms.security.layout import ensure_pool_keys
from gwms.security.tokens import TokenVerifier, load_signing_keys, write_token_file

NOW = 100_000.0
WMS = "http://wms.test:9618"
POOL = "http://pool.test:9618"
FACTORY_ID = "factory@test.domain"
ME = "vofrontend@test.domain"
KEY = RsaKeyPair.generate("gf-v1", 2048)
MATCH = 'glidein["attrs"]["GLIDEIN_Site"] in job["DESIRED_Sites"].split(",")'


def config(tmp_path: Path | None = None, **group: Any) -> FrontendConfig:
    creds = []
    if tmp_path is not None:
        creds = [{"name": "pool", "signing_key_dir": str(tmp_path / "keys")}]
    raw: dict[str, Any] = {
        "frontend_name": "vofe",
        "wms_collectors": [{"url": WMS, "factory_identity": FACTORY_ID, "my_identity": ME}],
        "user_pool": {"collectors": [POOL]},
        "security": {"security_name": "vofe", "credentials": creds},
        "groups": {"main": {"match": {"match_expr": MATCH, "job": {"match_attrs": ["DESIRED_Sites"]}}, **group}},
    }
    return FrontendConfig.model_validate(raw)


def entry_ad(name: str, site: str, identity: str = FACTORY_ID, **extra: Any) -> dict[str, Any]:
    ad = {
        "MyType": "glidefactory", "Name": f"{name}@v1@gf", "EntryName": name, "FactoryName": "gf",
        "GlideinName": "v1", "GLIDEIN_Site": site, "GLIDEIN_CPUS": 1, "GLIDEIN_In_Downtime": False,
        "PubKeyID": "gf-v1", "GlideinParamGLIDEIN_Max_Walltime": 3600, "GlideinMonitorTotalStatusIdle": 0,
        "GlideinConfigPerEntryMaxGlideins": 10000, "AuthenticatedIdentity": identity, "LastHeardFrom": 1,
    }
    ad.update(extra)
    return ad


def global_ad(identity: str = FACTORY_ID, key: RsaKeyPair = KEY) -> dict[str, Any]:
    return {"MyType": "glidefactoryglobal", "Name": "v1@gf", "PubKeyID": key.kid,
            "PubKeyValue": key.public_pem, "AuthenticatedIdentity": identity}


def job(status: int, site: str, age: float = 10, cpus: int = 1, host: str | None = None) -> dict[str, Any]:
    ad: dict[str, Any] = {"JobStatus": status, "EnteredCurrentStatus": NOW - age, "RequestCpus": cpus,
                          "DESIRED_Sites": site}
    if host:
        ad["RemoteHost"] = host
    return ad


def slot(name: str, entry: str, state: str = "Unclaimed", activity: str = "Idle",
         client: str = "vofe.main") -> dict[str, Any]:
    return {"Name": name, "State": state, "Activity": activity, "Cpus": 1, "Memory": 2048,
            "GLIDEIN_Factory": "gf", "GLIDEIN_Name": "v1", "GLIDEIN_Entry_Name": entry,
            "GLIDECLIENT_Name": client}


def snapshot(jobs: list[dict[str, Any]], entries: list[dict[str, Any]], *, slots=(), schedd_ad=None,
             globals_=None) -> GroupSnapshot:
    return GroupSnapshot(
        now=NOW,
        schedd_ads={"schedd@test": schedd_ad or {"Name": "schedd@test", "MaxJobsRunning": 1000,
                                                  "TotalRunningJobs": 0}},
        jobs_by_schedd={"schedd@test": jobs},
        slot_ads=list(slots),
        wms=[WmsView(WMS, ME, FACTORY_ID, entries, globals_ if globals_ is not None else [global_ad()])],
    )


def factory_reader() -> RequestReader:
    cfg = FactoryConfig.model_validate({
        "name": "gf", "instance": "v1", "wms_collector": WMS,
        "frontends": {"vofe": {"identity": ME, "security_classes": {"frontend": "fe1"}}},
        "entries": [{"name": "local1"}, {"name": "remote1"}],
    })
    return RequestReader(cfg, Decryptor(KEY))


def fake_token(cred: Credential, entry: str) -> str:
    return f"token-{cred.id}-{entry}"


def clear_part(ad: dict[str, Any]) -> dict[str, Any]:
    sealed = {FA.REQ_ENC_KEY_CODE, FA.REQ_ENC_IDENTITY}
    return {k: v for k, v in ad.items() if k not in sealed and not k.startswith(FA.ENC_PARAM_PREFIX)}


# --------------------------------------------------------------------------- the exact ads


def test_one_cycle_gives_the_exact_ads(tmp_path: Path) -> None:
    ensure_pool_keys(tmp_path)
    cfg = config(tmp_path)
    jobs = [job(1, "LOCAL") for _ in range(5)] + [job(1, "LOCAL", age=700) for _ in range(5)]
    jobs += [job(4, "LOCAL")]  # completed: not counted
    entries = [entry_ad("local1", "LOCAL"), entry_ad("remote1", "REMOTE"),
               entry_ad("evil1", "LOCAL", identity="mallory@test.domain")]
    plan = plan_group(cfg, "main", snapshot(jobs, entries))
    assert [e.name for e in plan.entries] == ["local1@v1@gf", "remote1@v1@gf"]  # evil1 ignored
    local, remote = plan.entries
    # 10 idle (5 older than 10 min): int(10 / 3) + min(5 // 3, 5) = 4; max run int(10 * 1.15 + 1) = 12
    assert (local.request.min_idle, local.request.max_run, local.request.limits) == (4, 12, ())
    assert (local.idle_jobs, local.old_idle_jobs, local.unique_idle_jobs) == (10, 5, 10)
    assert (remote.request.min_idle, remote.request.max_run) == (0, 0)
    assert plan.complete and plan.idle_jobs == 10 and plan.unmatched_idle == 0

    ads = build_cycle_ads(cfg, plan, collector_url=POOL, token_for=fake_token, lifetime=300)
    assert ads.errors == []
    clients = ads.glideclient[WMS]
    assert [a["Name"] for a in clients] == ["pool_local1@v1@gf@vofe.main", "pool_remote1@v1@gf@vofe.main"]
    assert clear_part(clients[0]) == {
        "MyType": "glideclient", "Name": "pool_local1@v1@gf@vofe.main", "ReqGlidein": "local1@v1@gf",
        "ClientName": "vofe.main", "ReqCredentialId": "pool", "ReqIdleGlideins": 4, "ReqMaxGlideins": 12,
        "ReqRemoveExcess": "NO", "ReqRemoveExcessMargin": 0, "ReqIdleLifetime": 0, "ReqPubKeyID": "gf-v1",
        "FrontendName": "vofe", "GroupName": "main", "ClassAdLifetime": 300,
        "GlideinMonitorJobsIdle": 10, "GlideinMonitorJobsIdleOld": 5, "GlideinMonitorJobsIdleUnique": 10,
        "GlideinMonitorJobsRunningHere": 0, "GlideinMonitorGlideinsTotal": 0, "GlideinMonitorGlideinsIdle": 0,
        "GlideinMonitorGlideinsRunning": 0, "GlideinMonitorLimits": "", "GlideinMonitorCycleComplete": True,
    }
    assert sorted(k for k in clients[0] if k.startswith(FA.ENC_PARAM_PREFIX)) == [
        "GlideinEncParamGLIDEIN_Collector", "GlideinEncParamGLIDEIN_Token",
        "GlideinEncParamSecurityClass", "GlideinEncParamSecurityName",
    ]
    # one session key per factory and cycle
    assert clients[0][FA.REQ_ENC_KEY_CODE] == clients[1][FA.REQ_ENC_KEY_CODE]

    # the factory's own reader accepts them, with the collector stamping my identity
    stamped = [{**a, "AuthenticatedIdentity": ME} for a in clients]
    valid, refused = factory_reader().read(stamped)
    assert refused == []
    req = valid["local1"][0]
    assert (req.req_idle, req.req_max, req.identity, req.frontend, req.security_class, req.user) == (
        4, 12, ME, "vofe", "frontend", "fe1")
    assert req.secrets == {"GLIDEIN_Collector": POOL, "GLIDEIN_Token": "token-pool-local1@v1@gf"}
    assert req.client_name == "vofe.main" and req.credential_id == "pool"
    assert valid["remote1"][0].req_idle == 0
    # ... and refuses them under another identity (anti-spoofing)
    _, refused = factory_reader().read([{**clients[0], "AuthenticatedIdentity": "mallory@test.domain"}])
    assert "is not the authenticated identity" in refused[0].reason

    # glideclientglobal: the same session key, the identity sealed to its own name
    (glob,) = ads.glideclientglobal[WMS]
    assert glob["Name"] == "v1@gf@vofe.main" and glob["ReqEncKeyCode"] == clients[0][FA.REQ_ENC_KEY_CODE]
    assert glob["CredentialIds"] == "pool" and glob["NumberOfCredentials"] == 1
    opened = open_session(Decryptor(KEY), glob["ReqEncKeyCode"])
    assert opened.open(glob["ReqEncIdentity"], sealed_aad(glob["Name"], FA.REQ_ENC_IDENTITY)).decode() == ME

    # glideresource: the entry's attributes, what was seen and asked
    res = {a["Name"]: a for a in ads.glideresource}
    assert res["local1@v1@gf@vofe.main"] == {
        "EntryName": "local1", "FactoryName": "gf", "GlideinName": "v1", "GLIDEIN_Site": "LOCAL",
        "GLIDEIN_CPUS": 1, "GLIDEIN_In_Downtime": False,
        "MyType": "glideresource", "Name": "local1@v1@gf@vofe.main", "FrontendName": "vofe",
        "GroupName": "main", "GlideClientName": "vofe.main", "GlideFactoryName": "local1@v1@gf",
        "GlideFactoryCollector": WMS, "ClassAdLifetime": 300,
        "GlideClientMonitorJobsIdle": 10, "GlideClientMonitorJobsIdleOld": 5,
        "GlideClientMonitorJobsIdleUnique": 10, "GlideClientMonitorJobsIdleGlideins": 10,
        "GlideClientMonitorJobsIdleEffective": 10, "GlideClientMonitorJobsRunningHere": 0,
        "GlideClientMonitorGlideinsTotal": 0, "GlideClientMonitorGlideinsIdle": 0,
        "GlideClientMonitorGlideinsRunning": 0, "GlideClientMonitorGlideinsFailed": 0,
        "GlideClientMonitorGlideinsRunningReal": 0, "GlideClientMonitorGlideinsRequestIdle": 4,
        "GlideClientMonitorGlideinsRequestMaxRun": 12, "GlideClientRemoveExcess": "NO",
        "GlideClientRemoveReasons": "", "GlideClientEntryInDowntime": False, "GlideClientLimits": "",
        "GlideClientCycleComplete": True,
        "GlideClientMatchingInternalPythonExpr": MATCH, "GlideClientMatchingGlideinCondorExpr": "True",
        "GlideClientConstraintJobCondorExpr": cfg.job_query("main"), "GlideClientAttrDict": "{}",
    }
    assert ads.names()[("", "glideresource")] == {"local1@v1@gf@vofe.main", "remote1@v1@gf@vofe.main"}


def test_a_global_key_from_another_identity_is_not_used() -> None:
    other = RsaKeyPair.generate("evil-key", 2048)
    plan = plan_group(config(), "main", snapshot([job(1, "LOCAL")], [entry_ad("local1", "LOCAL")],
                                                 globals_=[global_ad("mallory@test.domain", other)]))
    (local,) = plan.entries
    assert local.key is None and local.skipped == SKIP_NO_KEY and local.shares == ()
    ads = build_cycle_ads(config(), plan, collector_url=POOL, token_for=fake_token, lifetime=300)
    assert ads.glideclient == {} and ads.glideclientglobal == {}
    assert ads.glideresource[0]["GlideClientRequestSkipped"] == SKIP_NO_KEY


def test_limits_that_fired_are_named_in_every_ad() -> None:
    cfg = config(limits={"idle_glideins_per_entry": {"max": 2}})
    plan = plan_group(cfg, "main", snapshot([job(1, "LOCAL") for _ in range(30)], [entry_ad("local1", "LOCAL")]))
    (local,) = plan.entries
    assert local.request.min_idle == 2 and local.limits == (N.LIMIT_IDLE_REQUEST_PER_ENTRY,)
    ads = build_cycle_ads(cfg, plan, collector_url=POOL, token_for=fake_token, lifetime=300)
    assert ads.glideclient[WMS][0]["GlideinMonitorLimits"] == N.LIMIT_IDLE_REQUEST_PER_ENTRY
    res = ads.glideresource[0]
    assert res["GlideClientLimitIdleRequestPerEntry"] is True
    assert res["GlideClientLimits"] == N.LIMIT_IDLE_REQUEST_PER_ENTRY


def test_a_saturated_schedd_does_not_count_for_idle_demand() -> None:
    full = {"Name": "schedd@test", "MaxJobsRunning": 10, "TotalRunningJobs": 10}
    plan = plan_group(config(), "main", snapshot([job(1, "LOCAL")] * 20, [entry_ad("local1", "LOCAL")],
                                                 schedd_ad=full))
    assert plan.excluded_schedds and plan.entries[0].request.min_idle == 0


def test_idle_slots_and_running_glideins_are_counted() -> None:
    slots = [slot(f"slot1@g{i}", "local1") for i in range(3)]
    slots += [slot("slot1@r1", "local1", "Claimed", "Busy"), slot("slot1@r2", "local1", "Claimed", "Busy")]
    slots += [slot("slot1@x", "local1", client="other.group")]  # another frontend's: pool total only
    jobs = [job(1, "LOCAL") for _ in range(9)]
    jobs += [job(2, "LOCAL", host="slot1@r1"), job(2, "LOCAL", host="slot1@r2")]
    plan = plan_group(config(), "main", snapshot(jobs, [entry_ad("local1", "LOCAL")], slots=slots))
    (local,) = plan.entries
    assert (local.slots.total, local.slots.idle, local.slots.running) == (5, 3, 2)
    assert local.running_jobs == 2 and local.demand.real_running == 2
    assert plan.totals.global_total == 6 and plan.totals.group_total == 5
    # effective idle 9 - 3 = 6 -> int(6 / 3) = 2 (3 idle slots stay below the entry curb of 5)
    assert local.request.min_idle == 2
    # max run: (9 - 3 + 2) * 1.15 + 1 = 10.2 -> 10
    assert local.request.max_run == 10


def test_entries_in_downtime_ask_nothing_and_may_leave_the_proportions() -> None:
    entries = [entry_ad("local1", "LOCAL", GLIDEIN_In_Downtime=True), entry_ad("local2", "LOCAL")]
    jobs = [job(1, "LOCAL") for _ in range(12)]
    shared = plan_group(config(), "main", snapshot(jobs, entries))
    assert shared.entries[0].request.min_idle == 0 and shared.entries[0].limits == (N.LIMIT_DOWNTIME,)
    assert shared.entries[1].demand.prop_idle == 6  # split with the entry in downtime
    alone = plan_group(config(limits={"ignore_down_entries": True}), "main", snapshot(jobs, entries))
    assert alone.entries[1].demand.prop_idle == 12 and alone.entries[0].idle_jobs == 0


# --------------------------------------------------------------------------- credentials


def test_requests_are_split_over_the_credentials_that_fit(tmp_path: Path) -> None:
    ensure_pool_keys(tmp_path)
    keys = str(tmp_path / "keys")
    cfg = FrontendConfig.model_validate({
        "frontend_name": "vofe",
        "wms_collectors": [{"url": WMS, "factory_identity": FACTORY_ID, "my_identity": ME}],
        "user_pool": {"collectors": [POOL]},
        "security": {"credentials": [
            {"name": "a", "signing_key_dir": keys},
            {"name": "b", "signing_key_dir": keys, "security_class": "other"},
            {"name": "osg", "signing_key_dir": keys, "trust_domain": "osg"},
        ]},
        "groups": {"main": {"match": {"match_expr": MATCH}}},
    })
    plan = plan_group(cfg, "main", snapshot([job(1, "LOCAL") for _ in range(30)], [entry_ad("local1", "LOCAL")]))
    (local,) = plan.entries
    assert local.request.min_idle == 10 and local.request.max_run == 35
    assert [(s.credential.id, s.min_idle, s.max_run) for s in local.shares] == [("a", 5, 18), ("b", 5, 17)]
    ads = build_cycle_ads(cfg, plan, collector_url=POOL, token_for=fake_token, lifetime=300)
    assert [a["Name"] for a in ads.glideclient[WMS]] == ["a_local1@v1@gf@vofe.main", "b_local1@v1@gf@vofe.main"]
    # an entry in another trust domain gets the osg credential only; one in a third none
    osg = plan_group(cfg, "main", snapshot([job(1, "LOCAL")], [entry_ad("local1", "LOCAL", GLIDEIN_TrustDomain="osg")]))
    assert [s.credential.id for s in osg.entries[0].shares] == ["osg"]
    none = plan_group(cfg, "main", snapshot([job(1, "LOCAL")], [entry_ad("local1", "LOCAL", GLIDEIN_TrustDomain="x")]))
    assert none.entries[0].skipped == SKIP_NO_CREDENTIAL


def test_a_failing_credential_leaves_its_request_out() -> None:
    plan = plan_group(config(), "main", snapshot([job(1, "LOCAL")], [entry_ad("local1", "LOCAL")]))

    def broken(cred: Credential, entry: str) -> str:
        raise CredentialError("no signing key")

    ads = build_cycle_ads(config(), plan, collector_url=POOL, token_for=broken, lifetime=300)
    assert ads.glideclient == {} and "no signing key" in ads.errors[0]


def cred(name: str, kind: str = "pool_token", domain: str = "grid") -> Credential:
    return Credential(name, "frontend", domain, kind)


@settings(max_examples=300, deadline=None)
@given(
    idle=st.integers(0, 10_000),
    run=st.integers(0, 10_000),
    n=st.integers(1, 7),
    selection=st.sampled_from(["all", "first", "round_robin", "per_user"]),
    turn=st.integers(0, 50),
)
def test_split_request_adds_up_to_the_request(idle: int, run: int, n: int, selection: str, turn: int) -> None:
    creds = [cred(f"c{i}") for i in range(n)]
    shares = split_request(idle, run, creds, selection, turn)
    assert sum(s.min_idle for s in shares) == idle
    assert sum(s.max_run for s in shares) == run
    assert all(0 <= s.min_idle <= idle and 0 <= s.max_run <= run for s in shares)
    assert len({s.credential.id for s in shares}) == len(shares)
    if selection == "round_robin":
        assert shares[0].credential.id == f"c{turn % n}"


def test_authentication_methods_filter_credentials() -> None:
    creds = [cred("pool"), cred("site", "token_file")]
    entry = Entry("k", "e@v1@gf", {"attrs": {"GLIDEIN_SupportedAuthenticationMethod": "scitoken"}})
    assert [c.id for c in credentials_for_entry(creds, entry)] == ["site"]
    entry = Entry("k", "e@v1@gf", {"attrs": {"GLIDEIN_SupportedAuthenticationMethod": "idtoken,scitoken"}})
    assert [c.id for c in credentials_for_entry(creds, entry)] == ["pool", "site"]
    assert [c.id for c in group_credentials(config(), "main")] == ["default"]


@given(st.text(min_size=1, max_size=80))
def test_glidein_subjects_are_always_valid_identities(entry: str) -> None:
    assert Identity.is_valid(glidein_subject(entry, "test.domain"))


def test_pool_tokens_are_minted_per_entry_and_verify(tmp_path: Path) -> None:
    layout = ensure_pool_keys(tmp_path)
    now = [1_700_000_000.0]
    tokens = GlideinTokens(clock=lambda: now[0])
    (pool,) = group_credentials(config(tmp_path), "main")
    token = tokens.token(pool, "local1@v1@gf")
    assert token is not None
    verifier = TokenVerifier(load_signing_keys(layout.keys_dir), layout.trust_domain(), clock=lambda: now[0])
    claims = verifier.verify(token, [scopes.READ, scopes.ADVERTISE_STARTD])
    assert claims.subject == f"glidein-local1.v1.gf@{layout.trust_domain()}"
    assert claims.scopes == frozenset(scopes.GLIDEIN_SCOPES)
    assert (claims.expires_at - claims.issued_at).total_seconds() == 86400
    assert tokens.token(pool, "local1@v1@gf") == token  # cached while young
    assert tokens.token(pool, "remote1@v1@gf") != token
    now[0] += 86400 / 8 + 1
    assert tokens.token(pool, "local1@v1@gf") != token  # minted again before it gets old


def test_token_files_and_missing_keys(tmp_path: Path) -> None:
    write_token_file(tmp_path / "site.token", "the-site-token")
    cfg = FrontendConfig.model_validate({
        "frontend_name": "vofe",
        "wms_collectors": [{"url": WMS, "factory_identity": FACTORY_ID, "my_identity": ME}],
        "user_pool": {"collectors": [POOL]},
        "security": {"credentials": [
            {"name": "site", "type": "token_file", "path": str(tmp_path / "site.token")},
            {"name": "nokey", "signing_key_dir": str(tmp_path / "nowhere")},
        ]},
        "groups": {"main": {}},
    })
    site, nokey = group_credentials(cfg, "main")
    tokens = GlideinTokens()
    assert tokens.token(site, "e@v1@gf") == "the-site-token"
    with pytest.raises(CredentialError, match="no signing key POOL.key"):
        tokens.token(nokey, "e@v1@gf")


# --------------------------------------------------------------------------- parameters


def test_glidein_params_from_the_group_attributes() -> None:
    cfg = FrontendConfig.model_validate({
        "frontend_name": "vofe",
        "wms_collectors": [{"url": WMS, "factory_identity": FACTORY_ID, "my_identity": ME}],
        "user_pool": {"collectors": [POOL]},
        "attrs": {"GLIDEIN_Retire_Time": {"value": "3600", "type": "int"},
                  "VO": {"value": "osg"},
                  "Hidden": {"value": "x", "parameter": False},
                  "Published": {"value": "y", "parameter": False, "glidein_publish": True}},
        "groups": {"main": {
            "match": {"start_expr": "TARGET.RequestMemory < 4000"},
            "attrs": {"VO": {"value": "cms"},
                      "SiteTag": {"value": 'glidein["attrs"]["GLIDEIN_Site"] + "-" + frontend["VO"]',
                                  "type": "expr"},
                      "Broken": {"value": 'glidein["attrs"]["Nope"]', "type": "expr"}},
        }},
    })
    entry = Entry("k", "local1@v1@gf", {"attrs": {"GLIDEIN_Site": "LOCAL"}, "params": {}, "monitor": {}})
    assert glidein_params(cfg, "main", entry) == {
        "GLIDEIN_Retire_Time": 3600, "VO": "cms", "Published": "y", "SiteTag": "LOCAL-cms",
        GLIDECLIENT_START: "TARGET.RequestMemory < 4000",
    }


# --------------------------------------------------------------------------- removal and failures


def test_removal_is_asked_after_the_configured_cycles_without_idle_jobs() -> None:
    cfg = config(limits={"glideins_removal": {"type": "IDLE", "wait": 1}})
    entries = [entry_ad("local1", "LOCAL")]
    slots = [slot("slot1@g1", "local1")]
    states: dict = {}
    levels = []
    for _ in range(4):
        plan = plan_group(cfg, "main", snapshot([], entries, slots=slots), states)
        states = dict(plan.states)
        levels.append(plan.entries[0].removal.level)
    # no idle jobs for more than 1 cycle -> IDLE, one step per cycle
    assert levels == [RemovalLevel.NO, RemovalLevel.WAIT, RemovalLevel.IDLE, RemovalLevel.IDLE]
    ads = build_cycle_ads(cfg, plan, collector_url=POOL, token_for=fake_token, lifetime=300)
    assert ads.glideclient[WMS][0]["ReqRemoveExcess"] == "IDLE"
    # idle jobs again: at once back to NO
    plan = plan_group(cfg, "main", snapshot([job(1, "LOCAL")], entries, slots=slots), states)
    assert plan.entries[0].removal.level == RemovalLevel.NO


def test_a_failed_cycle_keeps_the_requests_and_never_asks_more_than_wait() -> None:
    cfg = config(limits={"glideins_removal": {"type": "ALL", "wait": 0}})
    entries = [entry_ad("local1", "LOCAL")]
    states: dict = {}
    plan = None
    for _ in range(6):
        plan = plan_group(cfg, "main", snapshot([], entries), states)
        states = dict(plan.states)
    assert plan is not None and plan.entries[0].removal.level == RemovalLevel.ALL
    failed = plan_incomplete(cfg, "main", plan, states, "schedd down")
    assert not failed.complete and failed.error == "schedd down"
    assert failed.entries[0].removal.level == RemovalLevel.WAIT
    assert failed.entries[0].request == plan.entries[0].request
    ads = build_cycle_ads(cfg, failed, collector_url=POOL, token_for=fake_token, lifetime=300)
    (ad,) = ads.glideclient[WMS]
    assert ad["ReqRemoveExcess"] == "WAIT" and ad["GlideinMonitorCycleComplete"] is False
    # no counter moved: the next complete cycle goes back up one step at a time
    again = plan_group(cfg, "main", snapshot([], entries), failed.states)
    assert again.entries[0].removal.level == RemovalLevel.IDLE
    # with nothing before it, a failed cycle has nothing to say
    assert plan_incomplete(cfg, "main", None, {}, "down").entries == ()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 3)), min_size=1, max_size=25))
def test_no_failed_cycle_ever_sends_more_than_wait(steps: list[tuple[bool, int]]) -> None:
    cfg = config(limits={"glideins_removal": {"type": "ALL", "wait": 0}})
    entries = [entry_ad("local1", "LOCAL")]
    states: dict = {}
    plan = None
    for ok, idle in steps:
        if ok or plan is None:
            plan = plan_group(cfg, "main", snapshot([job(1, "LOCAL")] * idle, entries), states)
        else:
            plan = plan_incomplete(cfg, "main", plan, states, "failed")
            assert all(e.removal.level <= RemovalLevel.WAIT for e in plan.entries)
        states = dict(plan.states)


def test_own_ads_constraint() -> None:
    assert own_ads_constraint("vofe") == 'FrontendName =?= "vofe"'
    assert own_ads_constraint("vofe", "main") == 'FrontendName =?= "vofe" && GroupName =?= "main"'
