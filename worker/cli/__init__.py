"""The `athena-sync` command line."""

from __future__ import annotations

from typing import Any

import click

from worker.cli.celery_cmds import beat, worker
from worker.cli.db import db
from worker.cli.deadletters import dead_letters
from worker.cli.demo import demo
from worker.cli.doctor import doctor
from worker.cli.observe import freshness, health, metrics
from worker.cli.sandbox import sandbox
from worker.cli.subscriptions import subscriptions
from worker.cli.sync import runs, sync
from worker.settings import SettingsError

CONFIGURATION_ERROR_EXIT = 2


class AthenaGroup(click.Group):
    """A group that turns a settings error into one clear line and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            click.echo(f"configuration error: {exc}", err=True)
            ctx.exit(CONFIGURATION_ERROR_EXIT)


@click.group(cls=AthenaGroup)
@click.version_option(package_name="athena-sync")
def cli() -> None:
    """Keep a Postgres copy of an athenahealth practice's scheduling data."""


for command in (
    sync,
    runs,
    db,
    doctor,
    subscriptions,
    demo,
    sandbox,
    dead_letters,
    worker,
    beat,
    freshness,
    metrics,
    health,
):
    cli.add_command(command)


def main() -> None:
    """Entry point of the `athena-sync` script."""
    cli(standalone_mode=True)
