"""``source_state``: what is known about reading a practice's resource, kept between runs.

The changed-data subscription as last seen (so a scheduled run knows without asking the API), a
destructive feed read in flight (its marker), the API's clock offset, and a refused (or last
verified) multi-department listing. Every function works in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from models import SourceState, SyncRun, SyncState
from worker.store.dialect import insert_for

SUCCEEDED = ("succeeded", "partial")


@dataclass(frozen=True)
class Source:
    """One practice's resource as ``source_state`` knows it (all None before the first run)."""

    subscription: str | None = None
    subscription_detail: str | None = None
    subscription_checked_at: datetime | None = None
    subscribe_requested_at: datetime | None = None
    feed_started_at: datetime | None = None
    feed_pending_since: datetime | None = None
    server_offset: timedelta | None = None
    multi_department_refused_at: datetime | None = None
    multi_department_refusal: str | None = None
    multi_department_verified_at: datetime | None = None


def _source(row: SourceState | None) -> Source:
    if row is None:
        return Source()
    offset = row.server_offset_seconds
    return Source(
        subscription=row.subscription,
        subscription_detail=row.subscription_detail,
        subscription_checked_at=row.subscription_checked_at,
        subscribe_requested_at=row.subscribe_requested_at,
        feed_started_at=row.feed_started_at,
        feed_pending_since=row.feed_pending_since,
        server_offset=None if offset is None else timedelta(seconds=offset),
        multi_department_refused_at=row.multi_department_refused_at,
        multi_department_refusal=row.multi_department_refusal,
        multi_department_verified_at=row.multi_department_verified_at,
    )


def source_state(session: Session, practice_id: str, resource: str) -> Source:
    """What is known about reading this practice's resource."""
    return _source(session.get(SourceState, (practice_id, resource)))


def source_states(session: Session, resource: str) -> dict[str, Source]:
    """Every practice's state for one resource, by practice id (doctor, plans)."""
    rows = session.scalars(sa.select(SourceState).where(SourceState.resource == resource))
    return {row.practice_id: _source(row) for row in rows}


def _save(session: Session, practice_id: str, resource: str, now: datetime, **values: Any) -> None:
    """Upsert the given columns of the practice's row (others keep their value)."""
    stmt = insert_for(session, SourceState).values(
        practice_id=practice_id, resource=resource, updated_at=now, **values
    )
    table = SourceState.__table__
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.practice_id, table.c.resource],
        set_={name: stmt.excluded[name] for name in ("updated_at", *values)},
    )
    session.execute(stmt)


def record_subscription(
    session: Session,
    practice_id: str,
    resource: str,
    *,
    state: str,
    detail: str | None,
    now: datetime,
    offset: timedelta | None = None,
) -> None:
    """The subscription as just seen. Not active: the feed is no longer in effect
    (``feed_started_at`` cleared), so the practice is polled with the listing meanwhile."""
    values: dict[str, Any] = {
        "subscription": state,
        "subscription_detail": detail,
        "subscription_checked_at": now,
    }
    if state != "active":
        values["feed_started_at"] = None
    if offset is not None:
        values["server_offset_seconds"] = offset.total_seconds()
    _save(session, practice_id, resource, now, **values)


def record_subscribe_request(
    session: Session, practice_id: str, resource: str, *, detail: str, now: datetime
) -> None:
    """A subscription was asked for: check it again at the next scheduled run."""
    _save(
        session,
        practice_id,
        resource,
        now,
        subscribe_requested_at=now,
        subscription_detail=detail,
        subscription_checked_at=None,
    )


def mark_feed_pending(
    session: Session,
    practice_id: str,
    resource: str,
    *,
    since: datetime,
    run_id: int,
    now: datetime,
) -> None:
    """Before a destructive read: the API's clock when it begins. A marker already there (a read
    not yet recovered) keeps the earlier time, so no span is ever narrowed."""
    current = source_state(session, practice_id, resource).feed_pending_since
    earliest = since if current is None else min(current, since)
    _save(
        session,
        practice_id,
        resource,
        now,
        feed_pending_since=earliest,
        feed_pending_run_id=run_id,
    )


def record_feed_read(
    session: Session,
    practice_id: str,
    resource: str,
    *,
    now: datetime,
    offset: timedelta | None,
) -> None:
    """With the page a destructive read served: clear its marker; the feed is in effect (since
    now, if it was not); the API's clock offset as this read saw it."""
    current = source_state(session, practice_id, resource)
    values: dict[str, Any] = {
        "feed_pending_since": None,
        "feed_pending_run_id": None,
        "subscription": "active",
        "feed_started_at": current.feed_started_at or now,
    }
    if current.subscription != "active":
        values["subscription_checked_at"] = now
    if offset is not None:
        values["server_offset_seconds"] = offset.total_seconds()
    _save(session, practice_id, resource, now, **values)


def clear_feed_pending(session: Session, practice_id: str, resource: str, *, now: datetime) -> None:
    """The marker's span was read again (or its read never reached the API): nothing pends."""
    _save(session, practice_id, resource, now, feed_pending_since=None, feed_pending_run_id=None)


def relist_after_gap(session: Session, practice_id: str, resource: str, *, now: datetime) -> None:
    """The feed lost a span it cannot read again: it counts as started ``now``, so the listing
    polls the practice once more (from its watermarks) before leaving it to the feed again."""
    _save(session, practice_id, resource, now, feed_started_at=now)


def record_multi_department(
    session: Session, practice_id: str, resource: str, *, refusal: str | None, now: datetime
) -> None:
    """The multi-department listing was refused (``refusal`` says how), or works again (None)."""
    _save(
        session,
        practice_id,
        resource,
        now,
        multi_department_refused_at=None if refusal is None else now,
        multi_department_refusal=refusal,
    )


def record_multi_department_verified(
    session: Session, practice_id: str, resource: str, *, at: datetime | None, now: datetime
) -> None:
    """When an answer of the multi-department listing last showed records of several
    departments (``at``), or None: a department it left out was found to hold records."""
    _save(session, practice_id, resource, now, multi_department_verified_at=at)


def listing_caught_up(
    session: Session, practice_id: str, resource: str, departments: list[str], since: datetime
) -> bool:
    """Whether every department has a watermark and a succeeded incremental run that covered it
    (its own, or one of the whole practice) began at or after ``since``."""
    marked = set(
        session.scalars(
            sa.select(SyncState.scope).where(
                SyncState.practice_id == practice_id,
                SyncState.resource == resource,
                SyncState.scope.in_(departments),
                SyncState.watermark.is_not(None),
            )
        )
    )
    if marked != set(departments):
        return False
    covered = set(
        session.scalars(
            sa.select(SyncRun.department_id)
            .where(
                SyncRun.practice_id == practice_id,
                SyncRun.resource == resource,
                SyncRun.mode == "incremental",
                SyncRun.status.in_(SUCCEEDED),
                SyncRun.started_at >= since,
            )
            .distinct()
        )
    )
    return None in covered or covered >= set(departments)
