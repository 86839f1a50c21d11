"""`athena-sync dead-letters ...`: list, show, replay and discard failures."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click
import sqlalchemy as sa
from rich.table import Table

from models import DeadLetter
from models.dead_letters import LETTER_STATES
from worker.cli.common import load, runtime_for, unit_runner
from worker.cli.output import console
from worker.sync.replay import ReplayOutcome, discard_letter, replay_letters


@click.group("dead-letters")
def dead_letters() -> None:
    """Failed requests and bad records, kept for inspection and replay."""


def _since(_: object, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"expected an ISO date or time, got {value!r}", param=param
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dead_letters.command("list")
@click.option(
    "--state", type=click.Choice([*LETTER_STATES, "all"]), default="open", show_default=True
)
@click.option("--resource", default=None, help="Only this resource, e.g. appointments.")
@click.option("--practice", default=None, help="Only this practice id.")
@click.option("--since", callback=_since, help="Only letters failing since (ISO date/time, UTC).")
@click.option("--limit", default=100, show_default=True)
def list_cmd(
    state: str, resource: str | None, practice: str | None, since: datetime | None, limit: int
) -> None:
    """List dead letters, newest failure first."""
    runtime = runtime_for(load(), with_client=False)
    query = sa.select(DeadLetter).order_by(DeadLetter.last_failed_at.desc()).limit(limit)
    if state != "all":
        query = query.where(DeadLetter.state == state)
    if resource:
        query = query.where(DeadLetter.resource == resource)
    if practice:
        query = query.where(DeadLetter.practice_id == practice)
    if since:
        query = query.where(DeadLetter.last_failed_at >= since)
    try:
        with runtime.sessions() as session:
            letters = list(session.scalars(query))
    finally:
        runtime.close()
    table = Table(title=f"dead letters ({state})")
    for name in (
        "id",
        "kind",
        "class",
        "resource",
        "practice",
        "dept",
        "status",
        "record id",
        "attempts",
        "last failed",
        "state",
        "error",
    ):
        table.add_column(name)
    for d in letters:
        table.add_row(
            str(d.id),
            d.kind,
            d.error_class,
            d.resource,
            d.practice_id or "",
            d.department_id or "",
            str(d.http_status or ""),
            d.record_id or "",
            str(d.attempts),
            d.last_failed_at.strftime("%Y-%m-%d %H:%M:%S"),
            d.state,
            (d.api_error or d.error_message or "")[:60],
        )
    console.print(table)


@dead_letters.command("show")
@click.argument("letter_id", type=int)
def show_cmd(letter_id: int) -> None:
    """Every field of one letter, including the stored record."""
    runtime = runtime_for(load(), with_client=False)
    try:
        with runtime.sessions() as session:
            letter = session.get(DeadLetter, letter_id)
            if letter is None:
                raise click.ClickException(f"no dead letter with id {letter_id}")
            fields = {c.name: getattr(letter, c.name) for c in DeadLetter.__table__.columns}
    finally:
        runtime.close()
    click.echo(json.dumps(fields, indent=2, default=str, ensure_ascii=False))


@dead_letters.command("replay")
@click.argument("letter_ids", type=int, nargs=-1)
@click.option("--all-open", is_flag=True, help="Replay every open letter.")
@click.option("--dry-run", is_flag=True, help="Say what would be replayed; change nothing.")
def replay_cmd(letter_ids: tuple[int, ...], all_open: bool, dry_run: bool) -> None:
    """Re-issue failed units of work or re-map stored records; success resolves the letter."""
    if not letter_ids and not all_open:
        raise click.UsageError("give letter ids or --all-open")
    if letter_ids and all_open:
        raise click.UsageError("give letter ids or --all-open, not both")
    settings = load()
    runtime = runtime_for(settings)
    try:
        outcomes = replay_letters(
            runtime.context(),
            ids=list(letter_ids) or None,
            all_open=all_open,
            dry_run=dry_run,
            run=unit_runner(runtime),
        )
    finally:
        runtime.close()
    console.print(_outcomes_table(outcomes, dry_run=dry_run))
    sys.exit(1 if any(o.result == "failed" for o in outcomes) else 0)


def _outcomes_table(outcomes: list[ReplayOutcome], *, dry_run: bool) -> Table:
    table = Table(title="replay (dry run)" if dry_run else "replay")
    for name in ("letter", "kind", "action", "result", "detail"):
        table.add_column(name)
    for o in outcomes:
        table.add_row(str(o.letter_id), o.kind, o.action, o.result, o.detail[:80])
    if not outcomes:
        table.add_row("-", "-", "nothing to replay", "-", "")
    return table


@dead_letters.command("discard")
@click.argument("letter_id", type=int)
@click.option("--reason", required=True, help="Why this failure needs no replay.")
def discard_cmd(letter_id: int, reason: str) -> None:
    """Mark a letter discarded, keeping it (and the reason) for the record."""
    runtime = runtime_for(load(), with_client=False)
    try:
        with runtime.sessions.begin() as session:
            found = discard_letter(session, letter_id, reason=reason, now=datetime.now(UTC))
    finally:
        runtime.close()
    if not found:
        raise click.ClickException(f"no dead letter with id {letter_id}")
    click.echo(f"dead letter {letter_id} discarded")
