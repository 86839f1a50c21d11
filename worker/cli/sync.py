"""`athena-sync sync ...` and `athena-sync runs`."""

from __future__ import annotations

import sys
from datetime import date

import click
import sqlalchemy as sa
from rich.table import Table

from models import SyncRun
from worker.cli.common import load, runtime_for, unit_runner
from worker.cli.output import console, deleted_cell, print_failures, progress_bar, summary_table
from worker.store.letters import open_counts
from worker.store.runs import RunResult
from worker.sync.plan import SyncRequest, expand_resources, run_request

RESOURCE_CHOICES = ("providers", "departments", "appointment-types", "appointments", "all")


def _parse_day(_: object, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected YYYY-MM-DD, got {value!r}", param=param) from None


def exit_code(results: list[RunResult]) -> int:
    """0 when every unit succeeded or was partial (letters kept), 1 when any failed."""
    return 1 if any(r.status == "failed" for r in results) else 0


@click.command()
@click.argument("resource", type=click.Choice(RESOURCE_CHOICES))
@click.option("--practice", "practices", multiple=True, help="Practice id (repeatable).")
@click.option("--from", "start", callback=_parse_day, help="First appointment day, YYYY-MM-DD.")
@click.option("--to", "end", callback=_parse_day, help="Last appointment day, YYYY-MM-DD.")
@click.option(
    "--mode",
    type=click.Choice(["incremental", "reconcile", "changed"]),
    default="incremental",
    show_default=True,
    help="Appointments: changes since the watermark (practices polled with the listing), whole "
    "windows, or the changed-data feed (practices on it).",
)
@click.option("--enqueue", is_flag=True, help="Send to the Celery workers instead of running here.")
@click.option("--wait", is_flag=True, help="With --enqueue: wait for the results and print them.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="With --enqueue --wait: stop waiting after SECONDS, list what is still running, exit 1 "
    "(default: no limit).",
)
@click.option("--no-progress", is_flag=True, help="No progress bar (e.g. when logging to a file).")
def sync(
    resource: str,
    practices: tuple[str, ...],
    start: date | None,
    end: date | None,
    mode: str,
    enqueue: bool,
    wait: bool,
    timeout: float | None,
    no_progress: bool,
) -> None:
    """Sync RESOURCE (or all) for the configured or given practices."""
    settings = load()
    if start and end and end < start:
        raise click.BadParameter("--to is before --from")
    if timeout is not None and not (enqueue and wait):
        raise click.UsageError("--timeout needs --enqueue --wait")
    request = SyncRequest(
        resources=expand_resources([resource]),
        practices=tuple(practices) or settings.require_practices(),
        mode=mode,
        start=start,
        end=end,
    )
    if enqueue:
        from worker.cli.enqueue import enqueue_request

        sys.exit(enqueue_request(settings, request, wait=wait, timeout=timeout))
    runtime = runtime_for(settings)
    try:
        with progress_bar(not no_progress) as hook:
            context = runtime.context(on_progress=hook)
            results = run_request(context, request, run=unit_runner(runtime))
    finally:
        runtime.close()
    console.print(summary_table(results))
    print_failures(results)
    sys.exit(exit_code(results))


@click.command()
@click.option("--limit", default=20, show_default=True, help="How many runs to show.")
@click.option("--practice", default=None, help="Only this practice.")
@click.option("--resource", default=None, help="Only this resource.")
@click.option("--status", default=None, help="Only runs with this status.")
def runs(limit: int, practice: str | None, resource: str | None, status: str | None) -> None:
    """List recent sync runs and open dead-letter counts."""
    runtime = runtime_for(load(), with_client=False)
    try:
        with runtime.sessions() as session:
            query = sa.select(SyncRun).order_by(SyncRun.id.desc()).limit(limit)
            for column, value in (
                ("practice_id", practice),
                ("resource", resource),
                ("status", status),
            ):
                if value is not None:
                    query = query.where(getattr(SyncRun, column) == value)
            rows = list(session.scalars(query))
            letters = open_counts(session)
    finally:
        runtime.close()
    console.print(_runs_table(rows))
    console.print(_letters_table(letters))


def _runs_table(rows: list[SyncRun]) -> Table:
    table = Table(title="recent sync runs")
    for name in (
        "id",
        "started",
        "resource",
        "practice",
        "dept",
        "mode",
        "status",
        "fetched",
        "ins",
        "upd",
        "del",
        "letters",
        "api calls",
        "error",
    ):
        table.add_column(name)
    for run in rows:
        table.add_row(
            str(run.id),
            run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            run.resource,
            run.practice_id,
            run.department_id or "",
            run.mode,
            run.status,
            str(run.fetched),
            str(run.inserted),
            str(run.updated),
            deleted_cell(run.deleted, run.deletions_deferred),
            str(run.dead_lettered),
            str(run.api_calls),
            (run.error_summary or "")[:60],
        )
    return table


def _letters_table(counts: dict[tuple[str, str | None], int]) -> Table:
    table = Table(title="open dead letters")
    table.add_column("resource")
    table.add_column("practice")
    table.add_column("open", justify="right")
    for (resource, practice), n in sorted(
        counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")
    ):
        table.add_row(resource, practice or "", str(n))
    if not counts:
        table.add_row("-", "-", "0")
    return table
