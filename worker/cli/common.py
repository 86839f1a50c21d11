"""Helpers shared by CLI verbs: settings and logging, configured once per invocation."""

from __future__ import annotations

import click

from worker.cli.output import console
from worker.db import current_revision, head_revision
from worker.leases import Holder
from worker.logging import configure_logging
from worker.resources import DEPARTMENTS
from worker.runtime import Runtime, open_runtime
from worker.settings import Settings, load_settings
from worker.sync.job import SyncContext
from worker.sync.leased import LeaseWait
from worker.sync.plan import UnitRunner, live_department_ids
from worker.units import Unit


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


def unit_runner(runtime: Runtime) -> UnitRunner:
    """With Redis, run each unit under its lease so a manual run never overlaps the workers.

    Departments held by another trigger are waited for when none is stored yet (at most
    ``SYNC_LEASE_SECONDS``, the longest a dead holder's lease blocks them): a practice's units
    read by department are planned from them."""
    settings = runtime.settings
    wait = LeaseWait(settings.lease_seconds, needed=_departments_needed, on_wait=_tell_wait)
    return runtime.runner(wait=wait)


def _departments_needed(ctx: SyncContext, unit: Unit) -> bool:
    # Appointments are planned from the stored departments: with none yet, they must be read.
    return unit.resource == DEPARTMENTS.name and not live_department_ids(ctx, unit.practice_id)


def _tell_wait(unit: Unit, holder: Holder, seconds: float) -> None:
    console.print(
        f"waiting up to {seconds:.0f} s for {unit.key}: another trigger is running it "
        f"(lease held by task {holder.owner}, token {holder.token})",
        highlight=False,
        markup=False,
    )
