"""The `athena-sync` command line."""

from __future__ import annotations

import sys

import click

from worker.cli.sandbox import sandbox
from worker.settings import SettingsError


@click.group()
@click.version_option(package_name="athena-sync")
def cli() -> None:
    """Keep a Postgres copy of an athenahealth practice's scheduling data."""


cli.add_command(sandbox)


def main() -> None:
    """Entry point: run the CLI and turn a settings error into a clear message."""
    try:
        cli(standalone_mode=True)
    except SettingsError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
