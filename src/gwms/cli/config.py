"""The ``gwms config`` command group: check and convert configuration files.

``gwms config check FILE`` reads the file as YAML (syntax, duplicate keys, a mapping
at the top level); with ``--kind NAME`` it also validates it against the model
registered under that name with :func:`gwms.config.register_config_kind`. Every
problem is printed as one ``error: FILE:LINE: key.path: ...`` line on stderr and the
exit status is 1; a valid file prints ``FILE: ok`` on stdout.

``gwms config import FILE.xml [--out FILE.yaml] [--kind frontend|factory]`` converts a
GlideinWMS ``frontend.xml`` or ``glideinWMS.xml`` (:mod:`gwms.frontend.xmlimport`) into
gwms YAML. The YAML goes to ``--out`` (or stdout); every XML setting not converted is
listed by path, in the YAML's header comment and as ``not converted: PATH = VALUE``
lines (on stdout with ``--out``, else on stderr), with ``check: ...`` lines for the
values to review by hand (placeholders, guessed URLs).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import click

from gwms.config import ConfigError, config_kind, config_kinds, read_document, validate_document

# Modules that register configuration kinds when imported. A service module that
# defines a configuration model adds itself here, so `--kind` finds it.
KIND_PROVIDERS: tuple[str, ...] = (
    "gwms.frontend.config", "gwms.factory.config", "gwms.monitor.anonymize.policy", "gwms.simulate.scenario",
)


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


@config.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
@click.option("--out", "-o", metavar="FILE.yaml", default=None, help="Write the YAML here (default: stdout).")
@click.option(
    "--kind",
    type=click.Choice(["frontend", "factory"]),
    default=None,
    help="What the XML holds (default: from its root element).",
)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def import_xml_command(file: str, out: str | None, kind: str | None, force: bool) -> None:
    """Convert a GlideinWMS frontend.xml or glideinWMS.xml into gwms YAML."""
    from gwms.errors import UsageError
    from gwms.frontend.xmlimport import import_xml

    if out is not None and os.path.exists(out) and not force:
        raise UsageError(f"{out} exists; use --force to overwrite it")
    result = import_xml(file, kind=kind)
    text = result.to_yaml(Path(file).name)
    report = [f"check: {note}" for note in result.notes]
    report += [f"not converted: {item}" for item in result.unsupported]
    if out is None:
        click.echo(text, nl=False)
        for line in report:
            click.echo(line, err=True)
        return
    target = Path(out)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None
    for line in report:
        click.echo(line)
    click.echo(
        f"{out}: {result.kind} configuration written; {len(result.unsupported)} setting(s) not converted "
        f"(listed above and in the file's header)"
    )
