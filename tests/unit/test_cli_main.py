"""The ``gwms`` command's own behaviour: help, version, one-line errors."""

from __future__ import annotations

import subprocess

import click
import pytest
from click.testing import CliRunner

from gwms import __version__
from gwms.cli import main as climain
from gwms.errors import GwmsError


def test_help_lists_every_group() -> None:
    result = CliRunner().invoke(climain.cli, ["--help"])
    assert result.exit_code == 0
    for name in climain.COMMANDS:
        assert name in result.output


def test_each_group_has_documented_help() -> None:
    runner = CliRunner()
    for name, (_, _, short) in climain.COMMANDS.items():
        result = runner.invoke(climain.cli, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        # the group's own docstring starts with the same one-liner the top-level help shows
        assert short.rstrip(".") in result.output, name


def test_version() -> None:
    result = CliRunner().invoke(climain.cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def _boom_command(exc: Exception) -> click.Command:
    @click.command(name="boom")
    def boom() -> None:
        raise exc

    return boom


@pytest.mark.parametrize(
    ("exc", "code", "text"),
    [
        (GwmsError("the sky is falling"), 1, "error: the sky is falling"),
        (RuntimeError("bug here"), 1, "error: RuntimeError: bug here (run with --debug"),
    ],
)
def test_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], exc: Exception, code: int, text: str
) -> None:
    climain.cli.add_command(_boom_command(exc))
    try:
        with pytest.raises(SystemExit) as info:
            climain.main(["boom"])
    finally:
        climain.cli.commands.pop("boom", None)
    assert info.value.code == code
    err = capsys.readouterr().err
    assert text in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_debug_shows_traceback() -> None:
    climain.cli.add_command(_boom_command(GwmsError("with debug")))
    try:
        with pytest.raises(GwmsError):
            climain.main(["--debug", "boom"])
    finally:
        climain.cli.commands.pop("boom", None)


def test_unknown_command_is_a_usage_error(gwms_exe: list[str], cli_env: dict[str, str]) -> None:
    proc = subprocess.run([*gwms_exe, "no-such-command"], capture_output=True, text=True, env=cli_env)
    assert proc.returncode == 2
    assert "No such command" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_console_script_runs(gwms_exe: list[str], cli_env: dict[str, str]) -> None:
    proc = subprocess.run([*gwms_exe, "--help"], capture_output=True, text=True, env=cli_env)
    assert proc.returncode == 0
    assert "factory" in proc.stdout
