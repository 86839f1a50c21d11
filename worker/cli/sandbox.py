"""`athena-sync sandbox ...`: the built-in athenahealth API."""

from __future__ import annotations

import click


@click.group()
def sandbox() -> None:
    """Serve and steer the built-in athenahealth sandbox."""
