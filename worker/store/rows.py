"""Writing one page's rows: one statement, and the rows Postgres refuses found one by one.

The resource's guard ("never write an older version over a newer one") holds in both paths,
including the hour that repeats when daylight time ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from operator import methodcaller
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from worker.parse import ambiguous_eastern, ambiguous_eastern_between
from worker.resources import Resource
from worker.store.letters import BadRecordLetter
from worker.store.staging import page_savepoint
from worker.store.upsert import Prepared, UpsertCounts, upsert_page

log = structlog.get_logger()
# What the database (or the driver, encoding the row) refuses about a row's values: a NUL, a
# number too large, text UTF-8 cannot encode that slipped past the mappers' checks.
REFUSED = (sa.exc.DataError, sa.exc.IntegrityError, UnicodeEncodeError)


def write_rows(
    session: Session,
    resource: Resource,
    rows: Sequence[dict[str, Any]],
    sources: Sequence[Any],
    *,
    run_id: int | None,
    now: datetime,
    prepared: Prepared | None = None,
) -> tuple[UpsertCounts, list[BadRecordLetter]]:
    """The page in one statement; if Postgres refuses a value in it (a NUL character, a number
    too large), find the refused rows one by one in savepoints. Returns the counts and a letter
    per refused row (``sources[i]`` is the record row ``i`` was mapped from). ``prepared``:
    ``prepare_page`` of ``rows``, made ahead."""
    options: dict[str, Any] = {
        "run_id": run_id,
        "now": now,
        "volatile": resource.volatile_fields,
    }
    if session.get_bind().dialect.name != "postgresql":
        return _guarded(session, resource, list(rows), options), []
    try:
        with page_savepoint(session):
            return _guarded(session, resource, rows, options, prepared), []
    except REFUSED:
        log.warning("sync.page_refused", rows=len(rows))
    total, refused = UpsertCounts(), []
    for row, record in zip(rows, sources, strict=True):
        try:
            with session.begin_nested():
                total += _guarded(session, resource, [row], options)
        except REFUSED as exc:
            reason = f"the database refused the record ({db_reason(exc)})"
            refused.append(BadRecordLetter(record, str(row[resource.key_column]), reason))
    return total, refused


def _guarded(
    session: Session,
    resource: Resource,
    rows: Sequence[dict[str, Any]],
    options: dict[str, Any],
    prepared: Prepared | None = None,
) -> UpsertCounts:
    """Upsert with the resource's "never older over newer" guard. A guard time in the hour that
    repeats when daylight time ends was read as its first pass but may mean the second, an hour
    later: such a row (rare) is written alone, refused only if the stored time is later still.
    ``prepared`` serves only the statement writing all of ``rows``."""
    guard = resource.guard_column
    if guard is None:
        return upsert_page(session, resource.model, rows, prepared=prepared, **options)
    ordered, uncertain = _split_uncertain(rows, guard)
    total = upsert_page(
        session,
        resource.model,
        ordered,
        guard_column=guard,
        prepared=prepared if ordered is rows else None,
        **options,
    )
    for row in uncertain:
        ceiling = row[guard] + timedelta(hours=1)
        total += upsert_page(
            session, resource.model, [row], guard_column=guard, guard_ceiling=ceiling, **options
        )
    return total


def _split_uncertain(
    rows: Sequence[dict[str, Any]], guard: str
) -> tuple[Sequence[dict[str, Any]], list[dict[str, Any]]]:
    """(rows whose guard time is certain, rows whose guard time falls in a repeated hour); the
    page's range of guard times is looked at first, so most pages need no look at each row."""
    stamps = [stamp for stamp in map(methodcaller("get", guard), rows) if stamp is not None]
    if not stamps or not ambiguous_eastern_between(min(stamps), max(stamps)):
        return rows, []
    ordered: list[dict[str, Any]] = []
    uncertain: list[dict[str, Any]] = []
    for row in rows:
        (uncertain if ambiguous_eastern(row.get(guard)) else ordered).append(row)
    return ordered, uncertain


def db_reason(exc: Exception) -> str:
    """The driver's error class and SQLSTATE, never its message (it quotes the data)."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return type(exc).__name__  # the driver could not even encode the row
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(
        getattr(orig, "diag", None), "sqlstate", None
    )
    return f"{type(orig).__name__}, SQLSTATE {state}" if state else type(orig).__name__
