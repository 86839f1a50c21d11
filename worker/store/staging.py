"""The Postgres write path: a page COPYed in binary into a staging table, then one upsert.

Per page: ``COPY … FROM STDIN (FORMAT BINARY)`` into a temporary table of the page's columns
(``ON COMMIT DELETE ROWS``, created once per connection: ``IF NOT EXISTS`` in the page's own
transaction, so a pooler handing out another server session still finds it), then one
``INSERT … SELECT … FROM stage ON CONFLICT DO UPDATE … WHERE row_hash differs``, its counts
from ``RETURNING (xmax = 0)`` aggregated in the same statement. Binary COPY is the cheapest way
for Postgres to read rows: no JSON to walk, no text to parse but ``raw`` itself (jsonb is sent
as its text, encoded once by orjson).

``row_hash`` is computed by Postgres from the staged columns (``hash_record_extended`` over the
mapped columns and ``raw``), so it covers whatever changes a row: the record as received (as
jsonb: key order and spacing are not changes), and the mapping context that shaped it (the
department's zone behind ``start_at``, the ``hidden`` flag of a department). Migration 0005
backfills existing rows with the same expression; a row whose hash is NULL or stale (written by
an older version) differs once, is rewritten, and is then left alone.

The staged rows stay until the commit empties the table (cheaper than deleting them with the
statement that moves them); a second upsert in the same transaction (the row-by-row fallback, a
row of the repeated hour) deletes them first. A refused COPY rolls back with its savepoint.
"""

from __future__ import annotations

import json
import weakref
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from operator import itemgetter
from typing import Any

import orjson
import psycopg
import sqlalchemy as sa
from psycopg.adapt import Dumper
from psycopg.pq import Format
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from models import UTCDateTime

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]
# Type names psycopg's binary COPY knows, for the SQL types SQLAlchemy compiles.
_COPY_TYPES = {
    "timestamp with time zone": "timestamptz",
    "time without time zone": "time",
    "float": "float8",
}


class _EncodedJsonb(Dumper):
    """A jsonb value already encoded as JSON bytes (binary format: version 1, then the text)."""

    oid = psycopg.postgres.types["jsonb"].oid
    format = Format.BINARY

    def dump(self, obj: bytes) -> bytes:
        return b"\x01" + obj


@dataclass(frozen=True)
class Shape:
    """The SQL for one page shape (table, columns, guard), built once."""

    create: str
    clear: str
    copy: str
    """COPY of the plain columns, then the jsonb ones (sent as JSON bytes, see ``_encode``)."""
    types: tuple[str, ...]
    plain: Any
    """``itemgetter`` of the plain columns (a tuple: a key has two columns at least)."""
    jsonb: tuple[str, ...]
    zoned: tuple[str, ...]
    upsert: str

    def values(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        """One row as the COPY sends it."""
        return (*self.plain(row), *(_encode(row[name]) for name in self.jsonb))

    def write(self, copy: psycopg.Copy, rows: Sequence[Mapping[str, Any]]) -> None:
        """Every row into the COPY; for ``raw`` alone (every appointment) without a call per
        row but orjson's."""
        if len(self.jsonb) != 1:
            for row in rows:
                copy.write_row(self.values(row))
            return
        plain, name, write, dumps = self.plain, self.jsonb[0], copy.write_row, orjson.dumps
        for row in rows:
            raw = row[name]
            try:
                encoded = None if raw is None else dumps(raw)
            except TypeError:  # what orjson refuses: the careful way
                encoded = _encode(raw)
            write((*plain(row), encoded))


def hash_sql(columns: Sequence[str], alias: str | None = None, volatile: Sequence[str] = ()) -> str:
    """The row hash over ``columns`` (the mapped ones and ``raw``, in table order); ``raw``
    without its ``volatile`` keys (``Resource.volatile_fields``: not a change)."""
    prefix = f"{alias}." if alias else ""
    listed = [prefix + c for c in columns]
    if volatile and "raw" in columns:
        dropped = "".join(" - '" + key.replace("'", "''") + "'" for key in volatile)
        listed[list(columns).index("raw")] = f"({prefix}raw{dropped})"
    return f"hash_record_extended(ROW({', '.join(listed)}), 0)"


def _copy_type(column: sa.Column[Any]) -> str:
    name = str(column.type.compile(dialect=_PG)).lower()
    return _COPY_TYPES.get(name, name)


def _guard_sql(table: str, guard: str | None, ceiling: bool) -> str:
    """The stored guard time is not after the incoming one (or after ``%(ceiling)s``, the
    latest instant the incoming value could stand for, when that is uncertain)."""
    if guard is None:
        return ""
    limit = "%(ceiling)s" if ceiling else f"EXCLUDED.{guard}"
    return (
        f" AND (EXCLUDED.{guard} IS NULL OR {table}.{guard} IS NULL OR {table}.{guard} <= {limit})"
    )


@cache
def shape(
    table: sa.Table,
    names: tuple[str, ...],
    pk: tuple[str, ...],
    guard: str | None,
    ceiling: bool,
    volatile: tuple[str, ...] = (),
) -> Shape:
    """Staging table, COPY and upsert for rows of ``table`` carrying ``names`` (``volatile``:
    keys of ``raw`` the hash leaves out)."""
    types = {name: _copy_type(table.c[name]) for name in names}
    jsonb = tuple(name for name in names if types[name] == "jsonb")
    plain = tuple(name for name in names if name not in jsonb)
    data = [name for name in names if name not in pk]
    # Named by its columns and their types: a connection that outlived a migration never
    # COPYs into a staging table of the old shape.
    signature = " ".join(f"{name}:{types[name]}" for name in names)
    stage = f"athena_stage_{table.name}_{zlib.crc32(signature.encode()):08x}"
    listed = ", ".join(names)
    updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in (*data, "row_hash", "last_seen_at"))
    hashed = hash_sql(data, "src", volatile)
    upsert = (
        f"WITH written AS ("
        f"INSERT INTO {table.name} ({listed}, row_hash, first_seen_at, last_seen_at, deleted_at,"
        f" last_sync_run_id) SELECT {listed}, {hashed}, %(now)s, %(now)s, NULL,"
        f" %(run_id)s FROM {stage} AS src ON CONFLICT ({', '.join(pk)}) DO UPDATE SET {updates},"
        " last_sync_run_id = EXCLUDED.last_sync_run_id, deleted_at = NULL"
        f" WHERE ({table.name}.row_hash IS DISTINCT FROM EXCLUDED.row_hash"
        f" OR {table.name}.deleted_at IS NOT NULL){_guard_sql(table.name, guard, ceiling)}"
        # xmax is 0 on a row this statement inserted and non-zero on one it updated.
        " RETURNING (xmax = 0) AS inserted)"
        " SELECT count(*) FILTER (WHERE inserted), count(*) FROM written"
    )
    return Shape(
        create=(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS"
            f" AS SELECT {listed} FROM {table.name} WITH NO DATA"
        ),
        clear=f"DELETE FROM {stage}",
        copy=f"COPY {stage} ({', '.join(plain + jsonb)}) FROM STDIN (FORMAT BINARY)",
        types=tuple(types[name] for name in plain + jsonb),
        plain=itemgetter(*plain),
        jsonb=jsonb,
        zoned=tuple(n for n in names if isinstance(table.c[n].type, UTCDateTime)),
        upsert=upsert,
    )


