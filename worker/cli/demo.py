"""`athena-sync demo`: the built-in sandbox, a local database, one full sync, what landed."""

from __future__ import annotations

import sys
from datetime import date
from typing import TYPE_CHECKING, Any

import click
import sqlalchemy as sa
from rich.table import Table

from models import RESOURCE_MODELS, Appointment, DeadLetter
from worker.cli.common import load
from worker.cli.output import console, print_failures, progress_bar, summary_table
from worker.cli.sync import exit_code
from worker.db import upgrade
from worker.runtime import open_runtime
from worker.settings import Settings
from worker.sync.plan import SyncRequest, expand_resources, run_request

if TYPE_CHECKING:  # the sandbox package is imported only when the demo runs
    from sandbox import SandboxConfig, SandboxServer


def _served_days(truth: dict[str, Any]) -> tuple[date, date]:
    days = [
        date(int(d[6:10]), int(d[0:2]), int(d[3:5]))
        for a in truth.get("appointments", [])
        if isinstance(d := a.get("date"), str) and len(d) == 10
    ]
    return min(days), max(days)


def _demo_settings(
    settings: Settings,
    server: SandboxServer,
    config: SandboxConfig,
    database_url: str | None,
    faults: bool,
) -> Settings:
    practices = config.practices + (config.forbidden_practices if faults else ())
    return settings.with_overrides(
        database_url=database_url or settings.database_url,
        redis_url=None,
        athena_base_url=server.url,
        athena_token_url=server.url + "/oauth2/v1/token",
        athena_client_id=config.client_id,
        athena_client_secret=config.client_secret,
        athena_practice_ids=practices,
        rate_limit_rps=max(settings.rate_limit_rps, 50.0),
        rate_limit_burst=max(settings.rate_limit_burst, 50),
        backoff_base_seconds=min(settings.backoff_base_seconds, 0.05),
    )


@click.command()
@click.option("--database-url", default=None, help="Where to write (default: DATABASE_URL).")
@click.option("--seed", default=1, show_default=True, help="Sandbox data seed.")
@click.option("--appointments", default=2000, show_default=True, help="Appointments to serve.")
@click.option("--faults", is_flag=True, help="Add malformed records and a forbidden practice.")
def demo(database_url: str | None, seed: int, appointments: int, faults: bool) -> None:
    """Start the built-in sandbox, sync everything into the database and show what landed."""
    settings = load()
    from sandbox import FaultConfig, SandboxConfig, SandboxServer

    fault_config = FaultConfig(malformed_appointments=5) if faults else FaultConfig()
    config = SandboxConfig(seed=seed, appointments=appointments, faults=fault_config)
    with SandboxServer(config, host="127.0.0.1", port=0) as server:
        demo_settings = _demo_settings(settings, server, config, database_url, faults)
        console.print(f"sandbox serving at {server.url}; database {_safe(demo_settings)}")
        upgrade(demo_settings.database_url)
        start, end = _served_days(server.truth(config.practices[0]))
        request = SyncRequest(
            resources=expand_resources(["all"]),
            practices=demo_settings.athena_practice_ids,
            mode="incremental",
            start=start,
            end=end,
        )
        runtime = open_runtime(demo_settings)
        try:
            with progress_bar() as hook:
                results = run_request(runtime.context(on_progress=hook), request)
            console.print(summary_table(results))
            print_failures(results)
            with runtime.sessions() as session:
                console.print(_landed(session))
        finally:
            runtime.close()
    # With --faults a failing practice is the point of the demo, not an error.
    sys.exit(0 if faults else exit_code(results))


def _safe(settings: Settings) -> str:
    return sa.engine.make_url(settings.database_url).render_as_string(hide_password=True)


def _landed(session: Any) -> Table:
    table = Table(title="what landed")
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column("marked deleted", justify="right")
    for model in RESOURCE_MODELS:
        deleted_at = model.__table__.c.deleted_at
        total = session.scalar(sa.select(sa.func.count()).select_from(model))
        gone = session.scalar(
            sa.select(sa.func.count()).select_from(model).where(deleted_at.is_not(None))
        )
        table.add_row(model.__tablename__, str(total), str(gone))
    by_status = session.execute(
        sa.select(Appointment.status, sa.func.count()).group_by(Appointment.status)
    )
    table.add_row(
        "  appointments by status", ", ".join(f"{s}={n}" for s, n in sorted(by_status)), ""
    )
    letters = session.scalar(
        sa.select(sa.func.count()).select_from(DeadLetter).where(DeadLetter.state == "open")
    )
    table.add_row("dead_letters (open)", str(letters), "")
    return table
