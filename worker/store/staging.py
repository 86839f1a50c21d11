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

The page's savepoint (``page_savepoint``: a refused value must not cost the page's transaction)
travels with the staging table's ``CREATE … IF NOT EXISTS`` in one simple-query round trip and is
never released (the commit ends it): together with the pool's ping-when-idle, a page is BEGIN,
SAVEPOINT + CREATE, COPY, upsert, its progress, COMMIT.

A page's COPY stream can be made ahead, off the thread that writes (``encode``, called by
``upsert.prepare_page`` in the fetch-ahead thread, after mapping): the writer then only sends
bytes and waits for Postgres, and the Python work of the next page overlaps Postgres's work on
this one. It is the same stream ``Shape.write`` sends (a test holds them equal); when psycopg's
formatter cannot be had, or the connection's encoding is not UTF-8, the writer makes it itself.

The staged rows stay until the commit empties the table (cheaper than deleting them with the
statement that moves them); a second upsert in the same transaction (the row-by-row fallback, a
row of the repeated hour) deletes them first. A refused COPY rolls back with its savepoint.
"""

from __future__ import annotations

import json
import weakref
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
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


class _Jsonb(Dumper):
    """A JSON value as binary jsonb (version 1, then the text), encoded by orjson, or by
    ``json`` for what orjson refuses (ints wider than 64 bits, lone surrogates: Postgres then
    refuses the row, which is lettered)."""

    oid = psycopg.postgres.types["jsonb"].oid
    format = Format.BINARY

    def dump(self, obj: Any) -> bytes:
        try:
            return b"\x01" + orjson.dumps(obj)
        except TypeError:
            return b"\x01" + json.dumps(obj, ensure_ascii=False).encode(errors="surrogatepass")


@dataclass(frozen=True)
class Shape:
    """The SQL for one page shape (table, columns, guard), built once."""

    create: str
    clear: str
    copy: str
    """COPY of the plain columns, then the jsonb ones (dumped by ``_Jsonb``)."""
    types: tuple[str, ...]
    values: Any
    """``itemgetter`` of the COPY's columns, in its order (a tuple: a key has two columns)."""
    zoned: tuple[str, ...]
    upsert: str
    guard: str | None

    def write(self, copy: psycopg.Copy | _Stream, rows: Sequence[Mapping[str, Any]]) -> None:
        """Every row into the COPY (its cursor has ``_Jsonb`` registered)."""
        write = copy.write_row
        for values in map(self.values, rows):
            write(values)


def _formatter_class() -> Any:
    """psycopg's binary COPY formatter (not public API: None if a version moved it)."""
    try:
        from psycopg._copy_base import BinaryFormatter
    except ImportError:  # pragma: no cover - depends on the installed psycopg
        return None
    return BinaryFormatter


_FORMATTER = _formatter_class()
_ADAPTERS = psycopg.adapt.AdaptersMap(psycopg.adapters)
_ADAPTERS.register_dumper(None, _Jsonb)


class _Stream:
    """Stands in for ``psycopg.Copy`` in ``Shape.write``: each row formatted into one buffer."""

    def __init__(self, formatter: Any) -> None:
        self.formatter = formatter
        self.data = bytearray()

    def write_row(self, row: Sequence[Any]) -> None:
        self.data += self.formatter.write_row(row)

    def end(self) -> bytearray:
        self.data += self.formatter.end()
        return self.data


def encode(shape: Shape, rows: Sequence[Mapping[str, Any]]) -> bytearray | None:
    """The whole binary COPY stream of ``rows`` (signature, rows, trailer) as ``copy_upsert``
    would send it over a UTF-8 connection, made without one; None when it cannot be made here
    (the writer then makes it itself, and reports what is wrong as it always did)."""
    if _FORMATTER is None or not rows:
        return None
    transformer = psycopg.adapt.Transformer(_ADAPTERS)
    oids = [_ADAPTERS.types.get_oid(name) for name in shape.types]
    transformer.set_dumper_types(oids, Format.BINARY)
    stream = _Stream(_FORMATTER(transformer))
    try:  # psycopg refuses a naive time for timestamptz itself (TypeError): not looked for here
        shape.write(stream, rows)
    except Exception:  # the writer meets it again, where it is handled
        return None
    return stream.end()


