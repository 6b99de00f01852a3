"""The ``gwms web`` command group."""

from __future__ import annotations

import click


@click.group(name="web")
def web() -> None:
    """The web UI: dashboards for pool, factory, frontend, logs.

    One web application with the dashboards and the log monitor's pages.
    """
