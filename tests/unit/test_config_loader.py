"""load_config: every way a configuration file can be wrong gives one clear, placed message."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from gwms.config import (
    ConfigError,
    GwmsModel,
    config_kind,
    config_kinds,
    dump_config,
    load_config,
    parse_config,
    register_config_kind,
)
from gwms.config.kinds import unregister_config_kind
from gwms.config.loader import data_key_path, parse_document
from gwms.errors import GwmsError


class Limits(GwmsModel):
    max_idle: int = 10
    max_running: int = Field(100, gt=0)


class Entry(GwmsModel):
    name: str
    kind: Literal["local", "slurm"] = "local"
    limits: Limits = Limits()
    attrs: dict[str, str] = {}


class Factory(GwmsModel):
    entries: list[Entry]
    port: int | None = None
    sites: dict[str, Limits] = {}


def write(tmp_path: Path, text: str, name: str = "factory.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str, model: type[BaseModel] = Factory) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, model)
    return info.value


GOOD = """\
entries:
  - name: a
  - name: b
    kind: slurm
    limits: {max_idle: 3}
port: 9618
"""


def test_a_good_file_loads_into_the_model(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), Factory)
    assert [e.name for e in config.entries] == ["a", "b"]
    assert config.entries[1].kind == "slurm"
    assert config.entries[1].limits.max_idle == 3
    assert config.entries[0].limits.max_idle == 10
    assert config.port == 9618


def test_config_error_is_a_gwms_error_answering_400() -> None:
    assert issubclass(ConfigError, GwmsError)
    assert ConfigError.http_status == 400


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml", Factory)
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: no such file"


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path, Factory)


def test_binary_file_is_not_utf8_text(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"a: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"bin.yaml: not UTF-8 text \(byte 0xff at offset 3\)"):
        load_config(path, Factory)


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    err = error_of(tmp_path, "entries:\n  - name: a\nport: [1, 2\n")
    assert str(err) == (
        f"{tmp_path / 'factory.yaml'}:4:1: YAML syntax error: expected ',' or ']', "
        "but got '<stream end>' (while parsing a flow sequence at line 3)"
    )
    err = error_of(tmp_path, "a:\n  b: 1\n c: 2\n")
    assert ":3:2: YAML syntax error: expected <block end>" in str(err)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    err = error_of(tmp_path, text)
    assert str(err).endswith("factory.yaml: the file is empty; expected a mapping of settings")


@pytest.mark.parametrize(
    ("text", "found"),
    [("- a\n- b\n", "a list"), ("just words\n", "'just words'"), ("42\n", "42")],
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, found: str) -> None:
    err = error_of(tmp_path, text)
    assert str(err).endswith(
        f"factory.yaml:1: expected a mapping of settings at the top level, found {found}"
    )


def test_two_documents_in_one_file(tmp_path: Path) -> None:
    err = error_of(tmp_path, "port: 1\n---\nport: 2\n")
    assert "factory.yaml:2:1:" in str(err)
    assert "expected a single document" in str(err)


def test_duplicate_keys_are_errors_not_silently_overwritten(tmp_path: Path) -> None:
    err = error_of(tmp_path, "entries: []\nport: 1\nport: 2\n")
    assert str(err).endswith("factory.yaml:3: duplicate key 'port' (first given at line 2)")


def test_merge_keys_may_override_without_being_duplicates(tmp_path: Path) -> None:
    text = "base: &b {max_idle: 1, max_running: 5}\nsites:\n  x:\n    <<: *b\n    max_idle: 2\n"

    class WithBase(GwmsModel):
        base: Limits
        sites: dict[str, Limits]

    config = load_config(write(tmp_path, text), WithBase)
    assert config.sites["x"].max_idle == 2 and config.sites["x"].max_running == 5


def test_unsafe_yaml_tags_are_refused(tmp_path: Path) -> None:
    err = error_of(tmp_path, "port: !!python/object/apply:os.system ['true']\n")
    assert "factory.yaml:1:7: YAML error: could not determine a constructor" in str(err)


BAD = """\
entries:
  - name: a
  - name: b
  - name: c
    limits:
      max_idle: ten