def _encode(value: Any) -> bytes | None:
    """A jsonb value as JSON bytes: orjson, or ``json`` for what orjson refuses (ints wider
    than 64 bits, lone surrogates: Postgres then refuses the row, which is lettered)."""
    if value is None:
        return None
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False).encode(errors="surrogatepass")


def _check_zoned(shape: Shape, rows: Sequence[Mapping[str, Any]]) -> None:
    for name in shape.zoned:
        for row in rows:
            value = row[name]
            if value is not None and value.tzinfo is None:
                raise ValueError("naive datetime given to a timestamptz column; pass an aware one")


def _staged_before(session: Session, shape: Shape) -> bool:
    """Whether this transaction staged rows of this shape already (a second upsert in one
    transaction: the row-by-row fallback, a row of the repeated hour): they are still there
    until the commit empties the table, and must go first."""
    current = session.get_transaction()
    marks: dict[str, weakref.ref[Any]] = session.info.setdefault("athena_staged", {})
    before = marks.get(shape.copy)
    marks[shape.copy] = weakref.ref(current)
    return before is not None and before() is current


def copy_upsert(
    session: Session,
    shape: Shape,
    rows: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
    run_id: int | None,
    ceiling: datetime | None,
) -> tuple[int, int]:
    """Stage ``rows`` and upsert them in the session's transaction; (inserted, written)."""
    _check_zoned(shape, rows)
    dbapi = session.connection().connection.dbapi_connection
    assert isinstance(dbapi, psycopg.Connection)
    params = {"now": now, "run_id": run_id, "ceiling": ceiling}
    statement = shape.create
    try:
        with dbapi.cursor() as cursor:
            cursor.execute(statement)
            if _staged_before(session, shape):
                cursor.execute(statement := shape.clear)
            cursor.adapters.register_dumper(None, _EncodedJsonb)
            with cursor.copy(statement := shape.copy) as copy:
                copy.set_types(list(shape.types))
                shape.write(copy, rows)
            cursor.execute(statement := shape.upsert, params, prepare=True)
            inserted, written = cursor.fetchone() or (0, 0)
    except psycopg.Error as exc:
        # As SQLAlchemy would raise it, so callers tell refused values (DataError) apart.
        raise sa.exc.DBAPIError.instance(statement, None, exc, psycopg.Error) from exc
    return int(inserted), int(written)
