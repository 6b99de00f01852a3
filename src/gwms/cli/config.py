"""The ``gwms config`` command group: check configuration files.

``gwms config check FILE`` reads the file as YAML (syntax, duplicate keys, a mapping
at the top level); with ``--kind NAME`` it also validates it against the model
registered under that name with :func:`gwms.config.register_config_kind`. Every
problem is printed as one ``error: FILE:LINE: key.path: ...`` line on stderr and the
exit status is 1; a valid file prints ``FILE: ok`` on stdout.
"""

from __future__ import annotations

import importlib
import sys

import click

from gwms.config import ConfigError, config_kind, config_kinds, read_document, validate_document

# Modules that register configuration kinds when imported. A service module that
# defines a configuration model adds itself here, so `--kind` finds it.
KIND_PROVIDERS: tuple[str, ...] = ()


def load_kind_providers() -> None:
    """Import every module in :data:`KIND_PROVIDERS` so their kinds are registered."""
    for module_name in KIND_PROVIDERS:
        importlib.import_module(module_name)


@click.group(name="config")
def config() -> None:
    """Check and convert configuration files."""


@config.command(name="check")
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@click.option(
    "--kind",
    metavar="NAME",
    default=None,
    help="Validate against this configuration kind (see `gwms config kinds`).",
)
def check(file: str, kind: str | None) -> None:
    """Check FILE: YAML syntax, and with --kind, every setting against its model."""
    model = None
    if kind is not None:
        load_kind_providers()
        model = config_kind(kind)  # an unknown kind is a ConfigError: one line
    try:
        document = read_document(file)
        if model is not None:
            validate_document(document, model)
    except ConfigError as exc:
        if not exc.problems:
            raise
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(1)
    what = f"valid {kind} configuration" if kind else "valid YAML"
    click.echo(f"{file}: ok ({what})")


@config.command(name="kinds")
def kinds() -> None:
    """List the configuration kinds that `check --kind` knows."""
    load_kind_providers()
    names = config_kinds()
    if not names:
        click.echo("no configuration kinds are registered yet")
    for name in names:
        click.echo(name)
