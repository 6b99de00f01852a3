"""The ``gwms factory`` command group."""

from __future__ import annotations

import click


@click.group(name="factory")
def factory() -> None:
    """The glidein factory: entries, limits, pilots.

    Advertises its entries (sites), reads frontend requests, and submits, watches,
    releases and removes glideins within limits.
    """
