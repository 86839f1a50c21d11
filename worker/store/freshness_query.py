"""The one statement behind ``athena-sync freshness`` and the freshness gauges: grouped facts
from ``sync_runs``, ``dead_letters``, ``sync_state`` and ``departments`` (see
:mod:`worker.store.freshness`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from models import DeadLetter, Department, SyncRun, SyncState
from models.base import UTCDateTime
from worker.store.freshness import Fact, Freshness, Thresholds, assemble

SUCCEEDED = ("succeeded", "partial")
OPEN_LETTERS = ("open", "replayed")
CHANGED_MODE = "changed"


def _text(value: Any = None) -> Any:
    return sa.cast(sa.literal_column("NULL") if value is None else value, sa.Text())


def _when(value: Any = None) -> Any:
    return sa.cast(sa.literal_column("NULL"), UTCDateTime()) if value is None else value


def facts_statement(practices: Sequence[str] = ()) -> sa.CompoundSelect[Any]:
    """The one statement behind :func:`read_facts` (a UNION ALL of four grouped selects)."""
    changed = SyncRun.mode == CHANGED_MODE
    reads: Any = (
        sa.select(
            sa.literal_column("'read'").label("kind"),
            SyncRun.practice_id,
            SyncRun.resource,
            SyncRun.department_id,
            changed.label("changed"),
            sa.func.max(SyncRun.started_at).label("at"),
            sa.func.max(SyncRun.finished_at).label("finished"),
            sa.func.count().label("count"),
        )
        .where(SyncRun.status.in_(SUCCEEDED))
        .group_by(SyncRun.practice_id, SyncRun.resource, SyncRun.department_id, changed)
    )
    letters = (
        sa.select(
            sa.literal_column("'letters'"),
            DeadLetter.practice_id,
            DeadLetter.resource,
            DeadLetter.department_id,
            sa.false(),
            _when(),
            _when(),
            sa.func.count(),
        )
        .where(DeadLetter.state.in_(OPEN_LETTERS), DeadLetter.practice_id.is_not(None))
        .group_by(DeadLetter.practice_id, DeadLetter.resource, DeadLetter.department_id)
    )
    marks = sa.select(
        sa.literal_column("'watermark'"),
        SyncState.practice_id,
        SyncState.resource,
        sa.func.nullif(SyncState.scope, ""),
        sa.false(),
        SyncState.watermark,
        _when(),
        sa.literal_column("0"),
    )
    departments = sa.select(
        sa.literal_column("'department'"),
        Department.practice_id,
        _text(),
        Department.department_id,
        sa.false(),
        _when(),
        _when(),
        sa.literal_column("0"),
    ).where(Department.deleted_at.is_(None))
    parts = [
        (reads, SyncRun.practice_id),
        (letters, DeadLetter.practice_id),
        (marks, SyncState.practice_id),
        (departments, Department.practice_id),
    ]
    if practices:
        parts = [(s.where(column.in_(list(practices))), column) for s, column in parts]
    return sa.union_all(*(s for s, _ in parts))


def read_facts(session: Session, practices: Sequence[str] = ()) -> list[Fact]:
    """Every fact about the given practices (all when empty), in one statement."""
    return [
        Fact(kind, str(practice), resource, department, bool(changed), at, finished, int(n or 0))
        for kind, practice, resource, department, changed, at, finished, n in session.execute(
            facts_statement(practices)
        )
    ]


def freshness(
    session: Session,
    *,
    practices: Sequence[str],
    thresholds: Thresholds,
    now: datetime,
) -> list[Freshness]:
    """The freshness rows of ``practices`` (all found when empty), in one statement."""
    facts = read_facts(session, practices)  # one statement
    return assemble(facts, practices=practices, thresholds=thresholds, now=now)
