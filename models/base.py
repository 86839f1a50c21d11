"""Declarative base, column types shared by every table, and the resource bookkeeping columns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names, so Alembic can find them again on every dialect.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on Postgres, JSON (text) elsewhere. Python None is stored as SQL NULL, not JSON 'null'.
JSONDoc = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

# BIGINT identity on Postgres; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """``timestamptz`` that only accepts aware datetimes and always returns aware UTC.

    SQLite has no zone-aware type; storing normalised UTC keeps string comparison (used by the
    upsert's last-modified guard) equal to instant comparison there too.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given to a timestamptz column; pass an aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected datetime from the driver, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Base of every athena-sync table."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class ResourceColumns:
    """Columns every synced resource table carries besides its own (written by the upsert).

    ``last_sync_run_id`` (like ``dead_letters.sync_run_id`` and ``sync_state.last_run_id``) is
    provenance, deliberately not a foreign key: old ``sync_runs`` can be pruned without touching
    millions of resource rows, and a write never waits on a lock of the runs table.
    """

    raw: Mapped[dict[str, Any]] = mapped_column(JSONDoc, nullable=False)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_sync_run_id: Mapped[int | None] = mapped_column(sa.BigInteger())
    row_hash: Mapped[int | None] = mapped_column(sa.BigInteger())
    """A 64-bit hash of the row's mapped columns and ``raw`` as last written (Postgres; see
    ``worker.store.staging``): the upsert's "did anything change" compares this one value.
    NULL (SQLite, or a row an older version wrote) only means "compare by writing once"."""


# Bookkeeping columns the upsert helper owns; a mapper's row never contains them.
BOOKKEEPING_COLUMNS = frozenset(
    {"first_seen_at", "last_seen_at", "deleted_at", "last_sync_run_id", "row_hash"}
)


def one_of(column: str, values: tuple[str, ...]) -> str:
    """SQL text for a CHECK that ``column`` holds one of ``values``."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"
