"""The ``gwms security`` command group."""

from __future__ import annotations

import click


@click.group(name="security")
def security() -> None:
    """Keys, certificates and tokens."""
