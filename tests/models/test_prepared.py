"""A page's Postgres write made ahead (``prepare_page``, in the fetch-ahead thread): the same COPY
stream the writer makes itself, used only for the very rows it was made from."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg.copy import Copy, FileWriter
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

import worker.store.staging as staging
from models import Appointment
from sandbox import SandboxConfig
from sandbox.store import PracticeStore
from worker.db import make_engine, upgrade
from worker.resources import appointments, providers
from worker.store.upsert import prepare_page, upsert_page

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def truth() -> dict[str, Any]:
    return PracticeStore("195900", SandboxConfig(seed=5, appointments=400)).truth()


def appointment_rows(truth: dict[str, Any]) -> list[dict[str, Any]]:
    zones = {str(d["departmentid"]): d["timezonename"] for d in truth["departments"]}
    rows = [
        dict(appointments.to_row(record, practice_id="195900", timezones=zones))
        for record in truth["appointments"]
    ]
    # Values the encoders treat apart: text beyond ASCII, a JSON int wider than 64 bits (orjson
    # refuses it: the careful encoder), None in every optional column.
    rows[0]["appointment_type_name"] = "Revisión — 初診 ✓"
    rows[1]["raw"] = {**rows[1]["raw"], "huge": 2**70}
    for column in ("provider_id", "status", "duration_minutes", "last_modified_at"):
        rows[2][column] = None
    return rows


@pytest.fixture
def pg(fresh_pg_url: str) -> Iterator[Engine]:
    engine = make_engine(fresh_pg_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_the_stream_made_ahead_is_the_one_the_writer_makes(pg: Engine, truth):
    rows = appointment_rows(truth)
    prepared = prepare_page(Appointment, rows, guard_column="last_modified_at")
    assert prepared is not None and prepared.rows is rows
    with pg.connect() as connection:
        dbapi = connection.connection.dbapi_connection
        assert isinstance(dbapi, psycopg.Connection)
        cursor = dbapi.cursor()
        cursor.adapters.register_dumper(None, staging._Jsonb)
        sent = io.BytesIO()
        with Copy(cursor, binary=True, writer=FileWriter(sent)) as copy:
            copy.set_types(list(prepared.shape.types))
            prepared.shape.write(copy, rows)
    assert prepared.stream == sent.getvalue()


def test_a_prepared_page_lands_like_one_written_in_place(pg: Engine, truth):
    """Two databases' worth in one: the page written from its prepared stream and the same
    page written without one hold the same rows, hashes included."""
    rows = appointment_rows(truth)
    prepared = prepare_page(Appointment, rows, guard_column="last_modified_at")
    assert prepared is not None
    sessions = sa.orm.sessionmaker(bind=pg)
    with sessions.begin() as session:
        first = upsert_page(
            session,
            Appointment,
            rows,
            run_id=None,
            now=NOW,
            guard_column="last_modified_at",
            prepared=prepared,
        )
    assert first.inserted == len(rows)
    stored = _stored(sessions)
    with sessions.begin() as session:
        session.execute(sa.text("UPDATE appointments SET row_hash = NULL, raw = '{}'"))
    with sessions.begin() as session:  # no prepared stream: written in place, every row again
        again = upsert_page(
            session, Appointment, rows, run_id=None, now=NOW, guard_column="last_modified_at"
        )
    assert again.updated == len(rows)
    assert _stored(sessions) == stored
    with sessions.begin() as session:  # and unchanged from the prepared stream: 0 writes
        last = upsert_page(
            session,
            Appointment,
            rows,
            run_id=None,
            now=NOW,
            guard_column="last_modified_at",
            prepared=prepared,
        )
    assert (last.inserted, last.updated, last.unchanged) == (0, 0, len(rows))


def _stored(sessions: sa.orm.sessionmaker[Session]) -> list[tuple[Any, ...]]:
    with sessions() as session:
        return [
            tuple(row)
            for row in session.execute(
                sa.text(
                    "SELECT appointment_id, row_hash, raw::text, start_at, appointment_type_name"
                    " FROM appointments ORDER BY appointment_id"
                )
            )
        ]


def test_a_stream_is_used_only_for_its_own_rows_and_guard(pg: Engine, truth, monkeypatch):
    """Each condition alone turns the stream down; the very rows with the same guard take it
    (the control: without it, a check that always said no would pass)."""
    subset = appointment_rows(truth)[:10]
    guarded = {"guard_column": "last_modified_at", "volatile": ("appointmentnotes",)}
    prepared = prepare_page(Appointment, subset, **guarded)
    assert prepared is not None
    streams: list[bytes | None] = []
    real = staging.copy_upsert

    def spy(*args: Any, **kwargs: Any) -> tuple[int, int]:
        streams.append(kwargs.get("stream"))
        return real(*args, **kwargs)

    monkeypatch.setattr("worker.store.upsert.copy_upsert", spy)
    sessions = sa.orm.sessionmaker(bind=pg)
    with sessions.begin() as session:
        for rows, options in (
            (list(subset), guarded),  # equal rows, another list
            (subset, {"volatile": guarded["volatile"]}),  # its rows, an unguarded write
            (subset, {**guarded, "volatile": ()}),  # its rows and guard, other volatile keys
            (subset, guarded),  # its rows and guard: used
        ):
            upsert_page(
                session, Appointment, rows, run_id=None, now=NOW, prepared=prepared, **options
            )
    assert [stream is not None for stream in streams] == [False, False, False, True]


def test_pages_the_writer_must_handle_itself_are_not_prepared():
    provider = {"practice_id": "195900", "provider_id": "1", "first_name": "Ana", "raw": {}}
    assert prepare_page(providers.RESOURCE.model, []) is None
    # A key given twice (the writer keeps the last and counts the other unchanged).
    assert prepare_page(providers.RESOURCE.model, [provider, dict(provider)]) is None
    # Rows of different shapes, a naive time: the writer raises what is wrong.
    assert prepare_page(providers.RESOURCE.model, [provider, {**provider, "npi": "1"}]) is None
    naive = {
        "practice_id": "195900",
        "appointment_id": "9",
        "department_id": "1",
        "start_at": datetime(2026, 1, 1, 9, 0),
        "raw": {},
    }
    assert prepare_page(Appointment, [naive]) is None
