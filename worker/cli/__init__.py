"""The `athena-sync` command line."""

from __future__ import annotations

import sys

import click

from worker.cli.db import db
from worker.cli.deadletters import dead_letters
from worker.cli.demo import demo
from worker.cli.sandbox import sandbox
from worker.cli.sync import runs, sync
from worker.settings import SettingsError


@click.group()
@click.version_option(package_name="athena-sync")
def cli() -> None:
    """Keep a Postgres copy of an athenahealth practice's scheduling data."""


for command in (sync, runs, db, demo, sandbox, dead_letters):
    cli.add_command(command)


def main() -> None:
    """Entry point: run the CLI and turn a settings error into a clear message."""
    try:
        cli(standalone_mode=True)
    except SettingsError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
