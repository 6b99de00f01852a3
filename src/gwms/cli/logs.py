"""The ``gwms logs`` command group."""

from __future__ import annotations

import click


@click.group(name="logs")
def logs() -> None:
    """The log monitor: index, anonymize, search glidein logs.

    Indexes and archives glidein logs, decodes their embedded daemon logs,
    anonymizes them (reversible and irreversible) and serves search and views.
    """
