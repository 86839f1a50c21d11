"""Watermarks in ``sync_state``: read before a run, written with the page that covers them."""

from __future__ import annotations

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
    stmt = insert_for(session, SyncState).values(
        practice_id=practice_id,
        resource=resource,
        scope=scope,
        watermark=watermark,
        updated_at=now,
        last_run_id=run_id,
    )
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
