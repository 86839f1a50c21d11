"""Replaying dead letters: re-run a failed unit of work or practice request, or re-map a stored
bad record.

Success resolves the letter (and the data lands); failure bumps its ``attempts``, and so does a
replay that never reported back (its process died). Record letters are re-mapped from the copy
kept in Postgres; nothing about them is logged but ids. A letter that holds nothing to replay
(the arguments of a task that is not a unit or a practice) waits for a person: the periodic
replay leaves it out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from models import DeadLetter
from worker.parse import BadRecord
from worker.resources import REGISTRY, ReadStrategy, get_resource
from worker.store.departments import department_zones
from worker.store.runs import RunResult
from worker.store.upsert import upsert_page
from worker.sync.job import SyncContext
from worker.sync.plan import SyncRequest, default_window, run_practice
from worker.sync.runner import run_unit
from worker.units import Unit

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
    replayable_only: bool = False,
) -> list[DeadLetter]:
    """The letters to replay: the given ids, or every open one (optionally of some classes);
    ``replayable_only`` leaves out letters that hold no work to redo (they wait for a person)."""
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
    letters = list(session.scalars(query))
    if replayable_only:
        letters = [letter for letter in letters if _replayable(letter)]
    return letters


def _replayable(letter: DeadLetter) -> bool:
    if letter.kind == "record":
        return letter.record is not None and letter.practice_id is not None
    return _unit_of(letter) is not None or _request_of(letter) is not None


def replay_letters(
    ctx: SyncContext,
    *,
    ids: Sequence[int] | None = None,
    all_open: bool = False,
    classes: Sequence[str] | None = None,
    dry_run: bool = False,
    max_attempts: int | None = None,
    replayable_only: bool = False,
    run: Callable[[SyncContext, Unit], RunResult] = run_unit,
) -> list[ReplayOutcome]:
    """Replay the chosen letters one by one; one failing never stops the others.

    ``run`` runs a unit of work (pass a leased runner so a replay never overlaps a sync)."""
    with ctx.sessions() as session:
        letters = select_letters(
            session,
            ids=ids,
            all_open=all_open,
            classes=classes,
            max_attempts=max_attempts,
            replayable_only=replayable_only,
        )
        session.expunge_all()
    outcomes = []
    for letter in letters:
        outcome = _replay_one(ctx, letter, dry_run=dry_run, run=run)
        log.info(
            "deadletter.replayed",
            letter_id=letter.id,
            kind=letter.kind,
            result=outcome.result,
            dry_run=dry_run,
        )
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
    work = _work_of(ctx, letter, run)
    if work is None:
        return ReplayOutcome(letter.id, letter.kind, "none", "skipped", "no unit of work stored")
    if dry_run:
        return ReplayOutcome(letter.id, letter.kind, work[0], "would replay")
    return _rerun(ctx, letter, *work)


Work = Callable[[], list[RunResult]]


def _work_of(
    ctx: SyncContext, letter: DeadLetter, run: Callable[[SyncContext, Unit], RunResult]
) -> tuple[str, Work] | None:
    """What replaying a request letter does: its unit again, or its practice's request again
    through the CLI's fan-out; None when it holds neither."""
    unit = _current(ctx, _unit_of(letter))
    if unit is not None:
        return f"re-run {unit.key}", lambda: [run(ctx, unit)]
    request = _request_of(letter)
    if request is None:
        return None
    practice_id = request.practices[0]
    action = f"re-run {'+'.join(request.resources)} {request.mode} for practice {practice_id}"
    return action, partial(run_practice, ctx, request, practice_id, run=run)


def _rerun(ctx: SyncContext, letter: DeadLetter, action: str, work: Work) -> ReplayOutcome:
    """Run the letter's work with the letter marked in flight, then settle the letter."""
    if letter.state == "replayed":
        # The last replay never reported back: its process died (a unit that kills its
        # process must not be replayed for ever). Count it as a failed attempt.
        _bump(ctx, letter.id, since=ctx.clock(), message="a replay of it never finished")
    started = ctx.clock()
    _set_state(ctx, letter.id, "replayed")  # in flight: visible while the work runs
    try:
        results = work()
    except BaseException:
        _set_state(ctx, letter.id, "open")  # back in the queue, whatever stopped us
        raise
    ids = ", ".join(str(r.run_id) for r in results)
    failed = [r for r in results if r.status not in ("succeeded", "partial", "skipped")]
    skipped = [r for r in results if r.status == "skipped"]
    if failed:
        _set_state(ctx, letter.id, "open")
        message = "; ".join(f"{r.unit.key}: {r.error or r.status}" for r in failed)
        _bump(ctx, letter.id, since=started, message=message)
        return ReplayOutcome(letter.id, letter.kind, action, "failed", message)
    if skipped or not results:
        _set_state(ctx, letter.id, "open")
        reason = skipped[0].error if skipped else "nothing was planned"
        return ReplayOutcome(letter.id, letter.kind, action, "skipped", reason or "")
    _resolve(ctx, letter.id, f"replayed by run{'s' if len(results) > 1 else ''} {ids}")
    return ReplayOutcome(letter.id, letter.kind, action, "resolved", f"run {ids}")


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


def _request_of(letter: DeadLetter) -> SyncRequest | None:
    """The practice request a ``sync_practice`` letter keeps, if it parses."""
    args: Any = letter.task_args
    if not isinstance(args, dict) or not isinstance(args.get("request"), dict):
        return None
    try:
        return SyncRequest.from_practice_json(args["request"])
    except (ValueError, TypeError, KeyError):
        return None


def _context_for(session: Session, resource: str, practice_id: str) -> dict[str, Any]:
    if get_resource(resource).read != ReadStrategy.BY_DEPARTMENT:
        return {}
    return {"timezones": department_zones(session, practice_id)}


def _replay_record(ctx: SyncContext, letter: DeadLetter, *, dry_run: bool) -> ReplayOutcome:
    known = letter.resource in REGISTRY
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
            session,
            resource.model,
            [row],
            run_id=None,
            now=ctx.clock(),
            guard_column=resource.guard_column,
        )
        _resolve_in(session, letter.id, now=ctx.clock(), note="record re-mapped and stored")
    return ReplayOutcome(letter.id, "record", action, "resolved")


def _superseded(
    session: Session, resource: Any, row: Mapping[str, Any], letter: DeadLetter
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
