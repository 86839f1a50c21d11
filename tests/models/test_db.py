"""Engine construction: URL rewriting, SQLite pragmas, aware timestamps on both dialects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
import sqlalchemy as sa

import worker.db
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


def _backend_pid(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_back_a_moment_ago_is_not_pinged_and_an_idle_one_is(fresh_pg_url, monkeypatch):
    """A sync checks a connection out once per page: pinging each checkout was a round trip
    per page. One idle for PING_AFTER_IDLE_SECONDS is pinged as before."""
    engine = make_engine(fresh_pg_url)
    pings: list[object] = []
    real_ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda c: pings.append(c) or real_ping(c))
    try:
        first = _backend_pid(engine)
        for _ in range(5):
            assert _backend_pid(engine) == first
        assert pings == []
        monkeypatch.setattr(worker.db, "PING_AFTER_IDLE_SECONDS", 0.0)
        assert _backend_pid(engine) == first
        assert len(pings) == 1
    finally:
        engine.dispose()


def test_an_idle_connection_the_server_closed_is_replaced_at_checkout(fresh_pg_url, monkeypatch):
    engine = make_engine(fresh_pg_url)
    monkeypatch.setattr(worker.db, "PING_AFTER_IDLE_SECONDS", 0.0)
    try:
        gone = _backend_pid(engine)
        with psycopg.connect(fresh_pg_url.replace("+psycopg", ""), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (gone,))
        replaced = _backend_pid(engine)  # no OperationalError: the ping found it dead
        assert replaced != gone
    finally:
        engine.dispose()
