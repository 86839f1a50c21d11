"""Watermarks in ``sync_state``: read before a run, written with the page that covers them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from models import SyncState
from worker.store.dialect import insert_for


def get_watermark(session: Session, practice_id: str, resource: str, scope: str) -> datetime | None:
    """The stored watermark, or None before the first complete run."""
    row = session.get(SyncState, (practice_id, resource, scope))
    return None if row is None else row.watermark


def set_watermark(
    session: Session,
    practice_id: str,
    resource: str,
    scope: str,
    watermark: datetime | None,
    *,
    run_id: int,
    now: datetime,
    untrusted_after: datetime | None = None,
) -> None:
    """Store the watermark in the caller's transaction. It never moves backwards, except from a
    stored value later than ``untrusted_after`` (a watermark in the future, from a clock or a
    ``lastmodified`` that was wrong, would otherwise stop every later read)."""
    set_watermarks(
        session,
        practice_id,
        resource,
        {scope: watermark},
        run_id=run_id,
        now=now,
        untrusted_after=untrusted_after,
    )


def set_watermarks(
    session: Session,
    practice_id: str,
    resource: str,
    marks: Mapping[str, datetime | None],
    *,
    run_id: int,
    now: datetime,
    untrusted_after: datetime | None = None,
) -> None:
    """Several scopes' watermarks (scope -> watermark) in one statement, in the caller's
    transaction; none moves backwards (a read of many departments at once), except from a stored
    value later than ``untrusted_after`` (see :func:`set_watermark`)."""
    if not marks:
        return
    rows = [
        {
            "practice_id": practice_id,
            "resource": resource,
            "scope": scope,
            "watermark": mark,
            "updated_at": now,
            "last_run_id": run_id,
        }
        for scope, mark in marks.items()
    ]
    stmt = insert_for(session, SyncState).values(rows)
    table = SyncState.__table__
    newer = (table.c.watermark.is_(None)) | (stmt.excluded.watermark > table.c.watermark)
    if untrusted_after is not None:
        newer = newer | (table.c.watermark > untrusted_after)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.practice_id, table.c.resource, table.c.scope],
        set_={
            "watermark": sa.case((newer, stmt.excluded.watermark), else_=table.c.watermark),
            "updated_at": stmt.excluded.updated_at,
            "last_run_id": stmt.excluded.last_run_id,
        },
    )
    session.execute(stmt)


def get_watermarks(
    session: Session, practice_id: str, resource: str, scopes: list[str]
) -> dict[str, datetime | None]:
    """The stored watermark of each scope (None where there is none yet)."""
    rows = session.execute(
        sa.select(SyncState.scope, SyncState.watermark).where(
            SyncState.practice_id == practice_id,
            SyncState.resource == resource,
            SyncState.scope.in_(scopes),
        )
    )
    found = {scope: mark for scope, mark in rows}
    return {scope: found.get(scope) for scope in scopes}
