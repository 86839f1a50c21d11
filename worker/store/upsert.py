"""The one write path for every resource table: a page of rows in one upsert statement.

``upsert_page`` sends ``INSERT … ON CONFLICT (pk) DO UPDATE … WHERE <something changed>``, so
re-syncing unchanged data writes no rows at all (no dead tuples, no WAL, no trigger noise). For
appointments the ``WHERE`` also refuses an older ``lastmodified`` over a newer one (pages of
different ages can race), and a record without one over a row that has one. On Postgres the
page is COPYed in binary into a staging table and "something changed" is one comparison of
``row_hash`` (see ``worker.store.staging``); on SQLite it is sent executemany-style, compiled
once and batched into multi-row VALUES, and every column is compared. Counts come without a
round trip per row: on Postgres from ``RETURNING (xmax = 0)`` counted in the same statement, on
SQLite from one ``SELECT`` of the page's existing keys.

Neither function commits: the caller commits the page together with its progress (watermarks,
run counters), so a crash never records progress for rows that did not land.

``last_seen_at`` moves only when a row is written (inserted, changed, or revived): keeping it
fresh on unchanged rows would cost exactly the writes this module exists to avoid. Whether a
row still exists upstream is tracked by ``deleted_at`` (see ``mark_missing``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from operator import itemgetter, methodcaller
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from models import BOOKKEEPING_COLUMNS, Base, UTCDateTime
from worker.store.staging import FUTURE_GUARD_TOLERANCE, Shape, copy_upsert, encode, shape

# SQLite caps bind parameters per statement (32766): its key lookups go in chunks that fit.
MAX_BIND_PARAMS = 30_000
MARK_CHUNK = 500

Key = tuple[Any, ...]


@dataclass(frozen=True)
class UpsertCounts:
    """What one or more upserts did: rows created, rows changed, rows already up to date."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: UpsertCounts) -> UpsertCounts:
        return UpsertCounts(
            self.inserted + other.inserted,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
        )


def _table(model: type[Base]) -> sa.Table:
    table = model.__table__
    assert isinstance(table, sa.Table)
    return table


def _dedupe(rows: Iterable[Mapping[str, Any]], pk: Sequence[str]) -> list[Mapping[str, Any]]:
    """One row per key, the last one given (ON CONFLICT cannot touch a row twice)."""
    key = itemgetter(*pk)
    return list({key(row): row for row in rows}.values())


_keys = methodcaller("keys")


def _data_columns(
    table: sa.Table, rows: Sequence[Mapping[str, Any]], pk: Sequence[str]
) -> list[str]:
    """The mapped (non-key, non-bookkeeping) columns; every row must carry the same ones."""
    names = rows[0].keys()
    if not all(map(names.__eq__, map(_keys, rows))):
        raise ValueError("rows in one page must have the same columns")
    unknown = names - set(table.c.keys())
    if unknown:
        raise ValueError(f"{table.name} has no column(s) {sorted(unknown)}")
    if names & BOOKKEEPING_COLUMNS:
        raise ValueError(f"rows must not set {sorted(names & BOOKKEEPING_COLUMNS)}")
    missing_pk = set(pk) - names
    if missing_pk:
        raise ValueError(f"rows lack key column(s) {sorted(missing_pk)}")
    return [column.name for column in table.c if column.name in names and column.name not in pk]


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _changed(
    table: sa.Table, excluded: Any, columns: Sequence[str], volatile: Sequence[str]
) -> sa.ColumnElement[bool]:
    differs = [
        _compared(table.c[name], volatile).is_distinct_from(_compared(excluded[name], volatile))
        for name in columns
    ]
    return sa.or_(*differs, table.c.deleted_at.is_not(None))


def _compared(column: Any, volatile: Sequence[str]) -> Any:
    """The column as compared: ``raw`` without its volatile keys (SQLite's ``json_remove``)."""
    if column.name != "raw" or not volatile:
        return column
    paths = ['$."' + key.replace('"', '\\"') + '"' for key in volatile]
    return sa.func.json_remove(column, *paths)


def _not_older(table: sa.Table, excluded: Any, guard: str, ceiling: bool) -> sa.ColumnElement[bool]:
    """The stored guard time is NULL or in the future (past ``distrust``), or the incoming one
    is known and the stored one is not after it (or after ``ceiling``, the latest instant the
    incoming value could stand for, when that is uncertain): as ``staging._guard_sql``."""
    limit = excluded[guard] if not ceiling else sa.bindparam("ceiling", type_=UTCDateTime())
    known = sa.and_(excluded[guard].is_not(None), table.c[guard] <= limit)
    future = table.c[guard] > sa.bindparam("distrust", type_=UTCDateTime())
    return sa.or_(table.c[guard].is_(None), future, known)


