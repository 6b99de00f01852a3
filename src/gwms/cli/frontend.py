"""The ``gwms frontend`` command group."""

from __future__ import annotations

import click


@click.group(name="frontend")
def frontend() -> None:
    """The frontend: turns idle jobs into glidein requests.

    Watches the users' queues and pool, matches idle jobs to factory entries and
    asks factories for as many glideins as the demand justifies.
    """
