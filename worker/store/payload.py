"""How a page travels to Postgres: JSON text expanded by ``json_populate_recordset``.

The rows go as one JSON array (``:payload``); their ``raw`` documents, when the rows can lend
them, as a second one (``:raws``) joined back by position: Postgres reads a nested document
far faster as an element of a ``jsonb`` array than as a field of a record it populates.

Both travel as the UTF-8 bytes the encoder made (``EncodedText``), not as ``str``: a page's JSON
is about a megabyte, and decoding it to ``str`` only for the driver to encode it back made two
more copies per page, whose churn left the allocator holding ~10 MB it could not give back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from functools import cache
from operator import itemgetter
from typing import Any

import orjson
import sqlalchemy as sa
from psycopg import adapters, postgres
from psycopg.adapt import Dumper

from models import UTCDateTime


class EncodedText:
    """Text already encoded as UTF-8, handed to Postgres as it is (a ``text`` parameter)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class _EncodedTextDumper(Dumper):
    oid = postgres.types["text"].oid

    def dump(self, obj: EncodedText) -> bytes:
        return obj.data


adapters.register_dumper(EncodedText, _EncodedTextDumper)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a timestamptz column; pass an aware one")
        return value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def pg_payload(
    table: sa.Table, rows: Sequence[Mapping[str, Any]], lenders: list[dict[str, Any]] | None
) -> dict[str, EncodedText | str]:
    """The page as JSON text: ``payload`` (the rows), and given ``lenders`` (the same rows as
    dicts) their ``raw`` documents apart in ``raws``, same order. Postgres reads a nested
    document far faster as an element of a ``jsonb`` array than as a field of a record."""
    for name in _zoned_columns(table):
        values = map(itemgetter(name), rows) if name in rows[0] else ()
        if any(isinstance(value, datetime) and value.tzinfo is None for value in values):
            raise ValueError("naive datetime given to a timestamptz column; pass an aware one")
    if lenders is None:
        return {"payload": _dumps(rows)}
    raws = [row.pop("raw") for row in lenders]  # lent for the encoding, put back below
    try:
        return {"payload": _dumps(lenders), "raws": _dumps(raws)}
    finally:
        for row, raw in zip(lenders, raws, strict=True):
            row["raw"] = raw


def _dumps(value: Any) -> EncodedText | str:
    """orjson; ``json`` for what orjson refuses (ints wider than 64 bits, lone surrogates,
    the non-finite numbers the response decoder keeps as they came)."""
    try:
        return EncodedText(orjson.dumps(value))
    except TypeError:
        return json.dumps(value, default=_json_value, ensure_ascii=False)


@cache
def _zoned_columns(table: sa.Table) -> tuple[str, ...]:
    return tuple(c.name for c in table.c if isinstance(c.type, UTCDateTime))


def pg_source(table: sa.Table, names: Sequence[str], split_raw: bool) -> Any:
    """``SELECT <names>, <bookkeeping> FROM json_populate_recordset(NULL::<table>, :payload)``:
    one parameter carries the whole page, so the SQL text stays small and the server parses
    the rows; the bookkeeping values are the same for every row, so they are binds, not JSON.
    With ``split_raw`` the ``raw`` column comes from the ``:raws`` array, row by row."""
    source = f"json_populate_recordset(NULL::{table.name}, CAST(:payload AS json)) AS src"
    if split_raw:
        source = (
            f"json_populate_recordset(NULL::{table.name}, CAST(:payload AS json))"
            " WITH ORDINALITY AS src JOIN jsonb_array_elements(CAST(:raws AS jsonb))"
            " WITH ORDINALITY AS raws(raw, n) ON raws.n = src.ordinality"
        )
    binds = [sa.bindparam(name, type_=sa.Text()) for name in ("payload", "raws")[: 1 + split_raw]]
    seen = sa.bindparam("now", type_=UTCDateTime())
    bookkeeping = {
        "first_seen_at": seen,
        "last_seen_at": seen,
        "deleted_at": sa.null(),
        "last_sync_run_id": sa.bindparam("run_id", type_=sa.BigInteger()),
    }
    return sa.select(
        *(
            sa.literal_column(f"{'raws' if split_raw and name == 'raw' else 'src'}.{name}")
            for name in names
        ),
        *(sa.cast(value, table.c[name].type).label(name) for name, value in bookkeeping.items()),
    ).select_from(sa.text(source).bindparams(*binds))
