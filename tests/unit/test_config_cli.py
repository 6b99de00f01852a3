"""`gwms config check`: one `error: ...` line per problem, exit status 1, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gwms.cli.main import main
from gwms.config import GwmsModel
from gwms.config.kinds import register_config_kind, unregister_config_kind


def gwms_command() -> list[str]:
    script = Path(sys.executable).with_name("gwms")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gwms"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*gwms_command(), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_valid_yaml_is_ok(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text("name: x\nslots: 4\n")
    result = run("config", "check", "good.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "good.yaml: ok (valid YAML)\n"
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.yaml", None, "error: missing.yaml: no such file"),
        (
            "syntax.yaml",
            "a: [1, 2\n",
            "error: syntax.yaml:2:1: YAML syntax error: expected ',' or ']', but got "
            "'<stream end>' (while parsing a flow sequence at line 1)",
        ),
        ("empty.yaml", "", "error: empty.yaml: the file is empty; expected a mapping of settings"),
        (
            "list.yaml",
            "- 1\n",
            "error: list.yaml:1: expected a mapping of settings at the top level, found a list",
        ),
        ("dup.yaml", "a: 1\na: 2\n", "error: dup.yaml:2: duplicate key 'a' (first given at line 1)"),
    ],
)
def test_each_failure_is_one_error_line(
    tmp_path: Path, name: str, content: str | None, expected: str
) -> None:
    if content is not None:
        (tmp_path / name).write_text(content)
    result = run("config", "check", name, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [expected]
    assert "Traceback" not in result.stderr


def test_unknown_kind_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text("a: 1\n")
    result = run("config", "check", "good.yaml", "--kind", "nosuchkind", cwd=tmp_path)
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: unknown config kind 'nosuchkind' (known kinds: ")
    assert "Traceback" not in result.stderr


class Tiny(GwmsModel):
    name: str
    slots: int = 1


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_check_with_a_registered_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    register_config_kind("testtiny", Tiny)
    try:
        good = tmp_path / "good.yaml"
        good.write_text("name: x\nslots: 2\n")
        code, out, err = run_main(["config", "check", str(good), "--kind", "testtiny"], capsys)
        assert (code, err) == (0, "")
        assert out == f"{good}: ok (valid testtiny configuration)\n"

        bad = tmp_path / "bad.yaml"
        bad.write_text("slots: many\nslot: 3\n")
        code, out, err = run_main(["config", "check", str(bad), "--kind", "testtiny"], capsys)
        assert code == 1
        assert err.splitlines() == [
            f"error: {bad}:1: name: required setting is missing",
            f"error: {bad}:1: slots: expected an integer, found 'many'",
            f"error: {bad}:2: slot: unknown setting (did you mean 'slots'?)",
        ]

        code, out, err = run_main(["config", "kinds"], capsys)
        assert code == 0 and "testtiny" in out.splitlines()
    finally:
        unregister_config_kind("testtiny")