port: 9618
"""


def test_wrong_type_names_file_line_key_path_expectation_and_value(tmp_path: Path) -> None:
    err = error_of(tmp_path, BAD)
    assert str(err) == (
        f"{tmp_path / 'factory.yaml'}:6: entries[2].limits.max_idle: "
        "expected an integer, found 'ten'"
    )
    (problem,) = err.problems
    assert problem.key_path == ("entries", 2, "limits", "max_idle")
    assert (problem.line, problem.column) == (6, 17)


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    err = error_of(tmp_path, "entries:\n  - name: a\n    limits:\n      max_idel: 4\n")
    assert str(err).endswith(
        "factory.yaml:4: entries[0].limits.max_idel: unknown setting (did you mean 'max_idle'?)"
    )


def test_unknown_key_without_a_close_one(tmp_path: Path) -> None:
    err = error_of(tmp_path, "entries: []\nzebra: 1\n")
    assert str(err).endswith("factory.yaml:2: zebra: unknown setting")


def test_unknown_top_level_key_suggestion(tmp_path: Path) -> None:
    err = error_of(tmp_path, "entries: []\nprot: 1\n")
    assert "prot: unknown setting (did you mean 'port'?)" in str(err)


def test_missing_required_setting_points_at_its_mapping(tmp_path: Path) -> None:
    err = error_of(tmp_path, "entries:\n  - kind: local\n")
    assert str(err).endswith("factory.yaml:2: entries[0].name: required setting is missing")
    err = error_of(tmp_path, "port: 1\n")
    assert str(err).endswith("factory.yaml:1: entries: required setting is missing")


def test_choices_and_bounds_say_what_was_allowed(tmp_path: Path) -> None:
    err = error_of(tmp_path, "entries:\n  - name: a\n    kind: condor\n")
    assert str(err).endswith("factory.yaml:3: entries[0].kind: expected 'local' or 'slurm', found 'condor'")
    err = error_of(tmp_path, "entries:\n  - name: a\n    limits: {max_running: -1}\n")
    assert str(err).endswith(
        "factory.yaml:3: entries[0].limits.max_running: expected a value greater than 0, found -1"
    )


def test_found_values_are_described_by_kind(tmp_path: Path) -> None:
    assert "port: expected an integer, found a list" in str(error_of(tmp_path, "entries: []\nport: [1]\n"))
    assert "entries: expected a list, found a mapping" in str(error_of(tmp_path, "entries: {a: 1}\n"))
    assert "entries[0]: expected a mapping, found 'x'" in str(error_of(tmp_path, "entries: [x]\n"))
    assert "entries[0].name: expected a string, found nothing (null)" in str(
        error_of(tmp_path, "entries:\n  - name:\n")
    )


def test_dict_keys_appear_in_the_key_path(tmp_path: Path) -> None:
    err = error_of(tmp_path, 'entries: []\nsites:\n  "site.one":\n    max_idle: many\n')
    assert str(err).endswith(
        'factory.yaml:4: sites["site.one"].max_idle: expected an integer, found \'many\''
    )


def test_every_problem_is_listed_and_counted_in_order_of_lines(tmp_path: Path) -> None:
    text = "entries:\n  - name: a\n    limits: {max_idle: x}\n  - nme: b\nport: many\n"
    err = error_of(tmp_path, text)
    lines = [p.line for p in err.problems]
    assert lines == sorted(lines)
    assert len(err.problems) == 4  # max_idle, nme unknown, name missing, port
    assert str(err).endswith("(and 3 more problems)")
    assert str(err).startswith(f"{tmp_path / 'factory.yaml'}:3: entries[0].limits.max_idle")


def test_union_members_do_not_leak_into_the_key_path(tmp_path: Path) -> None:
    class Local(GwmsModel):
        type: Literal["local"]
        slots: int

    class Slurm(GwmsModel):
        type: Literal["slurm"]
        partition: str

    class Site(GwmsModel):
        backend: Local | Slurm = Field(discriminator="type")

    err = error_of(tmp_path, "backend:\n  type: local\n  slots: lots\n", Site)
    assert str(err).endswith("factory.yaml:3: backend.slots: expected an integer, found 'lots'")
    err = error_of(tmp_path, "backend:\n  type: slurm\n  partitoin: x\n", Site)
    assert [str(p).split(": ", 1)[1] for p in err.problems] == [
        "backend.partition: required setting is missing",
        "backend.partitoin: unknown setting (did you mean 'partition'?)",
    ]


def test_parse_config_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^inline:2: port: expected an integer"):
        parse_config("entries: []\nport: x\n", Factory, source="inline")


def test_dump_then_load_gives_an_equal_model(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), Factory)
    again = load_config(write(tmp_path, dump_config(config), "again.yaml"), Factory)
    assert again == config


names = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), min_size=1, max_size=10)


@settings(max_examples=60)
@given(
    st.lists(
        st.builds(
            Entry,
            name=names,
            kind=st.sampled_from(["local", "slurm"]),
            limits=st.builds(Limits, max_idle=st.integers(-1000, 1000), max_running=st.integers(1, 10**6)),
            attrs=st.dictionaries(names, names, max_size=3),
        ),
        max_size=4,
    ),
    st.none() | st.integers(0, 65535),
)
def test_dump_round_trips_any_model(entries: list[Entry], port: int | None) -> None:
    config = Factory(entries=entries, port=port)
    assert parse_config(dump_config(config), Factory) == config


@given(
    st.recursive(
        st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
        max_leaves=10,
    ),
    st.lists(st.text(max_size=4) | st.integers(0, 5), max_size=5),
)
def test_data_key_path_only_keeps_steps_that_exist(data: object, loc: list[str | int]) -> None:
    parts, present = data_key_path(data, loc)
    node = data
    for index, part in enumerate(parts):
        if not present and index == len(parts) - 1:
            assert isinstance(node, dict) and part not in node
            break
        node = node[part]  # type: ignore[index]


def test_document_positions() -> None:
    doc = parse_document("a:\n  b:\n    - x\n    - y\n", "t.yaml")
    assert doc.position_of(("a", "b", 1)) == (4, 7)
    assert doc.position_of(("a", "nope")) == (2, 3)
    assert doc.key_position(("a", "b")) == (2, 3)


def test_config_kinds_registry() -> None:
    register_config_kind("testfactory", Factory)
    register_config_kind("testlazy", f"{__name__}:Limits")
    try:
        assert {"testfactory", "testlazy"} <= set(config_kinds())
        assert config_kind("testfactory") is Factory
        assert config_kind("testlazy") is Limits
        register_config_kind("testfactory", Factory)  # the same again is fine
        with pytest.raises(ValueError, match="already registered"):
            register_config_kind("testfactory", Entry)
        with pytest.raises(ConfigError, match="unknown config kind 'testfactroy'") as info:
            config_kind("testfactroy")
        assert "did you mean 'testfactory'?" in str(info.value)
        with pytest.raises(TypeError):
            register_config_kind("bad", dict)  # type: ignore[arg-type]
    finally:
        unregister_config_kind("testfactory")
        unregister_config_kind("testlazy")
    assert "testfactory" not in config_kinds()
