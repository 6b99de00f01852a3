"""The ``gwms startd`` command group."""

from __future__ import annotations

import click


@click.group(name="startd")
def startd() -> None:
    """The startd agent that runs inside every glidein.

    Advertises slots to the collector, claims matched jobs over outbound
    connections only, and runs them with its starter.
    """
