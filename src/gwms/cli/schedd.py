"""The ``gwms schedd`` command group."""

from __future__ import annotations

import click


@click.group(name="schedd")
def schedd() -> None:
    """The schedd: the durable job queue.

    Accepts jobs written in the HTCondor submit language, keeps them in a durable
    queue, hands them to startd agents and keeps their history and events.
    """
