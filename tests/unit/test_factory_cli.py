"""`gwms factory ...`: time parsing, tables, help, config check."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from gwms.cli.factory import factory, parse_when, render_entries, render_pilots
from gwms.errors import UsageError

NOW = 1_700_000_000.0


@pytest.mark.parametrize("text,expected", [
    ("now", NOW),
    ("+90", NOW + 90),
    ("+30m", NOW + 1800),
    ("+2h", NOW + 7200),
    ("+1.5d", NOW + 1.5 * 86400),
    ("1800000000", 1800000000.0),
    ("2030-01-31T12:00", datetime(2030, 1, 31, 12, tzinfo=UTC).timestamp()),
    ("2030-01-31T12:00+01:00", datetime(2030, 1, 31, 11, tzinfo=UTC).timestamp()),
    ("2030-01-31T12:00Z", datetime(2030, 1, 31, 12, tzinfo=UTC).timestamp()),
])
def test_parse_when(text, expected):
    assert parse_when(text, NOW) == expected


@pytest.mark.parametrize("text", ["tomorrow", "+3y", "", "-5m"])
def test_parse_when_refuses_nonsense(text):
    with pytest.raises(UsageError, match="is not a time"):
        parse_when(text, NOW)


@given(st.integers(0, 10**6), st.sampled_from(["", "s", "m", "h", "d", "w"]))
def test_relative_times_are_in_the_future(n, unit):
    assert parse_when(f"+{n}{unit}", NOW) >= NOW


def test_tables():
    pilots = [
        {"cluster": 3, "proc": 0, "entry": "e1", "client_name": "fe.main", "state": "running", "site_id": "123",
         "submitted": NOW - 65, "holds": 0, "reason": ""},
        {"cluster": 3, "proc": 1, "entry": "e1", "client_name": "fe.main", "state": "pending", "site_id": None,
         "created": NOW - 5, "holds": 1, "remove_reason": "excess (IDLE requested)"},
    ]
    text = render_pilots(pilots, NOW)
    assert text.splitlines()[0].split() == ["ID", "ENTRY", "CLIENT", "STATE", "SITE_ID", "AGE", "HOLDS", "NOTE"]
    assert "3.0" in text and "1+05s" in text and "excess (IDLE requested)" in text
    assert text.endswith("2 pilot(s): 1 pending, 1 running")
    entries = [{"name": "e1", "backend": "local", "paused": True, "reason": "paused by operator: x",
                "counts": {"pending": 2, "running": 1}, "requests": [{"idle": 3, "max": 9}]}]
    table = render_entries(entries)
    assert "paused" in table and "3/9" in table and "paused by operator: x" in table


def test_help_lists_the_commands():
    result = CliRunner().invoke(factory, ["--help"])
    assert result.exit_code == 0
    for name in ("run", "q", "entries", "pause", "resume", "downtime"):
        assert name in result.output


def test_operator_commands_without_a_factory_say_so(tmp_path):
    from gwms.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["factory", "q", "--data", str(tmp_path)])
    assert exc.value.code == 1


def test_config_check_knows_the_factory_kind(tmp_path):
    from gwms.cli.main import cli

    path = tmp_path / "f.yaml"
    path.write_text("name: gf\nwms_collector: http://x\nentries: [{name: e1, max_idel: 3}]\n")
    result = CliRunner().invoke(cli, ["config", "check", "--kind", "factory", str(path)])
    assert result.exit_code != 0
    assert "max_idel" in result.output
