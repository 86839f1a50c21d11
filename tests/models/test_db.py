"""Engine construction: URL rewriting, SQLite pragmas, aware timestamps on both dialects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from models import SyncState
from worker.db import make_engine, normalize_url, session_factory


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///athena_sync.db", "sqlite:///athena_sync.db"),
    ],
)
def test_normalize_url(given, expected):
    assert normalize_url(given) == expected


def test_postgres_urls_use_psycopg3(fresh_pg_url):
    plain = fresh_pg_url.replace("postgresql+psycopg://", "postgresql://")
    engine = make_engine(plain)
    try:
        assert engine.dialect.driver == "psycopg"
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_sqlite_connections_get_wal_foreign_keys_and_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar_one() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar_one() == 1
            assert pragma("PRAGMA busy_timeout").scalar_one() == 30_000
    finally:
        engine.dispose()


def test_timestamps_round_trip_as_aware_utc(engine):
    eastern_noon = datetime(2024, 7, 1, 12, 0, tzinfo=timezone(timedelta(hours=-4)))
    sessions = session_factory(engine)
    with sessions.begin() as session:
        session.add(
            SyncState(practice_id="1", resource="appointments", scope="7", updated_at=eastern_noon)
        )
    with sessions() as session:
        state = session.scalars(sa.select(SyncState)).one()
    assert state.updated_at == datetime(2024, 7, 1, 16, 0, tzinfo=UTC)
    assert state.updated_at.tzinfo == UTC


def test_naive_timestamps_are_refused(engine):
    sessions = session_factory(engine)
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), sessions.begin() as session:
        session.add(SyncState(practice_id="1", resource="x", updated_at=datetime(2024, 1, 1)))
