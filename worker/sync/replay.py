"""Replaying dead letters: re-run (or send to a worker) a failed unit of work or practice
request, or re-map a stored bad record.

Success resolves the letter (and the data lands); failure bumps its ``attempts``, and so does a
replay that never reported back (its process died, or the unit it sent did not succeed). The
periodic replay passes ``send`` so that units run on the workers, never in its own process
(``worker.sync.replay_units``); record letters are re-mapped from the copy kept in Postgres
(``worker.sync.replay_records``). The periodic replay leaves out letters that wait for a person:
those that hold nothing to replay (the arguments of a task that is not a unit or a practice),
and those of a task refused because its process died on every delivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from models import DeadLetter
from worker.sync.job import SyncContext
from worker.sync.plan import Send, UnitRunner
from worker.sync.replay_records import replay_record
from worker.sync.replay_state import ReplayOutcome
from worker.sync.replay_units import killed_its_process, replay_request, request_of, unit_of
from worker.sync.runner import run_unit

__all__ = ["ReplayOutcome", "discard_letter", "replay_letters", "select_letters"]

log = structlog.get_logger()


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
    ``replayable_only`` leaves out letters that wait for a person (nothing to redo, or a task
    whose process died on every delivery)."""
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
    has_work = unit_of(letter) is not None or request_of(letter) is not None
    return has_work and not killed_its_process(letter)


def replay_letters(
    ctx: SyncContext,
    *,
    ids: Sequence[int] | None = None,
    all_open: bool = False,
    classes: Sequence[str] | None = None,
    dry_run: bool = False,
    max_attempts: int | None = None,
    replayable_only: bool = False,
    run: UnitRunner = run_unit,
    send: Send | None = None,
) -> list[ReplayOutcome]:
    """Replay the chosen letters one by one; one failing never stops the others.

    ``run`` runs a unit here (pass a leased runner so a replay never overlaps a sync); ``send``,
    when given, hands units to workers instead (a practice's departments still run here)."""
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
        outcome = _replay_one(ctx, letter, dry_run=dry_run, run=run, send=send)
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
    ctx: SyncContext, letter: DeadLetter, *, dry_run: bool, run: UnitRunner, send: Send | None
) -> ReplayOutcome:
    if letter.state in ("resolved", "discarded"):
        return ReplayOutcome(letter.id, letter.kind, "none", "skipped", f"letter is {letter.state}")
    if letter.kind == "record":
        return replay_record(ctx, letter, dry_run=dry_run)
    return replay_request(ctx, letter, dry_run=dry_run, run=run, send=send)


def discard_letter(session: Session, letter_id: int, *, reason: str, now: datetime) -> bool:
    """Mark a letter discarded with the reason; False if there is no such letter."""
    result = session.execute(
        sa.update(DeadLetter)
        .where(DeadLetter.id == letter_id)
        .values(state="discarded", resolved_at=now, resolution_note=reason)
    )
    return bool(getattr(result, "rowcount", 0))
