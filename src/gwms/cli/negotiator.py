"""The ``gwms negotiator`` command group."""

from __future__ import annotations

import click


@click.group(name="negotiator")
def negotiator() -> None:
    """The negotiator: matchmaking and fair share.

    Matches idle jobs to unclaimed slots with ClassAd Requirements, START and Rank,
    serving owners in fair-share order.
    """
