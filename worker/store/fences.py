"""Lease fencing in ``unit_fences``: the highest lease token that wrote for each unit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from models import UnitFence
from worker.store.dialect import insert_for


def claim_fence(session: Session, unit_key: str, token: int, *, now: datetime) -> bool:
    """Record that lease ``token`` writes for ``unit_key``, in the caller's transaction; False
    when a higher token already wrote (this holder's lease was taken over: it must not write).
    """
    stmt = insert_for(session, UnitFence).values(unit_key=unit_key, token=token, updated_at=now)
    table = UnitFence.__table__
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.unit_key],
        set_={"token": stmt.excluded.token, "updated_at": stmt.excluded.updated_at},
        where=table.c.token <= stmt.excluded.token,
    ).returning(table.c.unit_key)
    return session.execute(stmt).first() is not None
