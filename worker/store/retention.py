"""Retention: the tables that grow with every run are trimmed by the periodic replay task.

- dead letters that need nothing more (``resolved``, ``discarded``) once older than
  ``DEAD_LETTER_RETENTION_DAYS``; ``open`` and ``replayed`` ones are never purged;
- ``sync_runs`` rows older than ``SYNC_RUNS_RETENTION_DAYS``, except the newest run of each
  unit, ``running`` rows and runs a kept letter points to (``dead_letters.sync_run_id``);
- ``unit_fences`` rows of units no run has written for ``SYNC_RUNS_RETENTION_DAYS`` (a reconcile
  window's unit key names its dates, so every day adds new ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from models import DeadLetter, SyncRun, UnitFence
from worker.settings import Settings

log = structlog.get_logger()
CLOSED_STATES = ("resolved", "discarded")


@dataclass(frozen=True)
class Purged:
    """Rows one retention pass deleted, per table."""

    letters: int = 0
    runs: int = 0
    fences: int = 0


def purge_expired(session: Session, *, settings: Settings, now: datetime) -> Purged:
    """Every purge below, in the caller's transaction (letters first: they free their runs)."""
    runs_days = settings.sync_runs_retention_days
    purged = Purged(
        letters=purge_closed_letters(
            session, retention_days=settings.dead_letter_retention_days, now=now
        ),
        runs=purge_old_runs(session, retention_days=runs_days, now=now),
        fences=purge_idle_fences(session, retention_days=runs_days, now=now),
    )
    log.info("retention.purged", letters=purged.letters, runs=purged.runs, fences=purged.fences)
    return purged


def purge_closed_letters(session: Session, *, retention_days: int, now: datetime) -> int:
    """Delete resolved and discarded letters closed more than ``retention_days`` ago.

    A discarded letter whose failure is still being seen (``last_failed_at`` recent) is kept:
    the same failure again would otherwise come back as a new open letter, undoing the person's
    decision to discard it.
    """
    cutoff = now - timedelta(days=retention_days)
    return _deleted(
        session.execute(
            sa.delete(DeadLetter).where(
                DeadLetter.state.in_(CLOSED_STATES),
                DeadLetter.resolved_at < cutoff,
                DeadLetter.last_failed_at < cutoff,
            )
        )
    )


def purge_old_runs(session: Session, *, retention_days: int, now: datetime) -> int:
    """Delete finished runs started more than ``retention_days`` ago, keeping the newest run and
    the newest successful run of each resource, practice, mode and department (what freshness
    reads), and any run a remaining dead letter points to."""
    cutoff = now - timedelta(days=retention_days)
    runs = SyncRun.__table__.alias("runs")
    # Windows are left out of the grouping: an incremental read's horizon moves with the calendar
    # and reconcile windows shift by a day every day, so a window is never seen again; keeping
    # one run per window would keep a row per department and day for ever.
    unit = (runs.c.resource, runs.c.practice_id, runs.c.mode, runs.c.department_id)
    newest = sa.select(sa.func.max(runs.c.id)).group_by(*unit)
    succeeded = runs.c.status.in_(("succeeded", "partial"))
    newest_ok = sa.select(sa.func.max(runs.c.id)).where(succeeded).group_by(*unit)
    cited = sa.select(DeadLetter.id).where(DeadLetter.sync_run_id == SyncRun.id)
    return _deleted(
        session.execute(
            sa.delete(SyncRun).where(
                SyncRun.started_at < cutoff,
                SyncRun.status != "running",
                SyncRun.id.not_in(newest),
                SyncRun.id.not_in(newest_ok),
                ~sa.exists(cited),
            )
        )
    )


def purge_idle_fences(session: Session, *, retention_days: int, now: datetime) -> int:
    """Delete fencing tokens of units not written for ``retention_days``: no lease holder lives
    that long (time limits), so none is left for the token to fence out."""
    cutoff = now - timedelta(days=retention_days)
    return _deleted(session.execute(sa.delete(UnitFence).where(UnitFence.updated_at < cutoff)))


def _deleted(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
