"""The negotiator service's pure decisions and the ``gwms userprio`` command."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from gwms.cli import main as climain
from gwms.cli.negotiator import render_userprio
from gwms.pool.negotiator.fairshare import Accountant, save_accountant
from gwms.pool.negotiator.service import discount_taken, schedd_room
from gwms.pool.resources import Resources


def test_slots_a_schedd_holds_are_not_offered_again() -> None:
    slots = [
        {"Name": "s1", "Cpus": 1},
        {"Name": "s2", "Cpus": 1},
        {"Name": "p1", "PartitionableSlot": True, "Cpus": 4, "Memory": 4000, "Disk": 100},
        {"Name": "p2", "PartitionableSlot": True, "Cpus": 2, "Memory": 4000, "Disk": 100},
    ]
    out = discount_taken(slots, {"s1", "p1"}, {"p1": Resources(3, 1000, 0, 0), "p2": Resources(2, 0, 0, 0)})
    assert [s["Name"] for s in out] == ["s2", "p1"]  # p2 has no CPU left
    assert out[1]["Cpus"] == 1 and out[1]["Memory"] == 3000
    assert slots[2]["Cpus"] == 4  # the input is not changed
    assert discount_taken(slots, set(), {}) == slots


def test_schedd_room() -> None:
    assert schedd_room({"max_jobs_running": 10, "running": 4, "pending": 3}) == 3
    assert schedd_room({"max_jobs_running": 2, "running": 4, "pending": 0}) == 0


def test_userprio_reads_a_state_file(tmp_path: Path) -> None:
    acct = Accountant(half_life=60.0)
    acct.update({"alice@pool": 4.0}, now=0.0)
    acct.update({"alice@pool": 4.0, "bob@pool": 0.0}, now=60.0)
    acct.set_factor("carol@pool", 10.0, now=60.0)
    path = tmp_path / "accountant.json"
    save_accountant(acct, path)
    result = CliRunner().invoke(climain.cli, ["userprio", "--state", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["SUBMITTER", "EFFECTIVE_PRIO", "REAL_PRIO", "FACTOR", "IN_USE", "USAGE_HRS", "LAST_USAGE"]
    # best priority first: carol (0.5 x 10 = 5) is after alice (2.25)
    assert [line.split()[0] for line in lines[1:3]] == ["alice@pool", "carol@pool"]
    assert "2.25" in lines[1] and "0.07" in lines[1]
    result = CliRunner().invoke(climain.cli, ["userprio", "--state", str(path), "-json"])
    data = json.loads(result.output)
    assert [s["name"] for s in data["submitters"]] == ["alice@pool", "carol@pool"]
    result = CliRunner().invoke(climain.cli, ["userprio", "--state", str(path), "-setfactor", "a", "2"])
    assert result.exit_code != 0


def test_render_userprio_says_never_for_unused() -> None:
    text = render_userprio({"half_life": 86400, "now": 1000.0, "submitters": [
        {"name": "x", "effective_priority": 0.5, "real_priority": 0.5, "factor": 1.0, "in_use": 0,
         "usage_hours": 0.0, "last_usage": None}]})
    assert "never" in text and "usage half-life 86400 s" in text


def test_userprio_is_a_registered_command() -> None:
    assert climain.COMMANDS["userprio"][0] == "gwms.cli.negotiator"
    result = CliRunner().invoke(climain.cli, ["--help"])
    assert "userprio" in result.output
