"""What replaying a letter did, and its state changes (open, replayed, resolved, attempts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from models import DeadLetter
from worker.sync.job import SyncContext


@dataclass(frozen=True)
class ReplayOutcome:
    """What replaying one letter did (or, in a dry run, would do)."""

    letter_id: int
    kind: str
    action: str
    result: str
    detail: str = ""


def set_state(ctx: SyncContext, letter_id: int, state: str) -> None:
    """Move a letter that is still waiting (open or replayed) to ``state``."""
    with ctx.sessions.begin() as session:
        session.execute(
            sa.update(DeadLetter)
            .where(DeadLetter.id == letter_id, DeadLetter.state.in_(("open", "replayed")))
            .values(state=state)
        )


def resolve(ctx: SyncContext, letter_id: int, note: str) -> None:
    """Resolve a letter with a note saying what fixed it."""
    with ctx.sessions.begin() as session:
        resolve_in(session, letter_id, now=ctx.clock(), note=note)


def resolve_in(session: Session, letter_id: int, *, now: datetime, note: str) -> None:
    """:func:`resolve` inside the caller's transaction."""
    session.execute(
        sa.update(DeadLetter)
        .where(DeadLetter.id == letter_id)
        .values(state="resolved", resolved_at=now, resolution_note=note)
    )


def bump(ctx: SyncContext, letter_id: int, *, since: datetime, message: str | None) -> None:
    """Count a failed replay on the letter unless the failed run already bumped it."""
    with ctx.sessions.begin() as session:
        letter = session.get(DeadLetter, letter_id)
        if letter is not None and letter.last_failed_at < since:
            bump_in(session, letter_id, now=ctx.clock(), message=message)


def bump_in(session: Session, letter_id: int, *, now: datetime, message: str | None) -> None:
    """One more failed attempt on the letter, inside the caller's transaction."""
    values: dict[str, Any] = {"attempts": DeadLetter.attempts + 1, "last_failed_at": now}
    if message:
        values["error_message"] = message[:2000]
    session.execute(sa.update(DeadLetter).where(DeadLetter.id == letter_id).values(**values))
