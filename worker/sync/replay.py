"""Replaying dead letters: re-run a failed unit of work, or re-map a stored bad record.

Success resolves the letter (and the data lands); failure bumps its ``attempts``. Record letters
are re-mapped from the copy kept in Postgres; nothing about them is logged but ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from models import DeadLetter
from tasks import RESOURCE_MODULES, get_resource
from worker.parse import BadRecord
from worker.sync.appointments import department_zones
from worker.sync.job import SyncContext
from worker.sync.orchestrate import default_window
from worker.sync.runner import run_unit
from worker.sync.runs import RunResult
from worker.sync.units import Unit
from worker.sync.upsert import upsert_page

log = structlog.get_logger()


@dataclass(frozen=True)
class ReplayOutcome:
    """What replaying one letter did (or, in a dry run, would do)."""

    letter_id: int
    kind: str
    action: str
    result: str
    detail: str = ""


def select_letters(
    session: Session,
    *,
    ids: Sequence[int] | None = None,
    all_open: bool = False,
    classes: Sequence[str] | None = None,
    max_attempts: int | None = None,
) -> list[DeadLetter]:
    """The letters to replay: the given ids, or every open one (optionally of some classes)."""
    query = sa.select(DeadLetter).order_by(DeadLetter.id)
    if ids:
        query = query.where(DeadLetter.id.in_(list(ids)))
    elif all_open:
        # "replayed" letters are replays that never reported back (the process died): retry them.
        query = query.where(DeadLetter.state.in_(("open", "replayed")))
    else:
        return []
    if classes:
        query = query.where(DeadLetter.error_class.in_(list(classes)))
    if max_attempts is not None:
        query = query.where(DeadLetter.attempts < max_attempts)
    return list(session.scalars(query))


def replay_letters(
    ctx: SyncContext,
    *,
    ids: Sequence[int] | None = None,
    all_open: bool = False,
    classes: Sequence[str] | None = None,
    dry_run: bool = False,
    max_attempts: int | None = None,
    run: Callable[[SyncContext, Unit], RunResult] = run_unit,
) -> list[ReplayOutcome]:
    """Replay the chosen letters one by one; one failing never stops the others.

    ``run`` runs a unit of work (pass a leased runner so a replay never overlaps a sync)."""
    with ctx.sessions() as session:
        letters = select_letters(
            session, ids=ids, all_open=all_open, classes=classes, max_attempts=max_attempts
        )
        session.expunge_all()
    outcomes = []
    for letter in letters:
        outcome = _replay_one(ctx, letter, dry_run=dry_run, run=run)
        log.info(
            "deadletter.replayed", letter_id=letter.id, kind=letter.kind, result=outcome.result,
            dry_run=dry_run,
        )  # fmt: skip
        outcomes.append(outcome)
    return outcomes


def _replay_one(
    ctx: SyncContext,
    letter: DeadLetter,
    *,
    dry_run: bool,
    run: Callable[[SyncContext, Unit], RunResult],
) -> ReplayOutcome:
    if letter.state in ("resolved", "discarded"):
        return ReplayOutcome(letter.id, letter.kind, "none", "skipped", f"letter is {letter.state}")
    if letter.kind == "record":
        return _replay_record(ctx, letter, dry_run=dry_run)
    unit = _current(ctx, _unit_of(letter))
    if unit is None:
        return ReplayOutcome(letter.id, letter.kind, "none", "skipped", "no unit of work stored")
    action = f"re-run {unit.key}"
    if dry_run:
        return ReplayOutcome(letter.id, letter.kind, action, "would replay")
    started = ctx.clock()
    _set_state(ctx, letter.id, "replayed")  # in flight: visible while the unit runs
    try:
        result = run(ctx, unit)
    except BaseException:
        _set_state(ctx, letter.id, "open")  # back in the queue, whatever stopped us
        raise
    if result.status == "skipped":
        _set_state(ctx, letter.id, "open")
        return ReplayOutcome(letter.id, letter.kind, action, "skipped", result.error or "")
    if result.status in ("succeeded", "partial"):
        _resolve(ctx, letter.id, f"replayed by run {result.run_id}")
        return ReplayOutcome(letter.id, letter.kind, action, "resolved", f"run {result.run_id}")
    _set_state(ctx, letter.id, "open")
    _bump(ctx, letter.id, since=started, message=result.error)
    return ReplayOutcome(letter.id, letter.kind, action, "failed", result.error or result.status)


def _current(ctx: SyncContext, unit: Unit | None) -> Unit | None:
    """An incremental unit reads its stored window widened to today's horizon: the window of
    the day it failed (maybe an explicit --from/--to) and everything a scheduled run reads now."""
    if unit is None or unit.mode != "incremental" or unit.window_start is None:
        return unit
    start, end = default_window(
        ctx.clock().date(),
        days_back=ctx.settings.sync_days_back,
        days_ahead=ctx.settings.sync_days_ahead,
    )
    return replace(
        unit,
        window_start=min(start, unit.window_start),
        window_end=max(end, unit.window_end or end),
    )


def _unit_of(letter: DeadLetter) -> Unit | None:
    args: Any = letter.task_args
    if isinstance(args, dict) and isinstance(args.get("unit"), dict):
        args = args["unit"]
    if not isinstance(args, dict) or "resource" not in args or "practice_id" not in args:
        return None
    try:
        return Unit.from_json(args)
    except (ValueError, TypeError, KeyError):
        return None


def _context_for(session: Session, resource: str, practice_id: str) -> dict[str, Any]:
    if resource != "appointments":
        return {}
    return {"timezones": department_zones(session, practice_id)}


def _replay_record(ctx: SyncContext, letter: DeadLetter, *, dry_run: bool) -> ReplayOutcome:
    known = letter.resource in RESOURCE_MODULES
    if not known or letter.practice_id is None or letter.record is None:
        return ReplayOutcome(letter.id, "record", "none", "skipped", "resource or record unknown")
    resource = get_resource(letter.resource)
    action = f"re-map {letter.resource} record {letter.record_id or '(no id)'}"
    with ctx.sessions.begin() as session:
        try:
            context = _context_for(session, letter.resource, letter.practice_id)
            row = resource.to_row(letter.record, practice_id=letter.practice_id, **context)
        except BadRecord as exc:
            if dry_run:
                return ReplayOutcome(letter.id, "record", action, "would fail", str(exc))
            _bump_in(session, letter.id, now=ctx.clock(), message=str(exc))
            return ReplayOutcome(letter.id, "record", action, "failed", str(exc))
        newer = _superseded(session, resource, row, letter)
        if newer is not None:
            if not dry_run:
                _resolve_in(session, letter.id, now=ctx.clock(), note=f"superseded: {newer}")
            return ReplayOutcome(letter.id, "record", action, "superseded", newer)
        if dry_run:
            return ReplayOutcome(letter.id, "record", action, "would replay", "record now maps")
        upsert_page(
            session, resource.model, [row], run_id=None, now=ctx.clock(),
            guard_column=resource.guard_column,
        )  # fmt: skip
        _resolve_in(session, letter.id, now=ctx.clock(), note="record re-mapped and stored")
    return ReplayOutcome(letter.id, "record", action, "resolved")


def _superseded(
    session: Session, resource: Any, row: dict[str, Any], letter: DeadLetter
) -> str | None:
    """Why the stored snapshot must not be written (a newer sync wrote the row, or the record
    was deleted upstream since), or None."""
    key = tuple(row[column.name] for column in resource.model.__table__.primary_key.columns)
    current = session.get(resource.model, key)
    if current is None:
        return None
    if current.deleted_at is not None:
        return "the record was deleted upstream since"
    if current.last_seen_at > letter.last_failed_at:
        return "a newer version was synced since"
    return None


def _set_state(ctx: SyncContext, letter_id: int, state: str) -> None:
    with ctx.sessions.begin() as session:
        session.execute(
            sa.update(DeadLetter)
            .where(DeadLetter.id == letter_id, DeadLetter.state.in_(("open", "replayed")))
            .values(state=state)
        )


def _resolve(ctx: SyncContext, letter_id: int, note: str) -> None:
    with ctx.sessions.begin() as session:
        _resolve_in(session, letter_id, now=ctx.clock(), note=note)


def _resolve_in(session: Session, letter_id: int, *, now: datetime, note: str) -> None:
    session.execute(
        sa.update(DeadLetter)
        .where(DeadLetter.id == letter_id)
        .values(state="resolved", resolved_at=now, resolution_note=note)
    )


def _bump(ctx: SyncContext, letter_id: int, *, since: datetime, message: str | None) -> None:
    """Count a failed replay on the letter unless the failed run already bumped it."""
    with ctx.sessions.begin() as session:
        letter = session.get(DeadLetter, letter_id)
        if letter is not None and letter.last_failed_at < since:
            _bump_in(session, letter_id, now=ctx.clock(), message=message)


def _bump_in(session: Session, letter_id: int, *, now: datetime, message: str | None) -> None:
    values: dict[str, Any] = {"attempts": DeadLetter.attempts + 1, "last_failed_at": now}
    if message:
        values["error_message"] = message[:2000]
    session.execute(sa.update(DeadLetter).where(DeadLetter.id == letter_id).values(**values))


def discard_letter(session: Session, letter_id: int, *, reason: str, now: datetime) -> bool:
    """Mark a letter discarded with the reason; False if there is no such letter."""
    result = session.execute(
        sa.update(DeadLetter)
        .where(DeadLetter.id == letter_id)
        .values(state="discarded", resolved_at=now, resolution_note=reason)
    )
    return bool(getattr(result, "rowcount", 0))