@lru_cache(maxsize=64)
def _statement(
    table: sa.Table,
    columns: tuple[str, ...],
    pk: tuple[str, ...],
    guard_column: str | None,
    ceiling: bool,
    volatile: tuple[str, ...] = (),
) -> Any:
    """The SQLite upsert for one page shape, built once: the same SQL for every page."""
    stmt = sqlite.insert(table)
    excluded = stmt.excluded
    where = _changed(table, excluded, columns, volatile)
    if guard_column is not None:
        where = sa.and_(where, _not_older(table, excluded, guard_column, ceiling))
    set_: dict[str, Any] = {name: excluded[name] for name in columns}
    set_.update(
        last_seen_at=excluded.last_seen_at,
        last_sync_run_id=excluded.last_sync_run_id,
        deleted_at=sa.null(),
    )
    upsert = stmt.on_conflict_do_update(index_elements=list(pk), set_=set_, where=where)
    return upsert.returning(*(table.c[name] for name in pk))


def _existing(session: Session, table: sa.Table, pk: Sequence[str], keys: list[Key]) -> set[Key]:
    key_columns = [table.c[name] for name in pk]
    query = sa.select(*key_columns).where(sa.tuple_(*key_columns).in_(keys))
    return {tuple(row) for row in session.execute(query)}


@dataclass(frozen=True)
class Prepared:
    """A page's rows checked and in binary COPY form, made before the write (``prepare_page``):
    valid for that very list of rows (``rows`` is compared by identity)."""

    rows: Sequence[Mapping[str, Any]]
    shape: Shape
    stream: bytearray
    volatile: tuple[str, ...] = ()


def _page_shape(
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    guard: str | None,
    ceiling: bool,
    volatile: tuple[str, ...],
) -> tuple[tuple[str, ...], tuple[str, ...], Shape]:
    pk = tuple(column.name for column in table.primary_key.columns)
    columns = tuple(_data_columns(table, rows, pk))
    names = tuple(c.name for c in table.c if c.name in pk or c.name in columns)
    return pk, columns, shape(table, names, pk, guard, ceiling, volatile)


def prepare_page(
    model: type[Base],
    rows: Sequence[Mapping[str, Any]],
    *,
    guard_column: str | None = None,
    volatile: Sequence[str] = (),
) -> Prepared | None:
    """The Postgres write of ``rows`` made ahead (no session, no I/O: the fetch-ahead thread
    calls it after mapping), or None when the writer must do it all itself: no rows, a key
    given twice, anything the checks or the encoding refuse (the writer raises it there)."""
    if not rows:
        return None
    table = _table(model)
    try:
        pk, _, page_shape = _page_shape(table, rows, guard_column, False, tuple(volatile))
    except ValueError:
        return None
    if len(_dedupe(rows, pk)) != len(rows):
        return None
    stream = encode(page_shape, rows)
    return None if stream is None else Prepared(rows, page_shape, stream, tuple(volatile))


def upsert_page(
    session: Session,
    model: type[Base],
    rows: Sequence[Mapping[str, Any]],
    *,
    run_id: int | None,
    now: datetime,
    guard_column: str | None = None,
    guard_ceiling: datetime | None = None,
    prepared: Prepared | None = None,
    volatile: Sequence[str] = (),
) -> UpsertCounts:
    """Insert new rows, update changed ones, leave identical ones untouched; return the counts.

    ``guard_column`` (``"last_modified_at"`` for appointments) makes an older value never
    overwrite a newer one, and a row without a value never overwrite one with a value (it cannot
    be shown newer; a stored row without one may be overwritten); rows refused that way count
    as unchanged. ``guard_ceiling``, for a page whose guard time is uncertain, is the latest
    instant it could stand for. ``volatile`` (``Resource.volatile_fields``): keys of ``raw``
    that are no change (a row differing only there is left as it is). ``prepared``:
    ``prepare_page`` of these very rows (used on Postgres when it fits).
    """
    if not rows:
        return UpsertCounts()
    table = _table(model)
    postgres = session.get_bind().dialect.name == "postgresql"
    if (
        postgres
        and prepared is not None
        and prepared.rows is rows
        and guard_ceiling is None
        and prepared.shape.guard == guard_column
        and prepared.volatile == tuple(volatile)
    ):
        inserted, written = copy_upsert(
            session,
            prepared.shape,
            rows,
            now=now,
            run_id=run_id,
            ceiling=None,
            stream=prepared.stream,
        )
        return UpsertCounts(inserted, written - inserted, len(rows) - written)
    pk, columns, page_shape = _page_shape(
        table, rows, guard_column, guard_ceiling is not None, tuple(volatile)
    )
    page = _dedupe(rows, pk)
    if postgres:
        inserted, written = copy_upsert(
            session, page_shape, page, now=now, run_id=run_id, ceiling=guard_ceiling
        )
        updated = written - inserted
    else:
        stmt = _statement(
            table, columns, pk, guard_column, guard_ceiling is not None, tuple(volatile)
        )
        binds: dict[str, Any] = {"now": now, "run_id": run_id}
        if guard_ceiling is not None:
            binds["ceiling"] = guard_ceiling
        if guard_column is not None:
            binds["distrust"] = now + FUTURE_GUARD_TOLERANCE
        inserted, updated = _sqlite_upsert(session, table, pk, page, stmt, binds)
    # A key given twice is written once; the extra copy counts as unchanged.
    return UpsertCounts(inserted, updated, len(rows) - inserted - updated)


