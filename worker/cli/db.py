"""`athena-sync db ...`: schema migrations."""

from __future__ import annotations

import click

from worker.cli.common import load
from worker.db import current_revision, make_engine, upgrade


@click.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target Alembic revision.")
def upgrade_cmd(revision: str) -> None:
    """Apply the Alembic migrations to DATABASE_URL."""
    settings = load()
    upgrade(settings.database_url, revision)
    engine = make_engine(settings.database_url)
    try:
        click.echo(f"database at revision {current_revision(engine)}")
    finally:
        engine.dispose()


@db.command("current")
def current_cmd() -> None:
    """Print the revision DATABASE_URL is at."""
    engine = make_engine(load().database_url)
    try:
        click.echo(current_revision(engine) or "not migrated")
    finally:
        engine.dispose()