def hash_sql(columns: Sequence[str], alias: str | None = None, volatile: Sequence[str] = ()) -> str:
    """The row hash over ``columns`` (the mapped ones and ``raw``, in table order); ``raw``
    without its ``volatile`` keys (``Resource.volatile_fields``: not a change). The keys are
    taken out only from a ``raw`` holding one: ``raw - key`` builds a new jsonb for every row
    (~8% of a full load's upsert), and is ``raw`` itself, hashed alike, when the key is absent.
    """
    prefix = f"{alias}." if alias else ""
    listed = [prefix + c for c in columns]
    if volatile and "raw" in columns:
        keys = [key.replace("'", "''") for key in volatile]
        raw = f"{prefix}raw"
        quoted = ", ".join("'" + key + "'" for key in keys)
        holds = f"{raw} ?| ARRAY[{quoted}]"
        dropped = raw + "".join(f" - '{key}'" for key in keys)
        listed[list(columns).index("raw")] = f"(CASE WHEN {holds} THEN {dropped} ELSE {raw} END)"
    return f"hash_record_extended(ROW({', '.join(listed)}), 0)"


def _copy_type(column: sa.Column[Any]) -> str:
    name = str(column.type.compile(dialect=_PG)).lower()
    return _COPY_TYPES.get(name, name)


# A stored guard time later than the write's clock by more than this was never a real change
# time (a record stamped in the future, accepted up to the year 2100): it does not hold back
# later versions, or one such value would freeze its row for good.
FUTURE_GUARD_TOLERANCE = timedelta(days=1)


def _guard_sql(table: str, guard: str | None, ceiling: bool) -> str:
    """The stored guard time is NULL or in the future (past ``%(distrust)s``), or the incoming
    one is known and the stored one is not after it (or after ``%(ceiling)s``, the latest
    instant the incoming value could stand for, when that is uncertain): a row without a time
    cannot be shown newer than one with a time."""
    if guard is None:
        return ""
    limit = "%(ceiling)s" if ceiling else f"EXCLUDED.{guard}"
    return (
        f" AND ({table}.{guard} IS NULL OR {table}.{guard} > %(distrust)s"
        f" OR (EXCLUDED.{guard} IS NOT NULL AND {table}.{guard} <= {limit}))"
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
        values=itemgetter(*plain, *jsonb),
        zoned=tuple(n for n in names if isinstance(table.c[n].type, UTCDateTime)),
        upsert=upsert,
        guard=guard,
    )


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


PAGE_SAVEPOINT = "athena_page"
_PENDING = "athena_page_savepoint"  # session.info: the savepoint is to be sent / was sent


@contextmanager
def page_savepoint(session: Session) -> Iterator[None]:
    """A savepoint around the upserts inside: an error inside rolls back to it, leaving the
    caller's transaction usable. It is sent with the first upsert's first statement (no round
    trip of its own) and not released."""
    session.info[_PENDING] = "pending"
    try:
        yield
    except BaseException:
        if session.info.get(_PENDING) == "sent":
            session.connection().exec_driver_sql(f"ROLLBACK TO SAVEPOINT {PAGE_SAVEPOINT}")
        raise
    finally:
        session.info.pop(_PENDING, None)


def _with_savepoint(session: Session, statement: str) -> str:
    """``statement`` preceded by the page savepoint when one is pending (simple query protocol:
    both in one round trip)."""
    if session.info.get(_PENDING) != "pending":
        return statement
    session.info[_PENDING] = "sent"
    return f"SAVEPOINT {PAGE_SAVEPOINT}; {statement}"


def copy_upsert(
    session: Session,
    shape: Shape,
    rows: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
    run_id: int | None,
    ceiling: datetime | None,
    stream: bytearray | None = None,
) -> tuple[int, int]:
    """Stage ``rows`` and upsert them in the session's transaction; (inserted, written).
    ``stream``: the rows' COPY stream made ahead (``encode``), if any."""
    dbapi = session.connection().connection.dbapi_connection
    assert isinstance(dbapi, psycopg.Connection)
    if stream is not None and dbapi.info.encoding != "utf-8":
        stream = None
    if stream is None:
        _check_zoned(shape, rows)
    params = {
        "now": now,
        "run_id": run_id,
        "ceiling": ceiling,
        "distrust": now + FUTURE_GUARD_TOLERANCE,
    }
    statement = _with_savepoint(session, shape.create)
    try:
        with dbapi.cursor() as cursor:
            cursor.execute(statement)
            if _staged_before(session, shape):
                cursor.execute(statement := shape.clear)
            cursor.adapters.register_dumper(None, _Jsonb)
            with cursor.copy(statement := shape.copy) as copy:
                if stream is not None:
                    copy.write(stream)
                else:
                    copy.set_types(list(shape.types))
                    shape.write(copy, rows)
            cursor.execute(statement := shape.upsert, params, prepare=True)
            inserted, written = cursor.fetchone() or (0, 0)
    except psycopg.Error as exc:
        # As SQLAlchemy would raise it, so callers tell refused values (DataError) apart.
        raise sa.exc.DBAPIError.instance(statement, None, exc, psycopg.Error) from exc
    return int(inserted), int(written)
