"""Retention: resolved dead letters are deleted once older than the retention setting."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from models import DeadLetter

log = structlog.get_logger()


def purge_resolved_letters(session: Session, *, retention_days: int, now: datetime) -> int:
    """Delete letters resolved more than ``retention_days`` ago; returns how many."""
    cutoff = now - timedelta(days=retention_days)
    result = session.execute(
        sa.delete(DeadLetter).where(
            DeadLetter.state == "resolved",
            DeadLetter.resolved_at.is_not(None),
            DeadLetter.resolved_at < cutoff,
        )
    )
    purged = int(getattr(result, "rowcount", 0) or 0)
    log.info("deadletter.purged", purged=purged, retention_days=retention_days)
    return purged
