"""`gwms logs decode|keys|anonymize|deanonymize` on a generated factory log tree."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from gwms.cli.main import cli
from gwms.monitor.samples import make_world, write_tree
from gwms.monitor.sections import split_err


def run(*args: str, ok: bool = True) -> str:
    """The command's output; for a failure, its output and the one-line error (a GwmsError)."""
    result = CliRunner().invoke(cli, list(args))
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
        return result.output
    assert result.exit_code != 0, result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        from gwms.errors import GwmsError

        assert isinstance(result.exception, GwmsError), repr(result.exception)  # never a traceback
        return result.output + str(result.exception)
    return result.output


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "client-logs"
    write_tree(src, 4, seed=9, world=make_world(9), lines=30, truncate={"StarterLog"})
    (src / "notes.txt").write_text("operator note: wn0001.example.edu at 10.9.8.7 for alice\n")
    return src


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_keys_anonymize_rotate_deanonymize(tree: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert "created key k1" in run("logs", "keys", "init", "--key-dir", str(keys), "--key-id", "k1")
    assert stat.S_IMODE((keys / "k1.key").stat().st_mode) == 0o600
    anon = tmp_path / "anon"
    out = run(
        "logs", "anonymize", str(tree), "--key-dir", str(keys), "--out", str(anon), "--verify"
    )
    assert "anonymized 5 job(s)" in out and "host" in out
    manifest = json.loads((anon / "anonymization.json").read_text())
    assert manifest["mode"] == "reversible" and manifest["key_id"] == "k1"
    before, after = files_of(tree), files_of(anon)
    assert set(after) == set(before) | {"anonymization.json"}
    note = (anon / "notes.txt").read_text()
    assert "wn0001.example.edu" not in note and "10.9.8.7" not in note
    assert "new current key k2" in run(
        "logs", "keys", "rotate", "--key-dir", str(keys), "--key-id", "k2"
    )
    listing = run("logs", "keys", "list", "--key-dir", str(keys))
    assert "k1" in listing and "k2  created" in listing and "(current)" in listing.splitlines()[-1]
    back = tmp_path / "back"
    out = run("logs", "deanonymize", str(anon), "--key-dir", str(keys), "--out", str(back))
    assert "restored 5 job(s)" in out
    assert files_of(back) == before


def test_irreversible_and_policy(tree: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    run("logs", "keys", "init", "--key-dir", str(keys))
    policy = tmp_path / "policy.yaml"
    policy.write_text("host:\n  allow: ['*.opensciencegrid.org']\n")
    anon = tmp_path / "anon"
    run(
        "logs",
        "anonymize",
        str(tree),
        "--key-dir",
        str(keys),
        "--out",
        str(anon),
        "--mode",
        "irreversible",
        "--policy",
        str(policy),
    )
    err = next(anon.rglob("*.err")).read_bytes()
    assert b"[REDACTED]" in split_err(err).plain_text.encode()
    out = next(anon.rglob("*.out")).read_text()
    assert "gfactory-2.opensciencegrid.org" in out
    msg = run(
        "logs",
        "deanonymize",
        str(anon),
        "--key-dir",
        str(keys),
        "--out",
        str(tmp_path / "b"),
        ok=False,
    )
    assert "irreversibly" in msg


def test_decode(tree: Path) -> None:
    err = next(tree.rglob("*.err"))
    listing = run("logs", "decode", str(err))
    assert "MasterLog" in listing and "StartdHistoryLog" in listing and "problem:" in listing
    text = run("logs", "decode", str(err), "--section", "StartdHistoryLog")
    assert "Owner = " in text
    assert "no section 'Nope'" in run("logs", "decode", str(err), "--section", "Nope", ok=False)


def test_clear_errors(tree: Path, tmp_path: Path) -> None:
    msg = run(
        "logs",
        "anonymize",
        str(tree),
        "--key-dir",
        str(tmp_path / "nokeys"),
        "--out",
        str(tmp_path / "o"),
        ok=False,
    )
    assert "not a key directory" in msg
    keys = tmp_path / "keys"
    run("logs", "keys", "init", "--key-dir", str(keys))
    assert "already holds" in run("logs", "keys", "init", "--key-dir", str(keys), ok=False)
    assert "inside the input" in run(
        "logs", "anonymize", str(tree), "--key-dir", str(keys), "--out", str(tree / "x"), ok=False
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("user:\n  action: truncate\n")
    assert "truncate" in run(
        "logs",
        "anonymize",
        str(tree),
        "--key-dir",
        str(keys),
        "--out",
        str(tmp_path / "o"),
        "--policy",
        str(bad),
        ok=False,
    )