def _sqlite_upsert(
    session: Session,
    table: sa.Table,
    pk: Sequence[str],
    page: Sequence[Mapping[str, Any]],
    stmt: Any,
    binds: dict[str, Any],
) -> tuple[int, int]:
    """executemany-style (batched into multi-row VALUES); inserts told apart by the keys that
    existed before. Returns (inserted, updated)."""
    existing: set[Key] = set()
    for chunk in _chunks(page, MAX_BIND_PARAMS // len(pk)):
        keys = [tuple(row[name] for name in pk) for row in chunk]
        existing |= _existing(session, table, pk, keys)
    extra = {
        "first_seen_at": binds["now"],
        "last_seen_at": binds["now"],
        "deleted_at": None,
        "last_sync_run_id": binds["run_id"],
    }
    params = [{**row, **extra} for row in page]
    extra_binds: dict[str, Any] = {k: binds[k] for k in ("ceiling", "distrust") if k in binds}
    if extra_binds:
        params = [{**row, **extra_binds} for row in params]
    written = list(session.execute(stmt, params))
    inserted = len({tuple(row[: len(pk)]) for row in written} - existing)
    return inserted, len(written) - inserted


def _id_column(table: sa.Table) -> sa.Column[Any]:
    others = [column for column in table.primary_key.columns if column.name != "practice_id"]
    if len(others) != 1 or "practice_id" not in table.c:
        raise ValueError(f"{table.name} is not keyed by (practice_id, <id>)")
    return others[0]


@dataclass(frozen=True)
class Marked:
    """What one marking did: rows marked deleted, and unseen rows it left live (spared)."""

    deleted: int = 0
    spared: int = 0


def has_live_rows(
    session: Session,
    model: type[Base],
    *,
    practice_id: str,
    scope_filter: Iterable[sa.ColumnElement[bool]] = (),
) -> bool:
    """Whether any row in scope is live (not marked deleted)."""
    table = _table(model)
    query = sa.select(sa.literal(1)).where(
        table.c.practice_id == practice_id, table.c.deleted_at.is_(None), *scope_filter
    )
    return session.scalar(query.limit(1)) is not None


def live_values(
    session: Session,
    model: type[Base],
    column: str,
    *,
    practice_id: str,
    scope_filter: Iterable[sa.ColumnElement[bool]] = (),
) -> set[Any]:
    """The distinct values of ``column`` among the live rows in scope (e.g. the departments
    holding live appointments in a window)."""
    table = _table(model)
    query = sa.select(table.c[column]).where(
        table.c.practice_id == practice_id, table.c.deleted_at.is_(None), *scope_filter
    )
    return set(session.scalars(query.distinct()))


def mark_missing(
    session: Session,
    model: type[Base],
    *,
    practice_id: str,
    seen_ids: Iterable[str],
    scope_filter: sa.ColumnElement[bool] | Iterable[sa.ColumnElement[bool]] | None = None,
    now: datetime,
    run_id: int | None,
    spare_written_since: datetime | None = None,
) -> Marked:
    """Set ``deleted_at`` on live rows in scope whose id was not seen; return what it did.

    Only call it after a *complete* read of the scope (every page of the listing or window):
    after a partial read it would mark rows deleted that simply were not fetched.
    ``scope_filter`` narrows the rows considered (e.g. one department and date window): one
    condition or several (ANDed); none means the whole practice. Rows whose ``last_seen_at``
    is at or after ``spare_written_since`` were written by some sync while the read was under
    way (e.g. an incremental run inserting a new appointment): the read may have passed them
    before they existed, so they are spared, never marked.
    """
    table = _table(model)
    id_column = _id_column(table)
    live_query = sa.select(id_column).where(
        table.c.practice_id == practice_id, table.c.deleted_at.is_(None)
    )
    if isinstance(scope_filter, sa.ColumnElement):
        live_query = live_query.where(scope_filter)
    elif scope_filter is not None:
        live_query = live_query.where(*scope_filter)
    unseen = sorted(set(session.scalars(live_query)) - set(seen_ids))
    still_missing = [table.c.practice_id == practice_id, table.c.deleted_at.is_(None)]
    if spare_written_since is not None:
        # Checked by the UPDATE itself: a row written after the SELECT above (its lock waited
        # for, its new version re-read by Postgres) is spared too.
        still_missing.append(table.c.last_seen_at < spare_written_since)
    deleted = spared = 0
    for chunk in _chunks(unseen, MARK_CHUNK):
        result = session.execute(
            sa.update(table)
            .where(id_column.in_(chunk), *still_missing)
            .values(deleted_at=now, last_sync_run_id=run_id)
        )
        marked = int(getattr(result, "rowcount", 0) or 0)
        deleted += marked
        if marked < len(chunk):
            # Left live: written since the read began (spared). Rows another process marked
            # deleted meanwhile are neither (they would flag deletions deferred for nothing).
            live = sa.select(sa.func.count()).where(
                id_column.in_(chunk),
                table.c.practice_id == practice_id,
                table.c.deleted_at.is_(None),
            )
            spared += int(session.scalar(live) or 0)
    return Marked(deleted=deleted, spared=spared)
