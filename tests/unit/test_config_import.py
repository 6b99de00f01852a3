"""`gwms config import`: GlideinWMS frontend.xml / glideinWMS.xml into gwms YAML that loads."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.cli.config import config
from gwms.config import load_config, parse_config
from gwms.factory.config import FactoryConfig
from gwms.frontend.config import FrontendConfig
from gwms.frontend.xmlimport import XmlImportError, import_xml

DATA = Path(__file__).resolve().parents[1] / "data" / "glideinwms_xml"
FRONTEND_RPM = DATA / "frontend_rpm.xml"
FRONTEND_GROUPS = DATA / "frontend_groups.xml"
FACTORY_RPM = DATA / "glideinWMS_rpm.xml"


def _loads(result_yaml: str, model: type) -> object:
    return parse_config(result_yaml, model, "converted.yaml")


# ----------------------------------------------------------------------------- frontend


def test_rpm_frontend_sample_converts_and_loads() -> None:
    result = import_xml(FRONTEND_RPM)
    assert result.kind == "frontend"
    cfg = _loads(result.to_yaml("frontend_rpm.xml"), FrontendConfig)
    assert isinstance(cfg, FrontendConfig)
    assert cfg.frontend_name == "vofrontend_service"
    assert [c.url for c in cfg.wms_collectors] == ["https://gfactory-1.example.org", "https://gfactory-itb.example.org"]
    assert cfg.wms_collectors[0].factory_identity == "gfactory@gfactory-1.example.org"
    assert cfg.wms_collectors[0].my_identity == "vofrontend@gfactory-1.example.org"
    assert cfg.user_pool.collectors == ["https://submit.example.org:9618"]
    assert cfg.user_pool.schedds == ["submit.example.org"]
    assert cfg.security_name == "vofrontend"
    assert cfg.factory_query("main") == '((stringListMember("osg", GLIDEIN_Supported_VOs)))'
    assert "JobUniverse==5" in cfg.job_query("main")
    assert cfg.attrs["GLIDEIN_Expose_Grid_Env"].glidein_publish is True
    assert cfg.attrs["GLIDEIN_Expose_Grid_Env"].parameter is False
    limits = cfg.group("main").limits
    assert limits.idle_vms_per_entry.curb == 5 and limits.running_glideins_per_entry.max == 10000
    assert cfg.credentials_of("main")[0].type == "pool_token"


def test_rpm_frontend_sample_lists_what_it_does_not_convert() -> None:
    result = import_xml(FRONTEND_RPM)
    listed = "\n".join(result.unsupported)
    for path in [
        'frontend/@advertise_delay = "5"',
        "frontend/log_retention/process_logs/process_log[1]/@max_days",
        "frontend/monitor/@base_dir",
        "frontend/security/@sym_key",
        'frontend/security/credentials/credential/@type = "grid_proxy"',
        "frontend/stage/@web_base_url",
        'frontend/collectors/collector[2]/@node = "submit.example.org:9620-9660"',
        "frontend/match/factory/collectors/collector[1]/@DN",
    ]:
        assert path in listed, path
    # converted settings are not listed, comments never are
    assert "frontend_name" not in listed
    assert "@comment" not in listed
    assert "match_expr" not in listed
    text = result.to_yaml("frontend_rpm.xml")
    assert text.startswith("# gwms frontend configuration converted by `gwms config import` from frontend_rpm.xml.")
    assert f"# Settings not converted (gwms does not support them): {len(result.unsupported)}" in text
    assert '#   frontend/@advertise_delay = "5"' in text


def test_groups_sample_converts_limits_credentials_and_disables_what_cannot_run() -> None:
    result = import_xml(FRONTEND_GROUPS)
    cfg = _loads(result.to_yaml(), FrontendConfig)
    assert isinstance(cfg, FrontendConfig)
    assert cfg.loop_delay == 90
    assert cfg.limits.idle_vms_total.max == 2000 and cfg.limits.running_glideins_total_global.curb == 80000
    production = cfg.group("production")
    assert production.limits.ramp_up_attenuation == 4  # its own
    assert cfg.group("opportunistic").limits.ramp_up_attenuation == 2  # the frontend's, copied
    assert production.limits.ignore_down_entries is True
    assert production.limits.running_glideins_per_entry.min == 2
    assert production.limits.partitionable_glidein.min_memory == 2000
    assert production.limits.idle_glideins_lifetime.max == 86400
    removal = cfg.removal_policy("production")
    assert removal.configured.name == "IDLE" and removal.margin == 5 and removal.requests_tracking
    assert cfg.security.credential_selection == "round_robin"
    pool, scitoken = cfg.security.credentials
    assert pool.type == "pool_token" and pool.token_lifetime == 12 * 3600
    assert scitoken.type == "token_file" and str(scitoken.path) == "/etc/gwms-frontend/tokens/osg.scitoken"
    assert production.credentials[0].trust_domain == "OSG"
    assert cfg.attrs["GLIDEIN_Job_Max_Time"].typed_value() == 34800
    assert cfg.attrs["GLIDECLIENT_Start_Extra"].type == "expr"
    assert cfg.user_pool.schedds == ["schedd_1@submit-1.example.org", "submit-2.example.org"]
    assert cfg.job_match_attrs("production") == ["RequestMemory", "DESIRED_Sites"]
    # the comprehension-based group converts; the one gwms cannot evaluate is disabled
    assert cfg.group("opportunistic").enabled is False  # as in the XML
    legacy = cfg.group("legacy")
    assert legacy.enabled is False and legacy.match.match_expr == "False"
    listed = "\n".join(result.unsupported)
    assert 'frontend/groups/group[@name="legacy"]/match/@match_expr' in listed
    assert "replaced by False and the group disabled" in listed
    assert 'group[@name="production"]/config/processing_workers/@matchmakers = "3"' in listed
    assert 'group[@name="production"]/files/file/@absfname' in listed
    assert "credential[2]/@type = \"key_pair\"" in listed
    assert "frontend/security/@idtoken_keyname" in listed


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_every_attribute_not_converted_is_listed(data: st.DataObject) -> None:
    root = ET.fromstring(FRONTEND_RPM.read_text())
    elements = list(root.iter())
    target = data.draw(st.sampled_from(elements))
    target.set("zz_unknown_setting", "42")
    extra = ET.SubElement(data.draw(st.sampled_from(elements)), "zz_unknown_element", {"knob": "7"})
    assert extra is not None
    result = import_xml("sample.xml", text=ET.tostring(root, encoding="unicode"))
    assert sum('@zz_unknown_setting = "42"' in item for item in result.unsupported) == 1
    assert sum('zz_unknown_element/@knob = "7"' in item for item in result.unsupported) == 1


def test_reserved_attributes_and_unknown_plugins_are_listed() -> None:
    text = FRONTEND_RPM.read_text().replace(
        '<attr name="USE_MATCH_AUTH"',
        '<attr name="GLIDEIN_Collector" value="x"/><attr name="USE_MATCH_AUTH"',
    ).replace('proxy_selection_plugin="ProxyAll"', 'proxy_selection_plugin="ProxyCustom"')
    result = import_xml("x.xml", text=text)
    listed = "\n".join(result.unsupported)
    assert 'attr[@name="GLIDEIN_Collector"]/@value = "x"  (set by the frontend itself)' in listed
    assert "proxy_selection_plugin" in listed
    assert "GLIDEIN_Collector" not in result.data.get("attrs", {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<frontend", "not well-formed XML"),
        ('<!DOCTYPE x [<!ENTITY a "b">]><frontend/>', "DTDs and entity declarations"),
        ("<foo/>", "neither <frontend>"),
        ("<frontend/>", "frontend_name is missing"),
        ('<frontend frontend_name="x"><groups><group name="g"/></groups></frontend>', "user pool collector"),
    ],
)
def test_bad_input_is_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(XmlImportError, match=message):
        import_xml("bad.xml", text=text)


def test_bad_value_names_its_path() -> None:
    text = FRONTEND_RPM.read_text().replace('<idle_glideins_per_entry max="100"', '<idle_glideins_per_entry max="lots"')
    with pytest.raises(XmlImportError, match=r'group\[@name="main"\]/config/idle_glideins_per_entry/@max: expected an integer'):
        import_xml("x.xml", text=text)


def test_kind_must_agree() -> None:
    with pytest.raises(XmlImportError, match="--kind factory given, but the file is a frontend"):
        import_xml(FRONTEND_RPM, kind="factory")


# ----------------------------------------------------------------------------- factory


def test_rpm_factory_sample_converts_and_loads() -> None:
    result = import_xml(FACTORY_RPM)
    assert result.kind == "factory"
    cfg = _loads(result.to_yaml(), FactoryConfig)
    assert isinstance(cfg, FactoryConfig)
    assert (cfg.name, cfg.instance, cfg.loop_delay, cfg.restart_attempts) == (
        "gfactory_service", "gfactory_instance", 60, 3
    )
    assert cfg.frontends["vofrontend_service"].identity == "vofrontend_service@factory.example.org"
    assert cfg.frontends["vofrontend_service"].security_classes == {"frontend": "frontend"}
    test, slurm, gt2 = cfg.entries
    assert test.backend == "htcondor-ce" and test.enabled is False
    assert test.backend_settings["gatekeeper"] == "gatekeeper.example.org gatekeeper.example.org:9619"
    assert test.attrs["GLIDEIN_CPUS"] == 8 and test.cpus() == 8 and test.memory_mb() == 16000
    assert test.attrs["GLIDEIN_Site"] == "EXAMPLE_SITE"
    assert test.attrs["USE_CCB"] == "True"  # factory-wide attribute merged in
    assert test.attrs["GLIDEIN_TrustDomain"] == "grid"
    assert test.params == {"CONDOR_VERSION": "default", "CONDOR_ARCH": "default"}
    assert test.limits.entry.idle == 4000 and test.limits.per_frontend.idle == 400
    assert test.limits.for_frontend("vofrontend_service", "frontend").glideins == 3000
    assert (test.cycle.max_submits, test.cycle.cluster_size, test.cycle.max_removals, test.cycle.max_releases) == (
        100, 10, 5, 20
    )
    assert test.allow_frontends == ["vofrontend_service"]
    assert slurm.backend == "ssh" and slurm.backend_settings == {
        "batch": "slurm",
        "gatekeeper": "glidein@login.hpc.example.edu",
    }
    assert slurm.limits.entry.glideins == 500 and slurm.limits.per_frontend.glideins == 5000
    assert "GLIDEIN_Private" not in slurm.attrs
    assert gt2.enabled is False and gt2.backend == "gt2"
    listed = "\n".join(result.unsupported)
    for path in [
        "glidein/@schedd_name",
        "glidein/security/@reuse_oldkey_onstartup_gracetime",
        'entry[@name="TEST_ENTRY"]/@rsl',
        'entry[@name="TEST_ENTRY"]/config/submit/@slots_layout = "partitionable"',
        'submit_attr[@name="+maxMemory"]/@value = "2048"',
        'attr[@name="GLIDEIN_Private"]/@publish = "False"',
        "glidein/condor_tarballs/condor_tarball/@base_dir",
    ]:
        assert path in listed, path
    assert any("wms_collector" in note for note in result.notes)


# ----------------------------------------------------------------------------- the command


def test_cli_import_writes_yaml_that_loads(tmp_path: Path) -> None:
    out = tmp_path / "frontend.yaml"
    result = CliRunner().invoke(config, ["import", str(FRONTEND_RPM), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert 'not converted: frontend/@advertise_delay = "5"' in result.output
    assert result.output.splitlines()[-1].startswith(f"{out}: frontend configuration written; 38 setting(s)")
    cfg = load_config(out, FrontendConfig)
    assert cfg.frontend_name == "vofrontend_service"
    again = CliRunner().invoke(config, ["import", str(FRONTEND_RPM), "--out", str(out)])
    assert again.exit_code != 0 and "use --force" in str(again.exception or again.output)
    forced = CliRunner().invoke(config, ["import", str(FRONTEND_RPM), "--out", str(out), "--force"])
    assert forced.exit_code == 0


def test_cli_import_to_stdout_and_factory_kind(tmp_path: Path) -> None:
    runner = CliRunner(mix_stderr=False) if "mix_stderr" in CliRunner.__init__.__code__.co_varnames else CliRunner()
    result = runner.invoke(config, ["import", str(FACTORY_RPM), "--kind", "factory"])
    assert result.exit_code == 0
    assert result.stdout.startswith("# gwms factory configuration")
    path = tmp_path / "factory.yaml"
    path.write_text(result.stdout)
    assert load_config(path, FactoryConfig).name == "gfactory_service"


def test_cli_import_errors_are_one_line(tmp_path: Path, gwms_exe: list[str], cli_env: dict[str, str]) -> None:
    import subprocess

    bad = tmp_path / "bad.xml"
    bad.write_text("<glidein factory_name='f'><entries/></glidein>")
    done = subprocess.run(
        [*gwms_exe, "config", "import", str(bad)], capture_output=True, text=True, env=cli_env, timeout=60, check=False
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "error: glidein/entries has no <entry>: gwms needs at least one"
