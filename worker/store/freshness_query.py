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
from worker.store.freshness import Fact, Freshness, Horizon, Thresholds, assemble

SUCCEEDED = ("succeeded", "partial")
OPEN_LETTERS = ("open", "replayed")
CHANGED_MODE = "changed"
WHOLE_MODES = ("full", CHANGED_MODE)  # a complete listing, the changed-data feed: no window
HORIZON = Horizon()  # the settings' defaults


def _text(value: Any = None) -> Any:
    return sa.cast(sa.literal_column("NULL") if value is None else value, sa.Text())


def _when(value: Any = None) -> Any:
    return sa.cast(sa.literal_column("NULL"), UTCDateTime()) if value is None else value


def _days(days: int) -> Any:
    # Literals, not bound parameters: the expression is grouped by as well as selected.
    return sa.literal_column(str(int(days)), sa.Integer())


def _shift(days: int) -> Any:
    return sa.literal_column(f"'{int(days):+d} days'")


def covers_horizon(horizon: Horizon, dialect: str) -> sa.ColumnElement[bool]:
    """Whether a run read the whole horizon: a complete listing or a changed-feed read (no
    window), or a window spanning ``horizon`` around the (UTC) day the run began, as the run
    itself judges when it may move a watermark (``by_department.covers_horizon``)."""
    if dialect == "postgresql":
        utc = sa.func.timezone(sa.literal_column("'UTC'"), SyncRun.started_at)
        day: Any = sa.cast(utc, sa.Date())
        first, last = day - _days(horizon.days_back), day + _days(horizon.days_ahead)
    else:  # SQLite: UTC text, compared as ISO dates
        first = sa.func.date(SyncRun.started_at, _shift(-horizon.days_back))
        last = sa.func.date(SyncRun.started_at, _shift(horizon.days_ahead))
    spans = sa.and_(SyncRun.window_start <= first, SyncRun.window_end >= last)
    return sa.or_(SyncRun.mode.in_(WHOLE_MODES), sa.func.coalesce(spans, sa.false()))


def facts_statement(
    practices: Sequence[str] = (),
    *,
    horizon: Horizon = HORIZON,
    dialect: str = "postgresql",
) -> sa.CompoundSelect[Any]:
    """The one statement behind :func:`read_facts` (a UNION ALL of four grouped selects)."""
    changed = SyncRun.mode == CHANGED_MODE
    covers = covers_horizon(horizon, dialect)
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
            covers.label("covers"),
        )
        .where(SyncRun.status.in_(SUCCEEDED), SyncRun.more_waiting.is_(False))
        .group_by(SyncRun.practice_id, SyncRun.resource, SyncRun.department_id, changed, covers)
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
            sa.true(),
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
        sa.true(),
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
        sa.true(),
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


def read_facts(
    session: Session, practices: Sequence[str] = (), *, horizon: Horizon = HORIZON
) -> list[Fact]:
    """Every fact about the given practices (all when empty), in one statement; ``horizon``
    (``Thresholds.horizon``): what a read by department must span to count."""
    statement = facts_statement(practices, horizon=horizon, dialect=session.get_bind().dialect.name)
    return [
        Fact(kind, str(p), resource, department, bool(changed), at, done, int(n or 0), bool(whole))
        for kind, p, resource, department, changed, at, done, n, whole in session.execute(statement)
    ]


def freshness(
    session: Session,
    *,
    practices: Sequence[str],
    thresholds: Thresholds,
    now: datetime,
) -> list[Freshness]:
    """The freshness rows of ``practices`` (all found when empty), in one statement."""
    facts = read_facts(session, practices, horizon=thresholds.horizon)  # one statement
    return assemble(facts, practices=practices, thresholds=thresholds, now=now)
