"""The ``gwms collector`` command group."""

from __future__ import annotations

import click


@click.group(name="collector")
def collector() -> None:
    """The collector: ad store and message board.

    Holds the ads of every service (slots, schedds, factory entries, frontend requests),
    stamps each with the sender's verified identity and expires those not refreshed.
    The same service is the user pool's collector and the WMS collector.
    """
