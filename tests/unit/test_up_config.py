"""The configurations ``gwms up`` generates for its factory and frontend, and the
``--config`` overrides merged into them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from gwms.config import ConfigError, load_config
from gwms.embedded.upconfig import (
    ENTRY_SPECS,
    GLIDEINS_PER_ENTRY,
    MATCH_EXPR,
    SLOTS_PER_ENTRY,
    deep_merge,
    factory_config,
    frontend_config,
    load_up_config,
    write_factory_config,
    write_frontend_config,
)
from gwms.factory.config import FactoryConfig
from gwms.frontend.config import FrontendConfig
from gwms.frontend.matchexpr import compile_match_expr

URLS = {"collector": "http://127.0.0.1:1", "wms": "http://127.0.0.1:2"}


def test_the_generated_factory_serves_only_the_embedded_frontend(tmp_path: Path) -> None:
    factory = FactoryConfig.model_validate(factory_config(tmp_path, URLS, "dom"))
    frontend = FrontendConfig.model_validate(frontend_config(tmp_path, URLS, "dom"))
    assert [e.name for e in factory.entries] == ["siteA", "siteB", "siteC"]
    # the factory trusts exactly the identity the frontend has, and the frontend the factory's
    (fe_name, fe), = factory.frontends.items()
    assert fe_name == frontend.security_name and fe.identity == frontend.wms_collectors[0].my_identity == "frontend@dom"
    assert frontend.wms_collectors[0].factory_identity == "factory@dom"
    assert set(fe.security_classes) == {c.security_class for c in frontend.security.credentials}
    sites = {e.attrs["GLIDEIN_Site"] for e in factory.entries}
    assert len(sites) == 3
    for entry in factory.entries:
        _site, cpus, memory, partitionable = ENTRY_SPECS[entry.name]
        assert (entry.cpus(), entry.memory_mb()) == (cpus, memory)
        assert (entry.params.get("SLOTS_LAYOUT") == "partitionable") == partitionable
        assert entry.limits.for_entry().glideins == GLIDEINS_PER_ENTRY
        assert entry.limits.for_frontend("frontend", "frontend").glideins == GLIDEINS_PER_ENTRY
    # the frontend's per-entry limit counts slots (dynamic ones too), the factory's glideins
    assert frontend.request_limits("main").entry_max_glideins == SLOTS_PER_ENTRY
    assert frontend.request_limits("main").max_idle_request == GLIDEINS_PER_ENTRY


JOB = st.fixed_dictionaries(
    {"RequestCpus": st.integers(1, 8), "RequestMemory": st.integers(1, 10000)},
    optional={"DESIRED_Sites": st.lists(st.sampled_from(["SiteA", "SiteB", "SiteC", "Elsewhere"]), min_size=1,
                                        max_size=3).map(",".join)},
)


@given(JOB, st.sampled_from(sorted(ENTRY_SPECS)))
def test_the_match_expr_sends_jobs_only_where_they_fit(job: dict[str, Any], entry: str) -> None:
    site, cpus, memory, _ = ENTRY_SPECS[entry]
    glidein = {"attrs": {"GLIDEIN_Site": site, "GLIDEIN_CPUS": cpus, "GLIDEIN_MaxMemMBs": memory},
               "params": {}, "monitor": {}}
    expected = (job["RequestCpus"] <= cpus and job["RequestMemory"] <= memory
                and ("DESIRED_Sites" not in job or site in job["DESIRED_Sites"].split(",")))
    assert compile_match_expr(MATCH_EXPR).matches(job, glidein) is expected


TREE = st.recursive(
    st.one_of(st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=2)),
    lambda children: st.dictionaries(st.sampled_from("abcd"), children, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.sampled_from("abcd"), TREE, max_size=4),
       st.dictionaries(st.sampled_from("abcd"), TREE, max_size=4))
def test_deep_merge_overrides_win_and_nothing_else_is_lost(base: dict[str, Any], over: dict[str, Any]) -> None:
    base_copy, over_copy = repr(base), repr(over)
    merged = deep_merge(base, over)
    assert repr(base) == base_copy and repr(over) == over_copy  # inputs untouched
    assert set(merged) == set(base) | set(over)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            assert merged[key] == deep_merge(base[key], value)
        else:
            assert merged[key] == value
    for key in set(base) - set(over):
        assert merged[key] == base[key]


def test_entries_merge_by_name_or_are_replaced_by_a_list(tmp_path: Path) -> None:
    path = write_factory_config(tmp_path, URLS, "dom", {
        "loop_delay": 3,
        "entries": {"siteA": {"params": {"GLIDEIN_Max_Tail": 5}},
                    "big": {"attrs": {"GLIDEIN_Site": "Big", "GLIDEIN_CPUS": 16}}},
    })
    assert path == tmp_path / "factory" / "factory.yaml"
    cfg = load_config(path, FactoryConfig)
    assert cfg.loop_delay == 3
    entries = {e.name: e for e in cfg.entries}
    assert list(entries) == ["siteA", "siteB", "siteC", "big"]
    assert entries["siteA"].params["GLIDEIN_Max_Tail"] == 5
    assert entries["siteA"].params["GLIDEIN_Max_Idle"] == 120  # kept
    assert entries["big"].cpus() == 16
    cfg = load_config(write_factory_config(tmp_path, URLS, "dom", {"entries": [{"name": "only"}]}), FactoryConfig)
    assert [e.name for e in cfg.entries] == ["only"]


def test_bad_overrides_are_reported_with_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"factory\.yaml:\d+: .*loop_dealy.*did you mean 'loop_delay'"):
        write_factory_config(tmp_path, URLS, "dom", {"loop_dealy": 3})
    with pytest.raises(ConfigError, match=r"frontend\.yaml:\d+: .*match_expr"):
        write_frontend_config(tmp_path, URLS, "dom", {"groups": {"main": {"match": {"match_expr": "__import__('os')"}}}})
    bad = tmp_path / "up.yaml"
    bad.write_text("frontend: {}\nfactroy: {}\n")
    with pytest.raises(ConfigError, match=r"up\.yaml:2: factroy"):
        load_up_config(bad)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"frontend": {"loop_delay": 5}}))
    assert load_up_config(good).frontend == {"loop_delay": 5}
    assert load_up_config(None).factory == {}
