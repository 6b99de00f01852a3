"""The ``gwms config`` command group."""

from __future__ import annotations

import click


@click.group(name="config")
def config() -> None:
    """Check and convert configuration files."""
