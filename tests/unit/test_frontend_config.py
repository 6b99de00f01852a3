"""The frontend configuration: defaults in one place, checked expressions, each group's view."""

from __future__ import annotations

from pathlib import Path

import pytest

from gwms.config import ConfigError, config_kind, parse_config
from gwms.frontend.config import DEFAULT_JOB_QUERY, FrontendConfig
from gwms.frontend.removal import RemovalLevel
from gwms.frontend.requests import LevelLimit, RequestLimits

MINIMAL = """\
frontend_name: vofrontend
wms_collectors:
  - url: https://wms.example.org:8618/
    factory_identity: factory@wms.example.org
    my_identity: vofrontend@wms.example.org
user_pool:
  collectors: [https://pool.example.org:9618]
security:
  credentials:
    - name: pool
      signing_key_dir: /etc/gwms/pool-keys
groups:
  main:
    match:
      match_expr: 'glidein["attrs"]["GLIDEIN_Site"] in job["DESIRED_Sites"].split(",")'
      job: {match_attrs: [DESIRED_Sites]}
"""


def load(text: str) -> FrontendConfig:
    return parse_config(text, FrontendConfig, "frontend.yaml")


def test_defaults_are_glideinwms_s() -> None:
    config = load(MINIMAL)
    limits = config.group("main").limits
    assert (limits.idle_glideins_per_entry.max, limits.idle_glideins_per_entry.reserve) == (100, 5)
    assert (limits.idle_vms_per_entry.max, limits.idle_vms_per_entry.curb) == (100, 5)
    per_entry = limits.running_glideins_per_entry
    assert (per_entry.max, per_entry.min, per_entry.relative_to_queue) == (10000, 0, 1.15)
    assert (limits.running_glideins_total.max, limits.running_glideins_total.curb) == (100000, 90000)
    assert (limits.idle_vms_total.max, limits.idle_vms_total.curb) == (1000, 200)
    assert limits.ramp_up_attenuation == 3
    assert limits.partitionable_glidein.min_memory == 2500
    assert limits.idle_glideins_lifetime.max == 0
    removal = limits.glideins_removal
    assert (removal.type, removal.wait, removal.margin, removal.requests_tracking) == ("NO", 0, 0, False)
    fe = config.limits
    for level in (fe.running_glideins_total, fe.running_glideins_total_global):
        assert (level.max, level.curb) == (100000, 90000)
    for level in (fe.idle_vms_total, fe.idle_vms_total_global):
        assert (level.max, level.curb) == (1000, 200)
    assert config.loop_delay == 60
    assert config.match.job.query_expr == DEFAULT_JOB_QUERY
    assert config.wms_collectors[0].url == "https://wms.example.org:8618"


def test_request_limits_default_to_the_request_math_defaults() -> None:
    assert load(MINIMAL).request_limits("main") == RequestLimits()


def test_registered_as_config_kind() -> None:
    import gwms.frontend.config  # noqa: F401

    assert config_kind("frontend") is FrontendConfig


