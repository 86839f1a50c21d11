"""Helpers shared by CLI verbs: settings and logging, configured once per invocation."""

from __future__ import annotations

import click

from worker.db import current_revision, head_revision
from worker.logging import configure_logging
from worker.runtime import Runtime, open_runtime
from worker.settings import Settings, load_settings


def load() -> Settings:
    """Validated settings, with logging configured from them."""
    settings = load_settings()
    configure_logging(settings)
    return settings


def runtime_for(settings: Settings, *, with_client: bool = True) -> Runtime:
    """The runtime (without an API client for verbs that only read the database), refusing a
    database whose schema is not at the newest migration."""
    runtime = open_runtime(settings, with_client=with_client)
    try:
        found, wanted = current_revision(runtime.engine), head_revision()
    except Exception:
        runtime.close()
        raise
    if found != wanted:
        runtime.close()
        raise click.ClickException(
            f"the database is at schema revision {found or 'none'}, this version needs "
            f"{wanted}: run `athena-sync db upgrade`"
        )
    return runtime
