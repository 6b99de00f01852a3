"""Options of the startd agent: parsing, checks, defaults, and the two command lines."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from gwms.cli.main import cli
from gwms.cli.startd import startd
from gwms.glidein.config import build_config, parse_attr, parse_attr_value
from gwms.glidein.errors import StartdConfigError
from gwms.glidein.options import OPTIONS, build_parser
from gwms.glidein.slots import Resources


def test_attr_values() -> None:
    assert parse_attr("GLIDEIN_Site=Site A") == ("GLIDEIN_Site", "Site A")
    assert parse_attr("GLIDEIN_CPUS=8") == ("GLIDEIN_CPUS", 8)
    assert parse_attr("X=1.5") == ("X", 1.5)
    assert parse_attr("Flag=TRUE") == ("Flag", True)
    assert parse_attr('Q="08"') == ("Q", "08")
    assert parse_attr("Empty=") == ("Empty", "")
    for bad in ("noequals", "1bad=2", "=x", "a b=1"):
        with pytest.raises(StartdConfigError, match="NAME=VALUE"):
            parse_attr(bad)


@given(st.integers(-(10**12), 10**12))
def test_integers_read_back(n: int) -> None:
    assert parse_attr_value(str(n)) == n


@given(st.text(alphabet=st.sampled_from(list("abc xyz_-/")), min_size=1, max_size=12).filter(lambda s: s.strip().lower() not in ("true", "false")))
def test_words_stay_strings(text: str) -> None:
    assert parse_attr_value(text) == text


def test_build_config_defaults_and_totals(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("abc")
    cfg = build_config(collector="http://127.0.0.1:9618", token_file=token, slots=4, cpus=8, memory=8000, disk=100,
                       attrs=["GLIDEIN_Site=S1", "GLIDEIN_BLACKHOLE_NUMJOBS=5", "GLIDEIN_BLACKHOLE_RATE=0.5"],
                       workdir=tmp_path / "w")
    assert cfg.total == Resources(8, 8000, 100, 0) and cfg.static_slots == 4 and not cfg.partitionable
    assert cfg.attrs["GLIDEIN_Site"] == "S1"
    assert cfg.lifetime.blackhole_numjobs == 5 and cfg.lifetime.blackhole_rate == 0.5
    assert (cfg.lifetime.retire_time, cfg.lifetime.max_idle, cfg.lifetime.max_tail) == (21600, 1200, 400)
    assert cfg.name.startswith("glidein_") and "@" in cfg.name
    detected = build_config(collector="http://x:1", token_file=token, workdir=tmp_path)
    assert detected.total.cpus >= 1 and detected.total.memory > 0 and detected.total.disk > 0


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"collector": "ftp://x"}, "http"),
        ({"slots": 2, "partitionable": True}, "exclude each other"),
        ({"slots": 0}, "at least 1"),
        ({"cpus": 0}, "--cpus must be > 0"),
        ({"retire_spread": 2.0}, "between 0 and 1"),
        ({"max_idle": -1.0}, "--max-idle"),
        ({"token_file": "/no/such/token"}, "does not exist"),
        ({"ad_lifetime": 1}, "--ad-lifetime"),
    ],
)
def test_bad_options(kw: dict, message: str, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("abc")
    values = {"collector": "http://127.0.0.1:1", "token_file": token, **kw}
    with pytest.raises(StartdConfigError, match=message):
        build_config(**values)


def test_click_and_argparse_share_the_options() -> None:
    run = startd.commands["run"]
    click_opts = {p.name: p for p in run.params if isinstance(p, click.Option)}
    assert set(click_opts) == {o.dest for o in OPTIONS} | {"echo"}
    parser = build_parser()
    args = parser.parse_args(["run", "--collector", "http://c:1", "--token", "t", "--attr", "A=1", "--attr", "B=2",
                              "--partitionable", "--cpus", "4", "--max-idle", "30"])
    assert args.attrs == ["A=1", "B=2"] and args.partitionable and args.cpus == 4 and args.max_idle == 30.0
    for opt in OPTIONS:
        assert click_opts[opt.dest].opts == [opt.flag]
        assert click_opts[opt.dest].required == opt.required


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("abc")
    result = CliRunner().invoke(cli, ["startd", "run", "--collector", "http://127.0.0.1:1", "--token", str(token),
                                      "--slots", "2", "--partitionable"])
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception) and "exclude each other" in str(result.exception)


def test_zipapp_command_writes_the_archive(tmp_path: Path) -> None:
    out = tmp_path / "gwms-startd.pyz"
    result = CliRunner().invoke(cli, ["startd", "zipapp", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists() and "wrote" in result.output
    import zipfile

    names = set(zipfile.ZipFile(out).namelist())
    assert {"__main__.py", "gwms/__init__.py", "gwms/glidein/startd.py", "gwms/glidein/starter.py"} <= names
    assert not any(n.startswith("gwms/pool") or n.endswith(".pyc") for n in names)