def test_group_view() -> None:
    text = MINIMAL.replace(
        "      job: {match_attrs: [DESIRED_Sites]}\n",
        """\
      start_expr: 'TARGET.RequestMemory < 4000'
      job: {match_attrs: [DESIRED_Sites], query_expr: 'Owner == "alice"'}
      factory: {query_expr: 'GLIDEIN_Site =!= undefined'}
    limits:
      glideins_removal: {type: idle, wait: 3, margin: 2, requests_tracking: true}
      running_glideins_total: {max: 500, curb: 400}
    attrs:
      GLIDEIN_Job_Max_Time: {value: 3600, type: int}
    credentials:
      - {name: site, type: token_file, path: /etc/gwms/site.token, trust_domain: osg}
    schedds: [schedd_2@submit]
""",
    ).replace("groups:\n", "attrs:\n  VO: {value: cms}\nmatch:\n  match_expr: 'job.get(\"Owner\") != \"bob\"'\n  job: {match_attrs: [Owner]}\ngroups:\n")
    config = load(text)
    assert config.job_query("main") == f'({DEFAULT_JOB_QUERY}) && (Owner == "alice")'
    assert config.factory_query("main") == "GLIDEIN_Site =!= undefined"
    assert config.start_expr("main") == "TARGET.RequestMemory < 4000"
    assert config.job_match_attrs("main") == ["Owner", "DESIRED_Sites"]
    policy = config.match_policy("main")
    assert policy.match_expr.job_reads == {"Owner", "DESIRED_Sites"}
    assert policy.match_expr.matches({"Owner": "al", "DESIRED_Sites": "A"}, {"attrs": {"GLIDEIN_Site": "A"}})
    assert not policy.match_expr.matches({"Owner": "bob", "DESIRED_Sites": "A"}, {"attrs": {"GLIDEIN_Site": "A"}})
    assert policy.start_expr is not None
    assert policy.attr_dict == {"VO": "cms", "GLIDEIN_Job_Max_Time": 3600}
    removal = config.removal_policy("main")
    assert (removal.configured, removal.wait_cycles, removal.margin, removal.requests_tracking) == (
        RemovalLevel.IDLE, 3, 2, True
    )
    assert config.request_limits("main").group_total == LevelLimit(500, 400)
    assert [c.name for c in config.credentials_of("main")] == ["pool", "site"]
    assert config.schedds_of("main") == ["schedd_2@submit"]
    assert config.security_name == "vofrontend"
    assert config.enabled_groups() == ["main"]


def test_disable_removal() -> None:
    config = load(MINIMAL.replace("    match:\n", "    limits: {glideins_removal: {type: DISABLE}}\n    match:\n"))
    policy = config.removal_policy("main")
    assert policy.disabled and policy.configured == RemovalLevel.NO


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            """match_expr: 'glidein["attrs"]["GLIDEIN_Site"] in job["DESIRED_Sites"].split(",")'""",
            """match_expr: 'job["a"] and ().__class__'""",
            "frontend.yaml:15: groups.main.match.match_expr: match_expr, line 1, column 14: attribute access",
        ),
        (
            "job: {match_attrs: [DESIRED_Sites]}",
            "job: {query_expr: 'Owner == ', match_attrs: [DESIRED_Sites]}",
            "groups.main.match.job.query_expr: not a valid ClassAd expression: line 1, column 10",
        ),
        ("      signing_key_dir: /etc/gwms/pool-keys\n", "", "a pool_token credential needs signing_key_dir"),
        ("frontend_name: vofrontend", "frontend_name: vo.frontend", "frontend_name"),
        ("  - url: https://wms.example.org:8618/", "  - url: wms.example.org:8618", "expected an http(s) URL"),
        ("    match:\n", "    attrs: {GLIDEIN_Collector: {value: x}}\n    match:\n", "set by the frontend"),
        ("    match:\n", "    limits: {idle_vms_per_entry: {maxx: 3}}\n    match:\n", "did you mean 'max'"),
        ("    match:\n", "    limits: {glideins_removal: {type: SOME}}\n    match:\n", "groups.main.limits.glideins_removal.type"),
        ("    match:\n", "    attrs: {X: {value: abc, type: int}}\n    match:\n", "type int needs an integer"),
    ],
)
def test_errors_name_the_setting(old: str, new: str, message: str) -> None:
    text = MINIMAL.replace(old, new)
    assert text != MINIMAL
    with pytest.raises(ConfigError) as info:
        load(text)
    assert message in str(info.value)


def test_a_group_needs_a_wms_collector() -> None:
    text = MINIMAL.split("wms_collectors:")[0] + "user_pool:" + MINIMAL.split("user_pool:")[1]
    with pytest.raises(ConfigError, match="group 'main' has no WMS collector"):
        load(text)


def test_cli_check_knows_the_frontend_kind(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gwms.cli.config import config

    path = tmp_path / "frontend.yaml"
    path.write_text(MINIMAL)
    result = CliRunner().invoke(config, ["check", str(path), "--kind", "frontend"])
    assert result.exit_code == 0, result.output
    assert "ok (valid frontend configuration)" in result.output
    kinds = CliRunner().invoke(config, ["kinds"])
    assert "frontend" in kinds.output.split()
